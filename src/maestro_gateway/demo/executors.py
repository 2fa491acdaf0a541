"""Deterministic agent logic (no LLM) for the three demo agents.

Each class is an a2a-sdk ``AgentExecutor``; the SDK request handler turns the events they
enqueue into A2A 1.0 (and, through the SDK adapter, 0.3) responses:

- :class:`EchoExecutor` answers with a single ``Message`` (no task).
- :class:`WriterExecutor` produces a task whose report artifact arrives in chunks.
- :class:`WorkerExecutor` runs a cancellable long job and a two-turn ``INPUT_REQUIRED`` booking.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.tasks import TaskUpdater
from a2a.types.a2a_pb2 import Message, Part, Role, Task, TaskState, TaskStatus
from google.protobuf.json_format import MessageToDict

SUMMARY_WORDS = 8
"""Default number of words the ``summarize`` skill keeps."""

REPORT_ARTIFACT_ID = "report"
LONG_JOB_SECONDS = 30.0
LONG_JOB_STEPS = 30


def agent_text(text: str, context_id: str | None = None, task_id: str | None = None) -> Message:
    """An agent ``Message`` with one text part."""
    return Message(
        message_id=str(uuid.uuid4()),
        role=Role.ROLE_AGENT,
        parts=[Part(text=text)],
        context_id=context_id or None,
        task_id=task_id or None,
    )


def request_metadata(context: RequestContext) -> dict[str, Any]:
    """Request ``metadata`` overlaid with the message's own ``metadata`` (message wins)."""
    merged = dict(context.metadata)
    if context.message is not None:
        merged.update(MessageToDict(context.message.metadata))
    return merged


def _ids(context: RequestContext) -> tuple[str, str]:
    task_id, context_id = context.task_id, context.context_id
    if not task_id or not context_id:  # the SDK always fills both for SendMessage
        raise RuntimeError("request context without task/context id")
    return task_id, context_id


async def _start_task(
    context: RequestContext, queue: EventQueue, state: TaskState = TaskState.TASK_STATE_SUBMITTED
) -> TaskUpdater:
    """Enqueue the initial ``Task`` (if the request opened one) and return an updater."""
    task_id, context_id = _ids(context)
    if context.current_task is None:
        history = [context.message] if context.message is not None else []
        task = Task(
            id=task_id, context_id=context_id, status=TaskStatus(state=state), history=history
        )
        await queue.enqueue_event(task)
    return TaskUpdater(queue, task_id, context_id)


class EchoExecutor(AgentExecutor):
    """Skills ``echo`` ("echo: <text>") and ``summarize`` (first N words); replies are Messages.

    ``summarize`` is chosen by ``metadata.skill == "summarize"`` (N from ``metadata.maxWords``,
    default :data:`SUMMARY_WORDS`) or by a ``summarize:`` text prefix.
    """

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = context.get_user_input()
        meta = request_metadata(context)
        skill = meta.get("skill")
        if text.lower().startswith("summarize:"):
            skill, text = "summarize", text[len("summarize:") :]
        if skill == "summarize":
            raw = meta.get("maxWords", SUMMARY_WORDS)
            limit = raw if isinstance(raw, int | float) and raw > 0 else SUMMARY_WORDS
            reply = " ".join(text.split()[: int(limit)])
        else:
            reply = f"echo: {text}"
        await event_queue.enqueue_event(agent_text(reply, context.context_id))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        """Echo never creates tasks, so there is nothing to cancel."""


def report_chunks(topic: str) -> list[str]:
    """The deterministic report the ``write-report`` skill streams, one string per chunk."""
    topic = " ".join(topic.split()) or "untitled"
    return [
        f"# Report: {topic}\n\n",
        f"## Summary\nThis report covers {topic} in four short sections.\n\n",
        "## Findings\n1. The inputs were received.\n2. They were analysed deterministically.\n\n",
        "## Risks\nNone identified by this demo agent.\n\n",
        "## Conclusion\nEnd of report.\n",
    ]


class WriterExecutor(AgentExecutor):
    """Skill ``write-report``: a task that streams a report artifact in chunks, then completes."""

    def __init__(self, chunk_delay: float = 0.05) -> None:
        self._delay = chunk_delay

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        updater = await _start_task(context, event_queue)
        await updater.start_work(updater.new_agent_message([Part(text="drafting the report")]))
        chunks = report_chunks(context.get_user_input())
        for i, chunk in enumerate(chunks):
            await asyncio.sleep(self._delay)
            await updater.add_artifact(
                [Part(text=chunk)],
                artifact_id=REPORT_ARTIFACT_ID,
                name="report.md",
                append=i > 0,
                last_chunk=i == len(chunks) - 1,
            )
        await updater.complete(updater.new_agent_message([Part(text="report written")]))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        await _updater_for(context, event_queue).cancel()


def _updater_for(context: RequestContext, event_queue: EventQueue) -> TaskUpdater:
    task = context.current_task
    task_id = context.task_id or (task.id if task else "")
    context_id = context.context_id or (task.context_id if task else "")
    return TaskUpdater(event_queue, task_id, context_id)


class WorkerExecutor(AgentExecutor):
    """Skills ``long-job`` (cancellable, ~30 s of progress updates) and ``book-travel``.

    - text ``long`` (or any text sent with ``returnImmediately``): a WORKING task that emits
      ``progress k/N`` status updates for :data:`LONG_JOB_SECONDS`, then completes.
    - text containing ``book a trip``: the task goes INPUT_REQUIRED asking "which date?"; the
      next message on the same task completes it with a booking artifact.
    - anything else completes at once with a ``done: <text>`` artifact.
    """

    def __init__(self, long_job_seconds: float = LONG_JOB_SECONDS) -> None:
        self._seconds = long_job_seconds
        self._running: set[str] = set()
        self._cancelled: set[str] = set()

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = context.get_user_input().strip()
        current = context.current_task
        if current is not None and current.status.state == TaskState.TASK_STATE_INPUT_REQUIRED:
            await self._finish_booking(context, event_queue, text)
        elif "book a trip" in text.lower():
            updater = await _start_task(context, event_queue)
            await updater.requires_input(updater.new_agent_message([Part(text="which date?")]))
        elif text.lower() == "long" or (
            context.configuration is not None and context.configuration.return_immediately
        ):
            await self._long_job(context, event_queue)
        else:
            updater = await _start_task(context, event_queue)
            await updater.add_artifact([Part(text=f"done: {text}")], name="result")
            await updater.complete()

    async def _finish_booking(self, context: RequestContext, queue: EventQueue, date: str) -> None:
        updater = await _start_task(context, queue)
        await updater.start_work()
        await updater.add_artifact(
            [Part(text=f"trip booked for {date or 'the first available date'}")], name="booking"
        )
        await updater.complete(updater.new_agent_message([Part(text="booked")]))

    async def _long_job(self, context: RequestContext, queue: EventQueue) -> None:
        task_id, _ = _ids(context)
        updater = await _start_task(context, queue, TaskState.TASK_STATE_WORKING)
        step = self._seconds / LONG_JOB_STEPS
        self._running.add(task_id)
        try:
            for k in range(1, LONG_JOB_STEPS + 1):
                await asyncio.sleep(step)
                if task_id in self._cancelled:  # cancel() already wrote the terminal state
                    return
                msg = updater.new_agent_message([Part(text=f"progress {k}/{LONG_JOB_STEPS}")])
                await updater.update_status(TaskState.TASK_STATE_WORKING, message=msg)
            await updater.add_artifact([Part(text="long job finished")], name="result")
            await updater.complete()
        finally:
            self._running.discard(task_id)
            self._cancelled.discard(task_id)

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        updater = _updater_for(context, event_queue)
        # Flag first (no await in between): the job loop must not emit after CANCELED.
        if updater.task_id in self._running:
            self._cancelled.add(updater.task_id)
        await updater.cancel(updater.new_agent_message([Part(text="cancelled by request")]))
