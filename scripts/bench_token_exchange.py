"""Cost of C16 delegated identities: the token exchange, and a delegated token on use.

    .venv/bin/python scripts/bench_token_exchange.py [--n 2000] [--http 300]

1. ``exchange()`` in process (one skill: 3 Cedar decisions, one ES256 signature, subject and
   actor tokens already verified once), audit off: the CPU cost of a decision.
2. ``POST /oauth2/token`` over loopback HTTP against a real gateway (uvicorn, demo echo agent,
   SQLite audit log: the ``token.exchanged`` record is written durably before the answer).
3. On use: verifying a delegated token (first sight and repeated) and the delegation guard.
Prints p50/p99 for each.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from maestro_gateway.app import Gateway, create_app
from maestro_gateway.audit.recorder import AuditRecorder
from maestro_gateway.config import AuditConfig, parse_config
from maestro_gateway.context import RequestContext
from maestro_gateway.demo.servers import AgentSpec, serve_agents, serve_apps
from maestro_gateway.guards.delegation import DelegationGuard
from maestro_gateway.identity._delegation import TOKEN_TYPE_ACCESS
from maestro_gateway.identity.authenticator import Authenticator
from maestro_gateway.identity.devissuer import DevIssuer
from maestro_gateway.identity.exchange import GRANT_TYPE, TokenExchange
from maestro_gateway.policy import PolicyConfig, PolicyRuntime
from maestro_gateway.registry.routing import Directory, Target


def pct(samples: list[float], q: float) -> float:
    return sorted(samples)[min(len(samples) - 1, int(q * len(samples)))]


def show(name: str, samples: list[float], unit: str = "µs", scale: float = 1e6) -> None:
    p50, p99 = pct(samples, 0.5) * scale, pct(samples, 0.99) * scale
    print(f"{name:<58} p50 {p50:8.1f} {unit}   p99 {p99:8.1f} {unit}   (n={len(samples)})")


def form(dev: DevIssuer, user: str, actor: str) -> dict[str, str]:
    return {"grant_type": GRANT_TYPE, "subject_token": user, "actor_token": actor,
            "subject_token_type": TOKEN_TYPE_ACCESS, "actor_token_type": TOKEN_TYPE_ACCESS,
            "audience": "echo", "scope": "summarize"}  # fmt: skip


async def in_process(tmp: Path, n: int) -> None:
    dev = DevIssuer(tmp)
    cfg = parse_config(
        {"gateway_key": {"path": str(tmp / "gw.pem")},
         "identity": {"issuers": [dev.issuer_config()], "exchange": {"enabled": True}}}
    )  # fmt: skip
    auth = Authenticator(cfg.identity)
    directory = Directory()
    directory.replace({"echo": Target("echo", "http://x", "1.0", {}, frozenset({"summarize"}))})
    ex = TokenExchange(
        cfg, auth, PolicyRuntime.from_config(PolicyConfig()), directory,
        AuditRecorder(AuditConfig(enabled=False)),
    )  # fmt: skip
    data = form(dev, dev.mint("uma", roles=["user"]), dev.mint("sup", roles=["delegator"]))
    samples: list[float] = []
    token = ""
    for _ in range(n):
        t0 = time.perf_counter()
        token = (await ex.exchange(data, [], {}))["access_token"]
        samples.append(time.perf_counter() - t0)
    show("exchange() in process, audit off (1 skill)", samples)
    assert ex.tokens is not None
    fresh = [ex.tokens.mint(await auth.validate(data["subject_token"]), ("sup",), "echo",
                            ("summarize",))[0] for _ in range(n)]  # fmt: skip
    first: list[float] = []
    for t in fresh:
        t0 = time.perf_counter()
        await auth.validate(t, "echo")
        first.append(time.perf_counter() - t0)
    show("delegated token verify, first sight (ES256)", first)
    again: list[float] = []
    guard_s: list[float] = []
    guard = DelegationGuard(cfg.identity.exchange)
    for _ in range(n):
        t0 = time.perf_counter()
        ident = await auth.validate(token, "echo")
        t1 = time.perf_counter()
        ctx = RequestContext("r", "echo", "SendMessage", {}, skill_id="summarize",
                             extra={"identity": ident})  # fmt: skip
        t2 = time.perf_counter()
        await guard.on_request(ctx)
        guard_s.append(time.perf_counter() - t2)
        again.append(t1 - t0)
    show("delegated token verify, repeated (cached)", again)
    show("delegation guard on_request", guard_s)
    await auth.aclose()


async def over_http(tmp: Path, n: int) -> None:
    dev = DevIssuer(tmp)
    agents = await serve_agents([AgentSpec("echo")])
    holder: dict[str, Gateway] = {}

    def factory(base_url: str) -> Gateway:
        raw: dict[str, Any] = {
            "public_url": base_url,
            "registry": {"url": f"sqlite:///{tmp}/registry.db"},
            "gateway_key": {"path": str(tmp / "gateway-key.pem")},
            "audit": {"url": f"sqlite:///{tmp / 'audit.db'}",
                      "key_path": str(tmp / "audit-key.pem"),
                      "state_file": str(tmp / "audit.checkpoint")},
            "agents": [{"id": "echo", "card_url": agents.urls["echo"], "activate": True}],
            "identity": {"issuers": [dev.issuer_config()], "exchange": {"enabled": True}},
            "logging": {"access_log": False},
        }  # fmt: skip
        holder["app"] = create_app(parse_config(raw))
        return holder["app"]

    gw = await serve_apps([("gateway", factory, 0)])
    url = gw.urls["gateway"] + "/oauth2/token"
    data = form(dev, dev.mint("uma", roles=["user"]), dev.mint("sup", roles=["delegator"]))
    samples: list[float] = []
    try:
        async with aiohttp.ClientSession() as http:
            for i in range(n + 20):
                t0 = time.perf_counter()
                async with http.post(url, data=data) as r:
                    assert r.status == 200, await r.text()
                    await r.read()
                if i >= 20:  # warm-up: connection, caches
                    samples.append(time.perf_counter() - t0)
    finally:
        await gw.close()
        await agents.close()
    show("POST /oauth2/token over HTTP, SQLite audit (durable)", samples, "ms", 1e3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--http", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        asyncio.run(in_process(Path(a), args.n))
        asyncio.run(over_http(Path(b), args.http))


if __name__ == "__main__":
    main()
