"""C4 authentication (threat T2: user impersonation): who is calling, on every request.

The guard authenticates the request from its headers (bearer JWT from a trusted OpenID
Connect issuer, opaque token by RFC 7662 introspection, or a service-account API key; see
``maestro_gateway.identity``), then records who it is for every later guard, the policy and
the logs:

- ``ctx.extra["identity"]`` — the :class:`~maestro_gateway.identity.Identity`;
- ``ctx.extra["principal"]`` — ``<iss>|<sub>`` or ``apikey:<id>`` (what rate limits key on);
- ``ctx.extra["token_id"]`` — the token's ``jti``, else ``sha256:<prefix>`` of it.

Refusals carry their ``WWW-Authenticate`` header (RFC 6750 / RFC 9470):

- no credential where one is required → 401 ``Bearer realm="…"``;
- a bad credential (malformed, expired, wrong issuer or audience, bad signature, disallowed
  algorithm, revoked) → 401 ``Bearer error="invalid_token"`` — whether or not authentication is
  required, a credential that is presented must be good;
- a valid login too weak for this agent or skill (``mfa``) → 401
  ``error="insufficient_user_authentication"`` with ``acr_values``/``max_age`` (step-up);
- an API key outside its scopes, or a service account where a person's MFA is required → 403;
- the identity provider unreachable with nothing cached → 503 (fail closed).

Cost with cached keys: ~45 µs per RS256 JWT (signature ~20 µs of it); see docs/identity.md.
"""

from __future__ import annotations

import logging
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from maestro_gateway.a2a.errors import INTERNAL_ERROR
from maestro_gateway.context import RequestContext
from maestro_gateway.identity.apikeys import scope_allows
from maestro_gateway.identity.authenticator import Authenticator
from maestro_gateway.identity.config import MfaRequirement
from maestro_gateway.identity.mfa import bearer_challenge, evaluate, step_up_challenge
from maestro_gateway.identity.model import IdentityUnavailable, InvalidToken
from maestro_gateway.types import ALLOW, JSON, FailMode, Verdict

__all__ = ["AUTHN_FORBIDDEN", "AUTHN_REQUIRED", "NAME", "AuthnGuard", "AuthnGuardConfig"]

NAME = "authn"
AUTHN_REQUIRED = -32097
"""JSON-RPC error code for a request that is not (or not strongly enough) authenticated;
implementation-defined server-error range, next to the other guards'. Sent with HTTP 401."""
AUTHN_FORBIDDEN = -32098
"""Authenticated, but the credential may not be used here (API key scope; a service account
where a person's MFA is required). Sent with HTTP 403."""

log = logging.getLogger("maestro_gateway.guards.authn")


class AuthnGuardConfig(BaseModel):
    """C4: authentication of every data-plane request (issuers etc. in ``identity``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    required: bool = Field(
        False, description="Refuse requests without credentials (401). Off: anonymous passes."
    )
    fail_mode: Literal["fail_closed"] = Field(
        "fail_closed", description="Authentication never fails open: an error denies."
    )
    mfa: MfaRequirement = Field(
        MfaRequirement(), description="Authentication context required (per agent/skill)."
    )


class AuthnGuard:
    """C4: authenticates the caller; 401/403/503 with the proper ``WWW-Authenticate``."""

    name = NAME

    def __init__(self, cfg: AuthnGuardConfig, authenticator: Authenticator) -> None:
        self.cfg = cfg
        self.fail_mode = FailMode(cfg.fail_mode)
        self._auth = authenticator
        self._realm = authenticator.cfg.realm
        self._second = frozenset(authenticator.cfg.second_factors)
        self._must = cfg.required or cfg.mfa.active

    async def on_request(self, ctx: RequestContext) -> Verdict:
        try:
            ident = await self._auth.authenticate(ctx.headers, ctx.agent_id)
        except InvalidToken as exc:
            return self._unauthorized(str(exc), "invalid_token", "invalid-token")
        except IdentityUnavailable as exc:
            log.error("identity provider unavailable", extra={"error": str(exc)})
            return Verdict.deny(
                503,
                INTERNAL_ERROR,
                "the identity provider is unavailable; request denied (fail-closed)",
                NAME,
                rule="idp-unavailable",
                headers=[("Retry-After", "5")],
            )
        if ident is None:
            if self._must:
                return self._unauthorized("authentication required", None, "missing-credential")
            return ALLOW
        ctx.extra["identity"] = ident
        ctx.extra["principal"] = ident.principal
        ctx.extra["token_id"] = ident.token_id
        if ident.method == "apikey" and not scope_allows(ident.scopes, ctx.agent_id, ctx.skill_id):
            return Verdict.deny(
                403, AUTHN_FORBIDDEN, "API key not scoped for this agent or skill", NAME,
                rule="apikey-scope",
            )  # fmt: skip
        short = evaluate(self.cfg.mfa, ident, self._second, time.time())
        if short is None:
            return ALLOW
        if not short.can_step_up:
            return Verdict.deny(403, AUTHN_FORBIDDEN, short.reason, NAME, rule="mfa-service")
        challenge = step_up_challenge(self.cfg.mfa, self._realm, short.reason)
        return Verdict.deny(
            401, AUTHN_REQUIRED, short.reason, NAME, rule="step-up",
            headers=[("WWW-Authenticate", challenge)],
        )  # fmt: skip

    def _unauthorized(self, reason: str, error: str | None, rule: str) -> Verdict:
        challenge = bearer_challenge(self._realm, error, reason if error else "")
        return Verdict.deny(
            401, AUTHN_REQUIRED, reason, NAME, rule=rule, headers=[("WWW-Authenticate", challenge)]
        )

    async def on_response(self, ctx: RequestContext, payload: JSON) -> Verdict:
        return ALLOW

    async def on_stream_event(self, ctx: RequestContext, event: JSON) -> Verdict:
        return ALLOW
