"""C22 per-agent quotas: task duration, stream bytes, concurrent tasks (threat T3).

Enforced at the gateway, per agent (``upstream.quotas``, overridden in ``upstream.per_agent``):

- ``max_concurrent_tasks`` — SendMessage calls and streams (SendStreamingMessage,
  SubscribeToTask) in flight to the agent at once; the excess is refused with 429 before the
  agent is called.
- ``max_task_duration_s`` — a stream still open after this is ended by the gateway.
- ``max_stream_bytes`` — a stream that carried more than this from the agent is ended (counted
  on the raw SSE bytes in ``proxy.Upstream.stream``).

An ended stream's task is cancelled upstream (``CancelTask``, in the agent's A2A version), and
the client gets an error event with code -32087 and ErrorInfo reason ``QUOTA_EXCEEDED``
(metadata ``quota``, ``agent``). A unary call is bounded by the agent's ``total_timeout_s`` and
``max_response_bytes``.

Counts are per gateway process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson

from maestro_gateway._quota_config import QuotaConfig
from maestro_gateway.a2a import compat03
from maestro_gateway.a2a.errors import A2AError
from maestro_gateway.a2a.methods import STREAMING_METHODS

if TYPE_CHECKING:
    from maestro_gateway.context import RequestContext
    from maestro_gateway.proxy import Upstream
    from maestro_gateway.registry.routing import Target

__all__ = ["QUOTA_EXCEEDED", "QuotaConfig", "Quotas", "quota_error"]

log = logging.getLogger("maestro_gateway.quotas")

QUOTA_EXCEEDED = -32087
"""JSON-RPC code of a quota refusal: the implementation-defined server-error range, next to
the rate limits' -32090 (A2A defines none for quotas)."""

TASK_METHODS = STREAMING_METHODS | {"SendMessage"}


def quota_error(quota: str, message: str, status: int, agent: str) -> A2AError:
    metadata = {"quota": quota, "agent": agent}
    if status == 429:
        metadata["retry_after"] = "1"  # a slot frees when one of the agent's tasks ends
    return A2AError(QUOTA_EXCEEDED, message, status, reason="QUOTA_EXCEEDED", metadata=metadata)


def task_id_of(event: Any) -> str | None:
    """The task id an upstream stream event (a JSON-RPC response, 1.0 or 0.3) speaks of."""
    result = event.get("result") if isinstance(event, dict) else None
    if not isinstance(result, dict):
        return None
    if result.get("kind") == "task" and isinstance(result.get("id"), str):  # 0.3 Task
        return str(result["id"])
    if isinstance(result.get("taskId"), str):  # 0.3 updates and messages
        return str(result["taskId"])
    for key, value in result.items():  # 1.0 StreamResponse: {task|message|statusUpdate|…}
        if isinstance(value, dict):
            found = value.get("id") if key == "task" else value.get("taskId")
            if isinstance(found, str):
                return found
    return None


class Quotas:
    """Per-agent task quotas of one gateway process."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.in_flight: dict[str, int] = {}
        self.cancelled: list[tuple[str, str]] = []  # (agent, task id), for metrics and tests

    def admit(self, ctx: RequestContext, agent: str, method: str) -> None:
        """Take a task slot for this request, or raise QUOTA_EXCEEDED (429)."""
        limit = self.upstream.settings(agent).quotas.max_concurrent_tasks
        if limit is None or method not in TASK_METHODS:
            return
        n = self.in_flight.get(agent, 0)
        if n >= limit:
            raise quota_error(
                "max_concurrent_tasks", f"agent {agent!r} has {limit} tasks in flight", 429, agent
            )
        self.in_flight[agent] = n + 1
        ctx.extra["quota_task"] = agent

    def release(self, ctx: RequestContext) -> None:
        """Give back the slot taken by ``admit`` (idempotent)."""
        agent = ctx.extra.pop("quota_task", None)
        if agent is not None:
            n = self.in_flight.get(agent, 1) - 1
            if n > 0:
                self.in_flight[agent] = n
            else:
                self.in_flight.pop(agent, None)

    def bound(
        self,
        events: AsyncIterator[list[Any]],
        ctx: RequestContext,
        target: Target,
        headers: dict[str, str],
    ) -> AsyncIterator[list[Any]]:
        """The upstream stream, ended (and its task cancelled upstream) past the quotas;
        ``events`` itself when the agent has no duration or byte quota."""
        quotas = self.upstream.settings(target.agent_id).quotas
        if quotas.max_task_duration_s is None and quotas.max_stream_bytes is None:
            return events
        return self._bounded(events, ctx, target, headers, quotas)

    async def _bounded(
        self,
        events: AsyncIterator[list[Any]],
        ctx: RequestContext,
        target: Target,
        headers: dict[str, str],
        quotas: QuotaConfig,
    ) -> AsyncIterator[list[Any]]:
        params = ctx.params if isinstance(ctx.params, dict) else {}
        task_id = params.get("id") if ctx.method == "SubscribeToTask" else None
        loop = asyncio.get_running_loop()
        limit = quotas.max_task_duration_s
        deadline = loop.time() + limit if limit is not None else None
        error: A2AError | None = None
        it = events.__aiter__()
        try:
            while True:
                try:
                    if deadline is None:
                        batch = await it.__anext__()
                    else:
                        batch = await asyncio.wait_for(it.__anext__(), deadline - loop.time())
                except StopAsyncIteration:
                    return
                for event in batch:
                    task_id = task_id or task_id_of(event)
                yield batch
        except TimeoutError:
            error = quota_error(
                "max_task_duration_s",
                f"task ran longer than {limit:g} s; cancelled by the gateway",
                504,
                target.agent_id,
            )
        except A2AError as exc:
            if exc.reason != "QUOTA_EXCEEDED":
                raise
            error = exc
        finally:
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                await aclose()
        assert error is not None  # the loop only ends by return or by a caught quota error
        if isinstance(task_id, str):
            await self.cancel(target, task_id, headers, quotas)
        raise error

    async def cancel(
        self, target: Target, task_id: str, headers: dict[str, str], quotas: QuotaConfig
    ) -> None:
        """Send CancelTask for ``task_id`` to the agent; failures are logged, not raised."""
        method, params = "CancelTask", {"id": task_id}
        if target.protocol_version == "0.3":
            method, params = compat03.request_to_03(method, params)
        body = orjson.dumps(
            {"jsonrpc": "2.0", "id": f"cancel-{task_id}", "method": method, "params": params}
        )
        up_headers = {k: v for k, v in headers.items() if k != "Accept"}
        self.cancelled.append((target.agent_id, task_id))
        try:
            await asyncio.wait_for(
                self.upstream.call_json(
                    "POST", target.url, body, up_headers, agent=target.agent_id
                ),
                quotas.cancel_timeout_s,
            )
        except (A2AError, TimeoutError) as exc:
            log.warning(
                "CancelTask upstream failed",
                extra={"agent": target.agent_id, "task": task_id, "error": str(exc)},
            )
