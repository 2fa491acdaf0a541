"""C17 through a real gateway, real demo agents and signed tokens: JIT-only skills need a live
grant for exactly this principal, agent, skill and task; approvers issue and revoke grants;
a self-requested grant is issued only when a policy permits it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio

from maestro_gateway.demo.servers import AgentServers
from maestro_gateway.guards.grants import GRANT_REQUIRED
from maestro_gateway.identity.devissuer import DevIssuer
from tests.conftest import TIMEOUT, RunningGateway, start_gateway

HTTP = aiohttp.ClientTimeout(total=TIMEOUT)
MFA = ["pwd", "otp"]
ISS = "urn:maestro:dev-issuer"
REQUEST_POLICY = """
@id("contractors-request-summaries")
permit (principal, action == Action::"request_grant", resource is Maestro::Grant)
when { principal.roles.contains("contractor") && resource.skill == "summarize" };
"""


class Env:
    def __init__(self, gw: RunningGateway, dev: DevIssuer) -> None:
        self.gw, self.url, self.dev = gw, gw.url, dev
        self.events: list[dict[str, Any]] = []
        gw.app.audit.observers.append(self.events.append)

    def auth(self, sub: str, roles: list[str] | None = None, amr: list[str] = MFA) -> str:
        return "Bearer " + self.dev.mint(sub, roles=roles or ["user"], amr=amr)

    async def call(
        self, who: str, agent: str, skill: str | None, context_id: str | None = None, **msg: Any
    ) -> tuple[int, Any]:
        message: dict[str, Any] = {
            "messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "one two three"}], **msg
        }  # fmt: skip
        if skill is not None:
            message["metadata"] = {"skillId": skill}
        if context_id is not None:
            message["contextId"] = context_id
        body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
        return await self.http("POST", f"/agents/{agent}", who, body, {"A2A-Version": "1.0"})

    async def http(
        self,
        method: str,
        path: str,
        authorization: str | None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        hdrs = dict(headers or {})
        if authorization:
            hdrs["Authorization"] = authorization
        async with (
            aiohttp.ClientSession(timeout=HTTP) as http,
            http.request(method, self.url + path, json=body, headers=hdrs) as r,
        ):
            return r.status, await r.json(content_type=None)

    async def grant(self, principal: str, agent: str, skill: str, **kw: Any) -> dict[str, Any]:
        body = {"principal": principal, "agent": agent, "skill": skill, **kw}
        status, answer = await self.http("POST", "/admin/v1/grants", self.approver, body)
        assert status == 201, answer
        return dict(answer)

    @property
    def approver(self) -> str:
        return self.auth("avery-approver", ["approver"])


def alice_id(name: str) -> str:
    return f"{ISS}|{name}"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def env(demo_agents: AgentServers, tmp_path_factory: Any) -> AsyncIterator[Env]:
    state: Path = tmp_path_factory.mktemp("grants")
    dev = DevIssuer(state)
    policy_file = state / "request.cedar"
    policy_file.write_text(REQUEST_POLICY)
    echo = demo_agents.urls["echo"]
    gw = await start_gateway(
        state,
        {"echo": echo, "echo2": echo, "worker": demo_agents.urls["worker"]},
        identity={"issuers": [dev.issuer_config()]},
        policy={"files": [str(policy_file)]},
        grants={"url": f"sqlite:///{state / 'grants.db'}", "request_max_uses": 2,
                "request_max_ttl_s": 60},
        guards={
            "authn": {"required": True},
            "grants": {"jit_only": {"echo": ["*"], "echo2": ["summarize"],
                                    "worker": ["book-travel"]}},
        },
    )  # fmt: skip
    try:
        yield Env(gw, dev)
    finally:
        await gw.close()


def denied_for_grant(status: int, body: Any) -> bool:
    """JSON-RPC answers errors with HTTP 200; the A2A error carries the code."""
    return status == 200 and body.get("error", {}).get("code") == GRANT_REQUIRED


def passed(answer: tuple[int, Any]) -> bool:
    return answer[0] == 200 and "result" in answer[1]


async def test_jit_skill_is_denied_without_a_grant(env: Env) -> None:
    """A JIT-only skill without a grant: 403 -32089 naming the skill, and nothing else."""
    status, body = await env.call(env.auth("alice"), "echo2", "summarize")
    assert denied_for_grant(status, body), body
    message = body["error"]["message"]
    assert "'summarize'" in message
    assert "grant-" not in message


async def test_skill_that_is_not_jit_only_is_unaffected(env: Env) -> None:
    """On echo2 only summarize is JIT-only: its echo skill answers without any grant, and a
    grant the caller holds for summarize is not spent by it."""
    who = env.auth("nina")
    grant = await env.grant(alice_id("nina"), "echo2", "summarize", uses=1)
    answer = await env.call(who, "echo2", "echo")
    assert passed(answer), answer
    _, listed = await env.http("GET", f"/admin/v1/grants/{grant['id']}", env.approver)
    assert listed["uses_left"] == 1


async def test_message_naming_no_skill_is_denied_on_a_jit_agent(env: Env) -> None:
    """A message without metadata.skillId to an agent with JIT-only skills is refused, so the
    agent cannot be left to pick the JIT-only skill itself."""
    status, body = await env.call(env.auth("alice"), "echo2", None)
    assert denied_for_grant(status, body), body
    assert "skillId" in body["error"]["message"]


async def test_grant_allows_exactly_its_uses_and_then_is_exhausted(env: Env) -> None:
    """An approver's grant with 3 uses lets exactly 3 calls through; the 4th is denied."""
    who = env.auth("olga")
    grant = await env.grant(alice_id("olga"), "echo2", "summarize", uses=3, reason="INC-1")
    results = [await env.call(who, "echo2", "summarize") for _ in range(4)]
    assert [passed(r) for r in results] == [True, True, True, False]
    assert denied_for_grant(*results[3])
    assert "one two" in str(results[0][1])
    query = "/admin/v1/grants?principal=" + alice_id("olga")
    _, listed = await env.http("GET", query, env.approver)
    assert [g["state"] for g in listed["grants"]] == ["exhausted"]
    assert grant["issued_by"] == alice_id("avery-approver")
    issued = [e for e in env.events if e["type"] == "grant.issued" and e["grant"] == grant["id"]]
    assert issued[0]["actor"] == alice_id("avery-approver")
    assert issued[0]["reason"] == "INC-1"


async def test_grant_is_for_one_principal_agent_and_skill(env: Env) -> None:
    """A grant to pia for summarize on echo does not let ivan call it, nor pia call another
    skill of echo (all JIT-only) or summarize on echo2."""
    await env.grant(alice_id("pia"), "echo", "summarize", uses=10)
    status, body = await env.call(env.auth("ivan"), "echo", "summarize")
    assert denied_for_grant(status, body)
    assert "pia" not in body["error"]["message"]
    assert denied_for_grant(*await env.call(env.auth("pia"), "echo", "echo"))
    assert denied_for_grant(*await env.call(env.auth("pia"), "echo2", "summarize"))
    assert passed(await env.call(env.auth("pia"), "echo", "summarize"))


async def test_task_scoped_grant_needs_its_task(env: Env) -> None:
    """A grant for task ctx-A passes a message in context ctx-A only."""
    who = env.auth("quinn")
    await env.grant(alice_id("quinn"), "echo2", "summarize", task_id="ctx-A", uses=5)
    assert denied_for_grant(*await env.call(who, "echo2", "summarize", "ctx-B"))
    assert denied_for_grant(*await env.call(who, "echo2", "summarize"))
    assert passed(await env.call(who, "echo2", "summarize", "ctx-A"))


async def test_task_grant_matches_a_follow_up_by_task_id(env: Env) -> None:
    """book-travel: a grant for the first message's context starts the task; a grant for the
    task id the agent returned lets the follow-up (message.taskId) through, once."""
    who = env.auth("rosa")
    await env.grant(alice_id("rosa"), "worker", "book-travel", task_id="trip-1", uses=1)
    status, body = await env.call(who, "worker", "book-travel", "trip-1",
                                  parts=[{"text": "book a trip"}])  # fmt: skip
    assert passed((status, body)), body
    task_id = body["result"]["task"]["id"]
    follow = {"parts": [{"text": "next monday"}], "taskId": task_id}
    assert denied_for_grant(*await env.call(who, "worker", "book-travel", **follow))
    await env.grant(alice_id("rosa"), "worker", "book-travel", task_id=task_id, uses=1)
    answer = await env.call(who, "worker", "book-travel", **follow)
    assert passed(answer), answer
    assert denied_for_grant(*await env.call(who, "worker", "book-travel", **follow))


async def test_expired_grant_is_denied(env: Env) -> None:
    """A grant with a one-second lifetime stops working after it."""
    who = env.auth("sam")
    await env.grant(alice_id("sam"), "echo2", "summarize", ttl_s=1)
    assert passed(await env.call(who, "echo2", "summarize"))
    await asyncio.sleep(1.2)
    assert denied_for_grant(*await env.call(who, "echo2", "summarize"))


async def test_revoked_grant_is_denied_and_recorded(env: Env) -> None:
    """After an approver revokes a grant the next call is denied; the revocation is audited."""
    who = env.auth("tara")
    grant = await env.grant(alice_id("tara"), "echo2", "summarize")
    assert passed(await env.call(who, "echo2", "summarize"))
    path = f"/admin/v1/grants/{grant['id']}/revoke"
    status, body = await env.http("POST", path, env.approver, {"reason": "done"})
    assert status == 200, body
    assert denied_for_grant(*await env.call(who, "echo2", "summarize"))
    revoked = [e for e in env.events if e["type"] == "grant.revoked"]
    assert revoked[-1]["grant"] == grant["id"]
    assert (await env.http("POST", path, env.approver, {}))[0] == 409


async def test_approver_cannot_issue_a_grant_to_themselves(env: Env) -> None:
    """Four eyes: an approver's grant to their own principal is refused (403)."""
    body = {"principal": alice_id("avery-approver"), "agent": "echo2", "skill": "summarize"}
    status, answer = await env.http("POST", "/admin/v1/grants", env.approver, body)
    assert status == 403
    assert "itself" in answer["error"]["message"]


async def test_only_approvers_with_mfa_and_no_bootstrap_issue_grants(env: Env) -> None:
    """With identity on: an approver without MFA, a registry admin and the loopback bootstrap
    admin are all refused by policy."""
    body = {"principal": alice_id("uma"), "agent": "echo2", "skill": "summarize"}
    for who in (
        env.auth("weak-approver", ["approver"], amr=["pwd"]),
        env.auth("ada-admin", ["registry-admin"]),
    ):
        assert (await env.http("POST", "/admin/v1/grants", who, body))[0] == 403
    status, _ = await env.http("POST", "/admin/v1/grants", None, body, {"X-Maestro-Actor": "ops"})
    assert status == 403


async def test_self_request_is_denied_without_a_permitting_policy(env: Env) -> None:
    """A user asking for a grant for itself is refused: no policy permits request_grant."""
    body = {"agent": "echo2", "skill": "summarize"}
    status, answer = await env.http("POST", "/grants/v1/request", env.auth("uma"), body)
    assert status == 403, answer
    assert denied_for_grant(*await env.call(env.auth("uma"), "echo2", "summarize"))


async def test_self_request_is_issued_when_policy_permits_within_bounds(env: Env) -> None:
    """A contractor (the test policy) gets a summarize grant bounded by request_max_uses (2):
    exactly two calls pass. Other skills, and asks beyond the bounds, are refused."""
    who = env.auth("carl", ["contractor"])
    status, grant = await env.http("POST", "/grants/v1/request", who,
                                   {"agent": "echo2", "skill": "summarize"})  # fmt: skip
    assert status == 201, grant
    assert grant["source"] == "policy"
    assert grant["uses_left"] == 2
    assert grant["expires_at"] - grant["issued_at"] <= 60
    results = [passed(await env.call(who, "echo2", "summarize")) for _ in range(3)]
    assert results == [True, True, False]
    over = {"agent": "echo2", "skill": "summarize", "uses": 50}
    assert (await env.http("POST", "/grants/v1/request", who, over))[0] == 400
    other = {"agent": "worker", "skill": "book-travel"}
    assert (await env.http("POST", "/grants/v1/request", who, other))[0] == 403
    assert (await env.http("POST", "/grants/v1/request", None, other))[0] == 401
