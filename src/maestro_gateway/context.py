"""Per-request context handed to every guard."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from maestro_gateway.types import JSON


@dataclass(slots=True)
class RequestContext:
    """What the gateway knows about one A2A request.

    ``method`` is always the A2A 1.0 method name (``SendMessage`` …), whatever the client spoke;
    ``params`` is the A2A 1.0 form of the request parameters.
    """

    request_id: str
    agent_id: str
    method: str
    params: JSON
    binding: str = "jsonrpc"  # "jsonrpc" or "rest"
    client_version: str = "1.0"  # "1.0" or "0.3"
    headers: dict[str, str] = field(default_factory=dict)
    client_addr: str = ""
    skill_id: str | None = None
    traceparent: str = ""
    tenant: str | None = None
    body_size: int = 0
    raw_body: bytes = b""
    extra: dict[str, Any] = field(default_factory=dict)
