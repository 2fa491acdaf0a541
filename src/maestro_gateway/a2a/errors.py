"""A2A errors: JSON-RPC error objects with google.rpc.ErrorInfo, and google.rpc.Status for REST."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

# JSON-RPC standard codes
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# A2A codes
TASK_NOT_FOUND = -32001
TASK_NOT_CANCELABLE = -32002
PUSH_NOT_SUPPORTED = -32003
UNSUPPORTED_OPERATION = -32004
CONTENT_TYPE_NOT_SUPPORTED = -32005
INVALID_AGENT_RESPONSE = -32006
EXTENDED_CARD_NOT_CONFIGURED = -32007
EXTENSION_SUPPORT_REQUIRED = -32008
VERSION_NOT_SUPPORTED = -32009

_REASONS: dict[int, tuple[str, str, int]] = {
    # code: (ErrorInfo reason, google.rpc status, HTTP status)
    PARSE_ERROR: ("PARSE_ERROR", "INVALID_ARGUMENT", 400),
    INVALID_REQUEST: ("INVALID_REQUEST", "INVALID_ARGUMENT", 400),
    METHOD_NOT_FOUND: ("METHOD_NOT_FOUND", "UNIMPLEMENTED", 404),
    INVALID_PARAMS: ("INVALID_PARAMS", "INVALID_ARGUMENT", 400),
    INTERNAL_ERROR: ("INTERNAL_ERROR", "INTERNAL", 500),
    TASK_NOT_FOUND: ("TASK_NOT_FOUND", "NOT_FOUND", 404),
    TASK_NOT_CANCELABLE: ("TASK_NOT_CANCELABLE", "FAILED_PRECONDITION", 409),
    PUSH_NOT_SUPPORTED: ("PUSH_NOTIFICATION_NOT_SUPPORTED", "UNIMPLEMENTED", 400),
    UNSUPPORTED_OPERATION: ("UNSUPPORTED_OPERATION", "UNIMPLEMENTED", 400),
    CONTENT_TYPE_NOT_SUPPORTED: ("CONTENT_TYPE_NOT_SUPPORTED", "INVALID_ARGUMENT", 415),
    INVALID_AGENT_RESPONSE: ("INVALID_AGENT_RESPONSE", "INTERNAL", 502),
    EXTENDED_CARD_NOT_CONFIGURED: (
        "EXTENDED_AGENT_CARD_NOT_CONFIGURED",
        "FAILED_PRECONDITION",
        400,
    ),
    EXTENSION_SUPPORT_REQUIRED: ("EXTENSION_SUPPORT_REQUIRED", "FAILED_PRECONDITION", 400),
    VERSION_NOT_SUPPORTED: ("VERSION_NOT_SUPPORTED", "UNIMPLEMENTED", 400),
}

_HTTP_TO_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "FAILED_PRECONDITION",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

ERROR_DOMAIN = "a2a-protocol.org"
GATEWAY_DOMAIN = "maestro-gateway"


@dataclass(eq=False)
class A2AError(Exception):
    """An error to answer the client with, in whichever binding it used.

    Not frozen: Python sets ``__traceback__`` on exceptions as they propagate.
    """

    code: int
    message: str
    http_status: int = 0
    reason: str = ""
    domain: str = GATEWAY_DOMAIN
    metadata: dict[str, str] | None = None

    def __str__(self) -> str:
        return self.message

    @property
    def status(self) -> int:
        return self.http_status or _REASONS.get(self.code, ("", "", 400))[2]

    def error_info(self) -> dict[str, Any]:
        reason = self.reason or _REASONS.get(self.code, ("ERROR", "", 0))[0]
        info: dict[str, Any] = {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": reason,
            "domain": self.domain,
        }
        if self.metadata:
            info["metadata"] = self.metadata
        return info

    def jsonrpc(self, request_id: Any) -> dict[str, Any]:
        return {
            "jsonrpc": "2.0",
            "id": request_id,
            "error": {"code": self.code, "message": self.message, "data": [self.error_info()]},
        }

    def rest(self) -> dict[str, Any]:
        status = _HTTP_TO_STATUS.get(self.status) or _REASONS.get(self.code, ("", "UNKNOWN", 0))[1]
        return {
            "error": {
                "code": self.status,
                "status": status,
                "message": self.message,
                "details": [self.error_info()],
            }
        }

    def jsonrpc_bytes(self, request_id: Any) -> bytes:
        return orjson.dumps(self.jsonrpc(request_id))

    def rest_bytes(self) -> bytes:
        return orjson.dumps(self.rest())


def not_found(what: str = "agent") -> A2AError:
    """The answer for anything the caller may not see: indistinguishable from absence."""
    return A2AError(METHOD_NOT_FOUND, f"{what} not found", 404, reason="NOT_FOUND")
