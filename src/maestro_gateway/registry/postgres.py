"""The registry in PostgreSQL, through an asyncpg pool.

Tables live in ``schema`` (``search_path`` of every pooled connection; created on init). Writers
to one agent are serialised by a transaction-scoped advisory lock on the agent id, which also
covers registering an id that has no row yet; reads run in a read-only repeatable-read snapshot.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg

from maestro_gateway.registry._sql import SqlRegistryStore, Tx
from maestro_gateway.registry._sql import schema as ddl

__all__ = ["PostgresRegistryStore"]

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PostgresRegistryStore(SqlRegistryStore):
    """``dsn`` is a ``postgresql://`` URL; ``schema`` a lowercase identifier."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        clock: Callable[[], datetime] | None = None,
        min_size: int = 1,
        max_size: int = 10,
    ) -> None:
        super().__init__(clock=clock)
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"schema {schema!r} must be a lowercase SQL identifier")
        self.schema = schema
        self._dsn = dsn
        self._sizes = (min_size, max_size)
        self._pool: asyncpg.Pool | None = None

    async def init(self) -> None:
        """Connect and create the schema and tables if needed (idempotent, safe concurrently)."""
        if self._pool is not None:
            return
        pool = await asyncpg.create_pool(
            self._dsn,
            min_size=self._sizes[0],
            max_size=self._sizes[1],
            server_settings={"search_path": self.schema},
        )
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext('maestro.registry.ddl'))")
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                for statement in ddl("TIMESTAMPTZ", "BIGSERIAL"):
                    await conn.execute(statement)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def __aenter__(self) -> PostgresRegistryStore:
        await self.init()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _pool_or_fail(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("registry store is not open; call init() first")
        return self._pool

    @asynccontextmanager
    async def _write(self, agent_id: str) -> AsyncIterator[Tx]:
        async with self._pool_or_fail().acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                f"maestro.registry:{agent_id}",
            )
            yield _PgTx(conn)

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[Tx]:
        async with (
            self._pool_or_fail().acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield _PgTx(conn)


class _PgTx:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def one(self, sql: str, *args: Any) -> dict[str, Any] | None:
        row = await self._conn.fetchrow(_numbered(sql), *args)
        return dict(row) if row is not None else None

    async def all(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return [dict(row) for row in await self._conn.fetch(_numbered(sql), *args)]

    async def run(self, sql: str, *args: Any) -> None:
        await self._conn.execute(_numbered(sql), *args)


@functools.lru_cache(maxsize=128)
def _numbered(sql: str) -> str:
    """``?`` placeholders as ``$1, $2, …`` (the registry's SQL has no ``?`` in literals)."""
    counter = iter(range(1, sql.count("?") + 1))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)
