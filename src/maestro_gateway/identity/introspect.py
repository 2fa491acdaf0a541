"""RFC 7662 introspection of opaque access tokens, with a cache.

The gateway asks the issuer's introspection endpoint (HTTP Basic client authentication) and
caches the answer by a hash of the token: an active answer until ``cache_ttl_s`` or the token's
``exp``, whichever is sooner; an inactive one for ``negative_cache_ttl_s`` (a flood of made-up
tokens costs the issuer one call per distinct token and interval). An active answer is still
checked here — ``iss`` (when present) must be the issuer, ``aud`` must match when present (or
always with ``require_audience``), ``exp``/``nbf``/``iat`` with the clock skew, and the ``jti``
deny list — so a cached answer cannot outlive its token. The endpoint unreachable →
:class:`IdentityUnavailable` (503, fail closed).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from maestro_gateway.identity._http import IdpClient
from maestro_gateway.identity.config import IntrospectionConfig, IssuerConfig
from maestro_gateway.identity.jwks import JwksCache
from maestro_gateway.identity.model import Identity, IdentityUnavailable, InvalidToken
from maestro_gateway.identity.oidc import (
    check_audience,
    check_times,
    identity_from_claims,
    token_hash,
)
from maestro_gateway.identity.revocation import JtiDenyList

__all__ = ["Introspector"]

_CACHE_MAX = 50_000


class Introspector:
    """Checks opaque tokens at the issuers that have introspection configured, in order."""

    def __init__(
        self,
        issuers: list[tuple[IssuerConfig, JwksCache]],
        http: IdpClient,
        denylist: JtiDenyList,
        second_factors: Iterable[str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuers = [(c, k) for c, k in issuers if c.introspection is not None]
        self._http = http
        self._deny = denylist
        self._second = frozenset(second_factors)
        self._clock = clock
        # token hash → (answer claims or None for inactive, issuer config, cached until)
        self._cache: OrderedDict[str, tuple[dict[str, Any] | None, IssuerConfig, float]] = (
            OrderedDict()
        )
        self.calls = 0

    @property
    def configured(self) -> bool:
        return bool(self._issuers)

    async def validate(self, token: str) -> Identity:
        if not self._issuers:
            raise InvalidToken("opaque tokens are not accepted (no introspection configured)")
        digest = token_hash(token)
        now = self._clock()
        hit = self._cache.get(digest)
        if hit is None or hit[2] <= now:
            hit = await self._ask_all(token, now)
            self._cache[digest] = hit
            if len(self._cache) > _CACHE_MAX:
                self._cache.popitem(last=False)
        claims, cfg, _ = hit
        if claims is None:
            raise InvalidToken("token is not active")
        check_times(cfg, claims, now)
        jti = claims.get("jti")
        token_id = jti if isinstance(jti, str) and jti else digest
        if self._deny.revoked(token_id):
            raise InvalidToken("token revoked")
        return identity_from_claims(cfg, claims, "introspection", token_id, self._second)

    async def _ask_all(
        self, token: str, now: float
    ) -> tuple[dict[str, Any] | None, IssuerConfig, float]:
        for cfg, keys in self._issuers:
            intro = cfg.introspection
            assert intro is not None
            claims = await self._ask(cfg, intro, keys, token)
            if claims is not None:
                exp = claims.get("exp")
                until = now + intro.cache_ttl_s
                if isinstance(exp, (int, float)) and not isinstance(exp, bool):
                    until = min(until, float(exp) + cfg.clock_skew_s)
                return claims, cfg, until
        first = self._issuers[0][0]
        assert first.introspection is not None
        return None, first, now + first.introspection.negative_cache_ttl_s

    async def _ask(
        self, cfg: IssuerConfig, intro: IntrospectionConfig, keys: JwksCache, token: str
    ) -> dict[str, Any] | None:
        endpoint = intro.endpoint
        if endpoint is None:
            endpoint = (await keys.discover()).get("introspection_endpoint")
            if not isinstance(endpoint, str):
                raise IdentityUnavailable(f"issuer {cfg.issuer} names no introspection endpoint")
        self.calls += 1
        answer = await self._http.post_form(
            endpoint,
            {"token": token, "token_type_hint": "access_token"},
            intro.timeout_s,
            (intro.client_id, intro.client_secret),
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("active"), bool):
            raise IdentityUnavailable(f"issuer {cfg.issuer}: malformed introspection answer")
        if not answer["active"]:
            return None
        if answer.get("iss", cfg.issuer) != cfg.issuer:
            return None
        try:
            check_audience(cfg, answer, required=intro.require_audience)
        except InvalidToken:
            return None
        if answer.get("token_type", "Bearer").lower() not in ("bearer", "access_token"):
            return None
        return answer
