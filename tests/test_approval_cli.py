"""C3 approvals across restarts, from the CLI, with timeouts, on PostgreSQL, and failing closed
when the store or the audit log is gone: each against a real gateway and a counting agent."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from maestro_gateway.cli import main
from tests.conftest import start_gateway
from tests.services import unavailable
from tests.test_approval_gateway import (
    PAYMENT,
    admin,
    error_reason,
    held,
    message,
    overrides,
    recording_agent,
    rpc,
    send,
)

PG_SERVER = "postgresql://postgres@127.0.0.1:5432/test"


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run the CLI (in a thread: it makes blocking HTTP calls) and return what it printed."""
    capsys.readouterr()
    assert await asyncio.to_thread(main, list(argv)) == 0
    return capsys.readouterr().out


def audit_records(state: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(state / "audit.db") as db:
        rows = db.execute("SELECT entry FROM audit_entries ORDER BY seq").fetchall()
    return [json.loads(r[0])["record"] for r in rows]


async def test_hold_survives_restart_and_cli_approves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hold, restart the gateway, list/show/approve with the CLI, continue: the agent gets the
    request once, and every decision is in the audit log with its reason."""
    upstreams, recorder = await recording_agent()
    agents = {"bank": upstreams.urls["bank"]}
    try:
        first = await start_gateway(tmp_path, agents, **overrides(tmp_path))
        try:
            hold_id = await held(first.url)
        finally:
            await first.close()
        gw = await start_gateway(tmp_path, agents, **overrides(tmp_path))
        try:
            base = ["approvals", "--gateway", gw.url]
            listing = await cli(capsys, *base, "list", "--state", "pending")
            assert hold_id in listing
            assert "large amount" in listing
            shown = json.loads(await cli(capsys, *base, "show", hold_id))
            assert shown["params"] == message(PAYMENT)
            assert shown["findings"][0]["actual"] == "5000"
            out = await cli(capsys, *base, "--actor", "alice", "approve", hold_id, "--reason", "ok")
            assert out.strip() == f"{hold_id}: approved by alice"
            reply = await send(gw.url, message(text="go", task_id=hold_id))
            assert reply["result"]["message"]["parts"][0]["text"] == "ok"
        finally:
            await gw.close()
        sent = [r["params"] for _, r in recorder.requests if r["method"] == "SendMessage"]
        assert sent == [message(PAYMENT)]
        decisions = [r for r in audit_records(tmp_path) if str(r["type"]).startswith("approval.")]
        assert [r["type"] for r in decisions] == [
            "approval.held",
            "approval.approved",
            "approval.released",
        ]
        assert decisions[1]["actor"] == "alice"
        assert decisions[1]["reason"] == "ok"
    finally:
        await upstreams.close()


async def test_cli_denies_and_refuses_without_a_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`approvals deny` rejects the hold; approving without --actor is refused by the CLI."""
    upstreams, recorder = await recording_agent()
    gw = await start_gateway(tmp_path, {"bank": upstreams.urls["bank"]}, **overrides(tmp_path))
    try:
        hold_id = await held(gw.url)
        base = ["approvals", "--gateway", gw.url]
        with pytest.raises(SystemExit, match="--actor"):
            await asyncio.to_thread(main, [*base, "approve", hold_id])
        out = await cli(capsys, *base, "--actor", "bob", "deny", hold_id, "--reason", "unknown")
        assert out.strip() == f"{hold_id}: denied by bob"
        with pytest.raises(SystemExit, match="HTTP 409"):
            await asyncio.to_thread(main, [*base, "--actor", "bob", "approve", hold_id])
        task = (await rpc(gw.url, "bank", "GetTask", {"id": hold_id}))["result"]
        assert task["status"]["state"] == "TASK_STATE_REJECTED"
        assert recorder.requests == []
    finally:
        await gw.close()
        await upstreams.close()


async def test_timeout_denies(tmp_path: Path) -> None:
    """A hold nobody decides in time becomes REJECTED; it can no longer be approved or sent."""
    upstreams, recorder = await recording_agent()
    cfg = overrides(tmp_path, hold_timeout_s=0.3, sweep_interval_s=0.1)
    gw = await start_gateway(tmp_path, {"bank": upstreams.urls["bank"]}, **cfg)
    try:
        hold_id = await held(gw.url)
        await asyncio.sleep(0.6)
        status, record = await admin(gw.url, "GET", f"/approvals/{hold_id}")
        assert status == 200
        assert record["state"] == "expired"
        task = (await rpc(gw.url, "bank", "GetTask", {"id": hold_id}))["result"]
        assert task["status"]["state"] == "TASK_STATE_REJECTED"
        status, _ = await admin(gw.url, "POST", f"/approvals/{hold_id}/approve")
        assert status == 409
        reply = await send(gw.url, message(text="go", task_id=hold_id))
        assert error_reason(reply) == "APPROVAL_DENIED"
        assert recorder.requests == []
    finally:
        await gw.close()
        await upstreams.close()


async def test_store_failure_fails_closed(tmp_path: Path) -> None:
    """When the approvals store refuses writes, a flagged request gets 503 and is not sent."""
    upstreams, recorder = await recording_agent()
    gw = await start_gateway(tmp_path, {"bank": upstreams.urls["bank"]}, **overrides(tmp_path))
    try:
        with sqlite3.connect(tmp_path / "approvals.db") as db:
            db.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON approval_holds "
                "BEGIN SELECT RAISE(ABORT, 'approvals store refuses writes'); END"
            )
        reply = await send(gw.url, message(PAYMENT))
        assert error_reason(reply) == "APPROVALS_UNAVAILABLE"
        assert recorder.requests == []
    finally:
        await gw.close()
        await upstreams.close()


async def test_audit_failure_fails_closed(tmp_path: Path) -> None:
    """With the audit log gone, nothing is held, approved or released; nothing is sent."""
    upstreams, recorder = await recording_agent()
    gw = await start_gateway(tmp_path, {"bank": upstreams.urls["bank"]}, **overrides(tmp_path))
    try:
        hold_id = await held(gw.url)
        await admin(gw.url, "POST", f"/approvals/{hold_id}/approve")
        await gw.app.audit.close()  # the audit log is gone
        reply = await send(gw.url, message(text="go", task_id=hold_id))
        assert error_reason(reply) == "APPROVALS_UNAVAILABLE"
        reply = await send(gw.url, message({"amount": 9999, "destination": "ACME-01"}))
        assert error_reason(reply) == "APPROVALS_UNAVAILABLE"
        second = await gw.app.approvals.list()
        assert [h.state.value for h in second].count("pending") == 0
        assert recorder.requests == []
    finally:
        await gw.close()
        await upstreams.close()


@pytest.mark.postgres
async def test_postgres_store_end_to_end(tmp_path: Path) -> None:
    """With PostgreSQL as the store: hold, approve, release once, replay refused."""
    schema = f"test_approvals_{uuid.uuid4().hex[:12]}"
    try:
        pg = await asyncpg.connect(PG_SERVER)
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable(f"PostgreSQL not reachable at {PG_SERVER}: {exc}")
    upstreams, recorder = await recording_agent()
    cfg = {
        "guards": overrides(tmp_path)["guards"],
        "approvals": {"url": f"{PG_SERVER}?schema={schema}"},
    }
    gw = await start_gateway(tmp_path, {"bank": upstreams.urls["bank"]}, **cfg)
    try:
        hold_id = await held(gw.url)
        state = await pg.fetchval(
            f"SELECT state FROM {schema}.approval_holds WHERE id = $1", hold_id
        )
        assert state == "pending"
        await admin(gw.url, "POST", f"/approvals/{hold_id}/approve")
        for _ in range(2):
            await send(gw.url, message(text="go", task_id=hold_id))
        sent = [r["params"] for _, r in recorder.requests if r["method"] == "SendMessage"]
        assert sent == [message(PAYMENT)]
        state = await pg.fetchval(
            f"SELECT state FROM {schema}.approval_holds WHERE id = $1", hold_id
        )
        assert state == "released"
    finally:
        await gw.close()
        await upstreams.close()
        await pg.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await pg.close()


async def test_get_task_after_release_asks_the_agent(tmp_path: Path) -> None:
    """Once released, GetTask on the held id is forwarded as GetTask on the agent's own task."""
    upstreams, recorder = await recording_agent()
    agent_task = {"id": "t-agent-1", "contextId": "c-1", "status": {"state": "TASK_STATE_WORKING"}}
    recorder.reply = {"task": agent_task}
    gw = await start_gateway(tmp_path, {"bank": upstreams.urls["bank"]}, **overrides(tmp_path))
    try:
        hold_id = await held(gw.url)
        await admin(gw.url, "POST", f"/approvals/{hold_id}/approve")
        reply = await send(gw.url, message(text="go", task_id=hold_id))
        assert reply["result"]["task"]["id"] == "t-agent-1"
        await rpc(gw.url, "bank", "GetTask", {"id": hold_id})
        gets = [r["params"] for _, r in recorder.requests if r["method"] == "GetTask"]
        assert gets == [{"id": "t-agent-1"}]
    finally:
        await gw.close()
        await upstreams.close()


async def test_firewall_grey_zone_holds_through_the_real_firewall(tmp_path: Path) -> None:
    """The approval guard holds on the score the real firewall guard wrote for this request;
    where the firewall is off for an agent there is no score, and nothing is held."""
    upstreams, recorder = await recording_agent()
    cfg: dict[str, Any] = {
        "guards": {
            "firewall": {"action": "log"},
            "approval": {"firewall_grey_zone": {"low": 0.0, "high": 1.0}},
        },
        "guard_overrides": [{"agents": ["plain"], "guards": {"firewall": {"enabled": False}}}],
        "approvals": {"url": f"sqlite:///{tmp_path / 'approvals.db'}"},
    }
    agents = {"bank": upstreams.urls["bank"], "plain": upstreams.urls["bank"]}
    gw = await start_gateway(tmp_path, agents, **cfg)
    try:
        task = (await send(gw.url, message(text="summarise my invoices")))["result"]["task"]
        hold_id = task["id"]
        status, shown = await admin(gw.url, "GET", f"/approvals/{hold_id}")
        assert status == 200
        assert [f["type"] for f in shown["findings"]] == ["firewall_grey_zone"]
        assert recorder.requests == []
        reply = await send(gw.url, message(text="summarise my invoices"), agent="plain")
        assert reply["result"]["message"]["parts"][0]["text"] == "ok"
    finally:
        await gw.close()
        await upstreams.close()


def test_cli_output_cannot_drive_the_terminal() -> None:
    """Escape sequences and bidi overrides from a held payload are printed escaped."""
    from maestro_gateway.cli_approvals import _printable

    assert _printable("pay\x1b[2J\u202eEVIL\nnext é") == "pay\\u001b[2J\\u202eEVIL\nnext é"
