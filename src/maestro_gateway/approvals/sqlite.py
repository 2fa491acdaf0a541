"""Held requests in one SQLite file (WAL), through aiosqlite.

One connection serves the process; an asyncio lock serialises operations on it. Every operation
runs in a ``BEGIN IMMEDIATE`` transaction, which also serialises against other processes using
the same file, so a compare-and-set is atomic across gateways sharing it.
"""

from __future__ import annotations

from maestro_gateway._sqlstore import SqliteStore
from maestro_gateway.approvals._sql import SqlApprovalStore, schema

__all__ = ["SqliteApprovalStore"]


class SqliteApprovalStore(SqliteStore, SqlApprovalStore):
    """``path`` is a file (created, with its directory, if missing) or ``:memory:``."""

    name = "approvals"
    ddl = tuple(schema("REAL"))
