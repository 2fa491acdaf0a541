"""T3: per-agent upstream timeouts and the circuit breaker — one slow agent cannot starve
the others; its circuit opens, fails fast, and closes again after the cool-down."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from maestro_gateway.breaker import BreakerConfig, BreakerOpen, CircuitBreaker
from maestro_gateway.demo.servers import serve_apps
from maestro_gateway.guards.ratelimit import ManualClock
from maestro_gateway.types import Receive, Scope, Send
from maestro_gateway.upstream_http import HttpClient, UpstreamError
from tests.conftest import TIMEOUT, start_gateway
from tests.upstreams import RecordingAgent

HTTP_TIMEOUT = aiohttp.ClientTimeout(total=TIMEOUT)


class SlowAgent(RecordingAgent):
    """A RecordingAgent that waits ``delay`` seconds before answering a POST."""

    delay = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and self.delay:
            await asyncio.sleep(self.delay)
        await super().__call__(scope, receive, send)


def message(rid: int = 1) -> bytes:
    params = {"message": {"messageId": f"m{rid}", "role": "ROLE_USER", "parts": [{"text": "x"}]}}
    return orjson.dumps({"jsonrpc": "2.0", "id": rid, "method": "SendMessage", "params": params})


LAST_HEADERS: dict[str, str] = {}


async def post(session: aiohttp.ClientSession, url: str) -> tuple[int, Any, float]:
    """POST a SendMessage; the response headers are left in LAST_HEADERS."""
    started = time.perf_counter()
    headers = {"Content-Type": "application/json", "A2A-Version": "1.0"}
    async with session.post(url, data=message(), headers=headers) as resp:
        LAST_HEADERS.clear()
        LAST_HEADERS.update(resp.headers)
        return resp.status, orjson.loads(await resp.read()), time.perf_counter() - started


def state_of(b: CircuitBreaker) -> str:
    return b.state


def breaker(**kw: Any) -> tuple[CircuitBreaker, ManualClock]:
    clock = ManualClock()
    return CircuitBreaker(BreakerConfig(**kw), clock), clock


def test_opens_after_consecutive_failures_and_fails_fast() -> None:
    """Three failures in a row open the circuit; the next call is refused without trying."""
    b, _ = breaker(consecutive_failures=3, cooldown_s=10)
    for _ in range(3):
        b.permit().failure()
    assert state_of(b) == "open"
    with pytest.raises(BreakerOpen) as refused:
        b.permit()
    assert 9.9 < refused.value.retry_after <= 10


def test_success_resets_the_streak() -> None:
    """Failures separated by a success do not open the circuit."""
    b, _ = breaker(consecutive_failures=3)
    for _ in range(5):
        b.permit().failure()
        b.permit().failure()
        b.permit().success()
    assert state_of(b) == "closed"


def test_opens_on_failure_ratio_in_window() -> None:
    """Half the calls in the window failing (with enough calls) opens the circuit."""
    b, _clock = breaker(consecutive_failures=100, failure_ratio=0.5, min_calls=10, window_s=5)
    for _ in range(5):
        b.permit().success()
        b.permit().failure()
    assert state_of(b) == "open"
    b2, clock2 = breaker(consecutive_failures=100, failure_ratio=0.5, min_calls=10, window_s=5)
    for _ in range(5):
        b2.permit().failure()
        clock2.advance(6)  # old failures leave the window
        b2.permit().success()
    assert state_of(b2) == "closed"


def test_half_open_probe_closes_or_reopens() -> None:
    """After the cool-down one probe goes through: success closes, failure reopens."""
    b, clock = breaker(consecutive_failures=1, cooldown_s=2, half_open_probes=1)
    b.permit().failure()
    clock.advance(2)
    probe = b.permit()
    assert state_of(b) == "half_open"
    with pytest.raises(BreakerOpen):
        b.permit()
    probe.failure()
    assert state_of(b) == "open"
    clock.advance(2)
    b.permit().success()
    assert state_of(b) == "closed"
    assert b.opened == 2


async def test_slow_agent_trips_breaker_without_starving_fast_agent(tmp_path: Path) -> None:
    """Under concurrent load to a slow and a fast agent, the fast agent stays fast, the slow
    agent's calls time out after its own read timeout, its circuit opens and then fails fast
    with 503, and after the cool-down it recovers."""
    holder: dict[str, SlowAgent] = {}

    def make(name: str) -> Any:
        def factory(base: str) -> SlowAgent:
            holder[name] = SlowAgent(base)
            return holder[name]

        return factory

    agents = await serve_apps({"slow": make("slow"), "fast": make("fast")})
    per_agent = {
        "slow": {
            "read_timeout_s": 0.3,
            "breaker": {"consecutive_failures": 3, "cooldown_s": 1.5},
        }
    }
    gw = await start_gateway(tmp_path, agents.urls, upstream={"per_agent": per_agent})
    slow_url, fast_url = f"{gw.url}/agents/slow", f"{gw.url}/agents/fast"
    holder["slow"].delay = 5.0
    try:
        async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:

            async def fast_loop() -> list[float]:
                took = []
                for _ in range(30):
                    status, _, seconds = await post(session, fast_url)
                    assert status == 200
                    took.append(seconds)
                return took

            slow_calls = [post(session, slow_url) for _ in range(20)]
            results = await asyncio.gather(fast_loop(), *slow_calls)
            fast_times = sorted(results[0])
            slow = results[1:]
            # the fast agent never waited on the slow one
            assert fast_times[int(len(fast_times) * 0.99) - 1] < 0.25
            reasons = [body["error"]["data"][0]["reason"] for _, body, _ in slow]
            assert "UPSTREAM_TIMEOUT" in reasons
            assert all(r in ("UPSTREAM_TIMEOUT", "UPSTREAM_CIRCUIT_OPEN") for r in reasons)
            assert max(seconds for _, _, seconds in slow) < 1.5
            # open: refused at once with 503, the agent is not called
            before = len(holder["slow"].requests)
            status, body, seconds = await post(session, slow_url)
            assert status == 503
            assert seconds < 0.1
            assert body["error"]["data"][0]["reason"] == "UPSTREAM_CIRCUIT_OPEN"
            assert int(LAST_HEADERS["Retry-After"]) >= 1
            assert len(holder["slow"].requests) == before
            # the agent recovers; after the cool-down a probe closes the circuit
            holder["slow"].delay = 0.0
            await asyncio.sleep(1.6)
            status, body, _ = await post(session, slow_url)
            assert status == 200
            assert "result" in body
            assert gw.app.upstream.breaker("slow").state == "closed"  # type: ignore[union-attr]
    finally:
        await gw.close()
        await agents.close()


async def test_waiting_for_a_full_pool_is_bounded() -> None:
    """When every pooled connection to an agent is busy with a slow call, a new call fails
    with a timeout after the connect timeout instead of queueing without bound."""
    holder: dict[str, SlowAgent] = {}

    def make(base: str) -> SlowAgent:
        holder["a"] = SlowAgent(base)
        return holder["a"]

    agents = await serve_apps({"slow": make})
    holder["a"].delay = 2.0
    client = HttpClient(connect_timeout=0.3, read_timeout=5, limit_per_host=1)
    url, headers = agents.urls["slow"], {"Content-Type": "application/json"}
    try:
        busy = asyncio.create_task(client.request("POST", url, headers, message(), 10))
        await asyncio.sleep(0.1)
        started = time.perf_counter()
        with pytest.raises(UpstreamError) as failed:
            await client.request("POST", url, headers, message(), 10)
        assert failed.value.kind == "timeout"
        assert 0.25 < time.perf_counter() - started < 1.0
        (await busy).release()
    finally:
        await client.close()
        await agents.close()
