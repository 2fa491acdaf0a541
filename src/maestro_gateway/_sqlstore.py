"""What the SQL stores (approvals, grants, registry) share: store URLs, opening a SQLite file,
a PostgreSQL pool in a schema, ``?``-placeholder transactions, and the errors that mean the
store is unavailable.

Each store keeps its own SQL and semantics; this module only connects and transacts.

- :func:`parse_url` reads ``sqlite:///relative/path.db``, ``sqlite:////abs/path.db``,
  ``sqlite://:memory:`` and ``postgresql://user@host:port/db[?schema=name]``.
- :func:`open_sqlite`: one WAL file (its directory created), rows as mappings, busy timeout.
- :func:`open_pg_pool`: an asyncpg pool whose connections use ``schema`` as ``search_path``;
  the schema and tables are created under a transaction-scoped advisory lock (safe when
  several gateways start at once).
- :class:`SqliteStore` / :class:`PostgresStore`: the connection, ``init``/``close`` and one
  transaction per ``_tx()`` for stores whose operations are each one transaction.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiosqlite
import asyncpg

__all__ = [
    "STORE_ERRORS",
    "PgTx",
    "PostgresStore",
    "PostgresUrl",
    "SqlStore",
    "SqliteStore",
    "SqliteTx",
    "SqliteUrl",
    "Tx",
    "check_schema_name",
    "open_pg_pool",
    "open_sqlite",
    "parse_url",
    "sqlite_immediate",
    "unavailable_on_error",
]

# RuntimeError: a store that is not open (closed, or never started)
STORE_ERRORS = (
    sqlite3.Error,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    RuntimeError,
)
SQLITE_PRAGMAS = ("busy_timeout = 5000", "journal_mode = WAL")
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True, slots=True)
class SqliteUrl:
    path: str  # a file path or ``:memory:``


@dataclass(frozen=True, slots=True)
class PostgresUrl:
    dsn: str  # without the ``schema`` query parameter
    schema: str


def parse_url(url: str, what: str) -> SqliteUrl | PostgresUrl:
    """The backend for a store URL; ``what`` names the store in errors (ValueError)."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme == "sqlite":
        if url in ("sqlite://:memory:", "sqlite:///:memory:"):
            return SqliteUrl(":memory:")
        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
        if not path:
            raise ValueError(f"sqlite {what} URL needs a path: sqlite:///path/to/file.db")
        return SqliteUrl(path)
    if scheme in ("postgresql", "postgres"):
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        schema = next((v for k, v in query if k == "schema"), "public")
        rest = urlencode([(k, v) for k, v in query if k != "schema"])
        return PostgresUrl(urlunsplit(parts._replace(query=rest)), schema)
    raise ValueError(
        f"unsupported {what} URL scheme {scheme or '(none)'!r}: use sqlite:///path/to/file.db, "
        "sqlite://:memory: or postgresql://..."
    )


def check_schema_name(schema: str) -> str:
    """``schema`` if it is a lowercase SQL identifier (it is quoted into DDL), else ValueError."""
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(f"schema {schema!r} must be a lowercase SQL identifier")
    return schema


async def open_sqlite(path: str, pragmas: Iterable[str] = SQLITE_PRAGMAS) -> aiosqlite.Connection:
    """A connection in autocommit mode (transactions are explicit) with rows as mappings."""
    if path != ":memory:":
        Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    db = await aiosqlite.connect(path, isolation_level=None)
    db.row_factory = aiosqlite.Row
    for pragma in pragmas:
        await db.execute(f"PRAGMA {pragma}")
    return db


@asynccontextmanager
async def sqlite_immediate(db: aiosqlite.Connection) -> AsyncIterator[None]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` when the body raises): the write lock is
    taken first, which also serialises against other processes using the same file."""
    await db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        await db.execute("ROLLBACK")
        raise
    await db.execute("COMMIT")


async def open_pg_pool(
    dsn: str, schema: str, ddl: Iterable[str], *, lock: str, min_size: int = 1, max_size: int = 10
) -> asyncpg.Pool:
    """A pool on ``schema`` after creating it and running ``ddl`` under the advisory lock
    ``hashtext(lock)``; the pool is closed again when that fails."""
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, server_settings={"search_path": schema}
    )
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", lock)
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            for statement in ddl:
                await conn.execute(statement)
    except BaseException:
        await pool.close()
        raise
    return pool


class Tx(Protocol):
    """One transaction; statements use ``?`` placeholders, rows come back as dicts."""

    async def one(self, sql: str, *args: Any) -> dict[str, Any] | None: ...
    async def all(self, sql: str, *args: Any) -> list[dict[str, Any]]: ...
    async def run(self, sql: str, *args: Any) -> None: ...


class SqliteTx:
    """:class:`Tx` on an aiosqlite connection; subclasses may convert arguments in ``_args``."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    def _args(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return args

    async def one(self, sql: str, *args: Any) -> dict[str, Any] | None:
        async with self._db.execute(sql, self._args(args)) as cursor:
            row = await cursor.fetchone()
        return dict(row) if row is not None else None

    async def all(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        async with self._db.execute(sql, self._args(args)) as cursor:
            return [dict(row) for row in await cursor.fetchall()]

    async def run(self, sql: str, *args: Any) -> None:
        await self._db.execute(sql, self._args(args))


class PgTx:
    """:class:`Tx` on an asyncpg connection (``?`` placeholders become ``$1, $2, …``)."""

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
    """``?`` placeholders as ``$1, $2, …`` (the stores' SQL has no ``?`` in literals)."""
    counter = iter(range(1, sql.count("?") + 1))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


class SqlStore(ABC):
    """A store whose operations each run in one :meth:`_tx` transaction."""

    @abstractmethod
    def _tx(self) -> AbstractAsyncContextManager[Tx]: ...

    @abstractmethod
    async def init(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...


class SqliteStore(SqlStore):
    """One connection per process behind an asyncio lock; each ``_tx`` is ``BEGIN IMMEDIATE``.

    Subclasses set ``name`` (for errors) and ``ddl`` (idempotent, run on init).
    ``path`` is a file (created, with its directory, if missing) or ``:memory:``.
    """

    name: ClassVar[str]
    ddl: ClassVar[tuple[str, ...]]

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def init(self) -> None:
        if self._db is not None:
            return
        self._db = await open_sqlite(self.path)
        async with self._tx() as tx:
            for statement in self.ddl:
                await tx.run(statement)

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Tx]:
        async with self._lock:
            if self._db is None:
                raise RuntimeError(f"{self.name} store is not open; call init() first")
            async with sqlite_immediate(self._db):
                yield SqliteTx(self._db)


class PostgresStore(SqlStore):
    """An asyncpg pool on ``schema`` (created on init, with ``ddl``); each ``_tx`` is one
    transaction. Subclasses set ``name`` (errors, and the DDL lock) and ``ddl``.
    ``dsn`` is a ``postgresql://`` URL; ``schema`` a lowercase identifier."""

    name: ClassVar[str]
    ddl: ClassVar[tuple[str, ...]]

    def __init__(self, dsn: str, *, schema: str = "public", max_size: int = 10) -> None:
        self.schema = check_schema_name(schema)
        self._dsn = dsn
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None

    async def init(self) -> None:
        if self._pool is not None:
            return
        self._pool = await open_pg_pool(
            self._dsn, self.schema, self.ddl, lock=f"maestro.{self.name}.ddl",
            max_size=self._max_size,
        )  # fmt: skip

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Tx]:
        if self._pool is None:
            raise RuntimeError(f"{self.name} store is not open; call init() first")
        async with self._pool.acquire() as conn, conn.transaction():
            yield PgTx(conn)


@asynccontextmanager
async def unavailable_on_error(
    what: str, error: Callable[[str], Exception], log: logging.Logger
) -> AsyncIterator[None]:
    """Turn a store failure (:data:`STORE_ERRORS`) into ``error("the <what> store is
    unavailable")``, logged: callers then fail closed."""
    try:
        yield
    except STORE_ERRORS as exc:
        log.error(f"{what} store failed", extra={"error": repr(exc)})
        raise error(f"the {what} store is unavailable") from exc
