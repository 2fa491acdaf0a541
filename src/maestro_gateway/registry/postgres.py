"""The registry in PostgreSQL, through an asyncpg pool.

Tables live in ``schema`` (``search_path`` of every pooled connection; created on init). Writers
to one agent are serialised by a transaction-scoped advisory lock on the agent id, which also
covers registering an id that has no row yet; reads run in a read-only repeatable-read snapshot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

import asyncpg

from maestro_gateway._sqlstore import PgTx, check_schema_name, open_pg_pool
from maestro_gateway.registry._sql import SqlRegistryStore, Tx
from maestro_gateway.registry._sql import schema as ddl

__all__ = ["PostgresRegistryStore"]


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
        self.schema = check_schema_name(schema)
        self._dsn = dsn
        self._sizes = (min_size, max_size)
        self._pool: asyncpg.Pool | None = None

    async def init(self) -> None:
        """Connect and create the schema and tables if needed (idempotent, safe concurrently)."""
        if self._pool is not None:
            return
        self._pool = await open_pg_pool(
            self._dsn, self.schema, ddl("TIMESTAMPTZ", "BIGSERIAL"), lock="maestro.registry.ddl",
            min_size=self._sizes[0], max_size=self._sizes[1],
        )  # fmt: skip

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
            yield PgTx(conn)

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[Tx]:
        async with (
            self._pool_or_fail().acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield PgTx(conn)
