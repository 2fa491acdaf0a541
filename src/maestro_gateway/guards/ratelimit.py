"""C6 rate and concurrency limits (threat T3: resource exhaustion / denial of wallet).

Rate limits are GCRA (see ``_ratelimit_backends``), keyed by any mix of principal, tenant,
agent, skill, source address, route and method; a request must pass every limit that applies,
and one refused by any limit consumes nothing from the others. Concurrency limits count
in-flight requests and open streams: the slot is taken here and given back by ``release(ctx)``,
which the data plane calls in a ``finally`` when the response or stream ends.

State is in process memory (default) or in Redis (one atomic Lua script per decision). When
Redis fails, requests are refused with 503 (``on_failure: deny``) or decided by this process
alone (``on_failure: local``).

Cost (``on_request`` + ``release``, best of 7 tight loops of 100,000 requests over 1,000
principals, CPython 3.11 + uvloop on the 2-vCPU VM of docs/performance.md): in process,
3.2 µs for one limit keyed by principal and 5.3 µs for two rate limits plus one concurrency
limit; with Redis on loopback, 75-110 µs of gateway CPU per decision (mostly redis-py: a bare
PING costs about 60 µs), one round trip, plus one more to release a concurrency slot.
See docs/rate-limits.md.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from maestro_gateway.a2a.errors import INTERNAL_ERROR
from maestro_gateway.a2a.methods import A2AMethod
from maestro_gateway.context import RequestContext
from maestro_gateway.guards._ratelimit_backends import (
    ConcItem,
    ConcurrencyLimit,
    Decision,
    GcraLimit,
    ManualClock,
    MemoryBackend,
    RateItem,
    RateLimiter,
    retry_after_s,
)
from maestro_gateway.guards._ratelimit_config import (
    ConcurrencyLimitRule,
    LimitCost,
    RateLimitBackendConfig,
    RateLimitGuardConfig,
    RateLimitRule,
    RateSpec,
    parse_rate,
)
from maestro_gateway.guards._ratelimit_redis import RedisBackend
from maestro_gateway.types import ALLOW, JSON, FailMode, Verdict

__all__ = [
    "RATE_LIMITED",
    "A2AMethod",
    "ConcurrencyLimitRule",
    "LimitCost",
    "ManualClock",
    "RateLimitBackendConfig",
    "RateLimitGuard",
    "RateLimitGuardConfig",
    "RateLimitRule",
    "RateLimiter",
    "RateSpec",
    "build_limiter",
    "charge_response",
    "parse_rate",
    "release",
    "response_headers",
]

NAME = "ratelimit"
RATE_LIMITED = -32090
"""JSON-RPC error code for a refused request: implementation-defined server-error range
(-32000..-32099), unused by A2A (which has -32001..-32009). Sent with HTTP 429."""

log = logging.getLogger("maestro_gateway.guards.ratelimit")


def build_limiter(
    cfg: RateLimitBackendConfig, clock: Callable[[], float] = time.monotonic
) -> RateLimiter:
    """The one RateLimiter of a process, from the base ``guards.ratelimit.backend``."""
    redis = None
    if cfg.kind == "redis":
        redis = RedisBackend(cfg.url, cfg.key_prefix, cfg.timeout_s, cfg.pool_size, cfg.lease_s)
    return RateLimiter(
        MemoryBackend(clock, cfg.max_keys),
        redis,
        on_failure=cfg.on_failure,
        retry_interval_s=cfg.retry_interval_s,
        lease_s=cfg.lease_s,
    )


def _clip(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= 128 else "#" + hashlib.sha256(text.encode()).hexdigest()[:32]


def _principal(c: RequestContext) -> str:
    value = c.extra.get("principal") or "anonymous"
    return value if type(value) is str and len(value) <= 128 else _clip(value)


_FIELDS: dict[str, Callable[[RequestContext], str]] = {
    "principal": _principal,
    "tenant": lambda c: _clip(c.tenant or ""),
    "agent": lambda c: c.agent_id,
    "skill": lambda c: _clip(c.skill_id or ""),
    "source": lambda c: c.client_addr,
    "route": lambda c: f"{c.binding}:{c.method}",
    "method": lambda c: c.method,
}


def _key_function(fields: Sequence[str]) -> Callable[[RequestContext], tuple[str, ...]]:
    getters = [_FIELDS[f] for f in fields]
    if len(getters) == 1:
        (g0,) = getters
        return lambda c: (g0(c),)
    if len(getters) == 2:
        g0, g1 = getters
        return lambda c: (g0(c), g1(c))
    return lambda c: tuple([g(c) for g in getters])


class _Held:
    """What a request took (kept in ``ctx.extra["ratelimit"]``): for headers and release."""

    __slots__ = (
        "charges",
        "concs",
        "decision",
        "limiter",
        "policies",
        "rates",
        "refreshed",
        "released",
    )

    def __init__(
        self,
        limiter: RateLimiter,
        rates: list[RateItem],
        concs: list[ConcItem],
        d: Decision,
        policies: list[str],
    ) -> None:
        self.limiter, self.rates, self.concs, self.decision = limiter, rates, concs, d
        self.policies = policies
        self.released = not concs
        self.refreshed = time.monotonic() if concs else 0.0
        self.charges: list[tuple[GcraLimit, tuple[str, ...], bytes, float]] = []

    async def release(self) -> None:
        if not self.released:
            self.released = True
            await self.limiter.release(self.decision, self.concs)


class _HeldSlots(_Held):
    """A _Held with concurrency slots: if the data plane never calls release(ctx), the slots
    come back when the request context is freed (and Redis leases expire regardless)."""

    __slots__ = ()

    def __del__(self) -> None:
        if not self.released:
            self.released = True
            log.warning("concurrency slot released on garbage collection: call release(ctx)")
            self.limiter.release_soon(self.decision, self.concs)


class _Rule:
    """A rule compiled for the hot path."""

    __slots__ = (
        "header",
        "key",
        "limit",
        "max_units",
        "methods",
        "per_kb",
        "per_request",
        "policy",
    )

    def __init__(self, fields: Sequence[str], methods: Sequence[str], policy: str) -> None:
        self.key = _key_function(fields)
        self.methods = frozenset(methods)
        self.policy = policy
        self.per_request = self.per_kb = 0.0
        self.limit: Any = None
        self.header: bytes | None = None  # response header with units to charge afterwards
        self.max_units = 0.0


def _num(x: float) -> str:
    return str(int(x)) if x == int(x) else repr(x)


class RateLimitGuard:
    """C6: refuses requests over their rate or concurrency limits (429, code -32090)."""

    name = NAME

    def __init__(self, cfg: RateLimitGuardConfig, limiter: RateLimiter | None = None) -> None:
        self.cfg = cfg
        self.fail_mode = FailMode(cfg.fail_mode)
        self.limiter = limiter if limiter is not None else build_limiter(cfg.backend)
        self._rates: list[_Rule] = []
        for r in cfg.limits:
            spec = r.spec()
            interval = spec.per_seconds / spec.requests
            burst = spec.requests if r.burst is None else r.burst
            q, w = _num(spec.requests), math.ceil(spec.per_seconds)
            rule = _Rule(r.key, r.methods, f'"{r.name}";q={q};w={w}')
            rule.limit = GcraLimit(r.name, interval, burst * interval)
            rule.per_request, rule.per_kb = r.cost.per_request, r.cost.per_body_kb / 1024
            if r.cost.response_header:
                rule.header = r.cost.response_header.lower().encode("ascii")
                rule.max_units = r.cost.max_response_units
            self._rates.append(rule)
        self._concs: list[_Rule] = []
        for c in cfg.concurrency:
            policy = f'"{c.name}";q={c.max_in_flight};qu="concurrent-requests"'
            rule = _Rule(c.key, c.methods, policy)
            rule.limit = ConcurrencyLimit(c.name, c.max_in_flight)
            self._concs.append(rule)
        self._by_method: dict[str, tuple[list[_Rule], list[_Rule], list[str]]] = {}

    def _rules(self, method: str) -> tuple[list[_Rule], list[_Rule], list[str]]:
        hit = self._by_method.get(method)
        if hit is None:
            rates = [r for r in self._rates if not r.methods or method in r.methods]
            concs = [c for c in self._concs if not c.methods or method in c.methods]
            hit = (rates, concs, [r.policy for r in (*rates, *concs)])
            if len(self._by_method) < 256:
                self._by_method[method] = hit
        return hit

    async def on_request(self, ctx: RequestContext) -> Verdict:
        rate_rules, conc_rules, policies = self._rules(ctx.method)
        if not rate_rules and not conc_rules:
            return ALLOW
        rates: list[RateItem] = []
        for rule in rate_rules:
            limit = rule.limit
            increment = (rule.per_request + rule.per_kb * ctx.body_size) * limit.interval
            if increment > limit.tolerance + 1e-9:
                reason = f"request cost exceeds the burst of rate limit {limit.name!r}"
                return Verdict.deny(413, RATE_LIMITED, reason, NAME, rule=limit.name)
            rates.append((limit, rule.key(ctx), increment))
        concs: list[ConcItem] = [(c.limit, c.key(ctx)) for c in conc_rules]
        limiter = self.limiter
        if limiter.redis is None:
            d: Decision | None = limiter.decide_local(rates, concs)
        else:
            d = await limiter.acquire(rates, concs)
        if d is None:
            reason = "rate-limit backend unavailable; request denied (fail-closed)"
            headers = [("Retry-After", "1")]
            return Verdict.deny(
                503, INTERNAL_ERROR, reason, NAME, rule="backend-unavailable", headers=headers
            )
        if not d.allowed:
            return _refusal((*rate_rules, *conc_rules)[d.index], d, d.index < len(rates))
        held = (_HeldSlots if concs else _Held)(limiter, rates, concs, d, policies)
        for rule, (limit, key, _) in zip(rate_rules, rates, strict=True):
            if rule.header is not None:
                held.charges.append((limit, key, rule.header, rule.max_units))
        ctx.extra["ratelimit"] = held
        return ALLOW

    async def on_response(self, ctx: RequestContext, payload: JSON) -> Verdict:
        return ALLOW

    async def on_stream_event(self, ctx: RequestContext, event: JSON) -> Verdict:
        held = ctx.extra.get("ratelimit")
        if (
            isinstance(held, _Held)
            and not held.released
            and time.monotonic() - held.refreshed > self.limiter.lease_s / 3
        ):
            held.refreshed = time.monotonic()
            self.limiter.refresh(held.decision, held.concs)
        return ALLOW


def _refusal(rule: _Rule, d: Decision, by_rate: bool) -> Verdict:
    name = rule.limit.name
    retry = retry_after_s(d.wait) if by_rate else 1.0  # a slot frees when some request ends
    t = max(1, math.ceil(retry))
    headers = [
        ("RateLimit-Policy", rule.policy),
        ("RateLimit", f'"{name}";r=0;t={t}'),
        ("Retry-After", str(t)),
    ]
    kind = "rate" if by_rate else "concurrency"
    reason = f"{kind} limit {name!r} exceeded; retry after {retry:g} s"
    return Verdict.deny(
        429, RATE_LIMITED, reason, NAME, rule=name, retry_after=retry, headers=headers
    )


async def release(ctx: RequestContext) -> None:
    """Give back the concurrency slots a request holds. Idempotent; raises nothing but
    cancellation.

    The data plane awaits this in a ``finally`` once the response (or the stream) has ended.
    In-process slots come back at once; a Redis slot costs one round trip, completed even if
    the caller is cancelled meanwhile.
    """
    held = ctx.extra.pop("ratelimit", None)
    if isinstance(held, _Held) and not held.released:
        await held.release()


async def charge_response(ctx: RequestContext, headers: Mapping[bytes, bytes]) -> None:
    """Charge the units an agent reported in its response (``cost.response_header``) to the
    caller's keys of the limits that asked for it: a GCRA debit, so the caller's next requests
    wait until it is paid. Missing, non-numeric or negative values charge nothing; each is
    capped at ``max_response_units``. Never raises (the response is already on its way)."""
    held = ctx.extra.get("ratelimit")
    if not isinstance(held, _Held) or not held.charges or not headers:
        return
    items: list[RateItem] = []
    for limit, key, header, cap in held.charges:
        raw = headers.get(header)
        if raw is None:
            continue
        try:
            units = float(raw.strip())
        except ValueError:
            log.warning("agent cost header is not a number", extra={"limit": limit.name})
            continue
        if math.isfinite(units) and units > 0:
            items.append((limit, key, min(units, cap) * limit.interval))
    if items:
        await held.limiter.debit(held.decision, items)


def response_headers(ctx: RequestContext) -> list[tuple[str, str]]:
    """``RateLimit-Policy`` and ``RateLimit`` for an allowed request (empty if none applied)."""
    held = ctx.extra.get("ratelimit")
    if not isinstance(held, _Held):
        return []
    d = held.decision
    states = []
    for (limit, _, _), tat in zip(held.rates, d.tats, strict=True):
        debt = max(0.0, tat - d.now)
        remaining = max(0, math.floor((limit.tolerance - debt) / limit.interval + 1e-9))
        states.append(f'"{limit.name}";r={remaining};t={math.ceil(debt - 1e-9)}')
    for (climit, _), count in zip(held.concs, d.counts, strict=True):
        states.append(f'"{climit.name}";r={max(0, climit.max_in_flight - count)}')
    return [("RateLimit-Policy", ", ".join(held.policies)), ("RateLimit", ", ".join(states))]
