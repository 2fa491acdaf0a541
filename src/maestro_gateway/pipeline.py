"""The guard pipeline. THE one place where the order of guards lives.

Guards are built per (agent, skill) from the base configuration plus any matching
``guard_overrides`` (later overrides win), and cached.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from maestro_gateway.a2a.errors import INTERNAL_ERROR
from maestro_gateway.approvals.models import approval_covers
from maestro_gateway.config import GatewayConfig, GuardsConfig, format_errors
from maestro_gateway.context import RequestContext
from maestro_gateway.grants.service import GrantService
from maestro_gateway.guards._ratelimit_backends import RateLimiter
from maestro_gateway.guards.approval import ApprovalGuard
from maestro_gateway.guards.authn import AuthnGuard
from maestro_gateway.guards.authz import AuthzGuard
from maestro_gateway.guards.delegation import DelegationGuard
from maestro_gateway.guards.dlp import DlpGuard
from maestro_gateway.guards.enforce import EnforceGuard
from maestro_gateway.guards.firewall import FirewallGuard
from maestro_gateway.guards.grants import GrantChecker, GrantsGuard
from maestro_gateway.guards.ratelimit import RateLimitGuard, build_limiter, release
from maestro_gateway.guards.sanitize import SanitizeGuard
from maestro_gateway.guards.validate import ValidateGuard
from maestro_gateway.guards.waf import WafGuard
from maestro_gateway.identity.authenticator import Authenticator
from maestro_gateway.identity.config import ExchangeConfig
from maestro_gateway.playbooks.enforcement import EnforcementState
from maestro_gateway.policy import PolicyBundle, PolicyError, PolicyRuntime
from maestro_gateway.types import ALLOW, JSON, FailMode, Guard, Verdict, VerdictKind

log = logging.getLogger("maestro_gateway.pipeline")


def ordered_guards(
    cfg: GuardsConfig,
    limiter: RateLimiter | None = None,
    policy: PolicyRuntime | None = None,
    enforcement: EnforcementState | None = None,
    authenticator: Authenticator | None = None,
    grants: GrantChecker | None = None,
    delegation: ExchangeConfig | None = None,
) -> list[Guard]:
    """Build the guards for one (agent, skill), in the order they run.

    The request phase runs top to bottom; the response and stream-event phases run in the same
    order (most guards act on one phase only). Each position, and why:

    1. enforce (C21) — first of all: a principal, source or token that a response playbook has
       blocked or revoked is refused before it costs anything and before it consumes any
       rate-limit budget; its checks are dict lookups.
    2. authn (C4) — before the rate limit: the principal must be known before a
       principal-keyed limit counts it (unauthenticated callers share the key `anonymous`;
       key a limit on `source` too to separate them), and a
       caller without a good credential, or with a login too weak for this agent or skill
       (RFC 9470 step-up), must not reach validation, content scanning, policy or the agent.
       With cached keys it costs a few µs; a first-seen token one signature check.
    3. enforce again (C21) — right after authn: playbook measures on the authenticated
       principal and the token's ``jti``, which step 1 cannot see yet.
    4. delegation (C16) — right after authn, only when the token exchange is on: a delegated
       token naming another agent, a skill outside its scope, no skill, or a chain longer than
       allowed is refused using only identity, method and skill id (set lookups).
    5. ratelimit (C6) — before any parsing-heavy work: refusing a flood must cost less than
       the checks it protects, and a caller flooding with malformed requests is limited too.
    6. validate (C1) — every later guard may assume a well-formed, size-bounded,
       Unicode-normalised A2A 1.0 request; malformed input is refused before any expensive
       work (content scanning, policy evaluation, upstream I/O).
    7. authz (C8) — Cedar decides over the validated method, agent, skill, task id and tenant;
       what the caller may not do is refused before content scanning, approval or upstream
       work is spent on it, and what it may not see is answered exactly as absence. On
       responses it binds new tasks to their creator and filters ListTasks.
    8. grants (C17) — a grant narrows what policy already allows (a JIT-only skill needs a
       live grant for this principal, agent, skill and task), so it is asked only about
       requests Cedar permits; a use spent on a request a later guard refuses is not refunded.
    9. waf (C7) — scores decoded values of a request known to be well-formed and bounded (its
       decoders never see unbounded input) and refuses injection payloads before the content
       guards or the agent see them.
    10. firewall (C2) — prompt injection is judged on a request already free of
       application-layer payloads, and before approval, which reads its score to hold
       grey-zone requests. On responses and stream events it runs before dlp and sanitize,
       so indirect injection is judged on what the agent actually sent.
    11. approval (C3) — after every guard that refuses outright (validate, authz, waf,
       firewall), so nothing a machine refuses waits for a human; it holds high-risk requests
       (skill risk, argument conditions, the firewall's grey zone, a playbook's approval
       requirement). The data plane holds any ESCALATE; ``Pipeline.request`` passes one only
       when ``ctx.extra["approval"]`` proves a human approved exactly this request.
    12. dlp (C19) — on responses just before sanitize: sensitive data the agent produced is
       redacted before the final transformation, so the sanitiser sees, and the client gets,
       the redacted text (on streams its held-back tail is re-joined first).
    13. sanitize (C23) — last: output neutralisation is the final transformation before a
       client sees a response or stream event (HTML, markdown links and images, terminal
       escapes, spreadsheet formulas); it does nothing on requests.
    """
    guards: list[Guard] = []
    if enforcement is not None:
        guards.append(EnforceGuard(enforcement))
    if cfg.authn.enabled and authenticator is not None and authenticator.configured:
        guards.append(AuthnGuard(cfg.authn, authenticator))
        if enforcement is not None:  # again, for the authenticated principal and jti (C21)
            guards.append(EnforceGuard(enforcement, after_authn=True))
        if delegation is not None and delegation.enabled:  # C16: delegated tokens' limits
            guards.append(DelegationGuard(delegation))
    if cfg.ratelimit.active and limiter is not None:
        guards.append(RateLimitGuard(cfg.ratelimit, limiter))
    if cfg.validate_.enabled:
        guards.append(ValidateGuard(cfg.validate_))
    if cfg.authz.enabled and policy is not None:
        guards.append(AuthzGuard(cfg.authz, policy))
    if cfg.grants.active and grants is not None:
        guards.append(GrantsGuard(cfg.grants, grants))
    if cfg.waf.enabled:
        guards.append(WafGuard(cfg.waf))
    if cfg.firewall.enabled:
        guards.append(FirewallGuard(cfg.firewall))
    if cfg.approval.enabled and (cfg.approval.active or enforcement is not None):
        guards.append(ApprovalGuard(cfg.approval, enforcement))
    if cfg.dlp.enabled:
        guards.append(DlpGuard(cfg.dlp))
    if cfg.sanitize.enabled:
        guards.append(SanitizeGuard(cfg.sanitize))
    return guards


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


class Pipeline:
    """Resolves and runs the guards for a request."""

    def __init__(self, cfg: GatewayConfig) -> None:
        self._cfg = cfg
        # One limiter per process, shared by every (agent, skill)'s rate-limit guard.
        self.limiter = build_limiter(cfg.guards.ratelimit.backend)
        # One policy engine and task-owner map per process, shared by every authz guard.
        self.policy = PolicyRuntime.from_config(
            cfg.policy, identity_required=cfg.guards.authn.required
        )
        # What response playbooks decided (C21), read by the enforce guard on every request.
        self.enforcement = EnforcementState()
        # One authenticator (JWKS caches, introspection cache, API keys) shared by every guard.
        self.authenticator = Authenticator(cfg.identity)
        # C17 just-in-time grants; the application starts its store and binds the audit log.
        self.grants = GrantService(cfg.grants)
        self._cache: dict[tuple[str, str | None], tuple[GuardsConfig, list[Guard]]] = {}
        self.base = self._resolve("", None)

    def _resolve(self, agent_id: str, skill_id: str | None) -> tuple[GuardsConfig, list[Guard]]:
        key = (agent_id, skill_id)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        data = _merge(self._cfg.guards.model_dump(by_alias=True), self.policy.guards_overlay)
        for override in self._cfg.guard_overrides:
            if override.agents and agent_id not in override.agents:
                continue
            if override.skills and skill_id not in override.skills:
                continue
            data = _merge(data, override.guards)
        guards_cfg = GuardsConfig.model_validate(data)
        resolved = (
            guards_cfg,
            ordered_guards(
                guards_cfg,
                self.limiter,
                self.policy,
                self.enforcement,
                self.authenticator,
                self.grants,
                self._cfg.identity.exchange,
            ),
        )
        if len(self._cache) < 10_000:
            self._cache[key] = resolved
        return resolved

    def settings(self, agent_id: str, skill_id: str | None = None) -> GuardsConfig:
        return self._resolve(agent_id, skill_id)[0]

    def guards(self, agent_id: str, skill_id: str | None) -> Sequence[Guard]:
        return self._resolve(agent_id, skill_id)[1]

    async def request(self, ctx: RequestContext) -> Verdict:
        """Run the request phase; mutations update ``ctx.params``. Returns ALLOW or the stop."""
        for guard in self.guards(ctx.agent_id, ctx.skill_id):
            try:
                verdict = await guard.on_request(ctx)
            except Exception as exc:  # a failing guard is a decision too: fail closed
                verdict = _on_failure(guard, exc, ctx)
            if verdict.kind is VerdictKind.ALLOW:
                continue
            if verdict.kind is VerdictKind.MUTATE:
                ctx.params = verdict.payload
                continue
            if verdict.kind is VerdictKind.ESCALATE and approval_covers(ctx):
                continue  # a human approved exactly this request (hash-bound, released once)
            ctx.extra["stopped_by"] = verdict  # for the detection hook (detect/observe.py)
            return verdict
        return ALLOW

    async def response(self, ctx: RequestContext, payload: JSON, stream: bool = False) -> Verdict:
        """Run the response (or stream-event) phase. ALLOW, MUTATE (final payload) or a stop."""
        current = payload
        mutated = False
        for guard in self.guards(ctx.agent_id, ctx.skill_id):
            try:
                if stream:
                    verdict = await guard.on_stream_event(ctx, current)
                else:
                    verdict = await guard.on_response(ctx, current)
            except Exception as exc:
                verdict = _on_failure(guard, exc, ctx)
            if verdict.kind is VerdictKind.ALLOW:
                continue
            if verdict.kind is VerdictKind.MUTATE:
                current, mutated = verdict.payload, True
                continue
            ctx.extra["stopped_by"] = verdict
            return verdict
        return Verdict.mutate(current) if mutated else ALLOW

    def install_bundle(self, bundle: PolicyBundle, guards_overlay: dict[str, Any]) -> None:
        """Swap in a new policy bundle and its guard settings, atomically for new requests.

        Raises PolicyError (and changes nothing) when the guard settings do not validate."""
        try:
            GuardsConfig.model_validate(
                _merge(self._cfg.guards.model_dump(by_alias=True), guards_overlay)
            )
        except ValidationError as exc:
            raise PolicyError(f"guards.yaml: {format_errors(exc)}") from None
        self.policy.guards_overlay = guards_overlay
        self.policy.engine.swap(bundle)
        self._cache = {}
        self.base = self._resolve("", None)

    async def close(self) -> None:
        await self.limiter.aclose()
        await self.authenticator.aclose()


async def finish(ctx: RequestContext) -> None:
    """Called once the response (or stream) has ended: give back what the request held."""
    await release(ctx)


def _on_failure(guard: Guard, exc: Exception, ctx: RequestContext) -> Verdict:
    log.error(
        "guard failed",
        extra={"guard": guard.name, "error": repr(exc), "request_id": ctx.request_id},
    )
    if guard.fail_mode is FailMode.FAIL_OPEN:
        return ALLOW
    return Verdict.deny(
        503,
        INTERNAL_ERROR,
        f"guard {guard.name!r} failed; request denied (fail-closed)",
        guard.name,
        rule="guard-failure",
    )
