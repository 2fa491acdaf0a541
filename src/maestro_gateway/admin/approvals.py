"""Admin routes for held requests (C3), mounted under /admin/v1/approvals.

    GET  /admin/v1/approvals[?state=pending&limit=100]   list (newest first, at most 1000)
    GET  /admin/v1/approvals/{id}                the exact held payload with its risk findings
    POST /admin/v1/approvals/{id}/approve        {"reason": "..."}
    POST /admin/v1/approvals/{id}/deny           {"reason": "..."}

A decision needs the approver's name in ``X-Maestro-Actor`` (the admin API's acting principal,
until OIDC with MFA replaces it); an approver may not decide a request they made (four-eyes,
403). Refusals: 404 unknown id, 409 not pending, 503 store or audit log unavailable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from maestro_gateway.admin._http import json_response, problem, read_json_object
from maestro_gateway.admin.authz import AdminAuthz
from maestro_gateway.approvals.models import HoldState
from maestro_gateway.approvals.service import ApprovalService

__all__ = ["approval_error", "approval_routes"]

MAX_BODY = 64 * 1024


async def approval_error(request: Request, exc: Exception) -> Response:
    """The admin API's answer to a refused approval operation."""
    return problem(getattr(exc, "http_status", 400), str(exc))


def _approval(hold: Any) -> tuple[dict[str, str], dict[str, Any]]:
    uid = {"type": "Maestro::Approval", "id": str(hold.id)}
    attrs = {"id": str(hold.id), "agent": str(hold.agent_id), "requester": str(hold.requester)}
    return uid, {"uid": uid, "attrs": attrs, "parents": []}


_ALL = (
    {"type": "Maestro::Approval", "id": "*"},
    {
        "uid": {"type": "Maestro::Approval", "id": "*"},
        "attrs": {"id": "*", "agent": "", "requester": ""},
        "parents": [],
    },
)


def approval_routes(service: ApprovalService, authz: AdminAuthz | None = None) -> list[Route]:
    """``authz``: Cedar decides reading (``approval_read``) and deciding (``approve``): the
    default policy wants the approver role with MFA, and never the requester (four eyes)."""

    async def list_holds(request: Request) -> Response:
        state, limit = request.query_params.get("state"), request.query_params.get("limit", "100")
        try:
            wanted = HoldState(state) if state else None
        except ValueError:
            return problem(400, f"unknown state {state!r}")
        if not limit.isdigit() or not 1 <= int(limit) <= 1000:
            return problem(400, "limit must be an integer from 1 to 1000")
        if authz is not None:
            authz.decide(request, "approval_read", _ALL)
        holds = await service.list(wanted, int(limit))
        return json_response({"approvals": [_summary(h.public()) for h in holds]})

    async def show(request: Request) -> Response:
        hold = await service.get(request.path_params["hold_id"])
        if hold is None:
            return problem(404, "no such held request")
        if authz is not None:
            authz.decide(request, "approval_read", _approval(hold))
        return json_response(hold.public())

    def decide(
        op: Callable[[str, str, str], Awaitable[Any]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            identity = getattr(request.state, "identity", None)
            if identity is not None:  # an authenticated approver: the token says who acts
                actor = str(identity.principal)
            else:
                actor = request.headers.get("x-maestro-actor", "").strip()[:128]
            if not actor:
                return problem(400, "a decision needs the approver's name in X-Maestro-Actor")
            if authz is not None:
                hold = await service.get(request.path_params["hold_id"])
                if hold is None:
                    return problem(404, "no such held request")
                authz.decide(request, "approve", _approval(hold))
            reason = await _reason(request)
            if reason is None:
                return problem(400, "body must be a JSON object with an optional 'reason' string")
            hold = await op(request.path_params["hold_id"], actor, reason)
            return json_response(hold.public())

        return endpoint

    return [
        Route("/admin/v1/approvals", list_holds, methods=["GET"]),
        Route("/admin/v1/approvals/{hold_id}", show, methods=["GET"]),
        Route("/admin/v1/approvals/{hold_id}/approve", decide(service.approve), methods=["POST"]),
        Route("/admin/v1/approvals/{hold_id}/deny", decide(service.deny), methods=["POST"]),
    ]


async def _reason(request: Request) -> str | None:
    data = await read_json_object(request, MAX_BODY)
    reason = data.get("reason", "") if data is not None else None
    return reason if isinstance(reason, str) else None


def _summary(hold: dict[str, Any]) -> dict[str, Any]:
    """A list row: everything but the payload (``show`` has it)."""
    return {k: v for k, v in hold.items() if k != "params"}
