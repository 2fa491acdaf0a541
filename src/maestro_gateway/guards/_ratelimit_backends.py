"""Where rate-limit state lives: process memory, or Redis (one Lua script per decision).

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
import hashlib
import itertools
import logging
import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis

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

    def size(self) -> int:
        """Keys held: rate keys plus in-flight concurrency keys."""
        return sum(len(t) for t in self._tables.values()) + len(self._in_flight)


# All times in the scripts are microseconds of the Redis server's clock (TIME), as doubles:
# exact integers up to 2^53, and written back with %.17g so nothing is rounded.
_DECIDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local fmt = '%.17g'
local n = tonumber(ARGV[1])
local worst, worst_wait = 0, 0.001
local tats = {}
for i = 1, n do
  local increment = tonumber(ARGV[2 + 2 * i])
  local tolerance = tonumber(ARGV[3 + 2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or 0)
  if tat < now then tat = now end
  local new = tat + increment
  local wait = new - tolerance - now
  if wait > worst_wait then worst, worst_wait = i, wait end
  tats[i] = new
end
if worst > 0 then return {0, string.format(fmt, now), worst, string.format(fmt, worst_wait)} end
local lease = tonumber(ARGV[3])
local counts = {}
for j = n + 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[j], '-inf', string.format(fmt, now))
  local count = redis.call('ZCARD', KEYS[j])
  if count >= tonumber(ARGV[3 + 2 * n + j - n]) then
    return {0, string.format(fmt, now), j, '0'}
  end
  counts[j - n] = count + 1
end
local out = {1, string.format(fmt, now)}
for i = 1, n do
  local ttl = math.ceil((tats[i] - now) / 1000) + 1
  redis.call('SET', KEYS[i], string.format(fmt, tats[i]), 'PX', string.format('%d', ttl))
  out[#out + 1] = string.format(fmt, tats[i])
end
for j = n + 1, #KEYS do
  redis.call('ZADD', KEYS[j], string.format(fmt, now + lease), ARGV[2])
  redis.call('PEXPIRE', KEYS[j], string.format('%d', math.ceil(lease / 1000) + 1))
  out[#out + 1] = counts[j - n]
end
return out
"""

# KEYS: concurrency keys; ARGV[1] slot token; ARGV[2] lease (µs), or 0 to release the slot.
_LEASE = """
local lease = tonumber(ARGV[2])
if lease == 0 then
  for i = 1, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
  return 0
end
local t = redis.call('TIME')
local until_ = tonumber(t[1]) * 1000000 + tonumber(t[2]) + lease
for i = 1, #KEYS do
  if redis.call('ZADD', KEYS[i], 'XX', 'CH', string.format('%.17g', until_), ARGV[1]) == 1 then
    redis.call('PEXPIRE', KEYS[i], string.format('%d', math.ceil(lease / 1000) + 1))
  end
end
return 1
"""


def _part(value: str) -> str:
    return value.replace("%", "%25").replace(":", "%3A")


class RedisBackend:
    """GCRA and in-flight leases in Redis, shared by every gateway process that uses it.

    One EVALSHA per decision (the script is loaded on first use and again after a Redis
    restart); times come from the server's clock, so gateways need no clock agreement.
    Concurrency slots are sorted-set members whose score is the end of a lease: a gateway that
    dies without releasing loses its slots after ``lease_s``. Any Redis or socket error raises
    BackendUnavailable; the client does not retry (the caller decides what a failure means).
    """

    kind = "redis"

    def __init__(
        self, url: str, key_prefix: str, timeout_s: float, pool_size: int, lease_s: float
    ) -> None:
        from redis.asyncio import BlockingConnectionPool, Redis

        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=pool_size,
            timeout=max(1.0, timeout_s),  # waiting for a free connection is not Redis failing
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
        self._client: Redis = Redis.from_pool(pool)
        self._prefix = key_prefix
        self._lease_us = str(round(lease_s * 1_000_000))
        self._shas = {s: hashlib.sha1(s.encode()).hexdigest() for s in (_DECIDE, _LEASE)}
        self._tokens = itertools.count()
        self._instance = os.urandom(6).hex()

    def key(self, kind: str, name: str, key: Key) -> str:
        return f"{self._prefix}{kind}:{name}:" + ":".join(_part(v) for v in key)

    def new_token(self) -> str:
        """A slot id unique across gateways (never the caller's request id, which it chooses)."""
        return f"{self._instance}.{next(self._tokens)}"

    async def _run(self, script: str, keys: list[str], args: list[str]) -> Any:
        from redis.exceptions import NoScriptError, RedisError

        sha, client = self._shas[script], self._client
        try:
            try:
                return await client.evalsha(sha, len(keys), *keys, *args)
            except NoScriptError:
                await client.script_load(script)
                return await client.evalsha(sha, len(keys), *keys, *args)
        except (RedisError, OSError, TimeoutError) as exc:
            raise BackendUnavailable(f"redis: {exc}") from exc

    async def decide(
        self, rates: Sequence[RateItem], concs: Sequence[ConcItem], token: str
    ) -> Decision:
        keys = [self.key("r", limit.name, key) for limit, key, _ in rates]
        keys += [self.key("c", climit.name, ckey) for climit, ckey in concs]
        args = [str(len(rates)), token, self._lease_us]
        for limit, _, increment in rates:
            args += [repr(increment * 1e6), repr(limit.tolerance * 1e6)]
        args += [str(climit.max_in_flight) for climit, _ in concs]
        reply = await self._run(_DECIDE, keys, args)
        now = float(reply[1]) / 1e6
        if not int(reply[0]):
            return Decision(False, now, [], [], int(reply[2]) - 1, float(reply[3]) / 1e6, "redis")
        values = reply[2:]
        tats = [float(v) / 1e6 for v in values[: len(rates)]]
        counts = [int(v) for v in values[len(rates) :]]
        return Decision(True, now, tats, counts, backend="redis", token=token)

    async def release(self, concs: Sequence[ConcItem], token: str) -> None:
        keys = [self.key("c", climit.name, ckey) for climit, ckey in concs]
        await self._run(_LEASE, keys, [token, "0"])

    async def refresh(self, concs: Sequence[ConcItem], token: str) -> None:
        """Extend the leases of held slots (long streams); a slot already lost stays lost."""
        keys = [self.key("c", climit.name, ckey) for climit, ckey in concs]
        await self._run(_LEASE, keys, [token, self._lease_us])

    async def aclose(self) -> None:
        await self._client.aclose()


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
