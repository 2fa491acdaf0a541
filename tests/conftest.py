"""Shared fixtures: real demo agents and a real gateway, all on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import uvloop

from maestro_gateway.app import Gateway, create_app
from maestro_gateway.config import parse_config
from maestro_gateway.demo.servers import AgentServers, AgentSpec, serve_agents, serve_apps
from maestro_gateway.spiffe.tls import SvidPaths

TIMEOUT = 20.0
AGENT_SPECS = [
    AgentSpec("echo"),
    AgentSpec("writer"),
    AgentSpec("worker"),
    AgentSpec("echo", protocol="0.3", name="echo-v03"),
    AgentSpec("worker", protocol="0.3", name="worker-v03"),
]


@dataclass
class RunningGateway:
    url: str
    app: Gateway
    servers: AgentServers

    async def close(self) -> None:
        await asyncio.wait_for(self.servers.close(), TIMEOUT)


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and key in out else value
    return out


def _mkdir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)


async def start_gateway(
    state: Path,
    agent_urls: dict[str, str],
    port: int = 0,
    *,
    agent_spiffe_ids: dict[str, str] | None = None,
    tls: SvidPaths | None = None,
    **overrides: Any,
) -> RunningGateway:
    """Run a gateway on loopback with the given agents seeded and active.

    ``agent_spiffe_ids`` registers agents with their expected SPIFFE IDs; ``tls`` serves the
    gateway itself on https with that SVID, client certificates required (tests/test_mtls*)."""
    ids = agent_spiffe_ids or {}
    holder: dict[str, Gateway] = {}

    def factory(base_url: str) -> Gateway:
        raw: dict[str, Any] = {
            "public_url": base_url,
            "registry": {"url": f"sqlite:///{state}/registry.db"},
            "approvals": {"url": f"sqlite:///{state}/approvals.db"},
            "grants": {"url": f"sqlite:///{state}/grants.db"},
            "gateway_key": {"path": str(state / "gateway-key.pem")},
            "audit": {
                "url": f"sqlite:///{state / 'audit.db'}",
                "key_path": str(state / "audit-signing-key.pem"),
                "state_file": str(state / "audit-verified.checkpoint"),
            },
            "agents": [
                {"id": name, "card_url": url, "activate": True}
                | ({"expected_spiffe_id": ids[name]} if name in ids else {})
                for name, url in agent_urls.items()
            ],
            "routing": [{"pattern": r"\breport\b", "skill": "write-report"}],
        }
        holder["app"] = create_app(parse_config(_merge(raw, overrides)))
        return holder["app"]

    _mkdir(state)
    tls_map = {"gateway": tls} if tls is not None else None
    servers = await asyncio.wait_for(serve_apps([("gateway", factory, port)], tls=tls_map), TIMEOUT)
    return RunningGateway(servers.urls["gateway"], holder["app"], servers)


@pytest.fixture(scope="session")
def event_loop_policy() -> uvloop.EventLoopPolicy:
    """Tests run on uvloop, as the gateway does in production."""
    return uvloop.EventLoopPolicy()


@pytest_asyncio.fixture(scope="session")
async def demo_agents() -> AsyncIterator[AgentServers]:
    servers = await asyncio.wait_for(serve_agents(AGENT_SPECS, long_job_seconds=30), TIMEOUT)
    try:
        yield servers
    finally:
        await asyncio.wait_for(servers.close(), TIMEOUT)


@pytest_asyncio.fixture(scope="session")
async def gateway(
    demo_agents: AgentServers, tmp_path_factory: Any
) -> AsyncIterator[RunningGateway]:
    running = await start_gateway(tmp_path_factory.mktemp("gw"), demo_agents.urls)
    try:
        yield running
    finally:
        await running.close()
