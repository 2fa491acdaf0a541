"""Where rate-limit state lives: process memory here, Redis in ``_ratelimit_redis.py`` (one
Lua script per decision); ``RateLimiter`` chooses between them.

Both backends decide all the limits of one request at once: every GCRA limit and every
concurrency limit is checked first, and state changes only when all of them pass, so a request
refused by one limit consumes nothing from the others.

GCRA (generic cell rate algorithm, ITU-T I.371) keeps one number per key, the theoretical arrival
time ``tat``. With emission interval ``T = period / requests`` and tolerance ``tau = burst * T``,
a request of cost ``c`` passes at time ``now`` iff ``max(tat, now) + c*T - tau <= now``; it then
stores ``max(tat, now) + c*T``. When refused, it may retry after exactly the excess. A key whose
``tat`` lies in the past is the same as no key, so state can always be dropped once it expires.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from maestro_gateway.guards._ratelimit_redis import RedisBackend

log = logging.getLogger("maestro_gateway.guards.ratelimit")

EPSILON = 1e-9  # seconds: float noise below this never refuses a request


class GcraLimit:
    """One configured rate limit, compiled: ``interval`` and ``tolerance`` in seconds."""

    __slots__ = ("interval", "name", "tolerance")

    def __init__(self, name: str, interval: float, tolerance: float) -> None:
        self.name, self.interval, self.tolerance = name, interval, tolerance


class ConcurrencyLimit:
    """One configured concurrency limit, compiled."""

    __slots__ = ("max_in_flight", "name")

    def __init__(self, name: str, max_in_flight: int) -> None:
        self.name, self.max_in_flight = name, max_in_flight


Key = tuple[str, ...]
RateItem = tuple[GcraLimit, Key, float]  # limit, key values, increment (cost * interval, s)
ConcItem = tuple[ConcurrencyLimit, Key]


@dataclass(slots=True)
class Decision:
    """The outcome of one request against all its limits.

    When allowed, ``tats`` holds each rate item's new theoretical arrival time and ``counts``
    each concurrency item's in-flight count including this request. When refused, ``index``
    names the refusing item (rate items first, then concurrency items) and ``wait`` how long
    until that rate limit would pass (0 for concurrency). Times are the backend's, in seconds.
    """

    allowed: bool
    now: float
    tats: list[float]
    counts: list[int]
    index: int = -1
    wait: float = 0.0
    backend: str = "memory"
    token: str = ""


class BackendUnavailable(Exception):
    """The shared backend could not decide (connection refused, timeout, script error)."""


class MemoryBackend:
    """GCRA and in-flight counts in this process; decisions are synchronous and atomic.

    Memory is bounded: each limit keeps its keys in least-recently-updated order; a new key
    first drops up to two expired keys from the old end, and past ``max_keys`` keys per limit
    the least recently updated one is evicted (counted in ``evicted``) even if not expired.
    """

    kind = "memory"

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000):
        self._clock = clock
        self._max = max_keys
        self._tables: dict[str, OrderedDict[Key, float]] = {}
        self._in_flight: dict[tuple[str, Key], int] = {}
        self.evicted = 0

    def decide(self, rates: Sequence[RateItem], concs: Sequence[ConcItem]) -> Decision:
        now = self._clock()
        tables = self._tables
        worst, worst_wait = -1, EPSILON
        tats: list[float] = []
        found: list[OrderedDict[Key, float]] = []
        for limit, key, increment in rates:  # check every limit first: GCRA, inlined
            table = tables.get(limit.name)
            if table is None:
                table = tables[limit.name] = OrderedDict()
            tat = table.get(key, now)
            if tat < now:
                tat = now
            tat += increment
            if tat - limit.tolerance - now > worst_wait:
                worst, worst_wait = len(tats), tat - limit.tolerance - now
            tats.append(tat)
            found.append(table)
        if worst >= 0:
            return Decision(False, now, [], [], worst, worst_wait)
        counts: list[int] = []
        if concs:
            in_flight = self._in_flight
            for climit, ckey in concs:
                n = in_flight.get((climit.name, ckey), 0)
                if n >= climit.max_in_flight:
                    return Decision(False, now, [], [], len(tats) + len(counts))
                counts.append(n + 1)
            for climit, ckey in concs:
                in_flight[climit.name, ckey] = in_flight.get((climit.name, ckey), 0) + 1
        for table, (_, key, _), tat in zip(found, rates, tats):  # noqa: B905 (same lengths)
            if table.pop(key, None) is None:
                self._make_room(table, now)
            table[key] = tat
        return Decision(True, now, tats, counts)

    def _make_room(self, table: OrderedDict[Key, float], now: float) -> None:
        """Before adding a key: drop up to two expired keys (the oldest-updated expire first),
        and the least recently updated key when the table is full."""
        for _ in range(2):
            oldest = next(iter(table), None)
            if oldest is None or table[oldest] > now:
                break
            del table[oldest]
        if len(table) >= self._max:
            table.popitem(last=False)
            self.evicted += 1

    def release(self, concs: Sequence[ConcItem]) -> None:
        in_flight = self._in_flight
        for climit, ckey in concs:
            slot = (climit.name, ckey)
            n = in_flight.get(slot, 0) - 1
            if n > 0:
                in_flight[slot] = n
            else:
                in_flight.pop(slot, None)

    def debit(self, items: Sequence[RateItem]) -> None:
        """Add costs to GCRA keys unconditionally (charged after the response): later requests
        on those keys wait until the debt is paid."""
        now = self._clock()
        for limit, key, increment in items:
            table = self._tables.get(limit.name)
            if table is None:
                table = self._tables[limit.name] = OrderedDict()
            tat = table.pop(key, None)
            if tat is None:
                self._make_room(table, now)
                tat = now
            table[key] = max(tat, now) + increment

    def size(self) -> int:
        """Keys held: rate keys plus in-flight concurrency keys."""
        return sum(len(t) for t in self._tables.values()) + len(self._in_flight)


# All times in the scripts are microseconds of the Redis server's clock (TIME), as doubles:
# exact integers up to 2^53, and written back with %.17g so nothing is rounded.
def retry_after_s(wait: float) -> float:
    """Seconds to report as ``retry_after``: rounded up to the millisecond, float noise aside."""
    return math.ceil(wait * 1000 - 1e-6) / 1000


class ManualClock:
    """A clock for tests: time moves only when ``advance`` is called."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RateLimiter:
    """Limit state shared by all rate-limit guards of a process: build one, pass it to each.

    With ``redis``, decisions go there; after a Redis failure, Redis is skipped for
    ``retry_interval_s`` and requests are refused (``deny``) or decided by ``local``.
    """

    def __init__(
        self,
        local: MemoryBackend,
        redis: RedisBackend | None = None,
        *,
        on_failure: str = "deny",
        retry_interval_s: float = 1.0,
        lease_s: float = 900.0,
    ) -> None:
        self.local, self.redis = local, redis
        self.on_failure, self.retry_interval_s, self.lease_s = on_failure, retry_interval_s, lease_s
        self._down_until = 0.0
        self._counts: dict[tuple[str, str, str], int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _counted(self, rates: list[RateItem], concs: list[ConcItem], d: Decision) -> Decision:
        counts, backend = self._counts, d.backend
        if d.allowed:
            for limit, _, _ in rates:
                k = (limit.name, "allowed", backend)
                counts[k] = counts.get(k, 0) + 1
            for climit, _ in concs:
                k = (climit.name, "allowed", backend)
                counts[k] = counts.get(k, 0) + 1
        else:
            i = d.index
            name = rates[i][0].name if i < len(rates) else concs[i - len(rates)][0].name
            k = (name, "denied", backend)
            counts[k] = counts.get(k, 0) + 1
        return d

    def decide_local(self, rates: list[RateItem], concs: list[ConcItem]) -> Decision:
        """The decision when there is no shared backend (synchronous: no await on the path)."""
        return self._counted(rates, concs, self.local.decide(rates, concs))

    async def acquire(self, rates: list[RateItem], concs: list[ConcItem]) -> Decision | None:
        """Decide a request against all its limits; None when the shared backend failed."""
        if self.redis is None:
            return self.decide_local(rates, concs)
        d = await self._remote(rates, concs)
        return None if d is None else self._counted(rates, concs, d)

    async def _remote(self, rates: list[RateItem], concs: list[ConcItem]) -> Decision | None:
        assert self.redis is not None
        if time.monotonic() >= self._down_until:
            try:
                return await self.redis.decide(
                    rates, concs, self.redis.new_token() if concs else ""
                )
            except BackendUnavailable as exc:
                self._down_until = time.monotonic() + self.retry_interval_s
                log.error("rate-limit backend unavailable", extra={"error": str(exc)})
        for name in [limit.name for limit, _, _ in rates] + [c.name for c, _ in concs]:
            k = (name, "unavailable", "redis")
            self._counts[k] = self._counts.get(k, 0) + 1
        if self.on_failure != "local":
            return None
        d = self.local.decide(rates, concs)
        d.backend = "local-fallback"
        return d

    def release_soon(self, d: Decision, concs: list[ConcItem]) -> asyncio.Task[None] | None:
        """Give back the slots of ``d``: in-process at once, Redis in a task (returned)."""
        if d.backend != "redis":
            self.local.release(concs)
        elif self.redis is not None:
            return self._background(self.redis.release(concs, d.token))
        return None

    async def release(self, d: Decision, concs: list[ConcItem]) -> None:
        """Give back the slots of ``d``. A Redis release runs to completion even if the caller
        is cancelled meanwhile; when it fails, the lease is the backstop."""
        task = self.release_soon(d, concs)
        if task is not None:
            await asyncio.shield(task)

    async def debit(self, d: Decision, items: list[RateItem]) -> None:
        """Charge costs known only after the response to the keys ``d`` decided. A Redis
        failure is logged: the request has already been answered, so there is nothing to deny."""
        if d.backend == "redis" and self.redis is not None:
            try:
                await self.redis.debit(items)
            except BackendUnavailable as exc:
                log.warning("rate-limit cost not charged", extra={"error": str(exc)})
        else:
            self.local.debit(items)

    def refresh(self, d: Decision, concs: list[ConcItem]) -> None:
        """Extend a long stream's Redis leases (no-op for in-process slots)."""
        if self.redis is not None and d.backend == "redis":
            self._background(self.redis.refresh(concs, d.token))

    def _background(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
        try:
            task = asyncio.get_running_loop().create_task(self._quiet(work))
        except RuntimeError:  # no running loop (shutdown): the lease expires on its own
            work.close()
            return None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    async def _quiet(work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except BackendUnavailable as exc:
            log.warning(
                "rate-limit slot not released; its lease expires", extra={"error": str(exc)}
            )

    def decisions(self) -> dict[tuple[str, str, str], int]:
        """Decision counts by (limit name, outcome, backend), for the metrics collector.

        outcome: allowed | denied | unavailable; backend: memory | redis | local-fallback.
        A refused request counts once, against the limit that refused it.
        """
        return dict(self._counts)

    async def drain(self) -> None:
        """Wait until pending Redis releases and lease refreshes are done."""
        while self._tasks:
            await asyncio.gather(*self._tasks)

    async def aclose(self) -> None:
        await self.drain()
        if self.redis is not None:
            await self.redis.aclose()
