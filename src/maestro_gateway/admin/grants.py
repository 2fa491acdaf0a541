"""Just-in-time grants over HTTP (C17): the admin routes and the self-request endpoint.

Admin API (mounted under /admin/v1 with its access rules; each action then decided by Cedar):

    GET  /admin/v1/grants[?principal=&agent=&active=1&limit=100]   list, newest first
    GET  /admin/v1/grants/{id}
    POST /admin/v1/grants             {"principal", "agent", "skill", "task_id"?, "ttl_s"?,
                                       "uses"?, "reason"?}            issue (approver)
    POST /admin/v1/grants/{id}/revoke {"reason"?}

The actor is the bearer JWT's principal, or — for the static admin token / loopback, only while
identity is off — the name in ``X-Maestro-Actor`` (required to issue or revoke). Cedar decides
``issue_grant`` / ``revoke_grant`` / ``grant_read``; a grant to oneself is forbidden (four eyes).

Self-request, beside the data plane (authenticated like it, not an admin):

    POST /grants/v1/request   {"agent", "skill", "task_id"?, "ttl_s"?, "uses"?, "reason"?}

issued (201) only when Cedar permits ``request_grant`` for the caller on that grant, bounded by
``grants.request_max_ttl_s`` and ``grants.request_max_uses``; otherwise 403.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from maestro_gateway.admin._http import json_response, problem, read_json_object
from maestro_gateway.config import GatewayConfig
from maestro_gateway.context import RequestContext
from maestro_gateway.grants.authorize import GrantAuthorizer, grant_entity
from maestro_gateway.grants.models import GrantError, new_grant_id
from maestro_gateway.grants.service import GrantService
from maestro_gateway.identity.authenticator import Authenticator
from maestro_gateway.identity.model import IdentityUnavailable, InvalidToken
from maestro_gateway.policy import PolicyRuntime
from maestro_gateway.registry.routing import Directory
from maestro_gateway.registry.service import RegistryService
from maestro_gateway.types import ASGIApp

__all__ = ["grant_http", "grant_request_app", "grant_routes"]

log = logging.getLogger("maestro_gateway.grants")
MAX_BODY = 16 * 1024
AgentKnown = Callable[[str], Awaitable[bool]]


def _caller(request: Request, identity: Any, op: str) -> RequestContext:
    extra: dict[str, Any] = {}
    if identity is not None:
        extra = {"identity": identity, "principal": identity.principal}
    host = request.client.host if request.client else ""
    return RequestContext(uuid.uuid4().hex, "", op, None, client_addr=host, extra=extra)


def grant_routes(
    service: GrantService, authz: GrantAuthorizer, agent_known: AgentKnown
) -> list[Route]:
    """The /admin/v1/grants routes (errors answered here: 400/403/404/409/503)."""

    def actor_of(request: Request) -> tuple[RequestContext, str | None]:
        identity = getattr(request.state, "identity", None)
        ctx = _caller(request, identity, "grants")
        if identity is not None:
            return ctx, str(identity.principal)
        return ctx, request.headers.get("x-maestro-actor", "").strip()[:128] or None

    def allowed(ctx: RequestContext, actor: str | None, action: str, res: Any) -> bool:
        return authz.decide(ctx, action, res, bootstrap_actor=actor or "admin").allowed

    async def list_grants(request: Request) -> Response:
        q = request.query_params
        limit = q.get("limit", "100")
        if not limit.isdigit() or not 1 <= int(limit) <= 1000:
            return problem(400, "limit must be an integer from 1 to 1000")
        ctx, actor = actor_of(request)
        if not allowed(ctx, actor, "grant_read", grant_entity("*", "", "", "", None, None)):
            return problem(403, "policy does not permit reading grants")
        grants = await service.list(
            principal=q.get("principal"), agent_id=q.get("agent"),
            active_only=q.get("active", "") in ("1", "true"), limit=int(limit),
        )  # fmt: skip
        now = service.clock()
        return json_response({"grants": [g.public(now) for g in grants]})

    async def show(request: Request) -> Response:
        grant = await service.get(request.path_params["grant_id"])
        ctx, actor = actor_of(request)
        res = grant_entity(request.path_params["grant_id"], "", "", "", None, None)
        if grant is not None:
            res = grant_entity(grant.id, grant.principal, grant.agent_id, grant.skill_id,
                               grant.task_id, authz.tenant_of(grant.agent_id))  # fmt: skip
        if not allowed(ctx, actor, "grant_read", res):
            return problem(403, "policy does not permit reading grants")
        if grant is None:
            return problem(404, "no such grant")
        return json_response(grant.public(service.clock()))

    async def issue(request: Request) -> Response:
        data = await read_json_object(request, MAX_BODY)
        if data is None:
            return problem(400, f"body must be a JSON object of at most {MAX_BODY} bytes")
        ctx, actor = actor_of(request)
        if actor is None:
            return problem(400, "issuing a grant needs the approver's name in X-Maestro-Actor")
        agent, grantee, skill = data.get("agent"), data.get("principal"), data.get("skill")
        if not (isinstance(agent, str) and isinstance(grantee, str) and isinstance(skill, str)):
            return problem(400, "'principal', 'agent' and 'skill' must be strings")
        task = data.get("task_id")
        res = grant_entity(
            new_grant_id(), grantee, agent, skill, task if isinstance(task, str) else None,
            authz.tenant_of(agent), _num(data.get("ttl_s")), _int(data.get("uses")),
        )  # fmt: skip
        decision = authz.decide(ctx, "issue_grant", res, bootstrap_actor=actor)
        if not decision.allowed:
            why = "a principal may not issue a grant to itself" if grantee == actor else ""
            return problem(403, why or "policy does not permit this principal to issue this grant",
                            decision_id=decision.decision_id)  # fmt: skip
        if not await agent_known(agent):
            return problem(404, "agent not found")
        grant = await service.issue(
            principal=grantee, agent_id=agent, skill_id=skill, task_id=task,
            ttl_s=data.get("ttl_s"), uses=data.get("uses"), actor=actor, source="approver",
            reason=data.get("reason", ""), decision_id=decision.decision_id,
        )  # fmt: skip
        return json_response(grant.public(service.clock()), 201)

    async def revoke(request: Request) -> Response:
        data = await read_json_object(request, MAX_BODY)
        reason = data.get("reason", "") if data is not None else None
        if not isinstance(reason, str):
            return problem(400, "body must be a JSON object with an optional 'reason' string")
        ctx, actor = actor_of(request)
        if actor is None:
            return problem(400, "revoking a grant needs your name in X-Maestro-Actor")
        gid = request.path_params["grant_id"]
        grant = await service.get(gid)
        res = grant_entity(gid, "", "", "", None, None)
        if grant is not None:
            res = grant_entity(gid, grant.principal, grant.agent_id, grant.skill_id,
                               grant.task_id, authz.tenant_of(grant.agent_id))  # fmt: skip
        if not authz.decide(ctx, "revoke_grant", res, bootstrap_actor=actor).allowed:
            return problem(403, "policy does not permit this principal to revoke grants")
        revoked = await service.revoke(gid, actor, reason)
        return json_response(revoked.public(service.clock()))

    return [
        Route("/admin/v1/grants", _guarded(list_grants), methods=["GET"]),
        Route("/admin/v1/grants", _guarded(issue), methods=["POST"]),
        Route("/admin/v1/grants/{grant_id}", _guarded(show), methods=["GET"]),
        Route("/admin/v1/grants/{grant_id}/revoke", _guarded(revoke), methods=["POST"]),
    ]


def grant_request_app(
    service: GrantService,
    authz: GrantAuthorizer,
    authenticator: Authenticator,
    agent_known: AgentKnown,
    identity_required: bool,
) -> ASGIApp:
    """``POST /grants/v1/request``: a caller asks for a grant for itself; policy decides."""

    async def request_grant(request: Request) -> Response:
        try:
            identity = await authenticator.authenticate(dict(request.headers))
        except InvalidToken as exc:
            return problem(401, f"invalid credential: {exc}")
        except IdentityUnavailable:
            return problem(503, "the identity provider is unavailable (fail-closed)")
        if identity is None and identity_required:
            return problem(401, "authentication required")
        data = await read_json_object(request, MAX_BODY)
        if data is None:
            return problem(400, f"body must be a JSON object of at most {MAX_BODY} bytes")
        agent, skill, task = data.get("agent"), data.get("skill"), data.get("task_id")
        if not isinstance(agent, str) or not isinstance(skill, str):
            return problem(400, "'agent' and 'skill' must be strings")
        ctx = _caller(request, identity, "RequestGrant")
        ctx.agent_id, ctx.skill_id = agent, skill
        principal = identity.principal if identity is not None else "addr:" + ctx.client_addr
        cfg = service.cfg
        res = grant_entity(
            new_grant_id(), principal, agent, skill, task if isinstance(task, str) else None,
            authz.tenant_of(agent), _num(data.get("ttl_s")) or cfg.request_max_ttl_s,
            _int(data.get("uses")) or cfg.request_max_uses,
        )  # fmt: skip
        decision = authz.decide(ctx, "request_grant", res)
        if not decision.allowed or not await agent_known(agent):
            log.info("grant request denied", extra={"decision": decision.record()})
            return problem(
                403, f"no policy permits {principal} a grant for skill {skill!r} on agent "
                f"{agent!r}", decision_id=decision.decision_id,
            )  # fmt: skip
        grant = await service.issue(
            principal=principal, agent_id=agent, skill_id=skill, task_id=task,
            ttl_s=data.get("ttl_s"), uses=data.get("uses"), actor=principal, source="policy",
            reason=data.get("reason", ""), decision_id=decision.decision_id,
            max_ttl_s=cfg.request_max_ttl_s, max_uses=cfg.request_max_uses,
        )  # fmt: skip
        return json_response(grant.public(service.clock()), 201)

    return Starlette(
        routes=[Route("/grants/v1/request", _guarded(request_grant), methods=["POST"])]
    )


def _guarded(
    endpoint: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        try:
            return await endpoint(request)
        except GrantError as exc:
            return problem(exc.http_status, str(exc))

    return run


def _num(value: object) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    return float(value) if ok and abs(float(value)) < 1e12 else 0.0  # type: ignore[arg-type]


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value < 2**62 else 0


def grant_http(
    cfg: GatewayConfig,
    service: GrantService,
    policy: PolicyRuntime,
    authenticator: Authenticator,
    registry: RegistryService,
    directory: Directory,
) -> tuple[list[Route], ASGIApp]:
    """The admin routes and the self-request app of a gateway. "Identity on" (no bootstrap
    admin, authentication required for self-requests) is ``guards.authn.required``."""
    identity_required = policy.identity_required or cfg.guards.authn.required
    authz = GrantAuthorizer(policy, identity_required)

    async def registered(agent_id: str) -> bool:
        return await registry.get(agent_id) is not None

    async def active(agent_id: str) -> bool:
        return directory.get(agent_id) is not None

    routes = grant_routes(service, authz, registered)
    return routes, grant_request_app(service, authz, authenticator, active, identity_required)
