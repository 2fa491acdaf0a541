"""`maestro-gateway demo`: the gateway and three demo agents, all on loopback, one command.

All state (registry database, signing key, the generated configuration) lives under the
state directory (``.demo/``): a restart keeps it, deleting the directory resets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import yaml

from maestro_gateway.config import GatewayConfig, parse_config
from maestro_gateway.demo.servers import AgentSpec, serve_agents, serve_apps
from maestro_gateway.observability import setup_logging

AGENT_PORTS = {"echo": 9101, "writer": 9102, "worker": 9103}


def demo_config(state_dir: Path, port: int, agent_urls: dict[str, str]) -> dict[str, object]:
    return {
        "listen": {"host": "127.0.0.1", "port": port},
        "public_url": f"http://127.0.0.1:{port}",
        "registry": {"url": f"sqlite:///{state_dir / 'registry.db'}"},
        "gateway_key": {"path": str(state_dir / "gateway-signing-key.pem")},
        "guards": {"validate": {"ssrf": {"allow_loopback": False}}},
        "routing": [{"pattern": r"\b(report|write)\b", "skill": "write-report"}],
        "agents": [
            {"id": name, "card_url": f"{url}/.well-known/agent-card.json", "activate": True}
            for name, url in agent_urls.items()
        ],
        "logging": {"level": "info", "format": "json"},
    }


def instructions(base: str) -> str:
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
  import asyncio, httpx
  from a2a.client import ClientConfig, ClientFactory
  from a2a.helpers.proto_helpers import new_text_message  # or build a Message yourself
  async def main():
      async with httpx.AsyncClient() as http:
          client = await ClientFactory.connect("{base}/agents/echo",
                                               client_config=ClientConfig(httpx_client=http))
          async for event in client.send_message(new_text_message("hello")):
              print(event)
  asyncio.run(main())

State lives in .demo/ (rm -rf .demo to reset). Press Ctrl-C to stop.
"""


def _write_config(state_dir: Path, raw: dict[str, object]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "gateway.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


async def _run(state_dir: Path, port: int) -> None:
    specs = [AgentSpec(kind, port=p) for kind, p in AGENT_PORTS.items()]
    agents = await serve_agents(specs)
    try:
        raw = demo_config(state_dir, port, agents.urls)
        _write_config(state_dir, raw)
        cfg: GatewayConfig = parse_config(raw)
        setup_logging(cfg.logging.level, cfg.logging.format)
        from maestro_gateway.app import create_app

        gateway = create_app(cfg)
        servers = await serve_apps([("gateway", lambda _url: gateway, port)])
        print(instructions(servers.urls["gateway"]), flush=True)
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


def run_demo(state_dir: str = ".demo", port: int = 8080) -> int:
    asyncio.run(_run(Path(state_dir), port))
    return 0
