"""What the drift scanner reports: one typed :class:`Finding` per discrepancy (docs/drift.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

Severity = Literal["low", "medium", "high", "critical"]

FINDING_TYPES: dict[str, str] = {
    "registry.agent_unaudited": "an agent is in the registry with no audited registration",
    "registry.agent_missing": "the audit log records an agent the registry no longer has",
    "registry.version_unaudited": "a card version is in the registry with no audited registration",
    "registry.version_missing": "the audit log records a card version the registry no longer has",
    "registry.card_mismatch": "a stored card (or its hash) differs from the audited card hash",
    "registry.version_mismatch": "a version's URL, protocol, author or time differs from the audit",
    "registry.agent_mismatch": "an agent's owner, tenant or creation time differs from the audit",
    "registry.state_mismatch": "a state or active version differs from the audited changes",
    "registry.event_unaudited": "a registry event row with no matching audit record",
    "registry.event_missing": "an audited registry event is missing from the registry",
    "registry.row_invalid": "a registry row cannot be read (malformed value)",
    "audit.unavailable": "the audit log is disabled or unreadable: the registry cannot be checked",
    "audit.inconsistent": "the audit log's entries do not match its latest signed checkpoint",
    "config.unaudited": "no `config.loaded` record in the audit log",
    "config.mismatch": "the running configuration differs from the one audited at start-up",
    "card.changed": "an active agent's card at its origin differs from the approved version",
    "card.origin_unreachable": "an active agent's card could not be fetched from its origin",
    "card.origin_refused": "an active agent's card URL is refused by the scanner's SSRF policy",
}


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Finding:
    """One discrepancy: ``type`` (one of :data:`FINDING_TYPES`), how bad, how sure, the agent
    it concerns (None for log- or configuration-wide findings) and the evidence (JSON values)."""

    type: str
    severity: Severity
    confidence: float
    agent_id: str | None
    evidence: dict[str, Any]
    detected_at: datetime = field(default_factory=_utc_now)

    def as_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "severity": self.severity,
            "confidence": round(self.confidence, 3),
            "agent_id": self.agent_id,
            "evidence": self.evidence,
            "detected_at": self.detected_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }

    def json_line(self) -> str:
        """The finding as one line of JSON (keys sorted), as ``scan-drift`` prints it."""
        return orjson.dumps(self.as_json(), option=orjson.OPT_SORT_KEYS).decode()

    def key(self) -> tuple[str, str | None, str]:
        """What identifies the same discrepancy across two scans."""
        detail = orjson.dumps(self.evidence, option=orjson.OPT_SORT_KEYS).decode()
        return self.type, self.agent_id, detail


def finding(
    kind: str, severity: Severity, agent_id: str | None, confidence: float = 1.0, **evidence: Any
) -> Finding:
    if kind not in FINDING_TYPES:
        raise ValueError(f"unknown drift finding type {kind!r}")
    return Finding(kind, severity, confidence, agent_id, evidence)
