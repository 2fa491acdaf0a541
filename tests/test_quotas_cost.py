"""C6 cost reported by the agent: units in a response header are charged to the caller's
rate-limit keys after the response, so the caller's next requests are limited."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from maestro_gateway.context import RequestContext
from maestro_gateway.demo.servers import serve_apps
from maestro_gateway.guards.ratelimit import (
    ManualClock,
    RateLimitGuard,
    RateLimitGuardConfig,
    build_limiter,
    charge_response,
)
from maestro_gateway.testing.echo_agent import agent_card
from maestro_gateway.types import Receive, Scope, Send
from tests.conftest import TIMEOUT, start_gateway

HEADERS = {"Content-Type": "application/json", "A2A-Version": "1.0"}
LIMIT: dict[str, Any] = {
    "name": "per-source",
    "key": ["source"],
    "rate": "10/s",
    "burst": 10,
    "cost": {"per_request": 1, "response_header": "X-Maestro-Cost"},
}


class CostlyAgent:
    """Answers SendMessage and reports ``cost`` units in an X-Maestro-Cost header."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.cost: str | None = "50"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-type", b"application/json")]
        if scope["method"] == "GET":
            body = orjson.dumps(agent_card(self.base_url))
        else:
            raw = b""
            while True:
                msg = await receive()
                raw += msg.get("body", b"")
                if not msg.get("more_body"):
                    break
            rid = orjson.loads(raw)["id"]
            result = {"message": {"messageId": "r", "role": "ROLE_AGENT", "parts": [{"text": "k"}]}}
            body = orjson.dumps({"jsonrpc": "2.0", "id": rid, "result": result})
            if self.cost is not None:
                headers.append((b"x-maestro-cost", self.cost.encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def rpc(rid: int) -> bytes:
    params = {"message": {"messageId": f"m{rid}", "role": "ROLE_USER", "parts": [{"text": "q"}]}}
    return orjson.dumps({"jsonrpc": "2.0", "id": rid, "method": "SendMessage", "params": params})


def guard(backend: dict[str, Any] | None = None) -> tuple[RateLimitGuard, ManualClock]:
    clock = ManualClock()
    cfg = RateLimitGuardConfig.model_validate({"limits": [LIMIT], "backend": backend or {}})
    return RateLimitGuard(cfg, build_limiter(cfg.backend, clock)), clock


def ctx() -> RequestContext:
    return RequestContext("r", "agent", "SendMessage", {}, client_addr="10.0.0.1")


async def test_reported_cost_is_debited_in_process() -> None:
    """50 units reported by the agent leave the 10-unit burst 5 s in debt: the next request
    is refused, and passes once the debt is paid."""
    g, clock = guard()
    first = ctx()
    assert (await g.on_request(first)).allowed
    await charge_response(first, {b"x-maestro-cost": b"50"})
    refused = await g.on_request(ctx())
    assert not refused.allowed
    assert refused.status == 429
    assert 4.0 < float(refused.details["retry_after"]) <= 5.0
    clock.advance(5.0)
    assert (await g.on_request(ctx())).allowed


async def test_bad_or_missing_cost_charges_nothing() -> None:
    """A missing, non-numeric, negative or infinite value charges nothing."""
    g, _ = guard()
    for value in (None, b"lots", b"-40", b"inf", b"nan"):
        c = ctx()
        assert (await g.on_request(c)).allowed
        await charge_response(c, {} if value is None else {b"x-maestro-cost": value})
    for _ in range(5):
        assert (await g.on_request(ctx())).allowed


async def test_cost_is_capped() -> None:
    """One response charges at most max_response_units."""
    cfg = RateLimitGuardConfig.model_validate(
        {"limits": [{**LIMIT, "cost": {**LIMIT["cost"], "max_response_units": 2}}]}
    )
    g = RateLimitGuard(cfg, build_limiter(cfg.backend, ManualClock()))
    c = ctx()
    assert (await g.on_request(c)).allowed
    await charge_response(c, {b"x-maestro-cost": b"1000000"})
    assert all([(await g.on_request(ctx())).allowed for _ in range(7)])  # 10 - 1 - 2 = 7 left
    assert not (await g.on_request(ctx())).allowed


async def test_reported_cost_is_debited_in_redis() -> None:
    """With the Redis backend the debit lands in Redis, so every gateway sees it."""
    backend = {"kind": "redis", "key_prefix": f"mgw-test:{uuid.uuid4().hex}:"}
    g, _ = guard(backend)
    other, _ = guard(backend)  # a second gateway process's limiter
    try:
        first = ctx()
        assert (await g.on_request(first)).allowed
        await charge_response(first, {b"x-maestro-cost": b"50"})
        refused = await other.on_request(ctx())
        assert refused.status == 429
    finally:
        await g.limiter.aclose()
        await other.limiter.aclose()


async def test_expensive_response_leads_to_429_on_next_call(tmp_path: Path) -> None:
    """Through a real gateway: an agent reporting 50 units makes the caller's next call 429;
    an agent reporting nothing leaves the budget alone."""
    holder: dict[str, CostlyAgent] = {}

    def make(base: str) -> CostlyAgent:
        holder["a"] = CostlyAgent(base)
        return holder["a"]

    agents = await serve_apps({"costly": make})
    gw = await start_gateway(tmp_path, agents.urls, guards={"ratelimit": {"limits": [LIMIT]}})
    url = f"{gw.url}/agents/costly"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as s:
            holder["a"].cost = None
            for rid in range(5):
                async with s.post(url, data=rpc(rid), headers=HEADERS) as resp:
                    assert resp.status == 200
            holder["a"].cost = "50"
            async with s.post(url, data=rpc(10), headers=HEADERS) as resp:
                assert resp.status == 200
            async with s.post(url, data=rpc(11), headers=HEADERS) as resp:
                assert resp.status == 429
                assert int(resp.headers["Retry-After"]) >= 4
                body = orjson.loads(await resp.read())
            assert body["error"]["data"][0]["metadata"]["rule"] == "per-source"
    finally:
        await gw.close()
        await agents.close()
