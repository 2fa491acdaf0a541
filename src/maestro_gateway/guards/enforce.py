"""C21 enforcement: applies what response playbooks decided, first on the request path.

Checks, in order (the first that holds answers):
- the source address is blocked -> 403, code -32094 (rule ``blocked-source``), Retry-After;
- the principal is blocked -> 403, code -32094 (rule ``blocked-principal``), Retry-After;
- the request's token id is revoked -> 401, code -32094 (rule ``token-revoked``) with
  ``WWW-Authenticate: Bearer error="invalid_token"``;
- the principal must step up -> 401, code -32094 (rule ``step-up-required``) with an RFC 9470
  challenge ``WWW-Authenticate: Bearer error="insufficient_user_authentication"`` and
  ``max_age`` = seconds since the requirement. It is met by an authenticated identity
  (``ctx.extra["identity"]``, set by authn) with MFA whose ``auth_time`` is after the
  requirement was set; without identity it cannot be met, so the principal is refused until
  the requirement expires or is reverted.

It runs twice when authentication is on: first of all (source, and the principal and token as
known before authentication: ``addr:<source>`` and the bearer's hash), and again right after
``authn`` (``after_authn=True``) for the authenticated principal and the token's ``jti`` —
a playbook acting on an authenticated caller names those. The first pass also remembers the
request context for the detection hook (``detect.observe.remember``).
An approval requirement (``EnforcementState.requires_approval``) is read by the approval guard,
not here. Lookups are dict hits; with nothing enforced the guard costs one attribute read.
"""

from __future__ import annotations

import math

from maestro_gateway.context import RequestContext
from maestro_gateway.detect.observe import remember
from maestro_gateway.playbooks.enforcement import EnforcementState, Measure
from maestro_gateway.principal import principal_of, token_id_of
from maestro_gateway.types import ALLOW, JSON, FailMode, Verdict

__all__ = ["ENFORCED", "EnforceGuard"]

NAME = "enforce"
ENFORCED = -32094
"""JSON-RPC error code of a refusal by a playbook's measure (implementation-defined range,
next to the rate limiter's -32090 and the WAF's -32091)."""


class EnforceGuard:
    """Refuses blocked principals/sources, revoked tokens and principals that must step up."""

    name = NAME
    fail_mode = FailMode.FAIL_CLOSED

    def __init__(self, state: EnforcementState, after_authn: bool = False) -> None:
        self.state = state
        self.after_authn = after_authn

    async def on_request(self, ctx: RequestContext) -> Verdict:
        if not self.after_authn:
            remember(ctx)
        state = self.state
        if state.empty():
            return ALLOW
        if self.after_authn and "principal" not in ctx.extra and "token_id" not in ctx.extra:
            return ALLOW  # nothing authenticated: the first pass has checked everything
        if not self.after_authn:
            v = self._blocked("source", ctx.client_addr, "source address")
            if v is not None:
                return v
        principal = principal_of(ctx)
        if (v := self._blocked("principal", principal, "principal")) is not None:
            return v
        token_id = token_id_of(ctx)
        if token_id is not None and state.token_revoked(token_id):
            challenge = 'Bearer error="invalid_token", error_description="token revoked"'
            return Verdict.deny(
                401,
                ENFORCED,
                "the access token has been revoked",
                NAME,
                rule="token-revoked",
                headers=[("WWW-Authenticate", challenge)],
            )
        since = state.since("step_up", principal)
        if since is not None and not _stepped_up(ctx, since):
            age = max(0, math.floor(state.clock() - since))
            challenge = (
                'Bearer error="insufficient_user_authentication", '
                'error_description="step-up authentication (MFA) required", '
                f'max_age="{age}"'
            )
            return Verdict.deny(
                401,
                ENFORCED,
                "step-up authentication (MFA) is required for this principal",
                NAME,
                rule="step-up-required",
                headers=[("WWW-Authenticate", challenge)],
            )
        return ALLOW

    def _blocked(self, measure: Measure, key: str, what: str) -> Verdict | None:
        until = self.state.until(measure, key)
        if until is False:
            return None
        headers = []
        if until is not None:
            retry = max(1, math.ceil(until - self.state.clock()))
            headers.append(("Retry-After", str(retry)))
        return Verdict.deny(
            403,
            ENFORCED,
            f"this {what} is blocked by a response playbook",
            NAME,
            rule=f"blocked-{measure}",
            headers=headers,
        )

    async def on_response(self, ctx: RequestContext, payload: JSON) -> Verdict:
        return ALLOW

    async def on_stream_event(self, ctx: RequestContext, event: JSON) -> Verdict:
        return ALLOW


def _stepped_up(ctx: RequestContext, since: float) -> bool:
    """The authenticated identity logged in with MFA after the requirement was set."""
    ident = ctx.extra.get("identity")
    auth_time = getattr(ident, "auth_time", None)
    return bool(getattr(ident, "mfa", False)) and auth_time is not None and auth_time >= since
