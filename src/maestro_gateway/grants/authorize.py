"""Cedar decisions about grants: who may issue, revoke, read or request one (C8 over C17).

Actions: ``issue_grant``, ``revoke_grant``, ``grant_read`` (approvers and, while identity is off,
the bootstrap admin) and ``request_grant`` (a principal asking for a grant for itself; no
default policy permits it). The resource is ``Maestro::Grant {id, grantee, agent, skill, task,
tenant, ttl_s, uses}``; the tenant is the agent's, so tenant isolation applies to grants too.
"""

from __future__ import annotations

from typing import Any

from maestro_gateway.context import RequestContext
from maestro_gateway.policy import Decision, PolicyRuntime
from maestro_gateway.policy.inputs import (
    Uid,
    bootstrap_principal,
    principal_entity,
    request_context,
)

__all__ = ["GrantAuthorizer", "grant_entity"]


def grant_entity(
    grant_id: str,
    grantee: str,
    agent_id: str,
    skill_id: str,
    task_id: str | None,
    tenant: str | None,
    ttl_s: float = 0,
    uses: int | None = None,
) -> tuple[Uid, dict[str, Any]]:
    uid = {"type": "Maestro::Grant", "id": grant_id}
    attrs = {
        "id": grant_id,
        "grantee": grantee,
        "agent": agent_id,
        "skill": skill_id,
        "task": task_id or "",
        "tenant": tenant or "",
        "ttl_s": int(ttl_s),
        "uses": int(uses or 0),
    }
    return uid, {"uid": uid, "attrs": attrs, "parents": []}


class GrantAuthorizer:
    """Decides grant operations with the gateway's policy engine, recording each decision."""

    def __init__(self, runtime: PolicyRuntime, identity_required: bool) -> None:
        self._rt = runtime
        self.identity_required = identity_required

    def tenant_of(self, agent_id: str) -> str | None:
        return self._rt.tenant_of(agent_id)

    def decide(
        self,
        ctx: RequestContext,
        action: str,
        resource: tuple[Uid, dict[str, Any]],
        *,
        bootstrap_actor: str | None = None,
    ) -> Decision:
        """``ctx`` carries the caller (``extra["identity"]``); without an identity and with
        ``bootstrap_actor`` the caller is the bootstrap admin acting as that name."""
        if bootstrap_actor is not None and ctx.extra.get("identity") is None:
            principal, p_entity = bootstrap_principal()
            p_entity["attrs"]["uid"] = bootstrap_actor  # four-eyes compares names
        else:
            principal, p_entity = principal_entity(ctx)
        context = request_context(ctx, self.identity_required)
        decision = self._rt.engine.decide(
            principal, action, resource[0], context, [p_entity, resource[1]]
        )
        if self._rt.on_decision is not None:
            self._rt.on_decision(decision, ctx)
        return decision
