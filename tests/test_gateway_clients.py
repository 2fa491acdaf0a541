"""Acceptance: unmodified a2a-sdk 1.0 clients and 0.3-style JSON-RPC clients through the gateway.

Everything runs for real on loopback: demo agents (a2a-sdk servers), the gateway on uvicorn.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import pytest
from a2a.client import Client, ClientConfig, create_client
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    TaskState,
)

from tests.conftest import TIMEOUT, RunningGateway

HTTP_TIMEOUT = aiohttp.ClientTimeout(total=TIMEOUT)


def user_message(text: str, task_id: str = "", context_id: str = "") -> Message:
    return Message(
        message_id=str(uuid.uuid4()),
        role=Role.ROLE_USER,
        parts=[Part(text=text)],
        task_id=task_id or None,
        context_id=context_id or None,
    )


async def sdk_client(gateway: RunningGateway, agent: str, streaming: bool) -> Client:
    url = f"{gateway.url}/agents/{agent}"
    return await asyncio.wait_for(create_client(url, ClientConfig(streaming=streaming)), TIMEOUT)


async def collect(client: Client, request: SendMessageRequest) -> list[StreamResponse]:
    async with asyncio.timeout(TIMEOUT):
        return [event async for event in client.send_message(request)]


async def test_sdk_client_send_message(gateway: RunningGateway) -> None:
    """An a2a-sdk 1.0 client discovers the agent through the gateway's card and gets a reply."""
    async with await sdk_client(gateway, "echo", streaming=False) as client:
        events = await collect(client, SendMessageRequest(message=user_message("hello")))
    assert [p.text for p in events[0].message.parts] == ["echo: hello"]


async def test_sdk_client_streaming(gateway: RunningGateway) -> None:
    """Streaming through the gateway delivers every event: task, chunks, completion."""
    async with await sdk_client(gateway, "writer", streaming=True) as client:
        events = await collect(client, SendMessageRequest(message=user_message("gateways")))
    chunks = [e.artifact_update for e in events if e.HasField("artifact_update")]
    assert events[0].HasField("task")
    assert len(chunks) >= 3
    assert chunks[-1].last_chunk
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED


async def test_sdk_client_get_and_cancel(gateway: RunningGateway) -> None:
    """A long task started through the gateway can be read and cancelled through it."""
    async with await sdk_client(gateway, "worker", streaming=False) as client:
        task = (await collect(client, SendMessageRequest(message=user_message("long"))))[0].task
        assert task.status.state == TaskState.TASK_STATE_WORKING
        got = await asyncio.wait_for(client.get_task(GetTaskRequest(id=task.id)), TIMEOUT)
        assert got.id == task.id
        canceled = await asyncio.wait_for(
            client.cancel_task(CancelTaskRequest(id=task.id)), TIMEOUT
        )
        assert canceled.status.state == TaskState.TASK_STATE_CANCELED


async def test_sdk_client_input_required_turn(gateway: RunningGateway) -> None:
    """An INPUT_REQUIRED turn and its follow-up work through the gateway."""
    async with await sdk_client(gateway, "worker", streaming=False) as client:
        task = (await collect(client, SendMessageRequest(message=user_message("book a trip"))))[
            0
        ].task
        assert task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        follow = user_message("friday", task_id=task.id, context_id=task.context_id)
        done = (await collect(client, SendMessageRequest(message=follow)))[0].task
        assert done.status.state == TaskState.TASK_STATE_COMPLETED


async def test_sdk_client_against_03_agent(gateway: RunningGateway) -> None:
    """A 1.0 client talks to a 0.3 agent: the gateway translates both ways."""
    async with await sdk_client(gateway, "worker-v03", streaming=False) as client:
        task = (await collect(client, SendMessageRequest(message=user_message("book a trip"))))[
            0
        ].task
        assert task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        got = await asyncio.wait_for(client.get_task(GetTaskRequest(id=task.id)), TIMEOUT)
        assert got.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
    async with await sdk_client(gateway, "echo-v03", streaming=False) as client:
        events = await collect(client, SendMessageRequest(message=user_message("hi")))
    assert [p.text for p in events[0].message.parts] == ["echo: hi"]


async def test_sdk_client_long_task_on_03_agent_cancels(gateway: RunningGateway) -> None:
    """CancelTask from a 1.0 client reaches a 0.3 agent as tasks/cancel."""
    async with await sdk_client(gateway, "worker-v03", streaming=False) as client:
        task = (await collect(client, SendMessageRequest(message=user_message("long"))))[0].task
        canceled = await asyncio.wait_for(
            client.cancel_task(CancelTaskRequest(id=task.id)), TIMEOUT
        )
    assert canceled.status.state == TaskState.TASK_STATE_CANCELED


# --- a 0.3-style JSON-RPC client: slash method names, no A2A-Version header, kind fields ---


def msg03(text: str, **ids: str) -> dict[str, Any]:
    return {
        "message": {
            "kind": "message",
            "messageId": str(uuid.uuid4()),
            "role": "user",
            "parts": [{"kind": "text", "text": text}],
            **ids,
        }
    }


async def rpc03(http: aiohttp.ClientSession, url: str, method: str, params: Any) -> Any:
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
    async with http.post(url, json=body) as resp:
        assert resp.status == 200
        data = await resp.json()
    assert data["id"] == 7
    return data


async def test_03_client_send_get_cancel(gateway: RunningGateway) -> None:
    """A 0.3 client gets 0.3 shapes back from a 1.0 agent: kind fields, lowercase states."""
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        echo = await rpc03(http, f"{gateway.url}/agents/echo", "message/send", msg03("yo"))
        assert echo["result"]["kind"] == "message"
        assert echo["result"]["role"] == "agent"
        assert echo["result"]["parts"] == [{"kind": "text", "text": "echo: yo"}]

        url = f"{gateway.url}/agents/worker"
        params = msg03("long")
        params["configuration"] = {"blocking": False}
        task = (await rpc03(http, url, "message/send", params))["result"]
        assert task["kind"] == "task"
        assert task["status"]["state"] == "working"
        got = (await rpc03(http, url, "tasks/get", {"id": task["id"]}))["result"]
        assert got["id"] == task["id"]
        canceled = (await rpc03(http, url, "tasks/cancel", {"id": task["id"]}))["result"]
        assert canceled["status"]["state"] == "canceled"


async def test_03_client_streaming(gateway: RunningGateway) -> None:
    """A 0.3 client's message/stream gets 0.3 events (status-update / artifact-update)."""
    body = {"jsonrpc": "2.0", "id": "s1", "method": "message/stream", "params": msg03("report")}
    kinds: list[str] = []
    async with (
        aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http,
        http.post(f"{gateway.url}/agents/writer", json=body) as resp,
    ):
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        async for line in resp.content:
            if line.startswith(b"data:"):
                import orjson

                event = orjson.loads(line[5:])
                assert event["id"] == "s1"
                kinds.append(event["result"]["kind"])
    assert kinds[0] == "task"
    assert "artifact-update" in kinds
    assert kinds[-1] == "status-update"


async def test_03_client_against_03_agent(gateway: RunningGateway) -> None:
    """A 0.3 client reaches a 0.3 agent through the gateway (1.0 inside, 0.3 at both ends)."""
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        data = await rpc03(http, f"{gateway.url}/agents/echo-v03", "message/send", msg03("hey"))
    assert data["result"]["parts"] == [{"kind": "text", "text": "echo: hey"}]


async def test_sdk_client_push_configs_list_tasks_and_subscribe(gateway: RunningGateway) -> None:
    """The push-config methods, ListTasks and SubscribeToTask all work through the gateway."""
    from a2a.types.a2a_pb2 import (
        DeleteTaskPushNotificationConfigRequest,
        GetTaskPushNotificationConfigRequest,
        ListTaskPushNotificationConfigsRequest,
        ListTasksRequest,
        SubscribeToTaskRequest,
        TaskPushNotificationConfig,
    )

    hook = "https://93.184.216.34/a2a-hook"  # a public address: passes the SSRF check
    async with await sdk_client(gateway, "worker", streaming=False) as client:
        task = (await collect(client, SendMessageRequest(message=user_message("long"))))[0].task
        config = TaskPushNotificationConfig(task_id=task.id, url=hook)
        created = await asyncio.wait_for(
            client.create_task_push_notification_config(config), TIMEOUT
        )
        assert created.url == hook
        got = await asyncio.wait_for(
            client.get_task_push_notification_config(
                GetTaskPushNotificationConfigRequest(task_id=task.id, id=created.id)
            ),
            TIMEOUT,
        )
        assert got.url == hook
        listed = await asyncio.wait_for(
            client.list_task_push_notification_configs(
                ListTaskPushNotificationConfigsRequest(task_id=task.id)
            ),
            TIMEOUT,
        )
        assert [c.url for c in listed.configs] == [hook]
        await asyncio.wait_for(
            client.delete_task_push_notification_config(
                DeleteTaskPushNotificationConfigRequest(task_id=task.id, id=created.id)
            ),
            TIMEOUT,
        )
        tasks = await asyncio.wait_for(client.list_tasks(ListTasksRequest()), TIMEOUT)
        assert task.id in {t.id for t in tasks.tasks}
    async with await sdk_client(gateway, "worker", streaming=True) as streamer:
        async with asyncio.timeout(TIMEOUT):
            async for event in streamer.subscribe(SubscribeToTaskRequest(id=task.id)):
                if event.HasField("status_update"):
                    assert event.status_update.task_id == task.id
                    break
    async with await sdk_client(gateway, "worker", streaming=False) as client:
        await asyncio.wait_for(client.cancel_task(CancelTaskRequest(id=task.id)), TIMEOUT)


async def test_sdk_push_config_to_internal_address_is_refused(gateway: RunningGateway) -> None:
    """A push-notification webhook aimed at the cloud metadata service is refused by C1."""
    from a2a.types.a2a_pb2 import TaskPushNotificationConfig

    async with await sdk_client(gateway, "worker", streaming=False) as client:
        task = (await collect(client, SendMessageRequest(message=user_message("book a trip"))))[
            0
        ].task
        config = TaskPushNotificationConfig(task_id=task.id, url="http://169.254.169.254/latest")
        with pytest.raises(Exception, match=r"forbidden address 169\.254\.169\.254"):
            await asyncio.wait_for(client.create_task_push_notification_config(config), TIMEOUT)
