"""C10 drift scanner (threat T5): finds what changed without going through the audited path.

One scan compares

1. the live registry tables with the audit log (:mod:`._drift_registry`): every agent, version,
   event and state must follow from audited changes; the audit records used are only those
   covered by the log's latest signed checkpoint (:mod:`._drift_audit`);
2. the running configuration with the one audited at start-up (``config.loaded``), and anything
   else given as a :class:`DriftCheck` (the extension point for policy bundles pinned in git);
3. each active agent's card at its origin with the approved version (:mod:`._drift_cards`); a
   changed card (a rug pull) suspends the agent when ``drift.suspend_on_card_change`` is set.

Each :class:`Finding` is audited (``drift.finding``, batched) and passed to ``on_finding``. In the
server the scanner runs every ``drift.interval_s``; ``maestro-gateway scan-drift`` runs one scan
read-only (it neither audits nor suspends: the server is the audit log's only writer).
See docs/drift.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from maestro_gateway._drift_audit import read_audit
from maestro_gateway._drift_cards import CardCheck, card_diff, check_card
from maestro_gateway._drift_finding import FINDING_TYPES, Finding, Severity, finding
from maestro_gateway._drift_registry import compare
from maestro_gateway.audit.log import AuditLog
from maestro_gateway.audit.recorder import AuditRecorder
from maestro_gateway.config import GatewayConfig, config_sha256
from maestro_gateway.guards._ssrf import SsrfPolicy
from maestro_gateway.registry._sql import SqlRegistryStore
from maestro_gateway.registry.models import AgentState
from maestro_gateway.registry.service import RegistryService
from maestro_gateway.registry.store import RegistryStore

__all__ = [
    "FINDING_TYPES",
    "ConfigCheck",
    "DriftCheck",
    "DriftScanner",
    "Finding",
    "OnFinding",
    "ScanReport",
    "Severity",
    "card_diff",
]

log = logging.getLogger("maestro_gateway.drift")

OnFinding = Callable[[Finding], Awaitable[None]]
ACTOR = "drift-scanner"
_REGISTRY_TYPES = ("registry.",)
_CARD_CONCURRENCY = 8


class DriftCheck(Protocol):
    """One more comparison against the audit log, run in every scan.

    ``audit_types`` are the record type prefixes it needs; ``check`` gets those records (as
    ``(seq, record)``, only from the signed part of the log) and returns its findings. The
    configuration check below is one; a policy bundle pinned to a git commit is meant to be
    another (the bundle's commit id against the audited one).
    """

    @property
    def audit_types(self) -> tuple[str, ...]: ...

    async def check(self, records: Sequence[tuple[int, dict[str, Any]]]) -> list[Finding]: ...


@dataclass(frozen=True)
class ConfigCheck:
    """The running configuration's SHA-256 against the latest audited ``config.loaded``."""

    running_sha256: str
    audit_types: tuple[str, ...] = ("config.loaded",)

    async def check(self, records: Sequence[tuple[int, dict[str, Any]]]) -> list[Finding]:
        loaded = [(seq, r) for seq, r in records if r.get("type") == "config.loaded"]
        if not loaded:
            return [finding("config.unaudited", "medium", None, running_sha256=self.running_sha256)]
        seq, latest = loaded[-1]
        if latest.get("sha256") == self.running_sha256:
            return []
        return [
            finding("config.mismatch", "high", None, running_sha256=self.running_sha256,
                    audited_sha256=latest.get("sha256"), audit_seq=seq)
        ]  # fmt: skip


@dataclass
class ScanReport:
    """One scan: its findings, what it could not do (``errors``), and what it looked at."""

    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    audit_records: int = 0
    agents: int = 0
    cards_checked: int = 0
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return not self.findings and not self.errors

    def summary(self) -> dict[str, Any]:
        return {
            "findings": len(self.findings),
            "errors": self.errors,
            "audit_records": self.audit_records,
            "agents": self.agents,
            "cards_checked": self.cards_checked,
            "seconds": round(self.seconds, 3),
        }


class DriftScanner:
    """Scans on demand (:meth:`scan`) or every ``cfg.drift.interval_s`` (:meth:`start`).

    ``store`` and ``audit`` are called at each scan (the gateway opens them after this object
    is built); ``audit`` returning None means the audit log is disabled. ``recorder`` audits the
    findings, ``suspend`` suspends an agent (both optional), ``on_finding`` receives each
    finding (e.g. for the SIEM or playbooks).
    """

    def __init__(
        self,
        cfg: GatewayConfig,
        *,
        store: Callable[[], RegistryStore],
        audit: Callable[[], AuditLog | None],
        recorder: AuditRecorder | None = None,
        suspend: Callable[[str], Awaitable[object]] | None = None,
        on_finding: OnFinding | None = None,
        checks: Sequence[DriftCheck] = (),
        cards: bool = True,
    ) -> None:
        self.cfg = cfg
        self._store, self._audit = store, audit
        self._recorder, self._suspend = recorder, suspend
        self.on_finding = on_finding
        self.checks: list[DriftCheck] = [ConfigCheck(config_sha256(cfg)), *checks]
        self._ssrf = SsrfPolicy(cfg.drift.ssrf)
        self._check_cards = cards
        self._task: asyncio.Task[None] | None = None
        self.last_report: ScanReport | None = None

    @classmethod
    def for_gateway(
        cls,
        cfg: GatewayConfig,
        registry: RegistryService,
        audit: AuditRecorder,
        on_finding: OnFinding | None = None,
    ) -> DriftScanner:
        """The server's scanner: audits its findings, suspends through the registry service."""

        async def suspend(agent_id: str) -> object:
            return await registry.transition(agent_id, AgentState.SUSPENDED, actor=ACTOR)

        return cls(
            cfg, store=lambda: registry.store, audit=lambda: audit.log, recorder=audit,
            suspend=suspend, on_finding=on_finding,
        )  # fmt: skip

    async def scan(self) -> ScanReport:
        """One scan; findings are audited and handed to ``on_finding`` before it returns."""
        started = time.perf_counter()
        report = ScanReport()
        store = self._store()
        try:
            report.findings += await self._against_audit(store, report)
        except Exception as exc:
            log.exception("drift scan: registry/audit comparison failed")
            report.errors.append(f"registry/audit comparison failed: {exc!r}")
        try:
            if self._check_cards:
                report.findings += await self._cards(store, report)
        except Exception as exc:
            log.exception("drift scan: card comparison failed")
            report.errors.append(f"card comparison failed: {exc!r}")
        report.seconds = time.perf_counter() - started
        for item in report.findings:
            await self._emit(item)
        self.last_report = report
        log.info("drift scan done", extra=report.summary())
        return report

    async def _against_audit(self, store: RegistryStore, report: ScanReport) -> list[Finding]:
        audit_log = self._audit()
        if audit_log is None:
            reason = "the audit log is disabled" if not self.cfg.audit.enabled else "not open"
            return [finding("audit.unavailable", "high", None, reason=reason)]
        if not isinstance(store, SqlRegistryStore):
            raise TypeError(f"cannot read the rows of a {type(store).__name__}")
        types = tuple({*_REGISTRY_TYPES, *(t for c in self.checks for t in c.audit_types)})
        first, records = await self._registry_pass(store, audit_log, types)
        if first and self.cfg.drift.settle_s > 0:  # a change may be between its store write
            await asyncio.sleep(self.cfg.drift.settle_s)  # and its audit record: look again
            again, records = await self._registry_pass(store, audit_log, types)
            seen = {f.key() for f in first}
            first = [f for f in again if f.key() in seen]
        report.audit_records = len(records)
        for check in self.checks:
            wanted = tuple(check.audit_types)
            first += await check.check([(s, r) for s, r in records if r["type"].startswith(wanted)])
        return first

    async def _registry_pass(
        self, store: SqlRegistryStore, audit_log: AuditLog, types: tuple[str, ...]
    ) -> tuple[list[Finding], list[tuple[int, dict[str, Any]]]]:
        rows = await store.table_rows()  # the registry first: its audit records come after it
        audited = await read_audit(audit_log, types)
        out: list[Finding] = []
        if audited.problems:
            out.append(
                finding("audit.inconsistent", "critical", None, problems=audited.problems[:10],
                        signed_size=audited.signed_size,
                        hint="run `maestro-gateway audit verify`")
            )  # fmt: skip
        registry = [(s, r) for s, r in audited.records if r["type"].startswith(_REGISTRY_TYPES)]
        return out + compare(rows, registry), audited.records

    async def _cards(self, store: RegistryStore, report: ScanReport) -> list[Finding]:
        active = await store.active_snapshot()
        report.agents = len(active)
        gate = asyncio.Semaphore(_CARD_CONCURRENCY)

        async def one(version: Any) -> CardCheck:
            async with gate:
                return await check_card(
                    version,
                    self._ssrf,
                    timeout_s=self.cfg.drift.card_fetch_timeout_s,
                    max_bytes=self.cfg.registry.max_card_bytes,
                )

        # a card given inline at registration has no origin to compare with
        fetched = [v for v in active.values() if v.source_url]
        results = await asyncio.gather(*(one(v) for v in fetched))
        report.cards_checked = len(results)
        out: list[Finding] = []
        for result in results:
            if result.finding is None:
                continue
            item = result.finding
            if result.changed and self.cfg.drift.suspend_on_card_change:
                item = dataclasses.replace(
                    item, evidence={**item.evidence, "response": await self._respond(item)}
                )
            out.append(item)
        return out

    async def _respond(self, item: Finding) -> str:
        if self._suspend is None or item.agent_id is None:
            return "not suspended: this scanner cannot change the registry (run in the server)"
        try:
            await self._suspend(item.agent_id)
        except Exception as exc:
            log.error("drift: could not suspend agent",
                      extra={"agent": item.agent_id, "error": str(exc)})  # fmt: skip
            return f"suspension failed: {exc}"
        log.warning("drift: agent suspended, its card changed at its origin",
                    extra={"agent": item.agent_id})  # fmt: skip
        return "suspended"

    async def _emit(self, item: Finding) -> None:
        if self._recorder is not None:
            await self._recorder.note({"type": "drift.finding", "finding": item.as_json()})
        if self.on_finding is not None:
            try:
                await self.on_finding(item)
            except Exception:
                log.exception("drift: on_finding failed", extra={"finding": item.type})

    def start(self) -> None:
        """Scan every ``drift.interval_s`` in the background (when ``drift.enabled``)."""
        if self.cfg.drift.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="drift-scanner")

    async def stop(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.drift.interval_s)
            try:
                await self.scan()
            except Exception:
                log.exception("drift scan failed; next one in %.0f s", self.cfg.drift.interval_s)
