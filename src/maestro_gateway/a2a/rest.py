"""The A2A 1.0 HTTP+JSON binding, mapped onto the JSON-RPC method + params form.

The gateway handles every request in one canonical form (1.0 method name, 1.0 params);
this module turns a REST request into that form. REST response bodies are the same
messages as JSON-RPC results, so results need no mapping back.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote

from maestro_gateway.a2a.errors import INVALID_PARAMS, METHOD_NOT_FOUND, A2AError

Params = dict[str, Any]
_TOP = frozenset({"message:send", "message:stream", "tasks", "extendedAgentCard"})
_INT_QUERY = frozenset({"pageSize", "historyLength"})
_BOOL_QUERY = frozenset({"includeArtifacts"})
_LIST_TASKS_QUERY = frozenset(
    {
        "contextId",
        "status",
        "pageSize",
        "pageToken",
        "historyLength",
        "statusTimestampAfter",
        "includeArtifacts",
    }
)


def _query(qs: bytes, allowed: frozenset[str]) -> Params:
    out: Params = {}
    try:
        pairs = parse_qsl(
            qs.decode("utf-8", "strict"), keep_blank_values=True, strict_parsing=False
        )
    except UnicodeDecodeError:
        raise A2AError(INVALID_PARAMS, "query string is not UTF-8", 400) from None
    for key, value in pairs:
        if key not in allowed:
            raise A2AError(INVALID_PARAMS, f"unknown query parameter {key!r}", 400)
        if key in _INT_QUERY:
            if not (value.isascii() and value.isdigit()) or len(value) > 9:
                raise A2AError(INVALID_PARAMS, f"query parameter {key!r} must be an integer", 400)
            out[key] = int(value)
        elif key in _BOOL_QUERY:
            if value not in ("true", "false"):
                raise A2AError(INVALID_PARAMS, f"query parameter {key!r} must be true|false", 400)
            out[key] = value == "true"
        else:
            out[key] = value
    return out


def _body(body: Any) -> Params:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise A2AError(INVALID_PARAMS, "request body must be a JSON object", 400)
    return dict(body)


def route(http_method: str, path: str, query: bytes, body: Any) -> tuple[str, Params]:
    """Map ``(METHOD, path under /rest, query, decoded body)`` to ``(1.0 method, params)``.

    ``path`` may start with a ``/{tenant}`` segment. Raises A2AError(METHOD_NOT_FOUND, 404) for
    an unknown route.
    """
    segments = [unquote(s) for s in path.strip("/").split("/")] if path.strip("/") else []
    tenant: str | None = None
    if segments and segments[0] not in _TOP and not segments[0].startswith("tasks"):
        tenant, segments = segments[0], segments[1:]
    method, params = _dispatch(http_method, segments, query, body)
    if tenant is not None:
        params["tenant"] = tenant
    return method, params


def _dispatch(http: str, seg: list[str], query: bytes, body: Any) -> tuple[str, Params]:
    n = len(seg)
    if n == 1 and http == "POST" and seg[0] == "message:send":
        return "SendMessage", _body(body)
    if n == 1 and http == "POST" and seg[0] == "message:stream":
        return "SendStreamingMessage", _body(body)
    if n == 1 and http == "GET" and seg[0] == "extendedAgentCard":
        return "GetExtendedAgentCard", {}
    if n == 1 and http == "GET" and seg[0] == "tasks":
        return "ListTasks", _query(query, _LIST_TASKS_QUERY)
    if n >= 2 and seg[0] == "tasks" and seg[1]:
        task = seg[1]
        if n == 2:
            if task.endswith(":cancel") and http == "POST":
                params = _body(body)
                params["id"] = task[: -len(":cancel")]
                return "CancelTask", params
            if task.endswith(":subscribe") and http in ("GET", "POST"):
                return "SubscribeToTask", {"id": task[: -len(":subscribe")]}
            if http == "GET" and ":" not in task:
                params = _query(query, frozenset({"historyLength"}))
                params["id"] = task
                return "GetTask", params
        elif seg[2] == "pushNotificationConfigs":
            if n == 3 and http == "POST":
                params = _body(body)
                params["taskId"] = task
                return "CreateTaskPushNotificationConfig", params
            if n == 3 and http == "GET":
                params = _query(query, frozenset({"pageSize", "pageToken"}))
                params["taskId"] = task
                return "ListTaskPushNotificationConfigs", params
            if n == 4 and http == "GET" and seg[3]:
                return "GetTaskPushNotificationConfig", {"taskId": task, "id": seg[3]}
            if n == 4 and http == "DELETE" and seg[3]:
                return "DeleteTaskPushNotificationConfig", {"taskId": task, "id": seg[3]}
    raise A2AError(METHOD_NOT_FOUND, f"no A2A REST route for {http} /{'/'.join(seg)}", 404)
