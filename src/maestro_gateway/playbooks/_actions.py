"""What each action does, and how it is undone.

block_principal / block_source / revoke_token / require_step_up / require_approval set an
entry in the EnforcementState (the ``enforce`` guard reads it on the next request; a longer
measure already in force is kept); suspend_agent goes through ``RegistryService.transition``
(audited by the registry, the agent is answered as not found); webhook POSTs the finding
with aiohttp in its own task, with a timeout, never on the request path.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import aiohttp

from maestro_gateway.detect.model import Finding
from maestro_gateway.playbooks.enforcement import EnforcementState, Measure
from maestro_gateway.playbooks.model import Action, Webhook
from maestro_gateway.registry.models import AgentState
from maestro_gateway.registry.service import RegistryService

if TYPE_CHECKING:
    from maestro_gateway.playbooks.engine import ActionRecord

log = logging.getLogger("maestro_gateway.playbooks")

MEASURE_OF: dict[str, Measure] = {
    "block_principal": "principal",
    "block_source": "source",
    "revoke_token": "token",
    "require_step_up": "step_up",
    "require_approval": "approval",
}


class Effects:
    def __init__(
        self, state: EnforcementState, registry: RegistryService | None, max_webhooks: int
    ) -> None:
        self.state = state
        self.registry = registry
        self.max_webhooks = max_webhooks
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def apply(self, record: ActionRecord, action: Action, finding: Finding) -> None:
        target = record.target or ""
        measure = MEASURE_OF.get(action.type)
        if measure is not None:
            current = self.state.until(measure, target)
            until = record.until
            if current is None or (current is not False and until is not None and current > until):
                until = current  # keep the longer measure already in force
            self.state.set(measure, target, until)
            record.until = until
            return
        if action.type == "suspend_agent":
            if self.registry is None:
                raise RuntimeError("no registry to suspend the agent in")
            agent = await self.registry.get(target)
            if agent is None or agent.state is not AgentState.ACTIVE:
                record.status = "skipped"
                record.reason = "agent is not active" if agent else "agent is not registered"
                return
            await self.registry.transition(
                target, AgentState.SUSPENDED, actor=f"playbook:{record.playbook}"
            )
            record.detail["previous_state"] = agent.state.value
            return
        assert isinstance(action, Webhook)
        if len(self._tasks) >= self.max_webhooks:
            record.status, record.reason = "refused", "too many webhook calls in flight"
            return
        body = {
            "type": "maestro.playbook.action",
            "action_id": record.id,
            "playbook": record.playbook,
            "at": record.at,
            "finding": finding.as_dict(),
        }
        task = asyncio.get_running_loop().create_task(self._post(record, action, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, record: ActionRecord, action: Webhook, body: dict[str, Any]) -> None:
        if self._session is None:
            await self.start()
        assert self._session is not None
        timeout = aiohttp.ClientTimeout(total=action.timeout_s)
        try:
            async with self._session.post(
                action.url, json=body, headers=action.headers, timeout=timeout
            ) as resp:
                record.detail["http_status"] = resp.status
                if resp.status >= 300:
                    record.status, record.reason = "failed", f"webhook answered {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            record.status, record.reason = "failed", f"webhook: {type(exc).__name__}"
            log.warning("webhook failed", extra={"action": record.id, "error": repr(exc)})

    async def revert(self, record: ActionRecord, actor: str) -> None:
        target = record.target or ""
        measure = MEASURE_OF.get(record.action)
        if measure is not None:
            self.state.clear(measure, target)
            return
        if record.action == "suspend_agent":
            if self.registry is None:
                raise RuntimeError("no registry to reactivate the agent in")
            await self.registry.transition(target, AgentState.ACTIVE, actor=actor)
