"""T3 application-layer DoS at the gateway's own HTTP server: slowloris, header floods,
connection floods — raw sockets against a real gateway served by GatewayHttpProtocol."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Any

import orjson
import pytest_asyncio
import uvicorn

from maestro_gateway.app import create_app
from maestro_gateway.config import ServerConfig, parse_config
from maestro_gateway.demo.servers import AgentServers, serve_apps
from maestro_gateway.server import protocol_for, uvicorn_options
from tests.conftest import TIMEOUT
from tests.upstreams import RecordingAgent

MAX_CONNECTIONS = 40
LIMITS: dict[str, Any] = {
    "header_timeout_s": 1.5,
    "body_timeout_s": 1.5,
    "max_header_bytes": 4096,
    "max_headers": 20,
    "max_connections": MAX_CONNECTIONS,
}
BODY = orjson.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}]}},
    }
)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HardenedGateway:
    def __init__(self, port: int, server: _Server, task: asyncio.Task[None]) -> None:
        self.port, self.server, self.task = port, server, task

    async def close(self) -> None:
        self.server.should_exit = True
        try:
            await asyncio.wait_for(self.task, TIMEOUT)
        except TimeoutError:
            self.task.cancel()


def _mkdir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)


async def start_hardened_gateway(
    state: Path, agents: dict[str, str], limits: dict[str, Any]
) -> HardenedGateway:
    """A real gateway on loopback served exactly as `maestro-gateway serve` serves it."""
    _mkdir(state)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    cfg = parse_config(
        {
            "public_url": f"http://127.0.0.1:{port}",
            "server": limits,
            "registry": {"url": f"sqlite:///{state}/registry.db"},
            "gateway_key": {"path": str(state / "gateway-key.pem")},
            "audit": {
                "url": f"sqlite:///{state / 'audit.db'}",
                "key_path": str(state / "audit-key.pem"),
                "state_file": str(state / "audit.checkpoint"),
            },
            "agents": [{"id": k, "card_url": v} for k, v in agents.items()],
        }
    )
    options = uvicorn_options(cfg.server, protocol_for(cfg.server))
    config = uvicorn.Config(
        create_app(cfg), log_config=None, access_log=False, lifespan="on", **options
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "gateway failed to start"
        await asyncio.sleep(0.01)
    return HardenedGateway(port, server, task)


@pytest_asyncio.fixture(scope="module")
async def gw(tmp_path_factory: Any) -> AsyncIterator[HardenedGateway]:
    upstreams: AgentServers = await serve_apps({"rec": RecordingAgent})
    gateway = await start_hardened_gateway(
        tmp_path_factory.mktemp("dos"), {"rec": upstreams.urls["rec"]}, LIMITS
    )
    try:
        yield gateway
    finally:
        await gateway.close()
        await upstreams.close()


def request_bytes(extra_headers: str = "", body: bytes = BODY) -> bytes:
    head = (
        "POST /agents/rec HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra_headers}\r\n"
    )
    return head.encode() + body


async def exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` on a new connection and read until the server closes it (bounded)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.close()


async def normal_request(port: int) -> tuple[int, float]:
    """One ordinary SendMessage; returns (HTTP status, seconds taken)."""
    started = time.perf_counter()
    reply = await exchange(port, request_bytes("Connection: close\r\n"))
    return int(reply.split(b" ", 2)[1]), time.perf_counter() - started


async def read_until_closed(reader: asyncio.StreamReader, limit: float) -> bytes:
    data = b""
    async with asyncio.timeout(limit):
        while chunk := await reader.read(4096):
            data += chunk
    return data


async def test_normal_request_passes(gw: HardenedGateway) -> None:
    """An ordinary request through the hardened server reaches the agent and answers 200."""
    status, _ = await normal_request(gw.port)
    assert status == 200


async def test_slowloris_headers_cut_off_while_others_are_served(gw: HardenedGateway) -> None:
    """A client trickling one header byte every 0.5 s is cut off (408) within the header
    timeout, while other clients' requests keep succeeding meanwhile."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    started = time.perf_counter()
    writer.write(b"POST /agents/rec HTTP/1.1\r\nHost: gw\r\n")

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):
            for byte in b"X-Slow: " + b"a" * 100:
                await asyncio.sleep(0.5)
                writer.write(bytes([byte]))
                await writer.drain()

    trickler = asyncio.create_task(trickle())
    others = [await normal_request(gw.port) for _ in range(3)]
    reply = await read_until_closed(reader, 5)
    elapsed = time.perf_counter() - started
    trickler.cancel()
    writer.close()
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert elapsed < LIMITS["header_timeout_s"] + 1.0
    assert [status for status, _ in others] == [200, 200, 200]
    assert max(took for _, took in others) < 1.0


async def test_idle_connection_without_a_request_is_closed(gw: HardenedGateway) -> None:
    """A connection that never sends a byte is closed after the header timeout."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    started = time.perf_counter()
    reply = await read_until_closed(reader, 5)
    writer.close()
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert time.perf_counter() - started < LIMITS["header_timeout_s"] + 1.0


async def test_slow_body_is_cut_off(gw: HardenedGateway) -> None:
    """A client that sends its headers and then trickles the body is cut off with 408."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(request_bytes(body=b" " * 500)[:-500] + b"{")
    started = time.perf_counter()

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):
            for _ in range(20):
                await asyncio.sleep(0.5)
                writer.write(b" ")
                await writer.drain()

    trickler = asyncio.create_task(trickle())
    reply = await read_until_closed(reader, 5)
    trickler.cancel()
    writer.close()
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert time.perf_counter() - started < LIMITS["body_timeout_s"] + 1.0


async def test_oversized_headers_get_431(gw: HardenedGateway) -> None:
    """Headers larger than max_header_bytes are refused with 431 and the connection closed."""
    reply = await exchange(gw.port, request_bytes("X-Big: " + "a" * 5000 + "\r\n"))
    assert reply.startswith(b"HTTP/1.1 431 ")


async def test_unterminated_huge_header_gets_431(gw: HardenedGateway) -> None:
    """A header that never ends is refused once the raw head passes max_header_bytes."""
    data = b"POST /agents/rec HTTP/1.1\r\nX-Endless: " + b"a" * 6000
    assert (await exchange(gw.port, data)).startswith(b"HTTP/1.1 431 ")


async def test_pipelined_requests_are_not_mistaken_for_a_huge_head(gw: HardenedGateway) -> None:
    """Forty pipelined requests in one write (more bytes than max_header_bytes, followed by
    the start of another head) are all answered: only head bytes count against the limit."""
    one = request_bytes()
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(one * 40 + one[:20])
    await writer.drain()
    replies = b""
    async with asyncio.timeout(10):
        while replies.count(b"HTTP/1.1 ") < 40:
            chunk = await reader.read(65536)
            assert chunk, "connection closed early"
            replies += chunk
    writer.close()
    assert replies.count(b"HTTP/1.1 200 ") == 40
    assert len(one) * 40 > LIMITS["max_header_bytes"]


async def test_too_many_headers_get_431(gw: HardenedGateway) -> None:
    """More header fields than max_headers are refused with 431."""
    many = "".join(f"X-H{i}: v\r\n" for i in range(30))
    reply = await exchange(gw.port, request_bytes(many))
    assert reply.startswith(b"HTTP/1.1 431 ")


async def test_connection_flood_beyond_the_cap_is_refused(gw: HardenedGateway) -> None:
    """Connections beyond max_connections get 503 at once and are closed, and the gateway
    serves again once the flood's connections go away."""
    held = []
    try:
        for _ in range(MAX_CONNECTIONS):
            held.append(await asyncio.open_connection("127.0.0.1", gw.port))
        await asyncio.sleep(0.1)
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        reply = await read_until_closed(reader, 2)
        writer.close()
        assert reply.startswith(b"HTTP/1.1 503 ")
        assert time.perf_counter() - started < 0.5
    finally:
        for _, w in held:
            w.close()
    await asyncio.sleep(0.2)
    status, _ = await normal_request(gw.port)
    assert status == 200


async def test_per_source_cap(tmp_path: Path) -> None:
    """With max_connections_per_source, one address cannot hold more than its share."""
    limits = ServerConfig(max_connections_per_source=3).model_dump()
    upstreams = await serve_apps({"rec": RecordingAgent})
    gateway = await start_hardened_gateway(tmp_path, {"rec": upstreams.urls["rec"]}, limits)
    held = [await asyncio.open_connection("127.0.0.1", gateway.port) for _ in range(3)]
    try:
        reply = await exchange(gateway.port, request_bytes())
        assert reply.startswith(b"HTTP/1.1 503 ")
    finally:
        for _, w in held:
            w.close()
        await gateway.close()
        await upstreams.close()
