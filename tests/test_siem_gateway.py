"""SIEM export from a running gateway: a WAF block becomes a Detection Finding with the rule
ids, every call an API Activity, registry changes Entity Management; the gateway keeps
answering while the SIEM receiver is down."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from maestro_gateway.demo.servers import AgentServers
from tests.conftest import start_gateway
from tests.siem_receivers import HecServer
from tests.test_gateway_registry import call

SQLI = {"data": {"filter": "x' OR '1'='1' --"}}


def message(*parts: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {"message": {"messageId": "m1", "role": "ROLE_USER", "parts": list(parts)}},
    }


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def wait_for(path: Path, predicate: Any, limit_s: float = 15.0) -> list[dict[str, Any]]:
    for _ in range(int(limit_s / 0.05)):
        events = read_events(path)
        if predicate(events):
            return events
        await asyncio.sleep(0.05)
    raise AssertionError(f"not found in {read_events(path)!r}")


async def test_waf_block_and_allowed_call_reach_the_jsonl_export(
    demo_agents: AgentServers, tmp_path: Path
) -> None:
    """An SQL injection blocked by the WAF yields a Detection Finding (2004) naming the waf
    guard and rule 942180, correlated with the request's API Activity (6003); the allowed call
    yields an API Activity with status 200; the seeded agent's registration an Entity
    Management (3004) event."""
    out = tmp_path / "siem.jsonl"
    siem = {
        "enabled": True,
        "spool_dir": str(tmp_path / "spool"),
        "exporters": [{"type": "jsonl", "path": str(out)}],
    }
    gw = await start_gateway(tmp_path, {"echo": demo_agents.urls["echo"]}, siem=siem)
    try:
        headers = {"A2A-Version": "1.0", "X-Request-Id": "req-allowed"}
        status, _ = await call("POST", f"{gw.url}/agents/echo", message({"text": "hi"}), headers)
        assert status == 200
        headers["X-Request-Id"] = "req-sqli"
        status, body = await call("POST", f"{gw.url}/agents/echo", message(SQLI), headers)
        assert body["error"]["code"] == -32091, body  # JSON-RPC errors travel in HTTP 200

        def complete(events: list[dict[str, Any]]) -> bool:
            classes = [e["class_uid"] for e in events]
            return classes.count(6003) >= 2 and 2004 in classes and 3004 in classes

        events = await wait_for(out, complete)
        async with aiohttp.ClientSession() as http, http.get(f"{gw.url}/metrics") as resp:
            metrics = await resp.text()
    finally:
        await gw.close()
    by_req = {
        (e["class_uid"], e["metadata"].get("correlation_uid")): e
        for e in events
        if e["class_uid"] in (6003, 2004)
    }
    finding = by_req[(2004, "req-sqli")]
    assert finding["finding_info"]["analytic"]["name"] == "waf"
    assert "942180" in finding["finding_info"]["analytic"]["uid"].split(",")
    assert finding["disposition"] == "Blocked"
    assert finding["action_id"] == 2
    assert finding["resources"] == [{"uid": "echo", "type": "a2a_agent"}]
    blocked = by_req[(6003, "req-sqli")]
    assert blocked["status_detail"] == "deny"
    assert blocked["status_id"] == 2
    assert blocked["src_endpoint"]["ip"] == "127.0.0.1"
    allowed = by_req[(6003, "req-allowed")]
    assert allowed["api"]["operation"] == "SendMessage"
    assert allowed["status_id"] == 1
    assert allowed["api"]["response"]["code"] == 200
    changes = [e for e in events if e["class_uid"] == 3004]
    assert any(e["entity"]["uid"] == "echo" and e["activity_name"] == "Create" for e in changes)
    assert any(e["entity"]["type"] == "gateway_config" for e in changes)
    assert 'maestro_siem_events_total{counter="delivered_jsonl"}' in metrics
    assert 'maestro_siem_backlog{what="queue_length"}' in metrics


async def test_gateway_answers_while_the_siem_is_down(
    demo_agents: AgentServers, tmp_path: Path
) -> None:
    """With the HEC receiver not running, requests are still answered at once and their events
    wait in the spool; when the receiver comes up they are delivered."""
    hec = HecServer("tok")
    siem = {
        "enabled": True,
        "spool_dir": str(tmp_path / "spool"),
        "retry_initial_s": 0.05,
        "retry_max_s": 0.2,
        "exporters": [{"type": "hec", "url": hec.url, "token": "tok", "timeout_s": 2}],
    }
    gw = await start_gateway(tmp_path, {"echo": demo_agents.urls["echo"]}, siem=siem)
    try:
        for i in range(20):
            headers = {"A2A-Version": "1.0", "X-Request-Id": f"down-{i}"}
            status, _ = await asyncio.wait_for(
                call("POST", f"{gw.url}/agents/echo", message({"text": "hi"}), headers), 5
            )
            assert status == 200
        assert gw.app.siem is not None
        assert gw.app.siem.spool.used_bytes > 0
        await hec.start()
        for _ in range(300):
            ids = {e["metadata"].get("correlation_uid") for e in hec.events}
            if {f"down-{i}" for i in range(20)} <= ids:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("events were not delivered after the receiver came up")
    finally:
        await gw.close()
        await hec.stop()
