"""Parsing an incoming A2A request into its canonical form: (1.0 method, 1.0 params, version).

Every failure is an A2AError with the protocol's code; nothing here can raise anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from maestro_gateway.a2a import compat03, rest
from maestro_gateway.a2a.errors import (
    CONTENT_TYPE_NOT_SUPPORTED,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    VERSION_NOT_SUPPORTED,
    A2AError,
)
from maestro_gateway.a2a.methods import METHODS_10


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    method: str
    params: dict[str, Any]
    version: str
    rpc_id: Any = None


def a2a_version(header: str | None) -> str:
    """The client's protocol version; no header means 0.3 (A2A 1.0 §3)."""
    if header is None or not header.strip():
        return "0.3"
    parts = header.strip().split(".")
    major_minor = ".".join(parts[:2]) if len(parts) >= 2 else f"{parts[0]}.0"
    if major_minor in ("1.0", "0.3"):
        return major_minor
    raise A2AError(
        VERSION_NOT_SUPPORTED,
        f"A2A version {header.strip()[:16]!r} is not supported (supported: 1.0, 0.3)",
        400,
        metadata={"supported": "1.0,0.3"},
    )


def decode_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # orjson also refuses invalid UTF-8 and lone surrogates here.
        raise A2AError(PARSE_ERROR, f"invalid JSON: {str(exc)[:200]}", 400) from None


def parse_jsonrpc(body: bytes, headers: dict[str, str]) -> ParsedRequest:
    version = a2a_version(headers.get("a2a-version"))
    obj = decode_json(body)
    if not isinstance(obj, dict):
        raise A2AError(INVALID_REQUEST, "a JSON-RPC request must be an object (no batches)", 400)
    rpc_id = obj.get("id")
    if isinstance(rpc_id, bool) or not isinstance(rpc_id, (str, int)):
        raise A2AError(INVALID_REQUEST, "id must be a string or an integer", 400)
    if isinstance(rpc_id, str) and len(rpc_id) > 256:
        raise A2AError(INVALID_REQUEST, "id longer than 256 characters", 400)
    if obj.get("jsonrpc") != "2.0":
        raise _with_id(A2AError(INVALID_REQUEST, 'jsonrpc must be "2.0"', 400), rpc_id)
    method = obj.get("method")
    if not isinstance(method, str):
        raise _with_id(A2AError(INVALID_REQUEST, "method must be a string", 400), rpc_id)
    params = obj.get("params", {})
    if not isinstance(params, dict):
        raise _with_id(A2AError(INVALID_PARAMS, "params must be an object", 400), rpc_id)
    if version == "1.0":
        if method not in METHODS_10:
            raise _with_id(_unknown(method, version), rpc_id)
        return ParsedRequest(method, params, version, rpc_id)
    if method not in compat03.METHODS_03_TO_10:
        raise _with_id(_unknown(method, version), rpc_id)
    try:
        method10, params10 = compat03.request_to_10(method, params)
    except A2AError as exc:
        raise _with_id(exc, rpc_id) from None
    return ParsedRequest(method10, params10, version, rpc_id)


def _unknown(method: str, version: str) -> A2AError:
    hint = ""
    if version == "0.3" and method in METHODS_10:
        hint = "; this is an A2A 1.0 method: send the header 'A2A-Version: 1.0'"
    elif version == "1.0" and method in compat03.METHODS_03_TO_10:
        hint = "; this is an A2A 0.3 method: omit the A2A-Version header"
    return A2AError(METHOD_NOT_FOUND, f"method {method[:64]!r} not found{hint}", 400)


@dataclass(eq=False)
class _IdError(A2AError):
    """An A2AError raised once the JSON-RPC id is known, so the reply can carry it."""

    rpc_id: Any = None


def _with_id(exc: A2AError, rpc_id: Any) -> A2AError:
    return _IdError(
        exc.code, exc.message, exc.http_status, exc.reason, exc.domain, exc.metadata, rpc_id
    )


def error_rpc_id(exc: A2AError) -> Any:
    return exc.rpc_id if isinstance(exc, _IdError) else None


def parse_rest(http_method: str, path: str, query: bytes, body: bytes) -> ParsedRequest:
    """The HTTP+JSON binding serves A2A 1.0 (0.3's REST routes are not offered)."""
    decoded = decode_json(body) if body else None
    method, params = rest.route(http_method, path, query, decoded)
    return ParsedRequest(method, params, "1.0", None)


def check_content_type(headers: dict[str, str], body: bytes, allowed: tuple[str, ...]) -> None:
    """A body must be declared as one of ``allowed`` media types, in UTF-8."""
    if not body:
        return
    raw = headers.get("content-type", "")
    media, _, rest = raw.partition(";")
    if media.strip().lower() not in allowed:
        raise A2AError(
            CONTENT_TYPE_NOT_SUPPORTED,
            f"Content-Type must be {allowed[0]}, not {raw[:100] or '(none)'!r}",
            415,
        )
    charset = rest.strip().lower()
    if charset and charset.replace(" ", "") not in ("charset=utf-8", 'charset="utf-8"'):
        raise A2AError(CONTENT_TYPE_NOT_SUPPORTED, "only UTF-8 request bodies are accepted", 415)


def skill_id_of(params: Any) -> str | None:
    """The skill a message asks for (``message.metadata.skillId``), if any."""
    if not isinstance(params, dict):
        return None
    message = params.get("message")
    if not isinstance(message, dict):
        return None
    metadata = message.get("metadata")
    skill = metadata.get("skillId") if isinstance(metadata, dict) else None
    return skill if isinstance(skill, str) and len(skill) <= 128 else None
