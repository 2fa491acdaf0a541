"""The storage contract of the audit log, shared by the SQLite and PostgreSQL back ends.

Three append-only tables:

- ``audit_entries (seq, ts, leaf_hash, entry)``: ``entry`` is the exact bytes that were hashed
  (canonical JSON of ``{"record", "seq", "ts"}``), ``leaf_hash`` = SHA-256(0x00 || entry);
- ``audit_nodes (id, hash)``: every interior node of the tree that is the root of a *perfect*
  subtree, keyed by :func:`node_key` so that key order is creation order; with the leaf hashes
  they answer any proof in O(log n) reads;
- ``audit_checkpoints (tree_size, ts, note)``: the signed checkpoint written with each batch.

A batch (entries, their new nodes and the checkpoint over the result) is one transaction, which
first checks that the table still ends where the writer believes it does (:class:`AuditConflict`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

__all__ = [
    "AuditConflict",
    "AuditIntegrityError",
    "AuditStore",
    "AuditUnavailable",
    "EntryRow",
    "NodeRow",
    "Snapshot",
    "ddl",
    "encode_entry",
    "node_key",
    "open_store",
    "stamp",
]

EntryRow = tuple[int, str, bytes, bytes]
"""``(seq, ts, leaf_hash, entry)``"""
NodeRow = tuple[int, bytes]
"""``(node_key, hash)``"""

TABLES = ("audit_entries", "audit_nodes", "audit_checkpoints")
INCLUSION_FORMAT = "maestro-audit-inclusion/v1"
"""The ``format`` of the inclusion proof documents of ``AuditLog.prove``."""


class AuditConflict(RuntimeError):
    """The stored log does not end where this writer expected: another writer appended to it."""


class AuditUnavailable(RuntimeError):
    """The log cannot take more entries now (store unreachable, queue full, or closed)."""


class AuditIntegrityError(RuntimeError):
    """The stored log does not match its own latest signed checkpoint."""


def encode_entry(seq: int, ts: str, record: Mapping[str, Any]) -> bytes:
    """The leaf bytes of ``record`` at ``seq`` and ``ts``; they end ``,"seq":…,"ts":"…"}``."""
    return orjson.dumps({"record": record, "seq": seq, "ts": ts}, option=orjson.OPT_SORT_KEYS)


def stamp(moment: datetime) -> str:
    """``moment`` as RFC 3339 UTC with microseconds: ``2026-05-01T12:00:03.000000Z``."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def node_key(level: int, index: int) -> int:
    """A perfect subtree's key: (last leaf covered, level), so key order is creation order."""
    return ((((index + 1) << level) - 1) << 6) | level


def ddl(integer: str, blob: str) -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS audit_entries (seq {integer} PRIMARY KEY, ts TEXT NOT NULL,"
        f" leaf_hash {blob} NOT NULL, entry {blob} NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS audit_nodes (id {integer} PRIMARY KEY, hash {blob} NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS audit_checkpoints (tree_size {integer} PRIMARY KEY,"
        " ts TEXT NOT NULL, note TEXT NOT NULL)",
    ]


class Snapshot(Protocol):
    """A consistent read-only view of the whole log (one read transaction)."""

    async def checkpoints(self) -> list[tuple[int, str]]:
        """Every ``(tree_size, note)``, ascending."""
        ...

    async def entries_after(self, seq: int, limit: int) -> list[EntryRow]:
        """Up to ``limit`` entries with a sequence number above ``seq``, ascending."""
        ...

    async def nodes_between(self, lo: int, hi: int) -> list[NodeRow]:
        """The nodes with ``lo <= key < hi``, ascending."""
        ...

    async def count_nodes_from(self, lo: int) -> int: ...


class AuditStore(Protocol):
    """Where an :class:`~maestro_gateway.audit.log.AuditLog` keeps its tables."""

    async def init(self, *, create: bool = True) -> None:
        """Connect (idempotent); with ``create``, add missing tables and append-only triggers."""
        ...

    async def close(self) -> None: ...

    async def size(self) -> int:
        """One past the highest stored sequence number (0 when empty)."""
        ...

    async def append_batch(
        self,
        start: int,
        entries: Sequence[EntryRow],
        nodes: Sequence[NodeRow],
        checkpoint: tuple[int, str, str],
        *,
        durable: bool,
    ) -> None:
        """Insert all in one transaction; raise AuditConflict unless ``size() == start``.

        ``durable`` commits with a full sync (SQLite ``synchronous=FULL``, PostgreSQL
        ``synchronous_commit=on``); otherwise the commit may return before the disk sync.
        """
        ...

    async def leaf_hashes(self, seqs: Sequence[int]) -> dict[int, bytes]: ...

    async def nodes(self, keys: Sequence[int]) -> dict[int, bytes]: ...

    async def entry(self, seq: int) -> EntryRow | None: ...

    async def checkpoint(self, tree_size: int | None = None) -> str | None:
        """The note of the checkpoint at ``tree_size`` (the latest when ``None``)."""
        ...

    def snapshot(self) -> AbstractAsyncContextManager[Snapshot]: ...


def open_store(url: str) -> AuditStore:
    """A store for ``url`` (not yet initialised).

    ``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or ``postgresql://user@host/db``
    with an optional ``?schema=name`` (default ``public``).
    """
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme == "sqlite":
        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
        if not path or path == ":memory:":
            raise ValueError("sqlite audit URL needs a file: sqlite:///path/to/audit.db")
        from maestro_gateway.audit._sqlite import SqliteAuditStore

        return SqliteAuditStore(path)
    if scheme in ("postgresql", "postgres"):
        from maestro_gateway.audit._postgres import PostgresAuditStore

        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        schema = next((v for k, v in query if k == "schema"), "public")
        rest = urlencode([(k, v) for k, v in query if k != "schema"])
        return PostgresAuditStore(urlunsplit(parts._replace(query=rest)), schema=schema)
    raise ValueError(
        f"unsupported audit log URL scheme {scheme or '(none)'!r}: "
        "use sqlite:///path/to/audit.db or postgresql://..."
    )
