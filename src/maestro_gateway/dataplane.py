"""The A2A data path: parse, translate, guard, forward, guard again, answer.

Both bindings (JSON-RPC at ``/agents/{id}``, HTTP+JSON under ``/agents/{id}/rest``) are turned
into one canonical form — the A2A 1.0 method name and params — so guards see one shape whatever
the client or agent speaks. The upstream call is always JSON-RPC, in the agent's version.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from maestro_gateway.a2a import compat03
from maestro_gateway.a2a.errors import (
    CONTENT_TYPE_NOT_SUPPORTED,
    INTERNAL_ERROR,
    INVALID_AGENT_RESPONSE,
    INVALID_REQUEST,
    A2AError,
    not_found,
)
from maestro_gateway.a2a.sse import encode_event
from maestro_gateway.context import RequestContext
from maestro_gateway.http import BodyTooLarge, ClientDisconnected, header_map, read_body, send_bytes
from maestro_gateway.observability import (
    AccessLog,
    Metrics,
    new_request_id,
    request_id_var,
    traceparent,
)
from maestro_gateway.pipeline import Pipeline
from maestro_gateway.proxy import Upstream
from maestro_gateway.registry.routing import ROUTER_ID, Directory, Target
from maestro_gateway.requests import error_rpc_id, parse_jsonrpc, parse_rest
from maestro_gateway.types import Receive, Scope, Send, Verdict, VerdictKind

log = logging.getLogger("maestro_gateway.dataplane")

STREAMING = frozenset({"SendStreamingMessage", "SubscribeToTask"})
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]

CardRewriter = Callable[[str, dict[str, Any]], dict[str, Any]]


@dataclass(slots=True)
class Call:
    """Bookkeeping for one request: what the access log and metrics report."""

    request_id: str
    binding: str
    started: float
    agent: str = "unknown"
    method: str = "-"
    rpc_id: Any = None
    client_version: str = "1.0"
    verdict: str = "allow"
    status: int = 200
    started_response: bool = False


def verdict_error(v: Verdict) -> A2AError:
    meta = {"guard": v.guard, **{k: str(x) for k, x in v.details.items()}}
    reason = "GUARD_ESCALATED" if v.kind is VerdictKind.ESCALATE else "GUARD_DENIED"
    return A2AError(v.code, v.reason, v.status, reason=reason, metadata=meta)


class DataPlane:
    def __init__(
        self,
        pipeline: Pipeline,
        upstream: Upstream,
        directory: Directory,
        metrics: Metrics,
        access_log: AccessLog,
        card_rewriter: CardRewriter | None = None,
    ) -> None:
        self.access_log = access_log
        self.pipeline = pipeline
        self.upstream = upstream
        self.directory = directory
        self.metrics = metrics
        self.card_rewriter = card_rewriter

    async def handle(
        self, scope: Scope, receive: Receive, send: Send, agent_id: str, rest_path: str | None
    ) -> None:
        headers = header_map(scope)
        call = Call(
            new_request_id(headers.get("x-request-id")),
            "jsonrpc" if rest_path is None else "rest",
            time.perf_counter(),
        )
        token = request_id_var.set(call.request_id)
        try:
            await self._handle(scope, receive, send, agent_id, rest_path, headers, call)
        except A2AError as exc:
            if call.rpc_id is None:
                call.rpc_id = error_rpc_id(exc)
            if call.verdict == "allow":
                call.verdict = "error"
            await self._send_error(send, call, exc)
        except ClientDisconnected:
            call.verdict, call.status = "disconnected", 499
        except Exception:
            log.exception("unhandled error", extra={"agent": call.agent, "method": call.method})
            call.verdict = "error"
            await self._send_error(send, call, A2AError(INTERNAL_ERROR, "internal error", 500))
        finally:
            self.metrics.observe(call.agent, call.method, call.verdict, call.started)
            self.access_log.write(
                {
                    "level": "info",
                    "logger": "maestro_gateway.access",
                    "msg": "request",
                    "request_id": call.request_id,
                    "agent": call.agent,
                    "method": call.method,
                    "binding": call.binding,
                    "a2a_version": call.client_version,
                    "verdict": call.verdict,
                    "status": call.status,
                    "duration_ms": round((time.perf_counter() - call.started) * 1000, 3),
                }
            )
            request_id_var.reset(token)

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        agent_id: str,
        rest_path: str | None,
        headers: dict[str, str],
        call: Call,
    ) -> None:
        target = self.directory.get(agent_id) if agent_id != ROUTER_ID else None
        if target is None and agent_id != ROUTER_ID:
            raise not_found()
        call.agent = agent_id
        limit = self.pipeline.settings(agent_id).validate_.max_body_bytes
        try:
            body = await read_body(receive, limit)
        except BodyTooLarge:
            raise A2AError(
                INVALID_REQUEST, f"request body larger than {limit} bytes", 413, "BODY_TOO_LARGE"
            ) from None
        if rest_path is None:
            _check_ctype(headers, body, ("application/json", "application/a2a+json"))
            req = parse_jsonrpc(body, headers)
            call.rpc_id = req.rpc_id
        else:
            _check_ctype(headers, body, ("application/a2a+json", "application/json"))
            req = parse_rest(scope["method"], rest_path, scope.get("query_string", b""), body)
        call.method, call.client_version = req.method, req.version
        trace_id, upstream_tp = traceparent(headers.get("traceparent"))
        ctx = RequestContext(
            request_id=call.request_id,
            agent_id=agent_id,
            method=req.method,
            params=req.params,
            binding=call.binding,
            client_version=req.version,
            headers=headers,
            client_addr=(scope.get("client") or ("", 0))[0],
            skill_id=_skill_id(req.params),
            traceparent=upstream_tp,
            tenant=req.params.get("tenant") if isinstance(req.params, dict) else None,
            body_size=len(body),
            raw_body=body,
        )
        if target is None:  # the virtual router agent
            route = (
                self.directory.route(req.params)
                if req.method in STREAMING | {"SendMessage"}
                else None
            )
            if route is None:
                raise not_found("skill")
            target, ctx.skill_id = route.target, route.skill_id
            log.info(
                "routed",
                extra={"skill": route.skill_id, "to": target.agent_id, "reason": route.reason},
            )
        verdict = await self.pipeline.request(ctx)
        if not verdict.allowed:
            self._deny(call, verdict)
        up_method, up_params = req.method, ctx.params
        if target.protocol_version == "0.3":
            up_method, up_params = compat03.request_to_03(req.method, ctx.params)
        payload = orjson.dumps(
            {"jsonrpc": "2.0", "id": call.request_id, "method": up_method, "params": up_params}
        )
        up_headers = {
            "Content-Type": "application/json",
            "traceparent": upstream_tp,
            "X-Request-Id": call.request_id,
        }
        if target.protocol_version != "0.3":
            up_headers["A2A-Version"] = "1.0"
        if ext := headers.get("a2a-extensions") or headers.get("x-a2a-extensions"):
            up_headers[
                "A2A-Extensions" if target.protocol_version != "0.3" else "X-A2A-Extensions"
            ] = ext
        del trace_id
        if req.method in STREAMING:
            up_headers["Accept"] = "text/event-stream"
            events = self.upstream.stream("POST", target.url, payload, up_headers)
            await self._stream(receive, send, call, ctx, target, events)
            return
        _, resp = await self.upstream.call_json("POST", target.url, payload, up_headers)
        result = await self._result(call, ctx, target, resp, stream=False)
        if req.method == "GetExtendedAgentCard" and self.card_rewriter and isinstance(result, dict):
            result = self.card_rewriter(target.agent_id, result)
        await self._send_result(send, call, result)

    def _deny(self, call: Call, verdict: Verdict) -> None:
        call.verdict = verdict.kind.value
        self.metrics.denied(verdict.guard, str(verdict.details.get("rule", "")))
        raise verdict_error(verdict)

    async def _result(
        self, call: Call, ctx: RequestContext, target: Target, resp: Any, stream: bool
    ) -> Any:
        """Check an upstream JSON-RPC response, run the response guards, return the result."""
        if not isinstance(resp, dict):
            raise A2AError(INVALID_AGENT_RESPONSE, "agent response is not a JSON-RPC object", 502)
        if "error" in resp:
            raise _relay_error(resp["error"])
        if "result" not in resp:
            raise A2AError(INVALID_AGENT_RESPONSE, "agent response has no result", 502)
        result = resp["result"]
        if target.protocol_version == "0.3":
            if stream:
                result = compat03.stream_event_to_10(result)
            else:
                result = compat03.result_to_10(ctx.method, result)
        verdict = await self.pipeline.response(ctx, result, stream=stream)
        if verdict.kind is VerdictKind.MUTATE:
            result = verdict.payload
        elif not verdict.allowed:
            self._deny(call, verdict)
        if call.client_version == "0.3":
            if stream:
                return compat03.stream_event_to_03(result)
            return compat03.result_to_03(ctx.method, result)
        return result

    async def _flush(self, send: Send, call: Call, events: list[bytes]) -> None:
        """Send encoded SSE events in one write, starting the response first if needed."""
        if not events:
            return
        if not call.started_response:
            call.started_response, call.status = True, 200
            headers = _SSE_HEADERS + self._id_header(call)
            await send({"type": "http.response.start", "status": 200, "headers": headers})
        body = b"".join(events)
        await send({"type": "http.response.body", "body": body, "more_body": True})

    def _encode(self, call: Call, result: Any) -> bytes:
        if call.binding == "rest":
            return orjson.dumps(result)
        return orjson.dumps({"jsonrpc": "2.0", "id": call.rpc_id, "result": result})

    async def _send_result(self, send: Send, call: Call, result: Any) -> None:
        ctype = b"application/a2a+json" if call.binding == "rest" else b"application/json"
        call.status = 200
        await send_bytes(send, 200, self._encode(call, result), ctype, self._id_header(call))

    @staticmethod
    def _id_header(call: Call) -> list[tuple[bytes, bytes]]:
        return [(b"x-request-id", call.request_id.encode())]

    async def _send_error(self, send: Send, call: Call, exc: A2AError) -> None:
        if call.started_response:  # mid-stream: the error is the last event
            body = exc.rest_bytes() if call.binding == "rest" else exc.jsonrpc_bytes(call.rpc_id)
            await send({"type": "http.response.body", "body": encode_event(body)})
            await send({"type": "http.response.body", "body": b""})
            return
        if call.binding == "rest":
            call.status = exc.status
            await send_bytes(send, exc.status, exc.rest_bytes(), headers=self._id_header(call))
        else:
            # JSON-RPC errors travel with HTTP 200, except transport-level refusals.
            call.status = exc.status if exc.status in (404, 413, 415) else 200
            body = exc.jsonrpc_bytes(call.rpc_id)
            await send_bytes(send, call.status, body, headers=self._id_header(call))

    async def _stream(
        self,
        receive: Receive,
        send: Send,
        call: Call,
        ctx: RequestContext,
        target: Target,
        events: AsyncIterator[list[Any]],
    ) -> None:
        """Relay an SSE stream event by event, each one through the stream-event guards."""

        async def relay() -> None:
            async for batch in events:
                out: list[bytes] = []
                try:
                    for event in batch:
                        result = await self._result(call, ctx, target, event, stream=True)
                        out.append(encode_event(self._encode(call, result)))
                except A2AError:  # what passed the guards goes out before the error event
                    await self._flush(send, call, out)
                    raise
                await self._flush(send, call, out)
            if not call.started_response:
                raise A2AError(
                    INVALID_AGENT_RESPONSE, "agent closed the stream without events", 502
                )
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


def _check_ctype(headers: dict[str, str], body: bytes, allowed: tuple[str, ...]) -> None:
    if not body:
        return
    raw = headers.get("content-type", "")
    media, _, rest = raw.partition(";")
    if media.strip().lower() not in allowed:
        raise A2AError(
            CONTENT_TYPE_NOT_SUPPORTED,
            f"Content-Type must be {allowed[0]}, not {raw or '(none)'!r}",
            415,
        )
    charset = rest.strip().lower()
    if charset and charset.replace(" ", "") not in ("charset=utf-8", 'charset="utf-8"'):
        raise A2AError(CONTENT_TYPE_NOT_SUPPORTED, "only UTF-8 request bodies are accepted", 415)


def _skill_id(params: Any) -> str | None:
    if not isinstance(params, dict):
        return None
    message = params.get("message")
    if not isinstance(message, dict):
        return None
    metadata = message.get("metadata")
    skill = metadata.get("skillId") if isinstance(metadata, dict) else None
    return skill if isinstance(skill, str) and len(skill) <= 128 else None


def _relay_error(error: Any) -> A2AError:
    """An agent's JSON-RPC error, relayed with its code and message (bounded)."""
    if not isinstance(error, dict) or not isinstance(error.get("code"), int):
        return A2AError(INVALID_AGENT_RESPONSE, "agent sent a malformed error", 502)
    message = error.get("message")
    text = message[:1024] if isinstance(message, str) else "agent error"
    return A2AError(error["code"], text, 0, domain="a2a-protocol.org")
