"""The playbook engine: findings in, audited and reversible actions out (never on the request
path: it is a sink of the detection engine's background task).

Every action — applied, dry run, refused by a cap, skipped — is an ActionRecord, audited with
``AuditRecorder.critical`` (type ``playbook.action``) before it takes effect: no audit, no
action. ``revert(id)`` lifts an applied measure (audited as ``playbook.revert``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from maestro_gateway.audit.recorder import AuditRecorder
from maestro_gateway.detect.model import Finding
from maestro_gateway.playbooks._actions import Effects
from maestro_gateway.playbooks._limits import CAP_OF, Ledger
from maestro_gateway.playbooks.enforcement import EnforcementState
from maestro_gateway.playbooks.model import (
    Action,
    PlaybookConfig,
    PlaybooksConfig,
    SuspendAgent,
    Webhook,
)
from maestro_gateway.registry.service import RegistryService

__all__ = ["ActionRecord", "PlaybookEngine", "RevertError"]

log = logging.getLogger("maestro_gateway.playbooks")


class RevertError(Exception):
    """An action that cannot be reverted (unknown, not applied, already reverted)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class ActionRecord:
    id: str
    playbook: str
    action: str
    target: str | None
    status: str  # applied, dry_run, refused, skipped, failed, reverted
    at: float
    finding_id: str
    finding_type: str
    confidence: float
    until: float | None = None
    subject: str = ""  # what the trigger counted by (group_by)
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    reverted_at: float | None = None
    reverted_by: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _subject(finding: Finding, group_by: str) -> str | None:
    return {
        "principal": finding.principal,
        "source": finding.source,
        "agent": finding.agent,
        "token": finding.token_id,
    }[group_by] or None


def _target(finding: Finding, action: Action) -> str | None:
    if isinstance(action, Webhook):
        return action.url
    if action.type == "block_source":
        return finding.source or None
    if action.type == "revoke_token":
        return finding.token_id or None
    if action.type == "suspend_agent":
        return finding.agent or None
    return finding.principal or None  # block_principal, require_step_up, require_approval


class PlaybookEngine:
    def __init__(
        self,
        cfg: PlaybooksConfig,
        state: EnforcementState,
        audit: AuditRecorder | None = None,
        registry: RegistryService | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.state = state
        self.audit = audit
        self.clock = clock
        self.playbooks = [p for p in cfg.all_playbooks() if p.enabled]
        self.effects = Effects(state, registry, cfg.max_webhooks_in_flight)
        self.records: OrderedDict[str, ActionRecord] = OrderedDict()
        self._live = Ledger(cfg.limits)
        self._dry = Ledger(cfg.limits)
        self._matches: dict[tuple[str, str], deque[float]] = {}
        self._holding: dict[tuple[str, str], float | None] = {}
        self._protected_p = set(cfg.protected_principals)
        self._protected_p.update("addr:" + s for s in cfg.protected_sources)
        self._protected_s = set(cfg.protected_sources)
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await self.effects.start()

    async def stop(self) -> None:
        await self.effects.stop()

    async def on_finding(self, finding: Finding) -> None:
        """The detection engine's sink: match every playbook, fire those whose trigger holds."""
        async with self._lock:
            for playbook in self.playbooks:
                subject = self._triggered(playbook, finding)
                if subject is not None:
                    await self._fire(playbook, finding, subject)

    def _triggered(self, playbook: PlaybookConfig, finding: Finding) -> str | None:
        """The subject for which ``playbook`` fires on ``finding``, or None."""
        trig = playbook.trigger
        if finding.type not in trig.findings or finding.confidence < trig.min_confidence:
            return None
        subject = _subject(finding, trig.group_by)
        if subject is None:
            return None
        key = (playbook.name, subject)
        held = self._holding.get(key, False)
        if held is None or (held is not False and held > self.clock()):
            return None  # this playbook's measures on this subject are still in force
        times = self._matches.setdefault(key, deque())
        times.append(finding.at)
        while times and finding.at - times[0] > trig.window_s:
            times.popleft()
        if len(times) < trig.count:
            return None
        del self._matches[key]  # the count starts again after a firing
        if len(self._matches) > 100_000:  # bounded: forget the oldest partial counts
            for stale in list(self._matches)[:50_000]:
                del self._matches[stale]
        return subject

    def _hold(self, playbook: PlaybookConfig, now: float) -> float | None:
        """Until when a firing's measures hold (None: until reverted); at least one window."""
        hold = now + playbook.trigger.window_s
        for action in playbook.actions:
            if isinstance(action, SuspendAgent):
                return None
            if not isinstance(action, Webhook):
                if action.duration_s is None:
                    return None
                hold = max(hold, now + action.duration_s)
        return hold

    async def _fire(self, playbook: PlaybookConfig, finding: Finding, subject: str) -> None:
        dry = self.cfg.dry_run or playbook.dry_run
        ledger = self._dry if dry else self._live
        now = self.clock()
        refused = ledger.fire(playbook, now)
        acted = False
        for action in playbook.actions:
            target = _target(finding, action)
            record = ActionRecord(
                uuid.uuid4().hex[:12],
                playbook.name,
                action.type,
                target,
                "dry_run" if dry else "applied",
                now,
                finding.id,
                finding.type,
                round(finding.confidence, 4),
                subject=subject,
            )
            duration = getattr(action, "duration_s", None)
            if duration is not None:
                record.until = now + duration
            if target is None:
                record.status, record.reason = "skipped", "the finding names no target"
            elif self._protected(action.type, target):
                record.status, record.reason = "refused", "target is protected"
            elif refused is not None:
                record.status, record.reason = "refused", refused
            elif (
                reason := ledger.allow(action.type, self._cap_key(finding, action), now)
            ) is not None:
                record.status, record.reason = "refused", reason
            await self._record(record, finding, action)
            acted = acted or record.status in ("applied", "dry_run")
        if acted:  # one firing per subject while its measures hold, not one per finding
            self._holding[(playbook.name, subject)] = self._hold(playbook, now)
            if len(self._holding) > 100_000:
                for key in [k for k, u in self._holding.items() if u is not None and u <= now]:
                    del self._holding[key]

    def _cap_key(self, finding: Finding, action: Action) -> str:
        if CAP_OF.get(action.type) == "principals":
            return finding.principal
        return _target(finding, action) or ""

    def _protected(self, action_type: str, target: str) -> bool:
        if action_type == "block_source":
            return target in self._protected_s
        if action_type in ("block_principal", "require_step_up", "require_approval"):
            return target in self._protected_p
        return False

    async def _record(self, record: ActionRecord, finding: Finding, action: Action) -> None:
        event = {"type": "playbook.action", **record.as_dict(), "finding": finding.as_dict()}
        try:
            if self.audit is not None:
                await self.audit.critical(event)
        except Exception as exc:  # no audit, no action
            log.error("playbook action not audited", extra={"error": repr(exc)})
            if record.status == "applied":
                record.status, record.reason = "failed", "audit log unavailable; not applied"
        if record.status == "applied":
            try:
                await self.effects.apply(record, action, finding)
            except Exception as exc:
                log.exception("playbook action failed", extra={"action": record.id})
                record.status, record.reason = "failed", f"{type(exc).__name__}: {exc}"[:300]
        level = logging.WARNING if record.status == "applied" else logging.INFO
        log.log(
            level,
            "playbook action",
            extra={k: getattr(record, k) for k in ("id", "playbook", "action", "status")},
        )
        self.records[record.id] = record
        while len(self.records) > self.cfg.max_records:
            self.records.popitem(last=False)

    async def revert(self, action_id: str, actor: str) -> ActionRecord:
        """Lift an applied measure; audited first (no audit, no change)."""
        async with self._lock:
            record = self.records.get(action_id)
            if record is None:
                raise RevertError(f"no action {action_id!r}", 404)
            if record.status != "applied":
                raise RevertError(f"action {action_id} is {record.status}; nothing to revert")
            if record.action == "webhook":
                raise RevertError("a webhook call cannot be reverted")
            if self.audit is not None:
                await self.audit.critical(
                    {
                        "type": "playbook.revert",
                        "action": action_id,
                        "actor": actor,
                        "record": record.as_dict(),
                    }
                )
            await self.effects.revert(record, actor)
            record.status = "reverted"
            record.reverted_at, record.reverted_by = self.clock(), actor
            self._holding.pop((record.playbook, record.subject), None)
            log.warning("playbook action reverted", extra={"id": action_id, "actor": actor})
            return record

    def actions(self, status: str | None = None) -> list[ActionRecord]:
        return [r for r in self.records.values() if status is None or r.status == status]

    def describe(self) -> dict[str, Any]:
        return {
            "enabled": self.cfg.enabled,
            "dry_run": self.cfg.dry_run,
            "limits": self.cfg.limits.model_dump(),
            "playbooks": [p.model_dump(mode="json") for p in self.playbooks],
        }
