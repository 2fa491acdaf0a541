"""The audit log in one SQLite file (WAL), through aiosqlite.

One connection writes; an asyncio lock serialises its transactions. Each batch runs in
``BEGIN IMMEDIATE`` (which also serialises against other processes on the same file) with
``synchronous=FULL`` when it holds a critical entry and ``NORMAL`` otherwise (in WAL mode:
safe against a crash of the process, not of the machine, until the next sync). Triggers make
UPDATE and DELETE abort on all three tables. Snapshots read through a second connection in a
read transaction, so a verification sees one consistent state while appends go on; they cast
the columns, because SQLite does not enforce column types and a tampered value may be text.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from maestro_gateway.audit._store import (
    TABLES,
    AuditConflict,
    EntryRow,
    NodeRow,
    Snapshot,
    ddl,
)

__all__ = ["SqliteAuditStore"]


def _triggers() -> list[str]:
    return [
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, 'audit log is append-only: {op} refused on {table}'); END"
        for table in TABLES
        for op in ("UPDATE", "DELETE")
    ]


async def _connect(path: str) -> aiosqlite.Connection:
    db = await aiosqlite.connect(path, isolation_level=None)
    for pragma in ("busy_timeout = 5000", "journal_mode = WAL"):
        await db.execute(f"PRAGMA {pragma}")
    return db


class SqliteAuditStore:
    """``path`` is a file, created (with its directory, mode 0700) if missing."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def init(self, *, create: bool = True) -> None:
        if self._db is not None:
            return
        if not create and not await asyncio.to_thread(os.path.exists, self.path):
            raise FileNotFoundError(f"no audit log at {self.path}")
        Path(self.path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        db = await _connect(self.path)
        try:
            if create:
                await db.execute("BEGIN IMMEDIATE")
                for statement in ddl("INTEGER", "BLOB") + _triggers():
                    await db.execute(statement)
                await db.execute("COMMIT")
        except BaseException:
            await db.close()
            raise
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("audit store is not open; call init() first")
        return self._db

    async def _one(self, sql: str, *args: Any) -> Any:
        async with self._lock, self._conn().execute(sql, args) as cursor:
            row = await cursor.fetchone()
        return None if row is None else row[0]

    async def size(self) -> int:
        top = await self._one("SELECT max(seq) FROM audit_entries")
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
        async with self._lock:
            db = self._conn()
            await db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
            await db.execute("BEGIN IMMEDIATE")
            try:
                async with db.execute("SELECT max(seq) FROM audit_entries") as cursor:
                    row = await cursor.fetchone()
                end = 0 if row is None or row[0] is None else int(row[0]) + 1
                if end != start:
                    raise AuditConflict(f"audit log ends at {end}, this writer expected {start}")
                await db.executemany("INSERT INTO audit_entries VALUES (?, ?, ?, ?)", entries)
                await db.executemany("INSERT INTO audit_nodes VALUES (?, ?)", nodes)
                await db.execute("INSERT INTO audit_checkpoints VALUES (?, ?, ?)", checkpoint)
                await db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    await db.execute("ROLLBACK")
                raise

    async def _by_keys(self, sql: str, keys: Sequence[int]) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        for i in range(0, len(keys), 500):
            chunk = list(keys[i : i + 500])
            marks = ",".join("?" * len(chunk))
            async with self._lock, self._conn().execute(sql.format(marks), chunk) as cursor:
                out.update({int(k): bytes(v) for k, v in await cursor.fetchall()})
        return out

    async def leaf_hashes(self, seqs: Sequence[int]) -> dict[int, bytes]:
        sql = "SELECT seq, leaf_hash FROM audit_entries WHERE seq IN ({})"
        return await self._by_keys(sql, seqs)

    async def nodes(self, keys: Sequence[int]) -> dict[int, bytes]:
        return await self._by_keys("SELECT id, hash FROM audit_nodes WHERE id IN ({})", keys)

    async def entry(self, seq: int) -> EntryRow | None:
        sql = "SELECT seq, ts, leaf_hash, entry FROM audit_entries WHERE seq = ?"
        async with self._lock, self._conn().execute(sql, (seq,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3])

    async def checkpoint(self, tree_size: int | None = None) -> str | None:
        if tree_size is None:
            sql = "SELECT note FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1"
            note = await self._one(sql)
        else:
            sql = "SELECT note FROM audit_checkpoints WHERE tree_size = ?"
            note = await self._one(sql, tree_size)
        return None if note is None else str(note)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Snapshot]:
        db = await _connect(self.path)
        try:
            await db.execute("BEGIN")
            yield _SqliteSnapshot(db)
        finally:
            await db.close()


class _SqliteSnapshot:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def _all(self, sql: str, *args: Any) -> list[Any]:
        async with self._db.execute(sql, args) as cursor:
            return list(await cursor.fetchall())

    async def checkpoints(self) -> list[tuple[int, str]]:
        rows = await self._all("SELECT tree_size, note FROM audit_checkpoints ORDER BY tree_size")
        return [(int(size), str(note)) for size, note in rows]

    async def entries_after(self, seq: int, limit: int) -> list[EntryRow]:
        sql = (
            "SELECT seq, CAST(ts AS TEXT), CAST(leaf_hash AS BLOB), CAST(entry AS BLOB)"
            " FROM audit_entries WHERE seq > ? ORDER BY seq LIMIT ?"
        )
        return await self._all(sql, seq, limit)

    async def nodes_between(self, lo: int, hi: int) -> list[NodeRow]:
        sql = "SELECT id, CAST(hash AS BLOB) FROM audit_nodes WHERE id >= ? AND id < ? ORDER BY id"
        return await self._all(sql, lo, hi)

    async def count_nodes_from(self, lo: int) -> int:
        rows = await self._all("SELECT count(*) FROM audit_nodes WHERE id >= ?", lo)
        return int(rows[0][0])
