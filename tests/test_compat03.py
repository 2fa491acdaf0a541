"""A2A 0.3 <-> 1.0 translation (compat03) checked against the a2a-sdk 0.3 compat layer."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from a2a.compat.v0_3 import conversions as conv
from a2a.compat.v0_3 import types as t03
from a2a.types import a2a_pb2 as pb
from google.protobuf.json_format import MessageToDict, ParseDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maestro_gateway.a2a import compat03 as c
from maestro_gateway.a2a.errors import (
    INVALID_AGENT_RESPONSE,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    A2AError,
)

# -- oracle and normalisation ---------------------------------------------------------------------


def prune(value: Any) -> Any:
    """Drop what proto JSON and pydantic `exclude_none` treat as unset: None, "", False, empty
    containers and TASK_STATE_UNSPECIFIED, so both sides compare on meaning."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            item = prune(item)
            if key == "state" and item == "TASK_STATE_UNSPECIFIED":
                continue
            if item is None or item is False or item in ("", [], {}):
                continue
            out[key] = item
        return out
    if isinstance(value, list):
        return [prune(v) for v in value]
    return value


def dump03(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def sdk_to_10(model: Any, convert: Callable[[Any], Any], payload: Any) -> Any:
    """0.3 JSON -> SDK pydantic model -> conversions -> 1.0 protobuf -> JSON."""
    return MessageToDict(convert(model.model_validate(payload)))


def sdk_to_03(proto: Any, convert: Callable[..., Any], payload: Any, *args: Any) -> Any:
    """1.0 JSON -> protobuf -> conversions -> 0.3 pydantic model -> JSON."""
    return dump03(convert(ParseDict(payload, proto()), *args))


def rpc(method: str, params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}


def ok(result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "result": result}


# -- sample payloads (0.3) ------------------------------------------------------------------------

PARTS_03: list[dict[str, Any]] = [
    {"kind": "text", "text": "hello"},
    {"kind": "text", "text": "hi", "metadata": {"lang": "en"}},
    {"kind": "file", "file": {"bytes": "aGVsbG8=", "mimeType": "text/plain", "name": "a.txt"}},
    {"kind": "file", "file": {"uri": "https://files.example.com/f.png", "mimeType": "image/png"}},
    {"kind": "file", "file": {"uri": "https://files.example.com/raw"}},
    {"kind": "data", "data": {"a": 1, "b": [True, "x", {"c": 2.5}]}},
    {"kind": "data", "data": {"k": "v"}, "metadata": {"m": 1}},
    {"kind": "data", "data": {"value": [1, 2]}, "metadata": {"data_part_compat": True}},
]
USER_03: dict[str, Any] = {
    "kind": "message",
    "messageId": "m1",
    "role": "user",
    "parts": PARTS_03,
    "contextId": "c1",
    "taskId": "t1",
    "referenceTaskIds": ["t0"],
    "extensions": ["https://ext.example.com/x"],
    "metadata": {"trace": "abc"},
}
AGENT_03: dict[str, Any] = {
    "kind": "message",
    "messageId": "m2",
    "role": "agent",
    "parts": [{"kind": "text", "text": "done"}],
}
ARTIFACT_03: dict[str, Any] = {
    "artifactId": "a1",
    "name": "report",
    "description": "the report",
    "parts": [PARTS_03[0], PARTS_03[2], PARTS_03[5]],
    "metadata": {"x": 1},
    "extensions": ["https://ext.example.com/x"],
}
STATES_03 = [
    "submitted",
    "working",
    "input-required",
    "auth-required",
    "completed",
    "failed",
    "canceled",
    "rejected",
    "unknown",
]
FINAL = {"completed", "failed", "canceled", "rejected", "input-required", "auth-required"}


def task_03(state: str) -> dict[str, Any]:
    return {
        "kind": "task",
        "id": "t1",
        "contextId": "c1",
        "status": {"state": state, "message": AGENT_03, "timestamp": "2025-01-02T03:04:05Z"},
        "history": [USER_03, AGENT_03],
        "artifacts": [ARTIFACT_03],
        "metadata": {"k": "v"},
    }


TASKS_03 = [task_03(s) for s in STATES_03] + [
    {"kind": "task", "id": "t2", "contextId": "c2", "status": {"state": "submitted"}}
]
PUSH_03: dict[str, Any] = {
    "url": "https://hooks.example.com/a2a",
    "id": "p1",
    "token": "tok",
    "authentication": {"schemes": ["Bearer"], "credentials": "secret"},
}
TASK_PUSH_03: list[dict[str, Any]] = [
    {"taskId": "t1", "pushNotificationConfig": PUSH_03},
    {"taskId": "t1", "pushNotificationConfig": {"url": "https://hooks.example.com/b"}},
]
STATUS_UPDATES_03 = [
    {
        "kind": "status-update",
        "taskId": "t1",
        "contextId": "c1",
        "status": {"state": s, "message": AGENT_03},
        "final": s in FINAL,
        "metadata": {"seq": 3},
    }
    for s in STATES_03
]
ARTIFACT_UPDATES_03 = [
    {
        "kind": "artifact-update",
        "taskId": "t1",
        "contextId": "c1",
        "artifact": ARTIFACT_03,
        "append": True,
        "lastChunk": False,
        "metadata": {"seq": 4},
    },
    {"kind": "artifact-update", "taskId": "t1", "contextId": "c1", "artifact": ARTIFACT_03},
]
EVENTS_03 = [*TASKS_03[:3], AGENT_03, *STATUS_UPDATES_03, *ARTIFACT_UPDATES_03]
CONFIG_03: dict[str, Any] = {
    "acceptedOutputModes": ["text/plain", "application/json"],
    "historyLength": 5,
    "blocking": False,
    "pushNotificationConfig": PUSH_03,
}
CARD_03: dict[str, Any] = {
    "name": "Recipe Agent",
    "description": "Finds recipes",
    "version": "1.2.0",
    "url": "https://agent.example.com/a2a",
    "preferredTransport": "JSONRPC",
    "protocolVersion": "0.3.0",
    "additionalInterfaces": [{"url": "https://agent.example.com/grpc", "transport": "GRPC"}],
    "provider": {"organization": "Example", "url": "https://example.com"},
    "documentationUrl": "https://example.com/docs",
    "iconUrl": "https://example.com/icon.png",
    "capabilities": {
        "streaming": True,
        "pushNotifications": True,
        "extensions": [
            {"uri": "https://ext.example.com/x", "description": "d", "required": True},
            {"uri": "https://ext.example.com/y", "params": {"p": 1}},
        ],
    },
    "supportsAuthenticatedExtendedCard": True,
    "securitySchemes": {
        "key": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "k"},
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
        "oauth": {
            "type": "oauth2",
            "oauth2MetadataUrl": "https://auth.example.com/.well-known/oauth",
            "flows": {
                "authorizationCode": {
                    "authorizationUrl": "https://auth.example.com/authorize",
                    "tokenUrl": "https://auth.example.com/token",
                    "refreshUrl": "https://auth.example.com/refresh",
                    "scopes": {"read": "Read recipes"},
                }
            },
        },
        "cc": {
            "type": "oauth2",
            "flows": {
                "clientCredentials": {"tokenUrl": "https://auth.example.com/token", "scopes": {}}
            },
        },
        "oidc": {"type": "openIdConnect", "openIdConnectUrl": "https://auth.example.com/oidc"},
        "mtls": {"type": "mutualTLS", "description": "client certificate"},
    },
    "security": [{"bearer": []}, {"oauth": ["read"]}],
    "defaultInputModes": ["text/plain"],
    "defaultOutputModes": ["text/plain", "application/json"],
    "skills": [
        {
            "id": "s1",
            "name": "Search",
            "description": "search recipes",
            "tags": ["food"],
            "examples": ["pasta"],
            "inputModes": ["text/plain"],
            "outputModes": ["application/json"],
            "security": [{"oauth": ["read"]}],
        },
        {"id": "s2", "name": "Plan", "description": "plan meals", "tags": []},
    ],
    "signatures": [{"protected": "eyJhbGciOiJFUzI1NiJ9", "signature": "c2ln", "header": {"k": 1}}],
}

# (0.3 method, params) for every method, as a 0.3 client sends them
REQUESTS_03: list[tuple[str, Any]] = [
    ("message/send", {"message": USER_03, "configuration": CONFIG_03, "metadata": {"a": "b"}}),
    ("message/send", {"message": {**AGENT_03, "role": "user"}}),
    ("message/stream", {"message": USER_03, "configuration": {"blocking": True}}),
    ("tasks/get", {"id": "t1", "historyLength": 3}),
    ("tasks/get", {"id": "t1"}),
    ("tasks/cancel", {"id": "t1", "metadata": {"reason": "user"}}),
    ("tasks/cancel", {"id": "t1"}),
    ("tasks/resubscribe", {"id": "t1"}),
    ("tasks/pushNotificationConfig/set", TASK_PUSH_03[0]),
    ("tasks/pushNotificationConfig/set", TASK_PUSH_03[1]),
    ("tasks/pushNotificationConfig/get", {"id": "t1", "pushNotificationConfigId": "p1"}),
    ("tasks/pushNotificationConfig/get", {"id": "t1"}),
    ("tasks/pushNotificationConfig/list", {"id": "t1"}),
    ("tasks/pushNotificationConfig/delete", {"id": "t1", "pushNotificationConfigId": "p1"}),
    ("agent/getAuthenticatedExtendedCard", None),
]

# per 0.3 method: (0.3 request model, SDK to 1.0, 1.0 request proto, SDK to 0.3)
SDK_REQUESTS: dict[str, tuple[Any, Any, Any, Any]] = {
    "message/send": (
        t03.SendMessageRequest,
        conv.to_core_send_message_request,
        pb.SendMessageRequest,
        conv.to_compat_send_message_request,
    ),
    "message/stream": (
        t03.SendStreamingMessageRequest,
        conv.to_core_send_message_request,
        pb.SendMessageRequest,
        conv.to_compat_send_message_request,
    ),
    "tasks/get": (
        t03.GetTaskRequest,
        conv.to_core_get_task_request,
        pb.GetTaskRequest,
        conv.to_compat_get_task_request,
    ),
    "tasks/cancel": (
        t03.CancelTaskRequest,
        conv.to_core_cancel_task_request,
        pb.CancelTaskRequest,
        conv.to_compat_cancel_task_request,
    ),
    "tasks/resubscribe": (
        t03.TaskResubscriptionRequest,
        conv.to_core_subscribe_to_task_request,
        pb.SubscribeToTaskRequest,
        conv.to_compat_subscribe_to_task_request,
    ),
    "tasks/pushNotificationConfig/set": (
        t03.SetTaskPushNotificationConfigRequest,
        conv.to_core_create_task_push_notification_config_request,
        pb.TaskPushNotificationConfig,
        conv.to_compat_create_task_push_notification_config_request,
    ),
    "tasks/pushNotificationConfig/get": (
        t03.GetTaskPushNotificationConfigRequest,
        conv.to_core_get_task_push_notification_config_request,
        pb.GetTaskPushNotificationConfigRequest,
        conv.to_compat_get_task_push_notification_config_request,
    ),
    "tasks/pushNotificationConfig/list": (
        t03.ListTaskPushNotificationConfigRequest,
        conv.to_core_list_task_push_notification_config_request,
        pb.ListTaskPushNotificationConfigsRequest,
        conv.to_compat_list_task_push_notification_config_request,
    ),
    "tasks/pushNotificationConfig/delete": (
        t03.DeleteTaskPushNotificationConfigRequest,
        conv.to_core_delete_task_push_notification_config_request,
        pb.DeleteTaskPushNotificationConfigRequest,
        conv.to_compat_delete_task_push_notification_config_request,
    ),
    "agent/getAuthenticatedExtendedCard": (
        t03.GetAuthenticatedExtendedCardRequest,
        conv.to_core_get_extended_agent_card_request,
        pb.GetExtendedAgentCardRequest,
        conv.to_compat_get_extended_agent_card_request,
    ),
}


def sdk_request_to_10(method: str, params: Any) -> Any:
    model, to_10, _, _ = SDK_REQUESTS[method]
    body = (
        rpc(method, params) if params is not None else {"jsonrpc": "2.0", "id": 1, "method": method}
    )
    return MessageToDict(to_10(model.model_validate(body)))


def sdk_request_to_03(method_03: str, params_10: Any) -> Any:
    _, _, proto, to_03 = SDK_REQUESTS[method_03]
    return dump03(to_03(ParseDict(params_10, proto()), 1)).get("params")


def ids(cases: list[Any]) -> list[str]:
    return [
        f"{i}-{case[0] if isinstance(case, tuple) else case.get('kind', '')}"
        for i, case in enumerate(cases)
    ]


# -- method names ---------------------------------------------------------------------------------


def test_method_tables_match_the_sdk_adapter() -> None:
    """Both method tables list exactly the methods the SDK's JSON-RPC servers serve, 1:1."""
    from a2a.server.routes import jsonrpc_dispatcher as sdk  # imports the 0.3 adapter too

    assert set(c.METHODS_03_TO_10) == set(sdk.JSONRPC03Adapter.METHOD_TO_MODEL)
    assert set(c.METHODS_10_TO_03) == set(sdk.JsonRpcDispatcher.METHOD_TO_MODEL) - {"ListTasks"}
    assert {v: k for k, v in c.METHODS_10_TO_03.items()} == c.METHODS_03_TO_10
    assert c.METHODS_03_TO_10["tasks/resubscribe"] == "SubscribeToTask"


def test_list_tasks_has_no_03_equivalent() -> None:
    """ListTasks and unknown methods are refused with METHOD_NOT_FOUND in both directions."""
    for call in (
        lambda: c.request_to_03("ListTasks", {}),
        lambda: c.result_to_03("ListTasks", {"tasks": []}),
        lambda: c.request_to_10("tasks/list", {}),
        lambda: c.request_to_10(["message/send"], {}),  # type: ignore[arg-type]
    ):
        with pytest.raises(A2AError) as err:
            call()
        assert err.value.code == METHOD_NOT_FOUND


# -- parts, messages, tasks -----------------------------------------------------------------------


@pytest.mark.parametrize("part", PARTS_03, ids=ids(PARTS_03))
def test_part_to_10_agrees_with_sdk(part: dict[str, Any]) -> None:
    """Each 0.3 part kind (text, file bytes, file uri, data, wrapped data) maps like the SDK."""
    ours = c.part_to_10(part)
    assert prune(ours) == prune(sdk_to_10(t03.Part, conv.to_core_part, part))
    assert prune(c.part_to_03(ours)) == prune(part)


PARTS_10: list[dict[str, Any]] = [
    {"text": "hello", "metadata": {"lang": "en"}},
    {"raw": "aGVsbG8=", "mediaType": "text/plain", "filename": "a.txt"},
    {"url": "https://files.example.com/f.png", "mediaType": "image/png"},
    {"data": {"a": 1}},
    {"data": [1, 2, 3]},
    {"data": "scalar"},
    {"data": 3.5, "metadata": {"x": "y"}},
]


@pytest.mark.parametrize("part", PARTS_10)
def test_part_to_03_agrees_with_sdk(part: dict[str, Any]) -> None:
    """Each 1.0 part content (text, raw, url, object and non-object data) maps like the SDK."""
    ours = c.part_to_03(part)
    assert prune(ours) == prune(sdk_to_03(pb.Part, conv.to_compat_part, part))
    assert prune(c.part_to_10(ours)) == prune(part)


def test_raw_bytes_are_normalised_to_standard_base64() -> None:
    """URL-safe, unpadded 1.0 `raw` (valid proto JSON) reaches 0.3 as standard padded base64."""
    part = c.part_to_03({"raw": "-_8"})
    assert part == {"kind": "file", "file": {"bytes": "+/8="}}
    assert sdk_to_03(pb.Part, conv.to_compat_part, {"raw": "-_8"})["file"]["bytes"] == "+/8="


@pytest.mark.parametrize("message", [USER_03, AGENT_03], ids=["user", "agent"])
def test_message_agrees_with_sdk_and_round_trips(message: dict[str, Any]) -> None:
    """A 0.3 message maps to 1.0 like the SDK, back like the SDK, and round-trips unchanged."""
    ours_10 = c.message_to_10(message)
    sdk_10 = sdk_to_10(t03.Message, conv.to_core_message, message)
    assert prune(ours_10) == prune(sdk_10)
    assert ours_10["role"] in ("ROLE_USER", "ROLE_AGENT")
    ours_03 = c.message_to_03(sdk_10)
    assert prune(ours_03) == prune(sdk_to_03(pb.Message, conv.to_compat_message, sdk_10))
    assert prune(ours_03) == prune(message)


@pytest.mark.parametrize("task", TASKS_03, ids=ids(TASKS_03))
def test_task_agrees_with_sdk_and_round_trips(task: dict[str, Any]) -> None:
    """A 0.3 task in each state, with history and artifacts, maps like the SDK both ways."""
    ours_10 = c.task_to_10(task)
    sdk_10 = sdk_to_10(t03.Task, conv.to_core_task, task)
    assert prune(ours_10) == prune(sdk_10)
    ours_03 = c.task_to_03(sdk_10)
    assert prune(ours_03) == prune(sdk_to_03(pb.Task, conv.to_compat_task, sdk_10))
    assert prune(c.task_to_03(ours_10)) == prune(task)


@pytest.mark.parametrize("state", STATES_03)
def test_states_map_both_ways(state: str) -> None:
    """Every 0.3 state has a 1.0 TASK_STATE_* twin that maps back to it."""
    state_10 = c.state_to_10(state)
    assert state_10.startswith("TASK_STATE_")
    assert c.state_to_03(state_10) == state
    core = ParseDict({"state": state_10}, pb.TaskStatus())
    assert dump03(conv.to_compat_task_status(core))["state"] == state


def test_task_without_state_or_context_is_unknown_in_03() -> None:
    """A 1.0 task whose state is omitted (UNSPECIFIED) or absent becomes 0.3 state unknown."""
    assert c.task_to_03({"id": "t", "status": {}})["status"] == {"state": "unknown"}
    assert c.task_to_03({"id": "t"}) == dump03(conv.to_compat_task(pb.Task(id="t")))


# -- stream events --------------------------------------------------------------------------------


@pytest.mark.parametrize("event", EVENTS_03, ids=ids(EVENTS_03))
def test_stream_event_agrees_with_sdk(event: dict[str, Any]) -> None:
    """Each 0.3 stream event type maps into the 1.0 StreamResponse wrapper like the SDK."""
    ours = c.stream_event_to_10(event)
    body = t03.SendStreamingMessageSuccessResponse.model_validate(ok(event))
    sdk_10 = MessageToDict(conv.to_core_stream_response(body))
    assert prune(ours) == prune(sdk_10)
    assert len(ours) == 1
    assert next(iter(ours)) in ("task", "message", "statusUpdate", "artifactUpdate")


@pytest.mark.parametrize("event", EVENTS_03, ids=ids(EVENTS_03))
def test_stream_event_to_03_agrees_with_sdk_and_round_trips(event: dict[str, Any]) -> None:
    """Each 1.0 stream payload maps to the 0.3 event like the SDK (except `final`, see below)."""
    event_10 = c.stream_event_to_10(event)
    ours = c.stream_event_to_03(event_10)
    sdk = dump03(conv.to_compat_stream_response(ParseDict(event_10, pb.StreamResponse()), 1))
    expected = sdk["result"]
    if expected.get("kind") == "status-update":
        expected["final"] = expected["status"]["state"] in FINAL
    assert prune(ours) == prune(expected)
    assert prune(ours) == prune(event)


@pytest.mark.parametrize("state", STATES_03)
def test_final_flag_follows_where_the_10_stream_ends(state: str) -> None:
    """`final` is true on terminal and interrupted states (1.0 streams end there); the SDK
    flags terminal states only."""
    event = {
        "statusUpdate": {"taskId": "t", "contextId": "c", "status": {"state": c.state_to_10(state)}}
    }
    ours = c.stream_event_to_03(event)
    sdk = dump03(conv.to_compat_stream_response(ParseDict(event, pb.StreamResponse()), 1))["result"]
    assert ours["final"] is (state in FINAL)
    if state not in ("input-required", "auth-required"):
        assert ours["final"] is sdk["final"]


def test_stream_event_10_needs_exactly_one_payload() -> None:
    """A 1.0 StreamResponse with none or several payloads is an invalid agent response."""
    task = c.task_to_10(TASKS_03[0])
    for bad in ({}, {"task": task, "message": c.message_to_10(AGENT_03)}, {"kind": "task"}):
        with pytest.raises(A2AError) as err:
            c.stream_event_to_03(bad)
        assert err.value.code == INVALID_AGENT_RESPONSE


# -- requests -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "params"), REQUESTS_03, ids=ids(REQUESTS_03))
def test_request_to_10_agrees_with_sdk(method: str, params: Any) -> None:
    """Every 0.3 request maps to the 1.0 method and params the SDK produces."""
    method_10, ours = c.request_to_10(method, params)
    assert method_10 == c.METHODS_03_TO_10[method]
    assert prune(ours) == prune(sdk_request_to_10(method, params))


@pytest.mark.parametrize(("method", "params"), REQUESTS_03, ids=ids(REQUESTS_03))
def test_request_to_03_agrees_with_sdk_and_round_trips(method: str, params: Any) -> None:
    """Every 1.0 request maps back to the 0.3 method and params like the SDK, round-tripping."""
    method_10 = c.METHODS_03_TO_10[method]
    params_10 = sdk_request_to_10(method, params)
    method_03, ours = c.request_to_03(method_10, params_10)
    assert method_03 == method
    if params is None:  # agent/getAuthenticatedExtendedCard: no params in 0.3, {} is harmless
        assert ours == {}
        return
    expected = sdk_request_to_03(method, params_10)
    assert prune(ours) == prune(expected)
    if "configuration" not in params or "blocking" in params["configuration"]:
        assert prune(ours) == prune(params)


def test_request_tenant_and_paging_are_dropped_for_03() -> None:
    """1.0-only request fields (tenant, pageSize, pageToken) do not reach a 0.3 agent."""
    params = {"tenant": "acme", "taskId": "t1", "pageSize": 10, "pageToken": "x"}
    assert c.request_to_03("ListTaskPushNotificationConfigs", params) == (
        "tasks/pushNotificationConfig/list",
        {"id": "t1"},
    )


def test_blocking_and_history_length_edge_cases() -> None:
    """`blocking` becomes `returnImmediately`, 0.3 historyLength 0 is unset, 1.0 sends blocking."""
    _, p10 = c.request_to_10(
        "message/send",
        {"message": AGENT_03, "configuration": {"blocking": True, "historyLength": 0}},
    )
    assert p10["configuration"] == {"returnImmediately": False}
    _, p03 = c.request_to_03(
        "SendMessage", {"message": c.message_to_10(AGENT_03), "configuration": {}}
    )
    assert p03["configuration"] == {"blocking": True}
    assert c.request_to_10("tasks/get", {"id": "t", "historyLength": 0}) == ("GetTask", {"id": "t"})
    assert c.request_to_03("GetTask", {"id": "t", "historyLength": 0}) == (
        "tasks/get",
        {"id": "t", "historyLength": 0},
    )


def test_push_authentication_keeps_first_scheme() -> None:
    """1.0 holds one push auth scheme: the first 0.3 scheme is kept, as in the SDK."""
    config = {
        "taskId": "t",
        "pushNotificationConfig": {
            "url": "https://h",
            "authentication": {"schemes": ["Basic", "Bearer"]},
        },
    }
    _, ours = c.request_to_10("tasks/pushNotificationConfig/set", config)
    assert ours["authentication"] == {"scheme": "Basic"}
    assert prune(ours) == prune(sdk_request_to_10("tasks/pushNotificationConfig/set", config))


# -- results --------------------------------------------------------------------------------------

# (1.0 method, the result a 0.3 agent returns for its 0.3 twin)
RESULTS_03: list[tuple[str, Any]] = [
    ("SendMessage", TASKS_03[4]),
    ("SendMessage", AGENT_03),
    ("GetTask", TASKS_03[1]),
    ("CancelTask", TASKS_03[6]),
    ("CreateTaskPushNotificationConfig", TASK_PUSH_03[0]),
    ("GetTaskPushNotificationConfig", TASK_PUSH_03[1]),
    ("ListTaskPushNotificationConfigs", TASK_PUSH_03),
    ("ListTaskPushNotificationConfigs", []),
    ("GetExtendedAgentCard", CARD_03),
    ("SendStreamingMessage", STATUS_UPDATES_03[4]),
    ("SubscribeToTask", ARTIFACT_UPDATES_03[0]),
]


def sdk_result_to_10(method: str, result: Any) -> Any:
    if method == "SendMessage":
        return MessageToDict(
            conv.to_core_send_message_response(t03.SendMessageResponse.model_validate(ok(result)))
        )
    if method in ("GetTask", "CancelTask"):
        return sdk_to_10(t03.Task, conv.to_core_task, result)
    if method in ("CreateTaskPushNotificationConfig", "GetTaskPushNotificationConfig"):
        return sdk_to_10(
            t03.TaskPushNotificationConfig, conv.to_core_task_push_notification_config, result
        )
    if method == "ListTaskPushNotificationConfigs":
        body = t03.ListTaskPushNotificationConfigResponse.model_validate(ok(result))
        return MessageToDict(conv.to_core_list_task_push_notification_config_response(body))
    if method == "GetExtendedAgentCard":
        return sdk_to_10(t03.AgentCard, conv.to_core_agent_card, result)
    body = t03.SendStreamingMessageSuccessResponse.model_validate(ok(result))
    return MessageToDict(conv.to_core_stream_response(body))


def sdk_result_to_03(method: str, result: Any) -> Any:
    if method == "SendMessage":
        return sdk_to_03(pb.SendMessageResponse, conv.to_compat_send_message_response, result, 1)[
            "result"
        ]
    if method in ("GetTask", "CancelTask"):
        return sdk_to_03(pb.Task, conv.to_compat_task, result)
    if method in ("CreateTaskPushNotificationConfig", "GetTaskPushNotificationConfig"):
        return sdk_to_03(
            pb.TaskPushNotificationConfig, conv.to_compat_task_push_notification_config, result
        )
    if method == "ListTaskPushNotificationConfigs":
        proto = pb.ListTaskPushNotificationConfigsResponse
        return sdk_to_03(
            proto, conv.to_compat_list_task_push_notification_config_response, result, 1
        )["result"]
    if method == "GetExtendedAgentCard":
        return sdk_to_03(pb.AgentCard, conv.to_compat_agent_card, result)
    return sdk_to_03(pb.StreamResponse, conv.to_compat_stream_response, result, 1)["result"]


@pytest.mark.parametrize(("method", "result"), RESULTS_03, ids=ids(RESULTS_03))
def test_result_agrees_with_sdk_and_round_trips(method: str, result: Any) -> None:
    """Each method's 0.3 result maps to 1.0 like the SDK, back like the SDK, and round-trips."""
    ours_10 = c.result_to_10(method, result)
    sdk_10 = sdk_result_to_10(method, result)
    assert prune(ours_10) == prune(sdk_10)
    ours_03 = c.result_to_03(method, sdk_10)
    assert prune(ours_03) == prune(sdk_result_to_03(method, sdk_10))
    assert prune(c.result_to_03(method, ours_10)) == prune(result)


def test_send_message_result_shapes() -> None:
    """0.3 message/send returns a bare Task or Message; 1.0 SendMessage wraps it in task/message."""
    assert set(c.result_to_10("SendMessage", TASKS_03[0])) == {"task"}
    assert set(c.result_to_10("SendMessage", AGENT_03)) == {"message"}
    assert (
        c.result_to_03("SendMessage", {"message": c.message_to_10(AGENT_03)})["kind"] == "message"
    )
    for bad_03, bad_10 in ((STATUS_UPDATES_03[0], {"statusUpdate": {}}), ({"kind": "x"}, {})):
        with pytest.raises(A2AError):
            c.result_to_10("SendMessage", bad_03)
        with pytest.raises(A2AError):
            c.result_to_03("SendMessage", bad_10)


def test_delete_result_is_null_both_ways() -> None:
    """DeleteTaskPushNotificationConfig answers null in both versions."""
    assert c.result_to_03("DeleteTaskPushNotificationConfig", None) is None
    assert c.result_to_10("DeleteTaskPushNotificationConfig", None) is None


def test_card_without_03_interface_is_kept_for_the_gateway() -> None:
    """A 1.0-only card keeps its interfaces labelled 0.3 (the SDK raises instead)."""
    card_10 = c.card_to_10(CARD_03)
    for iface in card_10["supportedInterfaces"]:
        iface["protocolVersion"] = "1.0"
    card_03 = c.card_to_03(card_10)
    assert (card_03["url"], card_03["protocolVersion"]) == (CARD_03["url"], "0.3")
    mixed = {
        **card_10,
        "supportedInterfaces": [
            *card_10["supportedInterfaces"],
            {"url": "https://old", "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
        ],
    }
    assert c.card_to_03(mixed)["url"] == "https://old"
    assert "additionalInterfaces" not in c.card_to_03(mixed)


def test_card_oauth_keeps_last_flow_like_sdk() -> None:
    """A 0.3 OAuth2 scheme with several flows keeps one (the last) since 1.0 flows are a oneof."""
    flows = {
        k: {"tokenUrl": "https://t", "authorizationUrl": "https://a", "scopes": {}}
        for k in ("authorizationCode", "password")
    }
    card = {**CARD_03, "securitySchemes": {"o": {"type": "oauth2", "flows": flows}}}
    ours = c.card_to_10(card)
    assert list(ours["securitySchemes"]["o"]["oauth2SecurityScheme"]["flows"]) == ["password"]
    assert prune(ours) == prune(sdk_to_10(t03.AgentCard, conv.to_core_agent_card, card))


# -- errors ---------------------------------------------------------------------------------------


def test_error_to_03_keeps_shared_codes_and_remaps_new_ones() -> None:
    """Shared codes and ErrorInfo `data` pass unchanged; 1.0-only codes become -32603."""
    err = A2AError(-32001, "task not found").jsonrpc(1)["error"]
    assert c.error_to_03(err) is err
    new = A2AError(-32009, "version").jsonrpc(1)["error"]
    assert c.error_to_03(new) == {**new, "code": -32603}
    with pytest.raises(A2AError):
        c.error_to_03({"code": "x"})


# -- malformed input: property tests --------------------------------------------------------------

KEYS = sorted(
    {
        "kind",
        "text",
        "file",
        "data",
        "bytes",
        "uri",
        "raw",
        "url",
        "metadata",
        "mimeType",
        "mediaType",
        "name",
        "filename",
        "messageId",
        "role",
        "parts",
        "contextId",
        "taskId",
        "id",
        "status",
        "state",
        "message",
        "history",
        "artifacts",
        "artifact",
        "artifactId",
        "configuration",
        "blocking",
        "historyLength",
        "pushNotificationConfig",
        "authentication",
        "schemes",
        "scheme",
        "statusUpdate",
        "artifactUpdate",
        "task",
        "final",
        "append",
        "lastChunk",
        "configs",
        "pushNotificationConfigId",
        "capabilities",
        "skills",
        "supportedInterfaces",
        "securitySchemes",
        "security",
        "flows",
        "type",
        "in",
        "protocolVersion",
        "data_part_compat",
        "value",
        "returnImmediately",
        "taskPushNotificationConfig",
        "tags",
    }
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), inner, max_size=5)
    ),
    max_leaves=25,
)


def _slots(value: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key) position inside a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield value, key
            yield from _slots(item)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield value, i
            yield from _slots(item)


@st.composite
def mutated(draw: st.DrawFn, samples: list[Any]) -> Any:
    """A valid sample with a few random positions replaced by arbitrary JSON or deleted."""
    value = copy.deepcopy(draw(st.sampled_from(samples)))
    for _ in range(draw(st.integers(1, 3))):
        slots = list(_slots(value))
        if not slots:
            return draw(JSON)
        container, key = draw(st.sampled_from(slots))
        if isinstance(container, dict) and draw(st.booleans()):
            del container[key]
        else:
            container[key] = draw(JSON)
    return value


def _only_a2a_errors(fn: Callable[[Any], Any], value: Any, code: int) -> Any:
    """Call fn: it returns or raises A2AError(code) from our own checks, and leaves input intact."""
    before = copy.deepcopy(value)
    error: A2AError | None = None
    try:
        result = fn(value)
    except A2AError as exc:
        error, result = exc, None
    assert value == before
    if error is not None:
        assert error.code == code
        assert error.__cause__ is None, f"backstop caught {error.__cause__!r}"
    return result


def _unchecked(value: Any) -> bool:
    """Whether value holds base64 or timestamps: compat03 passes them on without re-validating."""
    return "bytes" in repr(value) or "timestamp" in repr(value)


# per 1.0 method: (0.3 success response model, 1.0 result proto)
RESULT_TYPES: dict[str, tuple[Any, Any]] = {
    "SendMessage": (t03.SendMessageSuccessResponse, pb.SendMessageResponse),
    "SendStreamingMessage": (t03.SendStreamingMessageSuccessResponse, pb.StreamResponse),
    "SubscribeToTask": (t03.SendStreamingMessageSuccessResponse, pb.StreamResponse),
    "GetTask": (t03.GetTaskSuccessResponse, pb.Task),
    "CancelTask": (t03.CancelTaskSuccessResponse, pb.Task),
    "CreateTaskPushNotificationConfig": (
        t03.SetTaskPushNotificationConfigSuccessResponse,
        pb.TaskPushNotificationConfig,
    ),
    "GetTaskPushNotificationConfig": (
        t03.GetTaskPushNotificationConfigSuccessResponse,
        pb.TaskPushNotificationConfig,
    ),
    "ListTaskPushNotificationConfigs": (
        t03.ListTaskPushNotificationConfigSuccessResponse,
        pb.ListTaskPushNotificationConfigsResponse,
    ),
    "DeleteTaskPushNotificationConfig": (
        t03.DeleteTaskPushNotificationConfigSuccessResponse,
        pb.DeleteTaskPushNotificationConfigRequest,  # any proto: null never reaches ParseDict
    ),
    "GetExtendedAgentCard": (t03.GetAuthenticatedExtendedCardSuccessResponse, pb.AgentCard),
}
SAMPLES_10 = [c.stream_event_to_10(e) for e in EVENTS_03]
REQUESTS_10 = [c.request_to_10(m, p) for m, p in REQUESTS_03]
FAST = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # CI runs the same cases every time; explore with --hypothesis-seed
    suppress_health_check=[HealthCheck.too_slow],
)


@FAST
@given(
    method=st.sampled_from(sorted(c.METHODS_03_TO_10)),
    params=JSON | mutated([p for _, p in REQUESTS_03 if p]),
)
def test_request_to_10_only_raises_invalid_params(method: str, params: Any) -> None:
    """Any JSON as 0.3 params yields A2AError(INVALID_PARAMS) or 1.0 params the SDK parses."""
    out = _only_a2a_errors(lambda v: c.request_to_10(method, v), params, INVALID_PARAMS)
    if out is not None and not _unchecked(params):
        ParseDict(out[1], SDK_REQUESTS[method][2]())


@FAST
@given(
    method=st.sampled_from(sorted(c.METHODS_10_TO_03)),
    params=JSON | mutated([p for _, p in REQUESTS_10 if p]),
)
def test_request_to_03_only_raises_invalid_params(method: str, params: Any) -> None:
    """Any JSON as 1.0 params yields A2AError(INVALID_PARAMS) or 0.3 params the SDK accepts."""
    out = _only_a2a_errors(lambda v: c.request_to_03(method, v), params, INVALID_PARAMS)
    if out is not None:
        body = rpc(*out)
        SDK_REQUESTS[out[0]][0].model_validate(body)


@FAST
@given(
    method=st.sampled_from(sorted(c.METHODS_10_TO_03)),
    result=JSON | mutated([r for _, r in RESULTS_03 if r]),
)
def test_result_to_10_only_raises_invalid_agent_response(method: str, result: Any) -> None:
    """Any JSON as a 0.3 result yields A2AError(INVALID_AGENT_RESPONSE) or a 1.0 result the
    SDK parses."""
    out = _only_a2a_errors(lambda v: c.result_to_10(method, v), result, INVALID_AGENT_RESPONSE)
    if out is not None and not _unchecked(result):
        ParseDict(out, RESULT_TYPES[method][1]())


@FAST
@given(
    method=st.sampled_from(sorted(c.METHODS_10_TO_03)),
    result=JSON | mutated([c.result_to_10(m, r) for m, r in RESULTS_03 if r]),
)
def test_result_to_03_only_raises_invalid_agent_response(method: str, result: Any) -> None:
    """Any JSON as a 1.0 result yields A2AError(INVALID_AGENT_RESPONSE) or a 0.3 result the
    SDK accepts."""
    out = _only_a2a_errors(lambda v: c.result_to_03(method, v), result, INVALID_AGENT_RESPONSE)
    if out is not None:
        RESULT_TYPES[method][0].model_validate(ok(out))


@FAST
@given(event=JSON | mutated(EVENTS_03))
def test_stream_event_to_10_output_is_accepted_by_the_sdk(event: Any) -> None:
    """Any JSON as a 0.3 event yields A2AError or a 1.0 StreamResponse the SDK can parse."""
    out = _only_a2a_errors(c.stream_event_to_10, event, INVALID_AGENT_RESPONSE)
    if out is not None and not _unchecked(event):
        ParseDict(out, pb.StreamResponse())


@FAST
@given(event=JSON | mutated(SAMPLES_10))
def test_stream_event_to_03_output_is_accepted_by_the_sdk(event: Any) -> None:
    """Any JSON as a 1.0 event yields A2AError or a 0.3 event the SDK's pydantic model accepts."""
    out = _only_a2a_errors(c.stream_event_to_03, event, INVALID_AGENT_RESPONSE)
    if out is not None:
        t03.SendStreamingMessageSuccessResponse.model_validate(ok(out))


@FAST
@given(value=JSON | mutated([*PARTS_03, *PARTS_10, USER_03, *TASKS_03[:2]]))
def test_helpers_only_raise_a2a_errors(value: Any) -> None:
    """The part, message, task, state and card helpers raise only A2AError on any JSON."""
    for fn in (
        c.part_to_10,
        c.part_to_03,
        c.message_to_10,
        c.message_to_03,
        c.state_to_10,
        c.state_to_03,
    ):
        _only_a2a_errors(fn, value, INVALID_PARAMS)
    for fn in (c.task_to_10, c.task_to_03, c.card_to_10, c.card_to_03, c.error_to_03):
        _only_a2a_errors(fn, value, INVALID_AGENT_RESPONSE)


@FAST
@given(card=mutated([CARD_03, c.card_to_10(CARD_03)]))
def test_card_translation_only_raises_a2a_errors(card: Any) -> None:
    """A damaged agent card in either version yields a card or A2AError(INVALID_AGENT_RESPONSE)."""
    _only_a2a_errors(c.card_to_10, card, INVALID_AGENT_RESPONSE)
    _only_a2a_errors(c.card_to_03, card, INVALID_AGENT_RESPONSE)
