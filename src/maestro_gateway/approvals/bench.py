"""Figures for docs/approvals.md: ``python -m maestro_gateway.approvals.bench [postgresql://…]``.

Measures the approval guard's decision (flagged and not) and the held-request lifecycle
(hold, approve, release — each with its critical audit record) on SQLite in a temporary
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

from maestro_gateway.approvals.service import ApprovalService
from maestro_gateway.audit.recorder import AuditRecorder
from maestro_gateway.config import ApprovalsConfig, AuditConfig
from maestro_gateway.context import RequestContext
from maestro_gateway.guards.approval import ApprovalGuard, ApprovalGuardConfig

POLICY = {
    "skills": {"wire-transfer": "critical"},
    "conditions": [
        {"path": "amount", "op": "gt", "value": 1000},
        {"path": "destination", "op": "not_in", "value": ["ACME-01", "ACME-02"]},
    ],
}


def _ctx(amount: int) -> RequestContext:
    parts = [{"text": "pay the invoice"}, {"data": {"amount": amount, "destination": "ACME-01"}}]
    message = {"messageId": "m1", "role": "ROLE_USER", "parts": parts}
    return RequestContext("r", "bank", "SendMessage", {"message": message}, client_addr="::1")


def _row(name: str, samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100)
    return f"| {name} | {len(samples)} | {q[49] * 1e6:.0f} | {q[98] * 1e6:.0f} |"


async def _timed(n: int, op: Callable[[int], Awaitable[object]]) -> list[float]:
    out = []
    for i in range(n):
        start = time.perf_counter()
        await op(i)
        out.append(time.perf_counter() - start)
    return out


async def _lifecycle(url: str, state: Path, n: int) -> list[str]:
    audit = AuditRecorder(
        AuditConfig(
            url=f"sqlite:///{state / 'audit.db'}",
            key_path=str(state / "audit-key.pem"),
            state_file=str(state / "audit.checkpoint"),
        )
    )
    await audit.start()
    service = ApprovalService(ApprovalsConfig(url=url), audit)
    await service.start(sweep=False)
    try:
        ids: list[str] = []

        async def hold(i: int) -> None:
            ids.append((await service.hold(_ctx(5000 + i), "addr:::1", "bench", [])).id)

        holds = await _timed(n, hold)
        approves = await _timed(n, lambda i: service.approve(ids[i], "approver"))
        releases = await _timed(n, lambda i: service.release_id(ids[i], "bench"))
    finally:
        await service.close()
        await audit.close()
    kind = url.partition(":")[0]
    return [
        _row(f"hold ({kind}, + audit)", holds),
        _row(f"approve ({kind}, + audit)", approves),
        _row(f"release ({kind}, + audit)", releases),
    ]


async def main(pg_url: str | None) -> None:
    guard = ApprovalGuard(ApprovalGuardConfig.model_validate(POLICY))
    passing, flagged = _ctx(10), _ctx(50_000)
    rows = [
        _row("guard, not flagged", await _timed(20_000, lambda _: guard.on_request(passing))),
        _row("guard, flagged", await _timed(20_000, lambda _: guard.on_request(flagged))),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        rows += await _lifecycle(f"sqlite:///{tmp}/approvals.db", Path(tmp), 300)
        if pg_url:
            sep = "&" if "?" in pg_url else "?"
            schema = f"bench_approvals_{uuid.uuid4().hex[:8]}"
            try:
                rows += await _lifecycle(f"{pg_url}{sep}schema={schema}", Path(tmp), 300)
            finally:
                conn = await asyncpg.connect(pg_url)
                await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
                await conn.close()
    print("| operation | n | p50 µs | p99 µs |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
