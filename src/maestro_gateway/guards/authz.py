"""C8 authorization: every data-plane request is decided by Cedar over an explicit input.

- ``SendMessage`` / ``SendStreamingMessage`` → ``invoke`` on the agent (and, when the message
  continues a task, ``read_task`` on that task: nobody writes into another caller's task);
- ``GetTask`` / ``SubscribeToTask`` → ``read_task``, ``CancelTask`` → ``cancel_task``, push
  notification configs → ``push_config``, all on the task;
- ``ListTasks`` → ``list_tasks`` on the agent, and the answer keeps only the tasks the caller
  may read;
- ``GetExtendedAgentCard`` → ``get_card``; any other method is undecided, so denied.

Per A2A, what the caller may not see is answered exactly as if it did not exist: an agent is
"not found" (404), a task is ``TaskNotFoundError`` (-32001). Tasks are bound to the principal
they were created for when the agent's answer names them (:mod:`policy.tasks`). Each decision
is a record (decision id, matching policies, masked inputs, result, bundle version) handed to
``on_decision`` (structured log and audit log).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from maestro_gateway.a2a.errors import METHOD_NOT_FOUND, TASK_NOT_FOUND
from maestro_gateway.context import RequestContext
from maestro_gateway.policy import PolicyRuntime
from maestro_gateway.policy.engine import Decision
from maestro_gateway.policy.inputs import (
    METHOD_ACTIONS,
    agent_entity,
    principal_entity,
    request_context,
    task_entity,
)
from maestro_gateway.principal import principal_of
from maestro_gateway.types import ALLOW, JSON, FailMode, Verdict

__all__ = ["NAME", "AuthzGuard", "AuthzGuardConfig"]

NAME = "authz"
log = logging.getLogger("maestro_gateway.authz")

DecisionSink = Callable[[Decision, RequestContext], None]


class AuthzGuardConfig(BaseModel):
    """C8 authorization of data-plane requests by the Cedar policy set (see ``policy``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    fail_mode: Literal["fail_closed", "fail_open"] = "fail_closed"
    log_allows: bool = Field(
        True, description="Write decision records for allowed requests too (denies always)."
    )


def _task_id(method: str, params: Any) -> str | None:
    if not isinstance(params, dict):
        return None
    if method in ("SendMessage", "SendStreamingMessage"):
        msg = params.get("message")
        tid = msg.get("taskId") if isinstance(msg, dict) else None
    elif method in ("GetTask", "CancelTask", "SubscribeToTask"):
        tid = params.get("id")
    else:
        tid = params.get("taskId") or params.get("id")
    return tid if isinstance(tid, str) and tid else None


class AuthzGuard:
    """C8: denies what the policy set does not permit; hides what the caller may not see."""

    name = NAME

    def __init__(self, cfg: AuthzGuardConfig, runtime: PolicyRuntime) -> None:
        self.cfg = cfg
        self.fail_mode = FailMode(cfg.fail_mode)
        self._rt = runtime
        self._tasks = runtime.tasks

    def _tenant_of(self, agent_id: str) -> str | None:
        return self._rt.tenant_of(agent_id)

    def _decide(
        self, ctx: RequestContext, action: str, resource: tuple[dict[str, str], dict[str, Any]]
    ) -> Decision:
        principal, p_entity = principal_entity(ctx)
        context = request_context(ctx, self._rt.identity_required)
        entities = [p_entity, resource[1]]
        decision = self._rt.engine.decide(principal, action, resource[0], context, entities)
        sink = self._rt.on_decision
        if sink is not None and (self.cfg.log_allows or not decision.allowed):
            sink(decision, ctx)
        ctx.extra.setdefault("decisions", []).append(decision.decision_id)
        return decision

    def _task_resource(
        self, ctx: RequestContext, task_id: str
    ) -> tuple[dict[str, str], dict[str, Any]]:
        known = self._tasks.get(ctx.agent_id, task_id)
        if known is None:  # unknown to the gateway: owned by nobody, so readable by nobody
            return task_entity(task_id, ctx.agent_id, "", self._tenant_of(ctx.agent_id) or "")
        return task_entity(task_id, ctx.agent_id, known.owner, known.tenant)

    async def on_request(self, ctx: RequestContext) -> Verdict:
        action = METHOD_ACTIONS.get(ctx.method)
        if action is None:
            return Verdict.deny(403, -32095, f"method {ctx.method} is not authorized", NAME)
        agent = agent_entity(ctx.agent_id, self._tenant_of(ctx.agent_id))
        task_id = _task_id(ctx.method, ctx.params)
        if action in ("invoke", "get_card", "list_tasks"):
            if not self._decide(ctx, action, agent).allowed:
                return _hidden("agent", ctx)
            if action != "invoke" or task_id is None:
                return ALLOW
            action = "read_task"  # continuing a task: it must be the caller's own
        if task_id is None:
            return _hidden("task", ctx)
        if not self._decide(ctx, action, self._task_resource(ctx, task_id)).allowed:
            return _hidden("task", ctx)
        return ALLOW

    def _remember(self, ctx: RequestContext, payload: JSON) -> None:
        """Bind the task named by an agent's answer to the caller it was created for."""
        if not isinstance(payload, dict):
            return
        task = payload.get("task") if "task" in payload else payload
        tid = None
        if isinstance(task, dict):
            tid = task.get("id") if "status" in task else task.get("taskId")
        for key in ("statusUpdate", "artifactUpdate"):
            inner = payload.get(key)
            if isinstance(inner, dict) and isinstance(inner.get("taskId"), str):
                tid = inner["taskId"]
        msg = payload.get("message")
        if tid is None and isinstance(msg, dict) and isinstance(msg.get("taskId"), str):
            tid = msg["taskId"]
        if isinstance(tid, str) and tid:
            tenant = self._tenant_of(ctx.agent_id) or ""
            identity = ctx.extra.get("identity")
            tenant = str(getattr(identity, "tenant", None) or tenant)
            self._tasks.record(ctx.agent_id, tid, principal_of(ctx), tenant)

    async def on_response(self, ctx: RequestContext, payload: JSON) -> Verdict:
        if ctx.method in ("SendMessage", "SendStreamingMessage"):
            self._remember(ctx, payload)
        elif ctx.method == "ListTasks" and isinstance(payload, dict):
            return self._filter_list(ctx, payload)
        return ALLOW

    async def on_stream_event(self, ctx: RequestContext, event: JSON) -> Verdict:
        if ctx.method in ("SendMessage", "SendStreamingMessage"):
            self._remember(ctx, event)
        return ALLOW

    def _filter_list(self, ctx: RequestContext, payload: dict[str, Any]) -> Verdict:
        tasks = payload.get("tasks")
        if not isinstance(tasks, list):
            return ALLOW
        kept = [
            t
            for t in tasks
            if isinstance(t, dict)
            and isinstance(t.get("id"), str)
            and self._decide(ctx, "read_task", self._task_resource(ctx, t["id"])).allowed
        ]
        if len(kept) == len(tasks):
            return ALLOW
        out = dict(payload)
        out["tasks"] = kept
        if "totalSize" in out:
            out["totalSize"] = len(kept)
        return Verdict.mutate(out, NAME, f"{len(tasks) - len(kept)} tasks hidden")


def _hidden(what: str, ctx: RequestContext) -> Verdict:
    """The answer for anything the caller may not see: exactly what absence looks like."""
    code = TASK_NOT_FOUND if what == "task" else METHOD_NOT_FOUND
    return Verdict.deny(404, code, f"{what} not found", NAME, rule="authz", hidden=what)
