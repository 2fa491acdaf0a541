"""The tamper-evident audit log (controls C9/C20): an append-only RFC 6962 Merkle log.

Each record is one leaf (its entry bytes: ``_store.encode_entry``). ``append`` numbers it at once;
a background task writes queued entries every ``flush_interval`` seconds or ``max_batch``
entries, and a critical entry is written, with all queued before it, and synced before
``append`` returns. A batch is one transaction: entries, the perfect-subtree nodes they complete,
and a checkpoint signed over the new tree. The tree lives in memory as its frontier, so appends
cost O(1) amortised hashing and proofs O(log n) reads. Failure handling: docs/audit.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from maestro_gateway.audit import merkle
from maestro_gateway.audit._store import (
    INCLUSION_FORMAT,
    AuditConflict,
    AuditIntegrityError,
    AuditStore,
    AuditUnavailable,
    encode_entry,
    node_key,
    open_store,
    stamp,
)
from maestro_gateway.audit.checkpoint import Checkpoint, NoteError, NoteSigner, verify_checkpoint

__all__ = ["AuditLog"]

log = logging.getLogger("maestro_gateway.audit")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _retrieve(task: asyncio.Future[None]) -> None:
    """Mark a writer's failure as seen: every flush() waiting on it has raised it already."""
    if not task.cancelled():
        task.exception()


@dataclass(slots=True)
class _Pending:
    seq: int
    ts: str
    leaf: bytes
    entry: bytes
    critical: bool


class AuditLog:
    """An audit log over ``store``. Writers need ``signer``; readers may pass only ``vkey``.

    ``origin`` names the log in its checkpoints (default: the signer's key name).
    """

    def __init__(
        self,
        store: AuditStore,
        signer: NoteSigner | None,
        *,
        vkey: str | None = None,
        origin: str | None = None,
        clock: Callable[[], datetime] = _utc_now,
        flush_interval: float = 0.05,
        max_batch: int = 1000,
        max_pending: int = 100_000,
    ) -> None:
        if vkey is None:
            if signer is None:
                raise ValueError("an audit log needs a signer (to write) or a vkey (to read)")
            vkey = signer.vkey
        self.store = store
        self._signer = signer
        self.vkey = vkey
        self.origin = origin or vkey.partition("+")[0]
        self._clock = clock
        self._interval = flush_interval
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._frontier = merkle.Frontier()
        self._next_seq = 0
        self._pending: list[_Pending] = []
        self._writer: asyncio.Future[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._stopped: BaseException | None = AuditUnavailable("audit log is not open")
        self.last_error: BaseException | None = None

    @classmethod
    def open(cls, url: str, signer: NoteSigner | None, **options: Any) -> AuditLog:
        """A log stored at ``url`` (see :func:`~maestro_gateway.audit.open_store`)."""
        return cls(open_store(url), signer, **options)

    async def init(self) -> None:
        """Open the store, rebuild the frontier, check it against the latest checkpoint.

        Raises AuditIntegrityError (and closes the store) when they do not match.
        """
        await self.store.init(create=self._signer is not None)
        try:
            await self._load()
        except BaseException:
            await self.store.close()
            raise
        self._stopped = None
        if self._signer is not None:
            self._task = asyncio.create_task(self._run(), name="audit-log-flusher")

    async def _load(self) -> None:
        size = await self.store.size()
        ids = merkle.perfect_subtrees(0, size)
        hashes = await self._subtrees(ids)
        self._frontier = merkle.Frontier(size, [hashes[i] for i in ids])
        self._next_seq = size
        note = await self.store.checkpoint()
        if note is None:
            if size:
                raise AuditIntegrityError(f"audit log has {size} entries and no checkpoint")
        else:
            try:
                head = verify_checkpoint(note, self.vkey, origin=self.origin)
            except NoteError as exc:
                raise AuditIntegrityError(f"latest audit checkpoint: {exc}") from exc
            if (head.size, head.root_hash) != (size, self._frontier.root()):
                raise AuditIntegrityError(
                    f"stored tree (size {size}) does not match the latest signed checkpoint "
                    f"(size {head.size}); run `maestro-gateway audit verify`"
                )

    async def close(self) -> None:
        """Stop the background writer, write what is queued and close the store."""
        if self._task is not None:
            task, self._task = self._task, None
            self._closing = True
            self._wake.set()
            await task  # it finishes the batch in hand; it is never cancelled mid-commit
        try:
            if self._stopped is None and self._pending:
                await self.flush()
        finally:
            self._stopped = AuditUnavailable("audit log is closed")
            await self.store.close()

    async def __aenter__(self) -> AuditLog:
        await self.init()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def size(self) -> int:
        """Entries written and covered by a checkpoint."""
        return self._frontier.size

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def append(self, record: Mapping[str, Any], critical: bool = False) -> int:
        """Queue ``record`` and return its sequence number; ``critical`` waits until it is on disk.

        Raises TypeError if ``record`` is not JSON-serialisable (keys must be strings), and
        AuditUnavailable if the entry cannot be queued or, when critical, made durable (it then
        stays queued and is retried).
        """
        if self._stopped is not None:
            raise AuditUnavailable(str(self._stopped)) from self._stopped
        if self._signer is None:
            raise AuditUnavailable("audit log was opened read-only (no signer)")
        if len(self._pending) >= self._max_pending:
            if self.last_error is not None:
                raise AuditUnavailable(f"{len(self._pending)} audit entries wait to be written")
            await self.flush()  # back-pressure on a producer faster than the store
        seq, ts = self._next_seq, stamp(self._clock())
        entry = encode_entry(seq, ts, record)
        self._next_seq += 1
        self._pending.append(_Pending(seq, ts, merkle.leaf_hash(entry), entry, critical))
        if critical:
            await self.flush()
        elif len(self._pending) >= self._max_batch:
            self._wake.set()
        return seq

    def append_nowait(self, record: Mapping[str, Any]) -> int:
        """Queue a non-critical ``record`` without waiting (for callers that cannot await).

        Raises AuditUnavailable when the queue is full or the log stopped: the caller decides
        whether that refuses its request."""
        if self._stopped is not None:
            raise AuditUnavailable(str(self._stopped)) from self._stopped
        if self._signer is None:
            raise AuditUnavailable("audit log was opened read-only (no signer)")
        if len(self._pending) >= self._max_pending:
            raise AuditUnavailable(f"{len(self._pending)} audit entries wait to be written")
        seq, ts = self._next_seq, stamp(self._clock())
        entry = encode_entry(seq, ts, record)
        self._next_seq += 1
        self._pending.append(_Pending(seq, ts, merkle.leaf_hash(entry), entry, False))
        if len(self._pending) >= self._max_batch:
            self._wake.set()
        return seq

    async def flush(self) -> None:
        """Write everything queued so far (batches of ``max_batch``, one checkpoint each).

        Raises AuditUnavailable when the store fails (the entries stay queued for a retry) and
        AuditConflict when another writer has appended to the tables (this log then stops).
        The writing itself runs in one shielded task, so a caller cancelled mid-commit (a client
        that went away) cannot leave the store and the in-memory tree disagreeing.
        """
        target = self._next_seq
        while self._frontier.size < target:
            if self._writer is None or self._writer.done():
                self._writer = asyncio.ensure_future(self._drain())
                self._writer.add_done_callback(_retrieve)
            await asyncio.shield(self._writer)

    async def _drain(self) -> None:
        while self._pending:
            if self._stopped is not None:
                raise AuditUnavailable(str(self._stopped)) from self._stopped
            try:
                await self._write(self._pending[: self._max_batch])
            except AuditConflict as exc:
                self._stopped = self.last_error = exc
                raise
            except Exception as exc:
                self.last_error = exc
                raise AuditUnavailable(f"audit store write failed: {exc!r}") from exc
            self.last_error = None

    async def _write(self, batch: Sequence[_Pending]) -> None:
        assert self._signer is not None
        frontier = self._frontier.copy()
        nodes: list[tuple[int, bytes]] = []
        for item in batch:
            for level, index, value in frontier.append(item.leaf):
                nodes.append((node_key(level, index), value))
        now = self._clock()
        head = Checkpoint(self.origin, frontier.size, frontier.root(), now)
        note = self._signer.sign_checkpoint(head)
        await self.store.append_batch(
            batch[0].seq,
            [(p.seq, p.ts, p.leaf, p.entry) for p in batch],
            nodes,
            (frontier.size, stamp(now), note),
            durable=any(p.critical for p in batch),
        )
        self._frontier = frontier
        del self._pending[: len(batch)]

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            if self._closing or not self._pending:
                continue
            failing = self.last_error is not None
            try:
                await self.flush()
            except AuditConflict:
                log.exception("audit log stopped: another writer appended to it")
                return
            except Exception:
                if not failing:
                    log.exception("audit log write failed; retrying")
            else:
                if failing:
                    log.warning("audit log writes resumed at size %d", self.size)

    async def latest_checkpoint(self) -> str | None:
        """The latest signed checkpoint note, or None for an empty log."""
        return await self.store.checkpoint()

    async def _subtrees(self, ids: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        leaves = [index for level, index in ids if level == 0]
        keys = {node_key(level, index): (level, index) for level, index in ids if level}
        got = {(0, seq): value for seq, value in (await self.store.leaf_hashes(leaves)).items()}
        got.update({keys[k]: value for k, value in (await self.store.nodes(list(keys))).items()})
        missing = [i for i in ids if i not in got]
        if missing:
            raise AuditIntegrityError(f"audit tree nodes (level, index) missing: {missing[:5]}")
        return got

    async def _range_hashes(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        parts = [merkle.perfect_subtrees(lo, hi) for lo, hi in ranges]
        got = await self._subtrees(sorted({i for part in parts for i in part}))
        return [merkle.fold([got[i] for i in part]) for part in parts]

    def _check_size(self, tree_size: int) -> None:
        if not 0 <= tree_size <= self._frontier.size:
            raise ValueError(f"tree size {tree_size} is beyond the {self._frontier.size} written")

    async def inclusion_proof(self, seq: int, tree_size: int | None = None) -> list[bytes]:
        """The RFC 9162 inclusion proof of entry ``seq`` in the tree of ``tree_size`` (latest)."""
        size = self._frontier.size if tree_size is None else tree_size
        self._check_size(size)
        return await self._range_hashes(merkle.inclusion_ranges(seq, size))

    async def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """The RFC 9162 consistency proof from ``old_size`` to ``new_size`` (latest)."""
        size = self._frontier.size if new_size is None else new_size
        self._check_size(size)
        return await self._range_hashes(merkle.consistency_ranges(old_size, size))

    async def prove(self, seq: int, tree_size: int | None = None) -> dict[str, Any]:
        """A self-contained inclusion proof of entry ``seq`` (see docs/audit.md).

        Queued entries are written first. The proof is against the checkpoint of ``tree_size``
        (default: the latest), which the document carries.
        """
        if self._signer is not None:
            await self.flush()
        note = await self.store.checkpoint(tree_size)
        if note is None:
            raise ValueError(f"no audit checkpoint at tree size {tree_size or 'latest'}")
        head = verify_checkpoint(note, self.vkey, origin=self.origin)
        row = await self.store.entry(seq)
        if row is None or seq >= head.size:
            raise ValueError(f"audit entry {seq} is not in the tree of size {head.size}")
        proof = await self._range_hashes(merkle.inclusion_ranges(seq, head.size))
        return {
            "format": INCLUSION_FORMAT,
            "origin": self.origin,
            "index": seq,
            "tree_size": head.size,
            "entry": bytes(row[3]).decode(),
            "proof": [value.hex() for value in proof],
            "checkpoint": note,
        }
