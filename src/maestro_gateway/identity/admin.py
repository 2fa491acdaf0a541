"""Bearer JWTs on the admin API: a person (or service) from a trusted issuer as the actor.

The admin API keeps its bootstrap access (the static admin token, or loopback callers); in
addition a bearer JWT from a configured issuer is accepted when its roles or groups include one
of ``identity.admin_roles``. The resulting :class:`Identity` goes into the request state
(``request.state.identity``) for the Cedar authorization of each admin action (MFA, role,
four-eyes, tenant) and becomes the recorded actor (``iss|sub``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from maestro_gateway.identity.authenticator import Authenticator, bearer_token
from maestro_gateway.identity.mfa import bearer_challenge
from maestro_gateway.identity.model import Identity, IdentityUnavailable, InvalidToken
from maestro_gateway.identity.oidc import looks_like_jwt

__all__ = ["AdminAuth", "Refusal"]


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    message: str
    challenge: str | None = None


class AdminAuth:
    def __init__(self, authenticator: Authenticator | None) -> None:
        self._auth = authenticator if authenticator and authenticator.cfg.issuers else None
        cfg = authenticator.cfg if authenticator else None
        self._roles = frozenset(cfg.admin_roles) if cfg else frozenset()
        self._realm = cfg.realm if cfg else "maestro-gateway"

    async def check(self, headers: Mapping[str, str]) -> Identity | Refusal | None:
        """The JWT's identity; a Refusal for a bad or unprivileged one; None without a JWT."""
        value = headers.get("authorization")
        if self._auth is None or value is None:
            return None
        try:
            token = bearer_token(value)
        except InvalidToken:
            return None
        if not looks_like_jwt(token):
            return None  # e.g. the static admin token
        try:
            ident = await self._auth.validate(token)
        except InvalidToken as exc:
            challenge = bearer_challenge(self._realm, "invalid_token", str(exc))
            return Refusal(401, f"invalid bearer token: {exc}", challenge)
        except IdentityUnavailable:
            return Refusal(503, "the identity provider is unavailable (fail-closed)")
        if self._roles and not self._roles & (set(ident.roles) | set(ident.groups)):
            return Refusal(403, "the token carries no admin role")
        return ident
