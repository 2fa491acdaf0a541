"""The registry through the gateway: admin API, CLI, lifecycle, restarts, bad cards."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from maestro_gateway.cli import main
from maestro_gateway.demo.servers import AgentServers
from tests.conftest import TIMEOUT, start_gateway

PG = "postgresql://postgres@127.0.0.1:5432/test"
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=TIMEOUT)
SEND = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "SendMessage",
    "params": {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}]}},
}


async def call(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http,
        http.request(method, url, json=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


async def send(gateway_url: str, agent: str) -> tuple[int, Any]:
    return await call("POST", f"{gateway_url}/agents/{agent}", SEND, {"A2A-Version": "1.0"})


async def test_lifecycle_controls_traffic(demo_agents: AgentServers, tmp_path: Path) -> None:
    """Only active agents get traffic; pending, suspended and retired look like missing ones."""
    gw = await start_gateway(tmp_path, {})
    admin = f"{gw.url}/admin/v1/agents"
    try:
        missing = await send(gw.url, "never-registered")
        status, version = await call(
            "POST",
            admin,
            {"id": "echo", "card_url": demo_agents.urls["echo"]},
            {"X-Maestro-Actor": "alice"},
        )
        assert status == 201, version
        assert (version["state"], version["created_by"]) == ("pending", "alice")
        assert await send(gw.url, "echo") == missing  # pending: indistinguishable
        status, record = await call(
            "POST", f"{admin}/echo/activate", {}, {"X-Maestro-Actor": "bob"}
        )
        assert (status, record["state"]) == (200, "active")
        status, reply = await send(gw.url, "echo")
        assert reply["result"]["message"]["parts"][0]["text"] == "echo: hi"
        assert (await call("POST", f"{admin}/echo/suspend", {}))[1]["state"] == "suspended"
        assert await send(gw.url, "echo") == missing
        card_status, _ = await call("GET", f"{gw.url}/agents/echo/.well-known/agent-card.json")
        assert card_status == 404
        assert (await call("POST", f"{admin}/echo/activate", {}))[1]["state"] == "active"
        assert (await call("POST", f"{admin}/echo/retire", {}))[1]["state"] == "retired"
        assert await send(gw.url, "echo") == missing
        status, _ = await call("POST", f"{admin}/echo/activate", {})
        assert status == 409
        status, events = await call("GET", f"{admin}/echo/events")
        actors = [(e["action"], e["actor"]) for e in events["events"]]
        assert actors[:2] == [("register", "alice"), ("activate", "bob")]
    finally:
        await gw.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/registry.db"
        return
    schema = f"gw_{uuid.uuid4().hex[:12]}"
    yield f"{PG}?schema={schema}"
    conn = await asyncpg.connect(PG)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def test_registry_survives_restart(
    demo_agents: AgentServers, tmp_path: Path, registry_url: str
) -> None:
    """An agent registered and activated before a restart is still served after it."""
    gw = await start_gateway(tmp_path, {}, registry={"url": registry_url})
    admin = f"{gw.url}/admin/v1/agents"
    try:
        await call("POST", admin, {"id": "writer", "card_url": demo_agents.urls["writer"]})
        await call("POST", f"{admin}/writer/activate", {})
        port = int(gw.url.rsplit(":", 1)[1])
    finally:
        await gw.close()
    again = await start_gateway(tmp_path, {}, port=port, registry={"url": registry_url})
    try:
        status, agents = await call("GET", f"{again.url}/admin/v1/agents")
        assert [(a["agent_id"], a["state"]) for a in agents["agents"]] == [("writer", "active")]
        status, card = await call("GET", f"{again.url}/agents/writer/.well-known/agent-card.json")
        assert status == 200
        assert card["name"]
    finally:
        await again.close()


BAD_CARDS = [
    ("not an object", [1, 2, 3]),
    ("missing fields", {"name": "x"}),
    ("wrong type", {"name": 5, "description": "d", "version": "1", "supportedInterfaces": []}),
    ("too large", {"name": "x" * 400_000}),
]


@pytest.mark.parametrize(("label", "card"), BAD_CARDS, ids=[b[0] for b in BAD_CARDS])
async def test_bad_card_is_refused_and_changes_nothing(
    demo_agents: AgentServers, tmp_path: Path, label: str, card: Any
) -> None:
    """A malformed or oversized card is refused with a clear error and nothing is stored."""
    gw = await start_gateway(tmp_path, {"echo": demo_agents.urls["echo"]})
    admin = f"{gw.url}/admin/v1/agents"
    try:
        before = await call("GET", f"{admin}/echo")
        status, problem = await call("POST", admin, {"id": "echo", "card": card})
        assert status in (400, 422), problem
        assert problem["error"]["message"]
        assert await call("GET", f"{admin}/echo") == before
        status, _ = await call("POST", admin, {"id": "fresh", "card": card})
        assert (await call("GET", f"{admin}/fresh"))[0] == 404
    finally:
        await gw.close()


async def test_unsigned_card_refused_when_signatures_required(
    demo_agents: AgentServers, tmp_path: Path
) -> None:
    """With require_signed_cards, an unsigned card is refused."""
    gw = await start_gateway(tmp_path, {}, registry={"require_signed_cards": True})
    try:
        status, problem = await call(
            "POST",
            f"{gw.url}/admin/v1/agents",
            {"id": "echo", "card_url": demo_agents.urls["echo"]},
        )
        assert status == 422
        assert "signed" in problem["error"]["message"]
    finally:
        await gw.close()


async def test_admin_token_is_enforced(tmp_path: Path) -> None:
    """With an admin token configured, the admin API refuses callers without it."""
    gw = await start_gateway(tmp_path, {}, admin_token="s3cret-token")
    try:
        status, _ = await call("GET", f"{gw.url}/admin/v1/agents")
        assert status == 401
        ok, _ = await call(
            "GET", f"{gw.url}/admin/v1/agents", headers={"Authorization": "Bearer s3cret-token"}
        )
        assert ok == 200
        spec, doc = await call("GET", f"{gw.url}/admin/v1/openapi.json")
        assert spec == 200
        assert doc["openapi"].startswith("3.")
    finally:
        await gw.close()


async def test_cli_manages_agents(
    demo_agents: AgentServers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`maestro-gateway agents register|activate|list|suspend` drive the admin API."""
    gw = await start_gateway(tmp_path, {})
    base = ["agents", "--gateway", gw.url]
    try:

        def run(*args: str) -> str:
            assert main([*base, *args]) == 0
            return capsys.readouterr().out

        out = await asyncio.to_thread(
            run, "register", "echo", "--card-url", demo_agents.urls["echo"]
        )
        assert "registered echo version 1 (state pending)" in out
        out = await asyncio.to_thread(run, "activate", "echo")
        assert "echo: active" in out
        out = await asyncio.to_thread(run, "list")
        assert out.split()[:2] == ["echo", "active"]
        out = await asyncio.to_thread(run, "suspend", "echo")
        assert "suspended" in out
    finally:
        await gw.close()


async def test_router_id_is_reserved(demo_agents: AgentServers, tmp_path: Path) -> None:
    """No agent can be registered as `router`, which would hide the skill router."""
    gw = await start_gateway(tmp_path, {})
    try:
        status, problem = await call(
            "POST",
            f"{gw.url}/admin/v1/agents",
            {"id": "router", "card_url": demo_agents.urls["echo"]},
        )
        assert status == 400
        assert "reserved" in problem["error"]["message"]
    finally:
        await gw.close()


async def test_unreachable_card_url_is_a_clear_error(tmp_path: Path) -> None:
    """A card URL nobody answers is refused with 422 naming the URL, not a 500."""
    gw = await start_gateway(tmp_path, {})
    try:
        status, problem = await call(
            "POST", f"{gw.url}/admin/v1/agents", {"id": "x", "card_url": "http://127.0.0.1:9/"}
        )
        assert status == 422
        assert "could not fetch the card" in problem["error"]["message"]
    finally:
        await gw.close()


@pytest.mark.postgres
async def test_store_failure_is_503_and_data_path_keeps_serving(
    demo_agents: AgentServers, tmp_path: Path
) -> None:
    """If the registry database fails, admin writes get 503 and active agents keep being served."""
    schema = f"gw_{uuid.uuid4().hex[:12]}"
    url = f"{PG}?schema={schema}"
    gw = await start_gateway(tmp_path, {"echo": demo_agents.urls["echo"]}, registry={"url": url})
    try:
        conn = await asyncpg.connect(PG)
        try:  # the database loses the registry's tables under the running gateway
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        finally:
            await conn.close()
        status, problem = await call("POST", f"{gw.url}/admin/v1/agents/echo/suspend", {})
        assert status == 503, problem
        assert (await call("GET", f"{gw.url}/readyz"))[0] == 503
        status, reply = await send(gw.url, "echo")
        assert reply["result"]["message"]["parts"][0]["text"] == "echo: hi"
    finally:
        await gw.close()


async def test_signed_cards_through_the_admin_api(
    demo_agents: AgentServers, tmp_path: Path
) -> None:
    """A card signed by a trusted key is accepted and marked signed; altered or untrusted is not."""
    from joserfc.jwk import ECKey

    from maestro_gateway.registry.cards import sign_card

    trusted = ECKey.generate_key("P-256", private=True)
    stranger = ECKey.generate_key("P-256", private=True)
    public = trusted.as_dict(private=False)
    status, card = await call("GET", f"{demo_agents.urls['echo']}/.well-known/agent-card.json")
    assert status == 200
    gw = await start_gateway(
        tmp_path,
        {},
        registry={"require_signed_cards": True, "trusted_keys": [{"kid": "ops", "jwk": public}]},
    )
    admin = f"{gw.url}/admin/v1/agents"
    try:
        signed = sign_card(card, trusted.as_dict(private=True), "ops")
        status, version = await call("POST", admin, {"id": "echo", "card": signed})
        assert status == 201, version
        assert (version["signed"], version["signature_kid"]) == (True, "ops")
        altered = {**signed, "description": "now with extra powers"}
        status, problem = await call("POST", admin, {"id": "echo", "card": altered})
        assert status == 422
        assert "altered" in problem["error"]["message"]
        forged = sign_card(card, stranger.as_dict(private=True), "ops")
        status, _ = await call("POST", admin, {"id": "echo", "card": forged})
        assert status == 422
        assert len((await call("GET", f"{admin}/echo"))[1]["versions"]) == 1
    finally:
        await gw.close()
