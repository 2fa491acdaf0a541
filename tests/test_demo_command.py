"""`maestro-gateway demo` as a user runs it: a real process, its client snippet, a restart."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from maestro_gateway.demo.run import sdk_snippet

BIN = Path(sys.executable).parent / "maestro-gateway"


def free_port_block(n: int) -> int:
    """A base port such that base..base+n-1 were free a moment ago."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n >= 65535:
            continue
        try:
            socks = []
            for i in range(n):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no free port block")


def start(state: Path, base: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            str(BIN),
            "demo",
            "--state-dir",
            str(state),
            "--port",
            str(base),
            "--agent-port-base",
            str(base + 1),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "demo is running at" in line:
            return proc
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("demo did not start")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _direct(port: int, ctx: ssl.SSLContext) -> int:
    request = urllib.request.Request(f"https://127.0.0.1:{port}/", data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10, context=ctx) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def assert_agents_refuse_direct_calls(pki: Path, port: int) -> None:
    """The demo agents run on mTLS behind GatewayOnly: no certificate fails the handshake, and
    another workload's SVID (the echo agent's own) gets 403."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        _direct(port, ctx)
    ctx.load_cert_chain(pki / "echo.pem", pki / "echo.key")
    assert _direct(port, ctx) == 403


@pytest.mark.timeout(120)
def test_demo_runs_snippet_and_keeps_state(tmp_path: Path) -> None:
    """The demo serves the printed a2a-sdk snippet (with the user's token from credentials.json),
    and a restart keeps its registry and key."""
    base = free_port_block(4)
    state = tmp_path / ".demo"
    proc = start(state, base)
    try:
        creds = json.loads((state / "credentials.json").read_text())
        snippet = sdk_snippet(f"http://127.0.0.1:{base}", creds["accounts"]["user"]["token"])
        out = subprocess.run(
            [sys.executable, "-c", snippet], capture_output=True, text=True, timeout=60, check=False
        )
        assert out.returncode == 0, out.stderr
        assert "echo: hello" in out.stdout
        assert_agents_refuse_direct_calls(state / "pki", base + 1)
    finally:
        stop(proc)
    key = (state / "gateway-signing-key.pem").read_bytes()
    proc = start(state, base)
    try:
        with sqlite3.connect(state / "registry.db") as db:
            rows = db.execute("SELECT COUNT(*) FROM registry_versions").fetchone()
        assert rows == (3,)  # the restart registered nothing twice
        assert (state / "gateway-signing-key.pem").read_bytes() == key
    finally:
        stop(proc)
