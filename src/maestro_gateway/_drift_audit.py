"""The audit records the drift scanner trusts: the entries covered by the latest signed checkpoint.

The scanner compares the registry with these records, so it first checks that they are the
ones the log signed: it streams the entries of one consistent snapshot, recomputes the Merkle
root over them from their bytes and compares it with the latest checkpoint that verifies under
the log's key. Entries beyond that checkpoint (appended without the key) are not trusted and
are reported. This is the cheap part of ``maestro-gateway audit verify`` (no node or per-checkpoint
checks); a mismatch says to run the full verification.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from maestro_gateway.audit import merkle
from maestro_gateway.audit.checkpoint import Checkpoint, NoteError, NoteVerifier, verify_checkpoint
from maestro_gateway.audit.log import AuditLog

_CHUNK = 1 << 14


@dataclass
class AuditRecords:
    """``records`` as ``(seq, record)`` in log order, and what made any of them untrustworthy."""

    records: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    signed_size: int = 0
    problems: list[str] = field(default_factory=list)


async def read_audit(log: AuditLog, types: tuple[str, ...]) -> AuditRecords:
    """The records whose ``type`` starts with one of ``types``, from the log's signed prefix."""
    verifier = NoteVerifier.from_vkey(log.vkey)
    out = AuditRecords()
    async with log.store.snapshot() as snap:
        head: Checkpoint | None = None
        for size, note in reversed(await snap.checkpoints()):
            try:
                head = verify_checkpoint(note, verifier, origin=log.origin)
            except NoteError as exc:
                out.problems.append(f"checkpoint {size} does not verify: {exc}")
                continue
            break
        out.signed_size = head.size if head is not None else 0
        frontier, beyond, last = merkle.Frontier(), 0, -(2**63)
        while rows := await snap.entries_after(last, _CHUNK):
            last = rows[-1][0]
            for seq, _ts, _leaf, entry in rows:
                if seq >= out.signed_size:
                    beyond += 1
                    continue
                if seq != frontier.size:
                    out.problems.append(f"entry {seq} follows entry {frontier.size - 1}")
                frontier.append(merkle.leaf_hash(bytes(entry)))
                record = _record(bytes(entry))
                if record is not None and str(record.get("type", "")).startswith(types):
                    out.records.append((seq, record))
    if frontier.size != out.signed_size:
        out.problems.append(
            f"the latest signed checkpoint covers {out.signed_size} entries, {frontier.size} stored"
        )
    elif head is not None and frontier.root() != head.root_hash:
        out.problems.append(f"entries 0..{head.size - 1} do not hash to the signed root")
    if beyond:
        out.problems.append(f"{beyond} entries lie beyond the latest signed checkpoint")
    return out


def _record(entry: bytes) -> dict[str, Any] | None:
    try:
        parsed = orjson.loads(entry)
    except orjson.JSONDecodeError:
        return None
    record = parsed.get("record") if isinstance(parsed, dict) else None
    return record if isinstance(record, dict) else None
