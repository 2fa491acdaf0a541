"""Agent cards: validation (A2A 1.0 and 0.3), the upstream endpoint, the gateway's rewritten card.

Three card shapes are accepted:

- **1.0**: ``supportedInterfaces``; parsed strictly into the protobuf ``AgentCard`` (unknown
  fields and wrong types refused) and every field the spec marks REQUIRED checked.
- **0.3**: ``url``/``preferredTransport``/``protocolVersion``/``additionalInterfaces`` and no
  ``supportedInterfaces``; validated strictly with the SDK's 0.3 pydantic model, unknown fields
  refused, and converted to 1.0 to check the same REQUIRED fields (the gateway serves it as 1.0).
- **hybrid**: a 1.0 card carrying the 0.3 compatibility fields a 1.0 server adds
  (a2a-sdk ``agent_card_to_dict``). The 1.0 part is authoritative and validated as above; the
  0.3 URLs must repeat 1.0 interface URLs, so the unsigned compatibility part cannot redirect.

Signatures live in :mod:`maestro_gateway.registry.signing` and are re-exported here.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import pydantic
from a2a.types import a2a_pb2
from google.api.field_behavior_pb2 import FieldBehavior, field_behavior
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from google.protobuf.message import Message

from maestro_gateway.registry._canonical import (
    MAX_DEPTH,
    MAX_ELEMENTS,
    check_shape,
    core_card,
    is_hybrid,
    is_v03,
    jcs,
    json_text,
    parse_v03,
    strip_compat,
)
from maestro_gateway.registry.models import InvalidCard, ProtocolVersion
from maestro_gateway.registry.signing import GatewaySigner, sign_card, verify_card_signatures

__all__ = [
    "MAX_CARD_BYTES",
    "MAX_DEPTH",
    "MAX_ELEMENTS",
    "GatewaySigner",
    "InvalidCard",
    "card_endpoint",
    "card_sha256",
    "rewrite_card_for_gateway",
    "sign_card",
    "validate_card",
    "verify_card_signatures",
]

MAX_CARD_BYTES = 256 * 1024
_V03_VERSION = re.compile(r"0\.3(\.\d+)?")
_V10_VERSION = re.compile(r"1(\.0(\.\d+)?)?")


def validate_card(card: object, *, max_bytes: int = MAX_CARD_BYTES) -> dict[str, Any]:
    """A deep copy of ``card`` if it is an acceptable A2A 1.0, 0.3 or hybrid card.

    Raises InvalidCard naming the first problem: not an object, too deep or too many elements,
    too large, no canonical JSON form, or invalid for its protocol version.
    """
    if not isinstance(card, dict):
        raise InvalidCard(f"agent card must be a JSON object, not {_json_type(card)}")
    check_shape(card)
    size = len(json_text(card).encode())
    if size > max_bytes:
        raise InvalidCard(f"agent card is {size} bytes, more than the {max_bytes} allowed")
    jcs(card)
    if is_v03(card):
        _validate_v03(card)
    else:
        _validate_v10(card)
    return copy.deepcopy(card)


def card_sha256(card: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the card's RFC 8785 form, signatures included: pins the exact card."""
    return hashlib.sha256(jcs(card)).hexdigest()


def card_endpoint(card: Mapping[str, Any]) -> tuple[str, ProtocolVersion]:
    """``(url, protocol_version)`` of the card's JSON-RPC interface; 1.0 preferred over 0.3."""
    candidates: list[tuple[Any, Any, Any]] = []
    if is_v03(card):
        version = card.get("protocolVersion", "0.3.0")
        candidates.append((card.get("url"), card.get("preferredTransport") or "JSONRPC", version))
        extra = card.get("additionalInterfaces") or []
        for iface in extra if isinstance(extra, list) else []:
            if isinstance(iface, dict):
                candidates.append((iface.get("url"), iface.get("transport"), version))
    else:
        interfaces = card.get("supportedInterfaces")
        for iface in interfaces if isinstance(interfaces, list) else []:
            if isinstance(iface, dict):
                candidates.append(
                    (iface.get("url"), iface.get("protocolBinding"), iface.get("protocolVersion"))
                )
    found: dict[ProtocolVersion, str] = {}
    for url, binding, version in candidates:
        normalized = _protocol_version(version)
        if str(binding).upper() == "JSONRPC" and normalized and normalized not in found:
            found[normalized] = _http_url(url)
    for wanted in ("1.0", "0.3"):
        if wanted in found:
            return found[wanted], wanted
    raise InvalidCard("agent card declares no JSONRPC interface for A2A 1.0 or 0.3")


def rewrite_card_for_gateway(
    card: Mapping[str, Any], gateway_base_url: str, agent_id: str
) -> dict[str, Any]:
    """The card clients get from the gateway: A2A 1.0, interfaces on the gateway, unsigned.

    ``{gateway}/agents/{agent_id}`` serves JSON-RPC and ``…/rest`` HTTP+JSON, both 1.0; the
    agent's own signatures are dropped (the URLs changed) and 0.3 cards are converted to 1.0.
    Sign the result with :class:`GatewaySigner`; keep the agent's verified original.
    """
    base = f"{_http_url(gateway_base_url).rstrip('/')}/agents/{quote(agent_id, safe='')}"
    proto = core_card(card)
    del proto.supported_interfaces[:]
    del proto.signatures[:]
    for url, binding in ((base, "JSONRPC"), (f"{base}/rest", "HTTP+JSON")):
        proto.supported_interfaces.add(url=url, protocol_binding=binding, protocol_version="1.0")
    result: dict[str, Any] = MessageToDict(proto)
    return result


def _validate_v10(card: dict[str, Any]) -> None:
    if is_hybrid(card):
        _check_hybrid_urls(card)
    try:
        proto = ParseDict(strip_compat(card), a2a_pb2.AgentCard())
    except ParseError as exc:
        raise InvalidCard(f"agent card is not a valid A2A 1.0 AgentCard: {exc}") from exc
    _require(proto, "A2A 1.0")


def _validate_v03(card: dict[str, Any]) -> None:
    version = card.get("protocolVersion", "0.3.0")
    if not isinstance(version, str) or not _V03_VERSION.fullmatch(version):
        raise InvalidCard(
            f"agent card protocolVersion {version!r} is not supported (A2A 1.0 or 0.3 only)"
        )
    try:
        model = parse_v03(card)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'card'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise InvalidCard(f"agent card is not a valid A2A 0.3 AgentCard: {problems}") from exc
    dumped = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
    unknown = _unknown_paths(card, dumped, "")
    if unknown:
        raise InvalidCard(f"agent card has fields A2A 0.3 does not define: {', '.join(unknown)}")
    _require(core_card(card), "A2A 0.3")


def _check_hybrid_urls(card: Mapping[str, Any]) -> None:
    """The 0.3 compatibility URLs of a hybrid card must all be 1.0 interface URLs."""
    declared = {i.get("url") for i in card.get("supportedInterfaces") or [] if isinstance(i, dict)}
    extra = card.get("additionalInterfaces") or []
    urls = [card.get("url")] if "url" in card else []
    urls += [i.get("url") if isinstance(i, dict) else i for i in extra]
    for url in urls:
        if url not in declared:
            raise InvalidCard(
                f"agent card 0.3 URL {url!r} is not one of its supportedInterfaces URLs"
            )


def _require(proto: a2a_pb2.AgentCard, flavour: str) -> None:
    missing = _missing_required(proto, "")
    if missing:
        raise InvalidCard(
            f"agent card is not a valid {flavour} AgentCard: required fields missing or empty: "
            + ", ".join(missing)
        )


def _missing_required(msg: Message, prefix: str) -> list[str]:
    """Paths of fields the A2A proto marks REQUIRED that are unset or empty."""
    missing: list[str] = []
    for field in msg.DESCRIPTOR.fields:
        path = prefix + field.json_name
        value = getattr(msg, field.name)
        if FieldBehavior.REQUIRED in field.GetOptions().Extensions[field_behavior]:
            if field.is_repeated:
                if not len(value):
                    missing.append(path)
            elif field.has_presence:
                if not msg.HasField(field.name):
                    missing.append(path)
            elif value == field.default_value:
                missing.append(path)
        sub = field.message_type
        if sub is None or sub.full_name.startswith("google.protobuf."):
            continue
        if sub.GetOptions().map_entry:
            for key, item in value.items():
                if isinstance(item, Message):
                    missing += _missing_required(item, f"{path}[{key!r}].")
        elif field.is_repeated:
            for index, item in enumerate(value):
                missing += _missing_required(item, f"{path}[{index}].")
        elif msg.HasField(field.name):
            missing += _missing_required(value, f"{path}.")
    return missing


def _unknown_paths(given: Any, known: Any, path: str) -> list[str]:
    """Paths present in ``given`` that the model dropped (so the model does not define them)."""
    if isinstance(given, dict) and isinstance(known, dict):
        out: list[str] = []
        for key, value in given.items():
            child = f"{path}.{key}" if path else key
            out += _unknown_paths(value, known[key], child) if key in known else [child]
        return out
    if isinstance(given, list) and isinstance(known, list):
        pairs = zip(given, known, strict=False)
        return [p for i, (g, k) in enumerate(pairs) for p in _unknown_paths(g, k, f"{path}[{i}]")]
    return []


def _protocol_version(version: Any) -> ProtocolVersion | None:
    if isinstance(version, str) and _V10_VERSION.fullmatch(version):
        return "1.0"
    if isinstance(version, str) and _V03_VERSION.fullmatch(version):
        return "0.3"
    return None


def _http_url(url: Any) -> str:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidCard(f"{url!r} is not an absolute http(s) URL")
    return str(url)


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else "not JSON")
