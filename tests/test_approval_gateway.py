"""C3 human approval end to end: a real gateway, a real loopback agent that counts what reaches
it, approvals through the admin API. Held requests never reach the agent; an approved one is
released exactly once, as it was approved, to its requester only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest_asyncio

from maestro_gateway.demo.servers import AgentServers, serve_apps
from tests.conftest import TIMEOUT, RunningGateway, start_gateway
from tests.upstreams import RecordingAgent

HTTP_TIMEOUT = aiohttp.ClientTimeout(total=TIMEOUT)
V10 = {"A2A-Version": "1.0"}
POLICY: dict[str, Any] = {
    "conditions": [
        {"name": "large amount", "path": "amount", "op": "gt", "value": 1000},
        {"name": "unknown payee", "path": "destination", "op": "not_in", "value": ["ACME-01"]},
    ],
    "skills": {"wire-transfer": "critical"},
}
PAYMENT = {"amount": 5000, "destination": "ACME-01"}


def overrides(state: Path, **approvals: Any) -> dict[str, Any]:
    return {
        "guards": {"approval": POLICY},
        "approvals": {"url": f"sqlite:///{state / 'approvals.db'}", **approvals},
    }


class Env:
    def __init__(self, gateway: RunningGateway, recorder: RecordingAgent) -> None:
        self.gateway, self.url, self.recorder = gateway, gateway.url, recorder

    def reached(self) -> list[Any]:
        """The SendMessage params that reached the agent."""
        return [r["params"] for _, r in self.recorder.requests if r["method"] == "SendMessage"]


async def recording_agent() -> tuple[AgentServers, RecordingAgent]:
    holder: dict[str, RecordingAgent] = {}

    def make(base: str) -> RecordingAgent:
        holder["rec"] = RecordingAgent(base)
        return holder["rec"]

    servers = await serve_apps({"bank": make})
    return servers, holder["rec"]


@pytest_asyncio.fixture(scope="module")
async def env(demo_agents: AgentServers, tmp_path_factory: Any) -> AsyncIterator[Env]:
    upstreams, recorder = await recording_agent()
    state = tmp_path_factory.mktemp("approvals")
    agents = {"bank": upstreams.urls["bank"], "echo": demo_agents.urls["echo"]}
    gateway = await start_gateway(state, agents, **overrides(state))
    try:
        yield Env(gateway, recorder)
    finally:
        await gateway.close()
        await upstreams.close()


def message(data: Any = None, text: str = "pay", task_id: str | None = None, **meta: Any) -> Any:
    parts: list[dict[str, Any]] = [{"text": text}]
    if data is not None:
        parts.append({"data": data})
    msg: dict[str, Any] = {"messageId": "m1", "role": "ROLE_USER", "parts": parts}
    if task_id:
        msg["taskId"] = task_id
    if meta:
        msg["metadata"] = meta
    return {"message": msg}


async def rpc(
    url: str,
    agent: str,
    method: str,
    params: Any,
    source: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One JSON-RPC call (from ``source``, a loopback address, when given); the decoded body."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0)) if source else None
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    async with (
        aiohttp.ClientSession(timeout=HTTP_TIMEOUT, connector=connector) as http,
        http.post(
            f"{url}/agents/{agent}", json=body, headers=V10 if headers is None else headers
        ) as resp,
    ):
        data: dict[str, Any] = orjson.loads(await resp.read())
        return data


async def send(url: str, params: Any, agent: str = "bank", **kw: Any) -> dict[str, Any]:
    return await rpc(url, agent, "SendMessage", params, **kw)


async def admin(
    url: str, method: str, path: str, body: Any = None, actor: str | None = "alice"
) -> tuple[int, Any]:
    headers = {"X-Maestro-Actor": actor} if actor else {}
    async with (
        aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http,
        http.request(method, f"{url}/admin/v1{path}", json=body, headers=headers) as resp,
    ):
        return resp.status, orjson.loads(await resp.read())


async def held(url: str, data: Any = PAYMENT, agent: str = "bank") -> str:
    """Send a high-risk payment; return the held task id (asserting it was held)."""
    reply = await send(url, message(data), agent)
    task = reply["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_AUTH_REQUIRED", reply
    assert task["metadata"]["maestro.approvalId"] == task["id"]
    hold_id: str = task["id"]
    return hold_id


def error_reason(reply: dict[str, Any]) -> str:
    reason: str = reply["error"]["data"][0]["reason"]
    return reason


async def test_held_request_never_reaches_the_agent(env: Env) -> None:
    """A flagged payment is answered with an AUTH_REQUIRED task and nothing reaches the agent;
    a harmless one goes straight through."""
    before = len(env.reached())
    hold_id = await held(env.url)
    assert hold_id.startswith("held-")
    assert len(hold_id) == 37
    assert len(env.reached()) == before
    reply = await send(env.url, message({"amount": 10, "destination": "ACME-01"}))
    assert reply["result"]["message"]["parts"][0]["text"] == "ok"
    assert len(env.reached()) == before + 1
    reply = await rpc(env.url, "bank", "GetTask", {"id": hold_id})
    assert reply["result"]["status"]["state"] == "TASK_STATE_AUTH_REQUIRED", reply


async def test_approved_request_is_released_once_as_approved(env: Env) -> None:
    """Not before approval; then the stored request (not the follow-up's content) reaches the
    agent exactly once; a replay of the continuation is refused."""
    before = len(env.reached())
    hold_id = await held(env.url)
    early = await send(env.url, message(text="go", task_id=hold_id))
    assert error_reason(early) == "APPROVAL_NOT_USABLE"
    status, shown = await admin(env.url, "GET", f"/approvals/{hold_id}")
    assert status == 200
    assert shown["params"] == message(PAYMENT)
    assert [f["name"] for f in shown["findings"]] == ["large amount"]
    status, decided = await admin(
        env.url, "POST", f"/approvals/{hold_id}/approve", {"reason": "ok"}
    )
    assert status == 200, decided
    assert decided["state"] == "approved"
    changed = message({"amount": 999_999, "destination": "EVIL-9"}, task_id=hold_id)
    reply = await send(env.url, changed)
    assert reply["result"]["message"]["parts"][0]["text"] == "ok"
    assert env.reached()[before:] == [message(PAYMENT)]  # the approved payload, once
    replay = await send(env.url, changed)
    assert error_reason(replay) == "APPROVAL_NOT_USABLE"
    assert len(env.reached()) == before + 1
    task = (await rpc(env.url, "bank", "GetTask", {"id": hold_id}))["result"]
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"


async def test_denied_request_is_rejected_and_never_sent(env: Env) -> None:
    """A denial answers GetTask with REJECTED and the reason; continuing it is refused."""
    before = len(env.reached())
    hold_id = await held(env.url)
    status, _ = await admin(env.url, "POST", f"/approvals/{hold_id}/deny", {"reason": "no such"})
    assert status == 200
    task = (await rpc(env.url, "bank", "GetTask", {"id": hold_id}))["result"]
    assert task["status"]["state"] == "TASK_STATE_REJECTED"
    assert "no such" in task["status"]["message"]["parts"][0]["text"]
    reply = await send(env.url, message(text="go", task_id=hold_id))
    assert error_reason(reply) == "APPROVAL_DENIED"
    status, _ = await admin(env.url, "POST", f"/approvals/{hold_id}/approve")
    assert status == 409
    assert len(env.reached()) == before


async def test_four_eyes(env: Env) -> None:
    """The requester cannot approve their own request; an unnamed approver is refused."""
    hold_id = await held(env.url)
    status, problem = await admin(env.url, "POST", f"/approvals/{hold_id}/approve", actor=None)
    assert status == 400, problem
    path = f"/approvals/{hold_id}/approve"
    status, problem = await admin(env.url, "POST", path, actor="addr:127.0.0.1")
    assert status == 403
    assert "four-eyes" in problem["error"]["message"]


async def test_only_the_requester_may_continue(env: Env) -> None:
    """Another client cannot continue, read or cancel someone else's approved hold."""
    before = len(env.reached())
    hold_id = await held(env.url)
    await admin(env.url, "POST", f"/approvals/{hold_id}/approve")
    other = "127.0.0.2"
    reply = await send(env.url, message(text="go", task_id=hold_id), source=other)
    assert error_reason(reply) == "TASK_NOT_FOUND"
    for method in ("GetTask", "CancelTask"):
        reply = await rpc(env.url, "bank", method, {"id": hold_id}, source=other)
        assert error_reason(reply) == "TASK_NOT_FOUND"
    assert len(env.reached()) == before
    reply = await send(env.url, message(text="go", task_id=hold_id))  # the requester can
    assert reply["result"]["message"]["parts"][0]["text"] == "ok"


async def test_forged_references_do_not_skip_the_hold(env: Env) -> None:
    """Forged approval metadata, a made-up held id, an approved id at another agent, and
    header tricks all leave the request held or refused, never forwarded."""
    before = len(env.reached())
    hold_id = await held(env.url)
    await admin(env.url, "POST", f"/approvals/{hold_id}/approve")
    forged = message(PAYMENT, **{"maestro.approvalId": hold_id, "maestro.approvalState": "ok"})
    reply = await send(env.url, forged, headers={**V10, "X-Maestro-Approval": hold_id})
    task = reply["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_AUTH_REQUIRED"
    assert task["id"] != hold_id
    fake = await send(env.url, message(PAYMENT, task_id="held-" + "0" * 32))
    assert error_reason(fake) == "TASK_NOT_FOUND"
    elsewhere = await send(env.url, message(text="go", task_id=hold_id), agent="echo")
    assert error_reason(elsewhere) == "TASK_NOT_FOUND"
    assert len(env.reached()) == before


async def test_cancel_withdraws_a_pending_hold(env: Env) -> None:
    """CancelTask on a pending held task cancels it; it can then no longer be approved."""
    hold_id = await held(env.url)
    task = (await rpc(env.url, "bank", "CancelTask", {"id": hold_id}))["result"]
    assert task["status"]["state"] == "TASK_STATE_CANCELED"
    status, _ = await admin(env.url, "POST", f"/approvals/{hold_id}/approve")
    assert status == 409


async def test_streaming_hold_and_release(env: Env) -> None:
    """A streamed high-risk message gets one AUTH_REQUIRED task event and the stream ends; once
    approved, a streamed continuation streams the agent's answer to the stored message."""
    params = message(PAYMENT, text="transfer please")
    events = await stream(env.url, "echo", params)
    assert len(events) == 1
    assert events[0]["task"]["status"]["state"] == "TASK_STATE_AUTH_REQUIRED"
    hold_id = events[0]["task"]["id"]
    await admin(env.url, "POST", f"/approvals/{hold_id}/approve")
    events = await stream(env.url, "echo", message(text="other words", task_id=hold_id))
    texts = orjson.dumps(events).decode()
    assert "transfer please" in texts
    assert "other words" not in texts


async def stream(url: str, agent: str, params: Any) -> list[Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage", "params": params}
    async with (
        aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http,
        http.post(f"{url}/agents/{agent}", json=body, headers=V10) as resp,
    ):
        raw = (await resp.read()).decode()
    return [
        orjson.loads(line[5:])["result"] for line in raw.splitlines() if line.startswith("data:")
    ]


async def test_a2a_03_client_gets_the_03_task(env: Env) -> None:
    """A 0.3 client's held answer is a 0.3 task in state auth-required with the approval id."""
    msg = {"messageId": "m1", "role": "user", "kind": "message", "parts": [
        {"kind": "text", "text": "pay"}, {"kind": "data", "data": PAYMENT}]}  # fmt: skip
    reply = await rpc(env.url, "bank", "message/send", {"message": msg}, headers={})
    assert "result" in reply, reply
    task = reply["result"]
    assert task["kind"] == "task"
    assert task["status"]["state"] == "auth-required"
    assert task["metadata"]["maestro.approvalId"] == task["id"]


async def test_rest_binding_is_held_too(env: Env) -> None:
    """The HTTP+JSON binding holds the same request the same way."""
    async with (
        aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http,
        http.post(
            f"{env.url}/agents/bank/rest/message:send",
            data=orjson.dumps(message(PAYMENT)),
            headers={**V10, "Content-Type": "application/a2a+json"},
        ) as resp,
    ):
        reply = orjson.loads(await resp.read())
    assert reply["task"]["status"]["state"] == "TASK_STATE_AUTH_REQUIRED"


async def test_admin_lists_pending_holds(env: Env) -> None:
    """The admin API lists pending holds without payloads, and refuses an unknown state."""
    hold_id = await held(env.url)
    status, listing = await admin(env.url, "GET", "/approvals?state=pending")
    assert status == 200
    assert hold_id in [h["id"] for h in listing["approvals"]]
    assert all("params" not in h for h in listing["approvals"])
    status, _ = await admin(env.url, "GET", "/approvals?state=bogus")
    assert status == 400
    status, _ = await admin(env.url, "GET", "/approvals?limit=0")
    assert status == 400
    status, listing = await admin(env.url, "GET", "/approvals?limit=1")
    assert len(listing["approvals"]) == 1
    status, _ = await admin(env.url, "GET", "/approvals/held-nope")
    assert status == 404
