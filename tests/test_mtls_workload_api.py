"""SVIDs from the SPIFFE Workload API: a gRPC Workload API server on a Unix socket (the
`spiffe` package's own protocol definitions) stands in for a SPIRE agent."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from spiffe._proto import workload_pb2, workload_pb2_grpc

from maestro_gateway.agent.serve import gateway_only, serve
from maestro_gateway.config import parse_config
from maestro_gateway.demo.agents import build_agent_app
from maestro_gateway.demo.servers import _bind
from maestro_gateway.registry.signing import GatewaySigner
from maestro_gateway.spiffe import rotate_svid
from maestro_gateway.spiffe._gateway import GatewayWorkload
from maestro_gateway.spiffe._workload_api import WorkloadApiError, close_writers
from tests.conftest import start_gateway
from tests.test_mtls import (
    GW_ID,
    KID,
    V10,
    SeenCerts,
    agent_id,
    fingerprint,
    make_pki,
    send_body,
    spiffe_config,
    start_guarded_agents,
    svid_reloaded,
)


def svid_response(pki: Path, name: str, spiffe_id: str) -> workload_pb2.X509SVIDResponse:
    """What a SPIRE agent sends: DER certificate chain, PKCS#8 DER key, DER bundle."""
    der = serialization.Encoding.DER
    cert = x509.load_pem_x509_certificate((pki / f"{name}.pem").read_bytes())
    key = serialization.load_pem_private_key((pki / f"{name}.key").read_bytes(), None)
    ca = x509.load_pem_x509_certificate((pki / "bundle.pem").read_bytes())
    svid = workload_pb2.X509SVID(
        spiffe_id=spiffe_id,
        x509_svid=cert.public_bytes(der),
        x509_svid_key=key.private_bytes(
            der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        bundle=ca.public_bytes(der),
    )
    return workload_pb2.X509SVIDResponse(svids=[svid])


class FakeWorkloadApi(workload_pb2_grpc.SpiffeWorkloadAPIServicer):
    """Streams every pushed X.509 context to each subscriber (the latest first)."""

    def __init__(self) -> None:
        self.updates: list[workload_pb2.X509SVIDResponse] = []
        self.changed = threading.Condition()
        self.stopped = False

    def push(self, response: workload_pb2.X509SVIDResponse) -> None:
        with self.changed:
            self.updates.append(response)
            self.changed.notify_all()

    def FetchX509SVID(
        self, request: Any, context: grpc.ServicerContext
    ) -> Iterator[workload_pb2.X509SVIDResponse]:
        if dict(context.invocation_metadata()).get("workload.spiffe.io") != "true":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "security header missing")
        sent = 0
        while context.is_active() and not self.stopped:
            with self.changed:
                self.changed.wait_for(self._news(sent), 0.2)
                pending = self.updates[max(sent, len(self.updates) - 1) :]
                sent = max(sent, len(self.updates))
            yield from pending

    def _news(self, sent: int) -> Any:
        return lambda: len(self.updates) > sent or self.stopped


@pytest.fixture
def workload_api(tmp_path: Path) -> Iterator[tuple[str, FakeWorkloadApi, Path]]:
    pki = make_pki(tmp_path)
    api = FakeWorkloadApi()
    api.push(svid_response(pki, "gateway", GW_ID))
    socket = tmp_path / "agent.sock"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    workload_pb2_grpc.add_SpiffeWorkloadAPIServicer_to_server(api, server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"unix:{socket}")
    server.start()
    try:
        yield f"unix://{socket}", api, pki
    finally:
        close_writers()
        api.stopped = True
        with api.changed:
            api.changed.notify_all()
        server.stop(0)


async def test_gateway_svid_from_the_workload_api_with_rotation(
    workload_api: tuple[str, FakeWorkloadApi, Path], tmp_path: Path
) -> None:
    """The gateway takes its SVID from the Workload API (no files configured), calls a guarded
    agent with it, and presents the rotated SVID the API pushes on its next new connection."""
    socket, api, pki = workload_api
    signer = GatewaySigner(tmp_path / "gateway-key.pem", kid=KID)
    seen: dict[str, SeenCerts] = {}
    agents = await start_guarded_agents(pki, signer, {"echo": "echo"}, seen)
    cfg = spiffe_config(pki, workload_api={"socket": socket, "dir": str(tmp_path / "svid")})
    del cfg["dir"]  # no SVID files: the Workload API is the source
    gateway = await start_gateway(
        tmp_path, {"echo": agents.urls["echo"]}, agent_spiffe_ids={"echo": agent_id("echo")},
        spiffe=cfg,
    )  # fmt: skip
    try:
        import aiohttp

        async def call() -> str:
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"{gateway.url}/agents/echo", data=send_body(), headers=V10) as r,
            ):
                return await r.text()

        assert "echo: hello" in await call()
        assert seen["echo"].fingerprints[-1] == fingerprint(pki / "gateway.pem")
        rotate_svid(pki, "gateway")  # the "SPIRE agent" rotates and pushes the new SVID
        api.push(svid_response(pki, "gateway", GW_ID))
        new = fingerprint(pki / "gateway.pem")
        for _ in range(100):  # the stream delivers it; the writer replaces the files
            if fingerprint(tmp_path / "svid" / "svid.pem") == new:
                break
            await asyncio.sleep(0.1)
        await svid_reloaded(gateway.app)
        await gateway.app.upstream.client.close()
        assert "echo: hello" in await call()
        assert seen["echo"].fingerprints[-1] == new
        assert (tmp_path / "svid" / "svid.key").stat().st_mode & 0o077 == 0
    finally:
        await gateway.close()
        await agents.close()


def test_no_workload_api_fails_closed(tmp_path: Path) -> None:
    """Without a reachable Workload API the gateway does not start with mTLS configured."""
    cfg = parse_config(
        {
            "spiffe": {
                "trust_domain": "maestro.test",
                "upstream_mtls": True,
                "workload_api": {"socket": f"unix://{tmp_path}/none.sock", "timeout_s": 1},
            }
        }
    )
    with pytest.raises(WorkloadApiError):
        GatewayWorkload(cfg.spiffe, cfg.public_url)


def test_mtls_without_svid_source_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """upstream_mtls with neither SVID files nor a Workload API is refused at load time."""
    from maestro_gateway.config import ConfigError

    monkeypatch.delenv("SPIFFE_ENDPOINT_SOCKET", raising=False)
    with pytest.raises(ConfigError, match="Workload API"):
        parse_config({"spiffe": {"trust_domain": "maestro.test", "upstream_mtls": True}})


async def listening(port: int, task: asyncio.Task[None]) -> None:
    for _ in range(200):
        assert not task.done(), "the agent stopped"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise AssertionError("the agent never listened")


async def test_agent_served_with_a_workload_api_svid(
    workload_api: tuple[str, FakeWorkloadApi, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`agent.serve` without SVID files takes the agent's SVID from $SPIFFE_ENDPOINT_SOCKET;
    the gateway verifies that identity at registration and on calls."""
    socket, api, pki = workload_api
    api.push(svid_response(pki, "echo", agent_id("echo")))  # this workload is the echo agent
    monkeypatch.setenv("SPIFFE_ENDPOINT_SOCKET", socket)
    signer = GatewaySigner(tmp_path / "gateway-key.pem", kid=KID)
    sock = _bind("127.0.0.1", 0)
    url = f"https://127.0.0.1:{sock.getsockname()[1]}"
    app = gateway_only(
        build_agent_app("echo", url), gateway_id=GW_ID, jwks=signer.public_jwks(), audience="echo"
    )
    task = asyncio.create_task(serve(app, sockets=[sock]))
    gateway = None
    try:
        await listening(sock.getsockname()[1], task)  # it got its SVID and listens
        gateway = await start_gateway(
            tmp_path, {"echo": url}, agent_spiffe_ids={"echo": agent_id("echo")},
            spiffe=spiffe_config(pki),
        )  # fmt: skip
        assert gateway.app.directory.get("echo") is not None  # the card fetch verified it
        import aiohttp

        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{gateway.url}/agents/echo", data=send_body(), headers=V10) as r,
        ):
            assert "echo: hello" in await r.text()
    finally:
        if gateway is not None:
            await gateway.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
