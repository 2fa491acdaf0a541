"""Held requests: the record, its states, the request hash and who asked.

A request that a guard escalates is *held*: stored exactly as the gateway would have forwarded
it, under an unguessable id (``held-<32 hex>``) that is both the A2A task id the client sees
and the approval id approvers act on. States::

    pending --approve--> approved --release--> released   (forwarded to the agent, once)
       |                    |
       +--deny--> denied    +--timeout--> expired
       +--timeout--> expired
       +--cancel--> cancelled  (by the requester, A2A CancelTask)
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import orjson

from maestro_gateway.context import RequestContext
from maestro_gateway.types import JSON

__all__ = [
    "HELD_PREFIX",
    "ApprovalError",
    "ApprovalsUnavailable",
    "Approved",
    "Conflict",
    "Forbidden",
    "Hold",
    "HoldState",
    "InvalidArgument",
    "NotFound",
    "approval_covers",
    "is_held_id",
    "new_hold_id",
    "request_sha256",
]

HELD_PREFIX = "held-"
_ID_HEX = 32


class HoldState(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    RELEASED = "released"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Hold:
    """One held request and its decision. Times are UNIX seconds."""

    id: str
    agent_id: str
    method: str
    params: JSON
    skill_id: str | None
    client_version: str
    binding: str
    requester: str
    findings: list[dict[str, Any]]
    reason: str
    request_sha256: str
    state: HoldState
    created_at: float
    expires_at: float
    decided_at: float | None = None
    decided_by: str | None = None
    decision_reason: str | None = None
    released_at: float | None = None
    upstream_task_id: str | None = None

    def public(self) -> dict[str, Any]:
        """The record as the admin API shows it to approvers (the exact payload included)."""
        return {
            "id": self.id,
            "state": self.state.value,
            "agent_id": self.agent_id,
            "method": self.method,
            "skill_id": self.skill_id,
            "requester": self.requester,
            "reason": self.reason,
            "findings": self.findings,
            "request_sha256": self.request_sha256,
            "params": self.params,
            "client_version": self.client_version,
            "binding": self.binding,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "decided_at": self.decided_at,
            "decided_by": self.decided_by,
            "decision_reason": self.decision_reason,
            "released_at": self.released_at,
            "upstream_task_id": self.upstream_task_id,
        }


class ApprovalError(Exception):
    """A refused approval operation; ``http_status`` says how the admin API answers it."""

    http_status = 400


class InvalidArgument(ApprovalError):
    http_status = 400


class Forbidden(ApprovalError):
    http_status = 403


class NotFound(ApprovalError):
    http_status = 404


class Conflict(ApprovalError):
    """The hold is not in a state that allows the operation (decided, expired, released)."""

    http_status = 409


class ApprovalsUnavailable(ApprovalError):
    """The approvals store or the audit log cannot be used: nothing is held, decided or sent."""

    http_status = 503


def new_hold_id() -> str:
    """An unguessable id (128 random bits)."""
    return HELD_PREFIX + secrets.token_hex(_ID_HEX // 2)


def is_held_id(value: object) -> bool:
    """True for any id in the gateway's held-task namespace (well-formed or not)."""
    return isinstance(value, str) and value.startswith(HELD_PREFIX)


def request_sha256(agent_id: str, method: str, params: JSON) -> str:
    """SHA-256 over the canonical JSON (sorted keys, no spaces) of {agent, method, params}."""
    doc = {"agent": agent_id, "method": method, "params": params}
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True, slots=True)
class Approved:
    """Set by the data plane (never from client input) on the continuation of an approved hold."""

    hold_id: str
    sha256: str


def approval_covers(ctx: RequestContext) -> bool:
    """True when a human approved exactly this request (same agent, method and params)."""
    approved = ctx.extra.get("approval")
    if not isinstance(approved, Approved):
        return False
    return approved.sha256 == request_sha256(ctx.agent_id, ctx.method, ctx.params)
