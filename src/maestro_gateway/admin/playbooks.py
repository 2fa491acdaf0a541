"""Admin routes for detection and response (mounted by ``admin/api.py`` under /admin/v1):

  GET  /admin/v1/playbooks                         the loaded playbooks, global caps, dry run
  GET  /admin/v1/playbooks/actions[?status=]       action records (applied, dry_run, refused…)
  POST /admin/v1/playbooks/actions/{id}/revert     lift an applied measure (audited)
  GET  /admin/v1/playbooks/enforcement             measures in force
  GET  /admin/v1/detect/findings[?type=&limit=]    recent findings, newest last
  GET  /admin/v1/detect/stats                      queue, drops, counts

Access control is the admin app's (bearer token, or loopback only).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from maestro_gateway.admin._http import json_response, problem
from maestro_gateway.playbooks.engine import RevertError
from maestro_gateway.playbooks.runtime import ResponseRuntime

__all__ = ["playbook_routes"]


def playbook_routes(runtime: ResponseRuntime) -> list[Route]:
    def actor(request: Request) -> str:
        return request.headers.get("x-maestro-actor", "admin")[:128] or "admin"

    async def list_playbooks(request: Request) -> Response:
        if runtime.playbooks is None:
            return json_response({"enabled": False, "playbooks": []})
        return json_response(runtime.playbooks.describe())

    async def list_actions(request: Request) -> Response:
        if runtime.playbooks is None:
            return json_response({"actions": []})
        status = request.query_params.get("status") or None
        return json_response({"actions": [r.as_dict() for r in runtime.playbooks.actions(status)]})

    async def revert(request: Request) -> Response:
        if runtime.playbooks is None:
            return problem(404, "playbooks are disabled")
        try:
            record = await runtime.playbooks.revert(
                request.path_params["action_id"], actor(request)
            )
        except RevertError as exc:
            return problem(exc.status, str(exc))
        return json_response(record.as_dict())

    async def enforcement(request: Request) -> Response:
        return json_response(runtime.enforcement.snapshot())

    async def findings(request: Request) -> Response:
        if runtime.detection is None:
            return json_response({"findings": []})
        kind = request.query_params.get("type")
        try:
            limit = max(0, min(int(request.query_params.get("limit", "100")), 10_000))
        except ValueError:
            return problem(400, "limit must be an integer")
        found = [f.as_dict() for f in runtime.detection.recent if not kind or f.type == kind]
        return json_response({"findings": found[-limit:] if limit else []})

    async def stats(request: Request) -> Response:
        if runtime.detection is None:
            return json_response({"enabled": False})
        return json_response({"enabled": True, **runtime.detection.stats()})

    return [
        Route("/admin/v1/playbooks", list_playbooks, methods=["GET"]),
        Route("/admin/v1/playbooks/actions", list_actions, methods=["GET"]),
        Route("/admin/v1/playbooks/actions/{action_id}/revert", revert, methods=["POST"]),
        Route("/admin/v1/playbooks/enforcement", enforcement, methods=["GET"]),
        Route("/admin/v1/detect/findings", findings, methods=["GET"]),
        Route("/admin/v1/detect/stats", stats, methods=["GET"]),
    ]
