"""Parsing incoming requests into the canonical (A2A 1.0) form."""

from __future__ import annotations

import orjson
import pytest

from maestro_gateway.a2a.errors import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    VERSION_NOT_SUPPORTED,
    A2AError,
)
from maestro_gateway.a2a.rest import route
from maestro_gateway.requests import a2a_version, error_rpc_id, parse_jsonrpc, parse_rest

V10 = {"a2a-version": "1.0"}
MSG = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "hi"}]}


def rpc(method: str, params: object, rid: object = 1) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})


def test_no_version_header_means_03() -> None:
    """A request without A2A-Version is A2A 0.3; 1.0 and 0.3 headers are recognised."""
    assert a2a_version(None) == "0.3"
    assert a2a_version("1.0") == "1.0"
    assert a2a_version("0.3") == "0.3"
    with pytest.raises(A2AError) as info:
        a2a_version("2.1")
    assert info.value.code == VERSION_NOT_SUPPORTED


def test_10_request_parses() -> None:
    """A 1.0 SendMessage keeps its method, params and id."""
    req = parse_jsonrpc(rpc("SendMessage", {"message": MSG}, "abc"), V10)
    assert (req.method, req.version, req.rpc_id) == ("SendMessage", "1.0", "abc")


def test_03_request_is_translated() -> None:
    """A 0.3 message/send becomes SendMessage with 1.0 parts and roles."""
    msg03 = {
        "kind": "message",
        "messageId": "m",
        "role": "user",
        "parts": [{"kind": "text", "text": "hi"}],
    }
    req = parse_jsonrpc(rpc("message/send", {"message": msg03}), {})
    assert req.method == "SendMessage"
    assert req.params["message"]["role"] == "ROLE_USER"
    assert req.params["message"]["parts"][0]["text"] == "hi"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", PARSE_ERROR),
        (b"\xff\xfe{}", PARSE_ERROR),
        (b'"\\ud800"', PARSE_ERROR),
        (b"[]", INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":true,"method":"GetTask"}', INVALID_REQUEST),
        (b'{"jsonrpc":"1.0","id":1,"method":"GetTask"}', INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1,"method":7}', INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1,"method":"GetTask","params":[1]}', INVALID_PARAMS),
        (b'{"jsonrpc":"2.0","id":1,"method":"Nope"}', METHOD_NOT_FOUND),
    ],
)
def test_malformed_requests_get_protocol_errors(body: bytes, code: int) -> None:
    """Malformed JSON-RPC gets the JSON-RPC error code for what is wrong with it."""
    with pytest.raises(A2AError) as info:
        parse_jsonrpc(body, V10)
    assert info.value.code == code


def test_error_keeps_request_id() -> None:
    """Once the id is known, an error carries it back."""
    with pytest.raises(A2AError) as info:
        parse_jsonrpc(rpc("Nope", {}, 42), V10)
    assert error_rpc_id(info.value) == 42


def test_10_method_without_header_gets_a_hint() -> None:
    """A 1.0 method name sent without A2A-Version is refused with a hint to send the header."""
    with pytest.raises(A2AError, match=r"A2A-Version: 1\.0"):
        parse_jsonrpc(rpc("SendMessage", {"message": MSG}), {})


@pytest.mark.parametrize(
    ("http", "path", "query", "method", "params"),
    [
        ("POST", "/message:send", b"", "SendMessage", {"message": MSG}),
        ("POST", "/message:stream", b"", "SendStreamingMessage", {"message": MSG}),
        ("GET", "/tasks/t1", b"historyLength=3", "GetTask", {"id": "t1", "historyLength": 3}),
        (
            "GET",
            "/tasks",
            b"contextId=c&pageSize=5",
            "ListTasks",
            {"contextId": "c", "pageSize": 5},
        ),
        ("POST", "/tasks/t1:cancel", b"", "CancelTask", {"id": "t1"}),
        ("GET", "/tasks/t1:subscribe", b"", "SubscribeToTask", {"id": "t1"}),
        ("POST", "/tasks/t1:subscribe", b"", "SubscribeToTask", {"id": "t1"}),
        (
            "GET",
            "/tasks/t1/pushNotificationConfigs/p",
            b"",
            "GetTaskPushNotificationConfig",
            {"taskId": "t1", "id": "p"},
        ),
        (
            "DELETE",
            "/tasks/t1/pushNotificationConfigs/p",
            b"",
            "DeleteTaskPushNotificationConfig",
            {"taskId": "t1", "id": "p"},
        ),
        (
            "GET",
            "/tasks/t1/pushNotificationConfigs",
            b"",
            "ListTaskPushNotificationConfigs",
            {"taskId": "t1"},
        ),
        ("GET", "/extendedAgentCard", b"", "GetExtendedAgentCard", {}),
        ("GET", "/acme/tasks/t1", b"", "GetTask", {"id": "t1", "tenant": "acme"}),
    ],
)
def test_rest_routes(
    http: str, path: str, query: bytes, method: str, params: dict[str, object]
) -> None:
    """Each REST route maps to its 1.0 method; a leading segment is the tenant."""
    body = {"message": MSG} if method in ("SendMessage", "SendStreamingMessage") else None
    assert route(http, path, query, body) == (method, params)


def test_rest_push_config_create_takes_task_from_path() -> None:
    """POST /tasks/{id}/pushNotificationConfigs puts the path's task id into the params."""
    method, params = route("POST", "/tasks/t9/pushNotificationConfigs", b"", {"url": "https://x"})
    assert method == "CreateTaskPushNotificationConfig"
    assert params == {"url": "https://x", "taskId": "t9"}


@pytest.mark.parametrize(
    ("http", "path", "query"),
    [
        ("PUT", "/message:send", b""),
        ("GET", "/nothing/here/at/all", b""),
        ("GET", "/tasks", b"bogus=1"),
        ("GET", "/tasks", b"pageSize=abc"),
    ],
)
def test_rest_bad_routes(http: str, path: str, query: bytes) -> None:
    """Unknown routes and bad query parameters are A2A errors, not exceptions."""
    with pytest.raises(A2AError):
        parse_rest(http, path, query, b"")
