"""Tamper-evident audit log (controls C9/C20): an RFC 6962 Merkle log with signed checkpoints.

- :mod:`.merkle` — RFC 6962/9162 hashing, inclusion and consistency proofs (pure functions)
- :mod:`.checkpoint` — C2SP signed notes and tlog checkpoints (Ed25519), the key file
- :mod:`.log` — :class:`AuditLog`, append-only over SQLite or PostgreSQL, batched writes
- :mod:`.verify` — :func:`verify` a whole log; :func:`verify_inclusion_document` for third parties

See docs/audit.md.
"""

from maestro_gateway.audit._store import (
    AuditConflict,
    AuditIntegrityError,
    AuditStore,
    AuditUnavailable,
    encode_entry,
    open_store,
)
from maestro_gateway.audit.checkpoint import (
    Checkpoint,
    NoteError,
    NoteSigner,
    NoteVerifier,
    load_or_create_signer,
    open_note,
    verify_checkpoint,
)
from maestro_gateway.audit.log import AuditLog
from maestro_gateway.audit.merkle import ProofError
from maestro_gateway.audit.verify import Report, verify, verify_inclusion_document

__all__ = [
    "AuditConflict",
    "AuditIntegrityError",
    "AuditLog",
    "AuditStore",
    "AuditUnavailable",
    "Checkpoint",
    "NoteError",
    "NoteSigner",
    "NoteVerifier",
    "ProofError",
    "Report",
    "encode_entry",
    "load_or_create_signer",
    "open_note",
    "open_store",
    "verify",
    "verify_checkpoint",
    "verify_inclusion_document",
]
