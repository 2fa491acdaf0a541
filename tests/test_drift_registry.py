"""The drift scanner against direct edits of the registry database (SQLite and PostgreSQL):
each edit that bypasses the audited path is reported, and normal audited changes are not."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from maestro_gateway.audit.recorder import AuditRecorder
from maestro_gateway.config import DriftConfig, config_sha256, parse_config
from maestro_gateway.demo.servers import AgentServers
from maestro_gateway.drift import ConfigCheck, DriftScanner, Finding
from maestro_gateway.registry import AgentState, card_sha256
from maestro_gateway.registry.routing import Directory
from maestro_gateway.registry.service import RegistryService
from tests.conftest import start_gateway
from tests.services import unavailable
from tests.test_gateway_registry import call

PG_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
Sql = Callable[..., Awaitable[None]]


def card(name: str, release: str = "1") -> dict[str, Any]:
    return {
        "name": f"{name} agent",
        "description": f"The {name} agent, release {release}.",
        "supportedInterfaces": [
            {"url": f"https://{name}.example/a2a", "protocolBinding": "JSONRPC",
             "protocolVersion": "1.0"}
        ],
        "version": release,
        "capabilities": {"streaming": False},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [{"id": "work", "name": "Work", "description": "Works.", "tags": ["w"]}],
    }  # fmt: skip


@dataclass
class Env:
    registry: RegistryService
    audit: AuditRecorder
    scanner: DriftScanner
    sql: Sql
    seen: list[Finding]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    schema = f"test_drift_{uuid.uuid4().hex[:12]}"
    admin: asyncpg.Connection | None = None
    if request.param == "sqlite":
        registry_url, audit_url = f"sqlite:///{tmp_path}/registry.db", f"sqlite:///{tmp_path}/a.db"

        async def sql(statement: str, *args: Any) -> None:
            with sqlite3.connect(tmp_path / "registry.db") as db:
                db.execute(statement, args)

    else:
        try:
            admin = await asyncpg.connect(PG_SERVER)
        except (OSError, asyncpg.PostgresError) as exc:
            unavailable(f"PostgreSQL not reachable at {PG_SERVER}: {exc}")
        registry_url = f"{PG_SERVER}?schema={schema}"
        audit_url = f"{PG_SERVER}?schema={schema}_audit"

        async def sql(statement: str, *args: Any) -> None:
            assert admin is not None
            numbered = statement
            for i in range(1, statement.count("?") + 1):
                numbered = numbered.replace("?", f"${i}", 1)
            await admin.execute(f"SET search_path = {schema}")
            await admin.execute(numbered, *args)

    cfg = parse_config(
        {
            "registry": {"url": registry_url},
            "gateway_key": {"path": str(tmp_path / "gw.pem")},
            "audit": {"url": audit_url, "key_path": str(tmp_path / "audit.pem")},
            "drift": {"settle_s": 0},
        }
    )
    audit = AuditRecorder(cfg.audit)
    await audit.start()
    await audit.critical({"type": "config.loaded", "sha256": config_sha256(cfg)})
    registry = RegistryService(cfg, Directory(cfg.routing), audit)
    await registry.start()
    seen: list[Finding] = []

    async def collect(item: Finding) -> None:
        seen.append(item)

    scanner = DriftScanner.for_gateway(cfg, registry, audit, on_finding=collect)
    try:
        yield Env(registry, audit, scanner, sql, seen)
    finally:
        await registry.close()
        await audit.close()
        if admin is not None:
            for name in (schema, f"{schema}_audit"):
                await admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            await admin.close()


async def populate(registry: RegistryService) -> None:
    """Agents in every state, through the audited service (as the admin API does)."""
    for name in ("alpha", "beta", "gamma", "delta", "eps", "zeta"):
        await registry.register(name, actor="alice", card=card(name), owner="team-a")
    for name in ("alpha", "beta", "gamma", "eps", "zeta"):
        await registry.transition(name, AgentState.ACTIVE, actor="bob")
    await registry.transition("beta", AgentState.SUSPENDED, actor="bob")
    await registry.register("eps", actor="carol", card=card("eps", "2"), owner="team-a")
    await registry.transition("eps", AgentState.ACTIVE, actor="bob", version=2)  # supersede v1
    await registry.register("eps", actor="carol", card=card("eps", "3"), owner="team-a")
    await registry.transition("eps", AgentState.RETIRED, actor="bob", version=3)  # reject v3
    await registry.transition("zeta", AgentState.SUSPENDED, actor="bob")
    await registry.transition("zeta", AgentState.ACTIVE, actor="bob")  # resume
    await registry.transition("gamma", AgentState.RETIRED, actor="bob")


def by_agent(findings: list[Finding]) -> dict[str | None, set[str]]:
    out: dict[str | None, set[str]] = {}
    for item in findings:
        out.setdefault(item.agent_id, set()).add(item.type)
    return out


async def test_audited_changes_produce_no_findings(env: Env) -> None:
    """Register, activate, supersede, reject, suspend, resume and retire through the service
    leave a registry the scanner finds clean (no false positives)."""
    await populate(env.registry)
    report = await env.scanner.scan()
    assert report.findings == [], [f.as_json() for f in report.findings]
    assert report.errors == []
    assert report.audit_records > 20


async def test_direct_database_edits_are_caught(env: Env) -> None:
    """An inserted agent, a redirected upstream, a swapped card, a state flipped back to active
    and a deleted event, all made in the database directly, are each reported for their agent;
    the findings are audited and handed to on_finding."""
    await populate(env.registry)
    now = datetime.now(UTC)
    if "sqlite" in env.registry.cfg.registry.url:
        now_value: Any = now.isoformat()
    else:
        now_value = now
    evil = card("mallory")
    sha = card_sha256(evil)
    await env.sql(
        "INSERT INTO registry_agents VALUES (?, 1, 1, 'active', 'x', NULL, NULL, ?, ?)",
        "mallory", now_value, now_value,
    )  # fmt: skip
    await env.sql(
        "INSERT INTO registry_versions VALUES (?, 1, ?, ?, NULL, ?, '1.0', 'active', 'alice', ?, "
        "?, NULL)",
        "mallory", json.dumps(evil), sha, "https://mallory.example/a2a", now_value, False,
    )  # fmt: skip
    await env.sql(
        "UPDATE registry_versions SET upstream_url = ? WHERE agent_id = 'alpha'",
        "https://evil.example/a2a",
    )
    swapped = card("gamma", "666")
    await env.sql(
        "UPDATE registry_versions SET card = ?, card_sha256 = ? WHERE agent_id = 'zeta'",
        json.dumps(swapped), card_sha256(swapped),
    )  # fmt: skip
    await env.sql("UPDATE registry_agents SET state = 'active' WHERE agent_id = 'beta'")
    await env.sql("UPDATE registry_versions SET state = 'active' WHERE agent_id = 'beta'")
    await env.sql("DELETE FROM registry_events WHERE agent_id = 'delta' AND action = 'register'")
    report = await env.scanner.scan()
    found = by_agent(report.findings)
    assert "registry.agent_unaudited" in found["mallory"]
    assert "registry.version_mismatch" in found["alpha"]
    assert "registry.card_mismatch" in found["zeta"]
    assert "registry.state_mismatch" in found["beta"]
    assert "registry.event_missing" in found["delta"]
    assert set(found) == {"mallory", "alpha", "zeta", "beta", "delta"}, found
    alpha = next(f for f in report.findings if f.type == "registry.version_mismatch")
    assert alpha.severity == "critical"
    assert alpha.evidence["fields"]["upstream_url"] == {
        "registry": "https://evil.example/a2a",
        "audit": "https://alpha.example/a2a",
    }
    assert env.seen == report.findings
    audit_log = env.audit.log
    assert audit_log is not None
    await audit_log.flush()
    notes = [json.loads(bytes(row[3]))["record"] for row in [
        await audit_log.store.entry(seq) for seq in range(audit_log.size)
    ] if row is not None]  # fmt: skip
    drift = [n["finding"]["type"] for n in notes if n["type"] == "drift.finding"]
    assert sorted(drift) == sorted(f.type for f in report.findings)


async def test_a_deleted_agent_and_an_unaudited_event_are_caught(env: Env) -> None:
    """An agent removed from every table, and an event row inserted by hand, are reported."""
    await populate(env.registry)
    for table in ("registry_events", "registry_versions", "registry_agents"):
        await env.sql(f"DELETE FROM {table} WHERE agent_id = 'gamma'")
    at = datetime.now(UTC)
    at_value: Any = at.isoformat() if "sqlite" in env.registry.cfg.registry.url else at
    await env.sql(
        "INSERT INTO registry_events (agent_id, version, action, actor, at) "
        "VALUES ('alpha', 1, 'resume', 'nobody', ?)",
        at_value,
    )
    found = by_agent((await env.scanner.scan()).findings)
    assert found == {
        "gamma": {"registry.agent_missing"},
        "alpha": {"registry.event_unaudited"},
    }


async def test_audit_disabled_is_reported(env: Env) -> None:
    """A registry that has no audit log to compare with is a finding, not a clean scan."""
    scanner = DriftScanner(env.registry.cfg, store=lambda: env.registry.store, audit=lambda: None)
    report = await scanner.scan()
    assert [f.type for f in report.findings] == ["audit.unavailable"]


async def test_admin_api_flows_leave_no_findings(demo_agents: AgentServers, tmp_path: Path) -> None:
    """Seeded agents plus register, activate, suspend, resume, a new inline version activated
    (superseding the first), a rejected version and a retirement through the admin API give a
    clean scan, live cards included."""
    drift = {"ssrf": {"allow_loopback": True}, "settle_s": 0}
    gw = await start_gateway(tmp_path, {"echo": demo_agents.urls["echo"]}, drift=drift)
    admin = f"{gw.url}/admin/v1/agents"
    who = {"X-Maestro-Actor": "alice"}
    try:
        for name in ("echo-v03", "worker"):
            body = {"id": name, "card_url": demo_agents.urls[name]}
            result = await call("POST", admin, body, who)
            assert result[0] == 201, result
            assert (await call("POST", f"{admin}/{name}/activate", {}, who))[0] == 200
        assert (await call("POST", f"{admin}/echo-v03/suspend", {}, who))[0] == 200
        assert (await call("POST", f"{admin}/echo-v03/activate", {}, who))[0] == 200
        _, first = await call("GET", f"{demo_agents.urls['worker']}/.well-known/agent-card.json")
        second = {**first, "description": "Release two."}
        third = {**first, "description": "Release three."}
        for version in (second, third):
            body = {"id": "worker", "card": version}
            result = await call("POST", admin, body, who)
            assert result[0] == 201, result
        assert (await call("POST", f"{admin}/worker/activate", {"version": 2}, who))[0] == 200
        assert (await call("POST", f"{admin}/worker/retire", {"version": 3}, who))[0] == 200
        assert (await call("POST", f"{admin}/echo/retire", {}, who))[0] == 200
        report = await gw.app.drift.scan()
        assert report.findings == [], [f.as_json() for f in report.findings]
        assert report.cards_checked == 1  # echo-v03; worker's active card was given inline
    finally:
        await gw.close()


async def test_a_change_being_audited_is_not_reported(env: Env) -> None:
    """A registry change whose audit records land during the settle delay is not a finding;
    the same change never audited is."""
    await populate(env.registry)
    store = env.registry.store
    known = len(await store.events("alpha"))
    await store.transition("alpha", None, AgentState.SUSPENDED, actor="bob")  # not yet audited
    scanner = DriftScanner.for_gateway(
        env.registry.cfg.model_copy(update={"drift": DriftConfig(settle_s=0.5)}),
        env.registry,
        env.audit,
    )
    scanner.checks = [ConfigCheck(config_sha256(env.registry.cfg))]  # the audited config
    pending = asyncio.create_task(scanner.scan())
    await asyncio.sleep(0.2)  # the first pass has run: the change's audit records arrive now
    await env.registry._audit_events("alpha", known)
    assert (await pending).findings == []
    await store.transition("alpha", None, AgentState.ACTIVE, actor="bob")  # never audited
    assert {f.type for f in (await scanner.scan()).findings} == {
        "registry.event_unaudited",  # the resume event
        "registry.state_mismatch",  # active, where the audited events leave it suspended
    }
