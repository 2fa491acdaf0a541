"""Held requests on the A2A data path: the held task, its continuation, GetTask and CancelTask.

The data plane calls, in order:

1. :meth:`ApprovalGate.continuation` before the guards: a message whose ``taskId`` is a held id
   is replaced by the stored request (after checking requester, agent, method and approval);
   the follow-up message's own content is never forwarded.
2. :meth:`ApprovalGate.hold` when the guards escalate: the request is stored and the client gets
   the held task (``TASK_STATE_AUTH_REQUIRED``, metadata ``maestro.approvalId``).
3. :meth:`ApprovalGate.answer` once the guards allowed: a continuation is released (atomically,
   once) and then forwarded; GetTask/CancelTask/SubscribeToTask on a held id are answered here.
4. :meth:`ApprovalGate.observe` on the agent's answer to a released request: remembers the
   agent's task id, which GetTask on the held id then asks the agent about.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from maestro_gateway.a2a.errors import INVALID_PARAMS, TASK_NOT_FOUND, A2AError
from maestro_gateway.approvals.models import (
    ApprovalError,
    ApprovalsUnavailable,
    Approved,
    Conflict,
    Forbidden,
    Hold,
    HoldState,
    InvalidArgument,
    NotFound,
    is_held_id,
)
from maestro_gateway.approvals.service import ApprovalService
from maestro_gateway.context import RequestContext
from maestro_gateway.principal import principal_of  # the one rule for who is calling
from maestro_gateway.types import JSON, Verdict

__all__ = ["APPROVAL_REFUSED", "MESSAGE_METHODS", "Answer", "ApprovalGate", "held_task"]

APPROVAL_REFUSED = -32096
"""JSON-RPC error code when a held task cannot be continued (pending, denied, already
released). Implementation-defined server-error range (-32000..-32099)."""

_T = TypeVar("_T")
MESSAGE_METHODS = frozenset({"SendMessage", "SendStreamingMessage"})
_TASK_METHODS = frozenset({"GetTask", "CancelTask", "SubscribeToTask"})
_STATES = {
    HoldState.PENDING: "TASK_STATE_AUTH_REQUIRED",
    HoldState.APPROVED: "TASK_STATE_AUTH_REQUIRED",
    HoldState.DENIED: "TASK_STATE_REJECTED",
    HoldState.EXPIRED: "TASK_STATE_REJECTED",
    HoldState.CANCELLED: "TASK_STATE_CANCELED",
    HoldState.RELEASED: "TASK_STATE_COMPLETED",
}


@dataclass(frozen=True, slots=True)
class Answer:
    """A result the gateway gives itself (A2A 1.0 form of ``method``'s result)."""

    result: JSON


class ApprovalGate:
    def __init__(self, service: ApprovalService) -> None:
        self.service = service

    async def continuation(self, ctx: RequestContext) -> None:
        """Swap a continuation of an approved held task for the stored request."""
        if ctx.method not in MESSAGE_METHODS:
            return
        message = ctx.params.get("message") if isinstance(ctx.params, dict) else None
        task_id = message.get("taskId") if isinstance(message, dict) else None
        if not is_held_id(task_id):
            return
        assert isinstance(task_id, str)
        requester = principal_of(ctx)
        hold = await _a2a(self.service.claim(task_id, requester, ctx.agent_id, ctx.method))
        ctx.params, ctx.skill_id = hold.params, hold.skill_id
        ctx.tenant = hold.params.get("tenant") if isinstance(hold.params, dict) else None
        ctx.raw_body, ctx.body_size = b"", 0  # the guards walk the stored request itself
        ctx.extra["approval"] = Approved(hold.id, hold.request_sha256)

    async def hold(self, ctx: RequestContext, verdict: Verdict) -> Answer:
        """Hold an escalated message; the answer is the held task."""
        findings = verdict.details.get("findings")
        if not isinstance(findings, list) or not findings:
            findings = [{"type": "guard", "guard": verdict.guard, "summary": verdict.reason}]
        hold = await _a2a(self.service.hold(ctx, principal_of(ctx), verdict.reason, findings))
        return Answer({"task": held_task(hold)})

    async def answer(self, ctx: RequestContext) -> Answer | None:
        """After the guards allowed: release a continuation, or answer for a held task id."""
        approved = ctx.extra.get("approval")
        if isinstance(approved, Approved):
            await _a2a(self.service.release_id(approved.hold_id, ctx.request_id))
            return None  # forward the stored request, now released
        if ctx.method not in _TASK_METHODS or not isinstance(ctx.params, dict):
            return None
        task_id = ctx.params.get("id")
        if not is_held_id(task_id):
            return None
        assert isinstance(task_id, str)
        requester = principal_of(ctx)
        if ctx.method == "CancelTask":
            return Answer(held_task(await _a2a(self.service.cancel(task_id, requester))))
        hold = await _a2a(self.service.get(task_id))
        if hold is None or hold.requester != requester or hold.agent_id != ctx.agent_id:
            raise A2AError(TASK_NOT_FOUND, "task not found", 404)
        if hold.state is HoldState.RELEASED and hold.upstream_task_id:
            ctx.params = {**ctx.params, "id": hold.upstream_task_id}
            return None  # the agent's task now: ask the agent
        task = held_task(hold)
        return Answer({"task": task} if ctx.method == "SubscribeToTask" else task)

    async def observe(self, ctx: RequestContext, result: JSON) -> None:
        """Remember the agent's task id from its first answer to a released request."""
        approved = ctx.extra.get("approval")
        if not isinstance(approved, Approved) or ctx.extra.get("approval_observed"):
            return
        task_id = _task_id(result)
        if task_id is not None:
            ctx.extra["approval_observed"] = True
            await self.service.note_upstream_task(approved.hold_id, task_id)


def held_task(hold: Hold) -> dict[str, Any]:
    """The A2A 1.0 Task a client sees for a held request.

    The status message names the approval id but not the findings: which rule fired (and at
    what threshold) is for approvers, not for a requester probing the policy.
    """
    text = {  # descriptive, not imperative: the response guards (the firewall too) see it
        HoldState.PENDING: "Held for human approval; not sent to the agent. "
        f"Approval id: {hold.id}.",
        HoldState.APPROVED: "Approved by a human; the request is released to the agent when "
        "this task is continued.",
        HoldState.DENIED: f"Denied by an approver: {hold.decision_reason or 'no reason given'}",
        HoldState.EXPIRED: "Denied: no approval decision was made in time.",
        HoldState.CANCELLED: "Cancelled by the requester; the request never reached the agent.",
        HoldState.RELEASED: "Approved and released to the agent.",
    }[hold.state]
    message = hold.params.get("message") if isinstance(hold.params, dict) else None
    context_id = message.get("contextId") if isinstance(message, dict) else None
    return {
        "id": hold.id,
        "contextId": context_id if isinstance(context_id, str) and context_id else hold.id,
        "status": {
            "state": _STATES[hold.state],
            "message": {
                "messageId": f"{hold.id}-{hold.state.value}",
                "role": "ROLE_AGENT",
                "parts": [{"text": text}],
            },
            "timestamp": datetime.fromtimestamp(hold.decided_at or hold.created_at, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
        },
        "metadata": {
            "maestro.approvalId": hold.id,
            "maestro.approvalState": hold.state.value,
            "maestro.agent": hold.agent_id,
        },
    }


def _task_id(result: JSON) -> str | None:
    if not isinstance(result, dict):
        return None
    for key, field in (("task", "id"), ("statusUpdate", "taskId"), ("artifactUpdate", "taskId")):
        inner = result.get(key)
        if isinstance(inner, dict) and isinstance(inner.get(field), str):
            return str(inner[field])
    message = result.get("message")
    if isinstance(message, dict) and isinstance(message.get("taskId"), str):
        return str(message["taskId"])
    return None


async def _a2a(op: Awaitable[_T]) -> _T:
    """Await an approvals operation; its refusals become A2A errors."""
    try:
        return await op
    except NotFound:
        raise A2AError(TASK_NOT_FOUND, "task not found", 404) from None
    except ApprovalsUnavailable as exc:
        raise A2AError(APPROVAL_REFUSED, str(exc), 503, reason="APPROVALS_UNAVAILABLE") from None
    except InvalidArgument as exc:
        raise A2AError(INVALID_PARAMS, str(exc), 400) from None
    except Conflict as exc:
        raise A2AError(APPROVAL_REFUSED, str(exc), 409, reason="APPROVAL_NOT_USABLE") from None
    except Forbidden as exc:
        raise A2AError(APPROVAL_REFUSED, str(exc), 403, reason="APPROVAL_DENIED") from None
    except ApprovalError as exc:
        raise A2AError(APPROVAL_REFUSED, str(exc), exc.http_status) from None
