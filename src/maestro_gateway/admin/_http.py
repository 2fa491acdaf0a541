"""JSON answers and bounded JSON bodies, shared by the admin route modules."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["json_response", "problem", "read_json_object"]


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data, default=str), status, media_type="application/json")


def problem(status: int, message: str, **extra: Any) -> Response:
    """``{"error": {"code": status, "message": message, **extra}}`` with that status."""
    return json_response({"error": {"code": status, "message": message, **extra}}, status)


async def read_json_object(request: Request, max_bytes: int) -> dict[str, Any] | None:
    """The body as a JSON object (an empty body is ``{}``); None when it is larger than
    ``max_bytes`` (read no further), not JSON, or not an object."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > max_bytes:
            return None
    try:
        data = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None
