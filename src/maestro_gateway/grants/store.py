"""Grant stores on SQLite (one WAL file) and PostgreSQL, and :func:`open_store` for a URL.

SQLite: one connection per process behind an asyncio lock, each operation in ``BEGIN
IMMEDIATE`` (which also serialises gateways sharing the file). PostgreSQL: an asyncpg pool whose
connections use ``schema`` as ``search_path``; each operation is one transaction.
"""

from __future__ import annotations

from maestro_gateway._sqlstore import PostgresStore, SqliteStore, SqliteUrl, parse_url
from maestro_gateway.grants._sql import SqlGrantStore, schema

__all__ = ["PostgresGrantStore", "SqliteGrantStore", "open_store"]


class SqliteGrantStore(SqliteStore, SqlGrantStore):
    """``path`` is a file (created, with its directory, if missing) or ``:memory:``."""

    name = "grants"
    ddl = tuple(schema("REAL"))


class PostgresGrantStore(PostgresStore, SqlGrantStore):
    """``dsn`` is a ``postgresql://`` URL; ``schema`` a lowercase identifier."""

    name = "grants"
    ddl = tuple(schema("DOUBLE PRECISION"))


def open_store(url: str) -> SqlGrantStore:
    """A store for ``url`` (not yet initialised): ``sqlite:///relative.db``,
    ``sqlite:////abs.db``, ``sqlite://:memory:`` or ``postgresql://…[?schema=name]``."""
    target = parse_url(url, "grants")
    if isinstance(target, SqliteUrl):
        return SqliteGrantStore(target.path)
    return PostgresGrantStore(target.dsn, schema=target.schema)
