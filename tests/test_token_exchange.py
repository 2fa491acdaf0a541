"""C16 through a real gateway, real demo agents and signed tokens: a supervisor agent trades the
user's token for a short-lived delegated token to one child agent and some of its skills
(RFC 8693), and the gateway holds that token to exactly its audience, scope and depth."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import ec

from maestro_gateway.config import GatewayKeyConfig
from maestro_gateway.demo.servers import AgentServers
from maestro_gateway.guards.authn import AUTHN_REQUIRED
from maestro_gateway.guards.delegation import DELEGATION_FORBIDDEN
from maestro_gateway.identity._delegation import TOKEN_TYPE_ACCESS, DelegatedTokens
from maestro_gateway.identity.devissuer import DevIssuer
from maestro_gateway.identity.exchange import GRANT_TYPE, load_gateway_key
from maestro_gateway.registry import _jose
from tests.conftest import TIMEOUT, RunningGateway, start_gateway

HTTP = aiohttp.ClientTimeout(total=TIMEOUT)
MFA = ["pwd", "otp"]
ISS = "urn:maestro:dev-issuer"
POLICY = """
@id("long-job-needs-ops")
forbid (principal, action == Action::"invoke", resource is Maestro::Agent)
when { context.skill == "long-job" } unless { principal.roles.contains("ops") };
"""


class Env:
    def __init__(self, gw: RunningGateway, dev: DevIssuer, state: Path) -> None:
        self.gw, self.url, self.dev, self.state = gw, gw.url, dev, state
        self.events: list[dict[str, Any]] = []
        gw.app.audit.observers.append(self.events.append)

    def token(self, sub: str, roles: list[str]) -> str:
        return self.dev.mint(sub, roles=roles, amr=MFA)

    @property
    def user(self) -> str:
        return self.token("uma-user", ["user"])

    @property
    def supervisor(self) -> str:
        return self.token("supervisor-agent", ["delegator"])

    async def exchange(
        self, subject: str, actor: str | None, audience: str, scope: str | None, **extra: str
    ) -> tuple[int, dict[str, Any]]:
        form = {
            "grant_type": GRANT_TYPE,
            "subject_token": subject,
            "subject_token_type": TOKEN_TYPE_ACCESS,
            "audience": audience,
            **extra,
        }
        if actor is not None:
            form |= {"actor_token": actor, "actor_token_type": TOKEN_TYPE_ACCESS}
        if scope is not None:
            form["scope"] = scope
        async with (
            aiohttp.ClientSession(timeout=HTTP) as http,
            http.post(self.url + "/oauth2/token", data=form) as r,
        ):
            assert r.headers["cache-control"] == "no-store"
            return r.status, await r.json(content_type=None)

    async def delegated(self, subject: str, actor: str, audience: str, scope: str) -> str:
        status, body = await self.exchange(subject, actor, audience, scope)
        assert status == 200, body
        return str(body["access_token"])

    async def call(self, token: str | None, agent: str, skill: str | None) -> dict[str, Any]:
        message: dict[str, Any] = {
            "messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "one two three four"}]
        }  # fmt: skip
        if skill is not None:
            message["metadata"] = {"skillId": skill}
        body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
        headers = {"A2A-Version": "1.0"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with (
            aiohttp.ClientSession(timeout=HTTP) as http,
            http.post(f"{self.url}/agents/{agent}", json=body, headers=headers) as r,
        ):
            return dict(await r.json(content_type=None))

    def audit_records(self) -> list[dict[str, Any]]:
        with sqlite3.connect(self.state / "audit.db") as db:
            rows = db.execute("SELECT entry FROM audit_entries ORDER BY seq").fetchall()
        return [json.loads(r[0])["record"] for r in rows]


def claims_of(token: str) -> dict[str, Any]:
    seg = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))))


def header_of(token: str) -> dict[str, Any]:
    seg = token.split(".")[0]
    return dict(json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))))


def error_code(answer: dict[str, Any]) -> int | None:
    error = answer.get("error")
    return error.get("code") if isinstance(error, dict) else None


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def env(demo_agents: AgentServers, tmp_path_factory: Any) -> AsyncIterator[Env]:
    state: Path = tmp_path_factory.mktemp("exchange")
    dev = DevIssuer(state)
    policy_file = state / "ops.cedar"
    policy_file.write_text(POLICY)
    echo = demo_agents.urls["echo"]
    gw = await start_gateway(
        state,
        {"echo": echo, "echo2": echo, "worker": demo_agents.urls["worker"]},
        identity={"issuers": [dev.issuer_config()], "exchange": {"enabled": True}},
        policy={"files": [str(policy_file)]},
        guards={"authn": {"required": True}},
    )
    try:
        yield Env(gw, dev, state)
    finally:
        await gw.close()


SUPERVISOR = f"{ISS}|supervisor-agent"


async def test_supervisor_gets_a_token_the_child_call_accepts(env: Env) -> None:
    """The exchange answers per RFC 8693 with a gateway-signed at+jwt for the child agent
    (sub = user, act = supervisor, aud = agent, scope = the skills), and a call to that agent
    and skill with it succeeds."""
    status, body = await env.exchange(env.user, env.supervisor, "echo", "summarize")
    assert status == 200, body
    assert body["issued_token_type"] == TOKEN_TYPE_ACCESS
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "summarize"
    assert 0 < body["expires_in"] <= 300
    token = body["access_token"]
    claims, header = claims_of(token), header_of(token)
    assert header["typ"] == "at+jwt"
    assert header["kid"] == env.gw.app.registry.signer.kid  # the key in /.well-known/jwks.json
    assert claims["iss"] == env.url
    assert (claims["sub"], claims["aud"], claims["scope"]) == ("uma-user", "echo", "summarize")
    assert claims["act"] == {"sub": SUPERVISOR}
    assert claims["exp"] - claims["iat"] == 300
    answer = await env.call(token, "echo", "summarize")
    assert "result" in answer, answer
    assert "one two" in json.dumps(answer["result"])


async def test_every_exchange_is_in_the_audit_log(env: Env) -> None:
    """A granted exchange is a durable token.exchanged record with chain, scopes and audience;
    a refused one is noted as token.exchange_refused."""
    token = await env.delegated(env.user, env.supervisor, "echo", "summarize echo")
    status, _ = await env.exchange(env.user, env.token("mallory", ["user"]), "echo", "echo")
    assert status == 400
    await asyncio.sleep(0)
    log = env.gw.app.audit.log
    assert log is not None
    await log.flush()
    records = env.audit_records()
    jti = claims_of(token)["jti"]
    granted = [r for r in records if r["type"] == "token.exchanged" and r["jti"] == jti]
    assert len(granted) == 1
    record = granted[0]
    assert record["chain"] == [SUPERVISOR]
    assert record["scopes"] == ["summarize", "echo"]
    assert record["audience"] == "echo"
    assert record["subject"] == f"{ISS}|uma-user"
    assert record["depth"] == 1
    refused = [r for r in records if r["type"] == "token.exchange_refused"]
    assert any(r["actor"] == f"{ISS}|mallory" and r["error"] == "unauthorized_client"
               for r in refused)  # fmt: skip


async def test_widening_scope_is_refused(env: Env) -> None:
    """A skill outside what the user may use, outside what the actor may use, unknown to the
    agent, or (re-delegating) outside the subject token's scope is refused with invalid_scope,
    never silently dropped; and a delegated token cannot call a skill outside its scope."""
    ops_sup = env.token("ops-supervisor", ["delegator", "ops"])
    ops_user = env.token("olga-ops", ["user", "ops"])
    status, body = await env.exchange(env.user, ops_sup, "worker", "long-job book-travel")
    assert (status, body["error"]) == (400, "invalid_scope"), body
    assert "user may not use skill 'long-job'" in body["error_description"]
    status, body = await env.exchange(ops_user, env.supervisor, "worker", "long-job")
    assert (status, body["error"]) == (400, "invalid_scope"), body
    assert "actor may not use" in body["error_description"]
    assert (await env.exchange(ops_user, ops_sup, "worker", "long-job"))[0] == 200
    status, body = await env.exchange(env.user, env.supervisor, "echo", "summarize teleport")
    assert (status, body["error"]) == (400, "invalid_scope")
    narrow = await env.delegated(env.user, env.supervisor, "echo", "summarize")
    sub2 = env.token("sub-supervisor", ["delegator"])
    status, body = await env.exchange(narrow, sub2, "echo2", "summarize echo")
    assert (status, body["error"]) == (400, "invalid_scope")
    assert "wider than the subject token" in body["error_description"]
    assert error_code(await env.call(narrow, "echo", "echo")) == DELEGATION_FORBIDDEN
    assert error_code(await env.call(narrow, "echo", None)) == DELEGATION_FORBIDDEN
    assert "result" in await env.call(narrow, "echo", "summarize")


async def test_token_is_refused_on_any_other_agent_and_off_the_data_plane(env: Env) -> None:
    """A delegated token for echo is refused on echo2 (same upstream), on the admin API and on
    the grant self-request endpoint; an exchange for an unknown agent or the router is
    invalid_target."""
    token = await env.delegated(env.user, env.supervisor, "echo", "summarize")
    answer = await env.call(token, "echo2", "summarize")
    assert error_code(answer) == AUTHN_REQUIRED, answer
    assert "only for agent 'echo'" in answer["error"]["message"]
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(timeout=HTTP) as http:
        async with http.get(env.url + "/admin/v1/agents", headers=headers) as r:
            assert r.status == 401
        body = {"agent": "echo", "skill": "summarize"}
        async with http.post(env.url + "/grants/v1/request", json=body, headers=headers) as r:
            assert r.status == 401
    status, body = await env.exchange(env.user, env.supervisor, "nowhere", "summarize")
    assert (status, body["error"]) == (400, "invalid_target")
    status, body = await env.exchange(env.user, env.supervisor, "router", "summarize")
    assert (status, body["error"]) == (400, "invalid_target")


async def test_delegation_depth_is_limited(env: Env) -> None:
    """user → supervisor → sub-supervisor nests the act chain (depth 2, the default limit) and
    works; a third hop is refused with invalid_grant."""
    first = await env.delegated(env.user, env.supervisor, "echo", "summarize echo")
    sub2 = env.token("sub-supervisor", ["delegator"])
    second = await env.delegated(first, sub2, "echo2", "summarize")
    claims = claims_of(second)
    assert claims["act"] == {"sub": f"{ISS}|sub-supervisor", "act": {"sub": SUPERVISOR}}
    assert (claims["sub"], claims["aud"]) == ("uma-user", "echo2")
    assert "result" in await env.call(second, "echo2", "summarize")
    sub3 = env.token("third-supervisor", ["delegator"])
    status, body = await env.exchange(second, sub3, "echo", "summarize")
    assert (status, body["error"]) == (400, "invalid_grant"), body
    assert "depth 3" in body["error_description"]


async def test_expired_delegated_token_is_refused(env: Env) -> None:
    """A delegated token signed with the gateway's own key but expired an hour ago is refused
    (401 invalid_token), on the data plane and as a subject token."""
    key, kid = load_gateway_key(GatewayKeyConfig(path=str(env.state / "gateway-key.pem")))
    past = DelegatedTokens(key, kid, env.url, 300, 30, clock=lambda: time.time() - 3600)
    ident = await env.gw.app.pipeline.authenticator.validate(env.user)
    expired, _ = past.mint(ident, (SUPERVISOR,), "echo", ("summarize",))
    answer = await env.call(expired, "echo", "summarize")
    assert error_code(answer) == AUTHN_REQUIRED
    assert "expired" in answer["error"]["message"]
    status, body = await env.exchange(expired, env.supervisor, "echo", "summarize")
    assert (status, body["error"]) == (400, "invalid_request")


async def test_actor_not_allowed_to_delegate_is_refused(env: Env) -> None:
    """An actor without the delegator role gets unauthorized_client; no actor at all, or an
    actor token that does not validate, is invalid_request; a delegated token is no actor."""
    plain = env.token("plain-agent", ["user"])
    status, body = await env.exchange(env.user, plain, "echo", "summarize")
    assert (status, body["error"]) == (400, "unauthorized_client"), body
    status, body = await env.exchange(env.user, None, "echo", "summarize")
    assert (status, body["error"]) == (400, "invalid_request")
    assert "actor is required" in body["error_description"]
    status, body = await env.exchange(env.user, env.supervisor[:-4] + "AAAA", "echo", "summarize")
    assert (status, body["error"]) == (400, "invalid_request")
    token = await env.delegated(env.user, env.supervisor, "echo", "summarize")
    status, body = await env.exchange(env.user, token, "echo", "summarize")
    assert (status, body["error"]) == (400, "invalid_request")
    assert "actor_token" in body["error_description"]


async def test_forged_or_tampered_delegated_token_is_refused(env: Env) -> None:
    """A delegated token whose claims were edited, one signed by another key under the
    gateway's kid, and an unsigned (alg none) one are all refused."""
    token = await env.delegated(env.user, env.supervisor, "echo", "summarize")
    head, _, sig = token.split(".")
    claims = claims_of(token) | {"scope": "summarize echo"}
    widened = f"{head}.{_jose.b64url(orjson.dumps(claims))}.{sig}"
    answer = await env.call(widened, "echo", "echo")
    assert error_code(answer) == AUTHN_REQUIRED
    assert "signature" in answer["error"]["message"]
    kid = header_of(token)["kid"]
    forger = DelegatedTokens(ec.generate_private_key(ec.SECP256R1()), kid, env.url)
    ident = await env.gw.app.pipeline.authenticator.validate(env.user)
    forged, _ = forger.mint(ident, (SUPERVISOR,), "echo", ("echo", "summarize"))
    assert error_code(await env.call(forged, "echo", "echo")) == AUTHN_REQUIRED
    none_head = _jose.b64url(orjson.dumps({"alg": "none", "typ": "at+jwt", "kid": kid}))
    unsigned = f"{none_head}.{_jose.b64url(orjson.dumps(claims))}."
    assert error_code(await env.call(unsigned, "echo", "echo")) == AUTHN_REQUIRED
    assert "result" in await env.call(token, "echo", "summarize")  # the genuine one works


async def test_malformed_requests_get_oauth_errors_not_500(env: Env) -> None:
    """A wrong grant type, a missing parameter, a repeated one, JSON instead of a form, a
    huge body and GET are each answered with a JSON OAuth error."""
    status, body = await env.exchange(env.user, env.supervisor, "echo", "summarize",
                                      grant_type="client_credentials")  # fmt: skip
    assert (status, body["error"]) == (400, "unsupported_grant_type")
    status, body = await env.exchange(env.user, env.supervisor, "echo", None)
    assert (status, body["error"]) == (400, "invalid_scope")
    async with aiohttp.ClientSession(timeout=HTTP) as http:
        form = f"grant_type={GRANT_TYPE}&grant_type={GRANT_TYPE}&subject_token=x"
        ctype = {"Content-Type": "application/x-www-form-urlencoded"}
        async with http.post(env.url + "/oauth2/token", data=form, headers=ctype) as r:
            assert (r.status, (await r.json())["error"]) == (400, "invalid_request")
        async with http.post(env.url + "/oauth2/token", json={"grant_type": GRANT_TYPE}) as r:
            assert (r.status, (await r.json())["error"]) == (400, "invalid_request")
        async with http.post(env.url + "/oauth2/token", data="a=" + "x" * 40_000,
                             headers=ctype) as r:  # fmt: skip
            assert (r.status, (await r.json())["error"]) == (413, "invalid_request")
        async with http.get(env.url + "/oauth2/token") as r:
            assert r.status == 405
        async with http.post(env.url + "/oauth2/token", data=b"\xff\xfe=\x00",
                             headers=ctype) as r:  # fmt: skip
            assert (r.status, (await r.json())["error"]) == (400, "invalid_request")


async def test_revoking_the_users_token_revokes_every_token_derived_from_it(env: Env) -> None:
    """The jti deny list reaches down the lineage: once the user's token is revoked, the
    delegated token and the one re-delegated from it are refused too."""
    user = env.token("vera-user", ["user"])
    first = await env.delegated(user, env.supervisor, "echo", "summarize")
    second = await env.delegated(first, env.token("sub-supervisor", ["delegator"]), "echo2",
                                 "summarize")  # fmt: skip
    assert "result" in await env.call(second, "echo2", "summarize")
    env.gw.app.pipeline.authenticator.denylist.revoke(claims_of(user)["jti"])
    for token, agent in ((first, "echo"), (second, "echo2")):
        answer = await env.call(token, agent, "summarize")
        assert error_code(answer) == AUTHN_REQUIRED
        assert "revoked" in answer["error"]["message"]
