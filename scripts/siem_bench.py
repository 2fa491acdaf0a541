"""SIEM export throughput: events/s through the spool to the JSON-lines exporter, and the cost
of one ``emit`` on the request path.

    .venv/bin/python scripts/siem_bench.py [--events 200000] [--fsync batch|never]

Emits API Activity events in bursts of ``--burst`` (yielding to the loop between bursts, as a
busy gateway would), then waits until the exporter acknowledged the last one. Reports the
end-to-end rate, the emit cost (p50/p99 over 1,000-call samples) and any drops.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time

import uvloop

from maestro_gateway.siem import SiemConfig, SiemService
from maestro_gateway.siem.ocsf import api_activity


def event(i: int) -> dict[str, object]:
    return api_activity(
        request_id=f"{i:024x}", agent="echo", method="SendMessage", verdict="allow",
        status_code=200, duration_ms=1.234, src_ip="127.0.0.1",
    )  # fmt: skip


async def run(events: int, fsync: str, burst: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SiemConfig.model_validate(
            {
                "enabled": True,
                "spool_dir": f"{tmp}/spool",
                "fsync": fsync,
                "max_queue": 50_000,
                "max_batch": 2000,
                "exporters": [
                    {"type": "jsonl", "path": f"{tmp}/out.jsonl", "fsync": fsync == "batch"}
                ],
            }
        )
        svc = SiemService(cfg)
        await svc.start()
        build_us: list[float] = []
        emit_us: list[float] = []
        start = time.perf_counter()
        emitted = 0
        while emitted < events:
            n = min(burst, events - emitted)
            t0 = time.perf_counter()
            built = [event(emitted + i) for i in range(n)]
            t1 = time.perf_counter()
            for e in built:
                svc.emit(e)
            t2 = time.perf_counter()
            build_us.append((t1 - t0) / n * 1e6)
            emit_us.append((t2 - t1) / n * 1e6)
            emitted += n
            await asyncio.sleep(0)
        settled = 0
        while settled < events:
            await asyncio.sleep(0.005)
            drops = sum(v for k, v in svc.stats.items() if k.startswith("dropped"))
            settled = svc.stats["delivered_jsonl"] + drops
        elapsed = time.perf_counter() - start
        size = await asyncio.to_thread(os.path.getsize, f"{tmp}/out.jsonl")
        await svc.close()
    drops = {k: v for k, v in svc.stats.items() if k.startswith("dropped")}
    qb = statistics.quantiles(build_us, n=100)
    qe = statistics.quantiles(emit_us, n=100)
    print(
        f"fsync={fsync} events={events} burst={burst}: {events / elapsed:,.0f} events/s "
        f"end-to-end ({elapsed:.2f} s, {size / events:.0f} B/event); "
        f"per event (mean over a burst): build p50 {qb[49]:.1f} µs p99 {qb[98]:.1f} µs, "
        f"emit p50 {qe[49]:.1f} µs p99 {qe[98]:.1f} µs; drops {drops or 0}; "
        f"queue high water {svc.stats['queue_high_water']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--fsync", choices=["batch", "never"], default="batch")
    parser.add_argument("--burst", type=int, default=100)
    args = parser.parse_args()
    uvloop.run(run(args.events, args.fsync, args.burst))


if __name__ == "__main__":
    main()
