"""Gateway records as OCSF events: a finished A2A call, and the audit records the gateway
already writes (guard denials, registry and configuration changes, authentication results)."""

from __future__ import annotations

import time
from typing import Any, Protocol

from maestro_gateway.siem import ocsf


class FinishedCall(Protocol):
    """What the data path knows about a call when it ends (``reply.Call`` has these)."""

    request_id: str
    agent: str
    method: str
    verdict: str
    status: int
    binding: str
    client_version: str
    started: float


def from_call(call: FinishedCall, client_ip: str, principal: str = "") -> ocsf.OcsfEvent:
    return ocsf.api_activity(
        request_id=call.request_id,
        agent=call.agent,
        method=call.method,
        verdict=call.verdict,
        status_code=call.status,
        duration_ms=(time.perf_counter() - call.started) * 1000,
        src_ip=client_ip,
        principal=principal,
        binding=call.binding,
        a2a_version=call.client_version,
    )


def _s(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    return "" if value is None else str(value)


def from_audit(record: dict[str, Any]) -> tuple[ocsf.OcsfEvent, bool] | None:
    """The OCSF event for an audit record, and whether it is critical; None when the record
    has no SIEM meaning (e.g. a change *requested*, whose outcome is recorded next)."""
    kind = _s(record, "type")
    if kind.startswith("guard."):  # guard.deny, guard.escalate (dataplane.DataPlane._deny)
        guard, rule = _s(record, "guard") or "guard", _s(record, "rule")
        blocked = kind == "guard.deny"
        event = ocsf.detection_finding(
            title=f"{guard} guard {'blocked' if blocked else 'held'} a request",
            analytic=guard,
            rule=rule,
            severity=ocsf.Severity.MEDIUM,
            blocked=blocked,
            request_id=_s(record, "request_id"),
            agent=_s(record, "agent"),
            principal=_s(record, "principal"),
            description=_s(record, "reason"),
            types=[f"guard.{guard}"],
        )
        event["unmapped"] = {"method": _s(record, "method")}
        return event, True
    if kind == "detect.finding":  # a behavioural anomaly (detect/, via playbooks/runtime.py)
        return _anomaly(record), True
    if kind.startswith("registry.") and not kind.endswith(".requested"):
        version = record.get("version")
        return (
            ocsf.entity_management(
                action=kind.removeprefix("registry."),
                entity_type="a2a_agent",
                entity_uid=_s(record, "agent"),
                actor=_s(record, "actor"),
                version=version if isinstance(version, int | str) else None,
                before_sha256=record.get("before_sha256"),
                after_sha256=record.get("after_sha256"),
            ),
            True,
        )
    if kind == "config.loaded":
        return (
            ocsf.entity_management(
                action="update",
                entity_type="gateway_config",
                entity_uid="gateway",
                actor=_s(record, "actor") or "gateway",
                after_sha256=record.get("sha256"),
                comment="configuration loaded",
            ),
            True,
        )
    if kind.startswith("auth."):  # auth.success / auth.failure (the identity issue)
        ok = kind == "auth.success"
        return (
            ocsf.authentication(
                _s(record, "principal") or _s(record, "user"),
                ok,
                protocol=_s(record, "protocol") or "oauth2",
                src_ip=_s(record, "client_addr"),
                reason=_s(record, "reason"),
                correlation_uid=_s(record, "request_id"),
            ),
            not ok,
        )
    return None


def _anomaly(record: dict[str, Any]) -> ocsf.OcsfEvent:
    finding_type = _s(record, "finding_type") or "anomaly"
    raw = record.get("confidence")
    confidence = float(raw) if isinstance(raw, int | float) else None
    score = confidence or 0.0
    severity = (
        ocsf.Severity.HIGH
        if score >= 0.8
        else ocsf.Severity.MEDIUM
        if score >= 0.5
        else ocsf.Severity.LOW
    )
    evidence = record.get("evidence")
    context = {k: record[k] for k in ("source", "token_id") if record.get(k)}
    event = ocsf.detection_finding(
        title=f"behavioural anomaly: {finding_type}",
        analytic=f"anomaly.{finding_type}",
        severity=severity,
        blocked=False,
        confidence=confidence,
        evidence={**(evidence if isinstance(evidence, dict) else {}), **context} or None,
        agent=_s(record, "agent"),
        principal=_s(record, "principal"),
        types=["anomaly", finding_type],
    )
    if record.get("id"):
        event["finding_info"]["uid"] = _s(record, "id")
    return event
