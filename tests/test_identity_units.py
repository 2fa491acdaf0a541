"""Pure parts of identity: MFA evaluation and challenges, API-key store, config limits."""

from __future__ import annotations

import asyncio
import base64
import json
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from maestro_gateway.config import parse_config
from maestro_gateway.identity import ApiKeyStore, IdentityConfig, InvalidToken, MfaRequirement
from maestro_gateway.identity.apikeys import scope_allows
from maestro_gateway.identity.config import SECOND_FACTORS, IssuerConfig
from maestro_gateway.identity.mfa import bearer_challenge, evaluate, step_up_challenge
from maestro_gateway.identity.model import Identity
from maestro_gateway.identity.revocation import JtiDenyList

NOW = 1_800_000_000.0


def person(
    amr: tuple[str, ...] = ("pwd", "otp"), acr: str | None = None, age: int = 10
) -> Identity:
    return Identity(
        kind="person",
        subject="alice",
        issuer="https://idp",
        principal="https://idp|alice",
        token_id="j1",
        method="jwt",
        amr=amr,
        acr=acr,
        auth_time=int(NOW) - age,
        mfa="otp" in amr,
    )


def service() -> Identity:
    return Identity(
        kind="service",
        subject="bot",
        issuer="k",
        principal="apikey:1",
        token_id="apikey:1",
        method="apikey",
    )


@pytest.mark.parametrize(
    ("req", "ident", "expected"),
    [
        ({}, person(("pwd",)), None),
        ({"second_factor": True}, person(("pwd", "otp")), None),
        ({"second_factor": True}, person(("pwd", "hwk")), None),
        ({"second_factor": True}, person(("mfa",)), None),
        ({"second_factor": True}, person(("pwd",)), "second authentication factor"),
        ({"second_factor": True}, person(("pwd", "kba")), "second authentication factor"),
        ({"acr_values": ["gold"]}, person(acr="gold"), None),
        ({"acr_values": ["gold"]}, person(acr="silver"), "acr"),
        ({"acr_values": ["gold"]}, person(acr=None), "acr"),
        ({"max_age_s": 300}, person(age=299), None),
        ({"max_age_s": 300}, person(age=301), "too old"),
    ],
)
def test_mfa_requirement_table(
    req: dict[str, object], ident: Identity, expected: str | None
) -> None:
    """Each requirement (RFC 8176 second factor, acr list, max auth age) holds or names why not."""
    short = evaluate(MfaRequirement.model_validate(req), ident, SECOND_FACTORS, NOW)
    if expected is None:
        assert short is None
    else:
        assert short is not None
        assert expected in short.reason
        assert short.can_step_up


def test_unknown_auth_time_fails_max_age() -> None:
    """A max_age requirement is not met by a token without auth_time."""
    ident = Identity(
        kind="person",
        subject="a",
        issuer="i",
        principal="i|a",
        token_id="t",
        method="jwt",
        amr=("otp",),
    )
    short = evaluate(MfaRequirement(max_age_s=60), ident, SECOND_FACTORS, NOW)
    assert short is not None
    assert "auth_time" in short.reason


def test_services_cannot_step_up_unless_allowed() -> None:
    """A service account on an MFA-only skill is refused outright (no step-up), unless allowed."""
    short = evaluate(MfaRequirement(second_factor=True), service(), SECOND_FACTORS, NOW)
    assert short is not None
    assert not short.can_step_up
    allowed = MfaRequirement(second_factor=True, allow_service_accounts=True)
    assert evaluate(allowed, service(), SECOND_FACTORS, NOW) is None


def test_challenges_follow_rfc6750_and_rfc9470() -> None:
    """The header values quote parameters, escape quotes, and carry acr_values and max_age."""
    assert bearer_challenge("r") == 'Bearer realm="r"'
    assert bearer_challenge("r", "invalid_token", 'bad "x"') == (
        'Bearer realm="r", error="invalid_token", error_description="bad \\"x\\""'
    )
    req = MfaRequirement(acr_values=["a", "b"], max_age_s=60)
    assert step_up_challenge(req, "r", "weak") == (
        'Bearer realm="r", error="insufficient_user_authentication", '
        'error_description="weak", acr_values="a b", max_age=60'
    )


@pytest.mark.parametrize("alg", ["none", "HS256", "HS384", "HS512", "RSA-OAEP"])
def test_config_cannot_allow_none_or_hmac(alg: str) -> None:
    """An issuer's algorithm allowlist rejects none and HS* at load time."""
    with pytest.raises(ValidationError):
        IssuerConfig(issuer="https://idp", audience=["a"], algorithms=[alg])  # type: ignore[list-item]


def test_identity_section_parses_and_defaults_off() -> None:
    """The identity section is optional (authentication off by default) and validates."""
    cfg = parse_config({})
    assert not cfg.identity.configured
    assert not cfg.guards.authn.required
    cfg = parse_config(
        {
            "identity": {"issuers": [{"issuer": "https://idp", "audience": ["gw"]}]},
            "guard_overrides": [
                {"skills": ["pay"], "guards": {"authn": {"mfa": {"max_age_s": 300}}}}
            ],
        }
    )
    assert cfg.identity.configured


def test_scope_matching() -> None:
    """API-key scopes cover an agent, an agent's skills, one skill, or everything."""
    assert scope_allows(["echo"], "echo", "x")
    assert scope_allows(["echo/*"], "echo", None)
    assert scope_allows(["echo/sum"], "echo", "sum")
    assert not scope_allows(["echo/sum"], "echo", "other")
    assert not scope_allows(["echo/sum"], "echo", None)
    assert not scope_allows(["echo"], "writer", None)
    assert scope_allows(["*"], "writer", None)


async def test_api_key_store_holds_no_plaintext(tmp_path: Path) -> None:
    """The store file (mode 0600) has salt and scrypt hash, never the key or its secret."""
    store = ApiKeyStore(tmp_path / "keys.json", scrypt_n=1024)
    key, record = store.create("bot", scopes=["echo"], ttl_s=60)
    raw = (tmp_path / "keys.json").read_bytes()
    secret = key.rsplit("_", 1)[1]
    assert key.encode() not in raw
    assert secret.encode() not in raw
    assert base64.b64encode(secret.encode()) not in raw
    doc = json.loads(raw)["keys"][0]
    assert set(doc) >= {"id", "salt", "hash", "n", "scopes", "expires_at"}
    assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600
    ident = await store.verify(key)
    assert (ident.kind, ident.principal, ident.scopes) == (
        "service",
        f"apikey:{record.id}",
        ("echo",),
    )


async def test_api_key_wrong_secret_revoked_and_cache(tmp_path: Path) -> None:
    """A wrong secret fails; a verified key is cached (one scrypt); revocation wins over cache."""
    store = ApiKeyStore(tmp_path / "keys.json", scrypt_n=1024, reload_s=0)
    key, record = store.create("bot", scopes=["*"])
    with pytest.raises(InvalidToken):
        await store.verify(key[:-1] + ("A" if key[-1] != "A" else "B"))
    await store.verify(key)
    calls = store.hash_calls
    await asyncio.gather(*(store.verify(key) for _ in range(5)))
    assert store.hash_calls == calls
    other = ApiKeyStore(tmp_path / "keys.json", scrypt_n=1024)  # e.g. the CLI, another process
    other.revoke(record.id)
    with pytest.raises(InvalidToken, match="revoked"):
        await store.verify(key)


async def test_api_key_rotation_grace(tmp_path: Path) -> None:
    """After rotate(grace) both keys work until the grace ends; then only the new one."""
    clock = [NOW]
    store = ApiKeyStore(tmp_path / "k.json", scrypt_n=1024, reload_s=0, clock=lambda: clock[0])
    old, record = store.create("bot", scopes=["echo"], ttl_s=3600)
    new, new_record = store.rotate(record.id, grace_s=60)
    assert new_record.scopes == ("echo",)
    assert new_record.name == "bot"
    assert (await store.verify(old)).principal == f"apikey:{record.id}"
    assert (await store.verify(new)).principal == f"apikey:{new_record.id}"
    clock[0] += 61
    with pytest.raises(InvalidToken):
        await store.verify(old)
    assert await store.verify(new)


def test_deny_list_expiry() -> None:
    """A revoked jti is refused until its 'until' time, then forgotten."""
    clock = [NOW]
    deny = JtiDenyList(clock=lambda: clock[0])
    deny.revoke("a", until=NOW + 10)
    assert deny.revoked("a")
    assert not deny.revoked("b")
    clock[0] += 11
    assert not deny.revoked("a")


def test_identity_config_admin_roles_default() -> None:
    """By default the admin API takes JWTs carrying registry-admin, approver or auditor."""
    assert IdentityConfig().admin_roles == ["registry-admin", "approver", "auditor"]


async def test_api_key_cli_create_rotate_revoke(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI prints a new key once, and the store verifies it; rotate and revoke take effect."""
    from maestro_gateway.identity._apikeys_cli import main

    store_file = str(tmp_path / "keys.json")
    base = ["--store", store_file, "--scrypt-n", "1024"]
    assert main([*base, "create", "bot", "--scope", "echo", "--ttl", "1d"]) == 0
    key = capsys.readouterr().out.splitlines()[0]
    store = ApiKeyStore(store_file, scrypt_n=1024, reload_s=0)
    ident = await store.verify(key)
    key_id = ident.principal.removeprefix("apikey:")
    assert main([*base, "rotate", key_id]) == 0
    new_key = capsys.readouterr().out.splitlines()[0]
    assert (await store.verify(new_key)).principal != ident.principal
    with pytest.raises(InvalidToken):
        await store.verify(key)
    assert main([*base, "revoke", new_key.split("_")[1]]) == 0
    with pytest.raises(InvalidToken):
        await store.verify(new_key)
    assert main([*base, "list"]) == 0
    listing = capsys.readouterr().out
    assert "revoked/expired" in listing
    assert key not in listing
    assert main([*base, "revoke", "0000000000000000"]) == 1


def test_token_age_and_time_claims() -> None:
    """exp is required, and max_token_age_s refuses tokens issued too long ago (iat)."""
    from maestro_gateway.identity.oidc import check_times

    cfg = IssuerConfig(issuer="i", audience=["a"], clock_skew_s=5, max_token_age_s=600)
    check_times(cfg, {"exp": NOW + 60, "iat": NOW - 100}, NOW)
    with pytest.raises(InvalidToken, match="too old"):
        check_times(cfg, {"exp": NOW + 60, "iat": NOW - 700}, NOW)
    with pytest.raises(InvalidToken, match="no 'exp'"):
        check_times(cfg, {"iat": NOW}, NOW)
    with pytest.raises(InvalidToken, match="not a number"):
        check_times(cfg, {"exp": True}, NOW)


async def test_jwks_ignores_secret_and_private_keys(tmp_path: Path) -> None:
    """A JWKS entry that is a shared secret (oct) or carries private parts is never used."""
    from joserfc.jwk import ECKey, OctKey

    from maestro_gateway.identity._http import IdpClient
    from maestro_gateway.identity.jwks import JwksCache

    ec = ECKey.generate_key("P-256", parameters={"kid": "priv"})
    oct_key = OctKey.generate_key(256, parameters={"kid": "secret"})
    good = ECKey.generate_key("P-256", parameters={"kid": "good"}).as_dict(private=False)
    keys = [oct_key.as_dict(private=True), ec.as_dict(private=True), good]
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": keys}))
    cfg = IssuerConfig(issuer="i", audience=["a"], discovery=False,
                       jwks_file=str(tmp_path / "jwks.json"), jwks_min_refetch_s=3600)  # fmt: skip
    cache = JwksCache(cfg, IdpClient())
    assert await cache.key("good", "ES256") is not None
    for kid, alg in (("secret", "HS256"), ("secret", "ES256"), ("priv", "ES256")):
        with pytest.raises(InvalidToken, match="unknown key"):
            await cache.key(kid, alg)
    with pytest.raises(InvalidToken, match="unknown key"):  # right kid, wrong curve for ES384
        await cache.key("good", "ES384")


async def test_authn_runs_before_ratelimit_and_validation() -> None:
    """With identity configured, authn comes right after enforce and before ratelimit/validate."""
    from maestro_gateway.pipeline import Pipeline

    cfg = parse_config(
        {
            "identity": {"issuers": [{"issuer": "https://idp", "audience": ["gw"]}]},
            "guards": {
                "ratelimit": {"limits": [{"name": "p", "key": ["principal"], "rate": "1/s"}]}
            },
        }
    )
    pipeline = Pipeline(cfg)
    try:
        names = [g.name for g in pipeline.guards("echo", None)]
        assert "authn" in names
        if "enforce" in names:
            assert names.index("authn") == names.index("enforce") + 1
        assert names.index("authn") < names.index("ratelimit") < names.index("validate")
        off = Pipeline(parse_config({}))
        assert "authn" not in [g.name for g in off.guards("echo", None)]
        await off.close()
    finally:
        await pipeline.close()
