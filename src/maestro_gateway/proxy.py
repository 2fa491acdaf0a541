"""Upstream forwarding: pooled keep-alive connections, bounded in time and size."""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from maestro_gateway.a2a.errors import INVALID_AGENT_RESPONSE, A2AError
from maestro_gateway.a2a.sse import SSEError, iter_events
from maestro_gateway.config import UpstreamConfig
from maestro_gateway.upstream_http import HttpClient, UpstreamError

_STATUS = {"timeout": 504, "too_large": 502, "connect": 502, "closed": 502, "protocol": 502}
_MESSAGES = {
    "timeout": "agent did not answer in time",
    "too_large": "agent response too large",
    "connect": "agent unreachable",
    "closed": "agent closed the connection",
    "protocol": "agent sent invalid HTTP",
}


def _unavailable(exc: UpstreamError) -> A2AError:
    return A2AError(
        INVALID_AGENT_RESPONSE,
        _MESSAGES.get(exc.kind, "agent call failed"),
        _STATUS.get(exc.kind, 502),
        reason="UPSTREAM_" + exc.kind.upper(),
    )


def _decode(raw: bytes, what: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise A2AError(INVALID_AGENT_RESPONSE, f"agent sent {what} that is not JSON", 502) from None


class Upstream:
    """Calls agents over HTTP/1.1 with connection pooling, timeouts and size limits."""

    def __init__(self, cfg: UpstreamConfig, ssl: ssl_module.SSLContext | None = None) -> None:
        self._cfg = cfg
        self._ssl = ssl
        self._client: HttpClient | None = None

    async def start(self) -> None:
        if self._client is None:
            self._client = HttpClient(
                connect_timeout=self._cfg.connect_timeout_s,
                read_timeout=self._cfg.read_timeout_s,
                limit_per_host=self._cfg.pool_size_per_host,
                keepalive_s=self._cfg.keepalive_s,
                ssl=self._ssl,
            )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    @property
    def client(self) -> HttpClient:
        if self._client is None:
            raise RuntimeError("Upstream.start() was not awaited")
        return self._client

    async def call_json(
        self, method: str, url: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, Any]:
        """A unary call; returns (HTTP status, decoded JSON body)."""
        try:
            resp = await self.client.request(method, url, headers, body, self._cfg.total_timeout_s)
            try:
                raw = await resp.read(self._cfg.max_response_bytes)
            finally:
                resp.release()
        except UpstreamError as exc:
            raise _unavailable(exc) from None
        return resp.status, _decode(raw, "a response")

    async def stream(
        self, method: str, url: str, body: bytes, headers: Mapping[str, str]
    ) -> AsyncIterator[list[Any]]:
        """A streaming call: yields the decoded JSON of the SSE events that arrived together.

        If the agent answers with JSON instead of SSE (an error), that JSON is yielded once.
        """
        cfg = self._cfg
        try:
            resp = await self.client.request(method, url, headers, body, cfg.total_timeout_s)
        except UpstreamError as exc:
            raise _unavailable(exc) from None
        try:
            if not resp.headers.get(b"content-type", b"").startswith(b"text/event-stream"):
                raw = await resp.read(cfg.max_response_bytes)
                yield [_decode(raw, "a response")]
                return
            lines = resp.iter_lines(cfg.max_event_bytes + 64, cfg.stream_idle_timeout_s)
            async for batch in iter_events(lines, cfg.max_event_bytes):
                yield [_decode(data, "a stream event") for data in batch]
        except UpstreamError as exc:
            raise _unavailable(exc) from None
        except SSEError as exc:
            raise A2AError(INVALID_AGENT_RESPONSE, f"agent stream invalid: {exc}", 502) from None
        finally:
            resp.release()
