"""C12/T6 on real TLS handshakes: the gateway calls agents over mTLS with SPIFFE IDs and signed
request assertions; agents run behind GatewayOnly; the gateway can require client SVIDs."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from maestro_gateway.agent.serve import gateway_only
from maestro_gateway.app import Gateway
from maestro_gateway.config import GatewayKeyConfig
from maestro_gateway.demo.servers import AgentServers, AgentSpec, serve_agents
from maestro_gateway.registry.models import AgentState, InvalidCard
from maestro_gateway.registry.signing import GatewaySigner
from maestro_gateway.reply import Call
from maestro_gateway.spiffe import SvidPaths, init_ca, issue_svid, rotate_svid
from maestro_gateway.spiffe._records import act_claim
from maestro_gateway.types import ASGIApp, Receive, Scope, Send
from tests.conftest import TIMEOUT, RunningGateway, start_gateway

TD = "maestro.test"
GW_ID = f"spiffe://{TD}/gateway"
KID = GatewayKeyConfig().kid  # the kid the gateway signs with
V10 = {"A2A-Version": "1.0", "Content-Type": "application/json"}
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=TIMEOUT)


def agent_id(name: str) -> str:
    return f"spiffe://{TD}/agent/{name}"


def send_body(text: str = "hello", rid: int = 1) -> bytes:
    message = {"messageId": f"m{rid}", "role": "ROLE_USER", "parts": [{"text": text}]}
    return orjson.dumps(
        {"jsonrpc": "2.0", "id": rid, "method": "SendMessage", "params": {"message": message}}
    )


def make_pki(root: Path) -> Path:
    """A dev CA for maestro.test with SVIDs for the gateway, echo, writer and a client."""
    pki = root / "pki"
    init_ca(pki, TD)
    issue_svid(pki, "gateway", GW_ID)
    for name in ("echo", "writer", "intruder"):
        issue_svid(pki, name, agent_id(name))
    issue_svid(pki, "alice", f"spiffe://{TD}/client/alice")
    return pki


def client_ctx(pki: Path, name: str | None) -> ssl.SSLContext:
    """A client context trusting the bundle, presenting ``name``'s SVID when given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(pki / "bundle.pem")
    if name is not None:
        ctx.load_cert_chain(pki / f"{name}.pem", pki / f"{name}.key")
    return ctx


async def svid_reloaded(app: Gateway, timeout_s: float = 10.0) -> None:
    """Wait until the gateway's SVID contexts hold the files now on disk (its refresh task)."""
    contexts = app.workload.contexts
    assert contexts is not None
    deadline = time.monotonic() + timeout_s
    while contexts._stamp != contexts._mtimes():
        assert time.monotonic() < deadline, "the gateway did not reload its SVID"
        await asyncio.sleep(0.1)


def fingerprint(pem_file: Path) -> str:
    cert = x509.load_pem_x509_certificate(pem_file.read_bytes())
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


class SeenCerts:
    """Wraps an agent app: records the client certificate fingerprint of each request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.fingerprints: list[str] = []
        self.claims: list[dict[str, Any]] = []  # what GatewayOnly verified, per request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            tls = (scope.get("extensions") or {}).get("tls") or {}
            self.fingerprints.append(str(tls.get("fingerprint_sha256")))
        await self.app(scope, receive, send)
        if scope["type"] == "http" and "maestro" in scope.get("state", {}):
            self.claims.append(scope["state"]["maestro"])


@dataclass
class Env:
    pki: Path
    agents: AgentServers
    gateway: RunningGateway
    signer: GatewaySigner
    seen: dict[str, SeenCerts]

    async def send(self, agent: str, body: bytes) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session,
            session.post(f"{self.gateway.url}/agents/{agent}", data=body, headers=V10) as resp,
        ):
            return resp.status, await resp.json(content_type=None)


def spiffe_config(pki: Path, **extra: Any) -> dict[str, Any]:
    return {
        "trust_domain": TD,
        "dir": str(pki),
        "name": "gateway",
        "gateway_id": GW_ID,
        "upstream_mtls": True,
        "assertions": {"enabled": True, "ttl_s": 30},
        "refresh_s": 0.2,
        **extra,
    }


async def start_guarded_agents(
    pki: Path, signer: GatewaySigner, names: dict[str, str], seen: dict[str, SeenCerts]
) -> AgentServers:
    """Demo agents on https with client certificates required, wrapped in GatewayOnly.

    ``names`` maps each agent's key to the SVID file it serves with."""
    jwks = signer.public_jwks()

    def guard(key: str, app: Any) -> Any:
        seen[key] = SeenCerts(gateway_only(app, gateway_id=GW_ID, jwks=jwks, audience=key))
        return seen[key]

    specs = [AgentSpec("echo", name=key) for key in names]
    tls = {key: SvidPaths.in_dir(pki, svid) for key, svid in names.items()}
    return await asyncio.wait_for(serve_agents(specs, tls=tls, guard=guard), TIMEOUT)


@pytest_asyncio.fixture(scope="module")
async def env(tmp_path_factory: Any) -> AsyncIterator[Env]:
    root = tmp_path_factory.mktemp("mtls")
    pki = make_pki(root)
    signer = GatewaySigner(root / "gateway-key.pem", kid=KID)  # the key the gateway loads
    seen: dict[str, SeenCerts] = {}
    # "impostor" serves with writer's SVID but will be registered as echo's identity.
    names = {"echo": "echo", "impostor": "writer"}
    agents = await start_guarded_agents(pki, signer, names, seen)
    gateway = await start_gateway(
        root,
        {"echo": agents.urls["echo"] + "/.well-known/agent-card.json"},
        agent_spiffe_ids={"echo": agent_id("echo")},
        spiffe=spiffe_config(pki),
    )
    try:
        yield Env(pki, agents, gateway, signer, seen)
    finally:
        await gateway.close()
        await agents.close()


async def test_call_through_gateway_over_mtls_succeeds(env: Env) -> None:
    """A message sent through the gateway reaches the guarded agent over mTLS with an assertion."""
    status, body = await env.send("echo", send_body())
    assert status == 200, body
    assert "echo: hello" in orjson.dumps(body).decode()
    assert env.gateway.app.directory.get("echo").expected_spiffe_id == agent_id("echo")  # type: ignore[union-attr]
    assert env.seen["echo"].fingerprints[-1] == fingerprint(env.pki / "gateway.pem")
    claims = env.seen["echo"].claims[-1]
    assert (claims["iss"], claims["aud"], claims["sub"]) == (GW_ID, "echo", "addr:127.0.0.1")


def test_act_claim_nests_the_delegation_chain() -> None:
    """A delegated identity's chain (current actor first) becomes RFC 8693 nested ``act``."""
    ident = SimpleNamespace(delegation=("spiffe://td/child", "spiffe://td/supervisor"))
    assert act_claim(ident) == {
        "sub": "spiffe://td/child",
        "act": {"sub": "spiffe://td/supervisor"},
    }
    assert act_claim(None) is None


async def test_upstream_mtls_connections_are_pooled(env: Env) -> None:
    """Many calls through the gateway reuse pooled TLS connections: no handshake per request."""
    client = env.gateway.app.upstream.client
    await env.send("echo", send_body())
    before = client.connections_made
    for i in range(40):
        status, _ = await env.send("echo", send_body(f"n{i}", rid=i + 2))
        assert status == 200
    assert client.connections_made - before <= 1


async def test_agent_with_wrong_spiffe_id_is_refused_and_logged(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """An agent presenting another SPIFFE ID than registered gets nothing: 502, logged."""
    registry = env.gateway.app.registry
    card_url = env.agents.urls["impostor"] + "/.well-known/agent-card.json"
    card = await registry.fetch_card(card_url, agent_id("writer"))  # its true identity
    echo_id = agent_id("echo")  # registered as echo's identity: the impostor is not that
    await registry.register("impostor", actor="test", card=card, expected_spiffe_id=echo_id)
    await registry.transition("impostor", AgentState.ACTIVE, actor="test")
    before = len(env.seen["impostor"].fingerprints)
    audited: list[dict[str, Any]] = []
    env.gateway.app.audit.observers.append(audited.append)
    with caplog.at_level(logging.WARNING, logger="maestro_gateway.spiffe"):
        _, body = await env.send("impostor", send_body())
    assert body["error"]["data"][0]["reason"] == "UPSTREAM_IDENTITY", body
    assert any("wrong workload identity" in r.getMessage() for r in caplog.records)
    refused = [r for r in audited if r.get("type") == "upstream.identity_refused"]
    assert refused
    assert refused[0]["expected"] == echo_id
    assert agent_id("writer") in refused[0]["reason"]
    message = {"messageId": "r1", "role": "ROLE_USER", "parts": [{"text": "hi"}]}
    async with (
        aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session,
        session.post(
            f"{env.gateway.url}/agents/impostor/rest/message:send",
            json={"message": message},
            headers={"Content-Type": "application/a2a+json"},
        ) as resp,
    ):
        assert resp.status == 502  # the HTTP+JSON binding carries the HTTP status
    assert len(env.seen["impostor"].fingerprints) == before  # no request reached it


async def test_agent_with_spiffe_id_is_never_called_over_plain_http(env: Env) -> None:
    """An agent registered with a SPIFFE ID but a plain http URL is refused (fail closed)."""
    registry = env.gateway.app.registry
    card = await registry.fetch_card(env.agents.urls["echo"], agent_id("echo"))
    await registry.register(
        "plain",
        actor="test",
        card=card,
        upstream_url="http://127.0.0.1:9/",
        expected_spiffe_id=agent_id("echo"),
    )
    await registry.transition("plain", AgentState.ACTIVE, actor="test")
    _, body = await env.send("plain", send_body())
    assert body["error"]["data"][0]["reason"] == "UPSTREAM_IDENTITY", body


async def test_card_fetch_checks_the_agent_spiffe_id(env: Env) -> None:
    """Registration by card URL refuses an agent whose certificate is not its expected ID."""
    url = env.agents.urls["impostor"] + "/.well-known/agent-card.json"
    with pytest.raises(InvalidCard, match="refused"):
        await env.gateway.app.registry.fetch_card(url, agent_id("echo"))


async def test_gateway_svid_rotation_applies_to_new_connections(env: Env) -> None:
    """After `rotate_svid`, the gateway's next new upstream connection presents the new SVID."""
    old = fingerprint(env.pki / "gateway.pem")
    status, _ = await env.send("echo", send_body())
    assert status == 200
    assert env.seen["echo"].fingerprints[-1] == old
    rotate_svid(env.pki, "gateway")
    new = fingerprint(env.pki / "gateway.pem")
    assert new != old
    await svid_reloaded(env.gateway.app)
    await env.gateway.app.upstream.client.close()  # end the pooled connections
    status, body = await env.send("echo", send_body("after rotation"))
    assert status == 200, body
    assert env.seen["echo"].fingerprints[-1] == new


async def test_inbound_client_svid_reaches_the_pipeline(tmp_path: Path) -> None:
    """With inbound TLS requiring client SVIDs, the caller's SPIFFE ID and fingerprint are
    handed to the pipeline and recorded; a caller without a certificate is refused; with
    upstream_require_tls, a plain-http agent is never called."""
    pki = make_pki(tmp_path)
    signer = GatewaySigner(tmp_path / "gateway-key.pem", kid=KID)
    seen: dict[str, SeenCerts] = {}
    agents = await start_guarded_agents(pki, signer, {"echo": "echo"}, seen)
    inbound = {"tls": True, "require_client_cert": True}
    cfg = spiffe_config(pki, inbound=inbound, upstream_require_tls=True)
    gateway = await start_gateway(
        tmp_path,
        {"echo": agents.urls["echo"]},
        agent_spiffe_ids={"echo": agent_id("echo")},
        tls=SvidPaths.in_dir(pki, "gateway"),
        spiffe=cfg,
    )
    calls: list[Call] = []
    gateway.app.dataplane.finished_hooks.append(lambda call, _scope: calls.append(call))
    try:
        assert gateway.url.startswith("https://")
        url = f"{gateway.url}/agents/echo"
        conn = aiohttp.TCPConnector(ssl=client_ctx(pki, "alice"))
        async with (
            aiohttp.ClientSession(timeout=HTTP_TIMEOUT, connector=conn) as session,
            session.post(url, data=send_body(), headers=V10) as resp,
        ):
            assert resp.status == 200, await resp.text()
        workload = calls[-1].workload or {}
        assert workload["client_spiffe_id"] == f"spiffe://{TD}/client/alice"
        assert workload["client_cert_sha256"] == fingerprint(pki / "alice.pem")
        assert workload["agent_spiffe_id"] == agent_id("echo")
        assert workload["gateway_id"] == GW_ID
        registry = gateway.app.registry
        card = await registry.fetch_card(agents.urls["echo"], agent_id("echo"))
        await registry.register("plain", actor="t", card=card, upstream_url="http://127.0.0.1:9/")
        await registry.transition("plain", AgentState.ACTIVE, actor="t")
        conn = aiohttp.TCPConnector(ssl=client_ctx(pki, "alice"))
        async with (
            aiohttp.ClientSession(timeout=HTTP_TIMEOUT, connector=conn) as session,
            session.post(f"{gateway.url}/agents/plain", data=send_body(), headers=V10) as resp,
        ):
            assert "UPSTREAM_IDENTITY" in await resp.text()
        conn = aiohttp.TCPConnector(ssl=client_ctx(pki, None))
        with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
            async with (
                aiohttp.ClientSession(timeout=HTTP_TIMEOUT, connector=conn) as session,
                session.post(url, data=send_body(), headers=V10) as resp,
            ):
                await resp.read()
    finally:
        await gateway.close()
        await agents.close()
