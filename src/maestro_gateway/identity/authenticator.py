"""From request headers to an :class:`Identity`: the one entry point of authentication.

A request carries at most one credential: ``Authorization: Bearer <token>`` or the API-key
header. The token's shape picks the check: ``mgk_…`` → API key store; three dot-separated
parts → JWT from a trusted issuer; anything else → RFC 7662 introspection (opaque tokens).
No credential → ``None`` (the guard decides whether anonymous callers may pass).

Delegated tokens (C16, minted by the gateway's own token exchange, docs/delegation.md) are
trusted once the exchange binds them (:meth:`Authenticator.trust_delegated`), and only where
the caller says which agent is being called (``agent``): the data plane. Everywhere else (admin
API, grant requests, an exchange's actor) a delegated token is refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from maestro_gateway.identity._delegation import DelegatedTokens
from maestro_gateway.identity._http import IdpClient
from maestro_gateway.identity.apikeys import ApiKeyStore, looks_like_api_key
from maestro_gateway.identity.config import IdentityConfig, IssuerConfig
from maestro_gateway.identity.introspect import Introspector
from maestro_gateway.identity.jwks import JwksCache
from maestro_gateway.identity.model import Identity, IdentityUnavailable, InvalidToken
from maestro_gateway.identity.oidc import MAX_TOKEN_BYTES, JwtValidator, looks_like_jwt
from maestro_gateway.identity.revocation import JtiDenyList

__all__ = ["Authenticator", "bearer_token"]


def bearer_token(value: str) -> str:
    """The token of an ``Authorization: Bearer`` header value; InvalidToken otherwise."""
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise InvalidToken("Authorization must be 'Bearer <token>'")
    return token


class Authenticator:
    """Validates credentials against the configured issuers, introspection and API keys."""

    def __init__(self, cfg: IdentityConfig, clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.http = IdpClient()
        self.denylist = JtiDenyList(cfg.revoked_jti_file, clock=clock)
        self.keys: dict[str, JwksCache] = {i.issuer: JwksCache(i, self.http) for i in cfg.issuers}
        pairs: list[tuple[IssuerConfig, JwksCache]] = [
            (i, self.keys[i.issuer]) for i in cfg.issuers
        ]
        self.jwt = JwtValidator(
            {c.issuer: (c, k) for c, k in pairs},
            self.denylist,
            cfg.second_factors,
            clock,
            cfg.verified_token_cache_s,
        )
        self.introspector = Introspector(pairs, self.http, self.denylist, cfg.second_factors, clock)
        ak = cfg.api_keys
        self.api_keys = (
            ApiKeyStore(ak.path, ak.scrypt_n, ak.verify_cache_s, ak.reload_s, clock)
            if ak.path
            else None
        )
        self._key_header = ak.header.lower()
        self.delegated: DelegatedTokens | None = None

    def trust_delegated(self, tokens: DelegatedTokens) -> None:
        """Accept the gateway's own delegated tokens (called when the exchange is enabled)."""
        self.delegated = tokens

    @property
    def configured(self) -> bool:
        return self.cfg.configured

    async def authenticate(
        self, headers: Mapping[str, str], agent: str | None = None
    ) -> Identity | None:
        """The caller's identity, None without credentials; raises AuthError subclasses.

        ``agent``: the agent being called (data plane); a delegated token is accepted only
        for exactly that agent, and never when ``agent`` is None."""
        auth = headers.get("authorization")
        key = headers.get(self._key_header) if self.api_keys is not None else None
        if auth is not None and key is not None:
            raise InvalidToken("send one credential, not both a bearer token and an API key")
        if key is not None:
            token = key.strip()
        elif auth is not None:
            token = bearer_token(auth)
        else:
            return None
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken("credential too large")
        return await self.validate(token, agent)

    async def validate(
        self, token: str, agent: str | None = None, *, any_agent: bool = False
    ) -> Identity:
        """Validate one credential. Delegated tokens need ``agent`` (their audience) or
        ``any_agent`` (the token exchange, re-delegating a delegated subject token)."""
        if self.delegated is not None and self.delegated.issued_here(token):
            ident = self.delegated.verify(token, self.denylist.revoked)  # and its lineage
            if not any_agent and (agent is None or agent not in ident.audience):
                raise InvalidToken(f"delegated token is valid only for agent {ident.audience[0]!r}")
            return ident
        if looks_like_api_key(token):
            if self.api_keys is None:
                raise InvalidToken("API keys are not accepted here")
            try:
                return await self.api_keys.verify(token)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise IdentityUnavailable(
                    f"API key store unreadable: {type(exc).__name__}"
                ) from None
        if looks_like_jwt(token):
            return await self.jwt.validate(token)
        return await self.introspector.validate(token)

    async def aclose(self) -> None:
        await self.http.aclose()
