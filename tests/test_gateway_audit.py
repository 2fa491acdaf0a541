"""The audit log as the gateway uses it: registry changes and denials recorded, verified,
proved, tampering caught, and no registry change without an audit record."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from maestro_gateway.cli import main
from maestro_gateway.demo.servers import AgentServers
from tests.conftest import start_gateway
from tests.test_gateway_registry import call, send


def audit_config(state: Path) -> Path:
    path = state / "audit.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "audit": {
                    "url": f"sqlite:///{state / 'audit.db'}",
                    "key_path": str(state / "audit-signing-key.pem"),
                    "state_file": str(state / "audit-verified.checkpoint"),
                }
            }
        )
    )
    return path


def records(state: Path) -> list[dict[str, object]]:
    with sqlite3.connect(state / "audit.db") as db:
        rows = db.execute("SELECT entry FROM audit_entries ORDER BY seq").fetchall()
    return [json.loads(r[0])["record"] for r in rows]


async def test_registry_changes_and_denials_are_audited_and_verify(
    demo_agents: AgentServers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Register, activate and a guard denial land in the audit log; `audit verify` passes,
    `audit prove` prints a proof, and a modified entry is detected."""
    gw = await start_gateway(tmp_path, {})
    admin = f"{gw.url}/admin/v1/agents"
    try:
        await call(
            "POST",
            admin,
            {"id": "echo", "card_url": demo_agents.urls["echo"]},
            {"X-Maestro-Actor": "alice"},
        )
        await call("POST", f"{admin}/echo/activate", {}, {"X-Maestro-Actor": "bob"})
        bad = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "SendMessage",
            "params": {
                "message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "x\u202e"}]}
            },
        }
        await call("POST", f"{gw.url}/agents/echo", bad, {"A2A-Version": "1.0"})
    finally:
        await gw.close()
    kinds = [(r["type"], r.get("actor")) for r in records(tmp_path)]
    assert ("registry.register", "alice") in kinds
    assert ("registry.activate", "bob") in kinds
    assert kinds[0][0] == "config.loaded"
    assert any(k == "guard.deny" for k, _ in kinds)
    config = audit_config(tmp_path)
    assert await asyncio.to_thread(main, ["audit", "--config", str(config), "verify"]) == 0
    assert "OK" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["audit", "--config", str(config), "prove", "1"]) == 0
    assert "inclusion" in capsys.readouterr().out.lower()
    with sqlite3.connect(tmp_path / "audit.db") as db:  # an attacker with database access
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
            db.execute(f"DROP TRIGGER {name}")
        seq, entry = next(
            (seq, entry)
            for seq, entry in db.execute("SELECT seq, entry FROM audit_entries ORDER BY seq")
            if b'"alice"' in bytes(entry)
        )
        forged = bytes(entry).replace(b"alice", b"mallory")
        db.execute("UPDATE audit_entries SET entry = ? WHERE seq = ?", (forged, seq))
    assert await asyncio.to_thread(main, ["audit", "--config", str(config), "verify"]) == 1
    assert "TAMPERING DETECTED" in capsys.readouterr().out


async def test_no_registry_change_without_audit(demo_agents: AgentServers, tmp_path: Path) -> None:
    """When the audit log cannot record, a registry change is refused (503) and nothing changes."""
    gw = await start_gateway(tmp_path, {"echo": demo_agents.urls["echo"]})
    try:
        await gw.app.audit.close()  # the audit log is gone
        status, problem = await call("POST", f"{gw.url}/admin/v1/agents/echo/suspend", {})
        assert status == 503, problem
        assert "nothing was changed" in problem["error"]["message"]
        status, reply = await send(gw.url, "echo")
        assert reply["result"]["message"]["parts"][0]["text"] == "echo: hi"  # still active
    finally:
        await gw.close()
