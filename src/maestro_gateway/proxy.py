"""Upstream forwarding: one pooled aiohttp session, bounded in time and size."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson

from maestro_gateway.a2a.errors import INVALID_AGENT_RESPONSE, A2AError
from maestro_gateway.a2a.sse import SSEError, iter_events
from maestro_gateway.config import UpstreamConfig


def _unavailable(message: str, status: int = 502) -> A2AError:
    return A2AError(INVALID_AGENT_RESPONSE, message, status, reason="UPSTREAM_UNAVAILABLE")


class Upstream:
    """Calls agents over HTTP with connection pooling, timeouts and size limits."""

    def __init__(self, cfg: UpstreamConfig, ssl: Any = None) -> None:
        self._cfg = cfg
        self._ssl = ssl
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._cfg.pool_size,
                limit_per_host=self._cfg.pool_size_per_host,
                ssl=self._ssl if self._ssl is not None else True,
                enable_cleanup_closed=True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
                read_bufsize=2**16,
                max_line_size=self._cfg.max_event_bytes + 64,
                json_serialize=lambda o: orjson.dumps(o).decode(),
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("Upstream.start() was not awaited")
        return self._session

    def _timeout(self, total: float | None) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=total,
            sock_connect=self._cfg.connect_timeout_s,
            sock_read=self._cfg.read_timeout_s,
        )

    async def call_json(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, Any]:
        """A unary call; returns (HTTP status, decoded JSON body)."""
        limit = self._cfg.max_response_bytes
        try:
            async with self.session.request(
                method,
                url,
                data=body,
                headers=headers,
                timeout=self._timeout(self._cfg.total_timeout_s),
            ) as resp:
                if resp.content_length is not None and resp.content_length > limit:
                    raise _unavailable(f"agent response larger than {limit} bytes")
                raw = await resp.content.read(limit + 1)
                if len(raw) > limit:
                    raise _unavailable(f"agent response larger than {limit} bytes")
                try:
                    return resp.status, orjson.loads(raw)
                except orjson.JSONDecodeError:
                    raise A2AError(
                        INVALID_AGENT_RESPONSE, "agent response is not JSON", 502
                    ) from None
        except A2AError:
            raise
        except TimeoutError:
            raise _unavailable("agent did not answer in time", 504) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise _unavailable(f"agent unreachable: {type(exc).__name__}") from None

    async def stream(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]
    ) -> AsyncIterator[Any]:
        """A streaming call: yields each SSE event's decoded JSON, as it arrives.

        If the agent answers with JSON instead of SSE (an error), that JSON is yielded once.
        """
        try:
            async with self.session.request(
                method, url, data=body, headers=headers, timeout=self._timeout(None)
            ) as resp:
                ctype = resp.headers.get("Content-Type", "")
                if not ctype.startswith("text/event-stream"):
                    raw = await resp.content.read(self._cfg.max_response_bytes + 1)
                    if len(raw) > self._cfg.max_response_bytes:
                        raise _unavailable("agent response too large")
                    try:
                        yield orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        raise A2AError(
                            INVALID_AGENT_RESPONSE, "agent answered neither SSE nor JSON", 502
                        ) from None
                    return
                async for data in iter_events(_lines(resp), self._cfg.max_event_bytes):
                    try:
                        yield orjson.loads(data)
                    except orjson.JSONDecodeError:
                        raise A2AError(
                            INVALID_AGENT_RESPONSE,
                            "agent sent a stream event that is not JSON",
                            502,
                        ) from None
        except (A2AError, asyncio.CancelledError, GeneratorExit):
            raise
        except SSEError as exc:
            raise _unavailable(f"agent stream invalid: {exc}") from None
        except TimeoutError:
            raise _unavailable("agent stream stalled", 504) from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise _unavailable(f"agent stream failed: {type(exc).__name__}") from None


async def _lines(resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    while True:
        line = await resp.content.readline()
        if not line:
            return
        yield line
