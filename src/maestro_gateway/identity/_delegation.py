"""Delegated access tokens (C16): what the token exchange mints and the gateway accepts back.

A delegated token is a JWT (RFC 9068 ``typ: at+jwt``) signed with the gateway's own key (the
one published at ``/.well-known/jwks.json``)::

    iss   identity.exchange.issuer (default: the gateway's public_url)
    sub   the user (the subject of the exchanged token)   aud   the one target agent id
    iat, nbf, exp   exp = iat + identity.exchange.token_ttl_s      jti   random
    scope     the granted skills of that agent, space-separated
    client_id the actor (the supervisor agent that asked)
    act       the actor chain, RFC 8693 §4.1: {"sub": actor, "act": {"sub": previous, ...}}
    amr, acr, auth_time, roles, groups   copied from the user's token
    maestro   {"sub_iss": the user's issuer, "kind", "mfa", "strength", "tenant"}

Verification trusts nothing the token says before the signature checks out with exactly the
gateway key (its ``kid`` and ``alg``; ``none``/HS*/embedded keys cannot be used). The
:class:`Identity` it yields is the *user's* principal (``<user iss>|<sub>``) with
``delegation`` = the actor principals, current actor first, and ``scopes`` = the skills.
"""

from __future__ import annotations

import hmac
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from maestro_gateway.identity.model import STRENGTH_SINGLE, Identity, InvalidToken
from maestro_gateway.registry import _jose

__all__ = [
    "MAX_CHAIN",
    "TOKEN_TYPE_ACCESS",
    "TOKEN_TYPE_JWT",
    "DelegatedTokens",
    "act_chain",
    "act_claim",
]

TOKEN_TYPE_ACCESS = "urn:ietf:params:oauth:token-type:access_token"
TOKEN_TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"
TYP = "at+jwt"
MAX_CHAIN = 16
"""Hard cap on ``act`` nesting read from any token (configured limits are lower)."""
_MAX_TOKEN = 8192
_CACHE_MAX = 10_000
_SEG = re.compile(r"[A-Za-z0-9_-]{2,8192}")
_LISTS = ("amr", "roles", "groups")


def act_claim(chain: Sequence[str]) -> dict[str, Any]:
    """The nested ``act`` claim for actor principals ``chain`` (current actor first)."""
    claim: dict[str, Any] = {}
    for actor in reversed(chain):
        claim = {"sub": actor, "act": claim} if claim else {"sub": actor}
    return claim


def act_chain(act: Any) -> tuple[str, ...]:
    """The actor principals of an ``act`` claim, current actor first; InvalidToken if bad."""
    chain: list[str] = []
    while act is not None:
        sub = act.get("sub") if isinstance(act, dict) else None
        if not isinstance(sub, str) or not 0 < len(sub) <= 512 or len(chain) >= MAX_CHAIN:
            raise InvalidToken("token 'act' claim is malformed")
        chain.append(sub)
        act = act.get("act")
    return tuple(chain)


def _strings(value: Any, limit: int = 64) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value[:limit] if isinstance(v, str) and len(v) <= 255)


def _num(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"claim {name!r} is not a number")
    return float(value)


class DelegatedTokens:
    """Mints and verifies delegated tokens with the gateway's key (pure: key, clock, config)."""

    def __init__(
        self,
        key: _jose.PrivateKey,
        kid: str,
        issuer: str,
        ttl_s: int = 300,
        clock_skew_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key, self.kid, self.issuer = key, kid, issuer
        self._public = key.public_key()
        self.alg = _jose.default_alg(key)
        self.ttl_s, self.skew, self._clock = ttl_s, clock_skew_s, clock
        self._header = _jose.b64url(orjson.dumps({"alg": self.alg, "typ": TYP, "kid": kid}))
        self._header_dot = self._header + "."
        self._verified: OrderedDict[str, tuple[Identity, dict[str, Any], float]] = OrderedDict()

    # -- minting -------------------------------------------------------------------------

    def mint(
        self,
        subject: Identity,
        chain: Sequence[str],
        audience: str,
        skills: Sequence[str],
        lineage: Sequence[str] = (),
    ) -> tuple[str, dict[str, Any]]:
        """A token for ``subject`` acted on by ``chain`` (current actor first). ``lineage``:
        the ids of the tokens it derives from (the subject token's, and its own lineage), so
        revoking any of them revokes this one."""
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject.subject,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl_s,
            "jti": _jose.b64url(os.urandom(16)),
            "scope": " ".join(skills),
            "client_id": chain[0],
            "act": act_claim(chain),
            "amr": list(subject.amr),
            "roles": list(subject.roles),
            "groups": list(subject.groups),
            "maestro": {
                "sub_iss": subject.issuer,
                "kind": subject.kind,
                "mfa": subject.mfa,
                "strength": subject.strength,
                "tenant": subject.tenant,
                "lineage": list(lineage)[:MAX_CHAIN],
            },
        }
        if subject.acr is not None:
            claims["acr"] = subject.acr
        if subject.auth_time is not None:
            claims["auth_time"] = subject.auth_time
        signing_input = f"{self._header}.{_jose.b64url(orjson.dumps(claims))}"
        signature = _jose.sign(self.alg, self._key, signing_input.encode())
        return f"{signing_input}.{_jose.b64url(signature)}", claims

    # -- verification --------------------------------------------------------------------

    def issued_here(self, token: str) -> bool:
        """Whether ``token`` claims to come from this gateway (not yet verified): its header is
        byte for byte the one this gateway writes. Anything else cannot be a valid delegated
        token and goes to the configured issuers (which do not trust this one): refused."""
        return token.startswith(self._header_dot)

    def verify(self, token: str, revoked: Callable[[str], bool] | None = None) -> Identity:
        """The delegated identity ``token`` carries; InvalidToken unless it is fully valid.

        Times are checked on every call, and so is ``revoked`` (the ``jti`` deny list) for the
        token and every token it derives from."""
        ident, lineage = self._verify(token)
        if revoked is not None and any(revoked(j) for j in (ident.token_id, *lineage)):
            raise InvalidToken("token revoked")
        return ident

    def lineage_of(self, token: str) -> tuple[str, ...]:
        """The ids of the tokens a (valid) delegated token derives from, nearest first."""
        return self._verify(token)[1]

    def _verify(self, token: str) -> tuple[Identity, tuple[str, ...]]:
        hit = self._verified.get(token)
        if hit is not None:
            ident, claims, until = hit
            if time.monotonic() < until:
                self._check_times(claims)
                return ident, _strings(claims["maestro"].get("lineage"), MAX_CHAIN)
            del self._verified[token]
        claims = self._verified_claims(token)
        self._check_times(claims)
        ident = self._identity(claims)
        self._verified[token] = (ident, claims, time.monotonic() + 60.0)
        if len(self._verified) > _CACHE_MAX:
            self._verified.popitem(last=False)
        return ident, _strings(claims["maestro"].get("lineage"), MAX_CHAIN)

    def _verified_claims(self, token: str) -> dict[str, Any]:
        parts = token.split(".")
        if len(token) > _MAX_TOKEN or len(parts) != 3 or not all(map(_SEG.fullmatch, parts)):
            raise InvalidToken("token is not a well-formed JWT")
        try:
            header = orjson.loads(_jose.b64url_decode(parts[0]))
            claims = orjson.loads(_jose.b64url_decode(parts[1]))
            signature = _jose.b64url_decode(parts[2])
        except (ValueError, orjson.JSONDecodeError):
            raise InvalidToken("token is not a well-formed JWT") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise InvalidToken("token is not a well-formed JWT")
        if header.get("alg") != self.alg or header.get("typ") != TYP:
            raise InvalidToken("delegated token: wrong 'alg' or 'typ'")
        if set(header) - {"alg", "typ", "kid"}:
            raise InvalidToken("token header names keys or extensions we do not accept")
        if not hmac.compare_digest(str(header.get("kid", "")), self.kid):
            raise InvalidToken("delegated token signed with an unknown key")
        signed = f"{parts[0]}.{parts[1]}".encode()
        if not _jose.verify(self.alg, self._public, signed, signature):
            raise InvalidToken("token signature is not valid")
        if claims.get("iss") != self.issuer:
            raise InvalidToken("token from an untrusted issuer")
        return claims

    def _check_times(self, claims: dict[str, Any]) -> None:
        now, skew = self._clock(), self.skew
        exp, nbf, iat = _num(claims, "exp"), _num(claims, "nbf"), _num(claims, "iat")
        if exp is None or now >= exp + skew:
            raise InvalidToken("token expired")
        if (nbf is not None and nbf > now + skew) or (iat is not None and iat > now + skew):
            raise InvalidToken("token not yet valid (nbf/iat)")

    def _identity(self, claims: dict[str, Any]) -> Identity:
        sub, aud, jti, scope = (claims.get(k) for k in ("sub", "aud", "jti", "scope"))
        if not isinstance(sub, str) or not 0 < len(sub) <= 255:
            raise InvalidToken("token has no usable 'sub'")
        if not isinstance(aud, str) or not aud:
            raise InvalidToken("delegated token must name one agent in 'aud'")
        if not isinstance(jti, str) or not 0 < len(jti) <= 255:
            raise InvalidToken("token has no usable 'jti'")
        if not isinstance(scope, str):
            raise InvalidToken("delegated token has no 'scope'")
        chain = act_chain(claims.get("act"))
        if not chain:
            raise InvalidToken("delegated token has no 'act' claim")
        extra = claims.get("maestro")
        extra = extra if isinstance(extra, dict) else {}
        sub_iss, kind = extra.get("sub_iss"), extra.get("kind")
        if not isinstance(sub_iss, str) or not sub_iss or kind not in ("person", "service"):
            raise InvalidToken("delegated token does not name its subject's issuer")
        tenant, strength = extra.get("tenant"), extra.get("strength")
        acr, auth_time, exp = claims.get("acr"), _num(claims, "auth_time"), _num(claims, "exp")
        lists = {name: _strings(claims.get(name)) for name in _LISTS}
        return Identity(
            kind=kind,
            subject=sub,
            issuer=sub_iss,
            principal=f"{sub_iss}|{sub}",
            token_id=jti,
            method="jwt",
            groups=lists["groups"],
            roles=lists["roles"],
            scopes=tuple(scope.split()),
            tenant=tenant if isinstance(tenant, str) and tenant else None,
            client_id=chain[0],
            audience=(aud,),
            acr=acr if isinstance(acr, str) else None,
            amr=lists["amr"],
            auth_time=int(auth_time) if auth_time is not None else None,
            expires_at=int(exp) if exp is not None else None,
            mfa=extra.get("mfa") is True,
            strength=strength if type(strength) is int else STRENGTH_SINGLE,
            delegation=chain,
        )
