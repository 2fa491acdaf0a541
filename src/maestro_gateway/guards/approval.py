"""C3 human approval: decides which requests are high-risk and must wait for a human.

A message (SendMessage, SendStreamingMessage) is held when any of these holds:

- its skill's configured risk level reaches ``hold_at`` (skills not listed have
  ``default_risk``; the skill is ``message.metadata.skillId`` or the router's choice);
- a ``condition`` matches a value in one of its data parts: a dotted ``path`` into the part's
  data (lists are searched element by element), an ``op`` and a ``value``, e.g.
  ``{path: amount, op: gt, value: 1000}`` or ``{path: destination, op: not_in, value: [...]}``;
- the AI firewall's score (``ctx.extra["firewall"]["score"]``, written by the firewall guard,
  which runs before this one) lies in ``firewall_grey_zone`` (``low <= score < high``).

The guard answers ``Verdict.escalate`` with the reasons as findings; the data plane then holds
the request (see :mod:`maestro_gateway.approvals`). There is no log-only mode and no fail-open
mode: nothing in the configuration lets a flagged request skip the hold. A value of the wrong
type for a numeric comparison (``"1e6"`` as a string, ``true``) counts as a match: what cannot
be compared is held, never waved through.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any, Literal, TypeGuard

from pydantic import BaseModel, ConfigDict, Field, model_validator

from maestro_gateway.context import RequestContext
from maestro_gateway.principal import principal_of
from maestro_gateway.types import ALLOW, JSON, FailMode, Verdict

__all__ = ["ApprovalGuard", "ApprovalGuardConfig", "Condition", "GreyZone", "RiskLevel"]

NAME = "approval"
RiskLevel = Literal["low", "medium", "high", "critical"]
_RANK: dict[str, int] = {"low": 1, "medium": 2, "high": 3, "critical": 4}
_MESSAGE_METHODS = frozenset({"SendMessage", "SendStreamingMessage"})
_NUMERIC = frozenset({"gt", "ge", "lt", "le"})
_MAX_VALUES = 10_000  # nodes visited per condition and part; beyond: held (fail closed)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Model):
    """A tool/argument condition over the data parts of a message."""

    name: str = Field("", description="Shown to approvers; defaults to 'path op value'.")
    path: str = Field(
        pattern=r"^[A-Za-z0-9_$@-]+(\.[A-Za-z0-9_$@-]+)*$",
        description="Dotted path into a data part's data, e.g. 'transfer.amount'.",
    )
    op: Literal["gt", "ge", "lt", "le", "eq", "ne", "in", "not_in", "regex"]
    value: Any
    skills: list[str] = Field([], description="Only for these skills; empty = any.")

    @model_validator(mode="after")
    def _check_value(self) -> Condition:
        if self.op in _NUMERIC and not _is_number(self.value):
            raise ValueError(f"op {self.op!r} needs a number as value")
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"op {self.op!r} needs a list as value")
        if self.op == "regex":
            if not isinstance(self.value, str):
                raise ValueError("op 'regex' needs a pattern string as value")
            re.compile(self.value)
        return self

    def label(self) -> str:
        return self.name or f"{self.path} {self.op} {self.value!r}"[:200]


class GreyZone(_Model):
    """Firewall scores in ``[low, high)`` are held for a human."""

    low: float = Field(ge=0)
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> GreyZone:
        if not self.low < self.high:
            raise ValueError("firewall_grey_zone needs low < high")
        return self


class ApprovalGuardConfig(_Model):
    """C3 human approval: which requests are held until a human approves them."""

    enabled: bool = True
    fail_mode: Literal["fail_closed"] = Field(
        "fail_closed", description="Always fail closed: a failing check holds nothing through."
    )
    hold_at: RiskLevel = Field("high", description="Skills at or above this risk are held.")
    default_risk: RiskLevel = Field("low", description="Risk of skills not listed in 'skills'.")
    skills: dict[str, RiskLevel] = Field({}, description="Skill id -> risk level.")
    conditions: list[Condition] = []
    firewall_grey_zone: GreyZone | None = None

    @property
    def active(self) -> bool:
        """Enabled with a policy that can hold something (an empty policy adds no guard)."""
        rank = _RANK[self.hold_at]
        return self.enabled and (
            _RANK[self.default_risk] >= rank
            or any(_RANK[r] >= rank for r in self.skills.values())
            or bool(self.conditions)
            or self.firewall_grey_zone is not None
        )


class ApprovalGuard:
    """C3: escalates high-risk messages (the data plane holds them for a human)."""

    name = NAME
    fail_mode = FailMode.FAIL_CLOSED

    def __init__(self, cfg: ApprovalGuardConfig, enforcement: Any = None) -> None:
        """``enforcement``: the playbooks' state; a principal a playbook put under approval
        (``requires_approval``) has every message held, whatever its skill or content."""
        self.cfg = cfg
        self._enforcement = enforcement
        self._patterns = {
            i: re.compile(c.value) for i, c in enumerate(cfg.conditions) if c.op == "regex"
        }

    async def on_request(self, ctx: RequestContext) -> Verdict:
        if ctx.method not in _MESSAGE_METHODS:
            return ALLOW
        findings = self.findings(ctx)
        if not findings:
            return ALLOW
        reason = "held for human approval: " + "; ".join(f["summary"] for f in findings)
        return Verdict.escalate(reason[:500], NAME, findings=findings, rule="approval-policy")

    def findings(self, ctx: RequestContext) -> list[dict[str, Any]]:
        """Every reason this request is high-risk (empty: it is not)."""
        out: list[dict[str, Any]] = []
        risk = self.cfg.skills.get(ctx.skill_id or "", self.cfg.default_risk)
        if _RANK[risk] >= _RANK[self.cfg.hold_at]:
            out.append(
                {
                    "type": "skill_risk",
                    "skill": ctx.skill_id,
                    "risk": risk,
                    "summary": f"skill {ctx.skill_id!r} has risk {risk}",
                }
            )
        parts = _data_parts(ctx.params)
        for i, cond in enumerate(self.cfg.conditions):
            if cond.skills and ctx.skill_id not in cond.skills:
                continue
            for index, data in parts:
                actual = next(self._matches(i, cond, data), _NO_MATCH)
                if actual is not _NO_MATCH:
                    out.append(
                        {
                            "type": "condition",
                            "name": cond.label(),
                            "path": cond.path,
                            "op": cond.op,
                            "value": cond.value,
                            "actual": _shown(actual),
                            "part": index,
                            "summary": f"{cond.label()} (part {index}: {_shown(actual)})",
                        }
                    )
                    break
        enforcement = self._enforcement
        if enforcement is not None and enforcement.requires_approval(principal_of(ctx)):
            out.append(
                {
                    "type": "playbook",
                    "summary": "a response playbook requires approval for this principal",
                }
            )
        zone, fw = self.cfg.firewall_grey_zone, ctx.extra.get("firewall")
        score = fw.get("score") if isinstance(fw, dict) else None
        if zone is not None and _is_number(score) and zone.low <= score < zone.high:
            out.append(
                {
                    "type": "firewall_grey_zone",
                    "score": score,
                    "summary": f"firewall score {score} in grey zone [{zone.low}, {zone.high})",
                }
            )
        return out

    def _matches(self, i: int, cond: Condition, data: JSON) -> Iterator[JSON]:
        for actual in _values(data, cond.path.split(".")):
            if actual is _TOO_MANY or _test(cond, actual, self._patterns.get(i)):
                yield actual

    async def on_response(self, ctx: RequestContext, payload: JSON) -> Verdict:
        return ALLOW

    async def on_stream_event(self, ctx: RequestContext, event: JSON) -> Verdict:
        return ALLOW


_NO_MATCH = object()
_TOO_MANY = "(more values than the guard inspects)"


def _is_number(value: object) -> TypeGuard[int | float]:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _data_parts(params: JSON) -> list[tuple[int, JSON]]:
    message = params.get("message") if isinstance(params, dict) else None
    parts = message.get("parts") if isinstance(message, dict) else None
    if not isinstance(parts, list):
        return []
    return [(i, p["data"]) for i, p in enumerate(parts) if isinstance(p, dict) and "data" in p]


def _values(data: JSON, path: list[str]) -> Iterator[JSON]:
    """Every value at ``path``; a list on the way is searched element by element."""
    stack: list[tuple[JSON, int]] = [(data, 0)]
    seen = 0
    while stack and seen < _MAX_VALUES:
        node, depth = stack.pop()
        seen += 1
        if isinstance(node, list):
            if len(node) > _MAX_VALUES:
                yield _TOO_MANY
            stack.extend((item, depth) for item in reversed(node[:_MAX_VALUES]))
        elif depth == len(path):
            yield node
        elif isinstance(node, dict) and path[depth] in node:
            stack.append((node[path[depth]], depth + 1))
    if stack:
        yield _TOO_MANY


def _test(cond: Condition, actual: JSON, pattern: re.Pattern[str] | None) -> bool:
    if cond.op in _NUMERIC:
        if not _is_number(actual):
            return True  # not comparable: held (fail closed), see the module docstring
        limit = float(cond.value)
        number = float(actual)
        return {
            "gt": number > limit,
            "ge": number >= limit,
            "lt": number < limit,
            "le": number <= limit,
        }[cond.op]
    if cond.op == "eq":
        return bool(actual == cond.value)
    if cond.op == "ne":
        return bool(actual != cond.value)
    if cond.op == "in":
        return actual in cond.value
    if cond.op == "not_in":
        return actual not in cond.value
    if pattern is None:
        return False
    return isinstance(actual, str) and pattern.search(actual) is not None


def _shown(value: JSON) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
