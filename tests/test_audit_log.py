"""The audit log over SQLite and PostgreSQL: writes, proofs, batching, durability, tampering.

Tamper tests play an attacker with full database access: they drop the append-only triggers,
edit the tables directly, and check that :func:`verify` reports the damage.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from maestro_gateway.audit import (
    AuditConflict,
    AuditIntegrityError,
    AuditLog,
    AuditUnavailable,
    NoteError,
    NoteSigner,
    ProofError,
    Report,
    encode_entry,
    merkle,
    verify,
    verify_checkpoint,
    verify_inclusion_document,
)
from tests.services import unavailable

PG_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
ORIGIN = "gw.example/audit"
SIGNER = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
TABLES = ("audit_entries", "audit_nodes", "audit_checkpoints")


@dataclass
class Backend:
    """A log location plus raw SQL access as the database owner (``?`` placeholders)."""

    kind: str
    url: str
    run: Callable[..., Awaitable[list[tuple[Any, ...]]]]

    async def drop_triggers(self) -> None:
        for table in TABLES:
            if self.kind == "sqlite":
                await self.run(f"DROP TRIGGER {table}_no_update")
                await self.run(f"DROP TRIGGER {table}_no_delete")
            else:
                await self.run(f"DROP TRIGGER {table}_append_only ON {table}")
                await self.run(f"DROP TRIGGER {table}_no_truncate ON {table}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path / "audit.db"

        async def run_sqlite(sql: str, *args: Any) -> list[tuple[Any, ...]]:
            with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
                return db.execute(sql, args).fetchall()

        yield Backend("sqlite", f"sqlite:///{path}", run_sqlite)
        return
    schema = f"test_audit_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(PG_SERVER)
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable(f"PostgreSQL not reachable at {PG_SERVER}: {exc}")

    async def run_postgres(sql: str, *args: Any) -> list[tuple[Any, ...]]:
        parts = sql.split("?")
        numbered = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))
        async with admin.transaction():
            await admin.execute(f"SET LOCAL search_path TO {schema}")
            return [tuple(row) for row in await admin.fetch(numbered, *args)]

    try:
        yield Backend("postgres", f"{PG_SERVER}?schema={schema}", run_postgres)
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


async def until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` for up to 5 s (the background writer signals nothing when done)."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached within 5 s")


def open_log(backend: Backend, **options: Any) -> AuditLog:
    return AuditLog.open(backend.url, SIGNER, **options)


async def filled(backend: Backend, count: int = 40, batch: int = 8) -> None:
    """A log of ``count`` records written in batches of ``batch`` (one checkpoint each)."""
    async with open_log(backend, max_batch=batch, flush_interval=3600) as log:
        for i in range(count):
            await log.append({"event": "request", "i": i, "principal": "alice"})
        await log.flush()


async def check(backend: Backend, **options: Any) -> Report:
    """Verify the stored log as an auditor holding only the verifier key."""
    log = AuditLog.open(backend.url, None, vkey=SIGNER.vkey, origin=ORIGIN)
    try:
        return await verify(log, **options)
    finally:
        await log.close()


async def leaves(backend: Backend) -> list[bytes]:
    rows = await backend.run("SELECT leaf_hash FROM audit_entries ORDER BY seq")
    return [bytes(row[0]) for row in rows]


def test_public_surface_is_exported() -> None:
    """Every name in maestro_gateway.audit.__all__ exists, and the list is sorted."""
    import maestro_gateway.audit as audit

    assert audit.__all__ == sorted(audit.__all__)
    for name in audit.__all__:
        assert getattr(audit, name) is not None


async def test_appends_are_numbered_and_signed(backend: Backend) -> None:
    """Appends get 0, 1, 2…; each batch ends in a signed checkpoint over all entries so far."""
    async with open_log(backend, max_batch=4, flush_interval=3600) as log:
        seqs = [await log.append({"n": n}) for n in range(10)]
        await log.flush()
        assert seqs == list(range(10))
        note = await log.latest_checkpoint()
    assert note is not None
    head = verify_checkpoint(note, SIGNER.vkey, origin=ORIGIN)
    assert (head.size, head.root_hash) == (10, merkle.root(await leaves(backend)))
    rows = await backend.run("SELECT tree_size FROM audit_checkpoints ORDER BY tree_size")
    assert [r[0] for r in rows] == [4, 8, 10]
    entry = (await backend.run("SELECT ts, entry FROM audit_entries WHERE seq = 3"))[0]
    assert bytes(entry[1]) == encode_entry(3, entry[0], {"n": 3})
    assert (await check(backend)).ok


async def test_proofs_from_the_store_match_the_pure_functions(backend: Backend) -> None:
    """Inclusion and consistency proofs read from stored nodes equal those computed from leaves."""
    await filled(backend, count=40)
    hashes = await leaves(backend)
    async with open_log(backend) as log:
        for size in (1, 7, 8, 13, 40):
            for seq in range(size):
                proof = await log.inclusion_proof(seq, size)
                assert proof == merkle.inclusion_proof(seq, hashes[:size])
            for old in range(size + 1):
                proof = await log.consistency_proof(old, size)
                assert proof == merkle.consistency_proof(old, hashes[:size])
        with pytest.raises(ValueError, match="beyond"):
            await log.inclusion_proof(0, 41)


async def test_inclusion_document_is_checkable_by_a_third_party(backend: Backend) -> None:
    """prove() gives a JSON document that verifies with only the checkpoint and the vkey."""
    await filled(backend, count=21, batch=8)
    async with open_log(backend) as log:
        doc = await log.prove(5)
        older = await log.prove(5, tree_size=16)
    assert (doc["tree_size"], older["tree_size"]) == (21, 16)
    entry = verify_inclusion_document(doc, doc["checkpoint"], SIGNER.vkey)
    assert entry["record"] == {"event": "request", "i": 5, "principal": "alice"}
    assert verify_inclusion_document(older, older["checkpoint"], SIGNER.vkey) == entry
    with pytest.raises(ProofError, match="size 21"):
        verify_inclusion_document(older, doc["checkpoint"], SIGNER.vkey)
    forged = {**doc, "entry": doc["entry"].replace("alice", "mallory")}
    with pytest.raises(ProofError):
        verify_inclusion_document(forged, doc["checkpoint"], SIGNER.vkey)
    with pytest.raises(ProofError):
        verify_inclusion_document({**doc, "index": 4}, doc["checkpoint"], SIGNER.vkey)
    stranger = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    with pytest.raises(NoteError):
        verify_inclusion_document(doc, doc["checkpoint"], stranger.vkey)


async def test_critical_append_is_stored_before_it_returns(backend: Backend) -> None:
    """A critical append, and everything queued before it, is in the store when append returns."""
    log = open_log(backend, flush_interval=3600)
    await log.init()
    try:
        for n in range(3):
            await log.append({"n": n})
        assert await backend.run("SELECT count(*) FROM audit_entries") == [(0,)]
        assert await log.append({"n": "critical"}, critical=True) == 3
        assert await backend.run("SELECT count(*) FROM audit_entries") == [(4,)]
        async with AuditLog.open(backend.url, None, vkey=SIGNER.vkey) as reopened:
            assert reopened.size == 4
            assert (await log.prove(3))["entry"].startswith('{"record":{"n":"critical"}')
    finally:
        await log.close()


async def test_cancelled_critical_appends_leave_the_log_whole(backend: Backend) -> None:
    """Callers cancelled at any point of a critical write neither lose nor duplicate entries."""
    async with open_log(backend, flush_interval=3600) as log:
        for attempt in range(30):
            task = asyncio.create_task(log.append({"n": attempt}, critical=True))
            await asyncio.sleep(attempt * 0.0002)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await log.flush()
        assert (log.size, log.pending, log.last_error) == (30, 0, None)
    assert (await check(backend)).ok


async def test_batcher_flushes_on_its_timer(backend: Backend) -> None:
    """Non-critical entries are written by the background task within the flush interval."""
    async with open_log(backend, flush_interval=0.02) as log:
        for n in range(5):
            await log.append({"n": n})
        assert log.size == 0
        await until(lambda: log.size == 5)
    assert await backend.run("SELECT count(*) FROM audit_checkpoints") == [(1,)]


async def test_batcher_flushes_when_a_batch_is_full(backend: Backend) -> None:
    """Reaching max_batch queued entries wakes the writer; a partial batch waits for flush()."""
    async with open_log(backend, flush_interval=3600, max_batch=10) as log:
        for n in range(10):
            await log.append({"n": n})
        await until(lambda: log.size == 10)
        for n in range(3):
            await log.append({"n": n})
        await asyncio.sleep(0.05)
        assert (log.size, log.pending) == (10, 3)
        await log.flush()
        assert (log.size, log.pending) == (13, 0)


async def test_close_writes_what_is_queued(backend: Backend) -> None:
    """Closing the log writes queued entries; reopening continues the numbering and the tree."""
    async with open_log(backend, flush_interval=3600) as log:
        await log.append({"n": 0})
        first = await log.latest_checkpoint()
    assert first is None
    async with open_log(backend) as log:
        assert log.size == 1
        assert await log.append({"n": 1}, critical=True) == 1
        old = verify_checkpoint(await backend_note(backend, 1), SIGNER.vkey)
        new = verify_checkpoint(str(await log.latest_checkpoint()), SIGNER.vkey)
        proof = await log.consistency_proof(1, 2)
    merkle.verify_consistency(1, 2, old.root_hash, new.root_hash, proof)


async def backend_note(backend: Backend, size: int) -> str:
    rows = await backend.run("SELECT note FROM audit_checkpoints WHERE tree_size = ?", size)
    return str(rows[0][0])


async def test_records_that_are_not_json_are_refused(backend: Backend) -> None:
    """A record JSON cannot encode raises TypeError and does not use up a sequence number."""
    async with open_log(backend) as log:
        with pytest.raises(TypeError):
            await log.append({"when": object()})
        with pytest.raises(TypeError):
            await log.append({1: "non-string key"})  # type: ignore[dict-item]
        assert await log.append({"ok": True}) == 0


async def test_store_failure_fails_closed_and_recovers(backend: Backend) -> None:
    """A critical append fails while the store refuses writes; its entry is written on healing."""
    await filled(backend, count=2)
    async with open_log(backend, flush_interval=0.02) as log:
        if backend.kind == "sqlite":
            await backend.run(
                "CREATE TRIGGER down BEFORE INSERT ON audit_entries "
                "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
            heal = "DROP TRIGGER down"
        else:
            await backend.run(
                "CREATE FUNCTION down() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'disk full'; END $$"
            )
            await backend.run(
                "CREATE TRIGGER down BEFORE INSERT ON audit_entries "
                "FOR EACH ROW EXECUTE FUNCTION down()"
            )
            heal = "DROP TRIGGER down ON audit_entries"
        with pytest.raises(AuditUnavailable, match="disk full"):
            await log.append({"n": "critical"}, critical=True)
        assert log.pending == 1
        await backend.run(heal)
        await until(lambda: log.size == 3)
    assert (await check(backend)).ok


async def test_second_writer_is_detected(backend: Backend) -> None:
    """Two writers on one log: the one that falls behind stops instead of forking the tree."""
    async with open_log(backend) as first, open_log(backend) as second:
        await first.append({"from": "first"}, critical=True)
        with pytest.raises(AuditConflict):
            await second.append({"from": "second"}, critical=True)
        with pytest.raises(AuditUnavailable):
            await second.append({"from": "second"})
    assert (await check(backend)).ok


@pytest.mark.parametrize("table", TABLES)
async def test_triggers_refuse_update_and_delete(backend: Backend, table: str) -> None:
    """Even the database owner cannot UPDATE or DELETE (or TRUNCATE) rows while triggers stand."""
    await filled(backend, count=3, batch=3)
    refused = (sqlite3.IntegrityError, asyncpg.InsufficientPrivilegeError)
    column = {"audit_entries": "ts", "audit_nodes": "hash", "audit_checkpoints": "note"}[table]
    with pytest.raises(refused, match="append-only"):
        await backend.run(f"UPDATE {table} SET {column} = {column}")
    with pytest.raises(refused, match="append-only"):
        await backend.run(f"DELETE FROM {table}")
    if backend.kind == "postgres":
        with pytest.raises(refused, match="append-only"):
            await backend.run(f"TRUNCATE {table}")
    assert (await check(backend)).ok


async def tamper(backend: Backend, *statements: tuple[Any, ...]) -> Report:
    await filled(backend)
    await backend.drop_triggers()
    for sql, *args in statements:
        await backend.run(sql, *args)
    return await check(backend)


FORGED_TS = "2026-01-01T00:00:00.000000Z"


def forged(seq: int) -> tuple[bytes, bytes]:
    entry = encode_entry(seq, FORGED_TS, {"event": "forged"})
    return merkle.leaf_hash(entry), entry


def mentions(report: Report, *phrases: str) -> bool:
    return not report.ok and all(any(p in problem for problem in report.problems) for p in phrases)


async def test_modified_entry_is_detected(backend: Backend) -> None:
    """Changing an entry's bytes breaks its leaf hash and every later checkpoint root."""
    report = await tamper(
        backend, ("UPDATE audit_entries SET entry = ? WHERE seq = 7", forged(7)[1])
    )
    assert mentions(report, "entry 7: stored leaf hash", "checkpoint 8: its root differs")


async def test_modified_entry_with_rehashed_leaf_is_detected(backend: Backend) -> None:
    """Rewriting an entry together with its leaf hash still breaks the signed roots and nodes."""
    leaf, entry = forged(7)
    sql = "UPDATE audit_entries SET ts = ?, leaf_hash = ?, entry = ? WHERE seq = 7"
    report = await tamper(backend, (sql, FORGED_TS, leaf, entry))
    assert mentions(report, "checkpoint 8: its root differs", "tree node wrong")
    assert not any("entry 7" in problem for problem in report.problems)


async def test_deleted_entry_is_detected(backend: Backend) -> None:
    """Deleting an entry leaves a gap and the signed roots no longer match."""
    report = await tamper(backend, ("DELETE FROM audit_entries WHERE seq = 7",))
    assert mentions(report, "entry 8 follows entry 6", "checkpoint 8: its root differs")


async def test_inserted_entry_is_detected(backend: Backend) -> None:
    """Inserting an entry mid-log (renumbering the rest) is caught by roots and positions."""
    report = await tamper(
        backend,
        ("UPDATE audit_entries SET seq = seq + 1000 WHERE seq >= 7",),
        ("UPDATE audit_entries SET seq = seq - 999 WHERE seq >= 1000",),
        ("INSERT INTO audit_entries VALUES (7, ?, ?, ?)", FORGED_TS, *forged(7)),
    )  # fmt: skip
    assert mentions(report, "entry 8: its bytes name another position", "not covered")


async def test_appended_forgery_is_detected(backend: Backend) -> None:
    """An entry added after the last checkpoint is reported as not covered by any signature."""
    row = (40, FORGED_TS, *forged(40))
    report = await tamper(backend, ("INSERT INTO audit_entries VALUES (?, ?, ?, ?)", *row))
    assert mentions(report, "entries 40..40 are not covered by a checkpoint")


async def test_reordered_entries_are_detected(backend: Backend) -> None:
    """Swapping two entries' positions is caught by their embedded positions and the roots."""
    report = await tamper(
        backend,
        ("UPDATE audit_entries SET seq = -1 WHERE seq = 3",),
        ("UPDATE audit_entries SET seq = 3 WHERE seq = 4",),
        ("UPDATE audit_entries SET seq = 4 WHERE seq = -1",),
    )
    assert mentions(report, "entry 3: its bytes name another position", "checkpoint 8")


async def test_forged_checkpoint_is_detected(backend: Backend) -> None:
    """A checkpoint not signed by the log's key is reported."""
    stranger = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    note = stranger.sign(f"{ORIGIN}\n40\n{'A' * 43}=\n")
    sql = "UPDATE audit_checkpoints SET note = ? WHERE tree_size = 40"
    report = await tamper(backend, (sql, note))
    assert mentions(report, "checkpoint 40: note has no signature from a trusted key")
    assert report.problems[0] == "stored checkpoints that do not verify: 1"


async def test_rollback_is_detected_with_the_state_file(backend: Backend, tmp_path: Path) -> None:
    """Removing the newest batch and its checkpoint is caught against the previous run's state."""
    state = tmp_path / "audit-state" / "latest-checkpoint"
    await filled(backend)
    assert (await check(backend, state_file=state)).ok
    trusted = state.read_text()
    assert verify_checkpoint(trusted, SIGNER.vkey).size == 40
    await backend.drop_triggers()
    await backend.run("DELETE FROM audit_entries WHERE seq >= 32")
    await backend.run("DELETE FROM audit_nodes WHERE id >= ?", 32 << 6)
    await backend.run("DELETE FROM audit_checkpoints WHERE tree_size > 32")
    assert (await check(backend)).ok  # consistent in itself: only an outside reference can tell
    report = await check(backend, state_file=state)
    assert mentions(report, "rolled back: state file", "covers 40 entries, only 32")
    assert state.read_text() == trusted  # a failed run does not lower the high-water mark
    report = await check(backend, trusted_checkpoint=trusted)
    assert mentions(report, "rolled back: trusted checkpoint")


async def test_dropped_latest_checkpoint_is_detected_and_stops_start_up(backend: Backend) -> None:
    """Without its latest checkpoint the log fails verification and refuses to start."""
    report = await tamper(backend, ("DELETE FROM audit_checkpoints WHERE tree_size = 40",))
    assert mentions(report, "entries 32..39 are not covered by a checkpoint")
    with pytest.raises(AuditIntegrityError, match="does not match the latest signed checkpoint"):
        async with open_log(backend):
            pass


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_least_privilege_role_appends_but_cannot_rewrite(backend: Backend) -> None:
    """The writer role of docs/audit.md appends but cannot UPDATE, DELETE or TRUNCATE at all."""
    await filled(backend, count=2)
    schema = backend.url.rpartition("schema=")[2]
    role = f"test_audit_writer_{uuid.uuid4().hex[:8]}"
    await backend.run(f"CREATE ROLE {role} LOGIN")
    try:
        await backend.run(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        await backend.run(f"GRANT SELECT, INSERT ON {', '.join(TABLES)} TO {role}")
        as_role = backend.url.replace("postgres@", f"{role}@")
        async with AuditLog.open(as_role, SIGNER) as log:
            assert await log.append({"by": "writer role"}, critical=True) == 2
        await backend.drop_triggers()
        conn = await asyncpg.connect(as_role.partition("?")[0])
        try:
            for sql in ("UPDATE {}.audit_entries SET ts = ts", "DELETE FROM {}.audit_entries",
                        "TRUNCATE {}.audit_entries"):  # fmt: skip
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                    await conn.execute(sql.format(schema))
        finally:
            await conn.close()
    finally:
        await backend.run(f"DROP OWNED BY {role}")
        await backend.run(f"DROP ROLE {role}")
