"""A minimal HTTP/1.1 client for the data path: keep-alive pools on asyncio protocols + httptools.

Why not aiohttp here: profiling the gateway (docs/performance.md) put aiohttp's client at about
90 µs of CPU per proxied request, a third of the gateway's total; this client does only what the
data path needs (one request at a time per connection, Content-Length bodies, chunked or sized
responses, streaming reads with backpressure, connect/read/total timeouts, TLS) in about a fifth
of that. The response parser is httptools (llhttp), the same one uvicorn uses; nothing here parses
HTTP by hand. aiohttp stays in use off the hot path (fetching agent cards).
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from urllib.parse import urlsplit

import httptools

MAX_HEADER_BYTES = 64 * 1024
_PAUSE_AT = 256 * 1024


class UpstreamError(Exception):
    """A failed upstream exchange; ``kind`` is connect, timeout, protocol, closed, too_large or
    identity (the agent's TLS certificate is not the workload it must be)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _Origin:
    __slots__ = ("host", "host_header", "key", "peer_id", "port", "ssl")

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        ssl: ssl_module.SSLContext | None,
        peer_id: str | None = None,
    ):
        self.host, self.port, self.ssl, self.peer_id = host, port, ssl, peer_id
        default = 443 if scheme == "https" else 80
        shown = f"[{host}]" if ":" in host else host
        self.host_header = (shown if port == default else f"{shown}:{port}").encode()
        # The pool is per origin *and* required peer identity: a connection verified for one
        # SPIFFE ID is never reused for a call that requires another.
        self.key = (scheme, host, port, peer_id or "")


class _Conn(asyncio.Protocol):
    """One keep-alive connection carrying one exchange at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.header_bytes = 0
        self.headers_done = False
        self.complete = False
        self.keep_alive = True
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.paused = False
        self.error: UpstreamError | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.expired = False

    # -- asyncio.Protocol --
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError("protocol", f"invalid HTTP from agent: {exc}"))
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete and self.error is None:
            self._fail(UpstreamError("closed", "agent closed the connection"), close=False)
        self._wake()

    # -- httptools callbacks --
    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > MAX_HEADER_BYTES:
            raise httptools.HttpParserError("response headers too large")
        self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _PAUSE_AT and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        self.complete = True

    # -- helpers --
    def _fail(self, error: UpstreamError, close: bool = True) -> None:
        if self.error is None:
            self.error = error
        if close:
            self.close()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    async def wait(self, deadline: float, read_timeout: float) -> None:
        """Wait for more from the agent: at most ``read_timeout`` of silence, and ``deadline``."""
        if self.error is not None:
            raise self.error
        timeout = min(read_timeout, deadline - self.loop.time())
        if timeout <= 0:
            self.close()
            raise UpstreamError("timeout", "agent did not answer in time")
        self.waiter = self.loop.create_future()
        handle = self.loop.call_later(timeout, self._expire)
        try:
            await self.waiter
        finally:
            handle.cancel()
            self.waiter = None
        if self.error is not None:
            raise self.error
        if self.expired:
            self.close()
            raise UpstreamError("timeout", "agent did not answer in time")

    def _expire(self) -> None:
        self.expired = True
        self._wake()

    def take(self) -> bytes:
        data = b"".join(self.chunks) if len(self.chunks) != 1 else self.chunks[0]
        self.chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data


class Response:
    """An upstream response whose headers have arrived; read or stream the body, then release."""

    def __init__(
        self, client: HttpClient, origin: _Origin, conn: _Conn, deadline: float, read_timeout: float
    ) -> None:
        self._client, self._origin, self._conn, self._deadline = client, origin, conn, deadline
        self._read_timeout = read_timeout
        self._released = False
        self.status = conn.status
        self.headers = conn.headers

    async def read(self, limit: int) -> bytes:
        conn = self._conn
        parts: list[bytes] = []
        size = 0
        while True:
            if conn.chunks:
                chunk = conn.take()
                size += len(chunk)
                if size > limit:
                    conn.close()
                    raise UpstreamError("too_large", f"agent response larger than {limit} bytes")
                parts.append(chunk)
            if conn.complete:
                return parts[0] if len(parts) == 1 else b"".join(parts)
            await conn.wait(self._deadline, self._read_timeout)

    async def iter_lines(self, max_line: int, idle_timeout: float) -> AsyncIterator[list[bytes]]:
        """The body split on LF as it arrives (for SSE), one list per arrival; a line over
        ``max_line`` is an error."""
        conn = self._conn
        buffer = b""
        while True:
            if conn.chunks:
                buffer += conn.take()
                lines = buffer.split(b"\n")
                buffer = lines.pop()
                if len(buffer) > max_line:
                    conn.close()
                    raise UpstreamError("too_large", f"stream line longer than {max_line} bytes")
                if lines:
                    yield lines
            if conn.complete:
                if buffer:
                    yield [buffer]
                return
            await conn.wait(float("inf"), idle_timeout)

    def release(self) -> None:
        """Return the connection to the pool if the exchange finished cleanly, else close it."""
        if self._released:
            return
        self._released = True
        conn = self._conn
        if conn.complete and conn.keep_alive and not conn.closed and not conn.chunks:
            self._client._release(self._origin, conn)
        else:
            conn.close()
            self._client._forget(self._origin)


class HttpClient:
    """Pooled HTTP/1.1 client: ``limit_per_host`` connections per origin, idle ``keepalive_s``."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        limit_per_host: int,
        keepalive_s: float = 4.0,
        ssl: ssl_module.SSLContext | None = None,
        verify_peer: Callable[[object, str | None], object] | None = None,
    ) -> None:
        """``verify_peer(ssl_object, peer_id)``, when given, is called once per new TLS
        connection after the handshake and raises to refuse the peer (SPIFFE ID checks);
        ``peer_id`` is what the request asked for (:meth:`request`)."""
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.keepalive_s = keepalive_s
        self._limit = limit_per_host
        self._ssl = ssl
        self._verify_peer = verify_peer
        self._origins: dict[str | tuple[str, str], tuple[_Origin, bytes]] = {}
        self._idle: dict[tuple[str, str, int, str], list[_Conn]] = {}
        self._slots: dict[tuple[str, str, int, str], asyncio.Semaphore] = {}
        self.connections_made = 0  # new connections (TLS handshakes on https) since start

    def _target(self, url: str, peer_id: str | None = None) -> tuple[_Origin, bytes]:
        cache_key = url if peer_id is None else (url, peer_id)
        hit = self._origins.get(cache_key)
        if hit is not None:
            return hit
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise UpstreamError("connect", f"unsupported agent URL {url!r}")
        ctx = None
        if scheme == "https":
            ctx = self._ssl or ssl_module.create_default_context()
        port = parts.port or (443 if scheme == "https" else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        target = (_Origin(scheme, parts.hostname, port, ctx, peer_id), path.encode())
        if len(self._origins) < 4096:
            self._origins[cache_key] = target
        return target

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        total_timeout: float | None,
        *,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        peer_id: str | None = None,
    ) -> Response:
        """Send a request; ``connect_timeout``/``read_timeout`` override the client's for this
        call (per-agent settings). Waiting for a free pool slot counts as connecting: an agent
        whose pool is full of slow calls fails new calls after the connect timeout.
        ``peer_id`` is the SPIFFE ID the agent must present on https (see ``verify_peer``)."""
        origin, path = self._target(url, peer_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + total_timeout if total_timeout else float("inf")
        connect_timeout = connect_timeout or self.connect_timeout
        read_timeout = read_timeout or self.read_timeout
        slots = self._slots.get(origin.key)
        if slots is None:
            slots = self._slots[origin.key] = asyncio.Semaphore(self._limit)
        if slots.locked():  # the pool is full: wait, but no longer than a connect may take
            try:
                await asyncio.wait_for(slots.acquire(), connect_timeout)
            except TimeoutError:
                raise UpstreamError("timeout", "no free connection to the agent in time") from None
        else:
            await slots.acquire()
        try:
            conn = self._pop_idle(origin) or await self._connect(origin, loop, connect_timeout)
            head = [b"%s %s HTTP/1.1\r\nHost: %s\r\n" % (method.encode(), path, origin.host_header)]
            for name, value in headers.items():
                if "\r" in value or "\n" in value:
                    continue  # never let a value smuggle a header or a request
                head.append(b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1")))
            head.append(b"Content-Length: %d\r\n\r\n" % len(body))
            assert conn.transport is not None
            conn.transport.write(b"".join(head) + body)
            while not conn.headers_done:
                await conn.wait(deadline, read_timeout)
        except BaseException:
            slots.release()
            raise
        return Response(self, origin, conn, deadline, read_timeout)

    def _pop_idle(self, origin: _Origin) -> _Conn | None:
        idle = self._idle.get(origin.key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self.keepalive_s:
                conn._reset()
                return conn
            conn.close()
        return None

    async def _connect(
        self, origin: _Origin, loop: asyncio.AbstractEventLoop, limit_s: float
    ) -> _Conn:
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Conn(loop),
                    origin.host,
                    origin.port,
                    ssl=origin.ssl,
                    server_hostname=origin.host if origin.ssl else None,
                ),
                limit_s,
            )
        except TimeoutError:
            raise UpstreamError("timeout", "connecting to the agent timed out") from None
        except (OSError, ssl_module.SSLError) as exc:
            raise UpstreamError("connect", f"agent unreachable: {type(exc).__name__}") from None
        self.connections_made += 1
        if origin.ssl is not None and self._verify_peer is not None:
            assert conn.transport is not None
            try:
                self._verify_peer(conn.transport.get_extra_info("ssl_object"), origin.peer_id)
            except Exception as exc:  # the peer is not who it must be: never send it anything
                conn.close()
                raise UpstreamError("identity", str(exc)) from None
        return conn

    def _release(self, origin: _Origin, conn: _Conn) -> None:
        conn.idle_since = time.monotonic()
        self._idle.setdefault(origin.key, []).append(conn)
        self._slots[origin.key].release()

    def _forget(self, origin: _Origin) -> None:
        self._slots[origin.key].release()

    async def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


__all__ = ["HttpClient", "Response", "UpstreamError"]
