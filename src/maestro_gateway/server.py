"""The client-facing HTTP server: uvicorn's httptools protocol, hardened (threat T3).

uvicorn has a keep-alive timeout, but nothing bounds how long a client may take to send a
request's headers or body, how large the headers may be or how many, or how many connections
one worker holds open: a slowloris client that trickles one header byte at a time keeps a
connection (and its memory) forever. ``GatewayHttpProtocol`` adds, per connection:

- a **header timer** armed when the connection opens (or a keep-alive request begins) and
  cancelled when the headers are complete: expiry answers 408 and closes;
- a **body timer** armed when a request's headers are complete and its body is still coming:
  expiry tells the application the client went away, answers 408 (unless a response began)
  and closes;
- **header limits**: the request line and headers together at most ``max_header_bytes`` (also
  counted on the raw bytes while the head is incomplete, so an unterminated header cannot grow
  without bound), at most ``max_headers`` fields: beyond either, 431 and close;
- **connection caps**: beyond ``max_connections`` open connections in this worker (or
  ``max_connections_per_source`` from one address) a new connection gets 503 and is closed at
  once, before anything is read.

It is a subclass because the parser callbacks are where these events are seen. It is also
where mTLS client certificates are read: on a TLS connection, ``connection_made`` reads the
verified peer certificate once and every request's scope gets the ASGI TLS extension,
``scope["extensions"]["tls"]`` (``client_cert_chain`` as PEM, plus ``spiffe_id`` and
``fingerprint_sha256``; see ``spiffe/_asgi_tls.py`` and docs/mtls.md). The serve path
(``cli.serve``) and the tests build their uvicorn configuration with :func:`uvicorn_options`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from maestro_gateway.config import ServerConfig
from maestro_gateway.spiffe._asgi_tls import tls_extension

__all__ = ["GatewayHttpProtocol", "install", "protocol_for", "uvicorn_options"]

log = logging.getLogger("maestro_gateway.server")

_REASONS = {
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


def _plain_response(status: int, message: str) -> bytes:
    body = message.encode("ascii")
    return b"".join(
        [
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]),
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n",
            b"retry-after: 1\r\n" if status == 503 else b"",
            b"\r\n",
            body,
        ]
    )


class _Rejected(Exception):
    """Raised inside a parser callback to stop parsing; the status is kept on the protocol."""


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header/body timeouts, header limits and connection caps.

    ``limits`` is a class attribute: :func:`protocol_for` makes a subclass bound to one
    configuration; :func:`install` sets it on this class (multi-worker serving, where uvicorn
    imports the class by name in each worker process).
    """

    limits: ClassVar[ServerConfig] = ServerConfig()
    per_source: ClassVar[dict[str, int]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._done_scope: Any = None  # the scope of the last request whose head completed
        self._raw_head = 0  # raw bytes of the current head, counted across reads
        self._rejection: tuple[int, str] | None = None
        self._source: str | None = None
        self._tls: dict[str, Any] | None = None  # the ASGI TLS extension, on TLS connections

    # -- connection --
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        limits = self.limits
        over = len(self.connections) >= limits.max_connections
        peer = transport.get_extra_info("peername")
        source = peer[0] if isinstance(peer, tuple) and peer else None
        if not over and source is not None and limits.max_connections_per_source is not None:
            over = self.per_source.get(source, 0) >= limits.max_connections_per_source
        if over:
            # Refused before anything is read: no parser work, no application task.
            self.transport = transport
            transport.write(_plain_response(503, "too many connections"))
            transport.close()
            self.parser = None  # type: ignore[assignment]
            return
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:  # after the handshake: the peer certificate is verified
            self._tls = tls_extension(ssl_object)
        if source is not None:
            self._source = source
            self.per_source[source] = self.per_source.get(source, 0) + 1
        self._arm(limits.header_timeout_s, self._header_timeout)  # the first head's time

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._source is not None:
            n = self.per_source.get(self._source, 1) - 1
            if n > 0:
                self.per_source[self._source] = n
            else:
                self.per_source.pop(self._source, None)
            self._source = None
        if self.parser is None and self.flow is None:  # refused in connection_made
            return
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser, then look at where the request stands after this read.

        Nothing is armed for a request whose head (and body) arrive in one read, the common
        case: the timers and the raw count only start when a read ends inside a head or body.
        """
        if self.parser is None:
            return
        scope_before, cycle_before, done_before = self.scope, self.cycle, self._done_scope
        super().data_received(data)
        if self._rejection is not None or self.transport.is_closing():
            return
        if self.scope is not self._done_scope:  # the read ended inside a request's head
            # All of this read is head if the head began in an earlier read, or if it began
            # in this one and no other request's bytes were in it; else (pipelining) the
            # parsed fields are checked at the end of the head, and this read is bounded by
            # the read size.
            if self.scope is scope_before or (
                self._done_scope is done_before
                and (cycle_before is None or not cycle_before.more_body)
            ):
                self._raw_head += len(data)
                if self._raw_head > self.limits.max_header_bytes:
                    self._reject(431, "request headers too large")
                    return
            if self._timer is None:
                self._arm(self.limits.header_timeout_s, self._header_timeout)
            return
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not cycle.response_complete:
            if self._timer is None:  # the read ended inside a body
                self._arm(self.limits.body_timeout_s, self._body_timeout)
        elif self._timer is not None:
            self._disarm()

    # -- parser callbacks --
    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:  # a copy per request: an application may change its own
            extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
            extensions["tls"] = dict(self._tls)

    def on_headers_complete(self) -> None:
        self._disarm()
        self._done_scope, self._raw_head = self.scope, 0
        headers = self.headers
        if len(headers) > self.limits.max_headers:
            self._rejection = (431, "too many request headers")
            raise _Rejected
        size = len(self.url) + sum([len(n) + len(v) for n, v in headers]) + 4 * len(headers)
        if size > self.limits.max_header_bytes:
            self._rejection = (431, "request headers too large")
            raise _Rejected
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error; a limit we raised answers with its own status."""
        self._disarm()
        if self._rejection is not None:
            status, message = self._rejection
            log.warning("request refused: %d %s", status, message, extra={"client": self.client})
            self.transport.write(_plain_response(status, message))
            self.transport.close()
            return
        super().send_400_response(msg)

    # -- timers --
    def _arm(self, delay: float, callback: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _reject(self, status: int, message: str) -> None:
        self._rejection = (status, message)
        self.send_400_response(message)

    def _header_timeout(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            self._reject(408, "request headers not received in time")
        else:  # a pipelined request's head stalled while the previous one is answered
            self.transport.close()

    def _body_timeout(self) -> None:
        self._timer = None
        cycle = self.cycle
        if self.transport.is_closing() or cycle is None or not cycle.more_body:
            return
        log.warning("request body not received in time", extra={"client": self.client})
        started = cycle.response_started
        cycle.disconnected = True  # the application's receive() now returns http.disconnect
        cycle.message_event.set()
        if not started:
            self.transport.write(_plain_response(408, "request body not received in time"))
        self.transport.close()


def protocol_for(limits: ServerConfig) -> type[GatewayHttpProtocol]:
    """A protocol class bound to ``limits`` (its own per-source connection counts)."""
    return type(
        "BoundGatewayHttpProtocol", (GatewayHttpProtocol,), {"limits": limits, "per_source": {}}
    )


def install(limits: ServerConfig) -> None:
    """Bind :class:`GatewayHttpProtocol` itself to ``limits`` (in each worker process)."""
    GatewayHttpProtocol.limits = limits


def uvicorn_options(limits: ServerConfig, protocol: type[GatewayHttpProtocol]) -> dict[str, Any]:
    """The uvicorn settings that go with the protocol (for ``uvicorn.Config`` or ``run``).

    uvicorn's own ``limit_concurrency`` is not used: it answers 503 only after a request's
    headers arrived (a slowloris connection is never counted) and counts tasks too.
    ``h11_max_incomplete_event_size`` applies to the h11 protocol only, not httptools.
    """
    return {
        "http": protocol,
        "timeout_keep_alive": limits.keepalive_timeout_s,
        "limit_concurrency": None,
    }
