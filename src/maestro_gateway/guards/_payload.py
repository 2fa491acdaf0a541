"""Walking an A2A 1.0 result or stream event copy-on-write: shared by the output guards.

A :class:`PayloadWalk` visits every message, task status, history entry, artifact and
artifact update of a ``SendMessage`` result, a ``Task``, a ``ListTasks`` answer or a stream
event; a subclass says what to do with a message, a task and an artifact update. Objects are
copied only along the path that changed: an unchanged payload comes back as the same object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from maestro_gateway.types import JSON

__all__ = ["Obj", "PayloadWalk", "field", "items"]

Obj = dict[str, Any]


def field(obj: Obj, key: str, fn: Callable[[Obj], Obj]) -> Obj:
    """``obj`` with ``fn`` applied to the object under ``key`` (``obj`` itself if unchanged)."""
    value = obj.get(key)
    if not isinstance(value, dict) or (new := fn(value)) is value:
        return obj
    return {**obj, key: new}


def items(obj: Obj, key: str, fn: Callable[[Obj], Obj]) -> Obj:
    """``obj`` with ``fn`` applied to each object of the list under ``key`` (copy on write)."""
    value = obj.get(key)
    if not isinstance(value, list):
        return obj
    new = [fn(v) if isinstance(v, dict) else v for v in value]
    return obj if all(a is b for a, b in zip(new, value, strict=True)) else {**obj, key: new}


class PayloadWalk:
    """The shape of A2A output; subclasses define ``message``, ``task``, ``artifact_update``."""

    def result(self, obj: JSON) -> JSON:
        if not isinstance(obj, dict):
            return obj
        if "parts" in obj and "messageId" in obj:
            return self.message(obj)
        if "status" in obj and "id" in obj:
            return self.task(obj)
        out = field(obj, "message", self.message)
        out = field(out, "task", self.task)
        out = field(out, "statusUpdate", lambda u: field(u, "status", self.status))
        out = field(out, "artifactUpdate", self.artifact_update)
        return items(out, "tasks", self.task)

    def status(self, status: Obj) -> Obj:
        return field(status, "message", self.message)

    def message(self, message: Obj) -> Obj:
        raise NotImplementedError

    def task(self, task: Obj) -> Obj:
        raise NotImplementedError

    def artifact_update(self, event: Obj) -> Obj:
        raise NotImplementedError
