"""C6 rate and concurrency limits with the Redis backend, against the real Redis on loopback."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest_asyncio
from redis.asyncio import Redis

from maestro_gateway.a2a.errors import INTERNAL_ERROR
from maestro_gateway.context import RequestContext
from maestro_gateway.guards.ratelimit import (
    RATE_LIMITED,
    RateLimitGuard,
    RateLimitGuardConfig,
    build_limiter,
    release,
    response_headers,
)
from maestro_gateway.types import Verdict

REDIS_URL = "redis://127.0.0.1:6379/0"
CLOSED_PORT_URL = "redis://127.0.0.1:1/0"

GuardFactory = Callable[..., RateLimitGuard]


@pytest_asyncio.fixture
async def redis_client() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        await client.aclose()


@pytest_asyncio.fixture
async def prefix(redis_client: Redis) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    value = f"mgw-test:{uuid.uuid4().hex}:"
    yield value
    keys = [k async for k in redis_client.scan_iter(match=f"{value}*")]
    if keys:
        await redis_client.delete(*keys)


@pytest_asyncio.fixture
async def make_guard(prefix: str) -> AsyncIterator[GuardFactory]:
    """Builds guards on the Redis backend (each with its own limiter and connection pool)."""
    guards: list[RateLimitGuard] = []

    def factory(**cfg: Any) -> RateLimitGuard:
        backend = {"kind": "redis", "url": REDIS_URL, "key_prefix": prefix}
        backend |= cfg.pop("backend", {})
        config = RateLimitGuardConfig.model_validate({**cfg, "backend": backend})
        guard = RateLimitGuard(config, build_limiter(config.backend))
        guards.append(guard)
        return guard

    yield factory
    for guard in guards:
        await guard.limiter.aclose()


def ctx_for(principal: str = "alice", **kw: Any) -> RequestContext:
    return RequestContext("req-1", "echo", "SendMessage", {}, extra={"principal": principal}, **kw)


async def send(guard: RateLimitGuard, ctx: RequestContext | None = None) -> Verdict:
    ctx = ctx or ctx_for()
    verdict = await guard.on_request(ctx)
    await release(ctx)
    return verdict


def per_user(rate: str, burst: float | None = None) -> dict[str, Any]:
    return {"name": "per-user", "key": ["principal"], "rate": rate, "burst": burst}


async def timed(work: Awaitable[Verdict]) -> tuple[Verdict, float]:
    started = time.perf_counter()
    verdict = await work
    return verdict, time.perf_counter() - started


async def test_burst_then_retry_after(make_guard: GuardFactory) -> None:
    """A full burst passes; the next request is refused with at most one interval to wait."""
    guard = make_guard(limits=[per_user("10/s", burst=3)])
    started = time.perf_counter()
    assert [(await send(guard)).allowed for _ in range(3)] == [True, True, True]
    refused = await send(guard)
    elapsed = time.perf_counter() - started
    assert (refused.status, refused.code, refused.details["rule"]) == (
        429,
        RATE_LIMITED,
        "per-user",
    )
    assert 0.1 - elapsed - 0.005 <= refused.details["retry_after"] <= 0.1
    await asyncio.sleep(refused.details["retry_after"] + 0.002)
    assert (await send(guard)).allowed


async def test_state_is_shared_between_gateways(make_guard: GuardFactory) -> None:
    """Two gateway processes (two limiters) draw on one budget per key."""
    one, two = make_guard(limits=[per_user("1/hour", burst=4)]), None
    two = make_guard(limits=[per_user("1/hour", burst=4)])
    results = [(await send(g)).allowed for g in (one, two, one, two, one, two)]
    assert results == [True, True, True, True, False, False]


async def test_refusal_by_one_limit_consumes_nothing_from_the_others(
    make_guard: GuardFactory, prefix: str, redis_client: Redis
) -> None:
    """The Lua script writes no state unless every limit passes."""
    agent_wide = {"name": "agent", "key": ["agent"], "rate": "1/hour", "burst": 4}
    guard = make_guard(limits=[per_user("1/hour", burst=2), agent_wide])
    alice = [(await send(guard, ctx_for("alice"))).allowed for _ in range(10)]
    assert alice.count(True) == 2
    assert [(await send(guard, ctx_for("bob"))).allowed for _ in range(2)] == [True, True]
    carol = await send(guard, ctx_for("carol"))
    assert carol.details["rule"] == "agent"
    assert not await redis_client.exists(f"{prefix}r:per-user:carol")
    assert await redis_client.exists(f"{prefix}r:per-user:bob")


async def test_refusal_by_concurrency_consumes_no_rate(make_guard: GuardFactory) -> None:
    """A request refused for concurrency takes nothing from the rate limits."""
    conc = {"name": "one", "key": ["principal"], "max_in_flight": 1}
    guard = make_guard(limits=[per_user("1/hour", burst=3)], concurrency=[conc])
    held = ctx_for()
    assert (await guard.on_request(held)).allowed
    for _ in range(5):
        assert (await send(guard)).details["rule"] == "one"
    await release(held)
    assert [(await send(guard)).allowed for _ in range(3)] == [True, True, False]


async def test_concurrency_acquire_release_and_headers(make_guard: GuardFactory) -> None:
    """Slots are taken up to the maximum, reported in headers, and come back on release."""
    guard = make_guard(concurrency=[{"name": "c", "key": ["principal"], "max_in_flight": 2}])
    first, second = ctx_for(), ctx_for()
    assert (await guard.on_request(first)).allowed
    assert (await guard.on_request(second)).allowed
    assert response_headers(second)[1] == ("RateLimit", '"c";r=0')
    refused = await guard.on_request(ctx_for())
    assert (refused.status, refused.details["rule"]) == (429, "c")
    await release(first)
    third = ctx_for()
    assert (await guard.on_request(third)).allowed
    await release(second)
    await release(third)


async def test_lost_slots_expire_with_their_lease(make_guard: GuardFactory) -> None:
    """A slot never released (a gateway that died) is free again once its lease ends."""
    guard = make_guard(
        concurrency=[{"name": "c", "key": ["principal"], "max_in_flight": 1}],
        backend={"lease_s": 0.2},
    )
    held = ctx_for()
    assert (await guard.on_request(held)).allowed
    held.extra.pop("ratelimit").released = True  # as if the process had died
    assert not (await guard.on_request(ctx_for())).allowed
    await asyncio.sleep(0.25)
    assert (await send(guard)).allowed


async def test_stream_events_renew_the_lease(make_guard: GuardFactory) -> None:
    """An open stream keeps its slot past the first lease by renewing it on events."""
    guard = make_guard(
        concurrency=[{"name": "c", "key": ["principal"], "max_in_flight": 1}],
        backend={"lease_s": 0.6},
    )
    stream = ctx_for()
    assert (await guard.on_request(stream)).allowed
    await asyncio.sleep(0.3)  # an event after lease_s / 3 renews the lease
    assert (await guard.on_stream_event(stream, {})).allowed
    await guard.limiter.drain()
    await asyncio.sleep(0.45)  # past the first lease, well within the renewed one
    assert not (await guard.on_request(ctx_for())).allowed
    await release(stream)
    assert (await send(guard)).allowed


async def test_rate_limit_is_atomic_under_concurrency(make_guard: GuardFactory) -> None:
    """Four gateways firing 300 concurrent requests each never let more than the burst through."""
    guards = [make_guard(limits=[per_user("1/hour", burst=100)]) for _ in range(4)]
    verdicts = await asyncio.gather(*(send(g) for g in guards for _ in range(300)))
    allowed = sum(v.allowed for v in verdicts)
    assert 100 <= allowed <= 101  # the limit + 1 %; GCRA in one script makes it exact


async def test_concurrency_limit_is_atomic_under_concurrency(make_guard: GuardFactory) -> None:
    """Four gateways racing for 10 slots get exactly 10 between them."""
    conc = {"name": "c", "key": ["agent"], "max_in_flight": 10}
    guards = [make_guard(concurrency=[conc]) for _ in range(4)]
    contexts = [(g, ctx_for(f"u{i}")) for g in guards for i in range(50)]
    verdicts = await asyncio.gather(*(g.on_request(c) for g, c in contexts))
    assert sum(v.allowed for v in verdicts) == 10
    await asyncio.gather(*(release(ctx) for _, ctx in contexts))


async def test_redis_down_denies_by_default(make_guard: GuardFactory) -> None:
    """With Redis unreachable, requests are refused with 503, and quickly after the first."""
    guard = make_guard(limits=[per_user("100/s")], backend={"url": CLOSED_PORT_URL})
    first, _ = await timed(send(guard))
    assert (first.status, first.code, first.details["rule"]) == (
        503,
        INTERNAL_ERROR,
        "backend-unavailable",
    )
    assert "fail-closed" in first.reason
    second, took = await timed(send(guard))
    assert second.status == 503
    assert took < 0.01  # Redis is not tried again before retry_interval_s
    assert guard.limiter.decisions() == {("per-user", "unavailable", "redis"): 2}


async def test_redis_down_falls_back_to_local_limits(make_guard: GuardFactory) -> None:
    """With on_failure: local, this process enforces the limits alone while Redis is down."""
    guard = make_guard(
        limits=[per_user("1/hour", burst=2)],
        backend={"url": CLOSED_PORT_URL, "on_failure": "local"},
    )
    assert [(await send(guard)).allowed for _ in range(3)] == [True, True, False]
    counts = guard.limiter.decisions()
    assert counts[("per-user", "allowed", "local-fallback")] == 2
    assert counts[("per-user", "denied", "local-fallback")] == 1
    assert counts[("per-user", "unavailable", "redis")] == 3


async def test_redis_recovers_after_the_retry_interval(make_guard: GuardFactory) -> None:
    """Once Redis answers again, decisions go back to it after retry_interval_s."""
    guard = make_guard(limits=[per_user("100/s")], backend={"retry_interval_s": 0.3})
    redis = guard.limiter.redis
    assert redis is not None
    good_client = redis._client
    redis._client = Redis.from_url(CLOSED_PORT_URL)  # the same backend, pointed at nothing
    assert (await send(guard)).status == 503
    await redis._client.aclose()
    redis._client = good_client
    assert (await send(guard)).status == 503  # still within the retry interval
    await asyncio.sleep(0.35)
    assert (await send(guard)).allowed
