"""Generate the A2A 1.0 JSON Schema (draft-07) from the official proto, as shipped in a2a-sdk.

The schema is derived by walking the protobuf descriptors of ``a2a.types.a2a_pb2``
(package ``lf.a2a.v1``) and following the proto3 JSON mapping:

* property names are the fields' ``json_name`` (camelCase); fields annotated
  ``google.api.field_behavior = REQUIRED`` are listed in ``required``. A required enum field
  may not hold its zero (``*_UNSPECIFIED``) value, which proto3 cannot tell from "unset";
* enums are strings (their integer numbers are accepted too, as protojson does);
* ``bytes`` is a base64 string, 64-bit integers are an integer or a decimal string;
* ``Struct`` is a free-form object, ``Value`` anything, ``ListValue`` an array and
  ``Timestamp`` an RFC 3339 string;
* message objects are strict (``additionalProperties: false``); free-form objects only come
  from ``Struct`` fields such as ``metadata``;
* each real oneof group allows at most one member (exactly one for ``Part`` and
  ``StreamResponse``), expressed as a ``oneOf`` of ``required`` branches. A "none of them"
  branch, when allowed, is ``{"not": {"anyOf": [...]}}``. The validator's error messages
  rely on this shape.

``null`` is not accepted anywhere except inside ``Value``/``Struct`` data, and the proto
field names (snake_case) are not accepted as aliases: the gateway is strict on what it
forwards. ``render_schema()`` is deterministic (sorted keys), so the checked-in file can be
compared with a fresh build (``scripts/gen_schemas.py --check``).
"""

from __future__ import annotations

import json
from importlib import metadata
from typing import Any

from a2a.types import a2a_pb2
from google.api import field_behavior_pb2
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

JSON_SCHEMA_DRAFT = "http://json-schema.org/draft-07/schema#"
SCHEMA_FILE = "a2a-1.0.json"

# 1.0 JSON-RPC method -> proto message type of its params; mirrors METHOD_TYPES in
# a2a.server.routes._jsonrpc_schema (a test keeps the two in step).
METHOD_PARAMS: dict[str, str] = {
    "SendMessage": "SendMessageRequest",
    "SendStreamingMessage": "SendMessageRequest",
    "GetTask": "GetTaskRequest",
    "ListTasks": "ListTasksRequest",
    "CancelTask": "CancelTaskRequest",
    "SubscribeToTask": "SubscribeToTaskRequest",
    "CreateTaskPushNotificationConfig": "TaskPushNotificationConfig",
    "GetTaskPushNotificationConfig": "GetTaskPushNotificationConfigRequest",
    "ListTaskPushNotificationConfigs": "ListTaskPushNotificationConfigsRequest",
    "DeleteTaskPushNotificationConfig": "DeleteTaskPushNotificationConfigRequest",
    "GetExtendedAgentCard": "GetExtendedAgentCardRequest",
}

# Messages whose oneof must hold exactly one member; all other oneofs hold at most one.
EXACTLY_ONE: frozenset[str] = frozenset({"Part", "StreamResponse"})

_INT32 = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
_UINT32 = {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
_INT64 = {
    "type": ["integer", "string"],
    "pattern": "^-?[0-9]+$",
    "description": "a 64-bit integer (number or decimal string)",
}
_UINT64 = {
    "type": ["integer", "string"],
    "minimum": 0,
    "pattern": "^[0-9]+$",
    "description": "an unsigned 64-bit integer (number or decimal string)",
}
_FLOAT = {"anyOf": [{"type": "number"}, {"enum": ["NaN", "Infinity", "-Infinity"]}]}
_T = FieldDescriptor
_SCALARS: dict[int, dict[str, Any]] = {
    _T.TYPE_DOUBLE: _FLOAT,
    _T.TYPE_FLOAT: _FLOAT,
    _T.TYPE_INT32: _INT32,
    _T.TYPE_SINT32: _INT32,
    _T.TYPE_SFIXED32: _INT32,
    _T.TYPE_UINT32: _UINT32,
    _T.TYPE_FIXED32: _UINT32,
    _T.TYPE_INT64: _INT64,
    _T.TYPE_SINT64: _INT64,
    _T.TYPE_SFIXED64: _INT64,
    _T.TYPE_UINT64: _UINT64,
    _T.TYPE_FIXED64: _UINT64,
    _T.TYPE_BOOL: {"type": "boolean"},
    _T.TYPE_STRING: {"type": "string"},
    _T.TYPE_BYTES: {
        "type": "string",
        "pattern": "^[A-Za-z0-9+/_-]*={0,2}$",
        "description": "a base64 string (standard or URL-safe alphabet)",
    },
}

_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Timestamp": {
        "type": "string",
        "format": "date-time",
        "description": "an RFC 3339 timestamp",
    },
    "google.protobuf.Duration": {
        "type": "string",
        "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$",
        "description": "a duration such as 1.5s",
    },
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Empty": {"type": "object", "maxProperties": 0},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
    },
}


def _is_required(field: FieldDescriptor) -> bool:
    behaviors = field.GetOptions().Extensions[field_behavior_pb2.field_behavior]
    return field_behavior_pb2.REQUIRED in behaviors


def _def_name(full_name: str) -> str:
    """Definition name: the proto name relative to the package (nested types keep a dot)."""
    prefix = a2a_pb2.DESCRIPTOR.package + "."
    if not full_name.startswith(prefix):
        raise ValueError(f"{full_name} is outside {a2a_pb2.DESCRIPTOR.package}")
    return full_name[len(prefix) :]


def _ref(full_name: str) -> dict[str, Any]:
    return {"$ref": f"#/definitions/{_def_name(full_name)}"}


def _enum_schema(enum: EnumDescriptor, *, exclude_zero: bool = False) -> dict[str, Any]:
    values = [v for v in enum.values if not (exclude_zero and v.number == 0)]
    return {
        "type": ["string", "integer"],
        "enum": [v.name for v in values] + [v.number for v in values],
    }


def _message_type_schema(message: Descriptor) -> dict[str, Any]:
    if message.full_name in _WELL_KNOWN:
        return dict(_WELL_KNOWN[message.full_name])
    if message.full_name.startswith("google.protobuf.") and message.name.endswith("Value"):
        # Wrapper types (StringValue, Int64Value, ...) map to their scalar.
        return dict(_SCALARS[message.fields_by_name["value"].type])
    return _ref(message.full_name)


def _single_schema(field: FieldDescriptor, required: bool) -> dict[str, Any]:
    if field.type == _T.TYPE_MESSAGE:
        return _message_type_schema(field.message_type)
    if field.type == _T.TYPE_ENUM:
        return _enum_schema(field.enum_type, exclude_zero=required)
    if field.type not in _SCALARS:
        raise ValueError(f"unsupported field type {field.type} of {field.full_name}")
    return dict(_SCALARS[field.type])


def _field_schema(field: FieldDescriptor) -> dict[str, Any]:
    required = _is_required(field)
    message = field.message_type
    if message is not None and message.GetOptions().map_entry:
        key = message.fields_by_name["key"]
        schema: dict[str, Any] = {
            "type": "object",
            "additionalProperties": _single_schema(message.fields_by_name["value"], False),
        }
        if key.type != _T.TYPE_STRING:
            pattern = "^(true|false)$" if key.type == _T.TYPE_BOOL else "^-?[0-9]+$"
            schema["propertyNames"] = {"pattern": pattern}
        return schema
    if field.is_repeated:
        return {"type": "array", "items": _single_schema(field, required)}
    return _single_schema(field, required)


def _oneof_groups(message: Descriptor) -> list[list[str]]:
    """json_names of each real (non-synthetic) oneof's members, in declaration order."""
    proto = descriptor_pb2.DescriptorProto()
    message.CopyToProto(proto)
    synthetic = {f.name for f in proto.field if f.proto3_optional}
    groups = []
    for oneof in message.oneofs:
        members = [f for f in oneof.fields if f.name not in synthetic]
        if members:
            groups.append([f.json_name for f in members])
    return groups


def _oneof_constraint(members: list[str], exactly_one: bool) -> list[dict[str, Any]]:
    branches: list[dict[str, Any]] = [{"required": [name]} for name in members]
    if not exactly_one:
        branches.append({"not": {"anyOf": [{"required": [name]} for name in members]}})
    return branches


def _message_schema(message: Descriptor) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "title": message.full_name,
        "type": "object",
        "properties": {f.json_name: _field_schema(f) for f in message.fields},
        "additionalProperties": False,
    }
    required = [f.json_name for f in message.fields if _is_required(f)]
    if required:
        schema["required"] = required
    exactly_one = _def_name(message.full_name) in EXACTLY_ONE
    groups = [_oneof_constraint(g, exactly_one) for g in _oneof_groups(message)]
    if len(groups) == 1:
        schema["oneOf"] = groups[0]
    elif groups:
        schema["allOf"] = [{"oneOf": g} for g in groups]
    return schema


def _walk(message: Descriptor, out: dict[str, Any]) -> None:
    if message.GetOptions().map_entry:
        return  # map entries are JSON objects of their parent field, not messages
    out[_def_name(message.full_name)] = _message_schema(message)
    for enum in message.enum_types:
        out[_def_name(enum.full_name)] = {"title": enum.full_name, **_enum_schema(enum)}
    for nested in message.nested_types:
        _walk(nested, out)


def build_schema() -> dict[str, Any]:
    """The A2A 1.0 JSON Schema document: ``definitions`` for every message and enum of
    a2a.proto, and ``methods`` mapping each 1.0 JSON-RPC method to its params type."""
    file = a2a_pb2.DESCRIPTOR
    definitions: dict[str, Any] = {}
    for enum in file.enum_types_by_name.values():
        definitions[_def_name(enum.full_name)] = {"title": enum.full_name, **_enum_schema(enum)}
    for message in file.message_types_by_name.values():
        _walk(message, definitions)
    methods = {}
    for method, params in METHOD_PARAMS.items():
        if params not in definitions:
            raise ValueError(f"{method}: no definition for {params}")
        methods[method] = {"$ref": f"#/definitions/{params}"}
    version = metadata.version("a2a-sdk")
    return {
        "$schema": JSON_SCHEMA_DRAFT,
        "title": f"A2A 1.0 ({file.package})",
        "description": (
            f"Generated from {file.name} in a2a-sdk {version} by scripts/gen_schemas.py. "
            "Do not edit: run `make schema`."
        ),
        "definitions": definitions,
        "methods": methods,
    }


def render_schema(schema: dict[str, Any] | None = None) -> str:
    """The schema as deterministic JSON text (sorted keys, two-space indent, final newline)."""
    document = build_schema() if schema is None else schema
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=True) + "\n"
