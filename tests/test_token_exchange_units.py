"""C16 units: the act chain (RFC 8693 §4.1), delegated-token verification, the delegation guard,
the authenticator's audience rule, and the token exchange driven at the ASGI level with a real
client SVID (from the development CA) as the actor."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from maestro_gateway.audit.recorder import AuditRecorder
from maestro_gateway.config import AuditConfig, parse_config
from maestro_gateway.context import RequestContext
from maestro_gateway.guards.delegation import DELEGATION_FORBIDDEN, DelegationGuard
from maestro_gateway.identity._delegation import (
    TOKEN_TYPE_ACCESS,
    DelegatedTokens,
    act_chain,
    act_claim,
)
from maestro_gateway.identity.authenticator import Authenticator
from maestro_gateway.identity.config import ExchangeConfig, IdentityConfig
from maestro_gateway.identity.devissuer import DevIssuer
from maestro_gateway.identity.exchange import GRANT_TYPE, TokenExchange
from maestro_gateway.identity.model import Identity, InvalidToken
from maestro_gateway.policy import PolicyConfig, PolicyRuntime
from maestro_gateway.registry import _jose
from maestro_gateway.registry.routing import Directory, Target
from maestro_gateway.spiffe import init_ca, issue_svid
from maestro_gateway.types import Message, VerdictKind

ISS = "https://gw.example"
KEY = ec.generate_private_key(ec.SECP256R1())
USER = Identity(
    kind="person", subject="uma", issuer="urn:idp", principal="urn:idp|uma", token_id="j1",
    method="jwt", roles=("user",), amr=("pwd", "otp"), acr="loa2", auth_time=1, mfa=True,
    strength=2, tenant="acme",
)  # fmt: skip


def tokens(clock: Any = time.time) -> DelegatedTokens:
    return DelegatedTokens(KEY, "gw-1", ISS, 300, 30, clock=clock)


def test_act_claim_nests_current_actor_outermost() -> None:
    """RFC 8693 §4.1: the outermost act is the current actor, prior actors nest inside it; the
    chain reads back in the same order."""
    claim = act_claim(["svc-b", "svc-a"])
    assert claim == {"sub": "svc-b", "act": {"sub": "svc-a"}}
    assert act_chain(claim) == ("svc-b", "svc-a")
    assert act_chain(None) == ()


def test_malformed_or_endless_act_claims_are_refused() -> None:
    """An act without a string sub, or nested deeper than the hard cap, is an invalid token."""
    with pytest.raises(InvalidToken):
        act_chain({"sub": 7})
    with pytest.raises(InvalidToken):
        act_chain({"act": {"sub": "x"}})
    deep: dict[str, Any] = {"sub": "a"}
    for _ in range(20):
        deep = {"sub": "a", "act": deep}
    with pytest.raises(InvalidToken):
        act_chain(deep)


def test_minted_token_verifies_to_the_users_delegated_identity() -> None:
    """The identity of a delegated token is the user's principal and login context, with the
    actor chain, the skills as scopes and the one agent as audience."""
    t = tokens()
    token, claims = t.mint(USER, ("svc-b", "svc-a"), "echo", ("summarize",))
    ident = t.verify(token)
    assert ident.principal == "urn:idp|uma"
    assert ident.delegation == ("svc-b", "svc-a")
    assert ident.scopes == ("summarize",)
    assert ident.audience == ("echo",)
    assert (ident.mfa, ident.amr, ident.acr, ident.tenant) == (True, ("pwd", "otp"), "loa2", "acme")
    assert claims["client_id"] == "svc-b"
    assert ident.record()["delegation"] == ["svc-b", "svc-a"]


def _resign(header: dict[str, Any], claims: dict[str, Any], key: Any = KEY) -> str:
    signing = f"{_jose.b64url(orjson.dumps(header))}.{_jose.b64url(orjson.dumps(claims))}"
    return f"{signing}.{_jose.b64url(_jose.sign('ES256', key, signing.encode()))}"


def test_header_tricks_and_foreign_issuers_are_refused() -> None:
    """Tokens naming another kid, carrying a jku, typed otherwise, signed by another key, from
    another issuer, or without an act chain never verify."""
    t = tokens()
    _, claims = t.mint(USER, ("svc",), "echo", ("summarize",))
    good = {"alg": "ES256", "typ": "at+jwt", "kid": "gw-1"}
    assert t.verify(_resign(good, claims)).delegation == ("svc",)
    bad = [
        _resign({**good, "kid": "other"}, claims),
        _resign({**good, "jku": "https://evil/jwks"}, claims),
        _resign({**good, "typ": "JWT"}, claims),
        _resign(good, claims, ec.generate_private_key(ec.SECP256R1())),
        _resign(good, {**claims, "iss": "https://evil"}),
        _resign(good, {k: v for k, v in claims.items() if k != "act"}),
    ]
    for token in bad:
        with pytest.raises(InvalidToken):
            t.verify(token)


def test_expiry_and_not_before_are_checked_on_every_use() -> None:
    """A token verified once is still refused after it expires (the cache does not skip exp)."""
    now = [time.time()]
    t = tokens(clock=lambda: now[0])
    token, _ = t.mint(USER, ("svc",), "echo", ("summarize",))
    t.verify(token)
    now[0] += 400
    with pytest.raises(InvalidToken, match="expired"):
        t.verify(token)
    early = DelegatedTokens(KEY, "gw-1", ISS, 300, 30, clock=lambda: time.time() + 600)
    with pytest.raises(InvalidToken, match="not yet valid"):
        t.verify(early.mint(USER, ("svc",), "echo", ("summarize",))[0])


async def test_authenticator_accepts_delegated_tokens_only_for_their_agent() -> None:
    """Without an agent (admin API, grant requests, an exchange's actor) a delegated token is
    refused; with its audience it is accepted; a revoked jti is refused everywhere."""
    auth = Authenticator(IdentityConfig())
    t = tokens()
    token, claims = t.mint(USER, ("svc",), "echo", ("summarize",))
    with pytest.raises(InvalidToken, match="untrusted issuer"):  # not trusted until bound
        await auth.validate(token, "echo")
    auth.trust_delegated(t)
    with pytest.raises(InvalidToken, match="only for agent 'echo'"):
        await auth.authenticate({"authorization": f"Bearer {token}"})
    with pytest.raises(InvalidToken):
        await auth.validate(token, "echo2")
    assert (await auth.validate(token, "echo")).delegation == ("svc",)
    assert (await auth.validate(token, any_agent=True)).scopes == ("summarize",)
    auth.denylist.revoke(claims["jti"])
    with pytest.raises(InvalidToken, match="revoked"):
        await auth.validate(token, "echo")
    await auth.aclose()


def _ctx(ident: Identity | None, method: str = "SendMessage", skill: str | None = "summarize",
         agent: str = "echo") -> RequestContext:  # fmt: skip
    extra = {"identity": ident} if ident is not None else {}
    return RequestContext("r1", agent, method, {}, skill_id=skill, extra=extra)


async def test_delegation_guard_holds_a_token_to_agent_skills_and_depth() -> None:
    """The guard passes in-scope messages and task reads; it refuses another agent, an
    out-of-scope or unnamed skill, push configs, and a chain longer than the current limit."""
    ident = tokens().verify(tokens().mint(USER, ("b", "a"), "echo", ("summarize",))[0])
    guard = DelegationGuard(ExchangeConfig(enabled=True, max_depth=2))
    assert (await guard.on_request(_ctx(ident))).allowed
    assert (await guard.on_request(_ctx(ident, "GetTask", None))).allowed
    assert (await guard.on_request(_ctx(USER, skill="anything"))).allowed  # not delegated
    refused = [
        _ctx(ident, agent="echo2"),
        _ctx(ident, skill="echo"),
        _ctx(ident, skill=None),
        _ctx(ident, "CreateTaskPushNotificationConfig", None),
    ]
    for ctx in refused:
        verdict = await guard.on_request(ctx)
        assert verdict.kind is VerdictKind.DENY
        assert verdict.code == DELEGATION_FORBIDDEN
    lowered = DelegationGuard(ExchangeConfig(enabled=True, max_depth=1))
    assert (await lowered.on_request(_ctx(ident))).details["rule"] == "delegation-depth"


# -- the endpoint at the ASGI level, with a client SVID as the actor -------------------------


class Harness:
    def __init__(self, tmp: Path) -> None:
        self.dev = DevIssuer(tmp)
        ca = init_ca(tmp / "ca", "example.org")
        self.sup = issue_svid(ca, "supervisor", "spiffe://example.org/supervisor")
        self.other = issue_svid(ca, "other", "spiffe://example.org/other")
        self.sup_pem = self.sup.cert_path.read_text()
        self.other_pem = self.other.cert_path.read_text()
        cfg = parse_config(
            {
                "public_url": ISS,
                "gateway_key": {"path": str(tmp / "gw.pem")},
                "identity": {
                    "issuers": [self.dev.issuer_config()],
                    "api_keys": {"path": str(tmp / "keys.json"), "scrypt_n": 1024},
                    "exchange": {
                        "enabled": True,
                        "workload_roles": {self.sup.spiffe_id: ["delegator"]},
                    },
                },
            }
        )
        self.auth = Authenticator(cfg.identity)
        directory = Directory()
        skills = frozenset({"echo", "summarize"})
        directory.replace({"echo": Target("echo", "http://127.0.0.1:1", "1.0", {}, skills)})
        self.audit = AuditRecorder(AuditConfig(enabled=False))
        self.events: list[dict[str, Any]] = []
        self.audit.observers.append(self.events.append)
        policy = PolicyRuntime.from_config(PolicyConfig())
        self.app = TokenExchange(cfg, self.auth, policy, directory, self.audit)

    async def post(self, form: dict[str, str], cert: str | None) -> tuple[int, dict[str, Any]]:
        scope: dict[str, Any] = {
            "type": "http", "method": "POST", "path": "/oauth2/token", "client": ("127.0.0.1", 9),
            "headers": [(b"content-type", b"application/x-www-form-urlencoded")],
        }  # fmt: skip
        if cert is not None:
            scope["extensions"] = {"tls": {"client_cert_chain": [cert]}}
        body = urlencode(form).encode()
        sent: list[dict[str, Any]] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Message) -> None:
            sent.append(dict(message))

        await asyncio.wait_for(self.app(scope, receive, send), 10)
        return sent[0]["status"], orjson.loads(sent[1]["body"])

    def form(self, **extra: str) -> dict[str, str]:
        user = self.dev.mint("uma", roles=["user"], amr=["pwd", "otp"])
        return {"grant_type": GRANT_TYPE, "subject_token": user,
                "subject_token_type": TOKEN_TYPE_ACCESS, "audience": "echo",
                "scope": "summarize", **extra}  # fmt: skip


async def test_client_svid_actor_with_delegator_role_gets_a_token(tmp_path: Path) -> None:
    """An actor proven by a real X.509 SVID whose SPIFFE ID is given the delegator role gets a
    token whose act names that SPIFFE ID; the exchange is a critical audit record."""
    h = Harness(tmp_path)
    status, body = await h.post(h.form(), h.sup_pem)
    assert status == 200, body
    assert h.app.tokens is not None
    ident = h.app.tokens.verify(body["access_token"])
    assert ident.delegation == ("spiffe://example.org/supervisor",)
    assert ident.principal == "urn:maestro:dev-issuer|uma"
    [record] = [e for e in h.events if e["type"] == "token.exchanged"]
    assert record["actor_via"] == "svid"
    assert record["chain"] == ["spiffe://example.org/supervisor"]
    await h.auth.aclose()


async def test_client_svid_actor_without_role_or_with_garbage_is_refused(tmp_path: Path) -> None:
    """Another SPIFFE ID (no delegator role) is unauthorized_client; a certificate that is not
    an SVID is invalid_request; an actor_token wins over a certificate and is validated."""
    h = Harness(tmp_path)
    status, body = await h.post(h.form(), h.other_pem)
    assert (status, body["error"]) == (400, "unauthorized_client")
    junk = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    status, body = await h.post(h.form(), junk)
    assert (status, body["error"]) == (400, "invalid_request")
    form = h.form(actor_token="not-a-token", actor_token_type=TOKEN_TYPE_ACCESS)
    status, body = await h.post(form, h.sup_pem)
    assert (status, body["error"]) == (400, "invalid_request")
    refused = [e for e in h.events if e["type"] == "token.exchange_refused"]
    assert [e["error"] for e in refused] == ["unauthorized_client", *["invalid_request"] * 2]
    await h.auth.aclose()


async def test_unrecorded_exchange_hands_out_no_token(tmp_path: Path) -> None:
    """When the audit log cannot record the exchange the answer is 503 with no token."""
    h = Harness(tmp_path)
    # enabled but never started: critical() raises AuditUnavailable
    h.audit.cfg = h.audit.cfg.model_copy(update={"enabled": True})
    status, body = await h.post(h.form(), h.sup_pem)
    assert (status, body["error"]) == (503, "temporarily_unavailable")
    assert "access_token" not in body
    await h.auth.aclose()


async def test_api_key_actor_is_bounded_by_its_key_scope(tmp_path: Path) -> None:
    """A service account proving itself with an API key (delegator role) may delegate the
    skills its key is scoped to; a skill outside the key's scope is invalid_scope."""
    h = Harness(tmp_path)
    store = h.auth.api_keys
    assert store is not None
    key, record = store.create("planner", ["echo/summarize"], roles=["delegator"])
    form = h.form(actor_token=key, actor_token_type=TOKEN_TYPE_ACCESS)
    status, body = await h.post(form, None)
    assert status == 200, body
    assert h.app.tokens is not None
    assert h.app.tokens.verify(body["access_token"]).delegation == (f"apikey:{record.id}",)
    status, body = await h.post({**form, "scope": "summarize echo"}, None)
    assert (status, body["error"]) == (400, "invalid_scope")
    assert "actor may not use skill 'echo'" in body["error_description"]
    await h.auth.aclose()
