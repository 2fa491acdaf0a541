"""Helpers several test modules share: a settable clock, a store URL per backend (SQLite file or
a throw-away schema on the real PostgreSQL server), a started audit recorder and its records,
and a gateway in front of loopback agents for the guard end-to-end tests."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from maestro_gateway.audit.recorder import AuditRecorder
from maestro_gateway.config import AuditConfig
from maestro_gateway.demo.servers import serve_apps
from tests.conftest import RunningGateway, start_gateway
from tests.services import unavailable
from tests.upstreams import RecordingAgent, SteppedStreamAgent

PG_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
STORE_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


class Clock:
    """A clock the test moves by setting ``now`` (UNIX seconds)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def store_url(backend: str, tmp_path: Path, name: str) -> AsyncIterator[str]:
    """``sqlite:///<tmp>/<name>.db``, or the PostgreSQL server with a fresh schema (dropped
    afterwards); an unreachable server skips the test (fails it where integration is required)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / f'{name}.db'}"
        return
    schema = f"test_{name}_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(PG_SERVER)
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable(f"PostgreSQL not reachable at {PG_SERVER}: {exc}")
    try:
        yield f"{PG_SERVER}?schema={schema}"
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


@pytest.fixture(name="store_url", params=STORE_BACKENDS)
async def store_url_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Fixture ``store_url``: a store on each backend in turn (import it into the module)."""
    async with store_url(request.param, tmp_path, "store") as url:
        yield url


@asynccontextmanager
async def audit_recorder(tmp_path: Path) -> AsyncIterator[AuditRecorder]:
    """A started recorder on ``<tmp>/audit.db`` (read back with :func:`audit_records`)."""
    recorder = AuditRecorder(
        AuditConfig(
            url=f"sqlite:///{tmp_path / 'audit.db'}",
            key_path=str(tmp_path / "audit-key.pem"),
            state_file=str(tmp_path / "audit.checkpoint"),
        )
    )
    await recorder.start()
    try:
        yield recorder
    finally:
        await recorder.close()


@pytest.fixture(name="audit")
async def audit_fixture(tmp_path: Path) -> AsyncIterator[AuditRecorder]:
    """Fixture ``audit``: :func:`audit_recorder` (import it into the module)."""
    async with audit_recorder(tmp_path) as recorder:
        yield recorder


def audit_records(tmp_path: Path) -> list[dict[str, Any]]:
    """The records in ``<tmp>/audit.db``, oldest first."""
    with sqlite3.connect(tmp_path / "audit.db") as db:
        rows = db.execute("SELECT entry FROM audit_entries ORDER BY seq").fetchall()
    return [json.loads(r[0])["record"] for r in rows]


@asynccontextmanager
async def gateway_with_agents(
    tmp_path: Path, *recording: str, **overrides: Any
) -> AsyncIterator[tuple[RunningGateway, dict[str, Any]]]:
    """A gateway (``start_gateway`` with ``overrides``) in front of a :class:`RecordingAgent`
    under each name in ``recording`` and a :class:`SteppedStreamAgent` named ``stepped``, all on
    loopback: the gateway and the agents by name; everything is stopped afterwards."""
    made: dict[str, Any] = {}

    def recorder(name: str) -> Any:
        def make(base: str) -> RecordingAgent:
            made[name] = RecordingAgent(base)
            return made[name]

        return make

    def stepped(base: str) -> SteppedStreamAgent:
        made["stepped"] = SteppedStreamAgent(base)
        return made["stepped"]

    upstreams = await serve_apps({**{n: recorder(n) for n in recording}, "stepped": stepped})
    gateway = await start_gateway(tmp_path, dict(upstreams.urls), **overrides)
    try:
        yield gateway, made
    finally:
        made["stepped"].release(100)
        await gateway.close()
        await upstreams.close()
