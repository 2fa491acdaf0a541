"""Upstream forwarding: pooled keep-alive connections, bounded in time and size."""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import AsyncIterator, Callable, Mapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

import orjson

from maestro_gateway.a2a.errors import INTERNAL_ERROR, INVALID_AGENT_RESPONSE, A2AError
from maestro_gateway.a2a.sse import SSEError, iter_events
from maestro_gateway.assertion import AssertionSigner
from maestro_gateway.breaker import BreakerOpen, CircuitBreaker, Permit
from maestro_gateway.config import UpstreamConfig
from maestro_gateway.quotas import quota_error
from maestro_gateway.upstream_http import HttpClient, Response, UpstreamError

_STATUS = {"timeout": 504, "too_large": 502, "connect": 502, "closed": 502, "protocol": 502}
_MESSAGES = {
    "identity": "agent refused: its TLS certificate is not the workload registered for it",
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


_BREAKER_FAILURES = frozenset({"timeout", "connect", "closed", "protocol", "identity"})

ASSERTION_HEADER = "Maestro-Assertion"
assertion_subject: ContextVar[tuple[str, Mapping[str, Any] | None]] = ContextVar(
    "maestro_assertion_subject", default=("", None)
)
"""The end user and delegation chain (``act``) the current request's upstream calls are made
for; the data path sets it once per request, :class:`Upstream` signs them into each call."""


def _circuit_open(agent: str, exc: BreakerOpen) -> A2AError:
    return A2AError(
        INTERNAL_ERROR,
        f"agent {agent!r} is unavailable (circuit open); retry later",
        503,
        reason="UPSTREAM_CIRCUIT_OPEN",
        metadata={"agent": agent, "retry_after": f"{exc.retry_after:.1f}"},
    )


def _decode(raw: bytes, what: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise A2AError(INVALID_AGENT_RESPONSE, f"agent sent {what} that is not JSON", 502) from None


class Upstream:
    """Calls agents over HTTP/1.1 with connection pooling, timeouts and size limits.

    Each call names its agent: that agent's settings (``upstream.per_agent``) apply, and its
    circuit breaker (``breaker.py``) lets the call through or fails it at once with 503.
    """

    def __init__(
        self,
        cfg: UpstreamConfig,
        ssl: ssl_module.SSLContext | None = None,
        verify_peer: Callable[[object, str | None], object] | None = None,
    ) -> None:
        self._cfg = cfg
        self._ssl = ssl
        self._verify_peer = verify_peer
        self._client: HttpClient | None = None
        self._agents: dict[str, tuple[UpstreamConfig, CircuitBreaker | None]] = {}
        # C12/T6 (docs/mtls.md): the SPIFFE ID each agent must present (from the registry),
        # and the signer of the per-request gateway assertion; set by the application.
        self.peer_of: Callable[[str], str | None] | None = None
        self.assertions: AssertionSigner | None = None
        self.require_tls = False  # spiffe.upstream_require_tls: no plain-http agent at all
        self._paths: dict[str, str] = {}

    def settings(self, agent: str | None) -> UpstreamConfig:
        """The upstream settings for ``agent`` (the base ones for None)."""
        return self._cfg if agent is None else self._agent(agent)[0]

    def breaker(self, agent: str) -> CircuitBreaker | None:
        return self._agent(agent)[1]

    def _agent(self, agent: str) -> tuple[UpstreamConfig, CircuitBreaker | None]:
        hit = self._agents.get(agent)
        if hit is None:
            cfg = self._cfg.for_agent(agent)
            hit = (cfg, CircuitBreaker(cfg.breaker) if cfg.breaker.enabled else None)
            if len(self._agents) < 10_000:
                self._agents[agent] = hit
        return hit

    def _permit(self, agent: str | None) -> Permit | None:
        breaker = None if agent is None else self._agent(agent)[1]
        if breaker is None:
            return None
        try:
            return breaker.permit()
        except BreakerOpen as exc:
            raise _circuit_open(str(agent), exc) from None

    async def _send(
        self,
        cfg: UpstreamConfig,
        permit: Permit | None,
        args: tuple[str, str, bytes, Mapping[str, str]],
        agent: str | None = None,
    ) -> Response:
        method, url, body, headers = args
        peer_id = None
        try:
            if agent is not None:
                peer_id, headers = self._identity(agent, method, url, body, headers)
            resp = await self.client.request(
                method,
                url,
                headers,
                body,
                cfg.total_timeout_s,
                connect_timeout=cfg.connect_timeout_s,
                read_timeout=cfg.read_timeout_s,
                peer_id=peer_id,
            )
        except UpstreamError as exc:
            if permit is not None:
                (permit.failure if exc.kind in _BREAKER_FAILURES else permit.success)()
            raise _unavailable(exc) from None
        except BaseException:
            if permit is not None:
                permit.abandon()
            raise
        return resp

    def _identity(
        self, agent: str, method: str, url: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[str | None, Mapping[str, str]]:
        """The SPIFFE ID ``agent`` must present, and the headers with the gateway assertion."""
        peer_id = self.peer_of(agent) if self.peer_of is not None else None
        if not url.startswith("https://") and (
            self.require_tls or (peer_id is not None and self._ssl is not None)
        ):  # a workload identity that plain HTTP cannot prove: fail closed
            raise UpstreamError("identity", f"agent {agent} must be called over mTLS (https)")
        if self.assertions is None:
            return peer_id, headers
        path = self._paths.get(url)
        if path is None:
            path = urlsplit(url).path or "/"
            if len(self._paths) < 4096:
                self._paths[url] = path
        subject, act = assertion_subject.get()
        token = self.assertions.sign(agent, method, path, body, subject, act)
        return peer_id, {**headers, ASSERTION_HEADER: token}

    async def start(self) -> None:
        if self._client is None:
            self._client = HttpClient(
                connect_timeout=self._cfg.connect_timeout_s,
                read_timeout=self._cfg.read_timeout_s,
                limit_per_host=self._cfg.pool_size_per_host,
                keepalive_s=self._cfg.keepalive_s,
                ssl=self._ssl,
                verify_peer=self._verify_peer,
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
        self,
        method: str,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        agent: str | None = None,
        reply_headers: dict[bytes, bytes] | None = None,
    ) -> tuple[int, Any]:
        """A unary call; returns (HTTP status, decoded JSON body). ``reply_headers``, when
        given, receives the response's headers (lower-case names)."""
        cfg = self.settings(agent)
        permit = self._permit(agent)
        resp = await self._send(cfg, permit, (method, url, body, headers), agent)
        try:
            raw = await resp.read(cfg.max_response_bytes)
        except UpstreamError as exc:
            if permit is not None:
                (permit.failure if exc.kind in _BREAKER_FAILURES else permit.success)()
            raise _unavailable(exc) from None
        except BaseException:
            if permit is not None:
                permit.abandon()
            raise
        finally:
            resp.release()
        if permit is not None:
            permit.success()
        if reply_headers is not None:
            reply_headers.update(resp.headers)
        return resp.status, _decode(raw, "a response")

    async def stream(
        self,
        method: str,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        agent: str | None = None,
        reply_headers: dict[bytes, bytes] | None = None,
    ) -> AsyncIterator[list[Any]]:
        """A streaming call: yields the decoded JSON of the SSE events that arrived together.

        If the agent answers with JSON instead of SSE (an error), that JSON is yielded once.
        The breaker counts the call a success once the agent's response headers arrived.
        More than the agent's ``quotas.max_stream_bytes`` ends the stream (QUOTA_EXCEEDED).
        """
        cfg = self.settings(agent)
        permit = self._permit(agent)
        resp = await self._send(cfg, permit, (method, url, body, headers), agent)
        if permit is not None:
            permit.success()
        if reply_headers is not None:
            reply_headers.update(resp.headers)
        max_bytes = cfg.quotas.max_stream_bytes
        try:
            if not resp.headers.get(b"content-type", b"").startswith(b"text/event-stream"):
                raw = await resp.read(cfg.max_response_bytes)
                yield [_decode(raw, "a response")]
                return
            lines = resp.iter_lines(cfg.max_event_bytes + 64, cfg.stream_idle_timeout_s)
            if max_bytes is not None:
                lines = _counted(lines, max_bytes, str(agent))
            async for batch in iter_events(lines, cfg.max_event_bytes):
                yield [_decode(data, "a stream event") for data in batch]
        except UpstreamError as exc:
            raise _unavailable(exc) from None
        except SSEError as exc:
            raise A2AError(INVALID_AGENT_RESPONSE, f"agent stream invalid: {exc}", 502) from None
        finally:
            resp.release()


async def _counted(
    lines: AsyncIterator[list[bytes]], max_bytes: int, agent: str
) -> AsyncIterator[list[bytes]]:
    """The stream's lines, ended with QUOTA_EXCEEDED once they carry more than ``max_bytes``."""
    total = 0
    async for batch in lines:
        total += sum(len(line) + 1 for line in batch)
        if total > max_bytes:
            raise quota_error(
                "max_stream_bytes", f"agent stream larger than {max_bytes} bytes", 502, agent
            )
        yield batch
