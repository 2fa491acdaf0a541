"""The audit log in PostgreSQL, through an asyncpg pool.

Tables live in ``schema`` (the ``search_path`` of every pooled connection). A batch runs in one
transaction under a transaction-scoped advisory lock on the schema, with ``SET LOCAL
synchronous_commit`` ``on`` when it holds a critical entry and ``off`` otherwise (the commit may
return before the WAL reaches disk; a crash can lose that batch but never half of it). Row
triggers refuse UPDATE and DELETE and a statement trigger refuses TRUNCATE, but the table owner
can drop triggers: run the gateway as a role that only has SELECT and INSERT (docs/audit.md).
The DDL runs only when a table or trigger is missing, so that role can start the gateway.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from maestro_gateway.audit._store import (
    TABLES,
    AuditConflict,
    EntryRow,
    NodeRow,
    Snapshot,
    ddl,
)

__all__ = ["PostgresAuditStore"]

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

_REFUSE = """CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit log is append-only: % refused on %', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END $$"""


def _triggers() -> list[str]:
    out = []
    for table in TABLES:
        out.append(
            f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
        )
        out.append(
            f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
        )
    return out


class PostgresAuditStore:
    """``dsn`` is a ``postgresql://`` URL; ``schema`` a lowercase identifier."""

    def __init__(self, dsn: str, *, schema: str = "public", max_size: int = 4) -> None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"schema {schema!r} must be a lowercase SQL identifier")
        self.schema = schema
        self._dsn = dsn
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None

    async def init(self, *, create: bool = True) -> None:
        if self._pool is not None:
            return
        pool = await asyncpg.create_pool(
            self._dsn, min_size=1, max_size=self._max_size,
            server_settings={"search_path": self.schema},
        )  # fmt: skip
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext('maestro.audit.ddl'))")
                if create and not await self._complete(conn):
                    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                    for statement in [*ddl("BIGINT", "BYTEA"), _REFUSE, *_triggers()]:
                        await conn.execute(statement)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def _complete(self, conn: Any) -> bool:
        """Whether the three tables and their six triggers are all in place."""
        found = await conn.fetchval(
            """SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = $1 AND c.relname = ANY($2::text[]) AND NOT t.tgisinternal
                 AND t.tgenabled <> 'D'""",
            self.schema,
            list(TABLES),
        )
        return int(found) >= 2 * len(TABLES)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    def _pool_or_fail(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("audit store is not open; call init() first")
        return self._pool

    async def size(self) -> int:
        top = await self._pool_or_fail().fetchval("SELECT max(seq) FROM audit_entries")
        return 0 if top is None else int(top) + 1

    async def append_batch(
        self,
        start: int,
        entries: Sequence[EntryRow],
        nodes: Sequence[NodeRow],
        checkpoint: tuple[int, str, str],
        *,
        durable: bool,
    ) -> None:
        async with self._pool_or_fail().acquire() as conn, conn.transaction():
            await conn.execute(f"SET LOCAL synchronous_commit TO {'on' if durable else 'off'}")
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self.schema)
            top = await conn.fetchval("SELECT max(seq) FROM audit_entries")
            end = 0 if top is None else int(top) + 1
            if end != start:
                raise AuditConflict(f"audit log ends at {end}, this writer expected {start}")
            await conn.copy_records_to_table(
                "audit_entries", records=entries, schema_name=self.schema
            )
            if nodes:
                await conn.copy_records_to_table(
                    "audit_nodes", records=nodes, schema_name=self.schema
                )
            await conn.execute("INSERT INTO audit_checkpoints VALUES ($1, $2, $3)", *checkpoint)

    async def leaf_hashes(self, seqs: Sequence[int]) -> dict[int, bytes]:
        rows = await self._pool_or_fail().fetch(
            "SELECT seq, leaf_hash FROM audit_entries WHERE seq = ANY($1::bigint[])", list(seqs)
        )
        return {int(r[0]): bytes(r[1]) for r in rows}

    async def nodes(self, keys: Sequence[int]) -> dict[int, bytes]:
        rows = await self._pool_or_fail().fetch(
            "SELECT id, hash FROM audit_nodes WHERE id = ANY($1::bigint[])", list(keys)
        )
        return {int(r[0]): bytes(r[1]) for r in rows}

    async def entry(self, seq: int) -> EntryRow | None:
        row = await self._pool_or_fail().fetchrow(
            "SELECT seq, ts, leaf_hash, entry FROM audit_entries WHERE seq = $1", seq
        )
        return None if row is None else (row[0], row[1], row[2], row[3])

    async def checkpoint(self, tree_size: int | None = None) -> str | None:
        pool = self._pool_or_fail()
        if tree_size is None:
            sql = "SELECT note FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1"
            note = await pool.fetchval(sql)
        else:
            sql = "SELECT note FROM audit_checkpoints WHERE tree_size = $1"
            note = await pool.fetchval(sql, tree_size)
        return None if note is None else str(note)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Snapshot]:
        async with self._pool_or_fail().acquire() as conn:
            transaction = conn.transaction(isolation="repeatable_read", readonly=True)
            await transaction.start()
            try:
                yield _PostgresSnapshot(conn)
            finally:
                await transaction.rollback()


class _PostgresSnapshot:
    """Queries are serialised: one asyncpg connection runs one at a time."""

    def __init__(self, conn: Any) -> None:
        self._conn = _Serialised(conn)

    async def checkpoints(self) -> list[tuple[int, str]]:
        rows = await self._conn.fetch(
            "SELECT tree_size, note FROM audit_checkpoints ORDER BY tree_size"
        )
        return [(int(r[0]), str(r[1])) for r in rows]

    async def entries_after(self, seq: int, limit: int) -> list[EntryRow]:
        rows = await self._conn.fetch(
            "SELECT seq, ts, leaf_hash, entry FROM audit_entries WHERE seq > $1 "
            "ORDER BY seq LIMIT $2",
            seq,
            limit,
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    async def nodes_between(self, lo: int, hi: int) -> list[NodeRow]:
        rows = await self._conn.fetch(
            "SELECT id, hash FROM audit_nodes WHERE id >= $1 AND id < $2 ORDER BY id", lo, hi
        )
        return [(r[0], r[1]) for r in rows]

    async def count_nodes_from(self, lo: int) -> int:
        return int(await self._conn.fetchval("SELECT count(*) FROM audit_nodes WHERE id >= $1", lo))


class _Serialised:
    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        async with self._lock:
            return list(await self._conn.fetch(sql, *args))

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self._lock:
            return await self._conn.fetchval(sql, *args)
