"""The guard pipeline. THE one place where the order of guards lives.

Guards are built per (agent, skill) from the base configuration plus any matching
``guard_overrides`` (later overrides win), and cached.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from maestro_gateway.a2a.errors import INTERNAL_ERROR
from maestro_gateway.config import GatewayConfig, GuardsConfig
from maestro_gateway.context import RequestContext
from maestro_gateway.guards._ratelimit_backends import RateLimiter
from maestro_gateway.guards.ratelimit import RateLimitGuard, build_limiter, release
from maestro_gateway.guards.sanitize import SanitizeGuard
from maestro_gateway.guards.validate import ValidateGuard
from maestro_gateway.guards.waf import WafGuard
from maestro_gateway.types import ALLOW, JSON, FailMode, Guard, Verdict, VerdictKind

log = logging.getLogger("maestro_gateway.pipeline")


def ordered_guards(cfg: GuardsConfig, limiter: RateLimiter | None = None) -> list[Guard]:
    """Build the guards for one (agent, skill), in the order they run.

    Request phase runs top to bottom; response and stream-event phases run in the same order.
    1. ratelimit (C6) — first: refusing a flood must cost less than any other check, and a
       caller who floods with malformed requests is limited too. Its keys (source, agent,
       skill, tenant, method) are known before validation; the principal once identity lands
       (identity will sit before it, as authentication is what a principal's limit counts).
    2. validate (C1) — before everything else: every later guard may assume a well-formed,
       size-bounded, Unicode-normalised A2A 1.0 request, and malformed input is refused before
       any expensive work (content scanning, policy evaluation, upstream I/O).
    3. waf (C7) — right after validate: it scores decoded values of a request that is known to
       be well-formed and bounded (so its decoders cannot be fed unbounded input), and refuses
       injection payloads before any authorization or content guard or the agent sees them.
    Authorization and content guards (C2, C3, C8, C19) take their places between waf and
    sanitize as they land; their positions and reasons are written here.
    last. sanitize (C23) — output neutralisation is the final transformation before a client
       sees a response or stream event: whatever earlier guards allowed or rewrote, the client
       gets it with HTML, markdown links/images, terminal escapes and spreadsheet formulas made
       safe (it does nothing on requests).
    """
    guards: list[Guard] = []
    if cfg.ratelimit.active and limiter is not None:
        guards.append(RateLimitGuard(cfg.ratelimit, limiter))
    if cfg.validate_.enabled:
        guards.append(ValidateGuard(cfg.validate_))
    if cfg.waf.enabled:
        guards.append(WafGuard(cfg.waf))
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
        self._cache: dict[tuple[str, str | None], tuple[GuardsConfig, list[Guard]]] = {}
        self.base = self._resolve("", None)

    def _resolve(self, agent_id: str, skill_id: str | None) -> tuple[GuardsConfig, list[Guard]]:
        key = (agent_id, skill_id)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        data = self._cfg.guards.model_dump(by_alias=True)
        for override in self._cfg.guard_overrides:
            if override.agents and agent_id not in override.agents:
                continue
            if override.skills and skill_id not in override.skills:
                continue
            data = _merge(data, override.guards)
        guards_cfg = GuardsConfig.model_validate(data)
        resolved = (guards_cfg, ordered_guards(guards_cfg, self.limiter))
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
            return verdict
        return Verdict.mutate(current) if mutated else ALLOW

    async def close(self) -> None:
        await self.limiter.aclose()


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
