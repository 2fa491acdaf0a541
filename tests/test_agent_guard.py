"""T6 gateway-bypass proof: request assertions and the agent-side GatewayOnly middleware."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from maestro_gateway.agent import AssertionRefused, AssertionVerifier, GatewayOnly
from maestro_gateway.assertion import AssertionSigner
from maestro_gateway.registry import _jose
from maestro_gateway.spiffe import init_ca, issue_svid

GW = "spiffe://maestro.test/gateway"
KEY = ec.generate_private_key(ec.SECP256R1())
JWK = {**_jose.public_jwk(KEY), "kid": "gw-1", "alg": "ES256"}
SIGNER = AssertionSigner(KEY, "gw-1", issuer=GW)
BODY = b'{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{}}'


def verifier(**kw: Any) -> AssertionVerifier:
    return AssertionVerifier({"gw-1": JWK}, issuer=GW, audience="echo", **kw)


def test_valid_assertion_verifies_once() -> None:
    """A fresh assertion for this request verifies; the same one again is a replay."""
    v = verifier()
    token = SIGNER.sign("echo", "POST", "/", BODY, subject="idp|alice")
    assert v.verify(token, "POST", "/", BODY)["sub"] == "idp|alice"
    with pytest.raises(AssertionRefused, match="replayed"):
        v.verify(token, "POST", "/", BODY)


@pytest.mark.parametrize(
    ("method", "path", "body", "why"),
    [
        ("POST", "/", BODY + b" ", "body"),
        ("POST", "/other", BODY, "method or path"),
        ("GET", "/", BODY, "method or path"),
    ],
)
def test_assertion_is_bound_to_the_request(method: str, path: str, body: bytes, why: str) -> None:
    """An assertion for one request does not cover an altered body, path or method."""
    token = SIGNER.sign("echo", "POST", "/", BODY)
    with pytest.raises(AssertionRefused, match=why):
        verifier().verify(token, method, path, body)


def test_wrong_audience_and_expired_are_refused() -> None:
    """An assertion for another agent, or an expired one, is refused."""
    with pytest.raises(AssertionRefused, match="audience"):
        verifier().verify(SIGNER.sign("writer", "POST", "/", BODY), "POST", "/", BODY)
    old = AssertionSigner(KEY, "gw-1", issuer=GW, ttl_s=-60)
    with pytest.raises(AssertionRefused, match="expired"):
        verifier().verify(old.sign("echo", "POST", "/", BODY), "POST", "/", BODY)


def _forge(header: dict[str, Any], claims: dict[str, Any], sig: bytes = b"") -> str:
    return ".".join(
        [_jose.b64url(orjson.dumps(header)), _jose.b64url(orjson.dumps(claims)), _jose.b64url(sig)]
    )


def test_forged_assertions_are_refused() -> None:
    """alg none, HS256 with the public key, another key, a tampered payload: all refused."""
    good = SIGNER.sign("echo", "POST", "/", BODY)
    claims = orjson.loads(_jose.b64url_decode(good.split(".")[1]))
    typ = "maestro-req+jwt"
    v = verifier()
    with pytest.raises(AssertionRefused):
        v.verify(_forge({"alg": "none", "kid": "gw-1", "typ": typ}, claims), "POST", "/", BODY)
    with pytest.raises(AssertionRefused):
        v.verify(
            _forge({"alg": "HS256", "kid": "gw-1", "typ": typ}, claims, b"x"), "POST", "/", BODY
        )
    other = AssertionSigner(ec.generate_private_key(ec.SECP256R1()), "gw-1", issuer=GW)
    with pytest.raises(AssertionRefused, match="signature"):
        v.verify(other.sign("echo", "POST", "/", BODY), "POST", "/", BODY)
    h, _, s = good.split(".")
    tampered = {**claims, "sub": "idp|admin"}
    with pytest.raises(AssertionRefused, match="signature"):
        v.verify(f"{h}.{_jose.b64url(orjson.dumps(tampered))}.{s}", "POST", "/", BODY)
    with pytest.raises(AssertionRefused, match="malformed"):
        v.verify("not.a.jwt!", "POST", "/", BODY)


# --- the middleware, driven as ASGI ---


@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("pki")
    init_ca(root, "maestro.test")
    issue_svid(root, "gateway", GW)
    issue_svid(root, "rogue", "spiffe://maestro.test/agent/rogue")
    return {n: Path(root / f"{n}.pem").read_text() for n in ("gateway", "rogue")}


async def call(app: GatewayOnly, cert: str | None, token: str | None, body: bytes = BODY) -> Any:
    headers = [(b"content-type", b"application/json")]
    if token:
        headers.append((b"maestro-assertion", token.encode()))
    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    if cert:
        scope["extensions"] = {"tls": {"client_cert_chain": [cert]}}
    chunks = [body[:10], body[10:]]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def agent_app(seen: list[Any]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        msg = await receive()
        seen.append((msg["body"], scope["state"]["maestro"]["sub"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


async def test_request_from_the_gateway_reaches_the_agent(pems: dict[str, str]) -> None:
    """Gateway SVID + a valid assertion: the agent gets the exact body and the end user."""
    seen: list[Any] = []
    mw = GatewayOnly(agent_app(seen), gateway_spiffe_id=GW, verifier=verifier())
    sent = await call(mw, pems["gateway"], SIGNER.sign("echo", "POST", "/", BODY, "idp|alice"))
    assert sent[0]["status"] == 200
    assert seen == [(BODY, "idp|alice")]


async def test_direct_calls_are_refused(pems: dict[str, str]) -> None:
    """No certificate (401), another workload's SVID (403), no assertion (401), a replayed
    assertion (403): none reaches the agent."""
    seen: list[Any] = []
    mw = GatewayOnly(agent_app(seen), gateway_spiffe_id=GW, verifier=verifier())
    token = SIGNER.sign("echo", "POST", "/", BODY)
    assert (await call(mw, None, token))[0]["status"] == 401
    assert (await call(mw, pems["rogue"], token))[0]["status"] == 403
    assert (await call(mw, pems["gateway"], None))[0]["status"] == 401
    assert (await call(mw, pems["gateway"], token))[0]["status"] == 200
    assert (await call(mw, pems["gateway"], token))[0]["status"] == 403  # replay
    assert len(seen) == 1


async def test_public_card_stays_readable(pems: dict[str, str]) -> None:
    """GET of the public agent card passes without certificate or assertion."""
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    mw = GatewayOnly(app, gateway_spiffe_id=GW, verifier=verifier())
    scope = {"type": "http", "method": "GET", "path": "/.well-known/agent-card.json", "headers": []}
    out: list[Any] = []

    async def send(m: Any) -> None:
        out.append(m)

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    await mw(scope, receive, send)
    assert out[0]["status"] == 200
    assert seen == ["/.well-known/agent-card.json"]
