"""Figures for docs/grants.md: ``python -m maestro_gateway.grants.bench [postgresql://…]``.

Measures the grants guard on a JIT-only call: allowed (one compare-and-set use of a live
grant) and denied (no grant), and a non-JIT call (no store access), on SQLite in a temporary
directory, and on PostgreSQL when a URL is given. Prints p50/p99 in microseconds.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from maestro_gateway.context import RequestContext
from maestro_gateway.grants.config import GrantsConfig
from maestro_gateway.grants.service import GrantService
from maestro_gateway.guards.grants import GrantsGuard, GrantsGuardConfig

N = 2000


def _ctx(principal: str, skill: str) -> RequestContext:
    message = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "hi"}]}
    ctx = RequestContext("r", "bank", "SendMessage", {"message": message}, skill_id=skill)
    ctx.extra["principal"] = principal
    return ctx


async def _time(op: Callable[[], Awaitable[object]], n: int = N) -> str:
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        await op()
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    p50, p99 = statistics.median(samples), samples[int(len(samples) * 0.99) - 1]
    return f"p50 {p50:8.1f} µs   p99 {p99:8.1f} µs"


async def _bench(url: str, label: str) -> None:
    svc = GrantService(GrantsConfig(url=url, max_uses=10 * N))
    await svc.start()
    try:
        guard = GrantsGuard(GrantsGuardConfig(jit_only={"bank": ["pay"]}), svc)
        await svc.issue(principal="alice", agent_id="bank", skill_id="pay", uses=2 * N,
                        actor="bench", source="approver")  # fmt: skip
        await svc.issue(principal="carol", agent_id="bank", skill_id="pay", actor="bench",
                        source="approver")  # fmt: skip
        allowed, denied, plain = _ctx("alice", "pay"), _ctx("bob", "pay"), _ctx("bob", "quote")
        timed = _ctx("carol", "pay")
        print(f"{label}: JIT call, counted grant {await _time(lambda: guard.on_request(allowed))}")
        print(f"{label}: JIT call, timed grant   {await _time(lambda: guard.on_request(timed))}")
        print(f"{label}: JIT call, no grant      {await _time(lambda: guard.on_request(denied))}")
        print(f"{label}: non-JIT skill           {await _time(lambda: guard.on_request(plain))}")
    finally:
        await svc.close()


async def main(pg_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        await _bench(f"sqlite:///{Path(tmp) / 'grants.db'}", "sqlite  ")
    if pg_url:
        schema = f"bench_grants_{uuid.uuid4().hex[:8]}"
        try:
            await _bench(f"{pg_url}?schema={schema}", "postgres")
        finally:
            conn = await asyncpg.connect(pg_url)
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            await conn.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
