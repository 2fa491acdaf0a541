"""The detection engine: a bounded queue of observations drained by a background task.

The data plane's only cost is ``observe()`` (one deque append). The background task runs the
detectors, applies a per-subject cooldown, keeps the recent findings, and hands each finding to
the ``on_finding`` sinks in order (the audit log, the playbook engine, later the SIEM).
A failing sink is logged and the next one still runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from maestro_gateway.detect._detectors import (
    DenialBurstDetector,
    DistinctAgentsDetector,
    Emitted,
    FirstAccessDetector,
    OffHoursDetector,
    RateDetector,
    TokenReuseDetector,
)
from maestro_gateway.detect._state import BoundedMap
from maestro_gateway.detect.config import DetectConfig
from maestro_gateway.detect.model import Finding, Observation

__all__ = ["DetectionEngine", "FindingSink"]

log = logging.getLogger("maestro_gateway.detect")

FindingSink = Callable[[Finding], Awaitable[None]]
_ESCALATION = 0.1  # a repeat within the cooldown is reported when this much more confident


class _Detector(Protocol):
    def observe(self, obs: Observation) -> Emitted: ...


class DetectionEngine:
    """Runs the enabled detectors over observations; delivers findings to ``on_finding``."""

    def __init__(self, cfg: DetectConfig, clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.clock = clock
        self.detectors: list[_Detector] = []
        parts: list[tuple[bool, Callable[[DetectConfig], _Detector]]] = [
            (cfg.rate.enabled, RateDetector),
            (cfg.denials.enabled, DenialBurstDetector),
            (cfg.first_access.enabled, FirstAccessDetector),
            (cfg.off_hours.enabled, OffHoursDetector),
            (cfg.distinct_agents.enabled, DistinctAgentsDetector),
            (cfg.token_reuse.enabled, TokenReuseDetector),
        ]
        self.detectors = [make(cfg) for enabled, make in parts if enabled]
        self.on_finding: list[FindingSink] = []
        self.recent: deque[Finding] = deque(maxlen=cfg.recent_findings)
        self.queue: deque[Observation] = deque()
        self.dropped = 0
        self.observed = 0
        self.findings = 0
        self._last: BoundedMap[tuple[float, float]] = BoundedMap(
            cfg.max_principals * 4, cfg.cooldown_s + 1
        )
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._busy = 0
        self._done = asyncio.Event()

    # --- the request path: O(1) ------------------------------------------------------------

    def observe(self, obs: Observation) -> None:
        """Queue an observation (never blocks; counted and dropped when the queue is full)."""
        if len(self.queue) >= self.cfg.queue_size:
            self.dropped += 1
            return
        self.queue.append(obs)
        self._wake.set()

    # --- the background task ---------------------------------------------------------------

    def process(self, obs: Observation) -> list[Finding]:
        """Run the detectors over one observation; findings past their cooldown."""
        self.observed += 1
        out: list[Finding] = []
        for detector in self.detectors:
            try:
                emitted = detector.observe(obs)
            except Exception:  # one broken detector must not blind the others
                log.exception("detector failed", extra={"detector": type(detector).__name__})
                continue
            for key, finding in emitted:
                # One finding per subject per cooldown, unless the evidence got clearly
                # stronger (a growing burst must still reach a playbook's min_confidence).
                ck = f"{finding.type}|{key}"
                last = self._last.peek(ck)
                if (
                    last is not None
                    and obs.at - last[0] < self.cfg.cooldown_s
                    and finding.confidence < last[1] + _ESCALATION
                ):
                    continue
                self._last.put(ck, obs.at, (obs.at, finding.confidence))
                out.append(finding)
        return out

    async def drain(self) -> list[Finding]:
        """Process every queued observation and deliver its findings; returns them."""
        delivered: list[Finding] = []
        self._busy += 1
        try:
            while self.queue:
                obs = self.queue.popleft()
                for finding in self.process(obs):
                    await self.deliver(finding)
                    delivered.append(finding)
        finally:
            self._busy -= 1
            if not self.queue and not self._busy:
                self._done.set()
        return delivered

    async def deliver(self, finding: Finding) -> None:
        self.findings += 1
        self.recent.append(finding)
        log.warning(
            "behavioural finding",
            extra={
                "finding": finding.type,
                "principal": finding.principal,
                "confidence": round(finding.confidence, 3),
            },
        )
        for sink in self.on_finding:
            try:
                await sink(finding)
            except Exception:
                log.exception("finding sink failed", extra={"finding": finding.id})

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.drain()
            await asyncio.sleep(0)  # let request handling in between large batches

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="detect")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.drain()

    async def idle(self) -> None:
        """Wait until every queued observation is processed and delivered (use a timeout)."""
        while self.queue or self._busy:
            self._done.clear()
            await self._done.wait()

    def stats(self) -> dict[str, Any]:
        return {
            "observed": self.observed,
            "queued": len(self.queue),
            "dropped": self.dropped,
            "findings": self.findings,
            "detectors": [type(d).__name__ for d in self.detectors],
        }
