"""C21 playbooks end to end through a real gateway and real demo agents on loopback: an attack
creates a finding, the finding triggers an action, the action takes effect on the next request.

Clients connect from distinct loopback addresses (127.0.0.2, .3, ...), so until identity lands
each is its own principal (``addr:127.0.0.N``) and source.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from maestro_gateway.cli import main
from maestro_gateway.demo.servers import AgentServers
from maestro_gateway.guards.enforce import ENFORCED
from maestro_gateway.guards.waf import WAF_BLOCKED
from tests.conftest import TIMEOUT, RunningGateway, start_gateway

HTTP_TIMEOUT = aiohttp.ClientTimeout(total=TIMEOUT)
PROBES = [  # SQL injection variants a prober tries against the WAF (written for this test)
    "x' OR '1'='1' --",
    "1 UNION ALL SELECT username, password FROM users--",
    "'; DROP TABLE accounts; --",
    "1' AND SLEEP(5)-- -",
    "admin' OR 1=1 #",
    "1) OR (1=1) UNION SELECT NULL,NULL--",
    "' OR 'a'='a' /*",
    "1; EXEC xp_cmdshell('dir')--",
    "x' UNION SELECT table_name FROM information_schema.tables--",
    "' OR 1=1 LIMIT 1 --",
]


def message(data: Any = None, text: str = "hello") -> dict[str, Any]:
    part: dict[str, Any] = {"data": {"filter": data}} if data is not None else {"text": text}
    return {"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [part]}}


class Client:
    """A caller bound to its own loopback source address."""

    def __init__(self, gw: RunningGateway, addr: str, token: str | None = None) -> None:
        self.gw, self.addr, self.token = gw, addr, token

    async def __aenter__(self) -> Client:
        conn = aiohttp.TCPConnector(local_addr=(self.addr, 0))
        self.http = aiohttp.ClientSession(connector=conn, timeout=HTTP_TIMEOUT)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.close()

    def _headers(self) -> dict[str, str]:
        headers = {"A2A-Version": "1.0"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def send(self, agent: str = "echo", data: Any = None) -> dict[str, Any]:
        """JSON-RPC SendMessage; returns the JSON-RPC answer."""
        body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": message(data)}
        url = f"{self.gw.url}/agents/{agent}"
        async with self.http.post(url, json=body, headers=self._headers()) as resp:
            answer: dict[str, Any] = await resp.json(content_type=None)
            answer["_headers"] = dict(resp.headers)
            return answer

    async def send_rest(self, agent: str = "echo") -> tuple[int, dict[str, str], Any]:
        """HTTP+JSON message:send; returns HTTP status, headers and body."""
        url = f"{self.gw.url}/agents/{agent}/rest/message:send"
        async with self.http.post(url, json=message(), headers=self._headers()) as resp:
            return resp.status, dict(resp.headers), await resp.json(content_type=None)


def code(answer: dict[str, Any]) -> int | None:
    return answer.get("error", {}).get("code")


def served(answer: dict[str, Any]) -> bool:
    return "result" in answer


async def settle(gw: RunningGateway) -> None:
    """Wait until the detector has processed every finished request (and playbooks ran)."""
    detection = gw.app.response.detection
    assert detection is not None
    await asyncio.wait_for(detection.idle(), TIMEOUT)


async def probe(client: Client, n: int = len(PROBES)) -> list[int | None]:
    return [code(await client.send(data=p)) for p in PROBES[:n]]


def gateway_config(*playbooks: dict[str, Any], **playbooks_cfg: Any) -> dict[str, Any]:
    return {
        "detect": {"denials": {"threshold": 5, "window_s": 60}},
        "playbooks": {"playbooks": list(playbooks), **playbooks_cfg},
    }


BLOCK_PROBERS = {
    "name": "block-probers",
    "trigger": {"findings": ["denial_burst"], "min_confidence": 0.7},
    "actions": [{"type": "block_principal", "duration_s": 900}],
}


@pytest.fixture
async def gw_factory(demo_agents: AgentServers, tmp_path: Path) -> AsyncIterator[Any]:
    running: list[RunningGateway] = []

    async def start(**overrides: Any) -> RunningGateway:
        gw = await start_gateway(tmp_path / f"gw{len(running)}", demo_agents.urls, **overrides)
        running.append(gw)
        return gw

    try:
        yield start
    finally:
        for gw in running:
            await gw.close()


async def test_probing_raises_a_finding_that_blocks_the_prober(
    gw_factory: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A principal probing the WAF with SQL injection variants gets a denial_burst finding
    with confidence and evidence; the playbook blocks it, so its next (harmless) request is
    refused with -32094 while another principal is still served; reverting with the CLI
    restores access."""
    gw = await gw_factory(**gateway_config(BLOCK_PROBERS))
    audited: list[dict[str, Any]] = []
    gw.app.audit.observers.append(audited.append)
    async with Client(gw, "127.0.0.2") as mallory, Client(gw, "127.0.0.3") as alice:
        assert served(await mallory.send())
        codes = await probe(mallory)
        assert codes.count(WAF_BLOCKED) >= 7, codes
        await settle(gw)
        detection = gw.app.response.detection
        assert detection is not None
        bursts = [f for f in detection.recent if f.type == "denial_burst"]
        assert bursts, list(detection.recent)
        strongest = max(bursts, key=lambda f: f.confidence)
        assert strongest.principal == "addr:127.0.0.2"
        assert strongest.confidence >= 0.7
        assert strongest.evidence["guards"] == {"waf": strongest.evidence["denials"]}
        assert strongest.evidence["rules"]
        refused = await mallory.send()
        assert code(refused) == ENFORCED, refused
        assert refused["error"]["data"][0]["metadata"]["rule"] == "blocked-principal"
        assert int(refused["_headers"]["Retry-After"]) > 800
        assert served(await alice.send())
        assert code(await mallory.send(data=PROBES[0])) == ENFORCED  # refused before the WAF

        async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
            url = f"{gw.url}/admin/v1/playbooks/enforcement"
            async with http.get(url) as resp:
                assert "addr:127.0.0.2" in (await resp.json())["principal"]
        text = ["playbooks", "--gateway", gw.url]
        assert await asyncio.to_thread(main, [*text, "list"]) == 0
        assert "block-probers" in capsys.readouterr().out
        assert await asyncio.to_thread(main, [*text, "findings", "--type", "denial_burst"]) == 0
        assert "addr:127.0.0.2" in capsys.readouterr().out
        base = ["playbooks", "--gateway", gw.url, "--json"]
        assert await asyncio.to_thread(main, [*base, "actions", "--status", "applied"]) == 0
        actions = json.loads(capsys.readouterr().out)["actions"]
        assert [(a["action"], a["target"]) for a in actions] == [
            ("block_principal", "addr:127.0.0.2")
        ]
        revert = [*base, "--actor", "oncall", "revert", actions[0]["id"]]
        assert await asyncio.to_thread(main, revert) == 0
        assert json.loads(capsys.readouterr().out)["reverted_by"] == "oncall"
        assert served(await mallory.send())
    findings = [e for e in audited if e["type"] == "detect.finding"]
    assert {e["finding_type"] for e in findings} >= {"denial_burst"}
    assert all(0 <= e["confidence"] <= 1 and e["evidence"] for e in findings)
    [action] = [e for e in audited if e["type"] == "playbook.action"]
    assert (action["status"], action["target"]) == ("applied", "addr:127.0.0.2")
    [revert_event] = [e for e in audited if e["type"] == "playbook.revert"]
    assert revert_event["actor"] == "oncall"


async def test_dry_run_records_but_does_not_block(gw_factory: Any) -> None:
    """In dry-run mode the same attack is recorded as a dry_run action and nothing is blocked."""
    gw = await gw_factory(**gateway_config(BLOCK_PROBERS, dry_run=True))
    async with Client(gw, "127.0.0.2") as mallory:
        await probe(mallory)
        await settle(gw)
        engine = gw.app.response.playbooks
        assert engine is not None
        assert [r.status for r in engine.actions()] == ["dry_run"]
        assert served(await mallory.send())


async def test_global_cap_limits_how_many_principals_are_blocked(gw_factory: Any) -> None:
    """With max_blocked_principals=2, three probers: two are blocked, the third is refused by
    the cap and still served."""
    gw = await gw_factory(**gateway_config(BLOCK_PROBERS, limits={"max_blocked_principals": 2}))
    addrs = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    for addr in addrs:
        async with Client(gw, addr) as prober:
            await probe(prober)
            await settle(gw)
    engine = gw.app.response.playbooks
    assert engine is not None
    by_target = {r.target: r.status for r in engine.actions()}
    assert by_target == {
        "addr:127.0.0.2": "applied",
        "addr:127.0.0.3": "applied",
        "addr:127.0.0.4": "refused",
    }
    results = []
    for addr in addrs:
        async with Client(gw, addr) as prober:
            results.append(code(await prober.send()))
    assert results == [ENFORCED, ENFORCED, None]


async def test_token_reuse_from_a_new_source_revokes_the_token(gw_factory: Any) -> None:
    """A bearer token used from 127.0.0.2 and then from 127.0.0.3 raises a token_reuse
    finding; the playbook revokes the token, so its next use gets 401 invalid_token, and
    another token is still served."""
    revoke = {
        "name": "revoke-copied-tokens",
        "trigger": {"findings": ["token_reuse"], "min_confidence": 0.8},
        "actions": [{"type": "revoke_token"}],
    }
    gw = await gw_factory(**gateway_config(revoke))
    async with Client(gw, "127.0.0.2", "tok-alice") as owner:
        assert served(await owner.send())
        await settle(gw)
        async with Client(gw, "127.0.0.3", "tok-alice") as thief:
            assert served(await thief.send())
            await settle(gw)
        detection = gw.app.response.detection
        assert detection is not None
        [reuse] = [f for f in detection.recent if f.type == "token_reuse"]
        assert reuse.evidence["new_source"] == "127.0.0.3"
        assert reuse.evidence["known_sources"] == ["127.0.0.2"]
        assert reuse.token_id is not None
        assert "tok-alice" not in reuse.token_id
        status, headers, body = await owner.send_rest()
        assert status == 401, body
        assert 'error="invalid_token"' in headers["WWW-Authenticate"]
    async with Client(gw, "127.0.0.2", "tok-bob") as other:
        assert served(await other.send())


async def test_step_up_requirement_answers_with_a_401_challenge(gw_factory: Any) -> None:
    """A token_reuse finding requiring step-up for the new source's principal makes its next
    request a 401 with an insufficient_user_authentication challenge; the owner is served."""
    step_up = {
        "name": "step-up",
        "trigger": {"findings": ["token_reuse"], "min_confidence": 0.8},
        "actions": [{"type": "require_step_up", "duration_s": 600}],
    }
    gw = await gw_factory(**gateway_config(step_up))
    async with Client(gw, "127.0.0.2", "tok-carol") as owner:
        await owner.send()
        await settle(gw)
        async with Client(gw, "127.0.0.3", "tok-carol") as thief:
            await thief.send()
            await settle(gw)
            status, headers, _ = await thief.send_rest()
            assert status == 401
            assert 'error="insufficient_user_authentication"' in headers["WWW-Authenticate"]
            answer = await thief.send()
            assert code(answer) == ENFORCED
        assert served(await owner.send())


async def test_approval_requirement_holds_the_principals_next_message(gw_factory: Any) -> None:
    """A require_approval action puts the principal's next message on hold (AUTH_REQUIRED,
    nothing forwarded) while the token's owner is still served directly."""
    hold = {
        "name": "hold-reused-token",
        "trigger": {"findings": ["token_reuse"], "min_confidence": 0.8},
        "actions": [{"type": "require_approval", "duration_s": 600}],
    }
    gw = await gw_factory(**gateway_config(hold))
    async with Client(gw, "127.0.0.2", "tok-dave") as owner:
        await owner.send()
        await settle(gw)
        async with Client(gw, "127.0.0.3", "tok-dave") as thief:
            await thief.send()
            await settle(gw)
            answer = await thief.send()
            task = answer["result"]["task"]
            assert task["status"]["state"] == "TASK_STATE_AUTH_REQUIRED"
            assert task["id"].startswith("held-")
        assert "message" in (await owner.send())["result"]


async def test_suspend_agent_makes_it_answer_as_not_found(gw_factory: Any) -> None:
    """A playbook suspending the agent under attack (through the registry, audited) makes the
    next request to it look like one to a missing agent; reverting reactivates it."""
    suspend = {
        "name": "shield-agent",
        "trigger": {"findings": ["denial_burst"], "min_confidence": 0.7, "group_by": "agent"},
        "actions": [{"type": "suspend_agent"}],
    }
    gw = await gw_factory(**gateway_config(suspend))
    async with Client(gw, "127.0.0.2") as mallory, Client(gw, "127.0.0.3") as alice:
        missing = await alice.send("never-registered")
        await probe(mallory)
        await settle(gw)
        answer = await alice.send("echo")
        assert code(answer) == code(missing)
        assert answer["error"] == missing["error"]
        assert served(await alice.send("worker"))
        record = await gw.app.registry.get("echo")
        assert record is not None
        assert record.state.value == "suspended"
        engine = gw.app.response.playbooks
        assert engine is not None
        [action] = engine.actions("applied")
        async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
            url = f"{gw.url}/admin/v1/playbooks/actions/{action.id}/revert"
            async with http.post(url, headers={"X-Maestro-Actor": "oncall"}) as resp:
                assert resp.status == 200
        assert served(await alice.send("echo"))


async def test_webhook_action_reaches_a_loopback_receiver(gw_factory: Any) -> None:
    """A webhook action POSTs the finding to a real HTTP server, off the request path."""
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        await received.put({"auth": request.headers.get("X-Hook-Token"), **await request.json()})
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        notify = {
            "name": "notify-soc",
            "trigger": {"findings": ["denial_burst"], "min_confidence": 0.7},
            "actions": [
                {
                    "type": "webhook",
                    "url": f"http://127.0.0.1:{port}/hook",
                    "headers": {"X-Hook-Token": "s3"},
                }
            ],
        }
        gw = await gw_factory(**gateway_config(notify))
        async with Client(gw, "127.0.0.2") as mallory:
            await probe(mallory)
            await settle(gw)
        body = await asyncio.wait_for(received.get(), TIMEOUT)
        assert body["auth"] == "s3"
        assert body["finding"]["type"] == "denial_burst"
        assert body["finding"]["principal"] == "addr:127.0.0.2"
        engine = gw.app.response.playbooks
        assert engine is not None
        for _ in range(100):  # the record is updated when the POST completes
            if engine.actions()[0].detail.get("http_status"):
                break
            await asyncio.sleep(0.01)
        assert engine.actions()[0].detail["http_status"] == 204
    finally:
        await runner.cleanup()
