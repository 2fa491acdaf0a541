"""The result of scanning one text offline or on the data path: shared by the content guards.

``maestro-gateway scan --guard NAME`` writes one of these per input row; the guards build
their verdicts from the same values, so offline figures are the data path's figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ScanVerdict = Literal["allow", "block", "redact", "escalate"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a guard found: its type (a Presidio entity name where one exists, else the
    guard's own), the character span in the scanned text, and the rule that matched."""

    type: str
    start: int
    end: int
    rule: str = ""
    score: float = 1.0

    def as_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "start": self.start,
            "end": self.end,
            "rule": self.rule,
            "score": round(self.score, 4),
        }


@dataclass(frozen=True, slots=True)
class ScanResult:
    verdict: ScanVerdict
    score: float
    findings: tuple[Finding, ...] = ()
    output: str | None = None
    """The text as the guard would let it through (redacted, sanitised), when it changes text."""
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "verdict": self.verdict,
            "score": round(self.score, 4),
            "findings": [f.as_json() for f in self.findings],
        }
        if self.output is not None:
            out["output"] = self.output
        if self.details:
            out["details"] = self.details
        return out
