"""Answering the client: results, errors and SSE streams, in the binding the client used."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from maestro_gateway.a2a.errors import INVALID_AGENT_RESPONSE, TASK_NOT_FOUND, A2AError, not_found
from maestro_gateway.a2a.sse import encode_event
from maestro_gateway.http import ClientDisconnected, send_bytes
from maestro_gateway.types import Receive, Send, Verdict, VerdictKind

_SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


@dataclass(slots=True)
class Call:
    """One request's answer state, and what the access log and metrics report about it."""

    request_id: str
    binding: str  # "jsonrpc" or "rest"
    started: float
    agent: str = "unknown"
    method: str = "-"
    rpc_id: Any = None
    client_version: str = "1.0"
    verdict: str = "allow"
    status: int = 200
    started_response: bool = False
    extra_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    principal: str = ""
    identity: dict[str, Any] | None = None
    """C20: who the request was made for (``Identity.record()``), for every record about it."""
    workload: dict[str, str] | None = None
    """C20/C12: the client certificate's SPIFFE ID and SHA-256 fingerprint, the agent's SPIFFE
    ID and the gateway's own identity (``client_spiffe_id``, ``client_cert_sha256``,
    ``agent_spiffe_id``, ``gateway_id``; only those known)."""

    def id_header(self) -> list[tuple[bytes, bytes]]:
        return [(b"x-request-id", self.request_id.encode()), *self.extra_headers]

    def encode(self, result: Any) -> bytes:
        """A result as the client's binding carries it (bare for REST, enveloped for JSON-RPC)."""
        if self.binding == "rest":
            return orjson.dumps(result)
        return orjson.dumps({"jsonrpc": "2.0", "id": self.rpc_id, "result": result})


def verdict_error(v: Verdict) -> A2AError:
    if v.details.get("hidden"):  # authorization hides it: answer exactly as absence is answered
        if v.code == TASK_NOT_FOUND:
            return A2AError(TASK_NOT_FOUND, "task not found", 404, reason="TASK_NOT_FOUND")
        return not_found(str(v.details["hidden"]))
    meta = {"guard": v.guard, **{k: str(x) for k, x in v.details.items()}}
    reason = "GUARD_ESCALATED" if v.kind is VerdictKind.ESCALATE else "GUARD_DENIED"
    return A2AError(v.code, v.reason, v.status, reason=reason, metadata=meta)


def relay_error(error: Any) -> A2AError:
    """An agent's JSON-RPC error, relayed with its code and message (bounded)."""
    if not isinstance(error, dict) or not isinstance(error.get("code"), int):
        return A2AError(INVALID_AGENT_RESPONSE, "agent sent a malformed error", 502)
    message = error.get("message")
    text = message[:1024] if isinstance(message, str) else "agent error"
    return A2AError(error["code"], text, 0, domain="a2a-protocol.org")


async def send_result(send: Send, call: Call, result: Any) -> None:
    ctype = b"application/a2a+json" if call.binding == "rest" else b"application/json"
    call.status = 200
    await send_bytes(send, 200, call.encode(result), ctype, call.id_header())


async def send_error(send: Send, call: Call, exc: A2AError) -> None:
    if call.started_response:  # mid-stream: the error is the last event
        body = exc.rest_bytes() if call.binding == "rest" else exc.jsonrpc_bytes(call.rpc_id)
        await send({"type": "http.response.body", "body": encode_event(body)})
        await send({"type": "http.response.body", "body": b""})
        return
    if call.binding == "rest":
        call.status = exc.status
        await send_bytes(send, exc.status, exc.rest_bytes(), headers=call.id_header())
    else:
        # JSON-RPC errors travel with HTTP 200, except transport-level refusals, and those a
        # proxy or client should see (401 with its WWW-Authenticate challenge, 429 Too Many
        # Requests, 503 with Retry-After).
        call.status = exc.status if exc.status in (401, 404, 413, 415, 429, 503) else 200
        body = exc.jsonrpc_bytes(call.rpc_id)
        await send_bytes(send, call.status, body, headers=call.id_header())


async def _flush(send: Send, call: Call, events: list[bytes]) -> None:
    """Send encoded SSE events in one write, starting the response first if needed."""
    if not events:
        return
    if not call.started_response:
        call.started_response, call.status = True, 200
        headers = _SSE_HEADERS + call.id_header()
        await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"".join(events), "more_body": True})


async def relay_stream(
    receive: Receive,
    send: Send,
    call: Call,
    events: AsyncIterator[list[Any]],
    process: Callable[[Any], Awaitable[Any]],
) -> None:
    """Relay SSE events as they arrive; ``process`` checks and guards each one.

    Events that arrived together go out in one write. The response starts with the first
    event, so an agent failing before any event gets an ordinary error response. A stopped
    event (``process`` raising A2AError) ends the stream after the events before it. A client
    that disconnects cancels the relay, which closes the upstream stream.
    """

    async def relay() -> None:
        async for batch in events:
            out: list[bytes] = []
            try:
                for event in batch:
                    out.append(encode_event(call.encode(await process(event))))
            except A2AError:
                await _flush(send, call, out)
                raise
            await _flush(send, call, out)
        if not call.started_response:
            raise A2AError(INVALID_AGENT_RESPONSE, "agent closed the stream without events", 502)
        await send({"type": "http.response.body", "body": b""})

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    relay_task = asyncio.ensure_future(relay())
    watch_task = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({relay_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (relay_task, watch_task):
            if not task.done():
                task.cancel()
        await asyncio.gather(relay_task, watch_task, return_exceptions=True)
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
    if relay_task.cancelled():
        raise ClientDisconnected
    exc = relay_task.exception()
    if exc is not None:
        raise exc
