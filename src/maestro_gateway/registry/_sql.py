"""The registry over SQL, shared by the SQLite and PostgreSQL stores.

A backend supplies transactions (:meth:`SqlRegistryStore._write` serialises writers per agent
and commits or rolls back as a whole; :meth:`_read` gives a consistent view) and the column
types for timestamps and event ids. Statements use ``?`` placeholders; backends translate.
Every check that can fail runs before the first write, and every write of one operation is in
one transaction, so a refused or failing operation changes nothing.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from maestro_gateway.registry._lifecycle import plan_transition
from maestro_gateway.registry.cards import card_sha256, validate_card
from maestro_gateway.registry.models import (
    AGENT_ID_RE,
    PROTOCOL_VERSIONS,
    AgentRecord,
    AgentState,
    AgentVersion,
    Conflict,
    InvalidArgument,
    NotFound,
    ProtocolVersion,
    RegistryEvent,
)

SCHEMA_VERSION = 1


def schema(timestamp: str, serial: str) -> list[str]:
    """DDL, idempotent; ``timestamp`` and ``serial`` are the backend's column types."""
    return [
        """CREATE TABLE IF NOT EXISTS registry_meta (
            key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS registry_agents (
            agent_id TEXT PRIMARY KEY,
            active_version INTEGER,
            latest_version INTEGER NOT NULL,
            state TEXT NOT NULL,
            owner TEXT,
            tenant TEXT,
            expected_spiffe_id TEXT,
            created_at {timestamp} NOT NULL,
            updated_at {timestamp} NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS registry_versions (
            agent_id TEXT NOT NULL REFERENCES registry_agents (agent_id),
            version INTEGER NOT NULL,
            card TEXT NOT NULL,
            card_sha256 TEXT NOT NULL,
            source_url TEXT,
            upstream_url TEXT NOT NULL,
            protocol_version TEXT NOT NULL,
            state TEXT NOT NULL,
            created_by TEXT NOT NULL,
            created_at {timestamp} NOT NULL,
            signed BOOLEAN NOT NULL,
            signature_kid TEXT,
            PRIMARY KEY (agent_id, version))""",
        f"""CREATE TABLE IF NOT EXISTS registry_events (
            id {serial} PRIMARY KEY,
            agent_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            action TEXT NOT NULL,
            actor TEXT NOT NULL,
            at {timestamp} NOT NULL,
            before_sha256 TEXT,
            after_sha256 TEXT)""",
        "CREATE INDEX IF NOT EXISTS registry_events_by_agent ON registry_events (agent_id, id)",
        f"""INSERT INTO registry_meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}')
            ON CONFLICT (key) DO NOTHING""",
    ]


class Tx(Protocol):
    """One open transaction (or read view)."""

    async def one(self, sql: str, *args: Any) -> dict[str, Any] | None: ...
    async def all(self, sql: str, *args: Any) -> list[dict[str, Any]]: ...
    async def run(self, sql: str, *args: Any) -> None: ...


_AGENT = "SELECT * FROM registry_agents WHERE agent_id = ?"
_VERSIONS = "SELECT * FROM registry_versions WHERE agent_id = ? ORDER BY version"


class SqlRegistryStore(ABC):
    """The RegistryStore behaviour; subclasses provide connections and transactions."""

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))

    @abstractmethod
    def _write(self, agent_id: str) -> AbstractAsyncContextManager[Tx]: ...

    @abstractmethod
    def _read(self) -> AbstractAsyncContextManager[Tx]: ...

    async def register(
        self,
        agent_id: str,
        card: dict[str, Any],
        *,
        actor: str,
        upstream_url: str,
        protocol_version: ProtocolVersion,
        signed: bool,
        signature_kid: str | None,
        source_url: str | None = None,
        tenant: str | None = None,
        owner: str | None = None,
        expected_spiffe_id: str | None = None,
    ) -> AgentVersion:
        _check_id(agent_id)
        _check_actor(actor)
        _check_url(upstream_url)
        if protocol_version not in PROTOCOL_VERSIONS:
            raise InvalidArgument(f"protocol_version must be one of {PROTOCOL_VERSIONS}")
        if bool(signed) != bool(signature_kid):
            raise InvalidArgument("a signed version needs its signature_kid, an unsigned none")
        valid = validate_card(card)
        sha = card_sha256(valid)
        now = self._clock()
        fixed = {"owner": owner, "tenant": tenant, "expected_spiffe_id": expected_spiffe_id}
        async with self._write(agent_id) as tx:
            row = await tx.one(_AGENT, agent_id)
            before: str | None = None
            if row is None:
                number = 1
                await tx.run(
                    "INSERT INTO registry_agents VALUES (?, NULL, 1, 'pending', ?, ?, ?, ?, ?)",
                    agent_id, owner, tenant, expected_spiffe_id, now, now,
                )  # fmt: skip
            else:
                record = _record(row)
                if record.state is AgentState.RETIRED:
                    raise Conflict(f"agent {agent_id!r} is retired; register it under a new id")
                for field, given in fixed.items():
                    stored = getattr(record, field)
                    if given is not None and given != stored:
                        raise Conflict(
                            f"agent {agent_id!r} has {field} {stored!r}, fixed at creation; "
                            f"a new version cannot set {given!r}"
                        )
                latest = await self._version(tx, agent_id, record.latest_version)
                same = (sha, upstream_url, protocol_version, source_url, signed, signature_kid)
                if latest.state is not AgentState.RETIRED and same == (
                    latest.card_sha256, latest.upstream_url, latest.protocol_version,
                    latest.source_url, latest.signed, latest.signature_kid,
                ):  # fmt: skip
                    return latest  # re-registering the same card is not a change
                number, before = record.latest_version + 1, latest.card_sha256
                await tx.run(
                    "UPDATE registry_agents SET latest_version = ?, updated_at = ? "
                    "WHERE agent_id = ?",
                    number, now, agent_id,
                )  # fmt: skip
            new = AgentVersion(
                agent_id, number, valid, sha, source_url, upstream_url, protocol_version,
                AgentState.PENDING, actor, now, bool(signed), signature_kid,
            )  # fmt: skip
            await tx.run(
                "INSERT INTO registry_versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                agent_id, number, json.dumps(valid, ensure_ascii=False), sha, source_url,
                upstream_url, protocol_version, new.state.value, actor, now, new.signed,
                signature_kid,
            )  # fmt: skip
            await _event(tx, RegistryEvent(agent_id, number, "register", actor, now, before, sha))
        return new

    async def transition(
        self, agent_id: str, version: int | None, new_state: AgentState, *, actor: str
    ) -> AgentRecord:
        _check_actor(actor)
        try:
            new_state = AgentState(new_state)
        except ValueError as exc:
            raise InvalidArgument(f"{new_state!r} is not an agent state") from exc
        now = self._clock()
        async with self._write(agent_id) as tx:
            row = await tx.one(_AGENT, agent_id)
            if row is None:
                raise NotFound(f"agent {agent_id!r} not found")
            record = _record(row)
            versions = {v.version: v for v in map(_version, await tx.all(_VERSIONS, agent_id))}
            if version is not None and version not in versions:
                raise NotFound(f"agent {agent_id!r} has no version {version}")
            states = {n: v.state for n, v in versions.items()}
            plan = plan_transition(record, states, version, new_state)
            served_before = _served(record.state, record.active_version, versions)
            served_after = _served(plan.state, plan.active_version, versions)
            for number, state, action in plan.changes:
                await tx.run(
                    "UPDATE registry_versions SET state = ? WHERE agent_id = ? AND version = ?",
                    state.value, agent_id, number,
                )  # fmt: skip
                event = RegistryEvent(
                    agent_id, number, action, actor, now, served_before, served_after
                )
                await _event(tx, event)
            await tx.run(
                "UPDATE registry_agents SET state = ?, active_version = ?, updated_at = ? "
                "WHERE agent_id = ?",
                plan.state.value, plan.active_version, now, agent_id,
            )  # fmt: skip
        return AgentRecord(
            agent_id, plan.active_version, record.latest_version, plan.state,
            record.owner, record.tenant, record.expected_spiffe_id,
        )  # fmt: skip

    async def get(self, agent_id: str) -> AgentRecord | None:
        async with self._read() as tx:
            row = await tx.one(_AGENT, agent_id)
        return _record(row) if row else None

    async def get_version(self, agent_id: str, version: int) -> AgentVersion | None:
        async with self._read() as tx:
            row = await tx.one(
                "SELECT * FROM registry_versions WHERE agent_id = ? AND version = ?",
                agent_id, version,
            )  # fmt: skip
        return _version(row) if row else None

    async def list_agents(self, state: AgentState | None = None) -> list[AgentRecord]:
        async with self._read() as tx:
            if state is None:
                rows = await tx.all("SELECT * FROM registry_agents ORDER BY agent_id")
            else:
                sql = "SELECT * FROM registry_agents WHERE state = ? ORDER BY agent_id"
                rows = await tx.all(sql, AgentState(state).value)
        return [_record(r) for r in rows]

    async def versions(self, agent_id: str) -> list[AgentVersion]:
        async with self._read() as tx:
            return [_version(r) for r in await tx.all(_VERSIONS, agent_id)]

    async def events(self, agent_id: str) -> list[RegistryEvent]:
        async with self._read() as tx:
            rows = await tx.all(
                "SELECT agent_id, version, action, actor, at, before_sha256, after_sha256 "
                "FROM registry_events WHERE agent_id = ? ORDER BY id",
                agent_id,
            )  # fmt: skip
        return [RegistryEvent(**{**r, "at": _ts(r["at"])}) for r in rows]

    async def active_snapshot(self) -> dict[str, AgentVersion]:
        async with self._read() as tx:
            rows = await tx.all(
                "SELECT v.* FROM registry_agents a JOIN registry_versions v "
                "ON v.agent_id = a.agent_id AND v.version = a.active_version "
                "WHERE a.state = 'active' ORDER BY a.agent_id"
            )
        return {r["agent_id"]: _version(r) for r in rows}

    async def table_rows(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of the registry tables as stored, in one read (for the drift scanner)."""
        async with self._read() as tx:
            return {
                "agents": await tx.all("SELECT * FROM registry_agents ORDER BY agent_id"),
                "versions": await tx.all(
                    "SELECT * FROM registry_versions ORDER BY agent_id, version"
                ),
                "events": await tx.all("SELECT * FROM registry_events ORDER BY id"),
            }

    @staticmethod
    async def _version(tx: Tx, agent_id: str, number: int) -> AgentVersion:
        row = await tx.one(
            "SELECT * FROM registry_versions WHERE agent_id = ? AND version = ?", agent_id, number
        )
        if row is None:
            raise NotFound(f"agent {agent_id!r} has no version {number}")
        return _version(row)


async def _event(tx: Tx, e: RegistryEvent) -> None:
    await tx.run(
        "INSERT INTO registry_events (agent_id, version, action, actor, at, before_sha256, "
        "after_sha256) VALUES (?, ?, ?, ?, ?, ?, ?)",
        e.agent_id, e.version, e.action, e.actor, e.at, e.before_sha256, e.after_sha256,
    )  # fmt: skip


def _served(
    state: AgentState, active: int | None, versions: Mapping[int, AgentVersion]
) -> str | None:
    """Hash of the card an agent in ``state`` with ``active`` version serves, if any."""
    if state is AgentState.ACTIVE and active is not None:
        return versions[active].card_sha256
    return None


def _record(row: Mapping[str, Any]) -> AgentRecord:
    return AgentRecord(
        row["agent_id"], row["active_version"], row["latest_version"], AgentState(row["state"]),
        row["owner"], row["tenant"], row["expected_spiffe_id"],
    )  # fmt: skip


def _version(row: Mapping[str, Any]) -> AgentVersion:
    return AgentVersion(
        row["agent_id"], row["version"], json.loads(row["card"]), row["card_sha256"],
        row["source_url"], row["upstream_url"], row["protocol_version"],
        AgentState(row["state"]), row["created_by"], _ts(row["created_at"]),
        bool(row["signed"]), row["signature_kid"],
    )  # fmt: skip


def _ts(value: datetime | str) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _check_id(agent_id: str) -> None:
    if not isinstance(agent_id, str) or not AGENT_ID_RE.fullmatch(agent_id):
        raise InvalidArgument(
            f"agent id {agent_id!r} must be 1-128 characters of A-Z a-z 0-9 . _ - "
            "starting with a letter or digit"
        )


def _check_url(url: str) -> None:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(f"upstream_url {url!r} must be an absolute http(s) URL")


def _check_actor(actor: str) -> None:
    if not isinstance(actor, str) or not actor.strip():
        raise InvalidArgument("actor (who makes the change) is required")
