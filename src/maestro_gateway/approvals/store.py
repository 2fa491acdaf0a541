"""The approvals store interface, and :func:`open_store` to get one from a URL."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from maestro_gateway._sqlstore import SqliteUrl, parse_url
from maestro_gateway.approvals.models import Hold, HoldState
from maestro_gateway.approvals.postgres import PostgresApprovalStore
from maestro_gateway.approvals.sqlite import SqliteApprovalStore

__all__ = ["ApprovalStore", "open_store"]


class ApprovalStore(Protocol):
    """Held requests; durable. Every state change is an atomic compare-and-set."""

    async def init(self) -> None: ...
    async def close(self) -> None: ...
    async def insert(self, hold: Hold) -> None: ...
    async def get(self, hold_id: str) -> Hold | None: ...
    async def list_holds(self, state: HoldState | None = None, limit: int = 100) -> list[Hold]: ...

    async def transition(
        self,
        hold_id: str,
        before: Iterable[HoldState],
        after: HoldState,
        *,
        live_at: float | None = None,
        **fields: Any,
    ) -> Hold | None: ...

    async def expire_due(self, now: float) -> list[Hold]: ...
    async def set_upstream_task(self, hold_id: str, task_id: str) -> None: ...


def open_store(url: str) -> ApprovalStore:
    """A store for ``url`` (not yet initialised).

    ``sqlite:///relative/path.db``, ``sqlite:////abs/path.db``, ``sqlite://:memory:``, or
    ``postgresql://user@host:port/db`` with an optional ``schema=name`` query parameter.
    """
    target = parse_url(url, "approvals")
    if isinstance(target, SqliteUrl):
        return SqliteApprovalStore(target.path)
    return PostgresApprovalStore(target.dsn, schema=target.schema)
