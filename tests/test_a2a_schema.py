"""The generated A2A 1.0 JSON Schema and the fastjsonschema-based validator."""

from __future__ import annotations

import copy
import importlib.util
import itertools
import timeit
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

import fastjsonschema
import jsonschema
import pytest
from a2a.types import a2a_pb2 as pb
from google.protobuf import struct_pb2, timestamp_pb2
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message as ProtoMessage

from maestro_gateway.a2a import schema, schemagen
from maestro_gateway.a2a.errors import INVALID_PARAMS, METHOD_NOT_FOUND, A2AError

ROOT = Path(__file__).resolve().parents[1]


def _struct(**fields: Any) -> struct_pb2.Struct:
    value = struct_pb2.Struct()
    value.update(fields)
    return value


def _send_params() -> dict[str, Any]:
    data = struct_pb2.Value()
    data.struct_value.update({"rows": [1, 2, 3], "ok": True})
    request = pb.SendMessageRequest(
        tenant="acme",
        message=pb.Message(
            message_id="0b6c1f0e-1d5e-4a7b-9b2a-6c3d2e1f0a9b",
            context_id="ctx-1",
            role=pb.ROLE_USER,
            parts=[
                pb.Part(text="Please summarise the attached report. " * 8),
                pb.Part(raw=b"\x00\x01binary" * 8, media_type="application/octet-stream"),
                pb.Part(url="https://example.com/report.pdf", filename="report.pdf"),
                pb.Part(data=data, metadata=_struct(source="crm")),
            ],
            metadata=_struct(trace="abc", depth=2),
            extensions=["https://example.com/ext/v1"],
        ),
        configuration=pb.SendMessageConfiguration(
            accepted_output_modes=["text/plain", "application/json"], history_length=5
        ),
        metadata=_struct(client="test"),
    )
    params: dict[str, Any] = MessageToDict(request)
    return params


def _agent_card() -> dict[str, Any]:
    flows = pb.OAuthFlows(
        client_credentials=pb.ClientCredentialsOAuthFlow(
            token_url="https://auth.example.com/token", scopes={"agent:call": "call the agent"}
        )
    )
    card = pb.AgentCard(
        name="Report Agent",
        description="Summarises reports.",
        supported_interfaces=[
            pb.AgentInterface(
                url="https://agent.example.com/a2a",
                protocol_binding="JSONRPC",
                protocol_version="1.0",
            )
        ],
        provider=pb.AgentProvider(url="https://example.com", organization="Example"),
        version="1.2.0",
        documentation_url="https://example.com/docs",
        capabilities=pb.AgentCapabilities(
            streaming=True,
            push_notifications=False,
            extensions=[pb.AgentExtension(uri="https://example.com/ext/v1", required=False)],
        ),
        security_schemes={
            "oauth": pb.SecurityScheme(oauth2_security_scheme=pb.OAuth2SecurityScheme(flows=flows)),
            "key": pb.SecurityScheme(
                api_key_security_scheme=pb.APIKeySecurityScheme(location="header", name="X-Key")
            ),
        },
        security_requirements=[
            pb.SecurityRequirement(schemes={"oauth": pb.StringList(list=["agent:call"])})
        ],
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain", "application/json"],
        skills=[
            pb.AgentSkill(
                id="summarise",
                name="Summarise",
                description="Summarises a document.",
                tags=["reports"],
                examples=["Summarise this PDF"],
            )
        ],
        signatures=[pb.AgentCardSignature(protected="eyJhbGciOiJFUzI1NiJ9", signature="c2ln")],
    )
    result: dict[str, Any] = MessageToDict(card)
    return result


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_schemas", ROOT / "scripts/gen_schemas.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _invalid_message(method: str, params: object) -> str:
    with pytest.raises(A2AError) as caught:
        schema.validate_params(method, params)
    assert caught.value.code == INVALID_PARAMS
    return caught.value.message


def test_checked_in_schema_is_current() -> None:
    """The checked-in a2a-1.0.json is byte-identical to a fresh build from the installed proto."""
    checked_in = resources.files("maestro_gateway").joinpath(schema.SCHEMA_RESOURCE).read_text()
    assert checked_in == schemagen.render_schema(), (
        "src/maestro_gateway/schemas/a2a-1.0.json is stale: run `make schema`"
    )


def test_script_check_mode_detects_stale_file(tmp_path: Path) -> None:
    """gen_schemas.py --check exits 1 on a stale file without touching it, and 0 once written."""
    script = _load_script()
    assert script.build_schema() == schemagen.build_schema()
    target = tmp_path / "a2a-1.0.json"
    target.write_text("{}\n")
    assert script.main(["--check", "--output", str(target)]) == 1
    assert target.read_text() == "{}\n"
    assert script.main(["--output", str(target)]) == 0
    assert script.main(["--check", "--output", str(target)]) == 0


def test_schema_is_valid_draft07_with_every_message() -> None:
    """The document is a valid draft-07 schema defining every message and enum of a2a.proto."""
    document = schemagen.build_schema()
    jsonschema.Draft7Validator.check_schema(document)
    expected = set(pb.DESCRIPTOR.enum_types_by_name)
    for message in pb.DESCRIPTOR.message_types_by_name.values():
        expected.add(message.name)
        expected.update(
            f"{message.name}.{nested.name}"
            for nested in message.nested_types
            if not nested.GetOptions().map_entry
        )
    assert expected == set(document["definitions"])


def test_method_map_matches_sdk() -> None:
    """The methods map covers every 1.0 JSON-RPC method with the SDK's params type."""
    from a2a.server.routes._jsonrpc_schema import METHOD_TYPES

    methods = schemagen.build_schema()["methods"]
    assert {m: t.DESCRIPTOR.name for m, t in METHOD_TYPES.items()} == schemagen.METHOD_PARAMS
    assert {m: ref["$ref"].rsplit("/", 1)[1] for m, ref in methods.items()} == (
        schemagen.METHOD_PARAMS
    )


def test_valid_send_message_params_pass() -> None:
    """SendMessage params serialised from an SDK protobuf (all four part kinds) are accepted."""
    params = _send_params()
    schema.validate_params("SendMessage", params)
    schema.validate_params("SendStreamingMessage", params)


@pytest.mark.parametrize(
    ("method", "request_message"),
    [
        ("GetTask", pb.GetTaskRequest(id="t-1", history_length=0, tenant="acme")),
        (
            "ListTasks",
            pb.ListTasksRequest(
                context_id="ctx-1",
                status=pb.TASK_STATE_WORKING,
                page_size=50,
                status_timestamp_after=timestamp_pb2.Timestamp(seconds=1_700_000_000),
                include_artifacts=True,
            ),
        ),
        ("CancelTask", pb.CancelTaskRequest(id="t-1", metadata=_struct(reason="user"))),
        ("SubscribeToTask", pb.SubscribeToTaskRequest(id="t-1")),
        (
            "CreateTaskPushNotificationConfig",
            pb.TaskPushNotificationConfig(
                task_id="t-1",
                url="https://hooks.example.com/a2a",
                authentication=pb.AuthenticationInfo(scheme="Bearer", credentials="x"),
            ),
        ),
        (
            "GetTaskPushNotificationConfig",
            pb.GetTaskPushNotificationConfigRequest(task_id="t", id="c"),
        ),
        ("ListTaskPushNotificationConfigs", pb.ListTaskPushNotificationConfigsRequest(task_id="t")),
        (
            "DeleteTaskPushNotificationConfig",
            pb.DeleteTaskPushNotificationConfigRequest(task_id="t", id="c"),
        ),
        ("GetExtendedAgentCard", pb.GetExtendedAgentCardRequest()),
    ],
)
def test_valid_params_of_other_methods_pass(method: str, request_message: ProtoMessage) -> None:
    """Params serialised from the SDK's request protobuf pass for every other 1.0 method."""
    schema.validate_params(method, MessageToDict(request_message))


def test_absent_params_are_checked_as_empty_object() -> None:
    """None params pass where nothing is required and name the missing field where it is."""
    schema.validate_params("GetExtendedAgentCard", None)
    assert _invalid_message("GetTask", None) == "params.id: required field missing"


def _drop_message_id(p: dict[str, Any]) -> None:
    del p["message"]["messageId"]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda p: p["message"]["parts"][0].update(url="https://x.example"),
            "params.message.parts[0]: must contain exactly one of text, raw, url, data",
        ),
        (
            lambda p: p["message"]["parts"][1].pop("raw"),
            "params.message.parts[1]: must contain exactly one of text, raw, url, data",
        ),
        (_drop_message_id, "params.message.messageId: required field missing"),
        (
            lambda p: p["message"].update(role="user"),
            "params.message.role: must be one of ROLE_USER, ROLE_AGENT",
        ),
        (
            lambda p: p["message"].update(role="ROLE_UNSPECIFIED"),
            "params.message.role: must be one of ROLE_USER, ROLE_AGENT",
        ),
        (
            lambda p: p["message"]["parts"][0].update(kind="text"),
            "params.message.parts[0].kind: unknown field",
        ),
        (lambda p: p.update(message_id="m"), "params.message_id: unknown field"),
        (
            lambda p: p["message"].update(parts={"text": "hi"}),
            "params.message.parts: must be an array, not an object",
        ),
        (
            lambda p: p["configuration"].update(historyLength="5"),
            "params.configuration.historyLength: must be an integer, not a string",
        ),
        (
            lambda p: p["message"]["parts"][1].update(raw="not base64!"),
            "params.message.parts[1].raw: must be a base64 string (standard or URL-safe alphabet)",
        ),
        (
            lambda p: p["message"].update(contextId=None),
            "params.message.contextId: must be a string, not null",
        ),
    ],
    ids=[
        "two-kinds",
        "no-kind",
        "missing-messageId",
        "role-0.3-style",
        "role-unspecified",
        "unknown-part-field",
        "snake-case-alias",
        "parts-not-array",
        "wrong-type",
        "bad-base64",
        "null",
    ],
)
def test_invalid_send_message_params_name_the_path(
    mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    """Each invalid SendMessage params is refused with INVALID_PARAMS naming the bad path."""
    params = _send_params()
    mutate(params)
    assert _invalid_message("SendMessage", params) == expected


def test_params_must_be_an_object() -> None:
    """A non-object params value is refused at the root path."""
    assert _invalid_message("SendMessage", ["x"]) == "params: must be an object, not an array"


def test_unknown_method_is_method_not_found() -> None:
    """An unknown or 0.3-style method name raises METHOD_NOT_FOUND, not INVALID_PARAMS."""
    for method in ("message/send", "Nope"):
        with pytest.raises(A2AError) as caught:
            schema.validate_params(method, {})
        assert caught.value.code == METHOD_NOT_FOUND


def test_untrusted_keys_are_escaped_and_clipped_in_messages() -> None:
    """Unknown keys with control characters or huge length appear escaped and clipped."""
    params = _send_params()
    params["message"]["evil\nkey" + "x" * 500] = 1
    message = _invalid_message("SendMessage", params)
    assert "\n" not in message
    assert message.startswith('params.message["evil\\nkey')
    assert len(message) < 300


def test_valid_agent_card_passes() -> None:
    """An Agent Card serialised from an SDK protobuf has no schema errors."""
    assert schema.validate_card(_agent_card()) == []


def test_broken_agent_card_lists_every_error() -> None:
    """A broken Agent Card yields one human-readable error per problem, each naming its path."""
    card = _agent_card()
    del card["name"]
    card["capabilities"]["streaming"] = "yes"
    card["skills"][0]["tags"] = "reports"
    card["securitySchemes"]["key"]["httpAuthSecurityScheme"] = {"scheme": "Bearer"}
    card["iconUrl"] = 42
    errors = schema.validate_card(card)
    assert set(errors) == {
        "card.name: required field missing",
        "card.capabilities.streaming: must be a boolean, not a string",
        "card.skills[0].tags: must be an array, not a string",
        "card.securitySchemes.key: must contain at most one of apiKeySecurityScheme, "
        "httpAuthSecurityScheme, oauth2SecurityScheme, openIdConnectSecurityScheme, "
        "mtlsSecurityScheme",
        "card.iconUrl: must be a string, not an integer",
    }


def test_validate_definition_applies_oneof_cardinality() -> None:
    """SendMessageResponse allows at most one payload; StreamResponse requires exactly one."""
    task = {"id": "t-1", "status": {"state": "TASK_STATE_WORKING"}}
    message = {"messageId": "m", "role": "ROLE_AGENT", "parts": [{"text": "hi"}]}
    assert schema.validate_definition("SendMessageResponse", {"task": task}) == []
    assert schema.validate_definition(
        "SendMessageResponse", {"task": task, "message": message}
    ) == ["SendMessageResponse: must contain at most one of task, message"]
    assert schema.validate_definition("StreamResponse", {}) == [
        "StreamResponse: must contain exactly one of task, message, statusUpdate, artifactUpdate"
    ]
    with pytest.raises(KeyError):
        schema.validate_definition("NoSuchType", {})


def test_fast_form_agrees_with_exact_schema() -> None:
    """The rewritten hot-path validator accepts exactly the parts the canonical oneOf accepts."""
    fast = schema._compile("Part", fast_form=True)
    exact = schema._compile("Part")
    kinds = {"text": "t", "raw": "AA==", "url": "https://x", "data": {"k": 1}}
    for size in range(len(kinds) + 1):
        for combo in itertools.combinations(kinds, size):
            part: dict[str, Any] = {k: kinds[k] for k in combo} | {"mediaType": "text/plain"}
            outcomes = []
            for validator in (fast, exact):
                try:
                    validator(copy.deepcopy(part))
                    outcomes.append(True)
                except fastjsonschema.JsonSchemaValueException:
                    outcomes.append(False)
            assert outcomes == [size == 1, size == 1], combo


def test_send_message_validation_is_fast() -> None:
    """Validating ~1 KB of SendMessage params stays far below the 30 µs budget (2x guard)."""
    params = _send_params()
    schema.validate_params("SendMessage", params)
    runs = 2000
    best = min(
        timeit.repeat(lambda: schema.validate_params("SendMessage", params), number=runs, repeat=5)
    )
    assert best / runs < 60e-6
