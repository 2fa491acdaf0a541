"""C6 rate and concurrency limits, in-process backend, driven by a manual clock."""

from __future__ import annotations

import gc
import logging
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from pydantic import ValidationError

from maestro_gateway.a2a.errors import INTERNAL_ERROR
from maestro_gateway.context import RequestContext
from maestro_gateway.guards.ratelimit import (
    RATE_LIMITED,
    A2AMethod,
    ManualClock,
    RateLimitGuard,
    RateLimitGuardConfig,
    RateLimitRule,
    RateSpec,
    build_limiter,
    parse_rate,
    release,
    response_headers,
)
from maestro_gateway.requests import METHODS_10
from maestro_gateway.types import Verdict, VerdictKind


def make_guard(clock: ManualClock, **cfg: Any) -> RateLimitGuard:
    config = RateLimitGuardConfig.model_validate(cfg)
    return RateLimitGuard(config, build_limiter(config.backend, clock))


def ctx_for(
    principal: str | None = "alice", method: str = "SendMessage", **kw: Any
) -> RequestContext:
    extra = {"principal": principal} if principal is not None else {}
    return RequestContext("req-1", kw.pop("agent_id", "echo"), method, {}, extra=extra, **kw)


async def send(guard: RateLimitGuard, ctx: RequestContext | None = None) -> Verdict:
    """One request that ends at once (its concurrency slots are given back)."""
    ctx = ctx or ctx_for()
    verdict = await guard.on_request(ctx)
    await release(ctx)
    return verdict


def per_user(rate: str = "4/s", burst: float | None = None, **kw: Any) -> dict[str, Any]:
    return {"name": "per-user", "key": ["principal"], "rate": rate, "burst": burst, **kw}


# --- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "requests", "per"),
    [("100/s", 100, 1), ("6000/min", 6000, 60), ("10/hour", 10, 3600), ("2.5/days", 2.5, 86400)],
)
def test_rate_strings_parse(text: str, requests: float, per: float) -> None:
    """Rates written as 'N/unit' become requests per period in seconds."""
    assert parse_rate(text) == RateSpec(requests=requests, per_seconds=per)


@pytest.mark.parametrize("text", ["100", "0/s", "10/fortnight", "-1/s", "1/ms"])
def test_bad_rate_strings_are_refused(text: str) -> None:
    """A rate that is not 'N/unit' with a known unit and N > 0 is a configuration error."""
    with pytest.raises(ValidationError, match="rate"):
        RateLimitRule.model_validate({"name": "x", "key": ["principal"], "rate": text})


def test_config_is_strict() -> None:
    """Unknown fields, duplicate limit names, empty keys and unknown key fields are refused."""
    base = {"name": "a", "key": ["principal"], "rate": "1/s"}
    bad: list[dict[str, Any]] = [
        {"limits": [{**base, "bogus": 1}]},
        {"limits": [base], "concurrency": [{"name": "a", "key": ["agent"], "max_in_flight": 1}]},
        {"limits": [{**base, "key": []}]},
        {"limits": [{**base, "key": ["ip"]}]},
        {"limits": [{**base, "name": "has space"}]},
        {"backend": {"kind": "memcached"}},
    ]
    for data in bad:
        with pytest.raises(ValidationError):
            RateLimitGuardConfig.model_validate(data)
    cfg = RateLimitGuardConfig.model_validate(
        {"limits": [{**base, "rate": {"requests": 5, "per_seconds": 2}}]}
    )
    assert cfg.limits[0].spec() == RateSpec(requests=5, per_seconds=2)
    assert cfg.active
    assert not RateLimitGuardConfig().active


def test_config_survives_the_override_merge() -> None:
    """A dumped config validates back to itself, as the pipeline's guard_overrides merge needs."""
    cfg = RateLimitGuardConfig.model_validate(
        {
            "limits": [per_user("100/s", burst=10, methods=["SendMessage"])],
            "concurrency": [{"name": "c", "key": ["tenant", "agent"], "max_in_flight": 4}],
            "backend": {"kind": "redis", "on_failure": "local"},
        }
    )
    assert RateLimitGuardConfig.model_validate(cfg.model_dump(by_alias=True)) == cfg


def test_method_names_are_the_a2a_methods() -> None:
    """The methods a limit may name are exactly the A2A 1.0 methods the gateway accepts."""
    assert set(get_args(A2AMethod)) == METHODS_10


async def test_documented_example() -> None:
    """The example in docs/rate-limits.md validates and refuses alice's 21st request at once."""
    text = (Path(__file__).parent.parent / "docs" / "rate-limits.md").read_text()
    example = yaml.safe_load(text.split("```yaml\n", 1)[1].split("```", 1)[0])
    base = example["guards"]["ratelimit"] | {"backend": {}}  # in process, for the test
    for override in example["guard_overrides"]:
        RateLimitGuardConfig.model_validate(override["guards"]["ratelimit"])
    guard = make_guard(ManualClock(), **base)
    verdicts = [await send(guard, ctx_for(client_addr="10.0.0.1")) for _ in range(21)]
    assert [v.allowed for v in verdicts] == [True] * 20 + [False]
    assert verdicts[-1].reason == "rate limit 'per-principal' exceeded; retry after 0.1 s"


# --- GCRA ----------------------------------------------------------------------------------


async def test_burst_then_exact_retry_after() -> None:
    """A full burst passes, the next request is refused with retry_after = one interval exactly."""
    clock = ManualClock()
    guard = make_guard(clock, limits=[per_user("4/s", burst=3)])
    assert [(await send(guard)).allowed for _ in range(3)] == [True, True, True]
    refused = await send(guard)
    assert (refused.status, refused.code, refused.guard) == (429, RATE_LIMITED, "ratelimit")
    assert refused.details["rule"] == "per-user"
    assert refused.details["retry_after"] == 0.25
    clock.advance(0.25 - 1e-6)
    assert not (await send(guard)).allowed
    clock.advance(1e-6)
    assert (await send(guard)).allowed
    assert (await send(guard)).details["retry_after"] == 0.25


async def test_retry_after_is_exact_for_any_rate() -> None:
    """For a rate whose interval is not a binary fraction, waiting exactly retry_after passes."""
    clock = ManualClock()
    guard = make_guard(clock, limits=[per_user("3/s", burst=2)])
    await send(guard)
    await send(guard)
    clock.advance(0.1)
    refused = await send(guard)
    assert refused.details["retry_after"] == 0.234  # 1/3 - 0.1, rounded up to the millisecond
    clock.advance(1 / 3 - 0.1)
    assert (await send(guard)).allowed


async def test_idle_time_refills_up_to_the_burst() -> None:
    """After idling k intervals, k more requests pass, never more than the burst."""
    clock = ManualClock()
    guard = make_guard(clock, limits=[per_user("10/s", burst=5)])
    for _ in range(5):
        assert (await send(guard)).allowed
    clock.advance(0.3)
    assert [(await send(guard)).allowed for _ in range(4)] == [True, True, True, False]
    clock.advance(3600)
    assert sum([(await send(guard)).allowed for _ in range(10)]) == 5


async def test_sustained_rate_is_exact() -> None:
    """Under constant overload for 10 s, exactly burst + rate x 10 s requests pass."""
    clock = ManualClock()
    guard = make_guard(clock, limits=[per_user("50/s", burst=20)])
    start, allowed = clock.now, 0
    for ms in range(10_001):  # one request per millisecond from 0 to 10 s: 20 times the rate
        clock.now = start + ms / 1000
        allowed += (await send(guard)).allowed
    assert allowed == 20 + 50 * 10


async def test_default_burst_is_the_rate_quantity() -> None:
    """Without a burst, '6000/min' lets 6000 requests through at once, then one per 10 ms."""
    clock = ManualClock()
    guard = make_guard(clock, limits=[per_user("6000/min")])
    assert sum([(await send(guard)).allowed for _ in range(6001)]) == 6000
    assert (await send(guard)).details["retry_after"] == 0.01


async def test_body_size_cost() -> None:
    """With a per-KiB cost, a request's body size is charged against the burst."""
    clock = ManualClock()
    limit = per_user("100/s", burst=30, cost={"per_request": 1, "per_body_kb": 1})
    guard = make_guard(clock, limits=[limit])
    assert (await send(guard, ctx_for(body_size=19 * 1024))).allowed  # costs 20
    assert (await send(guard, ctx_for(body_size=9 * 1024))).allowed  # costs 10: 30 used
    refused = await send(guard, ctx_for(body_size=0))
    assert refused.details["retry_after"] == 0.01


async def test_request_costlier_than_the_burst_is_refused_outright() -> None:
    """A request whose cost exceeds a limit's burst can never pass: 413, nothing consumed."""
    clock = ManualClock()
    limit = per_user("100/s", burst=10, cost={"per_request": 0, "per_body_kb": 1})
    guard = make_guard(clock, limits=[limit])
    refused = await send(guard, ctx_for(body_size=11 * 1024))
    assert (refused.status, refused.details["rule"]) == (413, "per-user")
    assert (await send(guard, ctx_for(body_size=10 * 1024))).allowed


# --- combined limits ---------------------------------------------------------------------


async def test_refusal_by_one_limit_consumes_nothing_from_the_others() -> None:
    """Requests refused per user leave the agent-wide budget intact, and the reverse."""
    clock = ManualClock()
    agent_wide = {"name": "agent", "key": ["agent"], "rate": "4/s", "burst": 4}
    guard = make_guard(clock, limits=[per_user("2/s", burst=2), agent_wide])
    alice = [(await send(guard, ctx_for("alice"))) for _ in range(10)]
    assert [v.allowed for v in alice].count(True) == 2
    assert {v.details["rule"] for v in alice if not v.allowed} == {"per-user"}
    assert [(await send(guard, ctx_for("bob"))).allowed for _ in range(2)] == [True, True]
    carol = await send(guard, ctx_for("carol"))
    assert carol.details["rule"] == "agent"
    clock.advance(0.25)  # one request's worth for the agent, half a request for each user
    ctx = ctx_for("carol")
    assert (await guard.on_request(ctx)).allowed
    assert response_headers(ctx)[1] == ("RateLimit", '"per-user";r=1;t=1, "agent";r=0;t=1')


async def test_refusal_by_concurrency_consumes_no_rate() -> None:
    """A request refused for concurrency takes nothing from the rate limits."""
    clock = ManualClock()
    conc = {"name": "one-at-a-time", "key": ["principal"], "max_in_flight": 1}
    guard = make_guard(clock, limits=[per_user("1/hour", burst=3)], concurrency=[conc])
    held = ctx_for()
    assert (await guard.on_request(held)).allowed
    for _ in range(5):
        assert (await send(guard)).details["rule"] == "one-at-a-time"
    await release(held)
    assert [(await send(guard)).allowed for _ in range(3)] == [True, True, False]


async def test_worst_limit_sets_retry_after() -> None:
    """When several limits refuse, retry_after is the longest of their waits."""
    clock = ManualClock()
    slow = {"name": "slow", "key": ["agent"], "rate": "1/s", "burst": 1}
    guard = make_guard(clock, limits=[per_user("10/s", burst=1), slow])
    await send(guard)
    refused = await send(guard)
    assert (refused.details["rule"], refused.details["retry_after"]) == ("slow", 1.0)


# --- concurrency -----------------------------------------------------------------------------


async def test_concurrency_acquire_and_release() -> None:
    """In-flight requests beyond the maximum are refused until one is released."""
    clock = ManualClock()
    conc = {"name": "streams", "key": ["principal"], "max_in_flight": 2}
    guard = make_guard(clock, concurrency=[conc])
    first, second, third = ctx_for(), ctx_for(), ctx_for()
    assert (await guard.on_request(first)).allowed
    assert (await guard.on_request(second)).allowed
    refused = await guard.on_request(third)
    assert (refused.status, refused.details["rule"], refused.details["retry_after"]) == (
        429,
        "streams",
        1.0,
    )
    assert (await guard.on_request(ctx_for("bob"))).allowed  # other keys are independent
    await release(first)
    await release(first)  # idempotent
    assert (await guard.on_request(third)).allowed
    assert not (await guard.on_request(ctx_for())).allowed


async def test_concurrency_limit_applies_to_its_methods_only() -> None:
    """A limit listing methods leaves other methods alone."""
    clock = ManualClock()
    conc = {"name": "streams", "key": ["principal"], "max_in_flight": 1}
    guard = make_guard(
        clock, concurrency=[{**conc, "methods": ["SendStreamingMessage", "SubscribeToTask"]}]
    )
    stream, other, unary = (
        ctx_for(method=m) for m in ("SendStreamingMessage", "SubscribeToTask", "GetTask")
    )
    assert (await guard.on_request(stream)).allowed
    assert not (await guard.on_request(other)).allowed
    assert (await guard.on_request(unary)).allowed


async def test_forgotten_release_is_recovered_when_the_context_is_freed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A slot whose request context is dropped without release(ctx) comes back, with a warning."""
    clock = ManualClock()
    guard = make_guard(clock, concurrency=[{"name": "c", "key": ["agent"], "max_in_flight": 1}])
    ctx: RequestContext | None = ctx_for()
    assert ctx is not None
    assert (await guard.on_request(ctx)).allowed
    assert not (await guard.on_request(ctx_for())).allowed
    with caplog.at_level(logging.WARNING, "maestro_gateway.guards.ratelimit"):
        ctx = None
        gc.collect()
    assert "call release(ctx)" in caplog.text
    assert (await send(guard)).allowed


# --- verdicts, headers, metrics ----------------------------------------------------------------


async def test_refusal_carries_ietf_ratelimit_headers() -> None:
    """A refusal names the policy, zero remaining, and the wait in RateLimit and Retry-After."""
    clock = ManualClock()
    guard = make_guard(clock, limits=[per_user("100/min", burst=1)])
    await send(guard)
    refused = await send(guard)
    assert refused.kind is VerdictKind.DENY
    assert refused.reason == "rate limit 'per-user' exceeded; retry after 0.6 s"
    assert refused.details["headers"] == [
        ("RateLimit-Policy", '"per-user";q=100;w=60'),
        ("RateLimit", '"per-user";r=0;t=1'),
        ("Retry-After", "1"),
    ]


async def test_allowed_request_headers() -> None:
    """An allowed request reports each policy with what remains and when it is whole again."""
    clock = ManualClock()
    conc = {"name": "c", "key": ["principal"], "max_in_flight": 3}
    guard = make_guard(clock, limits=[per_user("10/min")], concurrency=[conc])
    ctx = ctx_for()
    await guard.on_request(ctx)
    assert response_headers(ctx) == [
        ("RateLimit-Policy", '"per-user";q=10;w=60, "c";q=3;qu="concurrent-requests"'),
        ("RateLimit", '"per-user";r=9;t=6, "c";r=2'),
    ]
    await release(ctx)
    assert response_headers(ctx) == []


async def test_decisions_are_counted_per_limit_and_outcome() -> None:
    """Each allowed request counts once per limit; a refusal counts against the refusing limit."""
    clock = ManualClock()
    agent_wide = {"name": "agent", "key": ["agent"], "rate": "100/s"}
    guard = make_guard(clock, limits=[per_user("1/s", burst=1), agent_wide])
    for _ in range(3):
        await send(guard)
    assert guard.limiter.decisions() == {
        ("per-user", "allowed", "memory"): 1,
        ("agent", "allowed", "memory"): 1,
        ("per-user", "denied", "memory"): 2,
    }


async def test_guard_phases_and_failure_mode() -> None:
    """Responses and stream events always pass; the configured fail mode is exposed."""
    guard = make_guard(ManualClock(), limits=[per_user()], fail_mode="fail_open")
    assert guard.fail_mode.value == "fail_open"
    assert (await guard.on_response(ctx_for(), {})).allowed
    assert (await guard.on_stream_event(ctx_for(), {})).allowed


async def test_backend_failure_verdict_shape() -> None:
    """The failure verdict is a 503 internal error naming the backend, never a pass."""
    guard = make_guard(
        ManualClock(),
        limits=[per_user()],
        backend={"kind": "redis", "url": "redis://127.0.0.1:1/0", "timeout_s": 0.2},
    )
    refused = await send(guard)
    assert (refused.status, refused.code) == (503, INTERNAL_ERROR)
    assert refused.details["rule"] == "backend-unavailable"
    await guard.limiter.aclose()


# --- keys and memory -----------------------------------------------------------------------------


async def test_keys_come_from_the_request_context() -> None:
    """Principal defaults to anonymous; route is binding plus method; key fields combine."""
    clock = ManualClock()
    limits = [
        {"name": "anon", "key": ["principal", "source"], "rate": "1/hour"},
        {"name": "route", "key": ["route", "tenant"], "rate": "2/hour"},
    ]
    guard = make_guard(clock, limits=limits)
    assert (await send(guard, ctx_for(None, client_addr="10.0.0.1"))).allowed
    assert not (await send(guard, ctx_for("anonymous", client_addr="10.0.0.1"))).allowed
    assert (await send(guard, ctx_for(None, client_addr="10.0.0.2"))).allowed
    for binding in ("jsonrpc", "rest"):
        for i in range(3):
            v = await send(guard, ctx_for(f"u{binding}{i}", binding=binding, tenant="t"))
            assert v.allowed == (i < 2), (binding, i)  # one bucket per binding


async def test_long_key_values_are_hashed() -> None:
    """A huge tenant string is stored as a short digest, and still keys its own bucket."""
    clock = ManualClock()
    guard = make_guard(clock, limits=[{"name": "t", "key": ["tenant"], "rate": "1/hour"}])
    assert (await send(guard, ctx_for(tenant="x" * 100_000))).allowed
    assert not (await send(guard, ctx_for(tenant="x" * 100_000))).allowed
    assert (await send(guard, ctx_for(tenant="x" * 99_999))).allowed
    table = guard.limiter.local._tables["t"]
    assert max(len(k[0]) for k in table) <= 128


async def test_memory_is_bounded_by_max_keys() -> None:
    """Past max_keys per limit, the least recently updated keys are evicted."""
    clock = ManualClock()
    guard = make_guard(clock, limits=[per_user("1/hour")], backend={"max_keys": 100})
    for i in range(1000):
        assert (await send(guard, ctx_for(f"user{i}"))).allowed
    assert guard.limiter.local.size() == 100
    assert guard.limiter.local.evicted == 900
    assert not (await send(guard, ctx_for("user999"))).allowed  # recent keys are kept


async def test_expired_keys_are_dropped() -> None:
    """Keys whose state has expired are dropped as new keys arrive, so idle keys cost nothing."""
    clock = ManualClock()
    guard = make_guard(clock, limits=[per_user("10/s", burst=10)])
    for i in range(1000):
        await send(guard, ctx_for(f"old{i}"))
    clock.advance(1.0)  # every old key is back to a full bucket: same as absent
    for i in range(1000):
        await send(guard, ctx_for(f"new{i}"))
    assert guard.limiter.local.size() == 1000
    assert guard.limiter.local.evicted == 0
