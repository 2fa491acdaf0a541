"""The data path's HTTP/1.1 client against raw TCP servers that misbehave on purpose."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio

from maestro_gateway.upstream_http import HttpClient, UpstreamError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    def __init__(self) -> None:
        self.connections = 0
        self.handler: Handler | None = None
        self.url = ""
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            assert self.handler is not None
            try:
                await self.handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        self._server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/rpc"

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


def respond(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


@pytest_asyncio.fixture
async def server() -> AsyncIterator[Server]:
    s = Server()
    await s.start()
    yield s
    await s.close()


def client(read_timeout: float = 2.0) -> HttpClient:
    return HttpClient(connect_timeout=2, read_timeout=read_timeout, limit_per_host=4)


async def test_keep_alive_reuses_one_connection(server: Server) -> None:
    """Sequential requests to one agent reuse one pooled connection."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(respond(b'{"ok":1}'))

    server.handler = handler
    c = client()
    for _ in range(5):
        resp = await c.request("POST", server.url, {"X-A": "1"}, b"{}", 5)
        assert await resp.read(1000) == b'{"ok":1}'
        resp.release()
    assert server.connections == 1
    await c.close()


async def test_chunked_response_is_decoded(server: Server) -> None:
    """A chunked response body arrives de-chunked."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )

    server.handler = handler
    resp = await client().request("POST", server.url, {}, b"", 5)
    assert await resp.read(100) == b"abcde"
    resp.release()


async def test_silent_agent_times_out(server: Server) -> None:
    """An agent that never answers gives a timeout error after the read timeout, not a hang."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(10)

    server.handler = handler
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamError) as info:
        await client(read_timeout=0.3).request("POST", server.url, {}, b"", 5)
    assert info.value.kind == "timeout"
    assert loop.time() - started < 2


async def test_total_timeout_bounds_a_trickling_agent(server: Server) -> None:
    """An agent that trickles bytes forever is cut off at the total timeout."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(100):
            writer.write(b"x")
            await asyncio.sleep(0.05)

    server.handler = handler
    resp = await client().request("POST", server.url, {}, b"", 0.5)
    with pytest.raises(UpstreamError) as info:
        await resp.read(10_000)
    assert info.value.kind == "timeout"
    resp.release()


async def test_oversized_response_is_refused(server: Server) -> None:
    """A response above the limit is an error and the connection is not reused."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(respond(b"x" * 5000))

    server.handler = handler
    resp = await client().request("POST", server.url, {}, b"", 5)
    with pytest.raises(UpstreamError) as info:
        await resp.read(1000)
    assert info.value.kind == "too_large"
    resp.release()


async def test_garbage_is_a_protocol_error(server: Server) -> None:
    """Bytes that are not HTTP give a protocol error."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")

    server.handler = handler
    with pytest.raises(UpstreamError) as info:
        await client().request("POST", server.url, {}, b"", 5)
    assert info.value.kind == "protocol"


async def test_agent_closing_early_is_reported(server: Server) -> None:
    """An agent that closes before answering gives a 'closed' error."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    server.handler = handler
    with pytest.raises(UpstreamError) as info:
        await client().request("POST", server.url, {}, b"", 5)
    assert info.value.kind == "closed"


async def test_unreachable_agent(server: Server) -> None:
    """Nothing listening gives a connect error."""
    await server.close()
    with pytest.raises(UpstreamError) as info:
        await client().request("POST", server.url, {}, b"", 5)
    assert info.value.kind == "connect"


async def test_header_values_cannot_inject(server: Server) -> None:
    """A header value with CR/LF is dropped, so it cannot smuggle headers or requests."""
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(respond(b"{}"))

    server.handler = handler
    headers = {"X-Ok": "fine", "X-Evil": "a\r\nX-Injected: 1"}
    resp = await client().request("POST", server.url, headers, b"", 5)
    await resp.read(100)
    resp.release()
    assert b"X-Ok: fine" in seen[0]
    assert b"Injected" not in seen[0]


async def test_stream_lines_arrive_as_sent(server: Server) -> None:
    """Streamed lines are yielded as they arrive, split on LF, one list per arrival."""
    gate = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"8\r\ndata: 1\n\r\n")
        await gate.wait()
        writer.write(b"1\r\n\n\r\n0\r\n\r\n")

    server.handler = handler
    resp = await client().request("POST", server.url, {}, b"", None)
    lines = resp.iter_lines(100, 2)
    assert await anext(lines) == [b"data: 1"]
    gate.set()
    assert [batch async for batch in lines] == [[b""]]
    resp.release()


async def test_stream_line_limit(server: Server) -> None:
    """A streamed line longer than the limit is an error, not unbounded buffering."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"400\r\n" + b"x" * 1024 + b"\r\n")
        await asyncio.sleep(1)

    server.handler = handler
    resp = await client().request("POST", server.url, {}, b"", None)
    with pytest.raises(UpstreamError) as info:
        [batch async for batch in resp.iter_lines(100, 2)]
    assert info.value.kind == "too_large"
    resp.release()
