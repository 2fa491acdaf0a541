"""Building blocks of `compat03`: A2A 0.3 <-> 1.0 parts, messages, artifacts, tasks, stream
events and push-notification configs, as plain dicts (agent cards: `compat03_card`).

Internal: every converter takes `(value, to_10)` and raises `Malformed`, which `compat03` turns
into `A2AError`. Only the fields each version defines are carried over (unknown keys are
dropped); outputs are new dicts that may share leaves (metadata, `data`, string lists) with
the input, which is never mutated.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]


class Malformed(ValueError):
    """The payload does not have the shape the A2A version requires."""


def show(value: Any) -> str:
    """A short repr of untrusted input for error messages (bounded in depth and length)."""
    return reprlib.repr(value)


def obj(value: Any, what: str) -> Obj:
    if not isinstance(value, dict):
        raise Malformed(f"{what} must be an object")
    return value


def arr(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise Malformed(f"{what} must be an array")
    return value


def strs(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Malformed(f"'{what}' must be an array of strings")
    return value


def opt(src: Obj, key: str, default: Any) -> Any:
    """`src[key]`, or `default` when absent or null (proto JSON omits empty fields)."""
    value = src.get(key)
    return default if value is None else value


def req_str(src: Obj, key: str) -> str:
    value = src.get(key)
    if not isinstance(value, str):
        raise Malformed(f"'{key}' must be a string")
    return value


def str_or_empty(src: Obj, key: str) -> str:
    return "" if src.get(key) is None else req_str(src, key)


def put_str(src: Obj, key: str, dst: Obj, out: str | None = None) -> None:
    """Copy an optional string unless empty (proto3 reads "" as unset)."""
    if src.get(key) is not None and (value := req_str(src, key)):
        dst[out or key] = value


def put_strs(src: Obj, key: str, dst: Obj) -> None:
    if src.get(key) is not None and (value := strs(src[key], key)):
        dst[key] = value


def boolean(src: Obj, key: str) -> bool:
    value = src.get(key)
    if not isinstance(value, bool):
        raise Malformed(f"'{key}' must be a boolean")
    return value


def put_bool(src: Obj, key: str, dst: Obj, out: str | None = None) -> None:
    if src.get(key) is not None:
        dst[out or key] = boolean(src, key)


def put_meta(src: Obj, dst: Obj, key: str = "metadata") -> None:
    if src.get(key) is not None:
        dst[key] = obj(src[key], key)


def put_list(src: Obj, key: str, dst: Obj, fn: Callable[[Any, bool], Obj], to_10: bool) -> None:
    if src.get(key) is not None and (value := arr(src[key], key)):
        dst[key] = [fn(v, to_10) for v in value]


def start(src: Obj, kind: str, to_10: bool) -> Obj:
    """A new output object: a 0.3 one carries `kind`; a 0.3 input's `kind` must match."""
    if not to_10:
        return {"kind": kind}
    if src.get("kind") not in (None, kind):
        raise Malformed(f"expected kind {kind!r}, got {show(src['kind'])}")
    return {}


STATE_TO_10: dict[str, str] = {
    "submitted": "TASK_STATE_SUBMITTED",
    "working": "TASK_STATE_WORKING",
    "input-required": "TASK_STATE_INPUT_REQUIRED",
    "auth-required": "TASK_STATE_AUTH_REQUIRED",
    "completed": "TASK_STATE_COMPLETED",
    "failed": "TASK_STATE_FAILED",
    "canceled": "TASK_STATE_CANCELED",
    "rejected": "TASK_STATE_REJECTED",
    "unknown": "TASK_STATE_UNSPECIFIED",
}
STATE_TO_03: dict[str, str] = {v: k for k, v in STATE_TO_10.items()}
# 0.3 `final`: a 1.0 stream ends on terminal *and* interrupted states (the SDK flags terminal only)
FINAL_03 = frozenset(
    ("completed", "failed", "canceled", "rejected", "input-required", "auth-required")
)
ROLES: dict[bool, dict[str, str]] = {
    True: {"user": "ROLE_USER", "agent": "ROLE_AGENT"},
    False: {"ROLE_USER": "user", "ROLE_AGENT": "agent"},
}


def lookup(table: dict[str, str], value: Any, what: str) -> str:
    found = table.get(value) if isinstance(value, str) else None
    if found is None:
        raise Malformed(f"unknown {what} {show(value)}")
    return found


# -- parts ----------------------------------------------------------------------------------------

_URLSAFE = str.maketrans("-_", "+/")


def part_10(p: Obj) -> Obj:
    kind = p.get("kind")
    if kind is None:  # like the SDK's pydantic union: infer a missing discriminator
        kind = next((k for k in ("text", "file", "data") if k in p), None)
    meta = p.get("metadata")
    out: Obj
    if kind == "text":
        out = {"text": req_str(p, "text")}
    elif kind == "file":
        f = obj(p.get("file"), "file")
        has_bytes = f.get("bytes") is not None  # FileWithBytes wins, as in the SDK
        out = {"raw": req_str(f, "bytes")} if has_bytes else {"url": req_str(f, "uri")}
        put_str(f, "mimeType", out, "mediaType")
        put_str(f, "name", out, "filename")
    elif kind == "data":
        data: Any = obj(p.get("data"), "data")
        if meta is not None and "data_part_compat" in obj(meta, "metadata"):
            if meta["data_part_compat"]:  # a non-object 1.0 value that 0.3 saw as {"value": v}
                if "value" not in data:
                    raise Malformed("data_part_compat data needs a 'value'")
                data = data["value"]
            meta = {k: v for k, v in meta.items() if k != "data_part_compat"} or None
        out = {"data": data}
    else:
        raise Malformed(f"unknown part kind {show(kind)}")
    if meta is not None:
        out["metadata"] = obj(meta, "metadata")
    return out


def part_03(p: Obj) -> Obj:
    text, raw, url = p.get("text"), p.get("raw"), p.get("url")
    if (text is not None) + (raw is not None) + (url is not None) + ("data" in p) != 1:
        raise Malformed("a part must hold exactly one of text, raw, url, data")
    meta = p.get("metadata")
    out: Obj
    if text is not None:
        out = {"kind": "text", "text": req_str(p, "text")}
    elif raw is not None:  # proto JSON accepts URL-safe unpadded base64; 0.3 peers may not
        b64 = req_str(p, "raw")
        b64 = b64.translate(_URLSAFE) if "-" in b64 or "_" in b64 else b64
        out = {"kind": "file", "file": {"bytes": b64 + "=" * (-len(b64) % 4)}}
    elif url is not None:
        out = {"kind": "file", "file": {"uri": req_str(p, "url")}}
    elif isinstance(data := p["data"], dict):
        out = {"kind": "data", "data": data}
    else:  # 0.3 DataPart.data must be an object: wrap the value as the SDK does
        out = {"kind": "data", "data": {"value": data}}
        meta = {**obj(opt(p, "metadata", {}), "metadata"), "data_part_compat": True}
    if "file" in out:
        put_str(p, "mediaType", out["file"], "mimeType")
        put_str(p, "filename", out["file"], "name")
    if meta is not None:
        out["metadata"] = obj(meta, "metadata")
    return out


def part(value: Any, to_10: bool) -> Obj:
    return (part_10 if to_10 else part_03)(obj(value, "part"))


def parts(src: Obj, to_10: bool) -> list[Obj]:
    """`parts` is required in 0.3; proto JSON omits an empty list."""
    return [
        part(v, to_10) for v in arr(src.get("parts") if to_10 else opt(src, "parts", []), "parts")
    ]


# -- messages, artifacts, tasks, events -----------------------------------------------------------


def message(value: Any, to_10: bool) -> Obj:
    m = obj(value, "message")
    out = start(m, "message", to_10)
    out["messageId"] = req_str(m, "messageId")
    out["role"] = lookup(ROLES[to_10], m.get("role"), "role")
    out["parts"] = parts(m, to_10)
    put_str(m, "contextId", out)
    put_str(m, "taskId", out)
    put_strs(m, "referenceTaskIds", out)
    put_strs(m, "extensions", out)
    put_meta(m, out)
    return out


def artifact(value: Any, to_10: bool) -> Obj:
    a = obj(value, "artifact")
    out: Obj = {"artifactId": req_str(a, "artifactId"), "parts": parts(a, to_10)}
    put_str(a, "name", out)
    put_str(a, "description", out)
    put_strs(a, "extensions", out)
    put_meta(a, out)
    return out


def status(value: Any, to_10: bool) -> Obj:
    if value is None and not to_10:
        return {"state": "unknown"}
    s = obj(value, "status")
    state = s.get("state")  # proto JSON omits TASK_STATE_UNSPECIFIED
    if to_10 or state is not None:
        state = lookup(STATE_TO_10 if to_10 else STATE_TO_03, state, "task state")
    out: Obj = {"state": state or "unknown"}
    if s.get("message") is not None:
        out["message"] = message(s["message"], to_10)
    put_str(s, "timestamp", out)
    return out


def task(value: Any, to_10: bool) -> Obj:
    t = obj(value, "task")
    out = start(t, "task", to_10)
    out["id"] = req_str(t, "id")
    out["contextId"] = req_str(t, "contextId") if to_10 else str_or_empty(t, "contextId")
    out["status"] = status(t.get("status"), to_10)
    put_list(t, "artifacts", out, artifact, to_10)
    put_list(t, "history", out, message, to_10)
    put_meta(t, out)
    return out


def status_update(value: Any, to_10: bool) -> Obj:
    e = obj(value, "status update")
    out = start(e, "status-update", to_10)
    out["taskId"] = req_str(e, "taskId")
    out["contextId"] = req_str(e, "contextId")
    out["status"] = status(e.get("status"), to_10)
    if not to_10:  # 1.0 has no `final`: a 0.3 one is dropped, the 1.0 state decides
        out["final"] = out["status"]["state"] in FINAL_03
    put_meta(e, out)
    return out


def artifact_update(value: Any, to_10: bool) -> Obj:
    e = obj(value, "artifact update")
    out = start(e, "artifact-update", to_10)
    out["taskId"] = req_str(e, "taskId")
    out["contextId"] = req_str(e, "contextId")
    out["artifact"] = artifact(e.get("artifact"), to_10)
    put_bool(e, "append", out)
    put_bool(e, "lastChunk", out)
    put_meta(e, out)
    return out


# -- push-notification configs --------------------------------------------------------------------


def push_config(value: Any, to_10: bool) -> Obj:
    """0.3 PushNotificationConfig <-> those fields of a flat 1.0 TaskPushNotificationConfig."""
    c = obj(value, "pushNotificationConfig")
    out: Obj = {"url": req_str(c, "url")}
    put_str(c, "id", out)
    put_str(c, "token", out)
    if c.get("authentication") is not None:
        a = obj(c["authentication"], "authentication")
        if to_10:  # 1.0 carries one scheme: the first wins
            schemes = strs(a.get("schemes"), "schemes")
            auth: Obj = {"scheme": schemes[0]} if schemes else {}
        else:
            auth = {"schemes": [s] if (s := str_or_empty(a, "scheme")) else []}
        put_str(a, "credentials", auth)
        out["authentication"] = auth
    return out


def task_push_config(value: Any, to_10: bool) -> Obj:
    c = obj(value, "taskPushNotificationConfig")
    if to_10:
        return {
            "taskId": req_str(c, "taskId"),
            **push_config(c.get("pushNotificationConfig"), True),
        }
    return {"taskId": str_or_empty(c, "taskId"), "pushNotificationConfig": push_config(c, False)}
