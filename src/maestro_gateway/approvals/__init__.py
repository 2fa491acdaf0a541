"""C3 human approval for high-risk actions: held requests, their store, decisions and release.

The approval guard (:mod:`maestro_gateway.guards.approval`) decides what is high-risk; the data
plane holds what any guard escalates through :class:`ApprovalGate`; approvers decide through
the admin API (:mod:`maestro_gateway.admin.approvals`) and the CLI. See docs/approvals.md.
"""

from maestro_gateway.approvals.a2a import APPROVAL_REFUSED, Answer, ApprovalGate, held_task
from maestro_gateway.approvals.models import (
    HELD_PREFIX,
    ApprovalError,
    ApprovalsUnavailable,
    Approved,
    Conflict,
    Forbidden,
    Hold,
    HoldState,
    InvalidArgument,
    NotFound,
    approval_covers,
    request_sha256,
)
from maestro_gateway.approvals.postgres import PostgresApprovalStore
from maestro_gateway.approvals.service import ApprovalService
from maestro_gateway.approvals.sqlite import SqliteApprovalStore
from maestro_gateway.approvals.store import ApprovalStore, open_store

__all__ = [
    "APPROVAL_REFUSED",
    "HELD_PREFIX",
    "Answer",
    "ApprovalError",
    "ApprovalGate",
    "ApprovalService",
    "ApprovalStore",
    "ApprovalsUnavailable",
    "Approved",
    "Conflict",
    "Forbidden",
    "Hold",
    "HoldState",
    "InvalidArgument",
    "NotFound",
    "PostgresApprovalStore",
    "SqliteApprovalStore",
    "approval_covers",
    "held_task",
    "open_store",
    "request_sha256",
]
