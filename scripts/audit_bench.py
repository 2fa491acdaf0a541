"""Benchmark of the audit log on SQLite: batched appends/s, critical appends, full verification.

    .venv/bin/python scripts/audit_bench.py [--events 200000] [--verify-entries 1000000]

1. appends ``--events`` gateway-decision-sized records (about 300 bytes of JSON) from one
   producer in a tight loop with the default batching (50 ms / 1000 entries), and reports
   events/s including the final flush;
2. appends 300 critical records one after the other (each synced to disk before returning);
3. fills a fresh log with ``--verify-entries`` records, reopens it (start-up check) and times
   :func:`maestro_gateway.audit.verify` over all of it.

Everything lives in a temporary directory removed afterwards (``--keep`` to keep it). The last
line printed is a JSON object with all the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from maestro_gateway.audit import AuditLog, load_or_create_signer, verify


def record(i: int) -> dict[str, Any]:
    return {
        "event": "a2a.request",
        "request_id": f"req-{i:012d}",
        "agent": "echo",
        "method": "SendMessage",
        "principal": "user:alice@example.com",
        "decision": "allow",
        "guards": [{"name": "validate", "verdict": "allow", "ms": 0.041}],
        "status": 200,
        "bytes_in": 1024,
        "bytes_out": 2048,
        "latency_ms": 3.2,
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    }


async def fill(log: AuditLog, count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        await log.append(record(i))
    await log.flush()
    return time.perf_counter() - start


async def main(args: argparse.Namespace) -> dict[str, Any]:
    base = Path(args.dir or tempfile.mkdtemp(prefix="audit-bench-"))
    signer = load_or_create_signer(base / "audit-key.pem", "bench.example/audit")
    out: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
    }
    try:
        async with AuditLog.open(f"sqlite:///{base}/append.db", signer) as log:
            seconds = await fill(log, args.events)
            out["batched_appends_per_s"] = round(args.events / seconds)
            latencies = []
            for i in range(300):
                started = time.perf_counter()
                await log.append(record(i), critical=True)
                latencies.append(time.perf_counter() - started)
            out["critical_append_ms_p50"] = round(statistics.median(latencies) * 1000, 3)
            out["critical_append_ms_p99"] = round(
                statistics.quantiles(latencies, n=100)[98] * 1000, 3
            )
        p50, p99 = out["critical_append_ms_p50"], out["critical_append_ms_p99"]
        rate = out["batched_appends_per_s"]
        print(f"batched appends: {rate:,}/s; critical append p50 {p50} ms, p99 {p99} ms")

        url = f"sqlite:///{base}/verify.db"
        async with AuditLog.open(url, signer) as log:
            seconds = await fill(log, args.verify_entries)
        out["fill_entries"] = args.verify_entries
        out["fill_appends_per_s"] = round(args.verify_entries / seconds)
        out["db_bytes"] = (base / "verify.db").stat().st_size
        started = time.perf_counter()
        log = AuditLog.open(url, signer)
        await log.init()
        out["reopen_s"] = round(time.perf_counter() - started, 4)
        try:
            started = time.perf_counter()
            report = await verify(log)
            out["verify_s"] = round(time.perf_counter() - started, 2)
        finally:
            await log.close()
        out["verify_ok"] = report.ok
        out["verify_checkpoints"] = report.checkpoints
        print(
            f"verify {report.entries:,} entries, {report.checkpoints:,} checkpoints: "
            f"{out['verify_s']} s, ok={report.ok}; reopen {out['reopen_s']} s"
        )
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--verify-entries", type=int, default=1_000_000)
    parser.add_argument("--dir", help="work directory (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
