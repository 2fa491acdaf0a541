"""Demo agents (a2a-sdk servers) and the fast echo test agent, driven over loopback."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any, cast

import aiohttp
import pytest
import pytest_asyncio
from a2a.client import Client, ClientConfig, create_client
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    TaskPushNotificationConfig,
    TaskState,
)

from maestro_gateway.demo.agents import AGENT_KINDS, AgentServers, AgentSpec, serve_agents
from maestro_gateway.demo.servers import serve_apps
from maestro_gateway.testing import echo_app

TIMEOUT = 20.0
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=TIMEOUT)


@pytest_asyncio.fixture(scope="module")
async def agents() -> AsyncIterator[AgentServers]:
    specs: list[AgentSpec | str] = [
        *AGENT_KINDS,
        AgentSpec("echo", protocol="0.3"),
        AgentSpec("worker", protocol="0.3"),
    ]
    servers = await asyncio.wait_for(serve_agents(specs), TIMEOUT)
    try:
        yield servers
    finally:
        await asyncio.wait_for(servers.close(), TIMEOUT)


@pytest_asyncio.fixture(scope="module")
async def fast_echo() -> AsyncIterator[str]:
    servers = await asyncio.wait_for(serve_apps({"echo-fast": echo_app}), TIMEOUT)
    try:
        yield servers.urls["echo-fast"]
    finally:
        await asyncio.wait_for(servers.close(), TIMEOUT)


def user_message(text: str, task_id: str = "", context_id: str = "") -> Message:
    return Message(
        message_id=str(uuid.uuid4()),
        role=Role.ROLE_USER,
        parts=[Part(text=text)],
        task_id=task_id or None,
        context_id=context_id or None,
    )


async def client_for(url: str, *, streaming: bool) -> Client:
    return await asyncio.wait_for(create_client(url, ClientConfig(streaming=streaming)), TIMEOUT)


async def send(client: Client, request: SendMessageRequest) -> list[StreamResponse]:
    async with asyncio.timeout(TIMEOUT):
        return [event async for event in client.send_message(request)]


async def test_cards_point_at_own_base_url(agents: AgentServers) -> None:
    """Each 1.0 card lists its own base URL; each 0.3 card is 0.3-shaped (url, transport)."""
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        for kind in AGENT_KINDS:
            base = agents.urls[kind]
            async with http.get(f"{base}/.well-known/agent-card.json") as resp:
                card = await resp.json()
            assert {i["url"] for i in card["supportedInterfaces"]} == {base}
            assert {i["protocolBinding"] for i in card["supportedInterfaces"]} == {
                "JSONRPC",
                "HTTP+JSON",
            }
            assert "url" not in card
        base = agents.urls["worker-v03"]
        async with http.get(f"{base}/.well-known/agent-card.json") as resp:
            card = await resp.json()
    assert card["protocolVersion"] == "0.3.0"
    assert card["url"] == base
    assert card["preferredTransport"] == "JSONRPC"
    assert card["capabilities"]["pushNotifications"] is True
    assert "supportedInterfaces" not in card


async def test_echo_plain_reply_and_summarize(agents: AgentServers) -> None:
    """The echo agent answers SendMessage with a Message: echo text or the first N words."""
    async with await client_for(agents.urls["echo"], streaming=False) as client:
        events = await send(client, SendMessageRequest(message=user_message("hello there")))
        assert len(events) == 1
        assert events[0].HasField("message")
        reply = events[0].message
        assert reply.role == Role.ROLE_AGENT
        assert [p.text for p in reply.parts] == ["echo: hello there"]

        request = SendMessageRequest(message=user_message("one two three four five"))
        request.metadata.update({"skill": "summarize", "maxWords": 3})
        events = await send(client, request)
        assert [p.text for p in events[0].message.parts] == ["one two three"]


async def test_writer_streams_artifact_chunks(agents: AgentServers) -> None:
    """The writer streams a Task, WORKING, >=3 appended artifact chunks, then COMPLETED."""
    async with await client_for(agents.urls["writer"], streaming=True) as client:
        events = await send(client, SendMessageRequest(message=user_message("agent security")))
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds[0] == "task"
    assert events[1].status_update.status.state == TaskState.TASK_STATE_WORKING
    chunks = [e.artifact_update for e in events if e.HasField("artifact_update")]
    assert len(chunks) >= 3
    assert not chunks[0].append
    assert all(c.append for c in chunks[1:])
    assert [c.last_chunk for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert len({c.artifact.artifact_id for c in chunks}) == 1
    assert "agent security" in chunks[0].artifact.parts[0].text
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED


async def test_worker_long_task_subscribe_and_cancel(agents: AgentServers) -> None:
    """A 'long' task stays WORKING with progress updates, can be subscribed to, and cancels."""
    async with await client_for(agents.urls["worker"], streaming=False) as client:
        events = await send(client, SendMessageRequest(message=user_message("long")))
        task = events[0].task
        assert task.status.state == TaskState.TASK_STATE_WORKING

        progress: list[str] = []
        async with (
            await client_for(agents.urls["worker"], streaming=True) as streamer,
            asyncio.timeout(TIMEOUT),
        ):
            stream = cast(
                "AsyncGenerator[StreamResponse, None]",
                streamer.subscribe(SubscribeToTaskRequest(id=task.id)),
            )
            async with aclosing(stream) as events_iter:
                async for event in events_iter:
                    if event.HasField("status_update"):
                        progress.append(event.status_update.status.message.parts[0].text)
                        break
        assert progress[0].startswith("progress ")

        got = await asyncio.wait_for(client.get_task(GetTaskRequest(id=task.id)), TIMEOUT)
        assert got.status.state == TaskState.TASK_STATE_WORKING
        canceled = await asyncio.wait_for(
            client.cancel_task(CancelTaskRequest(id=task.id)), TIMEOUT
        )
        assert canceled.status.state == TaskState.TASK_STATE_CANCELED
        got = await asyncio.wait_for(client.get_task(GetTaskRequest(id=task.id)), TIMEOUT)
        assert got.status.state == TaskState.TASK_STATE_CANCELED


async def test_worker_return_immediately_is_long(agents: AgentServers) -> None:
    """returnImmediately on the worker starts the long job, which CancelTask ends."""
    async with await client_for(agents.urls["worker"], streaming=False) as client:
        request = SendMessageRequest(message=user_message("crunch numbers"))
        request.configuration.return_immediately = True
        task = (await send(client, request))[0].task
        assert task.status.state == TaskState.TASK_STATE_WORKING
        canceled = await asyncio.wait_for(
            client.cancel_task(CancelTaskRequest(id=task.id)), TIMEOUT
        )
        assert canceled.status.state == TaskState.TASK_STATE_CANCELED


async def test_worker_input_required_then_completed(agents: AgentServers) -> None:
    """'book a trip' goes INPUT_REQUIRED; the follow-up on the same task completes it."""
    async with await client_for(agents.urls["worker"], streaming=False) as client:
        task = (await send(client, SendMessageRequest(message=user_message("book a trip"))))[0].task
        assert task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        assert task.status.message.parts[0].text == "which date?"

        config = TaskPushNotificationConfig(task_id=task.id, url="https://hooks.example/a2a")
        created = await asyncio.wait_for(
            client.create_task_push_notification_config(config), TIMEOUT
        )
        assert created.url == config.url
        listed = await asyncio.wait_for(
            client.list_task_push_notification_configs(
                ListTaskPushNotificationConfigsRequest(task_id=task.id)
            ),
            TIMEOUT,
        )
        assert [c.url for c in listed.configs] == [config.url]

        follow_up = user_message("2026-05-01", task_id=task.id, context_id=task.context_id)
        done = (await send(client, SendMessageRequest(message=follow_up)))[0].task
        assert done.id == task.id
        assert done.status.state == TaskState.TASK_STATE_COMPLETED
        assert done.artifacts[0].parts[0].text == "trip booked for 2026-05-01"

        got = await asyncio.wait_for(client.get_task(GetTaskRequest(id=task.id)), TIMEOUT)
        assert got.status.state == TaskState.TASK_STATE_COMPLETED
        user_texts = [m.parts[0].text for m in got.history if m.role == Role.ROLE_USER]
        assert user_texts == ["book a trip", "2026-05-01"]
        listing = await asyncio.wait_for(client.list_tasks(ListTasksRequest()), TIMEOUT)
        assert task.id in {t.id for t in listing.tasks}


async def rpc(http: aiohttp.ClientSession, url: str, method: str, params: Any) -> Any:
    body = {"jsonrpc": "2.0", "id": str(uuid.uuid4()), "method": method, "params": params}
    async with http.post(url, json=body) as resp:
        assert resp.status == 200
        return await resp.json()


def v03_message(text: str, **ids: str) -> dict[str, Any]:
    msg = {"kind": "message", "messageId": str(uuid.uuid4()), "role": "user"}
    return {"message": {**msg, "parts": [{"kind": "text", "text": text}], **ids}}


async def test_v03_variant_speaks_03_wire(agents: AgentServers) -> None:
    """The 0.3 variant answers message/send with kind fields and lowercase task states."""
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        echo = await rpc(http, agents.urls["echo-v03"], "message/send", v03_message("hi"))
        assert echo["result"]["kind"] == "message"
        assert echo["result"]["role"] == "agent"
        assert echo["result"]["parts"] == [{"kind": "text", "text": "echo: hi"}]

        url = agents.urls["worker-v03"]
        first = (await rpc(http, url, "message/send", v03_message("book a trip")))["result"]
        assert first["kind"] == "task"
        assert first["status"]["state"] == "input-required"
        assert first["status"]["message"]["parts"][0] == {"kind": "text", "text": "which date?"}
        ids = {"taskId": first["id"], "contextId": first["contextId"]}
        done = (await rpc(http, url, "message/send", v03_message("tomorrow", **ids)))["result"]
        assert done["status"]["state"] == "completed"
        assert done["artifacts"][0]["parts"][0]["kind"] == "text"
        got = (await rpc(http, url, "tasks/get", {"id": first["id"]}))["result"]
        assert got["status"]["state"] == "completed"

        wrong = await rpc(http, url, "SendMessage", {"message": {}})
        assert wrong["error"]["code"] == -32601


async def test_fast_echo_agent(fast_echo: str) -> None:
    """The raw-ASGI echo agent serves its card, SendMessage, SSE streaming, GetTask, CancelTask."""
    headers = {"A2A-Version": "1.0"}
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT, headers=headers) as http:
        async with http.get(f"{fast_echo}/.well-known/agent-card.json") as resp:
            card = await resp.json()
        assert card["supportedInterfaces"][0]["url"] == fast_echo
        assert card["capabilities"]["streaming"] is True

        message = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "ping pong"}]}
        reply = await rpc(http, fast_echo, "SendMessage", {"message": message})
        assert reply["result"]["message"]["role"] == "ROLE_AGENT"
        assert reply["result"]["message"]["parts"] == [{"text": "ping pong"}]

        body = {"jsonrpc": "2.0", "id": 7, "method": "SendStreamingMessage"}
        async with http.post(fast_echo, json={**body, "params": {"message": message}}) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            raw = (await resp.read()).decode()
        frames = [json.loads(f[len("data: ") :]) for f in raw.split("\n\n") if f]
        assert all(f["id"] == 7 for f in frames)
        results = [f["result"] for f in frames]
        assert "task" in results[0]
        chunks = [r["artifactUpdate"] for r in results[1:-1]]
        assert len(chunks) == 5
        assert "".join(c["artifact"]["parts"][0]["text"] for c in chunks) == "ping pong"
        assert chunks[-1]["lastChunk"] is True
        assert results[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"

        got = await rpc(http, fast_echo, "GetTask", {"id": "t-1"})
        assert got["result"]["id"] == "t-1"
        canceled = await rpc(http, fast_echo, "CancelTask", {"id": "t-1"})
        assert canceled["result"]["status"]["state"] == "TASK_STATE_CANCELED"
        unknown = await rpc(http, fast_echo, "NoSuchMethod", {})
        assert unknown["error"]["code"] == -32601


async def test_unknown_kind_is_rejected() -> None:
    """serve_agents refuses an unknown agent kind."""
    with pytest.raises(ValueError, match="unknown demo agent kind"):
        await asyncio.wait_for(serve_agents(["nope"]), TIMEOUT)
