"""A2A 0.3 <-> 1.0 JSON-RPC translation over plain dicts (no protobuf, no pydantic).

Lets 0.3 clients talk to 1.0 agents and 1.0 clients talk to 0.3 agents. The mapping follows
a2a-sdk 1.3.0 `a2a/compat/v0_3/conversions.py`; where it deliberately differs, it says so.
Inputs are never mutated; outputs may share leaves (metadata, `data`, string lists) with them.
Malformed requests raise `A2AError(INVALID_PARAMS)`, malformed results and stream events
`A2AError(INVALID_AGENT_RESPONSE)`, methods without an equivalent `A2AError(METHOD_NOT_FOUND)`.

Lossy, 0.3 -> 1.0: push `authentication.schemes` keeps only the first; status-update `final` is
dropped (1.0 infers it from the state); `historyLength: 0` (0.3: unlimited) becomes unset;
`metadata` of tasks/get, tasks/resubscribe and push-config get/list/delete params is dropped; an
OAuth2 scheme keeps one flow (the last, as the SDK); card `stateTransitionHistory` is dropped.
1.0 -> 0.3: `tenant` is dropped; push-config list loses `pageSize`/`pageToken`/`nextPageToken`;
`mediaType`/`filename` on text and data parts are dropped; `historyLength: 0` (1.0: no history)
may read as unlimited to a 0.3 agent; card interfaces of other versions, interface `tenant`,
deviceCode flows and `pkceRequired` are dropped. Timestamps and base64 are not re-encoded
(except URL-safe/unpadded 1.0 `raw`, normalised for 0.3), unlike the SDK's protobuf round trip.
Card `signatures` are copied as the SDK does, but cannot verify over the translated card: the
gateway must re-sign a card it translates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from maestro_gateway.a2a import compat03_card as pc
from maestro_gateway.a2a import compat03_parts as p
from maestro_gateway.a2a.compat03_parts import Malformed, Obj, obj, put_str, req_str
from maestro_gateway.a2a.errors import (
    INTERNAL_ERROR,
    INVALID_AGENT_RESPONSE,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    A2AError,
)

_T = TypeVar("_T")
Converter = Callable[[Any, bool], Any]  # (value, to_10) -> value


def _guard(code: int, fn: Callable[[Any, bool], _T], value: Any, to_10: bool) -> _T:
    try:
        return fn(value, to_10)
    except Malformed as exc:
        raise A2AError(code, str(exc)) from None
    except (TypeError, KeyError, IndexError, AttributeError, ValueError) as exc:  # backstop
        raise A2AError(code, f"malformed A2A payload ({type(exc).__name__})") from exc


# -- requests -------------------------------------------------------------------------------------


def _history_length(src: Obj, out: Obj, to_10: bool) -> None:
    value = src.get("historyLength")
    if value is not None:
        if type(value) is not int or not -(2**31) <= value < 2**31:
            raise Malformed("'historyLength' must be a 32-bit integer")
        if value or not to_10:  # 0.3 reads 0 as "unlimited": leave it unset in 1.0, as the SDK
            out["historyLength"] = value


_PUSH_KEYS = {  # to_10 -> (input key, output key) of a configuration's push config
    True: ("pushNotificationConfig", "taskPushNotificationConfig"),
    False: ("taskPushNotificationConfig", "pushNotificationConfig"),
}


def _configuration(value: Any, to_10: bool) -> Obj:
    c = obj(value, "configuration")
    out: Obj = {}
    p.put_strs(c, "acceptedOutputModes", out)
    key, out_key = _PUSH_KEYS[to_10]
    if c.get(key) is not None:
        out[out_key] = p.push_config(c[key], to_10)
    _history_length(c, out, to_10)
    if to_10:
        if c.get("blocking") is not None:
            out["returnImmediately"] = not p.boolean(c, "blocking")
    else:  # explicit for 0.3, whose implementations disagree on the default
        out["blocking"] = not (
            c.get("returnImmediately") is not None and p.boolean(c, "returnImmediately")
        )
    return out


def _send(value: Any, to_10: bool) -> Obj:
    src = obj(value, "params")
    out: Obj = {"message": p.message(src.get("message"), to_10)}
    if src.get("configuration") is not None:
        out["configuration"] = _configuration(src["configuration"], to_10)
    p.put_meta(src, out)
    return out


def _get_task(value: Any, to_10: bool) -> Obj:
    src = obj(value, "params")
    out: Obj = {"id": req_str(src, "id")}
    _history_length(src, out, to_10)
    return out


def _rename(required: dict[str, str], optional: dict[str, str], meta: bool = False) -> Converter:
    """Flat params: `{0.3 name: 1.0 name}` for required and optional strings."""

    def convert(value: Any, to_10: bool) -> Obj:
        src = obj(value, "params")
        out: Obj = {}
        for k03, k10 in required.items():
            out[k10 if to_10 else k03] = req_str(src, k03 if to_10 else k10)
        for k03, k10 in optional.items():
            put_str(src, k03 if to_10 else k10, out, k10 if to_10 else k03)
        if meta:
            p.put_meta(src, out)
        return out

    return convert


def _card_params(value: Any, to_10: bool) -> Obj:
    if value is not None and not isinstance(value, dict):
        raise Malformed("params must be an object")
    return {}  # 0.3 defines no params here; {} keeps the request valid JSON-RPC either way


_TASK_ID = {"id": "taskId"}
_REQUESTS: dict[str, tuple[str, Converter]] = {  # 0.3 method -> (1.0 method, params converter)
    "message/send": ("SendMessage", _send),
    "message/stream": ("SendStreamingMessage", _send),
    "tasks/get": ("GetTask", _get_task),
    "tasks/cancel": ("CancelTask", _rename({"id": "id"}, {}, meta=True)),
    "tasks/resubscribe": ("SubscribeToTask", _rename({"id": "id"}, {})),
    "tasks/pushNotificationConfig/set": ("CreateTaskPushNotificationConfig", p.task_push_config),
    "tasks/pushNotificationConfig/get": (
        "GetTaskPushNotificationConfig",
        _rename(_TASK_ID, {"pushNotificationConfigId": "id"}),
    ),
    "tasks/pushNotificationConfig/list": ("ListTaskPushNotificationConfigs", _rename(_TASK_ID, {})),
    "tasks/pushNotificationConfig/delete": (
        "DeleteTaskPushNotificationConfig",
        _rename({**_TASK_ID, "pushNotificationConfigId": "id"}, {}),
    ),
    "agent/getAuthenticatedExtendedCard": ("GetExtendedAgentCard", _card_params),
}
_REQUESTS_10 = {m10: (m03, fn) for m03, (m10, fn) in _REQUESTS.items()}
METHODS_03_TO_10: dict[str, str] = {m03: m10 for m03, (m10, _) in _REQUESTS.items()}
METHODS_10_TO_03: dict[str, str] = {m10: m03 for m03, m10 in METHODS_03_TO_10.items()}


def _lookup(table: dict[str, _T], method: Any, version: str) -> _T:
    found = table.get(method) if isinstance(method, str) else None
    if found is None:
        raise A2AError(METHOD_NOT_FOUND, f"method {p.show(method)} has no A2A {version} equivalent")
    return found


def request_to_10(method_03: str, params: Any) -> tuple[str, Any]:
    """Translate a 0.3 JSON-RPC request's (method, params) into 1.0's."""
    method_10, convert = _lookup(_REQUESTS, method_03, "1.0")
    return method_10, _guard(INVALID_PARAMS, convert, params, True)


def request_to_03(method_10: str, params: Any) -> tuple[str, Any]:
    """Translate a 1.0 JSON-RPC request's (method, params) into 0.3's."""
    method_03, convert = _lookup(_REQUESTS_10, method_10, "0.3")
    return method_03, _guard(INVALID_PARAMS, convert, params, False)


# -- results and stream events --------------------------------------------------------------------

_EVENTS: dict[str, tuple[str, Converter]] = {  # 0.3 kind -> (1.0 StreamResponse field, converter)
    "task": ("task", p.task),
    "message": ("message", p.message),
    "status-update": ("statusUpdate", p.status_update),
    "artifact-update": ("artifactUpdate", p.artifact_update),
}
_EVENTS_10 = {field: (kind, fn) for kind, (field, fn) in _EVENTS.items()}


def _kind(e: Obj) -> Any:
    """A 0.3 object's `kind`, inferred when absent (as the SDK's pydantic union does)."""
    if "kind" in e:
        return e["kind"]
    if "messageId" in e:
        return "message"
    if "artifact" in e:
        return "artifact-update"
    return "status-update" if "taskId" in e else "task"


def _event(value: Any, to_10: bool, kinds: tuple[str, ...] = tuple(_EVENTS)) -> Obj:
    e = obj(value, "result")
    if to_10:
        kind = _kind(e)
        if not isinstance(kind, str) or kind not in kinds:
            raise Malformed(f"unexpected result kind {p.show(kind)}")
        field, convert = _EVENTS[kind]
        return {field: convert(e, True)}
    fields = [f for f in _EVENTS_10 if e.get(f) is not None]
    if len(fields) != 1 or _EVENTS_10[fields[0]][0] not in kinds:
        raise Malformed(f"result must hold exactly one of {', '.join(kinds)}")
    result: Obj = _EVENTS_10[fields[0]][1](e[fields[0]], False)
    return result


def _send_result(value: Any, to_10: bool) -> Obj:
    return _event(value, to_10, ("task", "message"))


def _list_configs(value: Any, to_10: bool) -> Any:
    if to_10:  # 0.3: a bare array; 1.0: {configs, nextPageToken}
        return {"configs": [p.task_push_config(c, True) for c in p.arr(value, "result")]}
    configs = p.opt(obj(value, "result"), "configs", [])
    return [p.task_push_config(c, False) for c in p.arr(configs, "configs")]


def _null(value: Any, to_10: bool) -> None:
    return None  # DeleteTaskPushNotificationConfig: null in both versions


_RESULTS: dict[str, Converter] = {  # 1.0 method -> result converter
    "SendMessage": _send_result,  # 0.3: a bare Task or Message; 1.0: {task} or {message}
    "SendStreamingMessage": _event,
    "SubscribeToTask": _event,
    "GetTask": p.task,
    "CancelTask": p.task,
    "CreateTaskPushNotificationConfig": p.task_push_config,
    "GetTaskPushNotificationConfig": p.task_push_config,
    "ListTaskPushNotificationConfigs": _list_configs,
    "DeleteTaskPushNotificationConfig": _null,
    "GetExtendedAgentCard": pc.card,
}


def result_to_03(method_10: str, result: Any) -> Any:
    """Translate the `result` of a 1.0 response to `method_10` into the 0.3 result."""
    return _guard(INVALID_AGENT_RESPONSE, _lookup(_RESULTS, method_10, "0.3"), result, False)


def result_to_10(method_10: str, result_03: Any) -> Any:
    """Translate the `result` a 0.3 agent gave for (the 0.3 twin of) `method_10` into 1.0."""
    return _guard(INVALID_AGENT_RESPONSE, _lookup(_RESULTS, method_10, "1.0"), result_03, True)


def stream_event_to_03(event_10: Any) -> Any:
    """Translate one 1.0 StreamResponse (an SSE response's `result`) into the 0.3 event."""
    return _guard(INVALID_AGENT_RESPONSE, _event, event_10, False)


def stream_event_to_10(event_03: Any) -> Any:
    """Translate one 0.3 stream event (task, message, status-update, artifact-update) into 1.0."""
    return _guard(INVALID_AGENT_RESPONSE, _event, event_03, True)


def error_to_03(error: dict[str, Any]) -> dict[str, Any]:
    """Make a 1.0 JSON-RPC error object acceptable to a 0.3 client.

    Shared codes mean the same in both versions and 0.3 `data` is free-form, so the object is
    returned as is, ErrorInfo list included; only the codes 0.3 lacks (-32008 extension support
    required, -32009 version not supported) become -32603 like in the SDK's 0.3 adapter, the
    ErrorInfo `reason` in `data` still naming the original error.
    """
    if not isinstance(error, dict) or type(error.get("code")) is not int:
        raise A2AError(INVALID_AGENT_RESPONSE, "error must be an object with an integer code")
    return {**error, "code": INTERNAL_ERROR} if error["code"] in (-32008, -32009) else error


# -- building blocks ------------------------------------------------------------------------------


def part_to_10(part: Any, code: int = INVALID_PARAMS) -> dict[str, Any]:
    """0.3 TextPart/FilePart/DataPart -> 1.0 Part."""
    return _guard(code, p.part, part, True)


def part_to_03(part: Any, code: int = INVALID_PARAMS) -> dict[str, Any]:
    """1.0 Part -> 0.3 part with its `kind`."""
    return _guard(code, p.part, part, False)


def message_to_10(message: Any, code: int = INVALID_PARAMS) -> dict[str, Any]:
    """0.3 Message -> 1.0 Message."""
    return _guard(code, p.message, message, True)


def message_to_03(message: Any, code: int = INVALID_PARAMS) -> dict[str, Any]:
    """1.0 Message -> 0.3 Message."""
    return _guard(code, p.message, message, False)


def task_to_10(task: Any, code: int = INVALID_AGENT_RESPONSE) -> dict[str, Any]:
    """0.3 Task -> 1.0 Task."""
    return _guard(code, p.task, task, True)


def task_to_03(task: Any, code: int = INVALID_AGENT_RESPONSE) -> dict[str, Any]:
    """1.0 Task -> 0.3 Task."""
    return _guard(code, p.task, task, False)


def card_to_10(card: Any, code: int = INVALID_AGENT_RESPONSE) -> dict[str, Any]:
    """0.3 AgentCard -> 1.0 AgentCard."""
    return _guard(code, pc.card, card, True)


def card_to_03(card: Any, code: int = INVALID_AGENT_RESPONSE) -> dict[str, Any]:
    """1.0 AgentCard -> 0.3 AgentCard, from its 0.3 interfaces (or all, if it has none)."""
    return _guard(code, pc.card, card, False)


def _state(value: Any, to_10: bool) -> str:
    return p.lookup(p.STATE_TO_10 if to_10 else p.STATE_TO_03, value, "task state")


def state_to_10(state: Any, code: int = INVALID_PARAMS) -> str:
    """0.3 task state ("input-required") -> 1.0 ("TASK_STATE_INPUT_REQUIRED")."""
    return _guard(code, _state, state, True)


def state_to_03(state: Any, code: int = INVALID_PARAMS) -> str:
    """1.0 task state -> 0.3 ("TASK_STATE_UNSPECIFIED" is "unknown")."""
    return _guard(code, _state, state, False)
