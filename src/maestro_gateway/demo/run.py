"""`maestro-gateway demo`: the gateway and three demo agents, all on loopback, one command.

All state (registry database, signing key, the generated configuration) lives under the
state directory (``.demo/``): a restart keeps it, deleting the directory resets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import uvloop
import yaml

from maestro_gateway.config import GatewayConfig, parse_config
from maestro_gateway.demo.servers import AgentSpec, serve_agents, serve_apps
from maestro_gateway.observability import setup_logging

AGENT_KINDS = ("echo", "writer", "worker")
AGENT_PORT_BASE = 9101


def demo_config(state_dir: Path, port: int, agent_urls: dict[str, str]) -> dict[str, object]:
    return {
        "listen": {"host": "127.0.0.1", "port": port},
        "public_url": f"http://127.0.0.1:{port}",
        "registry": {"url": f"sqlite:///{state_dir / 'registry.db'}"},
        "gateway_key": {"path": str(state_dir / "gateway-signing-key.pem")},
        "audit": {
            "url": f"sqlite:///{state_dir / 'audit.db'}",
            "key_path": str(state_dir / "audit-signing-key.pem"),
            "state_file": str(state_dir / "audit-verified.checkpoint"),
        },
        "guards": {"validate": {"ssrf": {"allow_loopback": False}}},
        "routing": [{"pattern": r"\b(report|write)\b", "skill": "write-report"}],
        "agents": [
            {"id": name, "card_url": f"{url}/.well-known/agent-card.json", "activate": True}
            for name, url in agent_urls.items()
        ],
        "logging": {"level": "info", "format": "json"},
    }


def sdk_snippet(base: str) -> str:
    """A complete a2a-sdk client program for the echo agent behind the gateway."""
    return f"""import asyncio
from a2a.client import ClientConfig, create_client
from a2a.helpers.proto_helpers import new_text_message
from a2a.types.a2a_pb2 import Role, SendMessageRequest

async def main():
    client = await create_client("{base}/agents/echo", ClientConfig(streaming=False))
    async with client:
        request = SendMessageRequest(message=new_text_message("hello", role=Role.ROLE_USER))
        async for event in client.send_message(request):
            print(event)

asyncio.run(main())
"""


def instructions(base: str, state_dir: str = ".demo") -> str:
    return f"""
Maestro Gateway demo is running at {base}
  agents: echo (plain replies), writer (streaming), worker (long task / input-required)
  cards:  {base}/agents/echo/.well-known/agent-card.json   (signed by the gateway key at
          {base}/.well-known/jwks.json)
  admin:  {base}/admin/v1/agents      (OpenAPI: {base}/admin/v1/openapi.json)

Try it with curl (A2A 1.0 JSON-RPC):
  curl -s {base}/agents/echo -H 'Content-Type: application/json' -H 'A2A-Version: 1.0' \\
    -d '{{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{{"message":{{"messageId":"m1","role":"ROLE_USER","parts":[{{"text":"hello"}}]}}}}}}'

Streaming (SSE):
  curl -sN {base}/agents/writer -H 'Content-Type: application/json' -H 'A2A-Version: 1.0' \\
    -d '{{"jsonrpc":"2.0","id":2,"method":"SendStreamingMessage","params":{{"message":{{"messageId":"m2","role":"ROLE_USER","parts":[{{"text":"quarterly report"}}]}}}}}}'

With the a2a-sdk client (Python):
{sdk_snippet(base)}
State lives in {state_dir}/ (rm -rf {state_dir} to reset). Press Ctrl-C to stop.
"""


def _write_config(state_dir: Path, raw: dict[str, object]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "gateway.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


async def _run(state_dir: Path, port: int, agent_port_base: int) -> None:
    specs = [AgentSpec(kind, port=agent_port_base + i) for i, kind in enumerate(AGENT_KINDS)]
    agents = await serve_agents(specs)
    try:
        raw = demo_config(state_dir, port, agents.urls)
        _write_config(state_dir, raw)
        cfg: GatewayConfig = parse_config(raw)
        setup_logging(cfg.logging.level, cfg.logging.format)
        from maestro_gateway.app import create_app

        gateway = create_app(cfg)
        servers = await serve_apps([("gateway", lambda _url: gateway, port)])
        print(instructions(servers.urls["gateway"], str(state_dir)), flush=True)
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
        await agents.close()


def run_demo(
    state_dir: str = ".demo", port: int = 8080, agent_port_base: int = AGENT_PORT_BASE
) -> int:
    # uvloop, as `serve` uses: the stdlib loop adds ~40 ms to each streamed response here
    uvloop.run(_run(Path(state_dir), port, agent_port_base))
    return 0
