"""The explicit input of a Cedar decision: principal, action, resource and context entities.

Built from what authentication established (``ctx.extra["identity"]``), never from anything the
caller merely claims: a request without an identity is ``Maestro::Anonymous`` keyed by its
source address.
"""

from __future__ import annotations

import time
from typing import Any

from maestro_gateway.context import RequestContext
from maestro_gateway.principal import principal_of

__all__ = [
    "METHOD_ACTIONS",
    "Uid",
    "agent_entity",
    "bootstrap_principal",
    "identity_entity",
    "principal_entity",
    "request_context",
    "task_entity",
]

Uid = dict[str, str]

METHOD_ACTIONS: dict[str, str] = {
    "SendMessage": "invoke",
    "SendStreamingMessage": "invoke",
    "GetTask": "read_task",
    "SubscribeToTask": "read_task",
    "CancelTask": "cancel_task",
    "ListTasks": "list_tasks",
    "CreateTaskPushNotificationConfig": "push_config",
    "GetTaskPushNotificationConfig": "push_config",
    "ListTaskPushNotificationConfigs": "push_config",
    "DeleteTaskPushNotificationConfig": "push_config",
    "GetExtendedAgentCard": "get_card",
}
"""A2A 1.0 method → Cedar action. A method missing here is denied (undecided means deny)."""

_KIND_TYPES = {
    "person": "Maestro::User",
    "service": "Maestro::Service",
    "workload": "Maestro::Workload",
}


def _strings(value: Any) -> list[str]:
    if isinstance(value, (list, tuple, set, frozenset)):
        return sorted(str(v) for v in value)
    return []


def principal_entity(ctx: RequestContext) -> tuple[Uid, dict[str, Any]]:
    """The principal uid and its entity, from the authenticated identity (if any); a caller
    known only by a verified client SVID is a ``Maestro::Workload``."""
    identity = ctx.extra.get("identity")
    uid = principal_of(ctx)
    if identity is None and uid == ctx.extra.get("client_spiffe_id"):
        ref = {"type": "Maestro::Workload", "id": uid}
        attrs = {"uid": uid, "roles": [], "tenant": "", "mfa": False, "strength": 1}
        attrs |= {"issuer": "spiffe", "delegation": []}
        return ref, {"uid": ref, "attrs": attrs, "parents": []}
    return identity_entity(uid, identity)


def identity_entity(uid: str, identity: Any) -> tuple[Uid, dict[str, Any]]:
    """The principal for ``uid`` as authentication described it (None: anonymous)."""
    if identity is None:
        attrs: dict[str, Any] = {
            "uid": uid,
            "roles": [],
            "tenant": "",
            "mfa": False,
            "strength": 0,
            "issuer": "",
            "delegation": [],
        }
        kind = "Maestro::Anonymous"
    else:
        roles = _strings(getattr(identity, "roles", ())) + _strings(getattr(identity, "groups", ()))
        mfa = bool(getattr(identity, "mfa", False))
        strength = getattr(identity, "strength", None)
        attrs = {
            "uid": uid,
            "roles": sorted(set(roles)),
            "tenant": str(getattr(identity, "tenant", None) or ""),
            "mfa": mfa,
            "strength": int(strength) if isinstance(strength, int) else (2 if mfa else 1),
            "issuer": str(getattr(identity, "issuer", None) or ""),
            # C16: the actors this request is delegated through (current actor first).
            "delegation": [str(a) for a in getattr(identity, "delegation", ()) or ()],
        }
        kind = _KIND_TYPES.get(str(getattr(identity, "kind", "person")), "Maestro::User")
    principal = {"type": kind, "id": uid}
    return principal, {"uid": principal, "attrs": attrs, "parents": []}


def bootstrap_principal() -> tuple[Uid, dict[str, Any]]:
    """The static admin token / loopback administrator (allowed only while identity is off)."""
    uid = {"type": "Maestro::Service", "id": "bootstrap"}
    attrs = {
        "uid": "bootstrap",
        "roles": [],
        "tenant": "",
        "mfa": False,
        "strength": 0,
        "issuer": "",
    }
    return uid, {"uid": uid, "attrs": attrs, "parents": []}


def agent_entity(
    agent_id: str, tenant: str | None, owner: str | None = None
) -> tuple[Uid, dict[str, Any]]:
    uid = {"type": "Maestro::Agent", "id": agent_id}
    attrs = {"id": agent_id, "tenant": tenant or "", "owner": owner or ""}
    return uid, {"uid": uid, "attrs": attrs, "parents": []}


def task_entity(task_id: str, agent_id: str, owner: str, tenant: str) -> tuple[Uid, dict[str, Any]]:
    uid = {"type": "Maestro::Task", "id": task_id}
    attrs = {"id": task_id, "agent": agent_id, "owner": owner, "tenant": tenant}
    return uid, {"uid": uid, "attrs": attrs, "parents": []}


def request_context(ctx: RequestContext, identity_required: bool) -> dict[str, Any]:
    now = time.gmtime()
    return {
        "identity_required": identity_required,
        "method": ctx.method,
        "skill": ctx.skill_id or "",
        "source": ctx.client_addr,
        "hour": now.tm_hour,
        "weekday": now.tm_wday,
    }
