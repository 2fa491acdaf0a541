"""Who is calling: the :class:`Identity` authentication produces, and the errors it raises.

Identity is separate from authorization: this module says *who*; ``policy`` says *may they*.
Error hierarchy::

    AuthError                 — the caller could not be authenticated
    ├── InvalidToken          — 401, ``WWW-Authenticate: Bearer error="invalid_token"``
    └── IdentityUnavailable   — 503: the identity provider (JWKS, introspection, key store)
                                cannot be reached and nothing cached can decide (fail closed)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "STRENGTH_KEY",
    "STRENGTH_MFA",
    "STRENGTH_NONE",
    "STRENGTH_SINGLE",
    "AuthError",
    "Identity",
    "IdentityUnavailable",
    "InvalidToken",
    "Kind",
    "Method",
]

Kind = Literal["person", "service"]
Method = Literal["jwt", "introspection", "apikey"]

STRENGTH_NONE = 0
STRENGTH_SINGLE = 1
"""One factor: a password-only login, or a bearer token without any ``amr``."""
STRENGTH_KEY = 1
"""A service account's API key or client-credentials token: possession of one secret."""
STRENGTH_MFA = 2
"""A login whose ``amr`` holds a second factor (RFC 8176), or whose ``acr`` is configured as MFA."""


class AuthError(Exception):
    """The caller could not be authenticated."""


class InvalidToken(AuthError):
    """A credential that is malformed, expired, revoked, badly signed or not for us (401)."""


class IdentityUnavailable(AuthError):
    """The identity provider or key store cannot decide right now (503, fail closed)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller: a person (OIDC login) or a service account.

    ``principal`` is the stable key every component uses for this caller: ``iss|sub`` for
    tokens, ``apikey:<id>`` for API keys. ``token_id`` is the token's ``jti`` when it has one,
    else ``sha256:<prefix>`` of the credential (never the credential itself).
    """

    kind: Kind
    subject: str
    issuer: str
    principal: str
    token_id: str
    method: Method
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    tenant: str | None = None
    client_id: str | None = None
    audience: tuple[str, ...] = ()
    acr: str | None = None
    amr: tuple[str, ...] = ()
    auth_time: int | None = None
    expires_at: int | None = None
    mfa: bool = False
    strength: int = STRENGTH_SINGLE
    # Later work (issue 3 §3, §4): the workload identity and the delegation (``act``) chain.
    spiffe_id: str | None = None
    delegation: tuple[str, ...] = ()

    def record(self) -> dict[str, Any]:
        """The identity context for log lines and decision records (C20); no secrets."""
        out: dict[str, Any] = {
            "principal": self.principal,
            "kind": self.kind,
            "sub": self.subject,
            "iss": self.issuer,
            "jti": self.token_id,
            "auth_method": self.method,
            "amr": list(self.amr),
            "acr": self.acr,
            "auth_time": self.auth_time,
            "mfa": self.mfa,
            "strength": self.strength,
        }
        if self.tenant:
            out["tenant"] = self.tenant
        if self.client_id:
            out["client_id"] = self.client_id
        if self.spiffe_id:
            out["spiffe_id"] = self.spiffe_id
        if self.delegation:
            out["delegation"] = list(self.delegation)
        return out
