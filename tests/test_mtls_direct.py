"""T6 gateway bypass on real TLS: direct calls to a guarded agent are refused, whatever they
present, while a request carrying the gateway's SVID and a fresh assertion gets through."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from maestro_gateway.assertion import AssertionSigner
from maestro_gateway.demo.servers import AgentServers
from maestro_gateway.registry.signing import GatewaySigner
from maestro_gateway.spiffe import init_ca, issue_svid
from tests.test_mtls import (
    GW_ID,
    HTTP_TIMEOUT,
    KID,
    V10,
    SeenCerts,
    client_ctx,
    make_pki,
    send_body,
    start_guarded_agents,
)


@dataclass
class Direct:
    pki: Path
    other: Path
    url: str
    assertions: AssertionSigner

    def sign(self, body: bytes) -> str:
        return self.assertions.sign("echo", "POST", "/", body, subject="idp|alice")

    async def post(
        self, ctx: ssl.SSLContext, body: bytes, token: str | None = None
    ) -> tuple[int, str]:
        headers = dict(V10)
        if token is not None:
            headers["Maestro-Assertion"] = token
        conn = aiohttp.TCPConnector(ssl=ctx)
        async with (
            aiohttp.ClientSession(timeout=HTTP_TIMEOUT, connector=conn) as session,
            session.post(self.url + "/", data=body, headers=headers) as resp,
        ):
            return resp.status, await resp.text()


@pytest_asyncio.fixture(scope="module")
async def direct(tmp_path_factory: Any) -> AsyncIterator[Direct]:
    root = tmp_path_factory.mktemp("direct")
    pki = make_pki(root)
    other = root / "other"  # another trust domain with a look-alike gateway ID
    init_ca(other, "other.test")
    issue_svid(other, "gateway", "spiffe://other.test/gateway")
    signer = GatewaySigner(root / "gateway-key.pem", kid=KID)
    seen: dict[str, SeenCerts] = {}
    agents: AgentServers = await start_guarded_agents(pki, signer, {"echo": "echo"}, seen)
    assertions = AssertionSigner(signer._key, signer.kid, issuer=GW_ID)
    try:
        yield Direct(pki, other, agents.urls["echo"], assertions)
    finally:
        await agents.close()


async def test_gateway_svid_with_fresh_assertion_is_served(direct: Direct) -> None:
    """The control case: the gateway's SVID and a fresh assertion for this body get 200."""
    body = send_body()
    status, text = await direct.post(client_ctx(direct.pki, "gateway"), body, direct.sign(body))
    assert status == 200, text
    assert "echo: hello" in text


async def test_no_client_certificate_fails_the_handshake(direct: Direct) -> None:
    """A caller without a client certificate never gets an HTTP answer."""
    body = send_body()
    with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
        await direct.post(client_ctx(direct.pki, None), body, direct.sign(body))


async def test_certificate_of_another_trust_domain_fails_the_handshake(direct: Direct) -> None:
    """A gateway-looking SVID from another trust domain is refused in the handshake."""
    ctx = client_ctx(direct.pki, None)
    ctx.load_cert_chain(direct.other / "gateway.pem", direct.other / "gateway.key")
    body = send_body()
    with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
        await direct.post(ctx, body, direct.sign(body))


async def test_other_workload_of_the_trust_domain_gets_403(direct: Direct) -> None:
    """A valid SVID of the trust domain that is not the gateway's is refused (403), even with
    a valid assertion."""
    body = send_body()
    status, text = await direct.post(client_ctx(direct.pki, "intruder"), body, direct.sign(body))
    assert status == 403, text
    assert "not the gateway" in text


async def test_missing_assertion_gets_401(direct: Direct) -> None:
    """The gateway's certificate alone is not enough: without an assertion, 401."""
    status, text = await direct.post(client_ctx(direct.pki, "gateway"), send_body())
    assert status == 401, text


async def test_replayed_assertion_gets_403(direct: Direct) -> None:
    """An assertion accepted once is refused the second time (nonce replay check)."""
    body = send_body("once")
    token = direct.sign(body)
    ctx = client_ctx(direct.pki, "gateway")
    assert (await direct.post(ctx, body, token))[0] == 200
    status, text = await direct.post(ctx, body, token)
    assert status == 403, text
    assert "replayed" in text


async def test_altered_body_under_a_valid_assertion_gets_403(direct: Direct) -> None:
    """A valid assertion does not cover another body."""
    token = direct.sign(send_body("pay 10"))
    status, text = await direct.post(
        client_ctx(direct.pki, "gateway"), send_body("pay 10000"), token
    )
    assert status == 403, text
    assert "body" in text
