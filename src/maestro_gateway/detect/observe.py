"""The data plane's hook: one cheap call per finished request feeds the detection engine.

The request's context is created deep inside the data plane; the first guard (``enforce``)
remembers it in a context variable (same task, so no locking) and the hook reads it when the
request ends. A request refused before the guards run (unknown agent, malformed body) has no
context: its principal is its source address and its agent the one named in the path.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

from maestro_gateway.context import RequestContext
from maestro_gateway.detect.engine import DetectionEngine
from maestro_gateway.detect.model import Observation
from maestro_gateway.principal import principal_of, token_id_from_header
from maestro_gateway.reply import Call
from maestro_gateway.types import Scope, Verdict

__all__ = ["RequestObserver", "remember"]

log = logging.getLogger("maestro_gateway.detect")

_CURRENT: ContextVar[RequestContext | None] = ContextVar("maestro_detect_ctx", default=None)
STOPPED_BY = "stopped_by"
"""``ctx.extra`` key where the pipeline leaves the verdict that stopped a request."""


def remember(ctx: RequestContext) -> None:
    """Called by the first guard: this task's request context, for the end-of-request hook."""
    _CURRENT.set(ctx)


class RequestObserver:
    """A ``DataPlane.finished_hooks`` entry: a finished request -> an Observation (O(1))."""

    def __init__(self, engine: DetectionEngine) -> None:
        self.engine = engine

    def __call__(self, call: Call, scope: Scope) -> None:
        try:
            self._observe(call, scope)
        except Exception:  # called from the data plane's finally: must never raise
            log.exception("detection hook failed")

    def _observe(self, call: Call, scope: Scope) -> None:
        ctx = _CURRENT.get()
        _CURRENT.set(None)
        source = (scope.get("client") or ("", 0))[0]
        agent = call.agent
        if agent == "unknown":  # refused before routing: the path names what was asked for
            agent = scope.get("path", "")[len("/agents/") :].partition("/")[0][:128] or "-"
        guard = rule = ""
        token_id: str | None = None
        skill: str | None = None
        if ctx is not None:
            principal = principal_of(ctx)
            skill = ctx.skill_id
            token_id = ctx.extra.get("token_id")
            stop = ctx.extra.get(STOPPED_BY)
            if isinstance(stop, Verdict):
                guard, rule = stop.guard, str(stop.details.get("rule", ""))[:200]
        else:
            principal = "addr:" + source
        if not isinstance(token_id, str) or not token_id:
            token_id = token_id_from_header(_authorization(scope))  # ~1 µs of SHA-256
        self.engine.observe(
            Observation(
                at=self.engine.clock(),
                principal=principal,
                source=source,
                agent=agent,
                method=call.method,
                verdict=call.verdict,
                status=call.status,
                skill=skill,
                guard=guard,
                rule=rule,
                token_id=token_id,
                request_id=call.request_id,
            )
        )


def _authorization(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"authorization":
            return bytes(value).decode("latin-1")
    return None
