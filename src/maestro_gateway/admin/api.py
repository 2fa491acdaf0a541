"""Admin API under /admin/v1: the registry over HTTP (JSON). The CLI is built on it.

Access: a bearer token when ``admin_token`` is configured, otherwise loopback callers only.
The acting principal is recorded on every change (``X-Maestro-Actor``, default ``admin``) until
OIDC identities replace it.
"""

from __future__ import annotations

import hmac
import logging
import sqlite3
from dataclasses import asdict
from typing import Any

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from maestro_gateway.admin.approvals import approval_error, approval_routes
from maestro_gateway.admin.authz import AdminAuthz, Forbidden
from maestro_gateway.admin.openapi import OPENAPI
from maestro_gateway.approvals.models import ApprovalError
from maestro_gateway.approvals.service import ApprovalService
from maestro_gateway.identity.admin import AdminAuth, Refusal
from maestro_gateway.identity.authenticator import Authenticator
from maestro_gateway.policy import PolicyRuntime
from maestro_gateway.registry.cards import InvalidCard
from maestro_gateway.registry.models import AgentState, RegistryError
from maestro_gateway.registry.service import RegistryService
from maestro_gateway.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("maestro_gateway.admin")

MAX_BODY = 512 * 1024
_ACTIONS = {
    "activate": AgentState.ACTIVE,
    "suspend": AgentState.SUSPENDED,
    "retire": AgentState.RETIRED,
}


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data, default=str), status, media_type="application/json")


def _problem(status: int, message: str) -> Response:
    return _json({"error": {"code": status, "message": message}}, status)


def _dump(obj: Any) -> Any:
    data = asdict(obj)
    for key, value in data.items():
        if hasattr(value, "value"):
            data[key] = value.value
    return data


class BadRequest(Exception):
    """A malformed admin request; answered with 400."""


def build_admin_app(
    registry: RegistryService,
    approvals: ApprovalService | None = None,
    extra_routes: list[Route] | None = None,
    authenticator: Authenticator | None = None,
    policy: PolicyRuntime | None = None,
) -> ASGIApp:
    token = registry.cfg.admin_token
    authz = AdminAuthz(policy, registry)  # Cedar decides every registry action (C8)
    jwt_auth = AdminAuth(authenticator)  # bearer JWTs from identity.issuers (identity/admin.py)

    def authorized(request: Request) -> bool:
        if token:
            given = request.headers.get("authorization", "")
            return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
        host = request.client.host if request.client else ""
        return host in ("127.0.0.1", "::1", "localhost")

    def actor(request: Request) -> str:
        if (ident := getattr(request.state, "identity", None)) is not None:
            return str(ident.principal)
        return request.headers.get("x-maestro-actor", "admin")[:128] or "admin"

    async def body(request: Request) -> Any:
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY:
                raise BadRequest(f"request body larger than {MAX_BODY} bytes")
        try:
            return orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError:
            raise BadRequest("request body is not JSON") from None

    async def list_agents(request: Request) -> Response:
        state = request.query_params.get("state")
        try:
            wanted = AgentState(state) if state else None
        except ValueError:
            return _problem(400, f"unknown state {state!r}")
        await authz.check(request, "registry_read", "*")
        agents = await registry.list_agents(wanted)
        return _json({"agents": [_dump(a) for a in agents]})

    async def register(request: Request) -> Response:
        data = await body(request)
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            return _problem(400, "body must be an object with 'id' and 'card_url' or 'card'")
        tenant = data.get("tenant")
        await authz.check(
            request, "register", data["id"], tenant if isinstance(tenant, str) else None
        )
        version = await registry.register(
            data["id"],
            actor=actor(request),
            card=data.get("card"),
            card_url=data.get("card_url"),
            upstream_url=data.get("upstream_url"),
            tenant=data.get("tenant"),
            expected_spiffe_id=data.get("expected_spiffe_id"),
        )
        return _json(_dump(version), 201)

    async def get_agent(request: Request) -> Response:
        agent_id = request.path_params["agent_id"]
        await authz.check(request, "registry_read", agent_id)
        record = await registry.get(agent_id)
        if record is None:
            return _problem(404, "agent not found")
        versions = await registry.versions(agent_id)
        return _json({**_dump(record), "versions": [_dump(v) for v in versions]})

    async def events(request: Request) -> Response:
        agent_id = request.path_params["agent_id"]
        await authz.check(request, "registry_read", agent_id)
        if await registry.get(agent_id) is None:
            return _problem(404, "agent not found")
        return _json({"events": [_dump(e) for e in await registry.events(agent_id)]})

    async def change_state(request: Request) -> Response:
        agent_id, action = request.path_params["agent_id"], request.path_params["action"]
        if action not in _ACTIONS:
            return _problem(404, f"unknown action {action!r}")
        data = await body(request)
        version = data.get("version") if isinstance(data, dict) else None
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
            return _problem(400, "version must be an integer")
        await authz.check(request, action, agent_id, version=version)
        record = await registry.transition(
            agent_id, _ACTIONS[action], actor=actor(request), version=version
        )
        return _json(_dump(record))

    async def openapi(request: Request) -> Response:
        return _json(OPENAPI)

    routes = [
        Route("/admin/v1/openapi.json", openapi, methods=["GET"]),
        Route("/admin/v1/agents", list_agents, methods=["GET"]),
        Route("/admin/v1/agents", register, methods=["POST"]),
        Route("/admin/v1/agents/{agent_id}", get_agent, methods=["GET"]),
        Route("/admin/v1/agents/{agent_id}/events", events, methods=["GET"]),
        Route("/admin/v1/agents/{agent_id}/{action}", change_state, methods=["POST"]),
    ]
    if approvals is not None:  # C3 held requests (admin/approvals.py)
        routes += approval_routes(approvals, authz)
    routes += extra_routes or []  # e.g. detection and playbooks (admin/playbooks.py)
    app = Starlette(routes=routes)
    app.add_exception_handler(ApprovalError, approval_error)

    app.add_exception_handler(BadRequest, _bad_request)
    app.add_exception_handler(Forbidden, _forbidden)
    app.add_exception_handler(InvalidCard, _invalid_card)
    app.add_exception_handler(RegistryError, _registry_error)
    for storage_error in STORAGE_ERRORS:
        app.add_exception_handler(storage_error, _storage_error)

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        found = await jwt_auth.check(request.headers)
        if isinstance(found, Refusal):
            response = _problem(found.status, found.message)
            if found.challenge:
                response.headers["WWW-Authenticate"] = found.challenge
            return await response(scope, receive, send)
        if found is not None:  # an authenticated person or service: Cedar decides each action
            scope.setdefault("state", {})["identity"] = found
        elif scope["path"] != "/admin/v1/openapi.json" and not authorized(request):
            response = _problem(401, "admin access requires the admin token (or loopback)")
            response.headers["WWW-Authenticate"] = 'Bearer realm="maestro-admin"'
            return await response(scope, receive, send)
        await app(scope, receive, send)

    return guarded


STORAGE_ERRORS: tuple[type[Exception], ...] = (
    sqlite3.Error,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
)


async def _storage_error(request: Request, exc: Exception) -> Response:
    log.error("registry store failed", extra={"error": repr(exc)})
    return _problem(503, "registry store unavailable; nothing was changed")


async def _forbidden(request: Request, exc: Exception) -> Response:
    return _problem(403, str(exc))


async def _bad_request(request: Request, exc: Exception) -> Response:
    return _problem(400, str(exc))


async def _invalid_card(request: Request, exc: Exception) -> Response:
    return _problem(422, f"invalid agent card: {exc}")


async def _registry_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "http_status", 0) or 409
    return _problem(status, str(exc))
