"""C8/T5 for the admin API: every registry read and write is a Cedar decision.

The principal is the bearer JWT's identity (``request.state.identity``) or, for the static
admin token and loopback access, ``Maestro::Service::"bootstrap"`` — which the default policy
lets administer only while identity is not required. The resource is the agent (with its
tenant and owner from the registry, or the tenant asked for on registration); activations carry
``context.version_author``, the principal that registered the version being activated, for
the four-eyes rule. A denial is 403 with the decision id, and every decision is recorded.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request

from maestro_gateway.policy import Decision, PolicyRuntime
from maestro_gateway.policy.inputs import agent_entity, bootstrap_principal, identity_entity
from maestro_gateway.registry.service import RegistryService

__all__ = ["AdminAuthz", "Forbidden"]

log = logging.getLogger("maestro_gateway.authz")


class Forbidden(Exception):
    """Cedar did not permit the admin action; answered with 403."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(f"not permitted by policy (decision {decision.decision_id})")
        self.decision = decision


class AdminAuthz:
    def __init__(self, policy: PolicyRuntime | None, registry: RegistryService) -> None:
        self._policy, self._registry = policy, registry

    async def check(
        self,
        request: Request,
        action: str,
        agent_id: str,
        tenant: str | None = None,
        version: int | None = None,
    ) -> None:
        """Raise Forbidden unless the policy permits ``action`` on ``agent_id``."""
        if self._policy is None:
            return
        record = await self._registry.get(agent_id)
        owner = record.owner if record else None
        if record is not None:
            tenant = record.tenant
        context: dict[str, Any] = {}
        if action == "activate" and record is not None:
            versions = await self._registry.versions(agent_id)
            wanted = version if version is not None else record.latest_version
            author = next((v.created_by for v in versions if v.version == wanted), None)
            if author is not None:
                context["version_author"] = author
        self.decide(request, action, agent_entity(agent_id, tenant, owner), context)

    def actor(self, request: Request) -> str:
        """Who acts: the authenticated identity, else the bootstrap admin's declared name."""
        identity = getattr(request.state, "identity", None)
        if identity is not None:
            return str(identity.principal)
        return request.headers.get("x-maestro-actor", "").strip()[:128]

    def decide(
        self,
        request: Request,
        action: str,
        resource: tuple[dict[str, str], dict[str, Any]],
        context: dict[str, Any] | None = None,
    ) -> None:
        """Raise Forbidden unless the policy permits ``action`` on ``resource``."""
        if self._policy is None:
            return
        identity = getattr(request.state, "identity", None)
        if identity is None:
            principal, p_entity = bootstrap_principal()
        else:
            principal, p_entity = identity_entity(str(identity.principal), identity)
        ctx: dict[str, Any] = {
            "identity_required": self._policy.identity_required,
            "method": action,
            "source": request.client.host if request.client else "",
            **(context or {}),
        }
        decision = self._policy.engine.decide(
            principal, action, resource[0], ctx, [p_entity, resource[1]]
        )
        sink = self._policy.on_decision
        if sink is not None:
            sink(decision, None)
        if not decision.allowed:
            log.info("admin action denied", extra={"decision": decision.record()})
            raise Forbidden(decision)
