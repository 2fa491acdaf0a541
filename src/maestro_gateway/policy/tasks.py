"""Who created each task: the gateway records the principal that a task was created for, from
the agent's own answer, so later reads, cancels and subscriptions can be checked against it.

In process and bounded (least recently used entries go first); a task the gateway has no
owner for — created before a restart or evicted — is treated as not visible (fail closed).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["TaskOwner", "TaskOwners"]


@dataclass(frozen=True, slots=True)
class TaskOwner:
    owner: str
    tenant: str
    agent: str


class TaskOwners:
    def __init__(self, capacity: int = 100_000) -> None:
        self._owners: OrderedDict[tuple[str, str], TaskOwner] = OrderedDict()
        self._capacity = capacity

    def record(self, agent: str, task_id: str, owner: str, tenant: str) -> None:
        """Remember ``owner`` for the task unless it already has one (the first answer that
        named the task is the one that created it; a later caller cannot take it over)."""
        key = (agent, task_id)
        if key in self._owners:
            self._owners.move_to_end(key)
            return
        self._owners[key] = TaskOwner(owner, tenant, agent)
        if len(self._owners) > self._capacity:
            self._owners.popitem(last=False)

    def get(self, agent: str, task_id: str) -> TaskOwner | None:
        return self._owners.get((agent, task_id))

    def __len__(self) -> int:
        return len(self._owners)
