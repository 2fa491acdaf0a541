"""Who is calling, until identity lands: ONE rule for every component that keys on a caller.

The identity issue (OIDC principals, JWT ``jti``) will set ``ctx.extra["principal"]`` and
``ctx.extra["token_id"]``; until then a request's principal is its source address, and its
token id is a hash of its bearer token (so a token seen from a new address is recognisable now
and with identity later). Rate limits, detection, playbooks and approvals all use these two
functions, so they agree on who a caller is.
"""

from __future__ import annotations

import hashlib

from maestro_gateway.context import RequestContext

__all__ = ["principal_of", "token_id_from_header", "token_id_of"]

_TOKEN_ID_HEX = 32  # 128 bits of SHA-256: unique enough to key on, not the token itself


def principal_of(ctx: RequestContext) -> str:
    """The request's principal: the authenticated one when set, else the SPIFFE ID of a
    verified client certificate, else ``addr:<source>``."""
    principal = ctx.extra.get("principal")
    if isinstance(principal, str) and principal:
        return principal
    workload = ctx.extra.get("client_spiffe_id")  # a verified client SVID (inbound mTLS)
    if isinstance(workload, str) and workload:
        return workload
    return "addr:" + ctx.client_addr


def token_id_from_header(authorization: str | None) -> str | None:
    """``sha256:<prefix>`` of a ``Bearer`` token in an Authorization header value, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return "sha256:" + hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:_TOKEN_ID_HEX]


def token_id_of(ctx: RequestContext) -> str | None:
    """The request's token id: ``ctx.extra["token_id"]`` (a ``jti``) or a hash of its bearer."""
    token_id = ctx.extra.get("token_id")
    if isinstance(token_id, str) and token_id:
        return token_id
    return token_id_from_header(ctx.headers.get("authorization"))
