"""OCSF 1.3 event builders: plain dicts with the attributes each class requires.

Own small builders, not a library: ``py-ocsf-models`` has only the finding classes and
``ocsf-lib`` downloads its schema at run time (docs/siem.md). Each builder returns a complete
event: ``class_uid``, ``category_uid``, ``activity_id``, ``type_uid = class_uid * 100 +
activity_id``, ``severity_id``, ``time`` (ms since the epoch), ``metadata`` (OCSF version,
product, a unique ``uid`` receivers use to drop duplicates, ``correlation_uid`` = the request
id) and the class's required objects (``user`` for Authentication; ``actor``, ``api``,
``src_endpoint`` for API Activity; ``finding_info`` for Detection Finding; ``entity`` for Entity
Management), with the enum captions beside each id.
"""

from __future__ import annotations

import enum
import random
import time
from typing import Any

OCSF_VERSION = "1.3.0"
PRODUCT = {"name": "Maestro Gateway", "vendor_name": "Maestro", "version": "0.1.0"}

OcsfEvent = dict[str, Any]

# Event ids must be unique, not secret: a seeded PRNG, as for request ids (observability.py).
_random = random.Random()


class Severity(enum.IntEnum):
    UNKNOWN = 0
    INFORMATIONAL = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
    CRITICAL = 5
    FATAL = 6


class Status(enum.IntEnum):
    UNKNOWN = 0
    SUCCESS = 1
    FAILURE = 2


AUTHENTICATION, DETECTION_FINDING, ENTITY_MANAGEMENT, API_ACTIVITY = 3002, 2004, 3004, 6003
CLASSES: dict[int, tuple[str, int, str]] = {
    AUTHENTICATION: ("Authentication", 3, "Identity & Access Management"),
    ENTITY_MANAGEMENT: ("Entity Management", 3, "Identity & Access Management"),
    DETECTION_FINDING: ("Detection Finding", 2, "Findings"),
    API_ACTIVITY: ("API Activity", 6, "Application Activity"),
}
ACTIVITIES: dict[int, dict[int, str]] = {
    AUTHENTICATION: {1: "Logon", 2: "Logoff", 3: "Authentication Ticket", 99: "Other"},
    ENTITY_MANAGEMENT: {
        1: "Create",
        2: "Read",
        3: "Update",
        4: "Delete",
        8: "Enable",
        9: "Disable",
        10: "Activate",
        11: "Deactivate",
        12: "Suspend",
        13: "Resume",
        99: "Other",
    },
    DETECTION_FINDING: {1: "Create", 2: "Update", 3: "Close", 99: "Other"},
    API_ACTIVITY: {1: "Create", 2: "Read", 3: "Update", 4: "Delete", 99: "Other"},
}
AUTH_PROTOCOLS = {"unknown": 0, "digest": 3, "openid": 4, "saml": 5, "oauth2": 6, "other": 99}
_AUTH_CAPTIONS = {0: "Unknown", 3: "Digest", 4: "OpenID", 5: "SAML", 6: "OAUTH 2.0", 99: "Other"}

# A2A 1.0 methods as OCSF API activities (what the call does to the agent's tasks).
_METHOD_ACTIVITY = {
    "SendMessage": 1,
    "SendStreamingMessage": 1,
    "CreateTaskPushNotificationConfig": 1,
    "GetTask": 2,
    "ListTasks": 2,
    "SubscribeToTask": 2,
    "GetTaskPushNotificationConfig": 2,
    "ListTaskPushNotificationConfigs": 2,
    "GetExtendedAgentCard": 2,
    "CancelTask": 3,
    "DeleteTaskPushNotificationConfig": 4,
}


# Captions computed once: Enum.name costs ~0.5 µs a lookup on the request path.
_SEVERITY_CAPTION = {int(s): s.name.title() for s in Severity}
_STATUS_CAPTION = {int(s): s.name.title() for s in Status}


def new_uid() -> str:
    return f"{_random.getrandbits(128):032x}"


def _base(
    class_uid: int,
    activity_id: int,
    severity: Severity,
    *,
    message: str = "",
    correlation_uid: str = "",
    status: Status | None = None,
    at_ms: int | None = None,
) -> OcsfEvent:
    class_name, category_uid, category_name = CLASSES[class_uid]
    activity_name = ACTIVITIES[class_uid].get(activity_id, "Other")
    metadata: dict[str, Any] = {"version": OCSF_VERSION, "product": PRODUCT, "uid": new_uid()}
    if correlation_uid:
        metadata["correlation_uid"] = correlation_uid
    event: OcsfEvent = {
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": category_uid,
        "category_name": category_name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": f"{class_name}: {activity_name}",
        "severity_id": int(severity),
        "severity": _SEVERITY_CAPTION[severity],
        "time": at_ms if at_ms is not None else int(time.time() * 1000),
        "metadata": metadata,
    }
    if message:
        event["message"] = message[:1000]
    if status is not None:
        event["status_id"] = int(status)
        event["status"] = _STATUS_CAPTION[status]
    return event


def _endpoint(ip: str) -> dict[str, Any]:
    return {"ip": ip} if ip else {}


def authentication(
    user: str,
    success: bool,
    *,
    protocol: str = "oauth2",
    src_ip: str = "",
    service: str = "maestro-gateway",
    reason: str = "",
    is_mfa: bool | None = None,
    activity_id: int = 1,
    correlation_uid: str = "",
) -> OcsfEvent:
    """Authentication (3002): a login or a token check; failures are Medium severity."""
    event = _base(
        AUTHENTICATION,
        activity_id,
        Severity.INFORMATIONAL if success else Severity.MEDIUM,
        message=reason or ("authenticated" if success else "authentication failed"),
        correlation_uid=correlation_uid,
        status=Status.SUCCESS if success else Status.FAILURE,
    )
    proto = AUTH_PROTOCOLS.get(protocol, 99)
    event["user"] = {"name": user or "unknown", "uid": user or "unknown"}
    event["auth_protocol_id"] = proto
    event["auth_protocol"] = _AUTH_CAPTIONS[proto]
    event["service"] = {"name": service}
    event["src_endpoint"] = _endpoint(src_ip)
    if reason:
        event["status_detail"] = reason[:500]
    if is_mfa is not None:
        event["is_mfa"] = is_mfa
    return event


def api_activity(
    *,
    request_id: str,
    agent: str,
    method: str,
    verdict: str,
    status_code: int,
    duration_ms: float,
    src_ip: str = "",
    principal: str = "",
    binding: str = "jsonrpc",
    a2a_version: str = "1.0",
) -> OcsfEvent:
    """API Activity (6003): one A2A call through the gateway, with its verdict and status."""
    ok = verdict == "allow" and status_code < 400
    event = _base(
        API_ACTIVITY,
        _METHOD_ACTIVITY.get(method, 99),
        Severity.INFORMATIONAL if ok or status_code < 500 else Severity.LOW,
        message=f"{method} to {agent}: {verdict}",
        correlation_uid=request_id,
        status=Status.SUCCESS if ok else Status.FAILURE,
    )
    event["actor"] = {"user": {"name": principal or "anonymous"}, "app_name": "a2a-client"}
    event["api"] = {
        "operation": method,
        "version": a2a_version,
        "service": {"name": agent},
        "request": {"uid": request_id},
        "response": {"code": status_code},
    }
    event["src_endpoint"] = _endpoint(src_ip)
    event["resources"] = [{"uid": agent, "type": "a2a_agent"}]
    event["status_code"] = str(status_code)
    event["status_detail"] = verdict
    event["duration"] = round(duration_ms)  # OCSF: integer milliseconds
    event["unmapped"] = {"binding": binding, "verdict": verdict}
    return event


def detection_finding(
    *,
    title: str,
    analytic: str,
    rule: str = "",
    severity: Severity = Severity.MEDIUM,
    blocked: bool = True,
    confidence: float | None = None,
    evidence: dict[str, Any] | None = None,
    request_id: str = "",
    agent: str = "",
    principal: str = "",
    description: str = "",
    types: list[str] | None = None,
) -> OcsfEvent:
    """Detection Finding (2004): a guard block (analytic = the guard, rule = its rule ids) or a
    behavioural anomaly (with ``confidence`` in 0..1 and the ``evidence`` behind it)."""
    event = _base(
        DETECTION_FINDING,
        1,
        severity,
        message=title,
        correlation_uid=request_id,
    )
    info: dict[str, Any] = {
        "uid": new_uid(),
        "title": title[:200],
        "analytic": {
            "name": analytic,
            "uid": rule or analytic,
            "type_id": 1 if rule else 99,
            "type": "Rule" if rule else "Other",
        },
        "types": types or [analytic],
    }
    if description:
        info["desc"] = description[:500]
    if request_id:
        info["related_events"] = [{"uid": request_id, "type": "a2a_request"}]
    event["finding_info"] = info
    event["metadata"]["profiles"] = ["security_control"]
    event["action_id"], event["action"] = (2, "Denied") if blocked else (1, "Allowed")
    event["disposition_id"], event["disposition"] = (2, "Blocked") if blocked else (15, "Detected")
    event["is_alert"] = True
    if confidence is not None:
        score = max(0, min(100, round(confidence * 100)))
        event["confidence_score"] = score
        event["confidence_id"] = 1 if score < 40 else 2 if score < 75 else 3
    if evidence:
        event["evidences"] = [{"data": evidence}]
    if agent:
        event["resources"] = [{"uid": agent, "type": "a2a_agent"}]
    if principal:
        event["actor"] = {"user": {"name": principal}}
    return event


_ENTITY_ACTIVITY = {
    "register": 1,
    "create": 1,
    "update": 3,
    "delete": 4,
    "activate": 10,
    "supersede": 11,
    "retire": 11,
    "reject": 9,
    "suspend": 12,
    "resume": 13,
}


def entity_management(
    *,
    action: str,
    entity_type: str,
    entity_uid: str,
    actor: str = "",
    version: int | str | None = None,
    before_sha256: str | None = None,
    after_sha256: str | None = None,
    comment: str = "",
) -> OcsfEvent:
    """Entity Management (3004): a registry or configuration change (who, what, before -> after
    hash). Every such change is at least Medium: it alters what the gateway trusts."""
    event = _base(
        ENTITY_MANAGEMENT,
        _ENTITY_ACTIVITY.get(action, 99),
        Severity.MEDIUM,
        message=f"{entity_type} {entity_uid}: {action}",
        status=Status.SUCCESS,
    )
    entity: dict[str, Any] = {"uid": entity_uid, "name": entity_uid, "type": entity_type}
    if version is not None:
        entity["version"] = str(version)
    event["entity"] = entity
    if after_sha256 is not None:
        event["entity_result"] = {**entity, "data": {"sha256": after_sha256}}
    if before_sha256 is not None:
        entity["data"] = {"sha256": before_sha256}
    event["actor"] = {"user": {"name": actor or "unknown"}}
    if comment:
        event["comment"] = comment[:500]
    event["unmapped"] = {"action": action}
    return event
