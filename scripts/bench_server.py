#!/usr/bin/env python3
"""CPU cost of the hardened HTTP server protocol (``maestro_gateway.server``) per request.

Serves a trivial ASGI app (200, 2 bytes) with uvicorn + uvloop in a child process, once with
uvicorn's ``HttpToolsProtocol`` and once with ``GatewayHttpProtocol``, and drives each with
``--connections`` keep-alive connections sending a 10-header POST with a 1 KB body. Reports
the server process's CPU time per request (user + system, from /proc) and requests/s; the
difference between the two is what the header/body timers, header limits and connection
counting cost. Best of ``--rounds``.

    .venv/bin/python scripts/bench_server.py [--requests 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time

REQUEST = (
    b"POST /agents/echo HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
    b"A2A-Version: 1.0\r\nUser-Agent: bench\r\nAccept: */*\r\nX-Request-Id: abc\r\n"
    b"traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"
    b"Accept-Encoding: identity\r\nConnection: keep-alive\r\nContent-Length: 1024\r\n\r\n"
) + b"x" * 1024

SERVER = """
import sys, uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from maestro_gateway.config import ServerConfig
from maestro_gateway.server import protocol_for

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})

http = HttpToolsProtocol if sys.argv[2] == "plain" else protocol_for(ServerConfig())
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), http=http, loop="uvloop",
            log_config=None, access_log=False, lifespan="off")
"""


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(port: int, connections: int, requests: int) -> float:
    per = requests // connections

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(per):
            writer.write(REQUEST)
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(2)
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(connections)))
    return time.perf_counter() - started


def measure(kind: str, connections: int, requests: int) -> tuple[float, float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), kind])
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        asyncio.run(drive(port, connections, 1000))  # warm up
        before = cpu_seconds(proc.pid)
        elapsed = asyncio.run(drive(port, connections, requests))
        used = cpu_seconds(proc.pid) - before
        return used / requests * 1e6, requests / elapsed
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    out: dict[str, dict[str, float]] = {}
    for kind in ("plain", "hardened"):
        runs = [measure(kind, args.connections, args.requests) for _ in range(args.rounds)]
        cpu = min(r[0] for r in runs)
        rate = max(r[1] for r in runs)
        out[kind] = {"server_cpu_us_per_request": round(cpu, 1), "requests_per_s": round(rate)}
    out["overhead_us_per_request"] = {
        "cpu": round(
            out["hardened"]["server_cpu_us_per_request"]
            - out["plain"]["server_cpu_us_per_request"],
            1,
        )
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
