"""The Redis rate-limit backend: all of a request's limits decided by one atomic Lua script,
using the Redis server's clock, in one round trip (see ``_ratelimit_backends`` for GCRA)."""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from maestro_gateway.guards._ratelimit_backends import (
    BackendUnavailable,
    ConcItem,
    Decision,
    Key,
    RateItem,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("maestro_gateway.guards.ratelimit")

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

# KEYS: GCRA keys; ARGV[i]: the cost to add to KEYS[i] (µs), unconditionally (a debit).
_DEBIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i]) or 0)
  if tat < now then tat = now end
  tat = tat + tonumber(ARGV[i])
  local ttl = math.ceil((tat - now) / 1000) + 1
  redis.call('SET', KEYS[i], string.format('%.17g', tat), 'PX', string.format('%d', ttl))
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
        self._shas = {s: hashlib.sha1(s.encode()).hexdigest() for s in (_DECIDE, _LEASE, _DEBIT)}
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

    async def debit(self, items: Sequence[RateItem]) -> None:
        """Add costs to GCRA keys after the fact (e.g. units an agent reported)."""
        keys = [self.key("r", limit.name, key) for limit, key, _ in items]
        await self._run(_DEBIT, keys, [repr(increment * 1e6) for _, _, increment in items])

    async def aclose(self) -> None:
        await self._client.aclose()
