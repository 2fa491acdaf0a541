"""Just-in-time grants (C17): the record, its state and the errors of grant operations.

A grant lets ONE principal call ONE skill on ONE agent — optionally only within ONE task —
until ``expires_at``, at most ``uses_left`` more times (``None``: no count). It is issued by an
approver (``source = "approver"``) or by policy on the principal's own request
(``source = "policy"``), and ends when it expires, runs out of uses or is revoked.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "GRANT_PREFIX",
    "Conflict",
    "Forbidden",
    "Grant",
    "GrantError",
    "GrantsUnavailable",
    "InvalidGrant",
    "NotFound",
    "new_grant_id",
]

GRANT_PREFIX = "grant-"


def new_grant_id() -> str:
    return GRANT_PREFIX + secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class Grant:
    """One grant. Times are UNIX seconds."""

    id: str
    principal: str
    agent_id: str
    skill_id: str
    task_id: str | None
    expires_at: float
    uses_left: int | None
    max_uses: int | None
    issued_at: float
    issued_by: str
    source: str  # "approver" or "policy"
    reason: str
    decision_id: str | None = None
    revoked_at: float | None = None
    revoked_by: str | None = None
    revoke_reason: str | None = None

    def state(self, now: float) -> str:
        """``revoked``, ``exhausted``, ``expired`` or ``active`` (in that precedence)."""
        if self.revoked_at is not None:
            return "revoked"
        if self.uses_left is not None and self.uses_left <= 0:
            return "exhausted"
        if self.expires_at <= now:
            return "expired"
        return "active"

    def public(self, now: float) -> dict[str, Any]:
        return {**asdict(self), "state": self.state(now)}

    def audit(self) -> dict[str, Any]:
        """The fields an audit event names (who, what, where, until when)."""
        return {
            "grant": self.id,
            "principal": self.principal,
            "agent": self.agent_id,
            "skill": self.skill_id,
            "task": self.task_id,
            "expires_at": self.expires_at,
            "uses_left": self.uses_left,
            "source": self.source,
        }


class GrantError(Exception):
    """A refused grant operation; ``http_status`` is the admin API's answer."""

    http_status = 400


class InvalidGrant(GrantError):
    http_status = 400


class Forbidden(GrantError):
    http_status = 403


class NotFound(GrantError):
    http_status = 404


class Conflict(GrantError):
    http_status = 409


class GrantsUnavailable(GrantError):
    """The grant store (or the audit log that must record an issue) cannot be used."""

    http_status = 503
