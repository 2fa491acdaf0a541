"""Checking an audit log end to end, and checking an inclusion proof document as a third party.

:func:`verify` reads one consistent snapshot of the store and recomputes everything from the
stored entry bytes: each leaf hash, every perfect-subtree node, and the root at the size of every
stored checkpoint, whose signature it also checks. Because every checkpoint root is recomputed
from the same entries, all checkpoints are prefixes of one tree, which is what a consistency
proof between each checkpoint and the next would show. A modified, deleted, inserted or
reordered entry changes the root at every later checkpoint; sequence gaps, stored hashes and the
position and time inside each entry localise the damage. A rollback (entries and checkpoints
removed from the end) is invisible from inside the store, so it is caught by comparison with a
checkpoint held elsewhere: the caller's *state file* (the latest checkpoint of the previous
successful run, rewritten after each) and/or an externally held checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

import orjson

from maestro_gateway.audit import merkle
from maestro_gateway.audit._store import INCLUSION_FORMAT, EntryRow, NodeRow, Snapshot, node_key
from maestro_gateway.audit.checkpoint import Checkpoint, NoteError, NoteVerifier, verify_checkpoint
from maestro_gateway.audit.log import AuditLog

__all__ = ["Report", "verify", "verify_inclusion_document"]

_MAX_DETAILS = 50


@dataclass
class Report:
    """What :func:`verify` found; ``ok`` when ``problems`` is empty.

    ``problems`` lists the findings about the log as a whole first (the first checkpoint that
    does not match, rollback, unsigned entries), then up to 50 details (entries, nodes, later
    checkpoints); ``more_problems`` counts the details left out.
    """

    entries: int = 0
    checkpoints: int = 0
    root: bytes = merkle.EMPTY_ROOT
    latest: Checkpoint | None = None
    findings: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    more_problems: int = 0

    @property
    def ok(self) -> bool:
        return not (self.findings or self.details)

    @property
    def problems(self) -> list[str]:
        return self.findings + self.details

    def add(self, problem: str, *, finding: bool = False) -> None:
        if finding:
            self.findings.append(problem)
        elif len(self.details) < _MAX_DETAILS:
            self.details.append(problem)
        else:
            self.more_problems += 1


Targets = dict[int, list[tuple[str, bytes]]]


async def verify(
    log: AuditLog,
    *,
    state_file: str | os.PathLike[str] | None = None,
    trusted_checkpoint: str | None = None,
    chunk: int = 1 << 14,
) -> Report:
    """Recompute the whole tree of ``log`` and compare it with every signed checkpoint.

    ``state_file`` holds the latest checkpoint seen by the previous successful run (created,
    0600, when missing; rewritten only when this run finds no problem). ``trusted_checkpoint``
    is a checkpoint note obtained elsewhere (a witness, a published copy). ``log`` need not be
    initialised: verification also works on a log whose :meth:`AuditLog.init` refused to start.
    """
    verifier = NoteVerifier.from_vkey(log.vkey)
    await log.store.init(create=False)  # idempotent; a log whose init() refused can be examined
    report = Report()
    state = Path(state_file) if state_file is not None else None
    async with log.store.snapshot() as snap:
        targets: Targets = {}
        stored = await snap.checkpoints()
        report.checkpoints = len(stored)
        for size, note in stored:
            try:
                head = verify_checkpoint(note, verifier, origin=log.origin)
                if head.size != size:
                    raise NoteError(f"the row holds a checkpoint of size {head.size}")
            except NoteError as exc:
                report.add(f"checkpoint {size}: {exc}")
                continue
            targets.setdefault(size, []).append((f"checkpoint {size}", head.root_hash))
            report.latest = head
        if bad := len(stored) - sum(len(t) for t in targets.values()):
            report.add(f"stored checkpoints that do not verify: {bad}", finding=True)
        references: list[tuple[str, str | None]] = [("trusted checkpoint", trusted_checkpoint)]
        if state is not None and state.exists():
            references.append((f"state file {state}", state.read_text()))
        for label, text in references:
            if text is not None:
                _add_reference(report, targets, label, text, verifier, log.origin)
        await _scan(snap, targets, report, chunk)
    _check_coverage(report, targets)
    if state is not None and report.ok and report.latest is not None:
        _write_private(state, _note_of(stored, report.latest.size))
    return report


def _note_of(stored: list[tuple[int, str]], size: int) -> str:
    return next(note for tree_size, note in stored if tree_size == size)


def _add_reference(
    report: Report, targets: Targets, label: str, note: str, verifier: NoteVerifier, origin: str
) -> None:
    try:
        head = verify_checkpoint(note, verifier, origin=origin)
    except NoteError as exc:
        report.add(f"{label}: {exc}", finding=True)
        return
    latest = report.latest.size if report.latest else 0
    if head.size > latest:
        problem = (
            f"rolled back: {label} is signed at tree size {head.size}, the log's latest at {latest}"
        )
        report.add(problem, finding=True)
    targets.setdefault(head.size, []).append((label, head.root_hash))


async def _scan(snap: Snapshot, targets: Targets, report: Report, chunk: int) -> None:
    """Stream the entries in order, rebuilding the tree; fetch the next chunk while hashing."""
    tree = _Rebuild(report, targets)
    ahead = asyncio.ensure_future(snap.entries_after(-(2**63), chunk))
    stored: asyncio.Future[list[NodeRow]] | None = None
    try:
        while rows := await ahead:
            ahead = asyncio.ensure_future(snap.entries_after(rows[-1][0], chunk))
            first = tree.frontier.size
            stored = asyncio.ensure_future(snap.nodes_between(first << 6, (first + len(rows)) << 6))
            made = tree.add(rows)
            if (nodes := await stored) != made:
                _diff_nodes(report, nodes, made)
    finally:
        for task in (ahead, stored):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    report.entries, report.root = tree.frontier.size, tree.frontier.root()
    extra = await snap.count_nodes_from(report.entries << 6)
    if extra:
        report.add(f"{extra} tree nodes lie beyond the last entry ({report.entries})", finding=True)


class _Rebuild:
    """The tree recomputed from entry bytes, one chunk at a time, checked as it grows."""

    def __init__(self, report: Report, targets: Targets) -> None:
        self.report, self.targets = report, targets
        self.frontier = merkle.Frontier()
        self.last_seq = -1
        self.diverged = False
        self._check_root(0, merkle.EMPTY_ROOT)

    def _check_root(self, size: int, root: bytes) -> None:
        for label, expected in self.targets.get(size, []):
            if expected != root:
                problem = f"{label}: its root differs from the tree of entries 0..{size}"
                self.report.add(problem, finding=not self.diverged)
                self.diverged = True

    def add(self, rows: Sequence[EntryRow]) -> list[NodeRow]:
        """Check ``rows`` and append their leaves; the interior nodes made, in key order."""
        seqs, stamps, stored, entries = zip(*rows, strict=True)
        if seqs != tuple(range(self.last_seq + 1, self.last_seq + 1 + len(seqs))):
            for seq in seqs:
                if seq != self.last_seq + 1:
                    self.report.add(f"entry {seq} follows entry {self.last_seq} (entries deleted, "
                                    "inserted or renumbered)")  # fmt: skip
                self.last_seq = seq
        self.last_seq = seqs[-1]
        leaves = [sha256(b"\x00" + entry).digest() for entry in entries]
        if leaves != list(stored):
            for seq, leaf, kept in zip(seqs, leaves, stored, strict=True):
                if leaf != kept:
                    self.report.add(f"entry {seq}: stored leaf hash does not match the entry bytes")
        for seq, ts, entry in zip(seqs, stamps, entries, strict=True):
            if not entry.endswith(b',"seq":%d,"ts":"%s"}' % (seq, ts.encode())):
                self.report.add(f"entry {seq}: its bytes name another position or time")
        start, count = self.frontier.size, len(leaves)
        if count & (count - 1) or start % count:
            return self._add_leaves(leaves)
        levels = merkle.subtree_levels(leaves)
        made: list[NodeRow] = []
        for level in range(1, len(levels)):
            first, step = node_key(level, start >> level), 1 << (level + 6)
            keys = range(first, first + step * len(levels[level]), step)
            made.extend(zip(keys, levels[level], strict=True))
        for size in sorted(t for t in self.targets if start < t <= start + count):
            parts = merkle.perfect_subtrees(start, size)
            inner = [levels[lv][i - (start >> lv)] for lv, i in parts]
            self._check_root(size, merkle.fold(self.frontier.hashes + inner))
        for level, index, value in self.frontier.append_subtree(len(levels) - 1, levels[-1][0]):
            made.append((node_key(level, index), value))
        made.sort()
        return made

    def _add_leaves(self, leaves: list[bytes]) -> list[NodeRow]:
        made: list[NodeRow] = []
        for leaf in leaves:
            for level, index, value in self.frontier.append(leaf):
                made.append((node_key(level, index), value))
            if self.frontier.size in self.targets:
                self._check_root(self.frontier.size, self.frontier.root())
        return made


def _diff_nodes(report: Report, stored: list[NodeRow], made: list[NodeRow]) -> None:
    have, want = dict(stored), dict(made)
    for key in sorted(have.keys() | want.keys()):
        if have.get(key) != want.get(key):
            kind = "missing" if key not in have else "unexpected" if key not in want else "wrong"
            report.add(f"tree node {kind}: level {key & 63}, last leaf {key >> 6}")


def _check_coverage(report: Report, targets: Targets) -> None:
    for size in sorted(targets):
        if size > report.entries:
            for label, _ in targets[size]:
                stored = report.entries
                report.add(f"{label} covers {size} entries, only {stored} are stored", finding=True)
    signed = report.latest.size if report.latest else 0
    if report.entries > signed:
        unsigned = f"entries {signed}..{report.entries - 1} are not covered by a checkpoint"
        report.add(unsigned, finding=True)


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text``, readable by its owner only."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".audit-state-")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def verify_inclusion_document(
    doc: Mapping[str, Any], checkpoint_text: str, vkey: str
) -> dict[str, Any]:
    """The entry ``{"record", "seq", "ts"}`` proven by ``doc`` (from :meth:`AuditLog.prove`).

    ``checkpoint_text`` is the signed checkpoint the verifier trusts (it may be the one in
    ``doc``) and ``vkey`` the log's verifier key. Raises NoteError or merkle.ProofError.
    """
    if doc.get("format") != INCLUSION_FORMAT:
        raise merkle.ProofError(f"not a {INCLUSION_FORMAT} document")
    head = verify_checkpoint(checkpoint_text, vkey)
    index, size, entry, proof = (doc.get(k) for k in ("index", "tree_size", "entry", "proof"))
    if doc.get("origin") != head.origin:
        raise merkle.ProofError(f"document is for log {doc.get('origin')!r}, not {head.origin!r}")
    if type(index) is not int or type(size) is not int or not isinstance(entry, str):
        raise merkle.ProofError("index and tree_size must be integers, entry a string")
    if not isinstance(proof, list) or not all(isinstance(h, str) for h in proof):
        raise merkle.ProofError("proof must be a list of hex strings")
    if size != head.size:
        raise merkle.ProofError(
            f"proof is for tree size {size}, the checkpoint for {head.size}: "
            f"ask the log for a proof at size {head.size}"
        )
    try:
        path = [bytes.fromhex(h) for h in proof]
    except ValueError as exc:
        raise merkle.ProofError("proof must be a list of hex strings") from exc
    raw = entry.encode()
    merkle.verify_inclusion(index, size, merkle.leaf_hash(raw), path, head.root_hash)
    parsed = orjson.loads(raw)
    if not isinstance(parsed, dict) or parsed.get("seq") != index:
        raise merkle.ProofError(f"entry does not say it is number {index}")
    return parsed
