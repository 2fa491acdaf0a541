"""The SIEM service: non-blocking emission into a bounded queue, one writer task into the
on-disk spool, one delivery task per exporter reading the spool from its own cursor.

Guarantees (docs/siem.md):

- ``emit`` never waits: it serializes the event and appends it to an in-memory queue of at most
  ``max_queue`` events, or refuses it and counts the drop. The request path never touches the
  network or the disk.
- When full, the spool refuses, it does not evict: non-critical events (API Activity) are
  refused once the queue or the spool reaches ``1 - critical_reserve`` of its cap; critical
  events (findings, registry changes, failed logins) use the reserve up to the hard cap. Each
  refusal is counted in ``stats`` under its reason. What is already spooled is never dropped.
- At-least-once per exporter: an event leaves an exporter's backlog only after that exporter
  acknowledged it; failures are retried with exponential backoff and jitter; the cursor is saved
  after each acknowledged batch, so a crash re-sends at most one batch (dedupe on
  ``metadata.uid``). A segment is deleted when every exporter is past it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import orjson

from maestro_gateway.siem._delivery import Delivery
from maestro_gateway.siem._exporter import Exporter
from maestro_gateway.siem._mapping import FinishedCall, from_audit, from_call
from maestro_gateway.siem._spool import Cursor, Spool
from maestro_gateway.siem.config import ExporterConfig, SiemConfig
from maestro_gateway.siem.ocsf import OcsfEvent

log = logging.getLogger("maestro_gateway.siem")


def build_exporter(cfg: ExporterConfig) -> Exporter:
    if cfg.type == "jsonl":
        from maestro_gateway.siem.export_jsonl import JsonlExporter

        return JsonlExporter(cfg)
    if cfg.type == "syslog":
        from maestro_gateway.siem.export_syslog import SyslogExporter

        return SyslogExporter(cfg)
    if cfg.type == "hec":
        from maestro_gateway.siem.export_hec import HecExporter

        return HecExporter(cfg)
    from maestro_gateway.siem.export_nats import NatsExporter

    return NatsExporter(cfg)


class SiemService:
    def __init__(self, cfg: SiemConfig, exporters: list[Exporter] | None = None) -> None:
        self.cfg = cfg
        self.exporters = (
            exporters if exporters is not None else [build_exporter(e) for e in cfg.exporters]
        )
        self.spool = Spool(cfg.spool_dir, cfg.segment_bytes, cfg.fsync == "batch")
        self.stats: Counter[str] = Counter()
        self._queue: list[bytes] = []
        self._queued_bytes = 0  # in the queue, plus the batch the writer is writing
        self._soft_queue = int(cfg.max_queue * (1 - cfg.critical_reserve))
        self._soft_bytes = int(cfg.max_spool_bytes * (1 - cfg.critical_reserve))
        self._wake_writer = asyncio.Event()
        self._deliveries: list[Delivery] = []
        self._cursors: dict[str, Cursor] = {}
        self._writer: asyncio.Task[None] | None = None
        self._senders: list[asyncio.Task[None]] = []
        self._closing = False
        self.running = False

    # -- the request path --
    def emit(self, event: OcsfEvent, critical: bool = False) -> bool:
        """Queue one event for the spool without waiting; False if it was refused (counted)."""
        if not self.running:
            return False
        try:
            line = orjson.dumps(event, default=str) + b"\n"
        except (TypeError, orjson.JSONEncodeError):
            self.stats["dropped_unserializable"] += 1
            return False
        if len(line) > self.cfg.max_event_bytes:
            self.stats["dropped_too_large"] += 1
            return False
        queue_cap = self.cfg.max_queue if critical else self._soft_queue
        bytes_cap = self.cfg.max_spool_bytes if critical else self._soft_bytes
        kind = "critical" if critical else "normal"
        if len(self._queue) >= queue_cap:
            self.stats[f"dropped_queue_full_{kind}"] += 1
            return False
        if self.spool.used_bytes + self._queued_bytes + len(line) > bytes_cap:
            self.stats[f"dropped_spool_full_{kind}"] += 1
            return False
        self._queue.append(line)
        self._queued_bytes += len(line)
        self.stats["accepted"] += 1
        if len(self._queue) > self.stats["queue_high_water"]:
            self.stats["queue_high_water"] = len(self._queue)
        self._wake_writer.set()
        return True

    def call_finished(self, call: FinishedCall, scope: Any) -> None:
        """API Activity (6003) for one finished A2A call (the data path's one hook)."""
        if self.running:
            try:
                client = scope.get("client") or ("", 0)
                self.emit(from_call(call, str(client[0]), getattr(call, "principal", "")))
            except Exception:  # called from the data plane's finally: must never raise
                self.stats["dropped_hook_error"] += 1
                log.exception("siem request hook failed")

    def audit_record(self, record: dict[str, Any]) -> None:
        """The OCSF event for an audit record, if it has one (the audit recorder's hook)."""
        if not self.running:
            return
        try:
            mapped = from_audit(record)
        except Exception:  # a record of an unexpected shape must not fail its writer
            self.stats["dropped_hook_error"] += 1
            log.exception("siem audit hook failed", extra={"type": str(record.get("type"))})
            return
        if mapped is not None:
            self.emit(*mapped)

    @property
    def queue_length(self) -> int:
        return len(self._queue)

    # -- lifecycle --
    async def start(self) -> None:
        await asyncio.to_thread(self.spool.claim)
        await asyncio.to_thread(self.spool.open)
        for exp in self.exporters:
            cursor = await asyncio.to_thread(self.spool.load_cursor, exp.name)
            self._cursors[exp.name] = cursor
            delivery = Delivery(exp, self.spool, self.cfg, self.stats, self._advance, cursor)
            delivery.closing = self._writer_done
            self._deliveries.append(delivery)
        self._writer = asyncio.create_task(self._write_loop(), name="siem-writer")
        self._senders = [
            asyncio.create_task(d.run(), name=f"siem-{d.exp.name}") for d in self._deliveries
        ]
        self.running = True

    async def close(self) -> None:
        """Stop accepting, write what is queued, give exporters ``drain_timeout_s`` to catch up,
        then stop; what was not delivered stays in the spool for the next start."""
        if not self.running:
            return
        self.running = False
        self._closing = True
        self._wake_writer.set()
        if self._writer is not None:
            await self._writer
        if self._senders:
            _, pending = await asyncio.wait(self._senders, timeout=self.cfg.drain_timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._senders, return_exceptions=True)
        for exp in self.exporters:
            await exp.close()
        await asyncio.to_thread(self.spool.close)

    # -- the spool writer --
    async def _write_loop(self) -> None:
        while True:
            await self._wake_writer.wait()
            self._wake_writer.clear()
            if self._queue:
                batch, self._queue = self._queue, []
                size = sum(len(line) for line in batch)
                try:
                    await asyncio.to_thread(self.spool.append, batch)
                    self.stats["spooled"] += len(batch)
                except OSError as exc:  # disk full or gone: counted, logged, not retried
                    self.stats["dropped_write_error"] += len(batch)
                    log.error("siem spool write failed", extra={"error": str(exc), "bytes": size})
                self._queued_bytes -= size  # now counted in spool.used_bytes (or dropped)
                for d in self._deliveries:
                    d.wake.set()
            if self._closing and not self._queue:
                for d in self._deliveries:
                    d.wake.set()
                return

    def _writer_done(self) -> bool:
        return self._closing and self._writer is not None and self._writer.done()

    async def _advance(self, name: str, cursor: Cursor) -> None:
        self._cursors[name] = cursor
        await asyncio.to_thread(self.spool.save_cursor, name, cursor)
        await asyncio.to_thread(self.spool.release, list(self._cursors.values()))

    def snapshot(self) -> dict[str, int]:
        """Counters plus the current queue length and spool size, for /metrics and tests."""
        return {
            **self.stats,
            "queue_length": len(self._queue),
            "spool_bytes": self.spool.used_bytes,
        }
