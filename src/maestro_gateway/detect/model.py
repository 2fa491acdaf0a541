"""What the detectors consume (an Observation per finished request) and produce (a Finding)."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "FINDING_TYPES",
    "Finding",
    "FindingType",
    "Observation",
    "logistic",
    "saturating",
]

FindingType = Literal[
    "rate_anomaly",
    "denial_burst",
    "first_access",
    "off_hours",
    "distinct_agents",
    "token_reuse",
]
FINDING_TYPES: tuple[FindingType, ...] = (
    "rate_anomaly",
    "denial_burst",
    "first_access",
    "off_hours",
    "distinct_agents",
    "token_reuse",
)

DENIED = frozenset({"deny", "escalate"})


@dataclass(frozen=True, slots=True)
class Observation:
    """One finished request, as the data plane saw it (no payload: only who, where, outcome)."""

    at: float  # epoch seconds
    principal: str
    source: str
    agent: str
    method: str = "-"
    verdict: str = "allow"  # allow, deny, escalate, error, disconnected
    status: int = 200
    skill: str | None = None
    guard: str = ""
    rule: str = ""
    token_id: str | None = None
    request_id: str = ""

    @property
    def denied(self) -> bool:
        return self.verdict in DENIED


@dataclass(frozen=True, slots=True)
class Finding:
    """A behavioural anomaly: what, about whom, how sure (0..1) and the evidence for it."""

    type: FindingType
    principal: str
    confidence: float
    evidence: dict[str, Any]
    at: float
    agent: str | None = None
    source: str | None = None
    token_id: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "principal": self.principal,
            "agent": self.agent,
            "source": self.source,
            "token_id": self.token_id,
            "confidence": round(self.confidence, 4),
            "evidence": self.evidence,
            "at": self.at,
        }


def logistic(excess: float) -> float:
    """Confidence for a score ``excess`` above its threshold: 0.5 at the threshold, 0.88 at +2,
    0.98 at +4 (a z-score two standard deviations past the threshold is nearly certain)."""
    return 1.0 / (1.0 + math.exp(-excess))


def saturating(ratio: float) -> float:
    """Confidence for ``ratio`` = evidence / threshold: 0.63 at 1x, 0.86 at 2x, 0.95 at 3x."""
    return 1.0 - math.exp(-max(ratio, 0.0))
