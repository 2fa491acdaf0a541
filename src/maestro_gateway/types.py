"""Core types: ASGI aliases, the guard protocol and the verdict a guard returns.

Everything else in the gateway is built from these names.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from maestro_gateway.context import RequestContext

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON = Any
"""A decoded JSON value (dict, list, str, int, float, bool or None)."""


class Phase(enum.Enum):
    """Where in the exchange a guard is being asked."""

    REQUEST = "request"
    RESPONSE = "response"
    STREAM_EVENT = "stream_event"


class VerdictKind(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    MUTATE = "mutate"
    ESCALATE = "escalate"


class FailMode(enum.Enum):
    """What happens when a guard itself fails (raises or times out)."""

    FAIL_CLOSED = "fail_closed"
    FAIL_OPEN = "fail_open"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The value a guard returns.

    - ``allow``: continue unchanged.
    - ``deny``: answer now with ``status`` (HTTP), ``code`` (A2A error code) and ``reason``.
    - ``mutate``: continue with ``payload`` in place of what the guard was shown.
    - ``escalate``: hold for a human decision (answered as a deny until approval exists).
    """

    kind: VerdictKind
    status: int = 200
    code: int = 0
    reason: str = ""
    guard: str = ""
    payload: JSON = None
    details: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def deny(status: int, code: int, reason: str, guard: str = "", **details: Any) -> Verdict:
        return Verdict(VerdictKind.DENY, status, code, reason, guard, None, details)

    @staticmethod
    def mutate(payload: JSON, guard: str = "", reason: str = "") -> Verdict:
        return Verdict(VerdictKind.MUTATE, 200, 0, reason, guard, payload)

    @staticmethod
    def escalate(reason: str, guard: str = "", **details: Any) -> Verdict:
        return Verdict(VerdictKind.ESCALATE, 403, -32004, reason, guard, None, details)

    @property
    def allowed(self) -> bool:
        return self.kind is VerdictKind.ALLOW


ALLOW = Verdict(VerdictKind.ALLOW)


class Guard(Protocol):
    """A check on the data path. Each phase returns a Verdict.

    A guard that raises is treated according to ``fail_mode`` (fail closed by default):
    an exception becomes a deny, never a pass.
    """

    name: str
    fail_mode: FailMode

    async def on_request(self, ctx: RequestContext) -> Verdict: ...

    async def on_response(self, ctx: RequestContext, payload: JSON) -> Verdict: ...

    async def on_stream_event(self, ctx: RequestContext, event: JSON) -> Verdict: ...
