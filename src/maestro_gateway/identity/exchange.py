"""C16 delegated identities for child agents: the RFC 8693 token exchange, ``POST /oauth2/token``.

A supervisor agent (the *actor*) presents the user's token (``subject_token``) and proves who it
is — with its own bearer token (``actor_token``: an agent/service-account JWT from a trusted
issuer, or an API key) or with its client SVID over mTLS — and asks for a token for one child
agent (``audience``) and some of its skills (``scope``). The answer (RFC 8693 §2.2) is a
short-lived gateway-signed token (:mod:`._delegation`) whose ``act`` chain names the actor.

Rules, each a refusal in RFC 6749 §5.2 / RFC 8693 §2.2.2 terms (JSON, never a 500):

- a bad request, an unsupported token type, or a subject/actor token that does not validate →
  ``invalid_request`` (RFC 8693 §2.2.2); a grant type other than token exchange →
  ``unsupported_grant_type``; no actor at all → ``invalid_request`` (delegation only, no
  impersonation);
- the audience must be one active agent (not the router) → else ``invalid_target``;
- Cedar must permit ``Action::"delegate"`` for the actor, on that agent, for each skill
  (context: ``subject``, ``subject_tenant``, ``depth``, ``skill``) → else
  ``unauthorized_client``; the default policy permits actors whose roles hold ``delegator``;
- every requested skill must exist on the agent, be one the user may invoke there (Cedar
  ``invoke`` as the user) and one the actor may invoke (Cedar ``invoke`` as the actor, and its
  API-key scope) — the intersection; one outside either is refused, never silently dropped →
  ``invalid_scope``. A delegated subject token can only be narrowed: the new scope must be a
  subset of its scope;
- the new chain (actor + the subject token's chain) must not exceed ``max_depth`` →
  ``invalid_grant``.

Every issued token is a critical audit record ``token.exchanged`` (written before the token is
returned: no record, no token → 503 ``temporarily_unavailable``); every refusal is noted as
``token.exchange_refused``.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_private_key

from maestro_gateway.audit._store import AuditUnavailable
from maestro_gateway.audit.recorder import AuditRecorder
from maestro_gateway.config import GatewayConfig, GatewayKeyConfig
from maestro_gateway.context import RequestContext
from maestro_gateway.http import ClientDisconnected, send_json
from maestro_gateway.identity._delegation import TOKEN_TYPE_ACCESS, DelegatedTokens
from maestro_gateway.identity._exchange_form import (
    ExchangeError,
    client_chain,
    read_form,
    required,
    skills_of,
    token_type,
)
from maestro_gateway.identity.apikeys import scope_allows
from maestro_gateway.identity.authenticator import Authenticator
from maestro_gateway.identity.model import Identity, IdentityUnavailable, InvalidToken
from maestro_gateway.identity.oidc import MAX_TOKEN_BYTES
from maestro_gateway.policy import PolicyRuntime
from maestro_gateway.policy.inputs import agent_entity, identity_entity, request_context
from maestro_gateway.registry import _jose
from maestro_gateway.registry.routing import ROUTER_ID, Directory
from maestro_gateway.registry.signing import GatewaySigner
from maestro_gateway.spiffe.ids import InvalidSpiffeId, spiffe_id_of_pem
from maestro_gateway.types import Receive, Scope, Send

__all__ = ["GRANT_TYPE", "PATH", "ExchangeError", "TokenExchange", "load_gateway_key"]

log = logging.getLogger("maestro_gateway.identity.exchange")

PATH = "/oauth2/token"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
_NO_STORE = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]


@dataclass(frozen=True, slots=True)
class _Workload:
    """An actor known only by its client SVID (Cedar ``Maestro::Workload``)."""

    issuer: str
    roles: tuple[str, ...]
    kind: str = "workload"
    groups: tuple[str, ...] = ()
    tenant: str | None = None
    mfa: bool = False
    strength: int = 1


@dataclass(frozen=True, slots=True)
class _Actor:
    principal: str
    who: Identity | _Workload
    via: str  # "token", "apikey" or "svid"


def load_gateway_key(cfg: GatewayKeyConfig) -> tuple[_jose.PrivateKey, str]:
    """The gateway's signing key (created if absent, like the card signer) and its kid."""
    signer = GatewaySigner(cfg.path, alg=cfg.alg, kid=cfg.kid)  # creates it, checks its mode
    key = load_pem_private_key(Path(cfg.path).read_bytes(), password=None)
    if not isinstance(key, _jose.PrivateKey):
        raise ValueError(f"gateway key file {cfg.path} holds neither an EC nor an Ed25519 key")
    return key, signer.kid


class TokenExchange:
    """The ``/oauth2/token`` endpoint (pure ASGI). Off unless ``identity.exchange.enabled``."""

    def __init__(
        self,
        cfg: GatewayConfig,
        authenticator: Authenticator,
        policy: PolicyRuntime,
        directory: Directory,
        audit: AuditRecorder,
        tokens: DelegatedTokens | None = None,
    ) -> None:
        self.cfg = cfg.identity.exchange
        self.enabled = self.cfg.enabled
        self._auth, self._policy, self._dir, self._audit = authenticator, policy, directory, audit
        if tokens is None and self.enabled:
            key, kid = load_gateway_key(cfg.gateway_key)
            issuer = self.cfg.issuer or cfg.public_url
            tokens = DelegatedTokens(key, kid, issuer, self.cfg.token_ttl_s, self.cfg.clock_skew_s)
        self.tokens = tokens
        if tokens is not None:  # the gateway trusts its own delegated tokens (data plane only)
            authenticator.trust_delegated(tokens)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            body = {"error": "invalid_request", "error_description": "use POST"}
            return await send_json(send, 405, body, [(b"allow", b"POST"), *_NO_STORE])
        addr = (scope.get("client") or ("", 0))[0]
        note: dict[str, Any] = {"source": addr}
        try:
            form = await read_form(scope, receive)
            answer = await self.exchange(form, client_chain(scope), note)
        except ExchangeError as exc:
            log.info("token exchange refused", extra={"error": exc.error, "reason": str(exc)})
            record = {"type": "token.exchange_refused", "error": exc.error}
            await self._audit.note({**record, "reason": exc.description[:500], **note})
            body = {"error": exc.error, "error_description": exc.description}
            return await send_json(send, exc.status, body, _NO_STORE)
        except ClientDisconnected:
            return None
        await send_json(send, 200, answer, _NO_STORE)

    async def exchange(
        self, form: dict[str, str], client_chain: list[str], note: dict[str, Any]
    ) -> dict[str, Any]:
        """Decide one exchange; the RFC 8693 answer, or ExchangeError. ``note`` collects what
        is known for the refusal record."""
        tokens = self.tokens
        if tokens is None:
            raise ExchangeError("invalid_request", "token exchange is not enabled")
        grant_type = required(form, "grant_type")
        if grant_type != GRANT_TYPE:
            raise ExchangeError("unsupported_grant_type", f"grant_type must be {GRANT_TYPE}")
        subject_token = required(form, "subject_token")
        token_type(form, "subject_token_type", required=True)
        token_type(form, "requested_token_type", required=False)
        if "resource" in form:
            raise ExchangeError("invalid_target", "name the agent in 'audience', not 'resource'")
        audience = required(form, "audience")
        note["audience"] = audience[:255]
        skills = skills_of(form.get("scope"))
        note["scope"] = list(skills)
        subject = await self._validate(subject_token, "subject_token", any_agent=True)
        if subject.method == "apikey":
            raise ExchangeError("invalid_request", "subject_token: an API key is not delegable")
        note["subject"], note["subject_chain"] = subject.principal, list(subject.delegation)
        actor = await self._actor(form, client_chain)
        note["actor"] = actor.principal
        target = self._dir.get(audience) if audience != ROUTER_ID else None
        if target is None:
            raise ExchangeError("invalid_target", f"no active agent {audience[:64]!r}")
        depth = len(subject.delegation) + 1
        if depth > self.cfg.max_depth:
            raise ExchangeError(
                "invalid_grant", f"delegation depth {depth} exceeds the limit {self.cfg.max_depth}"
            )
        unknown = [s for s in skills if s not in target.skills]
        if unknown:
            raise ExchangeError("invalid_scope", f"agent {audience!r} has no skill {unknown[0]!r}")
        if subject.delegation:
            wider = [s for s in skills if s not in subject.scopes]
            if wider:
                raise ExchangeError(
                    "invalid_scope", f"scope wider than the subject token's: {wider[0]!r}"
                )
        decisions = self._authorize(subject, actor, audience, skills, depth)
        chain = (actor.principal, *subject.delegation)
        lineage = (subject.token_id, *(tokens.lineage_of(subject_token) if subject.delegation
                                       else ()))  # fmt: skip
        token, claims = tokens.mint(subject, chain, audience, skills, lineage)
        try:
            await self._audit.critical(
                {"type": "token.exchanged", "jti": claims["jti"], "subject": subject.principal,
                 "subject_jti": subject.token_id, "actor": actor.principal, "actor_via": actor.via,
                 "chain": list(chain), "depth": depth, "audience": audience,
                 "scopes": list(skills), "exp": claims["exp"], "decisions": decisions,
                 "source": note.get("source", "")}
            )  # fmt: skip
        except AuditUnavailable as exc:  # an unrecorded token must not be handed out
            log.error("token exchange not recorded", extra={"error": str(exc)})
            raise ExchangeError(
                "temporarily_unavailable", "the audit log is unavailable (fail-closed)", 503
            ) from None
        return {
            "access_token": token,
            "issued_token_type": TOKEN_TYPE_ACCESS,
            "token_type": "Bearer",
            "expires_in": claims["exp"] - claims["iat"],
            "scope": claims["scope"],
        }

    async def _validate(self, token: str, name: str, any_agent: bool = False) -> Identity:
        if len(token) > MAX_TOKEN_BYTES:
            raise ExchangeError("invalid_request", f"{name}: credential too large")
        try:
            return await self._auth.validate(token, any_agent=any_agent)
        except InvalidToken as exc:
            raise ExchangeError("invalid_request", f"{name}: {exc}") from None
        except IdentityUnavailable:
            raise ExchangeError(
                "temporarily_unavailable", "the identity provider is unavailable", 503
            ) from None

    async def _actor(self, form: dict[str, str], client_chain: list[str]) -> _Actor:
        token = form.get("actor_token")
        if token is None:
            if "actor_token_type" in form:
                raise ExchangeError("invalid_request", "actor_token_type without actor_token")
            if not client_chain:
                raise ExchangeError(
                    "invalid_request", "an actor is required: actor_token or a client SVID"
                )
            try:
                spiffe_id = spiffe_id_of_pem(client_chain[0])
            except InvalidSpiffeId as exc:
                raise ExchangeError("invalid_request", f"client certificate: {exc}") from None
            roles = tuple(self.cfg.workload_roles.get(spiffe_id, ()))
            return _Actor(spiffe_id, _Workload("spiffe", roles), "svid")
        token_type(form, "actor_token_type", required=True)
        ident = await self._validate(token, "actor_token")  # never a delegated token
        return _Actor(ident.principal, ident, "apikey" if ident.method == "apikey" else "token")

    def _authorize(
        self, subject: Identity, actor: _Actor, agent: str, skills: tuple[str, ...], depth: int
    ) -> list[str]:
        """Cedar: the actor may delegate each skill, and user and actor may each invoke it."""
        extra = {"subject": subject.principal, "subject_tenant": subject.tenant or "",
                 "depth": depth}  # fmt: skip
        ids: list[str] = []
        for skill in skills:
            if not self._decide(actor.principal, actor.who, "delegate", agent, skill, extra, ids):
                raise ExchangeError(
                    "unauthorized_client",
                    f"{actor.principal} may not delegate skill {skill!r} of agent {agent!r}",
                )
        for skill in skills:
            if not self._decide(subject.principal, subject, "invoke", agent, skill, {}, ids):
                raise ExchangeError(
                    "invalid_scope", f"the user may not use skill {skill!r} of agent {agent!r}"
                )
            key_ok = not isinstance(actor.who, Identity) or actor.who.method != "apikey"
            key_ok = key_ok or scope_allows(actor.who.scopes, agent, skill)  # type: ignore[union-attr]
            if not key_ok or not self._decide(
                actor.principal, actor.who, "invoke", agent, skill, {}, ids
            ):
                raise ExchangeError(
                    "invalid_scope", f"the actor may not use skill {skill!r} of agent {agent!r}"
                )
        return ids

    def _decide(
        self,
        uid: str,
        who: Identity | _Workload,
        action: str,
        agent: str,
        skill: str,
        extra: dict[str, Any],
        ids: list[str],
    ) -> bool:
        rt = self._policy
        ctx = RequestContext(uuid.uuid4().hex, agent, "TokenExchange", None, skill_id=skill,
                             extra={"identity": who, "principal": uid})  # fmt: skip
        principal, p_entity = identity_entity(uid, who)
        resource, r_entity = agent_entity(agent, rt.tenant_of(agent))
        context = {**request_context(ctx, rt.identity_required), **extra}
        decision = rt.engine.decide(principal, action, resource, context, [p_entity, r_entity])
        if rt.on_decision is not None:
            rt.on_decision(decision, ctx)
        ids.append(decision.decision_id)
        return decision.allowed
