"""An issuer's signing keys: discovery, then the JWKS, fetched asynchronously and cached.

- The JWKS is re-fetched after ``jwks_cache_ttl_s``; when that fails the cached keys stay in
  use for up to ``jwks_max_stale_s`` (the issuer being down does not log everybody out).
- A token signed with an unknown ``kid`` (the issuer rotated its keys) re-fetches at once —
  but at most once per ``jwks_min_refetch_s``, so a flood of made-up ``kid`` values costs the
  issuer one request per interval, not one per token. Concurrent misses share one fetch.
- With no usable keys and the issuer unreachable, :class:`IdentityUnavailable` (503): the
  gateway fails closed rather than accepting or 500-ing.

Only asymmetric public keys are kept: a JWKS entry of type ``oct`` (a shared secret) or one
carrying private parts is ignored, and a key is used only with an algorithm of its own family
(RSA: RS*/PS*, EC: ES*, OKP: EdDSA) and its own ``alg`` when it names one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, Key
from joserfc.jws import JWSRegistry

from maestro_gateway.identity._http import IdpClient
from maestro_gateway.identity.config import IssuerConfig
from maestro_gateway.identity.model import IdentityUnavailable, InvalidToken

__all__ = ["JwksCache", "discovery_url"]

log = logging.getLogger("maestro_gateway.identity.jwks")

_FAMILY = {"RSA": ("RS", "PS"), "EC": ("ES",), "OKP": ("EdDSA",)}
_PRIVATE = frozenset({"d", "p", "q", "dp", "dq", "qi", "k"})


def _read(path: str) -> bytes:
    """A small local JWKS file (development issuers): a few KB, read inline."""
    return Path(path).read_bytes()


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def _fits(jwk: dict[str, Any], alg: str) -> bool:
    prefixes = _FAMILY.get(str(jwk.get("kty")), ())
    return alg.startswith(prefixes) and jwk.get("alg") in (None, alg)


class JwksCache:
    """The public keys of one issuer, by ``kid``."""

    def __init__(
        self,
        cfg: IssuerConfig,
        http: IdpClient,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self._http = http
        self._clock = clock
        self._keys: dict[str, tuple[dict[str, Any], Key]] = {}
        self._fetched_at = -1e18  # last successful fetch
        self._attempted_at = -1e18  # last attempt, successful or not
        self._lock = asyncio.Lock()
        self._generation = 0
        self._checked: dict[tuple[str | None, str], Key] = {}
        self.version = 0  # changes whenever the key set does (verified-token caches key on it)
        self.fetches = 0
        self.metadata: dict[str, Any] = {}

    async def key(self, kid: str | None, alg: str) -> Key:
        """The key to verify a token with header ``kid``/``alg``; InvalidToken if none."""
        now = self._clock()
        if now - self._fetched_at > self.cfg.jwks_cache_ttl_s:
            await self._refresh_if_due(now, self.cfg.jwks_min_refetch_s)
        found = self._lookup(kid, alg)
        if found is None and now - self._attempted_at >= self.cfg.jwks_min_refetch_s:
            await self._refresh_if_due(now, self.cfg.jwks_min_refetch_s)  # rotation?
            found = self._lookup(kid, alg)
        if found is not None:
            return found
        if not self._keys or now - self._fetched_at > self.cfg.jwks_max_stale_s:
            raise IdentityUnavailable(f"no signing keys for issuer {self.cfg.issuer}")
        raise InvalidToken("token signed with an unknown key")

    def _lookup(self, kid: str | None, alg: str) -> Key | None:
        hit = self._checked.get((kid, alg))
        if hit is not None:
            return hit
        key = self._find(kid, alg)
        if key is not None:
            try:  # joserfc's own check: key type, curve for ES*, the JWK's use and alg
                JWSRegistry.algorithms[alg].check_key(key)
            except (JoseError, KeyError, ValueError):
                return None
            self._checked[(kid, alg)] = key
        return key

    def _find(self, kid: str | None, alg: str) -> Key | None:
        if kid is None:  # only unambiguous when the issuer publishes a single key
            entries = [e for e in self._keys.values() if _fits(e[0], alg)]
            return entries[0][1] if len(entries) == 1 else None
        entry = self._keys.get(kid)
        if entry is None or not _fits(entry[0], alg):
            return None
        return entry[1]

    async def _refresh_if_due(self, now: float, min_interval: float) -> None:
        seen = self._generation
        async with self._lock:
            if self._generation != seen:  # someone refreshed while we waited: use theirs
                return
            if self._attempted_at > -1e18 and now - self._attempted_at < min_interval:
                return
            self._attempted_at = self._clock()
            self._generation += 1
            try:
                await self._fetch()
            except IdentityUnavailable as exc:
                log.warning(
                    "JWKS fetch failed", extra={"issuer": self.cfg.issuer, "error": str(exc)}
                )

    async def _fetch(self) -> None:
        self.fetches += 1
        if self.cfg.jwks_file:
            try:
                doc: Any = orjson.loads(_read(self.cfg.jwks_file))
            except (OSError, orjson.JSONDecodeError) as exc:
                raise IdentityUnavailable(f"JWKS file {self.cfg.jwks_file}: {exc}") from None
        else:
            doc = await self._http.get_json(await self._jwks_uri(), self.cfg.http_timeout_s)
        keys = self._parse(doc)
        if not keys:
            raise IdentityUnavailable(f"issuer {self.cfg.issuer} published no usable keys")
        if keys.keys() != self._keys.keys() or any(keys[k][0] != self._keys[k][0] for k in keys):
            self.version += 1
            self._checked = {}
        self._keys, self._fetched_at = keys, self._clock()

    async def _jwks_uri(self) -> str:
        if self.cfg.jwks_uri:
            return self.cfg.jwks_uri
        await self.discover()
        uri = self.metadata.get("jwks_uri")
        if not isinstance(uri, str) or not uri.startswith(("https://", "http://")):
            raise IdentityUnavailable(f"issuer {self.cfg.issuer}: discovery names no jwks_uri")
        return uri

    async def discover(self) -> dict[str, Any]:
        """The issuer's discovery document (fetched once, then kept)."""
        if self.metadata:
            return self.metadata
        doc = await self._http.get_json(discovery_url(self.cfg.issuer), self.cfg.http_timeout_s)
        if not isinstance(doc, dict) or doc.get("issuer") != self.cfg.issuer:
            # RFC 8414 §3.3: the document must name the issuer it was fetched for (mix-up).
            raise IdentityUnavailable(f"discovery for {self.cfg.issuer} names another issuer")
        self.metadata = doc
        return doc

    def _parse(self, doc: Any) -> dict[str, tuple[dict[str, Any], Key]]:
        raw = doc.get("keys") if isinstance(doc, dict) else None
        out: dict[str, tuple[dict[str, Any], Key]] = {}
        for jwk in raw if isinstance(raw, list) else []:
            if not isinstance(jwk, dict) or jwk.get("kty") not in _FAMILY:
                continue  # 'oct' (a shared secret) and unknown key types are never used
            if jwk.get("use", "sig") != "sig" or _PRIVATE & jwk.keys():
                continue
            try:
                key = JWKRegistry.import_key(jwk)
            except (ValueError, TypeError, KeyError) as exc:
                log.warning(
                    "JWKS key skipped", extra={"issuer": self.cfg.issuer, "error": repr(exc)}
                )
                continue
            out[str(jwk.get("kid", ""))] = (jwk, key)
        return out
