"""How the gateway writes to its audit log: critical events durable before the caller is
answered, the rest batched. Disabled, every call is a no-op."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from maestro_gateway.audit._store import AuditUnavailable
from maestro_gateway.audit.checkpoint import load_or_create_signer
from maestro_gateway.audit.log import AuditLog
from maestro_gateway.config import AuditConfig

log = logging.getLogger("maestro_gateway.audit")


class AuditRecorder:
    def __init__(self, cfg: AuditConfig) -> None:
        self.cfg = cfg
        self._log: AuditLog | None = None
        # Called with every record before it is appended; must not block (the SIEM's enqueue).
        self.observers: list[Callable[[dict[str, Any]], None]] = []

    @property
    def enabled(self) -> bool:
        return self.cfg.enabled

    async def start(self) -> None:
        if not self.cfg.enabled:
            return
        signer = load_or_create_signer(self.cfg.key_path, self.cfg.key_name)
        self._log = AuditLog.open(
            self.cfg.url,
            signer,
            flush_interval=self.cfg.flush_ms / 1000,
            max_batch=self.cfg.max_batch,
        )
        await self._log.init()

    async def close(self) -> None:
        if self._log is not None:
            await self._log.close()
            self._log = None

    async def critical(self, event: dict[str, Any]) -> int | None:
        """Append and wait until it is on disk. Raises AuditUnavailable if it cannot be."""
        for observe in self.observers:
            observe(event)
        if self._log is None:
            if self.cfg.enabled:
                raise AuditUnavailable("audit log is not open")
            return None
        return await self._log.append(event, critical=True)

    def note_nowait(self, event: dict[str, Any]) -> None:
        """Queue for the next batch from synchronous code (e.g. a guard's decision record)."""
        for observe in self.observers:
            observe(event)
        if self._log is None:
            return
        try:
            self._log.append_nowait(event)
        except AuditUnavailable as exc:
            log.error("audit append failed", extra={"error": str(exc), "event": event.get("type")})

    async def note(self, event: dict[str, Any]) -> None:
        """Append in the next batch; a failure is logged (the request is not held for it)."""
        for observe in self.observers:
            observe(event)
        if self._log is None:
            return
        try:
            await self._log.append(event)
        except AuditUnavailable as exc:
            log.error("audit append failed", extra={"error": str(exc), "event": event.get("type")})

    @property
    def log(self) -> AuditLog | None:
        return self._log
