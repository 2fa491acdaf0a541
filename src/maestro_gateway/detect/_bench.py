"""Cost of detection and enforcement, and the detectors on synthetic traffic.

Run: ``.venv/bin/python -m maestro_gateway.detect._bench`` (figures in docs/anomaly-detection.md).

Measures (p50/p99 per call, CPython, one core): the data-plane hook (build + queue one
observation), the enforce guard with nothing enforced and with 10,000 blocked principals, and
the background detectors per observation. Then runs a seeded synthetic day: 2,000 ordinary
principals (Poisson traffic, 1% of their requests denied by false positives, a few new agents)
plus 20 probers (bursts of WAF denials) and 20 token thieves, and reports per finding type how
many findings landed on attackers vs. ordinary principals. The traffic is synthetic (no corpus
exists for behaviour), so these are sanity figures, not field precision.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import time
from collections import Counter
from collections.abc import Callable

from maestro_gateway.context import RequestContext
from maestro_gateway.detect.config import DetectConfig
from maestro_gateway.detect.engine import DetectionEngine
from maestro_gateway.detect.model import Observation
from maestro_gateway.detect.observe import RequestObserver, remember
from maestro_gateway.guards.enforce import EnforceGuard
from maestro_gateway.playbooks.enforcement import EnforcementState
from maestro_gateway.reply import Call


def _percentiles(samples: list[float]) -> str:
    samples.sort()
    p50 = samples[len(samples) // 2] * 1e6
    p99 = samples[int(len(samples) * 0.99)] * 1e6
    return f"p50 {p50:.2f} µs  p99 {p99:.2f} µs"


def _time(fn: Callable[[], object], n: int = 20_000) -> str:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return _percentiles(out)


def costs() -> None:
    engine = DetectionEngine(DetectConfig(queue_size=10_000_000))
    hook = RequestObserver(engine)
    ctx = RequestContext("r", "echo", "SendMessage", {}, client_addr="10.0.0.1")
    call = Call("r", "jsonrpc", 0.0, agent="echo", method="SendMessage")
    scope = {"client": ("10.0.0.1", 1234), "headers": [(b"authorization", b"Bearer abc")]}

    def one() -> None:
        remember(ctx)
        hook(call, scope)

    print(f"hook (observe one finished request): {_time(one)}")
    state = EnforcementState()
    guard = EnforceGuard(state)
    loop = asyncio.new_event_loop()

    def check() -> None:
        coro = guard.on_request(ctx)
        with contextlib.suppress(StopIteration):
            coro.send(None)

    print(f"enforce guard, nothing enforced:    {_time(check)}")
    for i in range(10_000):
        state.set("principal", f"addr:10.1.{i // 250}.{i % 250}", None)
    print(f"enforce guard, 10,000 blocked:      {_time(check)}")
    loop.close()
    rng = random.Random(7)
    observations = [
        Observation(
            at=1_764_000_000 + i * 0.01,
            principal=f"p{rng.randrange(5000)}",
            source=f"10.0.{rng.randrange(20)}.{rng.randrange(250)}",
            agent=f"agent{rng.randrange(30)}",
            verdict="deny" if rng.random() < 0.02 else "allow",
            token_id=f"t{rng.randrange(5000)}",
        )
        for i in range(50_000)
    ]
    gc.freeze()  # the 50,000 prepared observations are not the detectors' cost
    det = DetectionEngine(DetectConfig())
    it = iter(observations)
    print(f"detectors per observation (all six): {_time(lambda: det.process(next(it)), 50_000)}")


def synthetic_day(seed: int = 11) -> None:
    rng = random.Random(seed)
    t0 = 1_764_000_000.0 - 7 * 86400
    cfg = DetectConfig(first_access={"warmup_s": 86400, "min_history": 20})
    engine = DetectionEngine(cfg)
    events: list[Observation] = []
    for p in range(2000):
        rate = rng.uniform(0.5, 6) / 3600  # requests per second
        agents = [f"agent{rng.randrange(40)}" for _ in range(3)]
        src, tok = f"10.1.{p // 250}.{p % 250}", f"tok-{p}"
        t = t0 + rng.uniform(0, 3600)
        while t < t0 + 8 * 86400:
            t += rng.expovariate(rate)
            agent = rng.choice(agents) if rng.random() > 0.002 else f"agent{rng.randrange(40)}"
            denied = rng.random() < 0.01
            events.append(
                Observation(
                    t,
                    f"user{p}",
                    src,
                    agent,
                    verdict="deny" if denied else "allow",
                    guard="waf" if denied else "",
                    token_id=tok,
                )
            )
    attack_start = t0 + 7.5 * 86400
    for a in range(20):  # probers: 30 variants in 3 minutes, mostly refused
        t = attack_start + a * 600
        for _ in range(30):
            t += rng.uniform(1, 10)
            denied = rng.random() < 0.8
            events.append(
                Observation(
                    t,
                    f"prober{a}",
                    f"10.9.0.{a}",
                    "agent1",
                    verdict="deny" if denied else "allow",
                    guard="waf" if denied else "",
                )
            )
    for w in range(300):  # office workers: weekdays 9-17 UTC, ~6 requests an hour
        src = f"10.2.{w // 250}.{w % 250}"
        for d in range(8):
            day = t0 - 16 * 3600 + d * 86400  # t0 is a Monday 16:00 UTC
            if d % 7 >= 5:
                continue
            t = day + 9 * 3600
            while True:
                t += rng.expovariate(6 / 3600)
                if t >= day + 17 * 3600:
                    break
                events.append(Observation(t, f"office{w}", src, "agent3", token_id=f"otok-{w}"))
    for a in range(20):  # intruders: an office worker's account at 04:00 from elsewhere
        t = attack_start + a * 60
        events.append(Observation(t, f"office{a * 7}", f"10.7.0.{a}", "agent3"))
    for a in range(20):  # thieves: a victim's token from a new address
        victim = rng.randrange(2000)
        t = attack_start + a * 900 + 5
        events.append(
            Observation(t, f"thief{a}", f"10.8.0.{a}", "agent2", token_id=f"tok-{victim}")
        )
    events.sort(key=lambda o: o.at)
    hits: Counter[tuple[str, str]] = Counter()
    caught: set[tuple[str, str]] = set()
    for o in events:
        for f in engine.process(o):
            attack = f.principal.startswith(("prober", "thief")) or (f.source or "").startswith(
                "10.7."
            )
            who = "attacker" if attack else "ordinary"
            hits[(f.type, who)] += 1
            caught.add((f.type, f.principal if who == "ordinary" else f"{f.principal}@{f.source}"))
    print(
        f"synthetic 8 days + attacks: {len(events)} requests, 2000 round-the-clock users, "
        f"300 office-hours users, 20 probers, 20 token thieves, 20 intruders (seed {seed})"
    )
    for kind in sorted({k for k, _ in hits}):
        print(
            f"  {kind:<16} on attackers {hits[(kind, 'attacker')]:>5}   "
            f"on ordinary principals {hits[(kind, 'ordinary')]:>5}"
        )
    probers = sum(("denial_burst", f"prober{a}@10.9.0.{a}") in caught for a in range(20))
    thieves = sum(("token_reuse", f"thief{a}@10.8.0.{a}") in caught for a in range(20))
    intruders = sum(("off_hours", f"office{a * 7}@10.7.0.{a}") in caught for a in range(20))
    for kind in ("denial_burst", "off_hours", "first_access"):
        flagged = {p for k, p in caught if k == kind and "@" not in p}
        print(f"  ordinary principals with a {kind}: {len(flagged)}/2300")
    print(
        f"  caught: probers (denial_burst) {probers}/20, thieves (token_reuse) {thieves}/20, "
        f"intruders at 04:00 (off_hours) {intruders}/20"
    )


if __name__ == "__main__":
    costs()
    synthetic_day()
