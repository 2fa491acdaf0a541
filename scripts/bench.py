#!/usr/bin/env python3
"""Benchmark the gateway's data path against a direct call to the same agent (``make bench``).

What runs, all on loopback:

* the fast echo agent (``maestro_gateway.testing.echo_agent``: raw ASGI on uvicorn + uvloop +
  httptools), one process;
* the gateway (``maestro-gateway serve``, one worker, default guards, default logging: JSON
  access log at level info on stderr, sent to a file), the echo agent seeded as ``echo``;
* load: a 1 KB A2A 1.0 ``SendMessage`` (and ``SendStreamingMessage``) sent (a) straight to the
  agent and (b) through the gateway at ``/agents/echo``.

Phases: fixed rate (open loop, default 1,000 req/s) for latency and gateway CPU per request;
``wrk`` with a Lua script for the saturated throughput of one gateway worker; the same again
with the access log off (``logging.level: warning``). Figures through the gateway are reported
against the direct call, so the load generator's own overhead cancels out.

CPU placement on a 2-core machine: the gateway is pinned to CPU 0, the load generators (this
process and wrk) and the echo agent to CPU 1. For the direct saturation run the echo agent is
moved to CPU 0, so it gets the same single core as the gateway worker does.

The fixed-rate generator is in this file: Debian has no open-loop tool (no wrk2, no oha), and
h2load's ``--rps`` measures from the actual send, hiding queueing (coordinated omission). It
schedules request *k* at ``start + k / rate`` with a ``timerfd`` (microsecond precision; the
event loops' own timers have 1 ms granularity), sends it on an idle keep-alive connection (or
queues it until one frees), and measures latency from the scheduled time.

The last line printed is one JSON object; it is also written to ``bench-results/latest.json``.
``--profile`` instead samples the gateway with py-spy (``pip install py-spy``) under wrk
saturation, or at ``--profile-rate N`` req/s, and prints where its CPU per request goes.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ctypes
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httptools
import uvloop

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench-results"
GW_PATH = "/agents/echo"  # the gateway's JSON-RPC endpoint for the seeded echo agent
HOST = "127.0.0.1"
GATEWAY_CPU, LOAD_CPU = 0, 1
BODY_BYTES = 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")
GOALS = {"added_p50_ms": 1.0, "added_p99_ms": 5.0, "cpu_us_per_request": 150.0}


# --------------------------------------------------------------------------- request payloads


def a2a_body(method: str, size: int = BODY_BYTES) -> tuple[bytes, str]:
    """A JSON-RPC request of exactly ``size`` bytes with one text part; returns (body, text)."""

    def build(text: str) -> bytes:
        message = {
            "messageId": "bench-0000000000000000",
            "role": "ROLE_USER",
            "parts": [{"text": text}],
        }
        doc = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {"message": message}}
        return json.dumps(doc, separators=(",", ":")).encode()

    words = "the quick brown fox jumps over the lazy dog while agents talk through a gateway "
    pad = size - len(build(""))
    text = (words * (pad // len(words) + 1))[: max(pad, 1)]
    return build(text), text


def http_request(port: int, path: str, body: bytes, stream: bool, extra: str = "") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"A2A-Version: 1.0\r\n"
        + ("Accept: text/event-stream\r\n" if stream else "")
        + extra
        + f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _pinner(cpu: int | None) -> Callable[[], None] | None:
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it."""
    parents: dict[int, list[int]] = collections.defaultdict(list)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            parents[int(stat.rsplit(")", 1)[1].split()[1])].append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, ()))
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all threads) and its live children, in seconds."""
    total = 0
    for p in descendants(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def pin_tree(pid: int, cpu: int | None) -> None:
    """Move every thread of ``pid`` and its children to ``cpu``."""
    if cpu is None:
        return
    for p in descendants(pid):
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(task.name), {cpu})


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, n: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        return ""

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)  # its own session: only what it started
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)


def spawn(name: str, argv: list[str], log: Path, cpu: int | None) -> Proc:
    with log.open("wb") as fh:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=fh,
            cwd=ROOT,
            start_new_session=True,
            preexec_fn=_pinner(cpu),
        )
    return Proc(name, popen, log)


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def http_post(url: str, body: bytes, stream: bool = False) -> bytes:
    req = urllib.request.Request(url, data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("A2A-Version", "1.0")
    if stream:
        req.add_header("Accept", "text/event-stream")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return bytes(resp.read())


def wait_until(proc: Proc, url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise SystemExit(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
        with contextlib.suppress(OSError):
            if http_get(url)[0] == 200:
                return
        time.sleep(0.1)
    raise SystemExit(f"{proc.name}: {url} not ready after {timeout:.0f} s:\n{proc.tail()}")


def start_echo(tmp: Path, workers: int, cpu: int | None) -> tuple[Proc, int]:
    port = free_port()
    argv = [sys.executable, "-m", "maestro_gateway.testing.echo_agent", "--host", HOST]
    argv += ["--port", str(port), "--workers", str(workers)]
    proc = spawn("echo agent", argv, tmp / "echo.log", cpu)
    wait_until(proc, f"http://{HOST}:{port}/.well-known/agent-card.json")
    return proc, port


def start_gateway(
    tmp: Path,
    echo_port: int,
    cpu: int | None,
    log_level: str | None,
    tag: str,
    extra: dict[str, Any] | None = None,
) -> tuple[Proc, int]:
    port = free_port()
    state = tmp / f"state-{tag}"
    state.mkdir()
    cfg: dict[str, Any] = {
        "listen": {"host": HOST, "port": port},
        "public_url": f"http://{HOST}:{port}",
        "workers": 1,
        "registry": {"url": f"sqlite:///{state}/registry.db"},
        "gateway_key": {"path": str(state / "gateway-key.pem")},
        "audit": {
            "url": f"sqlite:///{state / 'audit.db'}",
            "key_path": str(state / "audit-signing-key.pem"),
            "state_file": str(state / "audit-verified.checkpoint"),
        },
        "agents": [
            {
                "id": "echo",
                "card_url": f"http://{HOST}:{echo_port}/.well-known/agent-card.json",
                "activate": True,
            }
        ],
    }
    if log_level is not None:
        cfg["logging"] = {"level": log_level}
    cfg.update(extra or {})
    config = state / "gateway.yaml"
    config.write_text(json.dumps(cfg, indent=2))  # JSON is YAML
    exe = Path(sys.executable).with_name("maestro-gateway")
    argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "maestro_gateway.cli"]
    proc = spawn("gateway", [*argv, "serve", "--config", str(config)], state / "stderr.log", cpu)
    wait_until(proc, f"http://{HOST}:{port}/readyz")
    wait_until(proc, f"http://{HOST}:{port}{GW_PATH}/.well-known/agent-card.json")
    return proc, port


_TLS_ECHO = """
import asyncio, os, sys
from maestro_gateway.agent.serve import serve
from maestro_gateway.spiffe.tls import SvidPaths
from maestro_gateway.testing.echo_agent import echo_app
pki, port = sys.argv[1], int(sys.argv[2])
app = echo_app(f"https://127.0.0.1:{port}")
asyncio.run(serve(app, paths=SvidPaths.in_dir(pki, "echo"), port=port))
"""


@dataclass
class Secure:
    """Authentication (a dev-issuer JWT, MFA required), Cedar and upstream mTLS with request
    assertions: the configuration of the identity issue's cost goal."""

    pki: Path
    issuer_cfg: dict[str, Any]
    token: str
    echo_port: int = 0


def secure_setup(tmp: Path) -> Secure:
    from maestro_gateway.identity.devissuer import DevIssuer
    from maestro_gateway.spiffe import init_ca, issue_svid

    pki = tmp / "pki"
    init_ca(pki, "bench.test")
    issue_svid(pki, "gateway", "spiffe://bench.test/gateway")
    issue_svid(pki, "echo", "spiffe://bench.test/agent/echo")
    issuer = DevIssuer(tmp)
    token = issuer.mint("bench-user", roles=["user"], amr=["pwd", "otp"], ttl_s=6 * 3600)
    return Secure(pki, issuer.issuer_config(), token)


def start_tls_echo(tmp: Path, sec: Secure, cpu: int | None) -> Proc:
    sec.echo_port = free_port()
    argv = [sys.executable, "-c", _TLS_ECHO, str(sec.pki), str(sec.echo_port)]
    proc = spawn("mTLS echo agent", argv, tmp / "echo-tls.log", cpu)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the agent wants a client certificate: just connect
        with contextlib.suppress(OSError), socket.create_connection((HOST, sec.echo_port), 0.5):
            return proc
        time.sleep(0.1)
    raise RuntimeError("the mTLS echo agent did not start")


def secure_config(sec: Secure) -> dict[str, Any]:
    return {
        "identity": {"issuers": [sec.issuer_cfg]},
        "guards": {"authn": {"required": True, "mfa": {"second_factor": True}}},
        "spiffe": {
            "trust_domain": "bench.test",
            "dir": str(sec.pki),
            "name": "gateway",
            "gateway_id": "spiffe://bench.test/gateway",
            "upstream_mtls": True,
            "assertions": {"enabled": True},
        },
        "agents": [
            {
                "id": "echo",
                "card_url": f"https://{HOST}:{sec.echo_port}/.well-known/agent-card.json",
                "activate": True,
                "expected_spiffe_id": "spiffe://bench.test/agent/echo",
            }
        ],
    }


# --------------------------------------------------------------------------- sanity checks


def check_unary(raw: bytes, text: str, where: str) -> None:
    doc = json.loads(raw)
    parts = (doc.get("result") or {}).get("message", {}).get("parts") or [{}]
    if parts[0].get("text") != text:
        raise SystemExit(f"{where}: SendMessage did not echo the text: {raw[:300]!r}")


def check_stream(raw: bytes, text: str, where: str) -> int:
    events = [json.loads(c[5:]) for c in raw.split(b"\n\n") if c.startswith(b"data:")]
    chunks = [
        p["text"]
        for e in events
        for p in e.get("result", {}).get("artifactUpdate", {}).get("artifact", {}).get("parts", [])
    ]
    last = events[-1].get("result", {}).get("statusUpdate", {}) if events else {}
    state = last.get("status", {}).get("state")
    if "".join(chunks) != text or state != "TASK_STATE_COMPLETED":
        raise SystemExit(f"{where}: SendStreamingMessage stream is wrong: {raw[:300]!r}")
    return len(events)


# --------------------------------------------------------------------------- open-loop load


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def periodic_timerfd(interval: float) -> int | None:
    """A non-blocking Linux timerfd firing every ``interval`` s (None where unavailable)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = int(libc.timerfd_create(time.CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC))
    except (OSError, AttributeError):
        return None
    if fd < 0:
        return None
    ns = max(int(interval * 1e9), 1000)
    ts = _Timespec(ns // 1_000_000_000, ns % 1_000_000_000)
    if libc.timerfd_settime(fd, 0, ctypes.byref(_Itimerspec(ts, ts)), None) != 0:
        os.close(fd)
        return None
    return fd


@dataclass
class LoadResult:
    label: str
    rate: float
    seconds: float
    sent: int = 0
    ok: int = 0
    errors: int = 0
    latency_ms: list[float] = field(default_factory=list)
    ttfb_ms: list[float] = field(default_factory=list)
    pacer_lag_ms: list[float] = field(default_factory=list)
    cpu_us_per_request: float | None = None

    @property
    def achieved_rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time."""

    def __init__(self, gen: OpenLoop) -> None:
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.intended = 0.0
        self.first = 0.0
        self.status = 0
        self.bad = False
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        with contextlib.suppress(OSError):
            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, intended: float) -> None:
        assert self.transport is not None
        self.busy, self.intended, self.first, self.status, self.bad = True, intended, 0.0, 0, False
        self.gen.sent_at(intended)
        self.transport.write(self.gen.request)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.bad = True
            self.on_message_complete()
            if self.transport is not None:
                self.transport.close()

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if not self.first:
            self.first = time.perf_counter()
        if b'"error":' in body:  # JSON-RPC errors travel with HTTP 200
            self.bad = True

    def on_message_complete(self) -> None:
        if self.busy:
            self.busy = False
            self.gen.finished(self, time.perf_counter())

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.busy:
            self.busy, self.bad = False, True
            self.gen.finished(self, time.perf_counter())
        self.gen.lost(self)


class OpenLoop:
    """Sends ``rate`` requests/s for ``seconds`` regardless of how fast answers come back."""

    def __init__(
        self, port: int, request: bytes, rate: float, seconds: float, conns: int = 16
    ) -> None:
        self.port, self.request, self.rate, self.seconds = port, request, rate, seconds
        self.conns, self.max_conns = conns, 256
        self.total = max(int(rate * seconds), 1)
        self.idle: list[_Conn] = []
        self.pool: set[_Conn] = set()
        self.backlog: collections.deque[float] = collections.deque()
        self.latency = array("d")
        self.ttfb = array("d")
        self.lag = array("d")
        self.next_k = 0
        self.start = 0.0
        self.result = LoadResult("", rate, seconds)
        self.opening = 0
        self.tasks: set[asyncio.Future[None]] = set()
        self.done: asyncio.Future[None] | None = None

    def sent_at(self, intended: float) -> None:
        self.lag.append(time.perf_counter() - intended)

    def finished(self, conn: _Conn, now: float) -> None:
        r = self.result
        if conn.bad or conn.status != 200:
            r.errors += 1
        else:
            r.ok += 1
            self.latency.append(now - conn.intended)
            self.ttfb.append((conn.first or now) - conn.intended)
        if r.ok + r.errors >= self.total and self.done is not None and not self.done.done():
            self.done.set_result(None)
            return
        if conn.transport is not None and not conn.transport.is_closing():
            self._give(conn)

    def lost(self, conn: _Conn) -> None:
        self.pool.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        if self.backlog:
            self._open()

    def _give(self, conn: _Conn) -> None:
        if self.backlog:
            conn.send(self.backlog.popleft())
        else:
            self.idle.append(conn)

    def _open(self) -> None:
        if len(self.pool) + self.opening >= self.max_conns:
            return
        self.opening += 1
        task = asyncio.ensure_future(self._connect())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(lambda: _Conn(self), HOST, self.port)
        except OSError:
            self.opening -= 1
            if self.backlog:  # count the request as failed, not lost
                self.backlog.popleft()
                self.result.errors += 1
            return
        self.opening -= 1
        self.pool.add(conn)
        self._give(conn)

    def _dispatch(self, intended: float) -> None:
        self.result.sent += 1
        if self.idle:
            self.idle.pop().send(intended)  # LIFO: a few hot connections, like real clients
        else:
            self.backlog.append(intended)
            self._open()

    def _tick(self) -> None:
        now = time.perf_counter()
        interval = 1.0 / self.rate
        while self.next_k < self.total:
            intended = self.start + self.next_k * interval
            if intended > now:
                break
            self.next_k += 1
            self._dispatch(intended)

    async def run(self, label: str) -> LoadResult:
        loop = asyncio.get_running_loop()
        self.result = LoadResult(label, self.rate, self.seconds)
        self.done = loop.create_future()
        for _ in range(self.conns):
            _, conn = await loop.create_connection(lambda: _Conn(self), HOST, self.port)
            self.pool.add(conn)
            self.idle.append(conn)
        interval = 1.0 / self.rate
        fd = periodic_timerfd(interval)
        self.start = time.perf_counter()

        def on_timer(timer: int) -> None:
            with contextlib.suppress(BlockingIOError):
                os.read(timer, 8)
            self._tick()

        pacer: asyncio.Task[None] | None = None
        if fd is not None:
            loop.add_reader(fd, on_timer, fd)
        else:

            async def sleep_pacer() -> None:
                while self.next_k < self.total:
                    self._tick()
                    await asyncio.sleep(interval)

            pacer = asyncio.ensure_future(sleep_pacer())
        try:
            await asyncio.wait_for(asyncio.shield(self.done), self.seconds + 15)
        except TimeoutError:
            self.result.errors += self.total - self.result.ok - self.result.errors
        finally:
            if fd is not None:
                loop.remove_reader(fd)
                os.close(fd)
            if pacer is not None:
                pacer.cancel()
            for conn in list(self.pool):
                if conn.transport is not None:
                    conn.transport.close()
        elapsed = max(self.seconds, time.perf_counter() - self.start)
        r = self.result
        r.seconds = elapsed
        r.latency_ms = sorted(x * 1000 for x in self.latency)
        r.ttfb_ms = sorted(x * 1000 for x in self.ttfb)
        r.pacer_lag_ms = sorted(x * 1000 for x in self.lag)
        return r


def run_open_loop(port: int, request: bytes, rate: float, seconds: float, label: str) -> LoadResult:
    return uvloop.run(OpenLoop(port, request, rate, seconds).run(label))


def fixed_rate(
    port: int,
    request: bytes,
    rate: float,
    seconds: float,
    warmup: float,
    label: str,
    cpu_pid: int | None = None,
) -> LoadResult:
    """A warm-up run (discarded), then the measured run; gateway CPU read around the latter."""
    run_open_loop(port, request, rate, warmup, label + " warm-up")
    before = cpu_seconds(cpu_pid) if cpu_pid else 0.0
    result = run_open_loop(port, request, rate, seconds, label)
    if cpu_pid:
        served = max(result.ok + result.errors, 1)
        result.cpu_us_per_request = (cpu_seconds(cpu_pid) - before) / served * 1e6
    return result


def pct(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return math.nan
    return sorted_ms[min(len(sorted_ms) - 1, max(0, math.ceil(q * len(sorted_ms)) - 1))]


def summary(r: LoadResult, ttfb: bool = False) -> dict[str, Any]:
    data = r.ttfb_ms if ttfb else r.latency_ms
    out = {
        "p50_ms": pct(data, 0.50),
        "p90_ms": pct(data, 0.90),
        "p99_ms": pct(data, 0.99),
        "p999_ms": pct(data, 0.999),
        "max_ms": data[-1] if data else math.nan,
        "mean_ms": sum(data) / len(data) if data else math.nan,
        "requests": r.ok,
        "errors": r.errors,
        "achieved_rps": r.achieved_rps,
    }
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}


# --------------------------------------------------------------------------- wrk


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def write_lua(tmp: Path, body: bytes) -> Path:
    body_file = tmp / "body.json"
    body_file.write_bytes(body)
    script = tmp / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f'local f = io.open("{body_file}", "rb")\n'
        "wrk.body = f:read('*a')\n"
        "f:close()\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        'wrk.headers["A2A-Version"] = "1.0"\n'
    )
    return script


def run_wrk(url: str, lua: Path, conns: int, seconds: float) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk not found: `apt-get install wrk` (make bench does it)")
    argv = [wrk, "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(lua)]
    out = subprocess.run(
        [*argv, url], capture_output=True, text=True, timeout=seconds + 30, check=False
    ).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise SystemExit(f"could not read wrk's output:\n{out}")
    result: dict[str, Any] = {"rps": round(float(m.group(1)), 1), "connections": conns}
    for q in ("50", "99"):
        lm = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if lm:
            result[f"p{q}_ms"] = round(float(lm.group(1)) * _UNITS[lm.group(2)], 3)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result["errors"] = (int(non2xx.group(1)) if non2xx else 0) + (
        sum(int(x) for x in sock.groups()) if sock else 0
    )
    return result


def saturate(
    url: str, lua: Path, conns: int, seconds: float, pid: int, other: int | None = None
) -> dict[str, Any]:
    """wrk at full speed; CPU use of ``pid`` (and ``other``) over the run as a fraction."""
    run_wrk(url, lua, conns, min(2.0, seconds))  # warm-up
    t0 = time.perf_counter()
    c0, o0 = cpu_seconds(pid), cpu_seconds(other) if other else 0.0
    result = run_wrk(url, lua, conns, seconds)
    wall = time.perf_counter() - t0
    result["cpu_util"] = round((cpu_seconds(pid) - c0) / wall, 3)
    if other:
        result["upstream_cpu_util"] = round((cpu_seconds(other) - o0) / wall, 3)
    if result["rps"]:
        result["cpu_us_per_request"] = round(result["cpu_util"] / result["rps"] * 1e6, 1)
    return result


# --------------------------------------------------------------------------- reporting


def machine_info(pinned: bool) -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    wrk_version = "-"
    if wrk := shutil.which("wrk"):
        out = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False).stdout
        wrk_version = out.split(" [")[0].strip() or "-"
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "uvloop": uvloop.__version__,
        "httptools": httptools.__version__,
        "wrk": wrk_version,
        "pinning": (
            f"gateway on CPU {GATEWAY_CPU}; load generator, wrk and echo agent on CPU {LOAD_CPU}"
            if pinned
            else "none (fewer than 2 CPUs or --no-pin)"
        ),
    }


def access_log_bytes(log: Path) -> int:
    """Mean size of one access-log line ("msg":"request") in the gateway's stderr."""
    lines = [x for x in log.read_bytes().splitlines() if b'"msg":"request"' in x]
    return round(sum(len(x) + 1 for x in lines) / len(lines)) if lines else 0


def gateway_verdicts(port: int) -> dict[str, float]:
    """maestro_requests_total by verdict, from /metrics."""
    _, body = http_get(f"http://{HOST}:{port}/metrics", timeout=5)
    out: dict[str, float] = collections.defaultdict(float)
    for line in body.decode().splitlines():
        m = re.match(r'maestro_requests_total\{.*verdict="([^"]+)".*\}\s+([\d.e+]+)', line)
        if m:
            out[m.group(1)] += float(m.group(2))
    return dict(out)


def _strict(value: Any) -> Any:
    """NaN (a phase with no successful request) becomes null: the JSON stays standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    return value


def _fmt(v: Any, spec: str = ".3f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, spec)


def table(rows: list[tuple[str, dict[str, Any]]], direct: dict[str, Any] | None) -> list[str]:
    head = f"{'':30}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'p99.9 ms':>10}{'max ms':>9}"
    lines = [head + f"{'req/s':>9}{'errors':>8}"]
    for name, s in rows:
        lines.append(
            f"{name:30}{_fmt(s['p50_ms']):>9}{_fmt(s['p90_ms']):>9}{_fmt(s['p99_ms']):>9}"
            f"{_fmt(s['p999_ms']):>10}{_fmt(s['max_ms']):>9}{_fmt(s['achieved_rps'], '.0f'):>9}"
            f"{s['errors']:>8}"
        )
    if direct is not None and len(rows) > 1:
        gw = rows[-1][1]
        added = {k: gw[k] - direct[k] for k in ("p50_ms", "p90_ms", "p99_ms", "p999_ms")}
        lines.append(
            f"{'  added by the gateway':30}{_fmt(added['p50_ms']):>9}{_fmt(added['p90_ms']):>9}"
            f"{_fmt(added['p99_ms']):>9}{_fmt(added['p999_ms']):>10}"
        )
        ratio = {k: gw[k] / direct[k] if direct[k] else math.nan for k in added}
        lines.append(
            f"{'  ratio gateway / direct':30}{_fmt(ratio['p50_ms'], '.2f'):>9}"
            f"{_fmt(ratio['p90_ms'], '.2f'):>9}{_fmt(ratio['p99_ms'], '.2f'):>9}"
            f"{_fmt(ratio['p999_ms'], '.2f'):>10}"
        )
    return lines


# --------------------------------------------------------------------------- profile mode

# Where a sample's time is charged: walking from the innermost frame outwards, the first frame
# that matches a needle (checked in this order) names the bucket. Frames that match nothing
# (asyncio, stdlib helpers, generated validator code, C calls) are charged to their nearest
# matching caller; a sample with no match at all is time in the event loop itself: uvloop/libuv
# C code and the socket system calls it makes (py-spy shows no C frames without --native).
CATEGORIES: list[tuple[str, str]] = [
    ("JsonFormatter", "access log (logging + JSON formatter)"),
    ("(logging/", "access log (logging + JSON formatter)"),
    ("Metrics.observe", "metrics (prometheus_client)"),
    ("prometheus_client", "metrics (prometheus_client)"),
    ("maestro_gateway/observability.py", "request id + traceparent (ours)"),
    ("maestro_gateway/a2a/schema.py", "validate guard: A2A schema (fastjsonschema)"),
    ("maestro_gateway/guards/", "validate guard: limits, Unicode, SSRF"),
    ("maestro_gateway/pipeline.py", "guard pipeline (ours)"),
    ("maestro_gateway/requests.py", "JSON-RPC parsing (orjson + checks)"),
    ("maestro_gateway/proxy.py", "upstream call wrapper (ours)"),
    ("aiohttp/", "aiohttp client (upstream HTTP)"),
    ("multidict", "aiohttp client (upstream HTTP)"),
    ("yarl/", "aiohttp client (upstream HTTP)"),
    ("maestro_gateway/dataplane.py", "dataplane + app code (ours)"),
    ("maestro_gateway/app.py", "dataplane + app code (ours)"),
    ("maestro_gateway/http.py", "dataplane + app code (ours)"),
    ("maestro_gateway/a2a/", "dataplane + app code (ours)"),
    ("maestro_gateway/registry/", "dataplane + app code (ours)"),
    ("uvicorn/protocols", "uvicorn + httptools (client HTTP)"),
    ("uvicorn/middleware", "uvicorn + httptools (client HTTP)"),
]
EVENT_LOOP = "event loop + socket syscalls (uvloop, C)"


def categorise(stack: str) -> str:
    for frame in reversed(stack.split(";")):
        for needle, label in CATEGORIES:
            if needle in frame:
                return label
    return EVENT_LOOP


def profile_gateway(
    args: argparse.Namespace, gw: Proc, gw_port: int, lua: Path, request: bytes
) -> dict[str, Any]:
    """Sample the gateway with py-spy under load; charge its CPU per request to buckets.

    The CPU per request is measured first without the profiler (py-spy slows the target), then
    the profile's shares split it.
    """
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise SystemExit("--profile needs py-spy: `.venv/bin/pip install py-spy`")
    RESULTS.mkdir(exist_ok=True)
    raw = RESULTS / "profile.collapsed.txt"
    url = f"http://{HOST}:{gw_port}{GW_PATH}"
    seconds, rate = args.profile_seconds, args.profile_rate

    def load(duration: float) -> float:
        """Run the load; return the gateway's CPU µs per request."""
        if rate:
            r = fixed_rate(gw_port, request, rate, duration, 1.0, "profile", gw.pid)
            return r.cpu_us_per_request or math.nan
        return float(
            saturate(url, lua, args.wrk_connections, duration, gw.pid)["cpu_us_per_request"]
        )

    us_per_req = load(min(seconds, 8.0))
    argv = [spy, "record", "-p", str(gw.pid), "-r", "200", "-d", str(round(seconds)), "-f", "raw"]
    argv += ["-o", str(raw)]
    spy_proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)
        load(seconds - 3)
        _, err = spy_proc.communicate(timeout=seconds + 30)
    finally:
        if spy_proc.poll() is None:
            spy_proc.kill()
            spy_proc.wait()
    if not raw.exists():
        raise SystemExit(f"py-spy wrote nothing: {err.decode(errors='replace')}")
    totals: dict[str, int] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        # Only the event-loop thread: py-spy takes aiosqlite's worker thread, blocked in
        # SimpleQueue.get(), for busy.
        if "Runner.run (" in stack and count.isdigit():
            totals[categorise(stack)] += int(count)
    n = sum(totals.values()) or 1
    mode = (
        f"fixed rate {rate:.0f} req/s"
        if rate
        else f"saturated by wrk, {args.wrk_connections} conns"
    )
    print(f"\ngateway CPU per SendMessage ({mode}, no profiler): {us_per_req:.0f} µs")
    print(f"py-spy: {n} samples of the busy event-loop thread, in {raw.relative_to(ROOT)}\n")
    print(f"{'where the gateway CPU goes':48}{'share':>8}{'~µs/req':>10}")
    breakdown = {}
    for label, count in sorted(totals.items(), key=lambda kv: -kv[1]):
        share = count / n
        breakdown[label] = {"share": round(share, 4), "us": round(share * us_per_req, 1)}
        print(f"{label:48}{share:>8.1%}{share * us_per_req:>10.0f}")
    return {"mode": mode, "cpu_us_per_request": round(us_per_req, 1), "breakdown": breakdown}


# --------------------------------------------------------------------------- main


@dataclass
class Plan:
    rate: float
    stream_rate: float
    seconds: float
    warmup: float
    wrk_seconds: float
    wrk_connections: int


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="a few seconds per phase")
    p.add_argument("--rate", type=float, default=1000.0, help="fixed rate, requests/s")
    p.add_argument("--stream-rate", type=float, default=None, help="streams/s (default: rate)")
    p.add_argument("--duration", type=float, default=None, help="seconds per fixed-rate phase")
    p.add_argument("--wrk-connections", type=int, default=64)
    p.add_argument("--echo-workers", type=int, default=1)
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--skip-nolog", action="store_true", help="skip the access-log-off variant")
    p.add_argument(
        "--skip-secure", action="store_true", help="skip the identity-on variant (JWT, Cedar, mTLS)"
    )
    p.add_argument("--profile", action="store_true", help="only profile the gateway (py-spy)")
    p.add_argument("--profile-seconds", type=float, default=15.0)
    p.add_argument(
        "--profile-rate", type=float, default=0.0, help="profile at this fixed rate (0: wrk)"
    )
    args = p.parse_args(argv)
    plan = Plan(
        rate=args.rate,
        stream_rate=args.stream_rate or args.rate,
        seconds=args.duration or (3.0 if args.quick else 12.0),
        warmup=1.0 if args.quick else 2.0,
        wrk_seconds=3.0 if args.quick else 10.0,
        wrk_connections=args.wrk_connections,
    )
    pinned = not args.no_pin and len(os.sched_getaffinity(0)) >= 2
    gw_cpu = GATEWAY_CPU if pinned else None
    load_cpu = LOAD_CPU if pinned else None
    if load_cpu is not None:
        os.sched_setaffinity(0, {load_cpu})  # this process, wrk and the echo agent
    # A plain SIGTERM would skip the clean-up below; the servers run in their own sessions.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    procs: list[Proc] = []
    with tempfile.TemporaryDirectory(prefix="maestro-bench-") as tmpdir:
        tmp = Path(tmpdir)
        try:
            return _run(args, plan, tmp, procs, gw_cpu, load_cpu, pinned, started)
        finally:
            for proc in reversed(procs):
                proc.stop()


def _run(
    args: argparse.Namespace,
    plan: Plan,
    tmp: Path,
    procs: list[Proc],
    gw_cpu: int | None,
    load_cpu: int | None,
    pinned: bool,
    started: float,
) -> int:
    unary, text = a2a_body("SendMessage")
    stream_body, stream_text = a2a_body("SendStreamingMessage")
    lua = write_lua(tmp, unary)
    echo, echo_port = start_echo(tmp, args.echo_workers, load_cpu)
    procs.append(echo)
    gw, gw_port = start_gateway(tmp, echo_port, gw_cpu, None, "default")
    procs.append(gw)
    direct_url, gw_url = f"http://{HOST}:{echo_port}/", f"http://{HOST}:{gw_port}{GW_PATH}"
    check_unary(http_post(direct_url, unary), text, "direct")
    check_unary(http_post(gw_url, unary), text, "gateway")
    events = check_stream(http_post(direct_url, stream_body, True), stream_text, "direct")
    check_stream(http_post(gw_url, stream_body, True), stream_text, "gateway")
    if args.profile:
        prof = profile_gateway(args, gw, gw_port, lua, http_request(gw_port, GW_PATH, unary, False))
        (RESULTS / "profile.json").write_text(json.dumps(prof, indent=2) + "\n")
        print(json.dumps({"profile": prof}, separators=(",", ":")))
        return 0

    def phase(msg: str) -> None:
        print(f"[{time.perf_counter() - started:5.1f} s] {msg}", file=sys.stderr, flush=True)

    req_direct = http_request(echo_port, "/", unary, False)
    req_gw = http_request(gw_port, GW_PATH, unary, False)
    sreq_direct = http_request(echo_port, "/", stream_body, True)
    sreq_gw = http_request(gw_port, GW_PATH, stream_body, True)
    r, s, w = plan.rate, plan.seconds, plan.warmup

    phase(f"unary, fixed rate {r:.0f}/s: direct")
    u_direct = fixed_rate(echo_port, req_direct, r, s, w, "direct")
    phase("unary, fixed rate: via gateway")
    u_gw = fixed_rate(gw_port, req_gw, r, s, w, "gateway", gw.pid)
    log_bytes = access_log_bytes(gw.log)
    sr = plan.stream_rate
    phase(f"stream, fixed rate {sr:.0f}/s: direct")
    s_direct = fixed_rate(echo_port, sreq_direct, sr, s, w, "stream direct")
    phase("stream, fixed rate: via gateway")
    s_gw = fixed_rate(gw_port, sreq_gw, sr, s, w, "stream gateway", gw.pid)

    phase(f"max throughput (wrk, {plan.wrk_connections} connections): via gateway")
    max_gw = saturate(gw_url, lua, plan.wrk_connections, plan.wrk_seconds, gw.pid, echo.pid)
    phase("max throughput: direct (echo agent moved to the gateway's CPU)")
    pin_tree(echo.pid, gw_cpu)
    try:
        max_direct = saturate(direct_url, lua, plan.wrk_connections, plan.wrk_seconds, echo.pid)
    finally:
        pin_tree(echo.pid, load_cpu)
    verdicts = gateway_verdicts(gw_port)
    gw.stop()

    nolog: dict[str, Any] | None = None
    if not args.skip_nolog:
        phase("access log off (logging.level: warning): restart gateway")
        gw2, gw2_port = start_gateway(tmp, echo_port, gw_cpu, "warning", "nolog")
        procs.append(gw2)
        req_gw2 = http_request(gw2_port, GW_PATH, unary, False)
        phase("access log off: unary fixed rate via gateway")
        u_gw2 = fixed_rate(gw2_port, req_gw2, r, s, w, "gateway, no access log", gw2.pid)
        phase("access log off: max throughput")
        url2 = f"http://{HOST}:{gw2_port}{GW_PATH}"
        max_gw2 = saturate(url2, lua, plan.wrk_connections, plan.wrk_seconds, gw2.pid, echo.pid)
        gw2.stop()
        nolog = {
            "gateway": summary(u_gw2),
            "added_p50_ms": round(pct(u_gw2.latency_ms, 0.5) - pct(u_direct.latency_ms, 0.5), 3),
            "added_p99_ms": round(pct(u_gw2.latency_ms, 0.99) - pct(u_direct.latency_ms, 0.99), 3),
            "cpu_us_per_request": round(u_gw2.cpu_us_per_request or math.nan, 1),
            "max_rps": max_gw2["rps"],
            "max": max_gw2,
        }

    secure: dict[str, Any] | None = None
    if not args.skip_secure:
        phase("identity on (JWT + MFA, Cedar, upstream mTLS + assertions): start")
        sec = secure_setup(tmp)
        procs.append(start_tls_echo(tmp, sec, load_cpu))
        gw3, gw3_port = start_gateway(tmp, 0, gw_cpu, None, "secure", secure_config(sec))
        procs.append(gw3)
        auth = f"Authorization: Bearer {sec.token}\r\n"
        req_gw3 = http_request(gw3_port, GW_PATH, unary, False, auth)
        phase("identity on: unary fixed rate via gateway")
        u_gw3 = fixed_rate(gw3_port, req_gw3, r, s, w, "gateway, identity on", gw3.pid)
        verdicts3 = gateway_verdicts(gw3_port)
        gw3.stop()
        cpu3 = round(u_gw3.cpu_us_per_request or math.nan, 1)
        secure = {
            "gateway": summary(u_gw3),
            "added_p50_ms": round(pct(u_gw3.latency_ms, 0.5) - pct(u_direct.latency_ms, 0.5), 3),
            "added_p99_ms": round(pct(u_gw3.latency_ms, 0.99) - pct(u_direct.latency_ms, 0.99), 3),
            "cpu_us_per_request": cpu3,
            "extra_cpu_us_over_default": round(cpu3 - (u_gw.cpu_us_per_request or math.nan), 1),
            "errors": u_gw3.errors,
            "verdicts": verdicts3,
        }

    # ------------------------------------------------------------------ report
    ud, ug, sd, sg = summary(u_direct), summary(u_gw), summary(s_direct), summary(s_gw)
    sd_t, sg_t = summary(s_direct, ttfb=True), summary(s_gw, ttfb=True)
    info = machine_info(pinned)
    cpu_us = round(u_gw.cpu_us_per_request or math.nan, 1)
    added_p50 = round(ug["p50_ms"] - ud["p50_ms"], 3)
    added_p99 = round(ug["p99_ms"] - ud["p99_ms"], 3)
    lag = u_gw.pacer_lag_ms
    out: list[str] = [
        "",
        f"Maestro Gateway benchmark: {info['nproc']} CPUs ({info['cpu_model']}), "
        f"Python {info['python']}, kernel {info['kernel']}",
        f"pinning: {info['pinning']}",
        f"body: {len(unary)} B SendMessage / {len(stream_body)} B SendStreamingMessage "
        f"({events} SSE events); echo agent: {args.echo_workers} worker(s)",
        f"fixed-rate load: open loop, latency measured from each request's scheduled time; "
        f"{s:.0f} s after {w:.0f} s warm-up (pacer lag p99 {pct(lag, 0.99):.3f} ms)",
        "",
        f"SendMessage at {r:.0f} req/s (default config: guards on, JSON access log at info)",
        *table([("direct", ud), ("via gateway", ug)], ud),
        "",
        f"SendStreamingMessage at {sr:.0f} streams/s, time to the last event",
        *table([("direct", sd), ("via gateway", sg)], sd),
        "time to the first event",
        *table([("direct", sd_t), ("via gateway", sg_t)], sd_t),
        "",
        f"gateway CPU: {cpu_us} µs per SendMessage at {r:.0f} req/s; "
        f"{_fmt(s_gw.cpu_us_per_request, '.1f')} µs per stream at {sr:.0f} streams/s; "
        f"access log: {log_bytes} B/request",
        f"max throughput (wrk, {plan.wrk_connections} connections, {plan.wrk_seconds:.0f} s): "
        f"gateway {max_gw['rps']:,.0f} req/s (CPU {max_gw['cpu_util']:.0%}, "
        f"{max_gw.get('cpu_us_per_request', '-')} µs/req, echo agent CPU "
        f"{max_gw.get('upstream_cpu_util', 0):.0%})",
        f"  direct, echo agent alone on the gateway's core: {max_direct['rps']:,.0f} req/s "
        f"(echo CPU {max_direct['cpu_util']:.0%}"
        + ("; wrk-bound, a lower bound" if max_direct["cpu_util"] < 0.95 else "")
        + f"); gateway / direct {max_gw['rps'] / max(max_direct['rps'], 1):.2f}",
    ]
    if nolog:
        out += [
            "",
            "access log off (logging.level: warning):",
            *table([("direct", ud), ("via gateway, no access log", nolog["gateway"])], ud),
            f"gateway CPU {nolog['cpu_us_per_request']} µs/request; max throughput "
            f"{nolog['max_rps']:,.0f} req/s",
        ]
    if secure:
        out += [
            "",
            "identity on (bearer JWT with MFA, Cedar authorization, upstream mTLS with SPIFFE "
            "checks and signed request assertions):",
            *table(
                [("direct (plain http)", ud), ("via gateway, identity on", secure["gateway"])], ud
            ),
            f"gateway CPU {secure['cpu_us_per_request']} µs/request: "
            f"{secure['extra_cpu_us_over_default']} µs more than the default configuration "
            f"(goal ≤ 100); errors {secure['errors']}; verdicts {secure['verdicts']}",
        ]
    goals = {
        "added_p50_ms": added_p50 <= GOALS["added_p50_ms"],
        "added_p99_ms": added_p99 <= GOALS["added_p99_ms"],
        "cpu_us_per_request": cpu_us <= GOALS["cpu_us_per_request"],
    }
    out += [
        "",
        "goals: "
        + "; ".join(f"{k} ≤ {GOALS[k]:g}: {'met' if ok else 'NOT met'}" for k, ok in goals.items()),
        f"gateway verdicts: {dict(verdicts)}; total time {time.perf_counter() - started:.0f} s",
    ]
    print("\n".join(out))
    result: dict[str, Any] = {
        "added_p50_ms": added_p50,
        "added_p99_ms": added_p99,
        "cpu_us_per_request": cpu_us,
        "max_rps": max_gw["rps"],
        "direct_max_rps": max_direct["rps"],
        "rate": r,
        "direct": ud,
        "gateway": ug,
        "stream": {
            "rate": sr,
            "events": events,
            "direct": sd,
            "gateway": sg,
            "added_p50_ms": round(sg["p50_ms"] - sd["p50_ms"], 3),
            "added_p99_ms": round(sg["p99_ms"] - sd["p99_ms"], 3),
            "ttfb_direct": sd_t,
            "ttfb_gateway": sg_t,
            "cpu_us_per_stream": round(s_gw.cpu_us_per_request or math.nan, 1),
        },
        "max": {"gateway": max_gw, "direct": max_direct},
        "access_log_off": nolog,
        "identity_on": secure,
        "access_log_bytes_per_request": log_bytes,
        "pacer_lag_p99_ms": round(pct(lag, 0.99), 3),
        "gateway_verdicts": verdicts,
        "goals_met": goals,
        "quick": bool(args.quick),
        "machine": info,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    result = _strict(result)
    line = json.dumps(result, separators=(",", ":"), allow_nan=False)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(result, indent=2) + "\n")
    print(line)
    errors = u_gw.errors + s_gw.errors + u_direct.errors + s_direct.errors
    errors += secure["errors"] if secure else 0
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
