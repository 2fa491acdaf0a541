"""A circuit breaker per agent (threat T3: one slow or dead agent must not starve the others).

States, as in the classic pattern:

- **closed** — calls go through; outcomes are counted. It opens after ``consecutive_failures``
  failures in a row, or when at least ``min_calls`` calls ended in the last ``window_s``
  seconds and the share that failed reached ``failure_ratio``.
- **open** — calls fail at once (the data plane answers 503, reason ``UPSTREAM_CIRCUIT_OPEN``)
  for ``cooldown_s`` seconds. No connection, no pool slot, no waiting on the dead agent.
- **half-open** — after the cool-down up to ``half_open_probes`` calls go through as probes;
  the others still fail fast. A probe that succeeds closes the breaker; one that fails opens it
  for another cool-down.

A failure is an agent that could not be reached, timed out, closed the connection or spoke
invalid HTTP. A JSON-RPC error from the agent is an answer, not a failure. The clock is
injectable so tests need not wait.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BreakerConfig", "BreakerOpen", "CircuitBreaker", "Permit"]

State = Literal["closed", "open", "half_open"]


class BreakerConfig(BaseModel):
    """When an agent's circuit opens and for how long."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    consecutive_failures: int = Field(5, gt=0, description="Open after this many in a row.")
    failure_ratio: float = Field(
        0.5, gt=0, le=1, description="Open when this share of recent calls failed…"
    )
    min_calls: int = Field(20, gt=0, description="…and at least this many ended in the window.")
    window_s: float = Field(30.0, gt=0, description="The window of recent calls, seconds.")
    cooldown_s: float = Field(15.0, gt=0, description="How long an open circuit stays open.")
    half_open_probes: int = Field(1, gt=0, description="Calls let through after the cool-down.")


class BreakerOpen(Exception):
    """The agent's circuit is open; ``retry_after`` is the rest of the cool-down (seconds)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"circuit open, retry after {retry_after:.1f} s")
        self.retry_after = retry_after


class Permit:
    """One call let through; report its outcome exactly once with ``success``/``failure``."""

    __slots__ = ("_breaker", "_done", "probe")

    def __init__(self, breaker: CircuitBreaker, probe: bool) -> None:
        self._breaker, self.probe, self._done = breaker, probe, False

    def success(self) -> None:
        if not self._done:
            self._done = True
            self._breaker._record(self.probe, ok=True)

    def failure(self) -> None:
        if not self._done:
            self._done = True
            self._breaker._record(self.probe, ok=False)

    def abandon(self) -> None:
        """The call ended without telling anything about the agent (e.g. client went away)."""
        if not self._done:
            self._done = True
            if self.probe:
                self._breaker._probes -= 1


class CircuitBreaker:
    """The breaker of one agent (in-process: each gateway process decides on its own)."""

    def __init__(self, cfg: BreakerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg, self._clock = cfg, clock
        self.state: State = "closed"
        self.opened = 0  # how many times it opened (metrics, tests)
        self._streak = 0
        self._recent: deque[tuple[float, bool]] = deque()
        self._failed = 0
        self._open_until = 0.0
        self._probes = 0

    def permit(self) -> Permit:
        """Let one call through, or raise BreakerOpen."""
        if self.state == "open":
            now = self._clock()
            if now < self._open_until:
                raise BreakerOpen(self._open_until - now)
            self.state, self._probes = "half_open", 0
        if self.state == "half_open":
            if self._probes >= self.cfg.half_open_probes:
                raise BreakerOpen(min(1.0, self.cfg.cooldown_s))
            self._probes += 1
            return Permit(self, probe=True)
        return Permit(self, probe=False)

    def _record(self, probe: bool, ok: bool) -> None:
        now = self._clock()
        if probe or self.state == "half_open":
            if probe:
                self._probes -= 1
            if ok:
                self._close()
            else:
                self._open(now)
            return
        if self.state != "closed":
            return  # a call that started before the circuit opened
        recent = self._recent
        recent.append((now, ok))
        self._failed += not ok
        horizon = now - self.cfg.window_s
        while recent and recent[0][0] < horizon:
            self._failed -= not recent.popleft()[1]
        self._streak = 0 if ok else self._streak + 1
        if self._streak >= self.cfg.consecutive_failures or (
            len(recent) >= self.cfg.min_calls
            and self._failed >= self.cfg.failure_ratio * len(recent)
        ):
            self._open(now)

    def _open(self, now: float) -> None:
        self.state, self._open_until = "open", now + self.cfg.cooldown_s
        self.opened += 1
        self._streak, self._failed, self._probes = 0, 0, 0
        self._recent.clear()

    def _close(self) -> None:
        self.state, self._streak, self._failed = "closed", 0, 0
        self._recent.clear()
