"""Bearer JWT and opaque-token validation against a REAL OpenID provider (npm oidc-provider)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from joserfc.jwk import RSAKey

from maestro_gateway.identity import (
    Authenticator,
    IdentityConfig,
    IdentityUnavailable,
    InvalidToken,
)
from tests.oidc_provider import AUDIENCE, INTROSPECTION_CLIENT, OidcProvider


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcProvider]:
    provider = OidcProvider.start()
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture(scope="module")
def other_idp() -> Iterator[OidcProvider]:
    provider = OidcProvider.start()
    try:
        yield provider
    finally:
        provider.stop()


def issuer_cfg(idp: OidcProvider, **kw: Any) -> dict[str, Any]:
    return {
        "issuer": idp.issuer,
        "audience": [AUDIENCE],
        "jwks_min_refetch_s": 0.3,
        "introspection": {
            "client_id": INTROSPECTION_CLIENT[0],
            "client_secret": INTROSPECTION_CLIENT[1],
        },
        **kw,
    }


def make_auth(idp: OidcProvider, **kw: Any) -> Authenticator:
    identity = kw.pop("identity", {})
    return Authenticator(
        IdentityConfig.model_validate({"issuers": [issuer_cfg(idp, **kw)], **identity})
    )


@pytest_asyncio.fixture(loop_scope="session")
async def auth(idp: OidcProvider) -> AsyncIterator[Authenticator]:
    a = make_auth(idp)
    try:
        yield a
    finally:
        await a.aclose()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(seg: str) -> bytes:
    return base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    h, p, s = token.split(".")
    return json.loads(unb64(h)), json.loads(unb64(p)), s


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


MFA = {"amr": ["pwd", "otp"], "acr": "urn:maestro:loa:2"}


async def test_mfa_token_gives_a_full_identity(idp: OidcProvider, auth: Authenticator) -> None:
    """A provider-signed JWT with amr [pwd, otp] yields a person identity with MFA and its jti."""
    now = int(time.time())
    token = await idp.mint("alice", **MFA, auth_time=now - 5, claims={"roles": ["registry-admin"]})
    ident = await auth.authenticate(bearer(token))
    assert ident is not None
    assert (ident.kind, ident.subject, ident.issuer) == ("person", "alice", idp.issuer)
    assert ident.principal == f"{idp.issuer}|alice"
    assert ident.mfa
    assert ident.strength == 2
    assert ident.amr == ("pwd", "otp")
    assert ident.acr == "urn:maestro:loa:2"
    assert ident.auth_time == now - 5
    assert ident.token_id == parts(token)[1]["jti"]
    assert ident.roles == ("registry-admin",)


async def test_password_only_token_is_valid_but_not_mfa(
    idp: OidcProvider, auth: Authenticator
) -> None:
    """A token with amr [pwd] authenticates, and is recorded as single-factor."""
    ident = await auth.authenticate(bearer(await idp.mint("bob", amr=["pwd"])))
    assert ident is not None
    assert not ident.mfa
    assert ident.strength == 1


async def test_client_credentials_token_is_a_service(
    idp: OidcProvider, auth: Authenticator
) -> None:
    """A real client_credentials grant with a resource indicator gives a service identity."""
    ident = await auth.authenticate(bearer(await idp.client_credentials()))
    assert ident is not None
    assert (ident.kind, ident.subject, ident.client_id) == (
        "service",
        "svc-reporter",
        "svc-reporter",
    )


async def test_no_credentials_is_anonymous(auth: Authenticator) -> None:
    """Without an Authorization header there is no identity (the guard decides)."""
    assert await auth.authenticate({}) is None


async def test_expired_token_is_refused(idp: OidcProvider, auth: Authenticator) -> None:
    """A token whose exp lies beyond the clock skew in the past is invalid."""
    now = int(time.time())
    token = await idp.mint("alice", **MFA, iat=now - 7200, exp=now - 3600)
    with pytest.raises(InvalidToken, match="expired"):
        await auth.authenticate(bearer(token))


async def test_clock_skew_admits_a_just_expired_token(idp: OidcProvider) -> None:
    """Within the configured clock skew a just-expired token still passes; with 0 skew it fails."""
    now = int(time.time())
    token = await idp.mint("alice", iat=now - 600, exp=now - 5)
    lenient, strict = make_auth(idp, clock_skew_s=30), make_auth(idp, clock_skew_s=0)
    try:
        assert await lenient.authenticate(bearer(token)) is not None
        with pytest.raises(InvalidToken, match="expired"):
            await strict.authenticate(bearer(token))
    finally:
        await lenient.aclose()
        await strict.aclose()


async def test_future_iat_and_nbf_are_refused(idp: OidcProvider, auth: Authenticator) -> None:
    """A token issued, or valid only, in the future (beyond skew) is invalid."""
    now = int(time.time())
    future_iat = await idp.mint("alice", iat=now + 3600, exp=now + 7200)
    with pytest.raises(InvalidToken, match="future"):
        await auth.authenticate(bearer(future_iat))
    nbf = await idp.mint("alice", claims={"nbf": now + 3600})
    with pytest.raises(InvalidToken, match="nbf"):
        await auth.authenticate(bearer(nbf))


async def test_token_from_another_issuer_is_refused(
    other_idp: OidcProvider, auth: Authenticator
) -> None:
    """A genuine token from a provider we do not trust is invalid."""
    with pytest.raises(InvalidToken, match="untrusted issuer"):
        await auth.authenticate(bearer(await other_idp.mint("alice", **MFA)))


async def test_other_issuer_cannot_claim_our_iss(
    idp: OidcProvider, other_idp: OidcProvider, auth: Authenticator
) -> None:
    """A token signed by another provider's key but claiming our issuer fails the signature."""
    token = await other_idp.mint("alice", **MFA)
    header, claims, _ = parts(token)
    claims["iss"] = idp.issuer
    jwk = (await other_idp.private_jwks())["keys"][0]
    forged = sign_rs256(header | {"kid": (await first_kid(idp))}, claims, jwk)
    with pytest.raises(InvalidToken, match="signature"):
        await auth.authenticate(bearer(forged))


async def test_wrong_audience_is_refused(idp: OidcProvider, auth: Authenticator) -> None:
    """A token for another resource server (aud) is invalid here."""
    with pytest.raises(InvalidToken, match="audience"):
        await auth.authenticate(bearer(await idp.mint("alice", **MFA, resource="urn:other:api")))


async def test_tampered_payload_is_refused(idp: OidcProvider, auth: Authenticator) -> None:
    """Changing one claim (amr) of a signed token breaks its signature."""
    token = await idp.mint("bob", amr=["pwd"])
    h, _, s = token.split(".")
    claims = parts(token)[1] | {"amr": ["pwd", "otp"], "sub": "alice"}
    with pytest.raises(InvalidToken, match="signature"):
        await auth.authenticate(bearer(f"{h}.{b64(json.dumps(claims).encode())}.{s}"))


async def test_alg_none_is_refused(idp: OidcProvider, auth: Authenticator) -> None:
    """An unsigned token (alg none) is refused whatever it claims."""
    _, claims, _ = parts(await idp.mint("alice", **MFA))
    header = {"alg": "none", "typ": "at+jwt"}
    for sig in ("", "AAAA"):
        token = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{sig}"
        with pytest.raises(InvalidToken, match="not allowed"):
            await auth.authenticate(bearer(token))


async def test_hs256_signed_with_the_public_key_is_refused(
    idp: OidcProvider, auth: Authenticator
) -> None:
    """The key-confusion attack: HS256 keyed with the provider's public key (PEM or JWK) fails."""
    token = await idp.mint("alice", **MFA)
    header, claims, _ = parts(token)
    public = (await idp.private_jwks())["keys"][0]
    pub_jwk = {k: public[k] for k in ("kty", "n", "e")}
    pem = RSAKey.import_key(pub_jwk).raw_value.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for secret in (pem, json.dumps(pub_jwk).encode()):
        head = b64(json.dumps(header | {"alg": "HS256"}).encode())
        body = b64(json.dumps(claims).encode())
        sig = b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
        with pytest.raises(InvalidToken, match="not allowed"):
            await auth.authenticate(bearer(f"{head}.{body}.{sig}"))


async def test_required_typ_is_enforced(idp: OidcProvider) -> None:
    """With typ at+jwt required, the provider's at+jwt passes and a token typed JWT does not."""
    a = make_auth(idp, typ="at+jwt")
    try:
        token = await idp.mint("alice", **MFA)
        assert await a.authenticate(bearer(token)) is not None
        header, claims, _ = parts(token)
        jwk = next(k for k in (await idp.private_jwks())["keys"] if k["kid"] == header["kid"])
        retyped = sign_rs256(header | {"typ": "JWT"}, claims, jwk)
        assert await auth_ok(make_auth(idp), retyped)  # the re-signed token itself is valid
        with pytest.raises(InvalidToken, match="typ"):
            await a.authenticate(bearer(retyped))
    finally:
        await a.aclose()


async def test_jti_revocation_at_runtime(idp: OidcProvider, tmp_path: Path) -> None:
    """A jti revoked while running (in process, or by the deny-list file) is refused at once."""
    deny_file = tmp_path / "revoked.json"
    a = make_auth(idp, identity={"revoked_jti_file": str(deny_file)})
    a.denylist._interval = 0.0  # re-check the file on every request in this test
    try:
        one, two = await idp.mint("alice", **MFA), await idp.mint("alice", **MFA)
        assert await a.authenticate(bearer(one))
        assert await a.authenticate(bearer(two))
        a.denylist.revoke(parts(one)[1]["jti"])
        with pytest.raises(InvalidToken, match="revoked"):
            await a.authenticate(bearer(one))
        deny_file.write_text(json.dumps({parts(two)[1]["jti"]: time.time() + 3600}))
        with pytest.raises(InvalidToken, match="revoked"):
            await a.authenticate(bearer(two))
        deny_file.write_text("{not json")  # a broken file keeps the last good list
        with pytest.raises(InvalidToken, match="revoked"):
            await a.authenticate(bearer(two))
    finally:
        await a.aclose()


async def test_key_rotation_is_picked_up_and_kid_floods_are_rate_limited(
    idp: OidcProvider,
) -> None:
    """After the provider rotates keys, a new-kid token triggers one refetch and passes; made-up
    kids within the refetch interval cause no further fetches."""
    a = make_auth(idp, jwks_min_refetch_s=1.0)
    try:
        assert await a.authenticate(bearer(await idp.mint("alice", **MFA)))
        cache = a.keys[idp.issuer]
        assert cache.fetches == 1
        new_kid = await idp.rotate()
        await asyncio.sleep(1.05)
        token = await idp.mint("alice", **MFA)
        assert parts(token)[0]["kid"] == new_kid
        assert await a.authenticate(bearer(token))
        assert cache.fetches == 2
        header, _claims, sig = parts(token)
        for i in range(50):  # a flood of unknown kids right after the refetch
            bogus = b64(json.dumps(header | {"kid": f"bogus-{i}"}).encode())
            with pytest.raises(InvalidToken, match="unknown key"):
                await a.authenticate(bearer(f"{bogus}.{token.split('.')[1]}.{sig}"))
        assert cache.fetches == 2
        await asyncio.sleep(1.05)  # after the interval, one more fetch is allowed
        with pytest.raises(InvalidToken, match="unknown key"):
            await a.authenticate(bearer(f"{bogus}.{token.split('.')[1]}.{sig}"))
        assert cache.fetches == 3
    finally:
        await a.aclose()


async def test_opaque_token_by_introspection_is_cached(
    idp: OidcProvider, auth: Authenticator
) -> None:
    """An opaque token is checked at the provider's introspection endpoint once, then cached."""
    token = await idp.mint("carol", **MFA, resource=None)
    assert "." not in token
    first = await auth.authenticate(bearer(token))
    assert first is not None
    assert first.method == "introspection"
    assert (first.subject, first.mfa) == ("carol", True)
    calls = auth.introspector.calls
    assert await auth.authenticate(bearer(token)) == first
    assert auth.introspector.calls == calls  # served from the cache


async def test_inactive_opaque_token_is_refused(auth: Authenticator) -> None:
    """A made-up opaque token is inactive at the provider, hence invalid."""
    with pytest.raises(InvalidToken, match="not active"):
        await auth.authenticate(bearer("nUmadeUpOpaqueTokenValue0123456789abcdefghij"))


async def test_unreachable_provider_without_keys_fails_closed() -> None:
    """JWKS unreachable and nothing cached → IdentityUnavailable (503), not an accept or a crash."""
    cfg = {"issuer": "http://127.0.0.1:9", "audience": [AUDIENCE], "http_timeout_s": 1}
    a = Authenticator(IdentityConfig.model_validate({"issuers": [cfg]}))
    header = b64(json.dumps({"alg": "RS256", "kid": "k"}).encode())
    body = b64(json.dumps({"iss": "http://127.0.0.1:9", "aud": AUDIENCE, "exp": 2e9}).encode())
    try:
        with pytest.raises(IdentityUnavailable):
            await a.authenticate(bearer(f"{header}.{body}.c2ln"))
        fetches = a.keys["http://127.0.0.1:9"].fetches
        with pytest.raises(IdentityUnavailable):  # and it does not hammer the provider
            await a.authenticate(bearer(f"{header}.{body}.c2ln"))
        assert a.keys["http://127.0.0.1:9"].fetches == fetches
    finally:
        await a.aclose()


async def test_malformed_credentials_are_invalid(auth: Authenticator) -> None:
    """Garbage, another scheme, and oversize credentials are InvalidToken, never a crash."""
    for value in (
        "Basic dXNlcjpwdw==",
        "Bearer",
        "Bearer a b",
        "Bearer " + "x" * 10_000,
        "Bearer e30.e30.",
        "Bearer !!.??.**",
        "Bearer W10.W10.c2ln",
    ):
        with pytest.raises(InvalidToken):
            await auth.authenticate({"authorization": value})


# --- helpers ---------------------------------------------------------------------------


async def first_kid(idp: OidcProvider) -> str:
    return str((await idp.private_jwks())["keys"][0]["kid"])


async def auth_ok(a: Authenticator, token: str) -> bool:
    try:
        return await a.authenticate(bearer(token)) is not None
    finally:
        await a.aclose()


def sign_rs256(header: dict[str, Any], claims: dict[str, Any], jwk: dict[str, Any]) -> str:
    from joserfc import jws

    key = RSAKey.import_key(jwk)
    payload = json.dumps(claims).encode()
    return jws.serialize_compact(header | {"alg": "RS256"}, payload, key)
