"""Wiring of detection and response for one gateway: built by the app, started with it.

Findings flow, off the request path: data plane hook -> DetectionEngine queue -> background
task -> sinks in order: the audit log (``detect.finding``, batched ``note``; the SIEM reads the
audit stream) -> the playbook engine -> any sink added to ``detection.on_finding`` later.
"""

from __future__ import annotations

import logging

from maestro_gateway.audit.recorder import AuditRecorder
from maestro_gateway.config import GatewayConfig
from maestro_gateway.detect.engine import DetectionEngine
from maestro_gateway.detect.model import Finding
from maestro_gateway.detect.observe import RequestObserver
from maestro_gateway.playbooks.enforcement import EnforcementState
from maestro_gateway.playbooks.engine import PlaybookEngine
from maestro_gateway.registry.service import RegistryService

__all__ = ["ResponseRuntime"]

log = logging.getLogger("maestro_gateway.playbooks")


class ResponseRuntime:
    def __init__(
        self,
        cfg: GatewayConfig,
        audit: AuditRecorder,
        registry: RegistryService | None,
        enforcement: EnforcementState,
    ) -> None:
        self.audit = audit
        self.enforcement = enforcement
        self.detection = DetectionEngine(cfg.detect) if cfg.detect.enabled else None
        self.playbooks = (
            PlaybookEngine(cfg.playbooks, enforcement, audit, registry)
            if cfg.playbooks.enabled
            else None
        )
        self.observer = RequestObserver(self.detection) if self.detection else None
        if self.detection is not None:
            self.detection.on_finding.append(self._audit_finding)
            if self.playbooks is not None:
                self.detection.on_finding.append(self.playbooks.on_finding)

    async def _audit_finding(self, finding: Finding) -> None:
        event = finding.as_dict()
        event["finding_type"] = event.pop("type")
        await self.audit.note({"type": "detect.finding", **event})

    async def start(self) -> None:
        if self.playbooks is not None:
            await self.playbooks.start()
        if self.detection is not None:
            self.detection.start()

    async def stop(self) -> None:
        if self.detection is not None:
            await self.detection.stop()
        if self.playbooks is not None:
            await self.playbooks.stop()
