"""C4 through a real gateway and demo agents, with tokens from a REAL OpenID provider."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from maestro_gateway.demo.servers import AgentServers
from maestro_gateway.guards.authn import AUTHN_FORBIDDEN, AUTHN_REQUIRED
from maestro_gateway.identity import ApiKeyStore
from tests.conftest import TIMEOUT, RunningGateway, start_gateway
from tests.oidc_provider import AUDIENCE, INTROSPECTION_CLIENT, OidcProvider

HTTP_TIMEOUT = aiohttp.ClientTimeout(total=TIMEOUT)
MFA = {"amr": ["pwd", "otp"], "acr": "urn:maestro:loa:2"}
STEP_UP = {"second_factor": True, "acr_values": ["urn:maestro:loa:2"], "max_age_s": 900}


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcProvider]:
    provider = OidcProvider.start()
    try:
        yield provider
    finally:
        provider.stop()


class Env:
    def __init__(self, gw: RunningGateway, idp: OidcProvider, keys: ApiKeyStore) -> None:
        self.gw, self.url, self.idp, self.keys = gw, gw.url, idp, keys

    async def call(
        self, agent: str, headers: dict[str, str] | None = None, text: str = "hello"
    ) -> tuple[int, dict[str, str], Any]:
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "SendMessage",
            "params": {
                "message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": text}]}
            },
        }
        async with (
            aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http,
            http.post(
                f"{self.url}/agents/{agent}",
                json=body,
                headers={"A2A-Version": "1.0", **(headers or {})},
            ) as r,
        ):
            return r.status, dict(r.headers), await r.json(content_type=None)

    async def token(self, account: str = "alice", **fields: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.idp.mint(account, **fields)}"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def env(
    demo_agents: AgentServers, idp: OidcProvider, tmp_path_factory: Any
) -> AsyncIterator[Env]:
    state: Path = tmp_path_factory.mktemp("authn")
    keys_path = state / "api-keys.json"
    issuer = {
        "issuer": idp.issuer,
        "audience": [AUDIENCE],
        "jwks_min_refetch_s": 0.5,
        "introspection": {
            "client_id": INTROSPECTION_CLIENT[0],
            "client_secret": INTROSPECTION_CLIENT[1],
        },
    }
    gw = await start_gateway(
        state,
        {"echo": demo_agents.urls["echo"], "vault": demo_agents.urls["echo"]},
        identity={
            "issuers": [issuer],
            "api_keys": {"path": str(keys_path), "scrypt_n": 1024, "reload_s": 0},
        },
        guards={
            "authn": {"required": True},
            "ratelimit": {
                "limits": [{"name": "per-user", "key": ["principal", "agent"], "rate": "3/min"}]
            },
        },
        guard_overrides=[
            {"agents": ["vault"], "guards": {"authn": {"mfa": STEP_UP}}},
            {"agents": ["echo"], "guards": {"ratelimit": {"limits": []}}},
        ],
    )
    try:
        yield Env(gw, idp, ApiKeyStore(keys_path, scrypt_n=1024))
    finally:
        await gw.close()


def challenge(headers: dict[str, str]) -> str:
    return headers.get("WWW-Authenticate", "")


async def test_mfa_token_reaches_both_agents(env: Env) -> None:
    """A token with amr [pwd, otp], the right acr and a fresh auth_time passes everywhere."""
    headers = await env.token(**MFA, auth_time=int(time.time()) - 10)
    status, _, body = await env.call("echo", headers)
    assert status == 200
    assert "echo: hello" in json.dumps(body)
    status, _, body = await env.call("vault", headers, "hello")
    assert status == 200
    assert "result" in body, body


async def test_password_only_token_gets_step_up_only_where_mfa_is_required(env: Env) -> None:
    """amr [pwd]: echo answers; vault (MFA required) gets the RFC 9470 step-up challenge."""
    headers = await env.token("bob", amr=["pwd"], auth_time=int(time.time()))
    status, _, body = await env.call("echo", headers)
    assert status == 200
    assert "echo: hello" in json.dumps(body)
    status, resp_headers, body = await env.call("vault", headers)
    assert status == 401
    assert body["error"]["code"] == AUTHN_REQUIRED
    value = challenge(resp_headers)
    assert value.startswith("Bearer ")
    assert 'error="insufficient_user_authentication"' in value
    assert 'acr_values="urn:maestro:loa:2"' in value
    assert "max_age=900" in value


async def test_stale_login_gets_step_up_with_max_age(env: Env) -> None:
    """A multi-factor login older than max_age must be refreshed (step-up), not accepted."""
    headers = await env.token(**MFA, auth_time=int(time.time()) - 7200)
    status, resp_headers, _ = await env.call("vault", headers)
    assert status == 401
    assert "insufficient_user_authentication" in challenge(resp_headers)
    assert "auth_time" in challenge(resp_headers)


async def test_missing_token_is_401_on_both_bindings(env: Env) -> None:
    """Without credentials the request is refused (401 with a Bearer challenge), also on REST."""
    status, headers, body = await env.call("echo")
    assert status == 401
    assert body["error"]["code"] == AUTHN_REQUIRED
    assert challenge(headers) == 'Bearer realm="maestro-gateway"'
    async with (
        aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http,
        http.get(f"{env.url}/agents/echo/rest/tasks/t1", headers={"A2A-Version": "1.0"}) as r,
    ):
        assert r.status == 401
        assert r.headers["WWW-Authenticate"].startswith("Bearer ")
        assert (await r.json(content_type=None))["error"]["status"] == "UNAUTHENTICATED"


async def test_bad_tokens_are_401_invalid_token(env: Env) -> None:
    """Expired, wrong-audience, tampered and alg-none tokens are 401 error="invalid_token"."""
    now = int(time.time())
    expired = (await env.token(**MFA, iat=now - 7200, exp=now - 3600))["Authorization"]
    wrong_aud = (await env.token(**MFA, resource="urn:other"))["Authorization"]
    good = (await env.token(amr=["pwd"]))["Authorization"]
    head, _, sig = good.split(".")
    tampered = f"{head}.eyJzdWIiOiJhbGljZSJ9.{sig}"
    none = "Bearer eyJhbGciOiJub25lIn0." + good.split(".")[1] + "."
    for value in (expired, wrong_aud, tampered, none, "Bearer garbage"):
        status, headers, body = await env.call("echo", {"Authorization": value})
        assert status == 401, (value, body)
        assert 'error="invalid_token"' in challenge(headers)


async def test_principal_is_known_before_the_rate_limit(env: Env) -> None:
    """A principal-keyed limit counts per authenticated user: alice is limited, bob is not."""
    alice = await env.token("alice-rl", **MFA, auth_time=int(time.time()))
    statuses = [(await env.call("vault", alice))[0] for _ in range(4)]
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3] == 429
    bob = await env.token("bob-rl", **MFA, auth_time=int(time.time()))
    assert (await env.call("vault", bob))[0] == 200


async def test_opaque_token_via_introspection(env: Env) -> None:
    """An opaque token from the provider is accepted through RFC 7662 introspection."""
    headers = await env.token("carol", **MFA, resource=None)
    assert "." not in headers["Authorization"]
    status, _, body = await env.call("echo", headers)
    assert status == 200
    assert "echo: hello" in json.dumps(body)


async def test_service_account_token_cannot_use_an_mfa_agent(env: Env) -> None:
    """A real client_credentials token reaches echo, but is refused (403) where MFA is required."""
    headers = {"Authorization": f"Bearer {await env.idp.client_credentials()}"}
    assert (await env.call("echo", headers))[0] == 200
    status, _, body = await env.call("vault", headers)
    assert status == 200
    assert body["error"]["code"] == AUTHN_FORBIDDEN


async def test_api_keys_scope_expiry_and_rotation(env: Env) -> None:
    """A scoped key works on its agent only; an expired key and a rotated-out key are refused."""
    key, record = env.keys.create("reporter-bot", scopes=["echo"], ttl_s=3600)
    assert (await env.call("echo", {"X-API-Key": key}))[0] == 200
    assert (await env.call("echo", {"Authorization": f"Bearer {key}"}))[0] == 200
    _status, _, body = await env.call("vault", {"X-API-Key": key})
    assert body["error"]["code"] == AUTHN_FORBIDDEN
    assert "scoped" in body["error"]["message"]
    expired, _ = env.keys.create("old-bot", scopes=["*"], ttl_s=0.01)
    await asyncio.sleep(0.05)
    assert (await env.call("echo", {"X-API-Key": expired}))[0] == 401
    new_key, _ = env.keys.rotate(record.id, grace_s=0)
    assert (await env.call("echo", {"X-API-Key": key}))[0] == 401
    assert (await env.call("echo", {"X-API-Key": new_key}))[0] == 200
    wrong_secret = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert (await env.call("echo", {"X-API-Key": wrong_secret}))[0] == 401


async def test_key_rotation_while_the_gateway_runs(env: Env) -> None:
    """After the provider rotates its signing key, new-kid tokens are accepted (JWKS refetch)."""
    await env.idp.rotate(keep_old=False)
    await asyncio.sleep(0.6)  # past jwks_min_refetch_s
    headers = await env.token(**MFA, auth_time=int(time.time()))
    status, _, body = await env.call("echo", headers)
    assert status == 200
    assert "echo: hello" in json.dumps(body)


async def test_identity_provider_down_is_503_fail_closed(
    demo_agents: AgentServers, tmp_path: Path
) -> None:
    """With the JWKS unreachable and no cached keys the gateway answers 503, not 500 or 200."""
    issuer = {"issuer": "http://127.0.0.1:9", "audience": [AUDIENCE], "http_timeout_s": 1}
    gw = await start_gateway(
        tmp_path,
        {"echo": demo_agents.urls["echo"]},
        identity={"issuers": [issuer]},
        guards={"authn": {"required": True}},
    )
    try:
        head = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ"  # {"alg":"RS256","kid":"k"}
        claims = json.dumps({"iss": "http://127.0.0.1:9", "aud": AUDIENCE, "exp": 2e9}).encode()
        import base64

        body = base64.urlsafe_b64encode(claims).rstrip(b"=").decode()
        env = Env(gw, None, None)  # type: ignore[arg-type]
        status, headers, reply = await env.call(
            "echo", {"Authorization": f"Bearer {head}.{body}.c2ln"}
        )
        assert status == 503, reply
        assert headers.get("Retry-After") == "5"
    finally:
        await gw.close()


async def test_admin_api_takes_provider_jwts_as_the_actor(
    env: Env, demo_agents: AgentServers
) -> None:
    """A provider JWT with the registry-admin role acts on the admin API and is the recorded
    actor (iss|sub); a JWT without an admin role is 403 and a tampered one 401."""
    admin = await env.token(
        "ada", **MFA, auth_time=int(time.time()), claims={"roles": ["registry-admin"]}
    )
    card_url = demo_agents.urls["echo"]
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        async with http.post(
            f"{env.url}/admin/v1/agents", json={"id": "spare", "card_url": card_url}, headers=admin
        ) as r:
            body = await r.json()
            assert r.status == 201, body
            assert body["created_by"] == f"{env.idp.issuer}|ada"
        plain = await env.token("uma", **MFA, claims={"roles": ["user"]})
        async with http.get(f"{env.url}/admin/v1/agents", headers=plain) as r:
            assert r.status == 403
        tampered = {"Authorization": admin["Authorization"][:-4] + "AAAA"}
        async with http.get(f"{env.url}/admin/v1/agents", headers=tampered) as r:
            assert r.status == 401
            assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
