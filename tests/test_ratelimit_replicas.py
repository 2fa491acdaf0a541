"""C6 acceptance: a replica-spread flood against the Redis limit. Three real gateway
processes (`maestro-gateway serve`) share one Redis; the flood stays within the limit + 1 %."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest_asyncio
import yaml
from redis.asyncio import Redis

from maestro_gateway.demo.servers import AgentServers, serve_apps
from tests.upstreams import RecordingAgent

REDIS_URL = "redis://127.0.0.1:6379/0"
REPLICAS = 3
BURST = 300  # the budget for the whole test: refill is 300/hour, i.e. < 1 in the test's time


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(state: Path, port: int, agent_url: str, prefix: str) -> Path:
    state.mkdir(parents=True, exist_ok=True)
    cfg = {
        "listen": {"host": "127.0.0.1", "port": port},
        "public_url": f"http://127.0.0.1:{port}",
        "registry": {"url": f"sqlite:///{state}/registry.db"},
        "gateway_key": {"path": str(state / "gateway-key.pem")},
        "audit": {
            "url": f"sqlite:///{state}/audit.db",
            "key_path": str(state / "audit-key.pem"),
            "state_file": str(state / "audit.checkpoint"),
        },
        "agents": [{"id": "rec", "card_url": agent_url}],
        "logging": {"level": "warning", "access_log": False},
        "guards": {
            "ratelimit": {
                "limits": [
                    {
                        "name": "agent-wide",
                        "key": ["agent"],
                        "rate": {"requests": BURST, "per_seconds": 3600},
                        "burst": BURST,
                    }
                ],
                "backend": {"kind": "redis", "url": REDIS_URL, "key_prefix": prefix},
            }
        },
    }
    path = state / "gateway.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


async def wait_ready(
    session: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "gateway process exited"
        try:
            async with session.get(f"{url}/readyz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError(f"gateway at {url} not ready")


def launch(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """`maestro-gateway serve --config …` as its own process, output to ``log``."""
    cmd = [sys.executable, "-m", "maestro_gateway.cli", "serve", "--config", str(config)]
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Replicas:
    def __init__(self, urls: list[str], prefix: str) -> None:
        self.urls, self.prefix = urls, prefix


@pytest_asyncio.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[Replicas]:
    agents: AgentServers = await serve_apps({"rec": RecordingAgent})
    prefix = f"mgw-test:{uuid.uuid4().hex}:"
    procs: list[subprocess.Popen[bytes]] = []
    urls = []
    try:
        for i in range(REPLICAS):
            port = free_port()
            path = write_config(tmp_path / f"gw{i}", port, agents.urls["rec"], prefix)
            procs.append(launch(path, tmp_path / f"gw{i}.log"))
            urls.append(f"http://127.0.0.1:{port}")
        async with aiohttp.ClientSession() as session:
            for url, proc in zip(urls, procs, strict=True):
                await wait_ready(session, url, proc)
        yield Replicas(urls, prefix)
    finally:
        stop(procs)
        await agents.close()
        redis = Redis.from_url(REDIS_URL)
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def test_flood_spread_over_replicas_stays_within_limit(replicas: Replicas) -> None:
    """900 concurrent requests spread over three gateway processes sharing Redis: at most the
    limit + 1 % pass, the rest get 429, nothing else."""
    params = {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "x"}]}}
    body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": params})
    headers = {"Content-Type": "application/json", "A2A-Version": "1.0"}
    statuses: Counter[int] = Counter()
    total, workers = 3 * BURST, 30
    queue: asyncio.Queue[str] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(f"{replicas.urls[i % REPLICAS]}/agents/rec")
    connector = aiohttp.TCPConnector(limit=workers)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            while not queue.empty():
                url = queue.get_nowait()
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    statuses[resp.status] += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(workers)))
        elapsed = time.monotonic() - started
    refill = BURST * elapsed / 3600
    assert set(statuses) <= {200, 429}, statuses
    assert sum(statuses.values()) == total
    assert BURST <= statuses[200] <= (BURST + refill) * 1.01 + 1e-9, statuses
