"""The registry in one SQLite file (WAL), through aiosqlite.

One connection serves the process; an asyncio lock serialises operations on it, so no task sees
another's uncommitted writes. Writes run in ``BEGIN IMMEDIATE`` transactions, which also
serialise against other processes using the same file.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import aiosqlite

from maestro_gateway._sqlstore import SQLITE_PRAGMAS, SqliteTx, open_sqlite, sqlite_immediate
from maestro_gateway.registry._sql import SqlRegistryStore, Tx, schema

__all__ = ["SqliteRegistryStore"]


class SqliteRegistryStore(SqlRegistryStore):
    """``path`` is a file (created, with its directory, if missing) or ``:memory:``."""

    def __init__(self, path: str, *, clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(clock=clock)
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def init(self) -> None:
        """Open the file and create the schema if needed (idempotent)."""
        if self._db is not None:
            return
        self._db = await open_sqlite(self.path, ("foreign_keys = ON", *SQLITE_PRAGMAS))
        async with self._write("") as tx:
            for statement in schema("TEXT", "INTEGER"):
                await tx.run(statement)

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    async def __aenter__(self) -> SqliteRegistryStore:
        await self.init()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("registry store is not open; call init() first")
        return self._db

    @asynccontextmanager
    async def _write(self, agent_id: str) -> AsyncIterator[Tx]:
        async with self._lock:
            db = self._conn()
            async with sqlite_immediate(db):
                yield _SqliteTx(db)

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[Tx]:
        async with self._lock:
            yield _SqliteTx(self._conn())


class _SqliteTx(SqliteTx):
    def _args(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """Timestamps as ISO-8601 text, booleans as 0/1 (SQLite has neither type)."""
        return tuple(
            a.isoformat() if isinstance(a, datetime) else int(a) if isinstance(a, bool) else a
            for a in args
        )
