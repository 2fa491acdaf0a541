"""Checkpoint export: copies of the latest signed checkpoint for an outside witness.

A rollback of the audit log (its newest entries and checkpoints removed) or a fork (a different
history signed with the same key) cannot be seen from inside the store; it is seen against a
checkpoint held elsewhere. Every ``interval_s`` the :class:`CheckpointExporter` takes the log's
latest signed checkpoint and, when it is new for a sink, sends it to each configured sink:

- **file**: appended as one note block followed by a blank line, flushed and fsynced
  (:func:`read_checkpoints` splits such a file back into notes);
- **syslog**: one RFC 5424 message over TCP with octet-counting framing (RFC 6587 §3.4.1),
  facility 13 (log audit), severity 6, MSGID ``checkpoint``, structured data with the origin
  and tree size, the note as the message;
- **HTTP**: a POST of the note (``text/plain; charset=utf-8``) to a witness URL; any 2xx is
  success.

A sink that fails keeps its last exported checkpoint and is retried at the next interval; the
failure is logged. Nothing here runs on the data path. See docs/audit.md (Export).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiohttp

from maestro_gateway.audit.checkpoint import Checkpoint, NoteError
from maestro_gateway.audit.recorder import AuditRecorder
from maestro_gateway.config import AuditExportConfig

__all__ = [
    "CheckpointExporter",
    "append_to_file",
    "latest_of",
    "post_to_witness",
    "read_checkpoints",
    "send_syslog",
    "syslog_frame",
]

log = logging.getLogger("maestro_gateway.audit.export")

_DASH = "\u2014 "
SYSLOG_PRI = 13 * 8 + 6  # facility 13 (log audit), severity 6 (informational)
SD_ID = "checkpoint@32473"  # 32473: the example enterprise number of RFC 5612


def append_to_file(path: str | os.PathLike[str], note: str) -> None:
    """Append ``note`` and a blank line to ``path`` (created 0600), then fsync the file."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (note + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_checkpoints(text: str) -> list[str]:
    """The notes of a file written by :func:`append_to_file`, oldest first.

    A note is its text lines, one blank line, then its signature lines (``— name sig``); the
    blank line after the last signature line ends it.
    """
    notes: list[str] = []
    lines: list[str] = []
    signing = False
    for line in text.split("\n"):
        if signing and not line.startswith(_DASH):  # the blank line after the signatures
            notes.append("\n".join(lines) + "\n")
            lines, signing = [], False
        if not line:
            if lines:  # the blank line between the text and the signatures
                lines.append(line)
                signing = True
            continue
        lines.append(line)
    if signing:
        notes.append("\n".join(lines) + "\n")
    return notes


def syslog_frame(note: str, *, hostname: str | None = None, now: datetime | None = None) -> bytes:
    """``note`` as one octet-counted RFC 5424 syslog message."""
    try:
        head = Checkpoint.parse_body(note[: note.rfind("\n\n") + 1])
        sd = f'[{SD_ID} origin="{_sd_escape(head.origin)}" size="{head.size}"]'
    except NoteError:
        sd = "-"
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    stamp = moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
    host = (hostname or socket.gethostname() or "-")[:255].replace(" ", "_")
    header = f"<{SYSLOG_PRI}>1 {stamp} {host} maestro-gateway {os.getpid()} checkpoint {sd} "
    message = header.encode() + b"\xef\xbb\xbf" + note.encode()  # BOM: the MSG is UTF-8
    return str(len(message)).encode() + b" " + message


def _sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


async def send_syslog(target: str, note: str, timeout_s: float) -> None:
    """Send ``note`` to ``tcp://host:port``; raises OSError, TimeoutError or ValueError."""
    parts = urlsplit(target)
    if parts.scheme != "tcp" or not parts.hostname or not parts.port:
        raise ValueError(f"syslog target {target!r} must be tcp://host:port")
    async with asyncio.timeout(timeout_s):
        _, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            writer.write(syslog_frame(note))
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def post_to_witness(url: str, note: str, timeout_s: float) -> None:
    """POST ``note`` as text/plain; raises on a transport error or a non-2xx status."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
        session.post(
            url,
            data=note.encode(),
            headers={"Content-Type": "text/plain; charset=utf-8"},
            allow_redirects=False,
        ) as resp,
    ):
        if not 200 <= resp.status < 300:
            raise aiohttp.ClientResponseError(
                resp.request_info, resp.history, status=resp.status, message="witness refused"
            )


class CheckpointExporter:
    """Sends the latest checkpoint of ``latest()`` to the sinks of ``cfg`` every interval.

    ``latest`` returns the current signed note (or None: no log, or an empty one).
    """

    def __init__(self, cfg: AuditExportConfig, latest: Callable[[], Awaitable[str | None]]):
        self.cfg = cfg
        self._latest = latest
        self._sinks: dict[str, Callable[[str], Awaitable[None]]] = {}
        if cfg.file:
            path = cfg.file
            self._sinks["file"] = lambda note: asyncio.to_thread(append_to_file, path, note)
        if cfg.syslog:
            target = cfg.syslog
            self._sinks["syslog"] = lambda note: send_syslog(target, note, cfg.timeout_s)
        if cfg.http_url:
            url = cfg.http_url
            self._sinks["http"] = lambda note: post_to_witness(url, note, cfg.timeout_s)
        self.exported: dict[str, str] = {}
        self.failures: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self._sinks)

    async def export_once(self) -> dict[str, bool]:
        """Send the latest checkpoint to every sink that does not have it; which succeeded."""
        note = await self._latest()
        results: dict[str, bool] = {}
        if note is None:
            return results
        for name, sink in self._sinks.items():
            if self.exported.get(name) == note:
                continue
            try:
                await sink(note)
            except Exception as exc:
                self.failures[name] = f"{type(exc).__name__}: {exc}"
                log.warning("checkpoint export failed; retrying next interval",
                            extra={"sink": name, "error": self.failures[name]})  # fmt: skip
                results[name] = False
            else:
                self.exported[name] = note
                self.failures.pop(name, None)
                results[name] = True
        return results

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="checkpoint-export")

    async def stop(self) -> None:
        """Stop the loop, then make one last export so the final checkpoint leaves too."""
        if self._task is None:
            return
        task, self._task = self._task, None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(Exception):
            await self.export_once()

    async def _run(self) -> None:
        while True:
            try:
                await self.export_once()
            except Exception:
                log.exception("checkpoint export failed")
            await asyncio.sleep(self.cfg.interval_s)


def latest_of(recorder: AuditRecorder) -> Callable[[], Awaitable[str | None]]:
    """The latest checkpoint of the recorder's log (None while it is closed), for the exporter."""

    async def latest() -> str | None:
        audit_log = recorder.log
        return await audit_log.latest_checkpoint() if audit_log is not None else None

    return latest
