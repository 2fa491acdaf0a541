"""The A2A data path: parse, translate, guard, forward, guard again, answer.

Both bindings (JSON-RPC at ``/agents/{id}``, HTTP+JSON under ``/agents/{id}/rest``) are turned
into one canonical form — the A2A 1.0 method name and params — so guards see one shape whatever
the client or agent speaks. The upstream call is always JSON-RPC, in the agent's version.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from maestro_gateway.a2a import compat03
from maestro_gateway.a2a.errors import (
    INTERNAL_ERROR,
    INVALID_AGENT_RESPONSE,
    INVALID_REQUEST,
    A2AError,
    not_found,
)
from maestro_gateway.a2a.methods import STREAMING_METHODS
from maestro_gateway.approvals.a2a import MESSAGE_METHODS, Answer, ApprovalGate
from maestro_gateway.audit.recorder import AuditRecorder
from maestro_gateway.context import RequestContext
from maestro_gateway.guards.ratelimit import charge_response
from maestro_gateway.http import BodyTooLarge, ClientDisconnected, header_map, read_body
from maestro_gateway.observability import (
    AccessLog,
    Metrics,
    new_request_id,
    request_id_var,
    traceparent,
)
from maestro_gateway.pipeline import Pipeline, finish
from maestro_gateway.principal import principal_of
from maestro_gateway.proxy import Upstream, assertion_subject
from maestro_gateway.quotas import Quotas
from maestro_gateway.registry.routing import ROUTER_ID, Directory, Target
from maestro_gateway.reply import (
    Call,
    relay_error,
    relay_stream,
    send_error,
    send_result,
    verdict_error,
)
from maestro_gateway.requests import (
    check_content_type,
    error_rpc_id,
    parse_jsonrpc,
    parse_rest,
    skill_id_of,
)
from maestro_gateway.spiffe._records import act_claim, workload_record
from maestro_gateway.types import Receive, Scope, Send, Verdict, VerdictKind

log = logging.getLogger("maestro_gateway.dataplane")

_HEADER_VALUE = re.compile(r"[\x20-\x7e]{0,4096}")  # extension URIs: printable ASCII
CardRewriter = Callable[[str, dict[str, Any]], dict[str, Any]]


class DataPlane:
    def __init__(
        self,
        pipeline: Pipeline,
        upstream: Upstream,
        directory: Directory,
        metrics: Metrics,
        access_log: AccessLog,
        audit: AuditRecorder,
        card_rewriter: CardRewriter | None = None,
    ) -> None:
        self.access_log = access_log
        self.audit = audit
        self.pipeline = pipeline
        self.upstream = upstream
        self.directory = directory
        self.metrics = metrics
        self.card_rewriter = card_rewriter
        self.quotas = Quotas(upstream)  # C22 per-agent task quotas
        self.approvals: ApprovalGate | None = None  # C3 holds (set by the app)
        # Called when a request ends; must not block (the SIEM's API Activity enqueue).
        self.finished_hooks: list[Callable[[Call, Scope], None]] = []
        self.gateway_id: str | None = None  # C20: the gateway's own identity (SPIFFE ID or URL)

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
            if exc.status in (429, 503) and exc.metadata and "retry_after" in exc.metadata:
                # e.g. a quota or an open circuit: tell HTTP clients and proxies when to retry
                wait = max(1, round(float(exc.metadata["retry_after"]) + 0.49))
                call.extra_headers.append((b"retry-after", str(wait).encode()))
            await send_error(send, call, exc)
        except ClientDisconnected:
            call.verdict, call.status = "disconnected", 499
        except Exception:
            log.exception("unhandled error", extra={"agent": call.agent, "method": call.method})
            call.verdict = "error"
            await send_error(send, call, A2AError(INTERNAL_ERROR, "internal error", 500))
        finally:
            self.metrics.observe(call.agent, call.method, call.verdict, call.started)
            for hook in self.finished_hooks:
                hook(call, scope)
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
                    "principal": call.principal,
                    "identity": call.identity,
                    "workload": call.workload,
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
            check_content_type(headers, body, ("application/json", "application/a2a+json"))
            req = parse_jsonrpc(body, headers)
            call.rpc_id = req.rpc_id
        else:
            check_content_type(headers, body, ("application/a2a+json", "application/json"))
            req = parse_rest(scope["method"], rest_path, scope.get("query_string", b""), body)
        call.method, call.client_version = req.method, req.version
        _, upstream_tp = traceparent(headers.get("traceparent"))
        ctx = RequestContext(
            request_id=call.request_id,
            agent_id=agent_id,
            method=req.method,
            params=req.params,
            binding=call.binding,
            client_version=req.version,
            headers=headers,
            client_addr=(scope.get("client") or ("", 0))[0],
            skill_id=skill_id_of(req.params),
            traceparent=upstream_tp,
            tenant=req.params.get("tenant") if isinstance(req.params, dict) else None,
            body_size=len(body),
            raw_body=body,
            extra={
                "http_method": scope["method"],
                "query_string": scope.get("query_string", b""),
                "http_version": scope.get("http_version"),
            },
        )
        if tls := (scope.get("extensions") or {}).get("tls"):  # C12: a verified client SVID
            ctx.extra["client_spiffe_id"] = tls.get("spiffe_id")
            ctx.extra["client_cert_sha256"] = tls.get("fingerprint_sha256")
        if target is None:  # the virtual router agent
            route = (
                self.directory.route(req.params)
                if req.method in STREAMING_METHODS | {"SendMessage"}
                else None
            )
            if route is None:
                raise not_found("skill")
            target, ctx.skill_id = route.target, route.skill_id
            # From here on the request is the chosen agent's: its guard settings apply.
            ctx.agent_id = call.agent = target.agent_id
            log.info(
                "routed",
                extra={"skill": route.skill_id, "to": target.agent_id, "reason": route.reason},
            )
        try:
            await self._forward(receive, send, call, ctx, target, headers, upstream_tp)
        finally:
            await finish(ctx)  # e.g. give back concurrency slots, whatever happened
            self.quotas.release(ctx)

    async def _forward(
        self,
        receive: Receive,
        send: Send,
        call: Call,
        ctx: RequestContext,
        target: Target,
        headers: dict[str, str],
        upstream_tp: str,
    ) -> None:
        """Guard the request, call the agent, guard and send the answer."""
        req_method = ctx.method
        if self.approvals is not None:  # a continuation of a held task: the stored request
            await self.approvals.continuation(ctx)
        verdict = await self.pipeline.request(ctx)
        call.principal = principal_of(ctx)  # C20: identity on every record about this request
        if (identity := ctx.extra.get("identity")) is not None:
            call.identity = identity.record()
        call.workload = workload_record(ctx, target.expected_spiffe_id, self.gateway_id)
        if self.upstream.assertions is not None:  # T6: whom the gateway's assertion names
            assertion_subject.set((call.principal, act_claim(identity)))
        if self.approvals is not None:
            if verdict.kind is VerdictKind.ESCALATE and req_method in MESSAGE_METHODS:
                call.verdict = "held"  # stored and audited (approval.held); nothing is forwarded
                held = await self.approvals.hold(ctx, verdict)
                return await self._answer(receive, send, call, ctx, held)
            if verdict.allowed and (answer := await self.approvals.answer(ctx)) is not None:
                return await self._answer(receive, send, call, ctx, answer)
        if not verdict.allowed:
            await self._deny(call, verdict)
        self.quotas.admit(ctx, target.agent_id, req_method)  # C22: max concurrent tasks
        up_method, up_params = req_method, ctx.params
        if target.protocol_version == "0.3":
            up_method, up_params = compat03.request_to_03(req_method, ctx.params)
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
            if not _HEADER_VALUE.fullmatch(ext):
                raise A2AError(
                    INVALID_REQUEST, "A2A-Extensions header holds forbidden characters", 400
                )
            up_headers[
                "A2A-Extensions" if target.protocol_version != "0.3" else "X-A2A-Extensions"
            ] = ext
        if req_method in STREAMING_METHODS:
            up_headers["Accept"] = "text/event-stream"
            reply_headers: dict[bytes, bytes] = {}
            events = self.upstream.stream(
                "POST",
                target.url,
                payload,
                up_headers,
                agent=target.agent_id,
                reply_headers=reply_headers,
            )
            events = self.quotas.bound(events, ctx, target, up_headers)  # C22 duration, bytes

            async def process(event: Any) -> Any:
                return await self._result(call, ctx, target, event, stream=True)

            try:
                await relay_stream(receive, send, call, events, process)
            finally:
                await charge_response(ctx, reply_headers)  # C6 cost the agent reported
            return
        reply_headers = {}
        _, resp = await self.upstream.call_json(
            "POST",
            target.url,
            payload,
            up_headers,
            agent=target.agent_id,
            reply_headers=reply_headers,
        )
        await charge_response(ctx, reply_headers)  # C6 cost the agent reported
        result = await self._result(call, ctx, target, resp, stream=False)
        if req_method == "GetExtendedAgentCard" and self.card_rewriter and isinstance(result, dict):
            result = self.card_rewriter(target.agent_id, result)
        await send_result(send, call, result)

    async def _answer(
        self, receive: Receive, send: Send, call: Call, ctx: RequestContext, answer: Answer
    ) -> None:
        """Send a result the gateway made itself (a held task): the response guards see it like
        an agent's answer (authz binds the held task to its requester), in the client's version."""
        result, stream = answer.result, ctx.method in STREAMING_METHODS
        verdict = await self.pipeline.response(ctx, result, stream=stream)
        if verdict.kind is VerdictKind.MUTATE:
            result = verdict.payload
        elif not verdict.allowed:
            await self._deny(call, verdict)
        if call.client_version == "0.3":
            result = (
                compat03.stream_event_to_03(result)
                if stream
                else compat03.result_to_03(ctx.method, result)
            )
        if not stream:
            return await send_result(send, call, result)

        async def one() -> AsyncIterator[list[Any]]:
            yield [result]

        async def same(event: Any) -> Any:
            return event

        await relay_stream(receive, send, call, one(), same)

    async def _deny(self, call: Call, verdict: Verdict) -> None:
        call.verdict = verdict.kind.value
        rule = str(verdict.details.get("rule", ""))
        self.metrics.denied(verdict.guard, rule)
        await self.audit.note(
            {
                "type": f"guard.{verdict.kind.value}",
                "request_id": call.request_id,
                "agent": call.agent,
                "method": call.method,
                "guard": verdict.guard,
                "rule": rule,
                "reason": verdict.reason[:500],
                "principal": call.principal,
                "identity": call.identity,
                "workload": call.workload,
            }
        )
        headers = verdict.details.pop("headers", None)
        if headers:  # e.g. Retry-After and RateLimit on a rate-limit refusal
            call.extra_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        raise verdict_error(verdict)

    async def _result(
        self, call: Call, ctx: RequestContext, target: Target, resp: Any, stream: bool
    ) -> Any:
        """Check an upstream JSON-RPC response, run the response guards, return the result."""
        if not isinstance(resp, dict):
            raise A2AError(INVALID_AGENT_RESPONSE, "agent response is not a JSON-RPC object", 502)
        if "error" in resp:
            raise relay_error(resp["error"])
        if "result" not in resp:
            raise A2AError(INVALID_AGENT_RESPONSE, "agent response has no result", 502)
        result = resp["result"]
        if target.protocol_version == "0.3":
            if stream:
                result = compat03.stream_event_to_10(result)
            else:
                result = compat03.result_to_10(ctx.method, result)
        if self.approvals is not None:
            await self.approvals.observe(ctx, result)
        verdict = await self.pipeline.response(ctx, result, stream=stream)
        if verdict.kind is VerdictKind.MUTATE:
            result = verdict.payload
        elif not verdict.allowed:
            await self._deny(call, verdict)
        if call.client_version == "0.3":
            if stream:
                return compat03.stream_event_to_03(result)
            return compat03.result_to_03(ctx.method, result)
        return result
