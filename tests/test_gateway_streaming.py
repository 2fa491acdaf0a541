"""SSE streams pass through event by event, and every event meets the stream-event guards."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest_asyncio

from maestro_gateway.context import RequestContext
from maestro_gateway.demo.servers import serve_apps
from maestro_gateway.types import ALLOW, JSON, FailMode, Verdict
from tests.conftest import TIMEOUT, RunningGateway, start_gateway
from tests.upstreams import SteppedStreamAgent

TASK = {"task": {"id": "t1", "contextId": "c1", "status": {"state": "TASK_STATE_WORKING"}}}


def chunk(text: str, last: bool = False) -> dict[str, Any]:
    return {
        "artifactUpdate": {
            "taskId": "t1",
            "contextId": "c1",
            "artifact": {"artifactId": "a", "parts": [{"text": text}]},
            "append": True,
            "lastChunk": last,
        }
    }


class ForbidWord:
    """A test guard: stops any stream event whose JSON contains FORBIDDEN."""

    name = "forbid"
    fail_mode = FailMode.FAIL_CLOSED

    def __init__(self) -> None:
        self.seen = 0

    async def on_request(self, ctx: RequestContext) -> Verdict:
        return ALLOW

    async def on_response(self, ctx: RequestContext, payload: JSON) -> Verdict:
        return ALLOW

    async def on_stream_event(self, ctx: RequestContext, event: JSON) -> Verdict:
        self.seen += 1
        if b"FORBIDDEN" in orjson.dumps(event):
            return Verdict.deny(403, -32004, "forbidden content in stream", self.name, rule="w")
        return ALLOW


class Env:
    def __init__(self, gateway: RunningGateway, agent: SteppedStreamAgent) -> None:
        self.gateway, self.agent = gateway, agent


@pytest_asyncio.fixture
async def env(tmp_path: Any) -> AsyncIterator[Env]:
    holder: dict[str, SteppedStreamAgent] = {}

    def make(base: str) -> SteppedStreamAgent:
        holder["a"] = SteppedStreamAgent(base)
        return holder["a"]

    upstreams = await serve_apps({"stepped": make})
    gateway = await start_gateway(tmp_path, {"stepped": upstreams.urls["stepped"]})
    try:
        yield Env(gateway, holder["a"])
    finally:
        holder["a"].release(100)
        await gateway.close()
        await upstreams.close()


def body() -> dict[str, Any]:
    message = {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "go"}]}
    return {
        "jsonrpc": "2.0",
        "id": 5,
        "method": "SendStreamingMessage",
        "params": {"message": message},
    }


async def events(resp: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    async for line in resp.content:
        if line.startswith(b"data:"):
            yield orjson.loads(line[5:])


async def test_events_arrive_one_by_one(env: Env) -> None:
    """Each event reaches the client before the agent has produced the next one."""
    env.agent.events = [TASK, chunk("a"), chunk("b", last=True)]
    headers = {"A2A-Version": "1.0"}
    env.agent.release()  # the response starts with the first event
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http,
        http.post(f"{env.gateway.url}/agents/stepped", json=body(), headers=headers) as resp,
    ):
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        stream = events(resp)
        for i, expected in enumerate((TASK, chunk("a"), chunk("b", last=True))):
            if i:
                env.agent.release()  # the agent may send exactly one more event
            event = await asyncio.wait_for(anext(stream), 5)
            assert event == {"jsonrpc": "2.0", "id": 5, "result": expected}


async def test_guard_sees_every_event_and_can_stop_the_stream(env: Env) -> None:
    """A stream-event guard sees each event; a denial ends the stream with an error event."""
    guard = ForbidWord()
    pipeline = env.gateway.app.pipeline
    pipeline._cache[("stepped", None)] = (pipeline.settings("stepped"), [guard])
    env.agent.events = [TASK, chunk("fine"), chunk("FORBIDDEN"), chunk("never", last=True)]
    env.agent.release(4)
    headers = {"A2A-Version": "1.0"}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http,
        http.post(f"{env.gateway.url}/agents/stepped", json=body(), headers=headers) as resp,
    ):
        got = [e async for e in events(resp)]
    assert [e.get("result") for e in got[:2]] == [TASK, chunk("fine")]
    assert got[2]["error"]["code"] == -32004
    assert got[2]["error"]["data"][0]["metadata"]["guard"] == "forbid"
    assert len(got) == 3
    assert guard.seen == 3


async def test_rest_stream_events_are_bare(env: Env) -> None:
    """Over the HTTP+JSON binding each SSE event is a bare StreamResponse."""
    env.agent.events = [TASK, chunk("x", last=True)]
    env.agent.release(2)
    headers = {"A2A-Version": "1.0"}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http,
        http.post(
            f"{env.gateway.url}/agents/stepped/rest/message:stream",
            json=body()["params"],
            headers=headers,
        ) as resp,
    ):
        got = [e async for e in events(resp)]
    assert got == [TASK, chunk("x", last=True)]
