"""C17 with identity off: the bootstrap admin issues grants (four eyes on its actor name),
JIT-only set through guard_overrides, grants survive a gateway restart, the CLI drives the
admin API, and a gateway whose grant store is down denies JIT calls (fail closed)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from maestro_gateway.a2a.errors import INTERNAL_ERROR
from maestro_gateway.cli import main
from maestro_gateway.demo.servers import AgentServers
from maestro_gateway.guards.grants import GRANT_REQUIRED
from tests.conftest import TIMEOUT, RunningGateway, start_gateway

HTTP = aiohttp.ClientTimeout(total=TIMEOUT)
ME = "addr:127.0.0.1"  # without identity, a caller's principal is its source address


async def start(state: Path, demo_agents: AgentServers) -> RunningGateway:
    return await start_gateway(
        state,
        {"echo": demo_agents.urls["echo"]},
        grants={"url": f"sqlite:///{state / 'grants.db'}"},
        guard_overrides=[{"agents": ["echo"], "guards": {"grants": {"skills": ["summarize"]}}}],
    )


async def call(gw: RunningGateway, skill: str = "summarize") -> Any:
    message = {
        "messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "a b c"}],
        "metadata": {"skillId": skill},
    }  # fmt: skip
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
    async with (
        aiohttp.ClientSession(timeout=HTTP) as http,
        http.post(f"{gw.url}/agents/echo", json=body, headers={"A2A-Version": "1.0"}) as r,
    ):
        return await r.json(content_type=None)


async def admin(gw: RunningGateway, path: str, body: Any, actor: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(timeout=HTTP) as http,
        http.post(gw.url + path, json=body, headers={"X-Maestro-Actor": actor}) as r,
    ):
        return r.status, await r.json(content_type=None)


def code(answer: Any) -> int | None:
    return answer.get("error", {}).get("code") if isinstance(answer, dict) else None


async def test_bootstrap_grant_survives_a_restart(
    demo_agents: AgentServers, tmp_path: Path
) -> None:
    """The bootstrap admin (acting as "ops") issues 2 uses; one is spent; after a restart on
    the same SQLite file exactly one more call passes."""
    gw = await start(tmp_path, demo_agents)
    try:
        assert code(await call(gw)) == GRANT_REQUIRED
        assert "result" in await call(gw, "echo")  # not JIT-only: no grant needed
        body = {"principal": ME, "agent": "echo", "skill": "summarize", "uses": 2}
        status, grant = await admin(gw, "/admin/v1/grants", body, "ops")
        assert status == 201, grant
        assert grant["issued_by"] == "ops"
        assert "result" in await call(gw)
    finally:
        await gw.close()
    gw = await start(tmp_path, demo_agents)
    try:
        assert "result" in await call(gw)
        assert code(await call(gw)) == GRANT_REQUIRED
    finally:
        await gw.close()


async def test_bootstrap_admin_cannot_grant_to_the_name_it_acts_as(
    demo_agents: AgentServers, tmp_path: Path
) -> None:
    """Four eyes on the bootstrap path: acting as the grantee's own name is refused."""
    gw = await start(tmp_path, demo_agents)
    try:
        body = {"principal": ME, "agent": "echo", "skill": "summarize"}
        status, answer = await admin(gw, "/admin/v1/grants", body, ME)
        assert status == 403, answer
        status, answer = await admin(gw, "/admin/v1/grants", {**body, "agent": "nope"}, "ops")
        assert status == 404, answer
        status, answer = await admin(gw, "/admin/v1/grants", {**body, "uses": -1}, "ops")
        assert status == 400, answer
    finally:
        await gw.close()


async def test_store_down_denies_jit_calls_and_grant_changes(
    demo_agents: AgentServers, tmp_path: Path
) -> None:
    """With the grant store closed a JIT call is refused (internal error, 503) and issuing
    answers 503; non-JIT skills keep working; reopening the store restores service."""
    gw = await start(tmp_path, demo_agents)
    try:
        body = {"principal": ME, "agent": "echo", "skill": "summarize"}
        assert (await admin(gw, "/admin/v1/grants", body, "ops"))[0] == 201
        await gw.app.pipeline.grants.close()
        answer = await call(gw)
        assert code(answer) == INTERNAL_ERROR
        assert "grants store" in answer["error"]["message"]
        assert (await admin(gw, "/admin/v1/grants", body, "ops"))[0] == 503
        assert "result" in await call(gw, "echo")
        await gw.app.pipeline.grants.start()
        assert "result" in await call(gw)
    finally:
        await gw.close()


async def test_cli_issues_lists_revokes_and_requests(
    demo_agents: AgentServers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`grants issue|list|revoke` work through the admin API; `grants request` without a
    permitting policy fails with the policy's 403."""
    gw = await start(tmp_path, demo_agents)
    base = ["grants", "--gateway", gw.url, "--actor", "ops"]
    try:
        issue = ["issue", "--principal", ME, "--agent", "echo", "--skill", "summarize"]
        assert await asyncio.to_thread(main, [*base, *issue, "--uses", "3"]) == 0
        grant_id = capsys.readouterr().out.split()[0]
        assert grant_id.startswith("grant-")
        assert "result" in await call(gw)
        assert await asyncio.to_thread(main, [*base, "list", "--active"]) == 0
        listed = capsys.readouterr().out
        assert grant_id in listed
        assert "uses_left=2" in listed
        assert await asyncio.to_thread(main, [*base, "revoke", grant_id, "--reason", "x"]) == 0
        assert "revoked by ops" in capsys.readouterr().out
        assert code(await call(gw)) == GRANT_REQUIRED
        request = ["request", "--agent", "echo", "--skill", "summarize"]
        with pytest.raises(SystemExit, match="HTTP 403"):
            await asyncio.to_thread(main, [*base, *request])
    finally:
        await gw.close()
