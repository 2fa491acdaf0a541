"""The token endpoint's request form (RFC 6749 §3.1 to §3.3, RFC 8693 §2.1) and its errors."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from maestro_gateway.http import BodyTooLarge, header_map, read_body
from maestro_gateway.identity._delegation import TOKEN_TYPE_ACCESS, TOKEN_TYPE_JWT
from maestro_gateway.types import Receive, Scope

__all__ = ["MAX_BODY", "MAX_SKILLS", "ExchangeError", "client_chain", "read_form", "required",
           "skills_of", "token_type"]  # fmt: skip

MAX_BODY = 32 * 1024
MAX_SKILLS = 32
_TOKEN_TYPES = frozenset({TOKEN_TYPE_ACCESS, TOKEN_TYPE_JWT})
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")  # RFC 6749 §3.3


class ExchangeError(Exception):
    """A refused exchange: the OAuth error code, its description and HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


async def read_form(scope: Scope, receive: Receive) -> dict[str, str]:
    headers = header_map(scope)
    ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    try:
        body = await read_body(receive, MAX_BODY)
    except BodyTooLarge:
        raise ExchangeError("invalid_request", f"body larger than {MAX_BODY} bytes", 413) from None
    if ctype != "application/x-www-form-urlencoded":
        raise ExchangeError("invalid_request", "use application/x-www-form-urlencoded")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=16,
                          strict_parsing=bool(body), errors="strict")  # fmt: skip
    except (UnicodeDecodeError, ValueError):
        raise ExchangeError("invalid_request", "the form does not parse") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:  # RFC 6749 §3.2: parameters MUST NOT be repeated
            raise ExchangeError("invalid_request", f"parameter {name!r} is repeated")
        if value:  # RFC 6749 §3.1: an empty parameter counts as omitted
            form[name] = value
    return form


def client_chain(scope: Scope) -> list[str]:
    """The verified client certificate chain (PEM) the server put in the ASGI TLS extension."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    return [c for c in chain if isinstance(c, str)] if isinstance(chain, list | tuple) else []


def required(form: dict[str, str], name: str) -> str:
    value = form.get(name)
    if value is None:
        raise ExchangeError("invalid_request", f"missing parameter {name!r}")
    return value


def token_type(form: dict[str, str], name: str, required: bool) -> None:
    value = form.get(name)
    if value is None and not required:
        return
    if value not in _TOKEN_TYPES:
        raise ExchangeError("invalid_request", f"{name} must be an access_token or jwt type URI")


def skills_of(scope: str | None) -> tuple[str, ...]:
    if scope is None:
        raise ExchangeError("invalid_scope", "scope is required: the skills to delegate")
    parts = scope.split(" ")
    if len(parts) > MAX_SKILLS or not all(_SCOPE_TOKEN.fullmatch(p) for p in parts):
        raise ExchangeError("invalid_scope", f"scope: up to {MAX_SKILLS} space-separated skills")
    return tuple(dict.fromkeys(parts))
