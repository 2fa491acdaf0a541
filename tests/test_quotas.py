"""C22 per-agent quotas against real loopback agents: task duration and stream bytes end the
stream and cancel the task upstream; concurrent tasks beyond the quota are refused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio

from maestro_gateway.demo.servers import AgentServers, serve_apps
from maestro_gateway.quotas import QUOTA_EXCEEDED, task_id_of
from maestro_gateway.testing.echo_agent import agent_card
from maestro_gateway.types import Receive, Scope, Send
from tests.conftest import TIMEOUT, RunningGateway, start_gateway

HTTP_TIMEOUT = aiohttp.ClientTimeout(total=TIMEOUT)
JSON = [(b"content-type", b"application/json")]


class EndlessTaskAgent:
    """Streams a task that never finishes (an update every ``interval`` s, ``pad`` bytes of
    text each, at most 100), answers SendMessage with ``reply`` and records every CancelTask."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.interval = 0.1
        self.pad = 10
        self.reply: Any = {"task": {"id": "u-1", "status": {"state": "TASK_STATE_COMPLETED"}}}
        self.cancels: list[Any] = []
        self.streams = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":
            await send({"type": "http.response.start", "status": 200, "headers": JSON})
            body = orjson.dumps(agent_card(self.base_url))
            await send({"type": "http.response.body", "body": body})
            return
        raw = b""
        while True:
            msg = await receive()
            raw += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        req = orjson.loads(raw)
        if req["method"] == "SendStreamingMessage":
            return await self._stream(req["id"], send)
        if req["method"] == "CancelTask":
            self.cancels.append(req["params"])
            result: Any = {"id": req["params"]["id"], "status": {"state": "TASK_STATE_CANCELED"}}
        else:
            result = self.reply
        await send({"type": "http.response.start", "status": 200, "headers": JSON})
        body = orjson.dumps({"jsonrpc": "2.0", "id": req["id"], "result": result})
        await send({"type": "http.response.body", "body": body})

    async def _stream(self, rid: Any, send: Send) -> None:
        self.streams += 1
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        task = {"id": "t-1", "contextId": "c-1", "status": {"state": "TASK_STATE_WORKING"}}
        events: list[Any] = [{"task": task}]
        for i in range(100):
            for result in events:
                data = orjson.dumps({"jsonrpc": "2.0", "id": rid, "result": result})
                await send(
                    {
                        "type": "http.response.body",
                        "body": b"data: " + data + b"\n\n",
                        "more_body": True,
                    }
                )
            await asyncio.sleep(self.interval)
            text = f"step {i} " + "x" * self.pad
            status = {
                "state": "TASK_STATE_WORKING",
                "message": {"messageId": f"s{i}", "role": "ROLE_AGENT", "parts": [{"text": text}]},
            }
            events = [{"statusUpdate": {"taskId": "t-1", "contextId": "c-1", "status": status}}]
        await send({"type": "http.response.body", "body": b""})


class Env:
    def __init__(self, gw: RunningGateway, agent: EndlessTaskAgent) -> None:
        self.gw, self.agent = gw, agent


def rpc(method: str, rid: int = 1) -> bytes:
    params = {"message": {"messageId": f"m{rid}", "role": "ROLE_USER", "parts": [{"text": "go"}]}}
    return orjson.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})


HEADERS = {"Content-Type": "application/json", "A2A-Version": "1.0"}


@pytest_asyncio.fixture
async def env(tmp_path: Path, request: Any) -> AsyncIterator[Env]:
    holder: dict[str, EndlessTaskAgent] = {}

    def make(base: str) -> EndlessTaskAgent:
        holder["a"] = EndlessTaskAgent(base)
        return holder["a"]

    agents: AgentServers = await serve_apps({"busy": make})
    upstream = {"per_agent": {"busy": request.param}}
    gw = await start_gateway(tmp_path, agents.urls, upstream=upstream)
    try:
        yield Env(gw, holder["a"])
    finally:
        await gw.close()
        await agents.close()


async def read_stream(session: aiohttp.ClientSession, url: str) -> list[Any]:
    """Every SSE event of a streaming call, decoded."""
    events = []
    async with session.post(url, data=rpc("SendStreamingMessage"), headers=HEADERS) as resp:
        assert resp.status == 200
        async for line in resp.content:
            if line.startswith(b"data: "):
                events.append(orjson.loads(line[6:]))
    return events


def quota_of(event: Any) -> str:
    error = event["error"]
    assert error["code"] == QUOTA_EXCEEDED
    info = error["data"][0]
    assert info["reason"] == "QUOTA_EXCEEDED"
    return str(info["metadata"]["quota"])


def test_task_id_of_reads_both_versions() -> None:
    """The task id is found in 1.0 StreamResponse members and in 0.3 events."""
    assert task_id_of({"result": {"task": {"id": "a"}}}) == "a"
    assert task_id_of({"result": {"statusUpdate": {"taskId": "b"}}}) == "b"
    assert task_id_of({"result": {"kind": "task", "id": "c"}}) == "c"
    assert task_id_of({"result": {"kind": "status-update", "taskId": "d"}}) == "d"
    assert task_id_of({"error": {}}) is None


async def _wait_for(predicate: Any, seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("env", [{"quotas": {"max_task_duration_s": 1.0}}], indirect=True)
async def test_task_duration_quota_ends_stream_and_cancels_upstream(env: Env) -> None:
    """A stream open longer than max_task_duration_s is ended with a QUOTA_EXCEEDED error
    event, and the agent receives CancelTask for the task."""
    started = time.perf_counter()
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        events = await read_stream(session, f"{env.gw.url}/agents/busy")
    elapsed = time.perf_counter() - started
    assert 0.9 < elapsed < 2.5
    assert "result" in events[0]
    assert len(events) > 3
    assert quota_of(events[-1]) == "max_task_duration_s"
    await _wait_for(lambda: env.agent.cancels)
    assert env.agent.cancels[0]["id"] == "t-1"


@pytest.mark.parametrize("env", [{"quotas": {"max_stream_bytes": 4000}}], indirect=True)
async def test_stream_bytes_quota_ends_stream_and_cancels_upstream(env: Env) -> None:
    """A stream that carried more than max_stream_bytes is ended with QUOTA_EXCEEDED and the
    task is cancelled upstream."""
    env.agent.pad, env.agent.interval = 500, 0.02
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        events = await read_stream(session, f"{env.gw.url}/agents/busy")
    assert quota_of(events[-1]) == "max_stream_bytes"
    assert 2 <= len(events) <= 10
    await _wait_for(lambda: env.agent.cancels)
    assert env.agent.cancels[0]["id"] == "t-1"


@pytest.mark.parametrize("env", [{"quotas": {"max_concurrent_tasks": 2}}], indirect=True)
async def test_concurrent_tasks_quota_refuses_the_excess(env: Env) -> None:
    """With two streams open to the agent a third task is refused with 429 QUOTA_EXCEEDED
    before reaching the agent; once the streams end, tasks pass again."""
    env.agent.interval = 0.05
    url = f"{env.gw.url}/agents/busy"
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        opened = []
        for _ in range(2):
            resp = await session.post(url, data=rpc("SendStreamingMessage"), headers=HEADERS)
            await resp.content.readline()  # the stream is open
            opened.append(resp)
        async with session.post(url, data=rpc("SendMessage"), headers=HEADERS) as resp:
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "1"
            assert quota_of(orjson.loads(await resp.read())) == "max_concurrent_tasks"
        assert env.agent.streams == 2
        for resp in opened:
            resp.close()
        await asyncio.sleep(0.3)
        async with session.post(url, data=rpc("SendMessage"), headers=HEADERS) as resp:
            assert resp.status == 200
            assert "result" in orjson.loads(await resp.read())


@pytest.mark.parametrize("env", [{"max_response_bytes": 200}], indirect=True)
async def test_per_agent_response_bytes(env: Env) -> None:
    """An agent's own max_response_bytes refuses a larger unary answer (502)."""
    env.agent.reply = {
        "message": {"messageId": "r", "role": "ROLE_AGENT", "parts": [{"text": "y" * 500}]}
    }
    async with (
        aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session,
        session.post(f"{env.gw.url}/agents/busy", data=rpc("SendMessage"), headers=HEADERS) as resp,
    ):
        body = orjson.loads(await resp.read())
    assert body["error"]["data"][0]["reason"] == "UPSTREAM_TOO_LARGE"
