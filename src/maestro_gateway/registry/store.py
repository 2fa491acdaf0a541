"""The registry store interface, and :func:`open_store` to get one from a URL.

Two implementations share one behaviour (``_sql.SqlRegistryStore``):
:class:`~maestro_gateway.registry.sqlite.SqliteRegistryStore` and
:class:`~maestro_gateway.registry.postgres.PostgresRegistryStore`. The lifecycle they implement
is described in :mod:`maestro_gateway.registry.models`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from maestro_gateway._sqlstore import SqliteUrl, parse_url
from maestro_gateway.registry.models import (
    AgentRecord,
    AgentState,
    AgentVersion,
    ProtocolVersion,
    RegistryEvent,
)
from maestro_gateway.registry.postgres import PostgresRegistryStore
from maestro_gateway.registry.sqlite import SqliteRegistryStore

__all__ = ["RegistryStore", "open_store"]


class RegistryStore(Protocol):
    """Agents, their card versions and the history of changes; durable and transactional.

    Every mutation happens in one transaction: when it raises, nothing changed.
    """

    async def init(self) -> None:
        """Connect and create the schema if missing (idempotent)."""

    async def close(self) -> None: ...

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
        """Create the agent (version 1) or a new ``pending`` version of it.

        The card is validated (InvalidCard) and stored as received; signature verification is
        the caller's, reported through ``signed``/``signature_kid``. Re-registering the latest
        live version's exact card and upstream returns that version unchanged. A retired agent,
        or a different owner/tenant/expected_spiffe_id than set at creation, raises Conflict.
        """
        ...

    async def transition(
        self, agent_id: str, version: int | None, new_state: AgentState, *, actor: str
    ) -> AgentRecord:
        """Move the agent (``version=None`` or its active version) or one pending version.

        Raises NotFound, or InvalidTransition when the lifecycle forbids it.
        """
        ...

    async def get(self, agent_id: str) -> AgentRecord | None: ...

    async def get_version(self, agent_id: str, version: int) -> AgentVersion | None: ...

    async def list_agents(self, state: AgentState | None = None) -> list[AgentRecord]:
        """All agents (or those in ``state``), ordered by id."""
        ...

    async def versions(self, agent_id: str) -> list[AgentVersion]:
        """Every version of the agent, oldest first (empty if unknown)."""
        ...

    async def events(self, agent_id: str) -> list[RegistryEvent]:
        """The agent's history, oldest first (empty if unknown)."""
        ...

    async def active_snapshot(self) -> dict[str, AgentVersion]:
        """What the data path serves: each active agent's active version, by agent id."""
        ...


def open_store(url: str, *, clock: Callable[[], datetime] | None = None) -> RegistryStore:
    """A store for ``url`` (not yet initialised: ``await store.init()``).

    - ``sqlite:///path/to/file.db``: a path relative to the working directory, and
      ``sqlite:////abs/path/file.db`` an absolute one (the SQLAlchemy convention)
    - ``sqlite://:memory:`` (gone when closed)
    - ``postgresql://user@host:port/db`` (or ``postgres://``); an optional ``schema=name``
      query parameter puts the tables in that schema (default ``public``).
    """
    target = parse_url(url, "registry")
    if isinstance(target, SqliteUrl):
        return SqliteRegistryStore(target.path, clock=clock)
    return PostgresRegistryStore(target.dsn, schema=target.schema, clock=clock)
