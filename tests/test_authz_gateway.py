"""C8 through a real gateway: Cedar decides registry writes (MFA, role, four eyes) and hides
other callers' tasks, with identities from the embedded development issuer."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio

from maestro_gateway.demo.servers import AgentServers
from maestro_gateway.identity.devissuer import DevIssuer
from tests.conftest import RunningGateway, start_gateway

TIMEOUT = aiohttp.ClientTimeout(total=30)
MFA = ["pwd", "otp"]


class Env:
    def __init__(self, gw: RunningGateway, issuer: DevIssuer, state: Path) -> None:
        self.gw, self.issuer, self.state = gw, issuer, state

    async def audit_records(self) -> list[dict[str, Any]]:
        log = self.gw.app.audit.log
        assert log is not None
        await log.flush()
        with sqlite3.connect(self.state / "audit.db") as db:
            rows = db.execute("SELECT entry FROM audit_entries ORDER BY seq").fetchall()
        return [json.loads(r[0])["record"] for r in rows]

    def auth(
        self, sub: str, roles: list[str], amr: list[str] = MFA, tenant: str | None = None
    ) -> dict[str, str]:
        token = self.issuer.mint(sub, roles=roles, amr=amr, tenant=tenant)
        return {"Authorization": f"Bearer {token}"}

    async def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT) as http,
            http.request(method, self.gw.url + path, json=body, headers=headers or {}) as r,
        ):
            return r.status, await r.json(content_type=None)

    async def rpc(self, agent: str, method: str, params: Any, who: dict[str, str]) -> Any:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        _, out = await self.call("POST", f"/agents/{agent}", body, {**who, "A2A-Version": "1.0"})
        return out


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def env(demo_agents: AgentServers, tmp_path_factory: Any) -> AsyncIterator[Env]:
    state: Path = tmp_path_factory.mktemp("authz")
    issuer = DevIssuer(state)
    gw = await start_gateway(
        state,
        {"worker": demo_agents.urls["worker"]},
        identity={"issuers": [issuer.issuer_config()]},
        guards={"authn": {"required": True}},
    )
    try:
        yield Env(gw, issuer, state)
    finally:
        await gw.close()


async def test_registry_writes_need_mfa_and_the_admin_role(
    env: Env, demo_agents: AgentServers
) -> None:
    """An admin without MFA may not register; with MFA the same admin may."""
    card = {"id": "echo-a", "card_url": demo_agents.urls["echo"]}
    weak = env.auth("ada", ["registry-admin"], amr=["pwd"])
    status, body = await env.call("POST", "/admin/v1/agents", card, weak)
    assert status == 403, body
    assert "not permitted by policy" in body["error"]["message"]
    status, body = await env.call(
        "POST", "/admin/v1/agents", card, env.auth("ada", ["registry-admin"])
    )
    assert status == 201, body


async def test_four_eyes_activation(env: Env, demo_agents: AgentServers) -> None:
    """The admin who registered a version cannot activate it; a second admin can."""
    ada, bea = env.auth("ada", ["registry-admin"]), env.auth("bea", ["registry-admin"])
    card = {"id": "echo-b", "card_url": demo_agents.urls["echo"]}
    assert (await env.call("POST", "/admin/v1/agents", card, ada))[0] == 201
    status, body = await env.call("POST", "/admin/v1/agents/echo-b/activate", {}, ada)
    assert status == 403, body
    status, body = await env.call("POST", "/admin/v1/agents/echo-b/activate", {}, bea)
    assert status == 200, body
    assert body["state"] == "active"


async def test_bootstrap_admin_cannot_write_once_identity_is_required(
    env: Env, demo_agents: AgentServers
) -> None:
    """Loopback access without a token no longer administers when identity is required."""
    card = {"id": "echo-c", "card_url": demo_agents.urls["echo"]}
    status, _ = await env.call("POST", "/admin/v1/agents", card)
    assert status == 403


async def test_a_task_is_invisible_to_other_users(env: Env) -> None:
    """Uma's task is hers: Nico gets TaskNotFound for it, exactly as for a missing task."""
    uma, nico = env.auth("uma", ["user"]), env.auth("nico", ["user"])
    msg = {"messageId": "m-1", "role": "ROLE_USER", "parts": [{"text": "start a long task"}]}
    sent = await env.rpc("worker", "SendMessage", {"message": msg}, uma)
    task_id = sent["result"]["task"]["id"]
    mine = await env.rpc("worker", "GetTask", {"id": task_id}, uma)
    assert mine["result"]["id"] == task_id
    theirs = await env.rpc("worker", "GetTask", {"id": task_id}, nico)
    missing = await env.rpc("worker", "GetTask", {"id": "no-such-task"}, nico)
    assert theirs["error"]["code"] == -32001
    assert theirs["error"]["message"] == missing["error"]["message"]
    cancel = await env.rpc("worker", "CancelTask", {"id": task_id}, nico)
    assert cancel["error"]["code"] == -32001
    await env.rpc("worker", "CancelTask", {"id": task_id}, uma)


async def test_records_carry_the_identity_and_the_decision(env: Env) -> None:
    """C20: a denial's audit record names the caller (subject, issuer, token id, methods), and
    the Cedar decision record that refused it is in the audit log with its bundle version."""
    nico = env.auth("nico", ["user"])
    denied = await env.rpc("worker", "GetTask", {"id": "never-created"}, nico)
    assert denied["error"]["code"] == -32001
    records = await env.audit_records()
    deny = [r for r in records if r["type"] == "guard.deny" and r.get("guard") == "authz"][-1]
    assert deny["principal"].endswith("|nico")
    assert deny["identity"]["sub"] == "nico"
    assert deny["identity"]["amr"] == ["pwd", "otp"]
    assert deny["identity"]["jti"]
    decision = [r for r in records if r["type"] == "authz.decision" and r["result"] == "deny"][-1]
    assert decision["action"] == "read_task"
    assert decision["bundle"].startswith("sha256:")
    assert decision["input"]["request"]["principal"]["id"].endswith("|nico")


async def test_approvers_need_mfa_and_never_approve_their_own_request(
    demo_agents: AgentServers, tmp_path: Path
) -> None:
    """With identity on, a held request is decided only by an approver with MFA (the token
    says who acts, not a header) and never by its requester."""
    issuer = DevIssuer(tmp_path)
    gw = await start_gateway(
        tmp_path,
        {"echo": demo_agents.urls["echo"]},
        identity={"issuers": [issuer.issuer_config()]},
        guards={"authn": {"required": True}, "approval": {"default_risk": "high"}},
        approvals={"url": f"sqlite:///{tmp_path}/approvals.db"},
    )
    env = Env(gw, issuer, tmp_path)
    try:
        uma = env.auth("uma", ["user", "approver"])
        msg = {"messageId": "m-9", "role": "ROLE_USER", "parts": [{"text": "pay the invoice"}]}
        held = await env.rpc("echo", "SendMessage", {"message": msg}, uma)
        hold_id = held["result"]["task"]["id"]
        path = f"/admin/v1/approvals/{hold_id}/approve"
        weak = env.auth("avery", ["approver"], amr=["pwd"])
        status, body = await env.call("POST", path, {"reason": "ok"}, weak)
        assert status == 403, body
        forged = {**uma, "X-Maestro-Actor": "someone-else"}
        status, body = await env.call("POST", path, {"reason": "mine"}, forged)
        assert status == 403, body  # the requester, whatever the header says
        status, body = await env.call(
            "POST", path, {"reason": "ok"}, env.auth("avery", ["approver"])
        )
        assert status == 200, body
        assert body["decided_by"].endswith("|avery")
    finally:
        await gw.close()


async def test_another_tenants_agent_is_answered_as_missing(
    env: Env, demo_agents: AgentServers
) -> None:
    """Tenant acme's agent (registered and activated by acme's admins) serves acme's users;
    to a caller of no tenant it is exactly like an agent that does not exist."""
    ada = env.auth("ada", ["registry-admin"], tenant="acme")
    bea = env.auth("bea", ["registry-admin"], tenant="acme")
    card = {"id": "acme-echo", "card_url": demo_agents.urls["echo"], "tenant": "acme"}
    status, body = await env.call(
        "POST", "/admin/v1/agents", card, env.auth("zed", ["registry-admin"])
    )
    assert status == 403, body  # an admin of no tenant does not touch acme's agents
    assert (await env.call("POST", "/admin/v1/agents", card, ada))[0] == 201
    assert (await env.call("POST", "/admin/v1/agents/acme-echo/activate", {}, bea))[0] == 200
    msg = {"messageId": "m-2", "role": "ROLE_USER", "parts": [{"text": "hi"}]}
    acme_user = env.auth("ana", ["user"], tenant="acme")
    served = await env.rpc("acme-echo", "SendMessage", {"message": msg}, acme_user)
    assert "result" in served, served
    uma = env.auth("uma", ["user"])
    hidden = await env.rpc("acme-echo", "SendMessage", {"message": msg}, uma)
    missing = await env.rpc("no-such-agent", "SendMessage", {"message": msg}, uma)
    assert hidden["error"]["code"] == missing["error"]["code"]
    assert hidden["error"]["message"] == missing["error"]["message"]
