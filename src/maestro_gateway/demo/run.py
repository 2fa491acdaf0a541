"""`maestro-gateway demo`: the gateway and three demo agents, all on loopback, one command.

All state (registry database, signing key, the generated configuration) lives under the
state directory (``.demo/``): a restart keeps it, deleting the directory resets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

import uvloop
import yaml

from maestro_gateway.agent.serve import gateway_only
from maestro_gateway.config import GatewayConfig, GatewayKeyConfig, parse_config
from maestro_gateway.demo.pki import (
    GATEWAY_ID,
    TRUST_DOMAIN,
    agent_spiffe_id,
    ensure_pki,
    rotate_forever,
)
from maestro_gateway.demo.servers import AgentSpec, serve_agents, serve_apps
from maestro_gateway.identity.devissuer import DevIssuer
from maestro_gateway.observability import setup_logging
from maestro_gateway.registry.signing import GatewaySigner
from maestro_gateway.spiffe.tls import SvidPaths

AGENT_KINDS = ("echo", "writer", "worker")
AGENT_PORT_BASE = 9101


def demo_config(
    state_dir: Path,
    port: int,
    agent_urls: dict[str, str],
    issuer: dict[str, object] | None = None,
    pki: Path | None = None,
) -> dict[str, object]:
    # With `pki`: agents on mTLS behind GatewayOnly, registered with their SPIFFE IDs; the
    # gateway calls them with its SVID and a signed assertion per request (docs/mtls.md).
    spiffe: dict[str, object] = {}
    if pki is not None:
        spiffe = {
            "trust_domain": TRUST_DOMAIN,
            "dir": str(pki),
            "name": "gateway",
            "gateway_id": GATEWAY_ID,
            "upstream_mtls": True,
            "upstream_require_tls": True,
            "assertions": {"enabled": True},
        }
    # Security on: every data-plane call needs a token from the embedded dev issuer with a
    # second factor (amr); see .demo/credentials.json and docs/identity.md.
    authn = {"required": True, "mfa": {"second_factor": True}}
    return {
        "identity": {"issuers": [issuer] if issuer else []},
        "listen": {"host": "127.0.0.1", "port": port},
        "public_url": f"http://127.0.0.1:{port}",
        "registry": {"url": f"sqlite:///{state_dir / 'registry.db'}"},
        "gateway_key": {"path": str(state_dir / "gateway-signing-key.pem")},
        "audit": {
            "url": f"sqlite:///{state_dir / 'audit.db'}",
            "key_path": str(state_dir / "audit-signing-key.pem"),
            "state_file": str(state_dir / "audit-verified.checkpoint"),
        },
        "guards": {"validate": {"ssrf": {"allow_loopback": False}}, "authn": authn},
        "routing": [{"pattern": r"\b(report|write)\b", "skill": "write-report"}],
        "agents": [
            {"id": name, "card_url": f"{url}/.well-known/agent-card.json", "activate": True}
            | ({"expected_spiffe_id": agent_spiffe_id(name)} if pki is not None else {})
            for name, url in agent_urls.items()
        ],
        "spiffe": spiffe,
        "logging": {"level": "info", "format": "json"},
    }


def sdk_snippet(base: str, token: str = "") -> str:
    """A complete a2a-sdk client program for the echo agent behind the gateway, as ``token``."""
    return f"""import asyncio
import httpx
from a2a.client import ClientConfig, create_client
from a2a.helpers.proto_helpers import new_text_message
from a2a.types.a2a_pb2 import Role, SendMessageRequest

TOKEN = "{token}"  # the demo user's bearer token (.demo/credentials.json, accounts.user)

async def main():
    http = httpx.AsyncClient(headers={{"Authorization": f"Bearer {{TOKEN}}"}}, timeout=30)
    config = ClientConfig(streaming=False, httpx_client=http)
    client = await create_client("{base}/agents/echo", config)
    async with client:
        request = SendMessageRequest(message=new_text_message("hello", role=Role.ROLE_USER))
        async for event in client.send_message(request):
            print(event)
    await http.aclose()

asyncio.run(main())
"""


def instructions(
    base: str, state_dir: str = ".demo", token: str = "", agent_port: int = 9101
) -> str:
    return f"""
Maestro Gateway demo is running at {base}
  agents: echo (plain replies), writer (streaming), worker (long task / input-required)
  cards:  {base}/agents/echo/.well-known/agent-card.json   (signed by the gateway key at
          {base}/.well-known/jwks.json)
  admin:  {base}/admin/v1/agents      (OpenAPI: {base}/admin/v1/openapi.json)

Security is on: every call needs a bearer token with MFA from the embedded dev issuer.
  {state_dir}/credentials.json holds tokens under accounts.admin (registry-admin),
  accounts.approver, accounts.user (all MFA: amr pwd+otp) and accounts.user_no_mfa (amr pwd:
  it gets the 401 step-up challenge). The user's token, for the lines below:
  export MAESTRO_TOKEN='{token}'

Try it with curl (A2A 1.0 JSON-RPC):
  curl -s {base}/agents/echo -H "Authorization: Bearer $MAESTRO_TOKEN" -H 'Content-Type: application/json' -H 'A2A-Version: 1.0' \\
    -d '{{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{{"message":{{"messageId":"m1","role":"ROLE_USER","parts":[{{"text":"hello"}}]}}}}}}'

Streaming (SSE):
  curl -sN {base}/agents/writer -H "Authorization: Bearer $MAESTRO_TOKEN" -H 'Content-Type: application/json' -H 'A2A-Version: 1.0' \\
    -d '{{"jsonrpc":"2.0","id":2,"method":"SendStreamingMessage","params":{{"message":{{"messageId":"m2","role":"ROLE_USER","parts":[{{"text":"quarterly report"}}]}}}}}}'

With the a2a-sdk client (Python):
{sdk_snippet(base, token)}
Everything behind the gateway runs on mTLS with SPIFFE IDs (dev CA in {state_dir}/pki): the
agents only accept the gateway's SVID plus its signed per-request assertion. Direct calls fail:
  curl -sk https://127.0.0.1:{agent_port}/ -d '{{}}'     -> TLS handshake failure (no client certificate)
  curl -sk --cert {state_dir}/pki/echo.pem --key {state_dir}/pki/echo.key https://127.0.0.1:{agent_port}/ -d '{{}}'
                                                    -> 403 (an SVID, but not the gateway's)

State lives in {state_dir}/ (rm -rf {state_dir} to reset). Press Ctrl-C to stop.
"""


def _write_config(state_dir: Path, raw: dict[str, object]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "gateway.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


async def _run(state_dir: Path, port: int, agent_port_base: int) -> None:
    specs = [AgentSpec(kind, port=agent_port_base + i) for i, kind in enumerate(AGENT_KINDS)]
    pki = state_dir / "pki"
    ensure_pki(pki, AGENT_KINDS)
    key = GatewayKeyConfig()
    signer = GatewaySigner(state_dir / "gateway-signing-key.pem", alg=key.alg, kid=key.kid)
    jwks = signer.public_jwks()  # the agents verify the gateway's assertions with it

    def guard(name: str, app: Any) -> Any:
        return gateway_only(app, gateway_id=GATEWAY_ID, jwks=jwks, audience=name)

    tls = {kind: SvidPaths.in_dir(pki, kind) for kind in AGENT_KINDS}
    agents = await serve_agents(specs, tls=tls, guard=guard)
    rotation = asyncio.create_task(rotate_forever(pki, AGENT_KINDS))
    try:
        issuer = DevIssuer(state_dir)
        raw = demo_config(state_dir, port, agents.urls, issuer.issuer_config(), pki)
        creds = issuer.write_credentials(state_dir / "credentials.json")
        _write_config(state_dir, raw)
        cfg: GatewayConfig = parse_config(raw)
        setup_logging(cfg.logging.level, cfg.logging.format)
        from maestro_gateway.app import create_app

        gateway = create_app(cfg)
        servers = await serve_apps([("gateway", lambda _url: gateway, port)])
        token = creds["accounts"]["user"]["token"]
        text = instructions(servers.urls["gateway"], str(state_dir), token, agent_port_base)
        print(text, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await servers.close()
    finally:
        rotation.cancel()
        await agents.close()


def run_demo(
    state_dir: str = ".demo", port: int = 8080, agent_port_base: int = AGENT_PORT_BASE
) -> int:
    # uvloop, as `serve` uses: the stdlib loop adds ~40 ms to each streamed response here
    uvloop.run(_run(Path(state_dir), port, agent_port_base))
    return 0
