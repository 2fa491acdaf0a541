"""Card plumbing shared by validation and signing: limits, JSON forms, the 1.0 view of a card.

Signature payloads. A2A signs the RFC 8785 (JCS) form of the card without ``signatures``, with
unset optional fields dropped. Signers disagree on what "unset" means, so a verifier rebuilds
each form a known signer produces; every form is a pure function of the card as received:

- a2a-sdk 1.x (``a2a/utils/signing.py``): parse into the protobuf ``AgentCard``,
  ``MessageToDict``, drop ``signatures``, remove empty strings/lists/objects recursively, JCS.
  This is the form :func:`sign_card` produces for 1.0 cards.
- a generic JCS signer: the card as received without ``signatures`` (with and without the
  empty-value removal).
- a2a-sdk 0.3.x, for 0.3 cards: the pydantic model dumped ``by_alias``, ``exclude_defaults``
  (with and without ``protocolVersion`` forced back in), empty values removed, then
  ``json.dumps(sort_keys=True, separators=(",", ":"))`` (ASCII-escaped, not strict JCS).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import pydantic
import rfc8785
from a2a.compat.v0_3 import types as v03
from a2a.compat.v0_3.conversions import to_core_agent_card
from a2a.types import a2a_pb2
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError

from maestro_gateway.registry.models import InvalidCard

MAX_DEPTH = 32
MAX_ELEMENTS = 10_000

V03_KEYS = frozenset({"url", "preferredTransport", "protocolVersion", "additionalInterfaces"})
"""Top-level fields only a 0.3 card has; a card with them and no ``supportedInterfaces`` is 0.3."""
COMPAT_KEYS = V03_KEYS | {"supportsAuthenticatedExtendedCard", "security"}
"""0.3 fields a 1.0 server adds beside the 1.0 ones (a2a-sdk ``agent_card_to_dict``): hybrid."""
_COMPAT_SCHEME_KEYS = frozenset(
    {
        "type",
        "in",
        "name",
        "description",
        "scheme",
        "bearerFormat",
        "flows",
        "openIdConnectUrl",
        "oauth2MetadataUrl",
    }
)

_SCALARS = (str, int, float, bool, type(None))


def check_shape(card: Mapping[str, Any]) -> None:
    """Refuse nesting deeper than MAX_DEPTH, more than MAX_ELEMENTS values, or non-JSON values.

    Iterative, so a hostile card cannot exhaust the stack before it is measured.
    """
    stack: list[tuple[Any, int]] = [(card, 1)]
    elements = 0
    while stack:
        value, depth = stack.pop()
        elements += 1
        if elements > MAX_ELEMENTS:
            raise InvalidCard(f"agent card has more than {MAX_ELEMENTS} elements")
        if isinstance(value, dict | list) and depth > MAX_DEPTH:
            raise InvalidCard(f"agent card is nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            children: list[Any] = list(value.values())
            if not all(isinstance(k, str) for k in value):
                raise InvalidCard("agent card has a non-string object key")
        elif isinstance(value, list):
            children = value
        elif isinstance(value, _SCALARS):
            if isinstance(value, float) and not math.isfinite(value):
                raise InvalidCard("agent card contains a number JSON cannot represent")
            continue
        else:
            raise InvalidCard(f"agent card contains a {type(value).__name__}, which is not JSON")
        stack.extend((child, depth + 1) for child in children)


def json_text(card: Mapping[str, Any]) -> str:
    """Compact JSON, key order kept, non-ASCII literal (what is stored and measured)."""
    return json.dumps(card, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def jcs(value: Any) -> bytes:
    """RFC 8785 canonical bytes, or InvalidCard if the value has no canonical form."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise InvalidCard(f"agent card has no RFC 8785 canonical form: {exc}") from exc


def clean_empty(value: Any) -> Any:
    """Drop empty strings, lists, objects and nulls, recursively (as a2a-sdk's ``_clean_empty``)."""
    if isinstance(value, dict):
        cleaned = {k: c for k, v in value.items() if (c := clean_empty(v)) is not None}
        return cleaned or None
    if isinstance(value, list):
        items = [c for v in value if (c := clean_empty(v)) is not None]
        return items or None
    if value == "" and isinstance(value, str):
        return None
    return value


def is_v03(card: Mapping[str, Any]) -> bool:
    """A 0.3 card: 0.3 connection fields and no 1.0 ``supportedInterfaces``."""
    return "supportedInterfaces" not in card and any(k in card for k in V03_KEYS)


def is_hybrid(card: Mapping[str, Any]) -> bool:
    """A 1.0 card that also carries the 0.3 compatibility fields."""
    return "supportedInterfaces" in card and any(k in card for k in COMPAT_KEYS)


def strip_compat(card: Mapping[str, Any]) -> dict[str, Any]:
    """The 1.0 part of a hybrid card: known 0.3 compatibility fields removed, nothing else."""
    out = {k: v for k, v in card.items() if k not in COMPAT_KEYS}
    if not is_hybrid(card):
        return out
    skills = out.get("skills")
    if isinstance(skills, list):
        out["skills"] = [
            {k: v for k, v in s.items() if k != "security"} if isinstance(s, dict) else s
            for s in skills
        ]
    schemes = out.get("securitySchemes")
    if isinstance(schemes, dict):
        out["securitySchemes"] = {
            name: {k: v for k, v in s.items() if k not in _COMPAT_SCHEME_KEYS}
            if isinstance(s, dict)
            else s
            for name, s in schemes.items()
        }
    return out


def parse_v03(card: Mapping[str, Any]) -> v03.AgentCard:
    """The SDK's 0.3 pydantic model, validated strictly from JSON (raises pydantic errors)."""
    return v03.AgentCard.model_validate_json(json_text(card), strict=True)


def core_card(card: Mapping[str, Any]) -> a2a_pb2.AgentCard:
    """The 1.0 protobuf view of a validated card (0.3 cards converted by the SDK)."""
    if is_v03(card):
        return to_core_agent_card(parse_v03(card))
    parsed: a2a_pb2.AgentCard = ParseDict(strip_compat(card), a2a_pb2.AgentCard())
    return parsed


def sdk_form(card: Mapping[str, Any]) -> Any:
    """The dict a2a-sdk 1.x canonicalizes when it signs or verifies this card."""
    as_dict = MessageToDict(core_card(card))
    as_dict.pop("signatures", None)
    return clean_empty(as_dict)


def signing_payloads(card: Mapping[str, Any]) -> list[bytes]:
    """Every payload form a known signer may have signed; the first is the one we sign.

    Raises InvalidCard for a card that does not parse (validate cards before verifying them).
    """
    check_shape(card)
    try:
        return _payloads(card)
    except (ParseError, pydantic.ValidationError, ValueError, TypeError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidCard(
            f"agent card is invalid, so its signature cannot be checked: {first_line}"
        ) from exc


def _payloads(card: Mapping[str, Any]) -> list[bytes]:
    body = {k: v for k, v in card.items() if k != "signatures"}
    forms: list[bytes] = []
    if is_v03(card):
        forms += [jcs(clean_empty(body) or {}), jcs(body)]
        model = parse_v03(card)
        dumped = model.model_dump(
            mode="json", by_alias=True, exclude={"signatures"}, exclude_defaults=True
        )
        forced = {**dumped, "protocolVersion": model.protocol_version}
        for legacy in (dumped, forced):
            text = json.dumps(clean_empty(legacy) or {}, separators=(",", ":"), sort_keys=True)
            forms.append(text.encode())
    else:
        forms += [jcs(sdk_form(card) or {}), jcs(clean_empty(body) or {}), jcs(body)]
    return list(dict.fromkeys(forms))
