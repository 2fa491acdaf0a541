"""Checkpoint export to a file, an HTTP witness and syslog; and a witness holding the exported
checkpoints detects a rolled-back or forked audit log."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from maestro_gateway.audit import AuditLog, load_or_create_signer, merkle, verify_checkpoint
from maestro_gateway.audit.export import (
    CheckpointExporter,
    append_to_file,
    read_checkpoints,
    syslog_frame,
)
from maestro_gateway.cli import main
from maestro_gateway.config import AuditExportConfig
from tests.conftest import TIMEOUT, start_gateway
from tests.test_gateway_registry import call

KEY_NAME = "maestro-gateway-audit"


class Witness:
    """A loopback HTTP witness: keeps every checkpoint POSTed; answers 503 while ``down``."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.content_types: list[str] = []
        self.down = False

    async def handle(self, request: web.Request) -> web.Response:
        if self.down:
            return web.Response(status=503)
        self.notes.append(await request.text())
        self.content_types.append(request.headers["Content-Type"])
        return web.Response(status=204)


@pytest.fixture
async def witness() -> AsyncIterator[tuple[Witness, str]]:
    keeper = Witness()
    app = web.Application()
    app.router.add_post("/checkpoints", keeper.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield keeper, f"http://127.0.0.1:{port}/checkpoints"
    finally:
        await runner.cleanup()


async def until(condition: Callable[[], object]) -> None:
    """Poll ``condition`` (the exporter has no event to wait on from outside) until it holds."""
    async with asyncio.timeout(TIMEOUT):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_gateway_exports_to_a_file_and_an_http_witness(
    tmp_path: Path, witness: tuple[Witness, str]
) -> None:
    """A running gateway appends each new signed checkpoint to the export file and POSTs it to
    the witness; every exported note verifies under the log's key, sizes never shrink."""
    keeper, url = witness
    export = {"file": str(tmp_path / "witness.txt"), "http_url": url, "interval_s": 0.05}
    gw = await start_gateway(tmp_path, {}, audit={"export": export})
    try:
        vkey = load_or_create_signer(tmp_path / "audit-signing-key.pem", KEY_NAME).vkey
        await until(lambda: keeper.notes)
        status, _ = await call("POST", f"{gw.url}/admin/v1/agents/nobody/suspend", {})
        assert status == 404  # an audited request (intent) that grows the log
        audit_log = gw.app.audit.log
        assert audit_log is not None
        await until(lambda: verify_checkpoint(keeper.notes[-1], vkey).size == audit_log.size)
    finally:
        await gw.close()
    filed = read_checkpoints((tmp_path / "witness.txt").read_text())
    sizes = [verify_checkpoint(note, vkey).size for note in filed]
    assert sizes == sorted(sizes)
    assert len(sizes) >= 2
    assert [verify_checkpoint(n, vkey).size for n in keeper.notes] == sizes
    assert set(keeper.content_types) == {"text/plain; charset=utf-8"}
    assert (tmp_path / "witness.txt").stat().st_mode & 0o777 == 0o600


async def test_failed_export_is_retried_next_interval(
    tmp_path: Path, witness: tuple[Witness, str]
) -> None:
    """While the witness refuses, the failure is kept and the export retried; once it is back,
    the same checkpoint arrives (nothing is skipped)."""
    keeper, url = witness
    signer = load_or_create_signer(tmp_path / "k.pem", KEY_NAME)
    async with AuditLog.open(f"sqlite:///{tmp_path}/a.db", signer) as log:
        await log.append({"type": "x"}, critical=True)
        exporter = CheckpointExporter(
            AuditExportConfig(http_url=url, interval_s=0.05), log.latest_checkpoint
        )
        keeper.down = True
        assert await exporter.export_once() == {"http": False}
        assert "503" in exporter.failures["http"]
        keeper.down = False
        assert await exporter.export_once() == {"http": True}
        assert await exporter.export_once() == {}  # already exported
        assert keeper.notes == [await log.latest_checkpoint()]


async def test_syslog_export_is_octet_counted_rfc5424(tmp_path: Path) -> None:
    """The syslog sink sends one RFC 5424 message over TCP, framed by its octet count, with
    the origin and size as structured data and the whole note as the message."""
    received: list[bytes] = []
    done = asyncio.Event()

    async def receiver(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read())
        writer.close()
        done.set()

    server = await asyncio.start_server(receiver, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    signer = load_or_create_signer(tmp_path / "k.pem", KEY_NAME)
    async with server, AuditLog.open(f"sqlite:///{tmp_path}/a.db", signer) as log:
        await log.append({"type": "x"}, critical=True)
        cfg = AuditExportConfig(syslog=f"tcp://127.0.0.1:{port}")
        assert await CheckpointExporter(cfg, log.latest_checkpoint).export_once() == {
            "syslog": True
        }
        await asyncio.wait_for(done.wait(), TIMEOUT)
        note = await log.latest_checkpoint()
    assert note is not None
    count, _, message = received[0].partition(b" ")
    assert int(count) == len(message)
    assert message.startswith(b"<110>1 ")
    assert f'[checkpoint@32473 origin="{KEY_NAME}" size="1"]'.encode() in message
    assert message.endswith(b"\xef\xbb\xbf" + note.encode())
    assert syslog_frame(note, hostname="h").split(b" ", 1)[0].isdigit()


def audit_yaml(tmp_path: Path, db: Path) -> Path:
    path = tmp_path / f"{db.stem}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "audit": {
                    "url": f"sqlite:///{db}",
                    "key_path": str(tmp_path / "k.pem"),
                    "state_file": str(tmp_path / f"{db.stem}.state"),
                }
            }
        )
    )
    return path


async def fill(db: Path, records: list[str], exported: Path | None) -> None:
    signer = load_or_create_signer(db.parent / "k.pem", KEY_NAME)
    async with AuditLog.open(f"sqlite:///{db}", signer) as log:
        for name in records:
            await log.append({"type": name}, critical=True)
            note = await log.latest_checkpoint()
            if exported is not None and note is not None:
                append_to_file(exported, note)


async def verify_cli(config: Path, *extra: str) -> int:
    return await asyncio.to_thread(main, ["audit", "--config", str(config), "verify", *extra])


async def test_witness_detects_rollback_and_fork(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A log restored from an older copy passes `audit verify` alone but fails it against the
    witness's exported checkpoints (rolled back); a history rewritten with the signing key
    fails it too (root differs), and no consistency proof links the fork to the witness's copy."""
    db, exported = tmp_path / "audit.db", tmp_path / "witness.txt"
    await fill(db, ["a", "b"], exported)
    shutil.copy(db, tmp_path / "backup.db")
    await fill(db, ["c", "d", "e"], exported)
    shutil.copy(tmp_path / "backup.db", db)  # the attacker rolls the log back
    for suffix in ("-wal", "-shm"):  # (none left: the log was closed cleanly)
        assert not (tmp_path / f"audit.db{suffix}").exists()
    config = audit_yaml(tmp_path, db)
    witness_file = str(exported)
    assert await verify_cli(config) == 0  # consistent in itself: only a witness sees it
    capsys.readouterr()
    assert await verify_cli(config, "--trusted-checkpoint", witness_file) == 1
    assert "rolled back" in capsys.readouterr().out
    fork = tmp_path / "fork.db"  # same key, another history of the same length
    await fill(fork, ["a", "b", "X", "d", "e"], None)
    assert await verify_cli(audit_yaml(tmp_path, fork), "--trusted-checkpoint", witness_file) == 1
    assert "root differs" in capsys.readouterr().out
    vkey = load_or_create_signer(tmp_path / "k.pem", KEY_NAME).vkey
    held = verify_checkpoint(read_checkpoints(exported.read_text())[2], vkey)  # size 3
    async with AuditLog.open(f"sqlite:///{fork}", None, vkey=vkey) as forked:
        new = verify_checkpoint(await forked.latest_checkpoint() or "", vkey)
        proof = await forked.consistency_proof(held.size, new.size)
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(held.size, new.size, held.root_hash, new.root_hash, proof)


def test_exported_file_reads_back_note_by_note(tmp_path: Path) -> None:
    """Notes appended to an export file are read back one by one, exactly as written."""
    notes = ["o\n1\nAAAA\n\n\u2014 k c2ln\n", "o\n2\nBBBB\n\n\u2014 k c2ln\n\u2014 w d2l0\n"]
    for note in notes:
        append_to_file(tmp_path / "f.txt", note)
    assert read_checkpoints((tmp_path / "f.txt").read_text()) == notes
