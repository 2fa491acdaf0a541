"""C12 SPIFFE: the development CA, X.509 SVIDs and real mTLS handshakes on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from maestro_gateway.spiffe import (
    CaError,
    InvalidSpiffeId,
    PeerRefused,
    SvidContexts,
    SvidPaths,
    check_peer,
    init_ca,
    issue_svid,
    parse_spiffe_id,
    rotate_svid,
    spiffe_id_of_cert,
)

GW = "spiffe://maestro.test/gateway"
AGENT = "spiffe://maestro.test/agent/echo"


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    root = init_ca(tmp_path / "pki", "maestro.test")
    issue_svid(root, "gateway", GW)
    issue_svid(root, "echo", AGENT)
    return root


async def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> tuple[str, str]:
    """One real TLS handshake on loopback: (SPIFFE ID the client saw, the server saw)."""
    seen: dict[str, str] = {}

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            seen["server"] = check_peer(writer.get_extra_info("ssl_object"), None)
            writer.write(b"ok")
            await writer.drain()
        finally:
            writer.close()

    srv = await asyncio.start_server(on_conn, "127.0.0.1", 0, ssl=server)
    port = srv.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        client_saw = check_peer(writer.get_extra_info("ssl_object"), None)
        assert await reader.read(2) == b"ok"
        writer.close()
        await asyncio.sleep(0)
    finally:
        srv.close()
        await srv.wait_closed()
    return client_saw, seen["server"]


async def refused(server: ssl.SSLContext, client: ssl.SSLContext) -> bool:
    """True when the server never accepted the client's identity (with TLS 1.3 the client may
    finish its side before the server rejects its certificate and closes)."""
    try:
        await handshake(server, client)
    except (ssl.SSLError, ConnectionError, KeyError, AssertionError, asyncio.IncompleteReadError):
        return True
    return False


def test_spiffe_id_rules() -> None:
    """Valid IDs pass; ports, upper-case trust domains, dot segments and queries do not."""
    assert (
        parse_spiffe_id("spiffe://example.org/ns/prod/sa/x") == "spiffe://example.org/ns/prod/sa/x"
    )
    for bad in (
        "https://example.org/x",
        "spiffe://Example.org/x",
        "spiffe://example.org:443/x",
        "spiffe://example.org/a/../b",
        "spiffe://example.org/a//b",
        "spiffe://example.org/x?y=1",
        "spiffe:///x",
    ):
        with pytest.raises(InvalidSpiffeId):
            parse_spiffe_id(bad)


def test_issued_svid_is_a_short_lived_leaf_with_one_uri_san(ca: Path) -> None:
    """An SVID carries its SPIFFE ID as its only URI SAN, is no CA, and expires as asked."""
    issued = issue_svid(ca, "short", "spiffe://maestro.test/x", ttl=dt.timedelta(minutes=30))
    cert = x509.load_pem_x509_certificate(issued.cert_path.read_bytes())
    assert spiffe_id_of_cert(cert) == "spiffe://maestro.test/x"
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert life <= dt.timedelta(minutes=32)
    assert oct(issued.key_path.stat().st_mode)[-3:] == "600"


def test_ca_refuses_foreign_trust_domain_and_overwrite(ca: Path) -> None:
    """The CA issues only in its own trust domain and never overwrites itself."""
    with pytest.raises(CaError, match="outside"):
        issue_svid(ca, "evil", "spiffe://other.test/x")
    with pytest.raises(CaError, match="already exists"):
        init_ca(ca, "maestro.test")


async def test_mutual_tls_handshake_reveals_both_spiffe_ids(ca: Path) -> None:
    """Gateway (client) and agent (server) each verify the other's SVID on a real handshake."""
    agent = SvidContexts(SvidPaths.in_dir(ca, "echo"))
    gateway = SvidContexts(SvidPaths.in_dir(ca, "gateway"))
    client_saw, server_saw = await handshake(agent.server, gateway.client)
    assert client_saw == AGENT
    assert server_saw == GW


async def test_certificate_from_another_trust_domain_fails_the_handshake(
    ca: Path, tmp_path: Path
) -> None:
    """A client whose SVID chains to another CA is refused during the handshake."""
    other = init_ca(tmp_path / "other", "evil.test")
    issue_svid(other, "gateway", "spiffe://evil.test/gateway")
    agent = SvidContexts(SvidPaths.in_dir(ca, "echo"))
    intruder = SvidContexts(
        SvidPaths(str(other / "gateway.pem"), str(other / "gateway.key"), str(ca / "bundle.pem"))
    )
    assert await refused(agent.server, intruder.client)


async def test_a_client_without_certificate_is_refused(ca: Path) -> None:
    """A server requiring client SVIDs refuses a client that presents none."""
    agent = SvidContexts(SvidPaths.in_dir(ca, "echo"))
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bare.check_hostname = False
    bare.load_verify_locations(str(ca / "bundle.pem"))
    assert await refused(agent.server, bare)


async def test_expected_id_mismatch_is_refused(ca: Path) -> None:
    """A valid SVID of the trust domain with another SPIFFE ID is refused by check_peer."""
    issue_svid(ca, "imposter", "spiffe://maestro.test/agent/other")
    imposter = SvidContexts(SvidPaths.in_dir(ca, "imposter"))
    gateway = SvidContexts(SvidPaths.in_dir(ca, "gateway"))
    client_saw, _ = await handshake(imposter.server, gateway.client)
    assert client_saw != AGENT
    with pytest.raises(PeerRefused, match=r"expected spiffe://maestro\.test/agent/echo"):
        check_peer(_FakeSsl(imposter), AGENT)


class _FakeSsl:
    """An ssl_object stand-in returning the imposter's certificate (unit check of the rule)."""

    def __init__(self, ctx: SvidContexts) -> None:
        pem = Path(ctx.paths.cert).read_text()
        self._der = ssl.PEM_cert_to_DER_cert(pem)

    def getpeercert(self, binary_form: bool = False) -> bytes:
        return self._der


async def test_rotation_without_restart(ca: Path) -> None:
    """After `rotate`, the same context presents the new certificate on the next handshake."""
    agent = SvidContexts(SvidPaths.in_dir(ca, "echo"))
    gateway = SvidContexts(SvidPaths.in_dir(ca, "gateway"))
    before = x509.load_pem_x509_certificate((ca / "echo.pem").read_bytes()).serial_number
    rotate_svid(ca, "echo")
    agent._checked = 0.0  # skip the once-a-second throttle
    assert agent.refresh()
    after = x509.load_pem_x509_certificate((ca / "echo.pem").read_bytes()).serial_number
    assert before != after
    seen: list[int] = []

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    srv = await asyncio.start_server(on_conn, "127.0.0.1", 0, ssl=agent.server)
    port = srv.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=gateway.client)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    seen.append(x509.load_der_x509_certificate(der).serial_number)
    writer.close()
    srv.close()
    await srv.wait_closed()
    assert seen == [after]
