"""Gateway request assertions (T6 gateway-bypass proof): a short-lived signed JWT per upstream
request, bound to that exact request.

The gateway signs, for every call it forwards, a compact JWS (``typ: maestro-req+jwt``) with
its own key (the one published at ``/.well-known/jwks.json``)::

    iss  the gateway (its SPIFFE ID, or its public URL)     aud  the agent id
    iat, exp  issue time and expiry (seconds; ``ttl_s`` apart, default 30)
    jti  a random nonce: the agent accepts each one once
    htm, htu  HTTP method and path of the upstream request
    bh   base64url SHA-256 of the exact body
    sub  the end user the gateway authenticated ("" when anonymous)
    act  the delegation chain, when there is one

The agent-side guard (:mod:`maestro_gateway.agent`) verifies all of it. Signing and
verification use the project's JWS primitives on ``cryptography`` (asymmetric algorithms
only; ``none`` and HS* are refused by construction).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson

from maestro_gateway.registry import _jose

__all__ = ["HEADER", "AssertionRefused", "AssertionSigner", "AssertionVerifier", "body_hash"]

HEADER = "maestro-assertion"
TYP = "maestro-req+jwt"


class AssertionRefused(Exception):
    """The assertion is missing, malformed, forged, expired, replayed or for another request."""


def body_hash(body: bytes) -> str:
    return _jose.b64url(hashlib.sha256(body).digest())


class AssertionSigner:
    def __init__(self, key: _jose.PrivateKey, kid: str, issuer: str, ttl_s: int = 30) -> None:
        self._key, self.kid, self.issuer, self.ttl_s = key, kid, issuer, ttl_s
        self.alg = _jose.default_alg(key)
        self._header = _jose.b64url(orjson.dumps({"alg": self.alg, "kid": kid, "typ": TYP}))

    def sign(
        self,
        audience: str,
        method: str,
        path: str,
        body: bytes,
        subject: str = "",
        act: Mapping[str, Any] | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": audience,
            "iat": now,
            "exp": now + self.ttl_s,
            "jti": _jose.b64url(os.urandom(16)),
            "htm": method,
            "htu": path,
            "bh": body_hash(body),
            "sub": subject,
        }
        if act:
            claims["act"] = dict(act)
        signing_input = f"{self._header}.{_jose.b64url(orjson.dumps(claims))}"
        signature = _jose.sign(self.alg, self._key, signing_input.encode())
        return f"{signing_input}.{_jose.b64url(signature)}"


class AssertionVerifier:
    """Verifies assertions for one agent; remembers nonces until they expire (replay check)."""

    def __init__(
        self,
        keys: Mapping[str, Mapping[str, Any]],
        issuer: str,
        audience: str,
        leeway_s: int = 5,
        max_ttl_s: int = 300,
        max_nonces: int = 200_000,
    ) -> None:
        self._keys = {kid: (_jose.public_key_from_jwk(jwk), jwk) for kid, jwk in keys.items()}
        self.issuer, self.audience = issuer, audience
        self.leeway_s, self.max_ttl_s, self._max_nonces = leeway_s, max_ttl_s, max_nonces
        self._seen: OrderedDict[str, int] = OrderedDict()

    def verify(self, token: str | None, method: str, path: str, body: bytes) -> dict[str, Any]:
        if not token:
            raise AssertionRefused("no gateway assertion")
        parts = token.split(".")
        if len(parts) != 3 or len(token) > 8192:
            raise AssertionRefused("malformed assertion")
        try:
            header = orjson.loads(_jose.b64url_decode(parts[0]))
            claims = orjson.loads(_jose.b64url_decode(parts[1]))
            signature = _jose.b64url_decode(parts[2])
        except (ValueError, orjson.JSONDecodeError):
            raise AssertionRefused("malformed assertion") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise AssertionRefused("malformed assertion")
        if header.get("typ") != TYP:
            raise AssertionRefused("not a gateway request assertion")
        entry = self._keys.get(str(header.get("kid")))
        alg = header.get("alg")
        if entry is None or not isinstance(alg, str) or alg in _jose.REFUSED_ALGS:
            raise AssertionRefused("assertion signed with an unknown key or algorithm")
        key, jwk = entry
        if jwk.get("alg", alg) != alg or not _jose.key_fits_alg(key, alg):
            raise AssertionRefused("assertion algorithm does not fit the gateway key")
        if not _jose.verify(alg, key, f"{parts[0]}.{parts[1]}".encode(), signature):
            raise AssertionRefused("assertion signature does not verify")
        self._check_claims(claims, method, path, body)
        return claims

    def _check_claims(self, c: dict[str, Any], method: str, path: str, body: bytes) -> None:
        now = int(time.time())
        if c.get("iss") != self.issuer or c.get("aud") != self.audience:
            raise AssertionRefused("assertion is for another issuer or audience")
        iat, exp, jti = c.get("iat"), c.get("exp"), c.get("jti")
        if not isinstance(iat, int) or not isinstance(exp, int) or not isinstance(jti, str):
            raise AssertionRefused("assertion lacks iat, exp or jti")
        if exp < now - self.leeway_s or iat > now + self.leeway_s:
            raise AssertionRefused("assertion expired or not yet valid")
        if exp - iat > self.max_ttl_s:
            raise AssertionRefused("assertion lives too long")
        if c.get("htm") != method or c.get("htu") != path:
            raise AssertionRefused("assertion is for another method or path")
        if c.get("bh") != body_hash(body):
            raise AssertionRefused("assertion does not match the body")
        self._nonce(jti, exp, now)

    def _nonce(self, jti: str, exp: int, now: int) -> None:
        while self._seen:  # forget nonces whose assertions have expired (oldest first)
            first, first_exp = next(iter(self._seen.items()))
            if first_exp + self.leeway_s >= now:
                break
            del self._seen[first]
        if jti in self._seen:
            raise AssertionRefused("assertion replayed")
        if len(self._seen) >= self._max_nonces:
            raise AssertionRefused("too many live assertions; refusing (fail closed)")
        self._seen[jti] = exp
