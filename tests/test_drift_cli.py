"""`maestro-gateway scan-drift`: exit 0 when clean, 1 with findings (one JSON line each),
2 when the scan cannot be made."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

from maestro_gateway.cli import main
from maestro_gateway.demo.servers import AgentServers
from tests.conftest import start_gateway


def write_config(path: Path, data: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


async def scan(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[dict[str, Any]]]:
    code = await asyncio.to_thread(main, ["scan-drift", "--config", str(config)])
    out = capsys.readouterr().out
    return code, [json.loads(line) for line in out.splitlines() if line.strip()]


async def test_scan_drift_exit_codes(
    demo_agents: AgentServers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Clean registry: 0 and no output; an agent inserted in the database: 1 and a JSON line
    naming it; an edited configuration file: config.mismatch; no database or a bad config: 2."""
    drift = {"ssrf": {"allow_loopback": True}, "settle_s": 0}
    gw = await start_gateway(tmp_path, {"echo": demo_agents.urls["echo"]}, drift=drift)
    data = gw.app.cfg.model_dump(mode="json", by_alias=True)
    config = write_config(tmp_path / "gateway.yaml", data)
    try:
        assert await scan(config, capsys) == (0, [])
        with sqlite3.connect(tmp_path / "registry.db") as db:  # an attacker with the file
            db.execute(
                "INSERT INTO registry_agents VALUES ('mallory', NULL, 1, 'pending', NULL, NULL, "
                "NULL, '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')"
            )
        code, findings = await scan(config, capsys)
        assert code == 1
        assert [(f["type"], f["agent_id"]) for f in findings] == [
            ("registry.agent_unaudited", "mallory")
        ]
        assert set(findings[0]) == {
            "type", "severity", "confidence", "agent_id", "evidence", "detected_at"
        }  # fmt: skip
        with sqlite3.connect(tmp_path / "registry.db") as db:
            db.execute("DELETE FROM registry_agents WHERE agent_id = 'mallory'")
        assert await scan(config, capsys) == (0, [])
        edited = write_config(tmp_path / "edited.yaml", {**data, "admin_token": "changed"})
        code, findings = await scan(edited, capsys)
        assert (code, [f["type"] for f in findings]) == (1, ["config.mismatch"])
    finally:
        await gw.close()
    gone = {**data, "registry": {**data["registry"], "url": f"sqlite:///{tmp_path}/none.db"}}
    assert (await scan(write_config(tmp_path / "gone.yaml", gone), capsys))[0] == 2
    assert not (tmp_path / "none.db").exists()
    bad = write_config(tmp_path / "bad.yaml", {"drift": {"interval_s": -1}})
    assert (await scan(bad, capsys))[0] == 2
