"""The enforcement state: what playbooks have decided, read on every request by ``enforce``.

In process, one per gateway process (several workers or replicas each hold their own until a
shared store lands — see docs/playbooks.md). Every entry has an expiry (or none: until
reverted); expired entries are dropped when looked at and by ``purge``. Lookups are O(1).

``requires_approval(principal)`` is the interface for the approval guard: a playbook can raise
an approval requirement for a principal, and the approval guard holds that principal's requests
for a human decision while it is set.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

__all__ = ["EnforcementState", "Measure"]

Measure = Literal["principal", "source", "token", "step_up", "approval"]
MEASURES: tuple[Measure, ...] = ("principal", "source", "token", "step_up", "approval")


class EnforcementState:
    """Blocked principals and sources, revoked token ids, step-up and approval requirements."""

    def __init__(self, clock: Callable[[], float] = time.time, max_entries: int = 100_000) -> None:
        self.clock = clock
        self.max_entries = max_entries
        self._maps: dict[Measure, dict[str, float | None]] = {m: {} for m in MEASURES}
        self._since: dict[tuple[Measure, str], float] = {}  # when each measure was set
        self.version = 0  # bumped on every change (cheap "anything set?" check on the hot path)

    def set(self, measure: Measure, key: str, until: float | None) -> None:
        """Apply a measure until ``until`` (epoch seconds; None = until reverted)."""
        entries = self._maps[measure]
        if key not in entries and len(entries) >= self.max_entries:
            self.purge()
            if len(entries) >= self.max_entries:
                raise OverflowError(f"enforcement state full ({measure})")
        entries[key] = until
        self._since[(measure, key)] = self.clock()
        self.version += 1

    def clear(self, measure: Measure, key: str) -> bool:
        """Lift a measure; True if it was in force."""
        active = self.until(measure, key) is not False
        self._maps[measure].pop(key, None)
        self._since.pop((measure, key), None)
        self.version += 1
        return active

    def until(self, measure: Measure, key: str) -> float | Literal[False] | None:
        """When the measure on ``key`` ends (None = never), or False if none is in force."""
        entries = self._maps[measure]
        if not entries or key not in entries:
            return False
        until = entries[key]
        if until is not None and until <= self.clock():
            del entries[key]
            self._since.pop((measure, key), None)
            return False
        return until

    def since(self, measure: Measure, key: str) -> float | None:
        """When the measure in force on ``key`` was set (None if none is)."""
        return self._since.get((measure, key)) if self.active(measure, key) else None

    def active(self, measure: Measure, key: str) -> bool:
        return self.until(measure, key) is not False

    def empty(self) -> bool:
        return not any(self._maps.values())

    # The names other components use.

    def blocked_principal(self, principal: str) -> bool:
        return self.active("principal", principal)

    def blocked_source(self, source: str) -> bool:
        return self.active("source", source)

    def token_revoked(self, token_id: str) -> bool:
        return self.active("token", token_id)

    def requires_step_up(self, principal: str) -> bool:
        return self.active("step_up", principal)

    def requires_approval(self, principal: str) -> bool:
        """True while a playbook requires human approval for this principal's requests."""
        return self.active("approval", principal)

    def purge(self) -> int:
        now, dropped = self.clock(), 0
        for entries in self._maps.values():
            for key in [k for k, u in entries.items() if u is not None and u <= now]:
                del entries[key]
                dropped += 1
        for measure, key in list(self._since):
            if key not in self._maps[measure]:
                del self._since[(measure, key)]
        return dropped

    def snapshot(self) -> dict[str, dict[str, float | None]]:
        self.purge()
        return {m: dict(entries) for m, entries in self._maps.items()}
