"""C17 just-in-time tool permission: JIT-only skills need a live grant for the caller.

A skill configured as JIT-only (``jit_only: {agent: [skills]}``, or ``skills: [...]`` in the
settings for an agent or skill through ``guard_overrides``; ``"*"`` means every skill) is
callable only by a principal holding a live grant for exactly that agent and skill — and, for a
task-scoped grant, that task (``message.taskId`` or ``message.contextId``; ``id``/``taskId``
of task methods). Each allowed call spends one use of the grant (atomically). Refusals:

- no matching live grant → 403, code ``GRANT_REQUIRED`` (-32089), naming the skill and agent
  (never another principal's grants);
- a message to an agent with JIT-only skills that names no skill → 403, same code (the agent
  could otherwise pick the JIT-only skill itself), unless ``undeclared_skill: allow``;
- the grant store unavailable → 503 (fail closed; ``fail_mode: fail_open`` lets it pass).

Skills that are not JIT-only are unaffected: grants are not consulted there at all.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from maestro_gateway.a2a.errors import INTERNAL_ERROR
from maestro_gateway.context import RequestContext
from maestro_gateway.grants.models import Grant, GrantsUnavailable
from maestro_gateway.principal import principal_of
from maestro_gateway.types import ALLOW, JSON, FailMode, Verdict

__all__ = ["GRANT_REQUIRED", "NAME", "GrantChecker", "GrantsGuard", "GrantsGuardConfig", "task_ids"]

NAME = "grants"
GRANT_REQUIRED = -32089
"""JSON-RPC code of a call to a JIT-only skill without a grant (implementation-defined server
range; -32096 is taken by approvals). Sent with HTTP 403."""

_MESSAGE_METHODS = frozenset({"SendMessage", "SendStreamingMessage"})
_TASK_METHODS = frozenset({"GetTask", "CancelTask", "SubscribeToTask"})


class GrantsGuardConfig(BaseModel):
    """C17: which skills are just-in-time only (docs/grants.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    fail_mode: Literal["fail_closed", "fail_open"] = "fail_closed"
    jit_only: dict[str, list[str]] = Field(
        {}, description='Agent id (or "*") → skill ids (or "*") that need a live grant.'
    )
    skills: list[str] = Field(
        [], description="JIT-only skills of the agents these settings apply to (guard_overrides)."
    )
    undeclared_skill: Literal["deny", "allow"] = Field(
        "deny", description="A message naming no skill, to an agent with JIT-only skills."
    )

    @property
    def active(self) -> bool:
        return self.enabled and bool(self.skills or any(self.jit_only.values()))

    def jit_skills(self, agent_id: str) -> frozenset[str]:
        """The JIT-only skills of ``agent_id`` (``"*"``: all of them)."""
        return frozenset(
            [*self.skills, *self.jit_only.get(agent_id, ()), *self.jit_only.get("*", ())]
        )


class GrantChecker(Protocol):
    """What the guard needs of the grants service (:class:`grants.service.GrantService`)."""

    async def consume(
        self, principal: str, agent_id: str, skill_id: str, task_ids: Any, request_id: str
    ) -> Grant | None: ...


def task_ids(ctx: RequestContext) -> tuple[str, ...]:
    """The task ids a task-scoped grant may match: a message's ``taskId`` and ``contextId``,
    a task method's ``id``, other methods' ``taskId``/``id``."""
    params = ctx.params if isinstance(ctx.params, dict) else {}
    if ctx.method in _MESSAGE_METHODS:
        msg = params.get("message")
        found = [msg.get("taskId"), msg.get("contextId")] if isinstance(msg, dict) else []
    elif ctx.method in _TASK_METHODS:
        found = [params.get("id")]
    else:
        found = [params.get("taskId") or params.get("id")]
    out: list[str] = []
    for tid in found:
        if isinstance(tid, str) and tid and tid not in out:
            out.append(tid)
    return tuple(out)


class GrantsGuard:
    """C17: calls to JIT-only skills pass only under a live grant, spending one use each."""

    name = NAME

    def __init__(self, cfg: GrantsGuardConfig, grants: GrantChecker) -> None:
        self.cfg = cfg
        self.fail_mode = FailMode(cfg.fail_mode)
        self._grants = grants
        self._jit: dict[str, frozenset[str]] = {}

    def _jit_for(self, agent_id: str) -> frozenset[str]:
        hit = self._jit.get(agent_id)
        if hit is None:
            hit = self.cfg.jit_skills(agent_id)
            if len(self._jit) < 10_000:
                self._jit[agent_id] = hit
        return hit

    async def on_request(self, ctx: RequestContext) -> Verdict:
        jit = self._jit_for(ctx.agent_id)
        if not jit:
            return ALLOW
        skill = ctx.skill_id
        if skill is None:
            if ctx.method not in _MESSAGE_METHODS or self.cfg.undeclared_skill == "allow":
                return ALLOW
            return Verdict.deny(
                403, GRANT_REQUIRED,
                f"agent {ctx.agent_id!r} has just-in-time skills: name the skill in "
                "message.metadata.skillId and hold a grant for it",
                NAME, rule="grant-undeclared-skill",
            )  # fmt: skip
        if "*" not in jit and skill not in jit:
            return ALLOW
        tids = task_ids(ctx)
        try:
            grant = await self._grants.consume(
                principal_of(ctx), ctx.agent_id, skill, tids, ctx.request_id
            )
        except GrantsUnavailable:
            if self.fail_mode is FailMode.FAIL_OPEN:  # configured to pass: logged by the service
                return ALLOW
            return Verdict.deny(
                503, INTERNAL_ERROR,
                "the grants store is unavailable; request denied (fail-closed)",
                NAME, rule="grants-unavailable",
            )  # fmt: skip
        if grant is None:
            scope = " for this task" if tids else ""
            return Verdict.deny(
                403, GRANT_REQUIRED,
                f"skill {skill!r} on agent {ctx.agent_id!r} is just-in-time only: the caller "
                f"holds no live grant for it{scope}",
                NAME, rule="grant-required", skill=skill,
            )  # fmt: skip
        ctx.extra["grant"] = grant.id
        return ALLOW

    async def on_response(self, ctx: RequestContext, payload: JSON) -> Verdict:
        return ALLOW

    async def on_stream_event(self, ctx: RequestContext, event: JSON) -> Verdict:
        return ALLOW
