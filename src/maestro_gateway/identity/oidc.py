"""Bearer JWT validation for any number of trusted OpenID Connect issuers.

Order of checks (cheapest and least trusting first): shape and size; the header's ``alg``
against the issuer's allowlist (``none`` and HS* can never be allowed, see ``config``) and
``typ`` when configured; the (not yet trusted) ``iss`` selects the issuer, whose key is found by
``kid``; the signature (joserfc) with exactly that algorithm; then ``aud``, ``exp``, ``nbf``,
``iat`` with the issuer's clock skew, and the ``jti`` deny list. Only a fully verified payload
becomes an :class:`Identity`.

A verified token is remembered (by its exact text) for ``verified_token_cache_s`` while the
issuer's key set is unchanged: a repeated bearer token skips the signature check, but ``exp``,
``nbf``, ``iat`` and the ``jti`` deny list are checked again on every request.

Cost (docs/identity.md, ``scripts/bench_identity.py``): first sight of an RS256 token ~30 µs
(the RSA signature ~20 µs of it), a repeated token ~3 µs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from joserfc.jws import JWSRegistry

from maestro_gateway.identity.config import IssuerConfig
from maestro_gateway.identity.jwks import JwksCache
from maestro_gateway.identity.model import (
    STRENGTH_KEY,
    STRENGTH_MFA,
    STRENGTH_SINGLE,
    Identity,
    InvalidToken,
    Method,
)
from maestro_gateway.identity.revocation import JtiDenyList

__all__ = [
    "MAX_TOKEN_BYTES",
    "JwtValidator",
    "identity_from_claims",
    "looks_like_jwt",
    "token_hash",
]

MAX_TOKEN_BYTES = 8192
_CACHE_MAX = 10_000
_Verified = tuple[Identity, dict[str, Any], IssuerConfig, JwksCache, int, float]
_JWT = re.compile(r"[A-Za-z0-9_-]{2,4096}\.[A-Za-z0-9_-]{2,8192}\.[A-Za-z0-9_-]{0,1024}")


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


def token_hash(token: str) -> str:
    """``sha256:<128-bit prefix>``: names a credential in logs without revealing it."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:32]


def _segment(seg: str) -> Any:
    try:
        return orjson.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))
    except (binascii.Error, ValueError):
        raise InvalidToken("token is not a well-formed JWT") from None


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidToken(f"claim {name!r} is not a number")
    return float(value)


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def _claim(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def identity_from_claims(
    cfg: IssuerConfig,
    claims: dict[str, Any],
    method: Method,
    token_id: str,
    second_factors: Iterable[str],
) -> Identity:
    """The Identity a verified claim set describes (shared by JWT and introspection)."""
    client_id = claims.get("client_id") if isinstance(claims.get("client_id"), str) else None
    sub = claims.get("sub") or client_id
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise InvalidToken("token has no usable 'sub'")
    amr = _strings(claims.get("amr"))
    acr = claims.get("acr") if isinstance(claims.get("acr"), str) else None
    auth_time = _number(claims, "auth_time")
    service = sub == client_id and not amr and auth_time is None
    mfa = not service and (bool(set(amr) & set(second_factors)) or acr in cfg.mfa_acr_values)
    exp = _number(claims, "exp")
    tenant = _claim(claims, cfg.tenant_claim)
    return Identity(
        kind="service" if service else "person",
        subject=sub,
        issuer=cfg.issuer,
        principal=f"{cfg.issuer}|{sub}",
        token_id=token_id,
        method=method,
        groups=_strings(_claim(claims, cfg.groups_claim)),
        roles=_strings(_claim(claims, cfg.roles_claim)),
        scopes=_strings(claims.get("scope", claims.get("scp"))),
        tenant=tenant if isinstance(tenant, str) and tenant else None,
        client_id=client_id,
        audience=_strings(claims.get("aud")),
        acr=acr,
        amr=amr,
        auth_time=int(auth_time) if auth_time is not None else None,
        expires_at=int(exp) if exp is not None else None,
        mfa=mfa,
        strength=STRENGTH_KEY if service else STRENGTH_MFA if mfa else STRENGTH_SINGLE,
    )


def check_times(cfg: IssuerConfig, claims: dict[str, Any], now: float) -> None:
    """``exp`` (required), ``nbf`` and ``iat`` against ``now`` with the issuer's clock skew."""
    skew = cfg.clock_skew_s
    exp = _number(claims, "exp")
    if exp is None:
        raise InvalidToken("token has no 'exp'")
    if now >= exp + skew:
        raise InvalidToken("token expired")
    nbf = _number(claims, "nbf")
    if nbf is not None and nbf > now + skew:
        raise InvalidToken("token not yet valid (nbf)")
    iat = _number(claims, "iat")
    if iat is not None and iat > now + skew:
        raise InvalidToken("token issued in the future (iat)")
    if cfg.max_token_age_s is not None and (iat is None or now - iat > cfg.max_token_age_s + skew):
        raise InvalidToken("token too old (iat)")


def check_audience(cfg: IssuerConfig, claims: dict[str, Any], required: bool = True) -> None:
    aud = claims.get("aud")
    if aud is None and not required:
        return
    if not set(_strings(aud) if isinstance(aud, list) else (aud,)) & set(cfg.audience):
        raise InvalidToken("token is not for this audience")


class JwtValidator:
    """Verifies bearer JWTs from the configured issuers."""

    def __init__(
        self,
        issuers: dict[str, tuple[IssuerConfig, JwksCache]],
        denylist: JtiDenyList,
        second_factors: Iterable[str],
        clock: Callable[[], float] = time.time,
        cache_s: float = 60.0,
    ) -> None:
        self._issuers = issuers
        self._deny = denylist
        self._second = frozenset(second_factors)
        self._clock = clock
        self._cache_s = cache_s
        # token → (identity, claims, issuer, its keys, key-set version, remembered until)
        self._verified: OrderedDict[str, _Verified] = OrderedDict()

    async def validate(self, token: str) -> Identity:
        hit = self._verified.get(token)
        if hit is not None:
            ident, claims, cfg, keys, version, until = hit
            if keys.version == version and time.monotonic() < until:
                check_times(cfg, claims, self._clock())
                if self._deny.revoked(ident.token_id):
                    raise InvalidToken("token revoked")
                return ident
            del self._verified[token]
        ident, claims, cfg, keys = await self._verify(token)
        if self._cache_s > 0:
            version = keys.version
            self._verified[token] = (
                ident,
                claims,
                cfg,
                keys,
                version,
                time.monotonic() + self._cache_s,
            )
            if len(self._verified) > _CACHE_MAX:
                self._verified.popitem(last=False)
        return ident

    async def _verify(self, token: str) -> tuple[Identity, dict[str, Any], IssuerConfig, JwksCache]:
        if len(token) > MAX_TOKEN_BYTES or not _JWT.fullmatch(token):
            raise InvalidToken("token is not a well-formed JWT")
        head_b64, body_b64, sig_b64 = token.split(".")
        header, claims = _segment(head_b64), _segment(body_b64)
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise InvalidToken("token is not a well-formed JWT")
        found = self._issuers.get(claims.get("iss"))  # type: ignore[arg-type]
        if found is None:
            raise InvalidToken("token from an untrusted issuer")
        cfg, keys = found
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in cfg.algorithms:
            raise InvalidToken(f"token algorithm {str(alg)[:16]!r} is not allowed")
        if "crit" in header or "jku" in header or "x5u" in header or "jwk" in header:
            raise InvalidToken("token header names keys or extensions we do not accept")
        if cfg.typ is not None and _norm_typ(header.get("typ")) != _norm_typ(cfg.typ):
            raise InvalidToken("token 'typ' is not the one required")
        kid = header.get("kid")
        key = await keys.key(kid if isinstance(kid, str) else None, alg)
        try:  # joserfc's algorithm, with the key it accepted for this alg (JwksCache.key)
            signature = base64.urlsafe_b64decode(sig_b64 + "=" * (-len(sig_b64) % 4))
            valid = JWSRegistry.algorithms[alg].verify(
                f"{head_b64}.{body_b64}".encode(), signature, key
            )
        except (binascii.Error, ValueError, TypeError):
            valid = False
        if not valid:
            raise InvalidToken("token signature is not valid")
        check_audience(cfg, claims)
        check_times(cfg, claims, self._clock())
        jti = claims.get("jti")
        if jti is not None and (not isinstance(jti, str) or not 0 < len(jti) <= 255):
            raise InvalidToken("token 'jti' is malformed")
        if jti is None and cfg.require_jti:
            raise InvalidToken("token has no 'jti'")
        if jti is not None and self._deny.revoked(jti):
            raise InvalidToken("token revoked")
        ident = identity_from_claims(cfg, claims, "jwt", jti or token_hash(token), self._second)
        return ident, claims, cfg, keys


def _norm_typ(value: Any) -> str:
    text = value.lower() if isinstance(value, str) else ""
    return text.removeprefix("application/")
