"""C5/C15 behavioural detectors, driven by observations with explicit times (no sleeps)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from maestro_gateway.context import RequestContext
from maestro_gateway.detect import DetectConfig, Finding, Observation
from maestro_gateway.detect.engine import DetectionEngine
from maestro_gateway.detect.model import logistic
from maestro_gateway.detect.observe import RequestObserver, remember
from maestro_gateway.principal import principal_of, token_id_from_header, token_id_of
from maestro_gateway.reply import Call
from maestro_gateway.types import Verdict

T0 = 1_764_000_000.0  # 2025-11-24 16:00 UTC, a Monday


def engine(**cfg: Any) -> DetectionEngine:
    return DetectionEngine(DetectConfig.model_validate(cfg), clock=lambda: T0)


def obs(at: float, principal: str = "alice", agent: str = "echo", **kw: Any) -> Observation:
    kw.setdefault("source", "10.0.0.1")
    return Observation(at=at, principal=principal, agent=agent, **kw)


def run(e: DetectionEngine, observations: list[Observation]) -> list[Finding]:
    out: list[Finding] = []
    for o in observations:
        out.extend(e.process(o))
    return out


def of_type(findings: list[Finding], kind: str) -> list[Finding]:
    return [f for f in findings if f.type == kind]


# --- EWMA rate baselines ------------------------------------------------------------------


def steady(minutes: int, per_minute: int, principal: str = "alice") -> list[Observation]:
    return [
        obs(T0 + m * 60 + i * (60 / per_minute), principal)
        for m in range(minutes)
        for i in range(per_minute)
    ]


def test_rate_spike_over_the_ewma_baseline_is_a_finding() -> None:
    """A principal at 5 requests/min for 30 min that sends 120 in one minute gets a z-score
    finding with its baseline as evidence and a confidence above one half."""
    e = engine()
    history = steady(30, 5)
    assert of_type(run(e, history), "rate_anomaly") == []
    burst = [obs(T0 + 30 * 60 + i * 0.4) for i in range(120)]
    found = of_type(run(e, burst), "rate_anomaly")
    mine = [f for f in found if f.evidence["scope"] == "principal"]
    assert len(mine) == 1, found
    f = mine[0]
    assert f.principal == "alice"
    assert f.evidence["z"] >= 4
    assert f.evidence["baseline_mean"] == pytest.approx(5, abs=0.5)
    assert 0.5 <= f.confidence <= 1
    agent = [x for x in found if x.evidence["scope"] == "agent"]
    assert agent
    assert agent[0].agent == "echo"
    assert agent[0].principal == ""


def test_steady_rate_raises_no_rate_finding() -> None:
    """Traffic at its usual rate, even a high one, is not an anomaly."""
    e = engine()
    assert of_type(run(e, steady(40, 30)), "rate_anomaly") == []


def test_rate_needs_a_baseline_first() -> None:
    """A brand-new principal's first busy minute is not compared to a baseline it lacks."""
    e = engine()
    burst = [obs(T0 + i * 0.2) for i in range(200)]
    assert of_type(run(e, burst), "rate_anomaly") == []


def test_rate_confidence_is_derived_from_the_z_score() -> None:
    """The same spike is less surprising for a principal whose rate already varies: lower z,
    lower confidence, and the confidence is logistic(z - threshold)."""
    regular = steady(30, 5)
    varying = [
        obs(T0 + m * 60 + i * (60 / n))
        for m in range(30)
        for n in [2 if m % 2 else 8]
        for i in range(n)
    ]
    results = []
    for history in (regular, varying):
        e = engine()
        run(e, history)
        spike = [obs(T0 + 30 * 60 + i * 0.5) for i in range(60)]
        found = [f for f in of_type(run(e, spike), "rate_anomaly") if f.principal]
        assert len(found) == 1
        results.append(found[0])
    assert results[1].evidence["z"] < results[0].evidence["z"]
    assert results[1].confidence < results[0].confidence
    for f in results:
        assert f.confidence == pytest.approx(logistic(f.evidence["z"] - 4), abs=0.01)


# --- denial bursts ------------------------------------------------------------------------


def deny(at: float, principal: str = "mallory", rule: str = "942100") -> Observation:
    return obs(at, principal, verdict="deny", guard="waf", rule=rule, source="10.6.6.6")


def test_burst_of_waf_denials_is_a_finding_with_evidence() -> None:
    """Six WAF denials in a minute give a denial_burst naming the guard, rules and ratio."""
    e = engine()
    found = of_type(run(e, [deny(T0 + i, rule=f"94210{i}") for i in range(6)]), "denial_burst")
    assert len(found) == 1
    f = found[0]
    assert f.principal == "mallory"
    assert f.source == "10.6.6.6"
    ev = f.evidence
    assert ev["denials"] == 5
    assert ev["denial_ratio"] == 1.0
    assert ev["guards"] == {"waf": 5}
    assert ev["distinct_rules"] == 5
    assert 0.6 <= f.confidence <= 1


def test_few_or_spread_out_denials_raise_nothing() -> None:
    """Four denials, or many denials spread over more than the window, are not a burst."""
    e = engine()
    assert run(e, [deny(T0 + i) for i in range(4)]) == []
    e = engine()
    assert of_type(run(e, [deny(T0 + i * 61) for i in range(20)]), "denial_burst") == []


def test_denial_confidence_reflects_count_and_ratio() -> None:
    """A principal whose requests are mostly allowed gets a lower confidence than a prober."""
    prober, mixed = engine(cooldown_s=0), engine(cooldown_s=0)
    p = run(prober, [deny(T0 + i * 0.1) for i in range(10)])
    m_obs: list[Observation] = []
    for i in range(10):
        m_obs += [deny(T0 + i * 0.1), obs(T0 + i * 0.1 + 0.05, "mallory")]
    m = run(mixed, m_obs)
    assert max(f.confidence for f in p) > max(f.confidence for f in m)


# --- first-time access --------------------------------------------------------------------


def test_first_access_is_silent_during_warm_up() -> None:
    """A fresh gateway does not report every principal's first access as a finding."""
    e = engine()
    seq = [obs(T0 + i, f"user{i % 5}", f"agent{i % 7}") for i in range(200)]
    assert of_type(run(e, seq), "first_access") == []


def test_established_principal_reaching_a_new_agent_is_a_finding() -> None:
    """After warm-up, a principal with history reaching an agent or skill it never used is
    reported; a known agent is not."""
    e = engine()
    history = [obs(T0 + i * 100, agent="echo", skill="chat") for i in range(60)]
    assert of_type(run(e, history), "first_access") == []
    later = T0 + 7200
    assert run(e, [obs(later, agent="echo", skill="chat")]) == []
    found = of_type(run(e, [obs(later + 1, agent="payroll", skill="pay")]), "first_access")
    assert {f.evidence["target"] for f in found} == {"agent:payroll", "skill:payroll/pay"}
    assert all(0 < f.confidence <= 0.9 for f in found)
    assert found[0].evidence["principal_requests"] == 61


def test_new_principal_after_warm_up_is_not_reported_until_known() -> None:
    """A principal without history has no usual set of agents to deviate from."""
    e = engine()
    run(e, [obs(T0, "seed")])
    assert (
        of_type(run(e, [obs(T0 + 7200 + i, "newbie", f"a{i}") for i in range(10)]), "first_access")
        == []
    )


# --- outside usual hours ------------------------------------------------------------------


def office_hours(days: int) -> list[Observation]:
    out = []
    for d in range(days):
        day = T0 - 16 * 3600 + d * 86400  # midnight UTC of each day from Monday
        if (d % 7) >= 5:
            continue
        out += [obs(day + h * 3600 + m * 60, "bob") for h in range(9, 17) for m in range(0, 60, 20)]
    return out


def test_access_at_an_unusual_hour_is_a_finding() -> None:
    """Bob works 9-17 on weekdays for two weeks; a request at 03:00 on Sunday is reported."""
    e = engine()
    history = office_hours(14)
    assert of_type(run(e, history), "off_hours") == []
    sunday_3am = T0 - 16 * 3600 + 13 * 86400 + 3 * 3600 + 7 * 86400
    found = of_type(run(e, [obs(sunday_3am, "bob")]), "off_hours")
    assert len(found) == 1
    ev = found[0].evidence
    assert ev["hour_of_week"] == 6 * 24 + 3
    assert ev["probability"] < 0.005
    assert found[0].confidence > 0.5


def test_access_in_usual_hours_or_without_history_is_not() -> None:
    """A weekday 10:00 request is usual; a principal with too little history is never judged."""
    e = engine()
    run(e, office_hours(14))
    tuesday_10 = T0 - 16 * 3600 + 15 * 86400 + 10 * 3600
    assert of_type(run(e, [obs(tuesday_10, "bob")]), "off_hours") == []
    e = engine()
    few = [obs(T0 + i * 3600, "carol") for i in range(20)]
    assert of_type(run(e, [*few, obs(T0 + 5 * 86400 + 3 * 3600, "carol")]), "off_hours") == []


# --- many distinct agents -----------------------------------------------------------------


def test_many_distinct_agents_in_a_window_is_a_finding() -> None:
    """Calling eight different agents (missing ones included) within a minute is reported."""
    e = engine()
    seq = [obs(T0 + i, "scout", f"agent-{i}", status=404) for i in range(8)]
    found = of_type(run(e, seq), "distinct_agents")
    assert len(found) == 1
    assert found[0].evidence["distinct_agents"] == 8
    e = engine()
    few = [obs(T0 + i, "scout", f"agent-{i % 7}") for i in range(50)]
    assert of_type(run(e, few), "distinct_agents") == []


# --- token reuse --------------------------------------------------------------------------


def test_token_from_a_new_source_is_a_finding() -> None:
    """A token seen from 10.0.0.1 and then from 10.9.9.9 is reported with both sources;
    the same token from its usual source is not."""
    e = engine()
    tok = "sha256:abc"
    assert run(e, [obs(T0 + i, token_id=tok, source="10.0.0.1") for i in range(5)]) == []
    found = of_type(run(e, [obs(T0 + 10, token_id=tok, source="10.9.9.9")]), "token_reuse")
    assert len(found) == 1
    f = found[0]
    assert f.token_id == tok
    assert f.source == "10.9.9.9"
    assert f.evidence["known_sources"] == ["10.0.0.1"]
    assert f.confidence > 0.9  # used from two places within seconds


def test_token_reuse_confidence_falls_with_the_gap() -> None:
    """A new source a day after the last use is less suspicious than one seconds after."""
    e = engine()
    run(e, [obs(T0, token_id="t1", source="a"), obs(T0, token_id="t2", source="a")])
    near = run(e, [obs(T0 + 5, token_id="t1", source="b")])[0].confidence
    far = run(e, [obs(T0 + 86000, token_id="t2", source="b")])[0].confidence
    assert near > far


# --- the engine ---------------------------------------------------------------------------


def test_state_is_bounded_by_the_principal_cap() -> None:
    """Ten thousand principals seen with max_principals=100 leave at most 100 in every
    per-principal map (least recently used evicted)."""
    e = engine(max_principals=100)
    run(e, [obs(T0 + i * 0.01, f"p{i}") for i in range(10_000)])
    maps = [
        m
        for det in e.detectors
        for name in ("principals", "windows")
        if (m := getattr(det, name, None)) is not None
    ]
    assert len(maps) == 5
    assert all(len(m) == 100 and m.evicted >= 9_900 for m in maps)


def test_cooldown_suppresses_repeats_of_one_finding() -> None:
    """A continuing burst is reported again within the cooldown only when its confidence has
    grown by 0.1 or more (so it can still reach a playbook's threshold), not per request."""
    e = engine(cooldown_s=60)
    found = of_type(run(e, [deny(T0 + i * 0.5) for i in range(100)]), "denial_burst")
    confidences = [f.confidence for f in found]
    assert 2 <= len(found) <= 5
    assert all(b - a >= 0.1 for a, b in itertools.pairwise(confidences))
    found = of_type(run(e, [deny(T0 + 200 + i * 0.5) for i in range(6)]), "denial_burst")
    assert len(found) == 1  # the cooldown is over: a new burst is reported again


async def test_queue_is_bounded_and_sinks_are_isolated() -> None:
    """observe() never blocks: beyond queue_size it drops and counts; a failing sink does not
    keep the next sink from receiving findings."""
    e = engine(queue_size=10)
    for i in range(25):
        e.observe(deny(T0 + i * 0.1))
    assert (len(e.queue), e.dropped) == (10, 15)
    got: list[Finding] = []

    async def broken(f: Finding) -> None:
        raise RuntimeError("sink down")

    async def keep(f: Finding) -> None:
        got.append(f)

    e.on_finding += [broken, keep]
    e.start()
    await asyncio.wait_for(e.idle(), 5)
    await e.stop()
    assert got
    assert {f.type for f in got} == {"denial_burst"}
    assert list(e.recent) == got


# --- the data-plane hook and the principal rule ------------------------------------------


def test_principal_and_token_id_rules() -> None:
    """The principal is ctx.extra's when set, else addr:<source>; the token id is the jti,
    else a SHA-256 prefix of the bearer token (never the token itself)."""
    ctx = RequestContext("r", "echo", "SendMessage", {}, client_addr="10.1.2.3")
    assert principal_of(ctx) == "addr:10.1.2.3"
    assert token_id_of(ctx) is None
    ctx.headers["authorization"] = "Bearer s3cret-token"
    tid = token_id_of(ctx)
    assert tid is not None
    assert tid.startswith("sha256:")
    assert "s3cret" not in tid
    assert tid == token_id_from_header("bearer  s3cret-token")
    assert token_id_from_header("Basic abc") is None
    ctx.extra.update(principal="alice@example", token_id="jti-1")
    assert (principal_of(ctx), token_id_of(ctx)) == ("alice@example", "jti-1")


def test_hook_turns_a_finished_request_into_an_observation() -> None:
    """The hook reads the remembered context: principal, skill, the stopping guard and rule,
    and the token id hashed from the Authorization header."""
    e = engine()
    hook = RequestObserver(e)
    ctx = RequestContext("r1", "echo", "SendMessage", {}, client_addr="10.1.1.1", skill_id="s")
    ctx.extra["stopped_by"] = Verdict.deny(403, -32091, "blocked", "waf", rule="942100")
    remember(ctx)
    call = Call("r1", "jsonrpc", 0.0, agent="echo", method="SendMessage", verdict="deny")
    scope = {"client": ("10.1.1.1", 5000), "headers": [(b"authorization", b"Bearer t0k")]}
    hook(call, scope)
    o = e.queue[0]
    assert (o.principal, o.source, o.agent, o.skill) == ("addr:10.1.1.1", "10.1.1.1", "echo", "s")
    assert (o.verdict, o.guard, o.rule) == ("deny", "waf", "942100")
    assert o.token_id == token_id_from_header("Bearer t0k")
    assert o.at == T0
    hook(Call("r2", "jsonrpc", 0.0), {"client": ("10.2.2.2", 1), "path": "/agents/ghost"})
    o = e.queue[1]  # refused before routing: no context, agent from the path
    assert (o.principal, o.agent, o.token_id) == ("addr:10.2.2.2", "ghost", None)


def test_detect_configuration_names_bad_fields() -> None:
    """A bad detector setting (unknown time zone, negative window, unknown key) is a
    configuration error naming the field."""
    from maestro_gateway.config import ConfigError, parse_config

    cases = [
        ({"off_hours": {"timezone": "Mars/Olympus"}}, r"detect\.off_hours\.timezone"),
        ({"denials": {"window_s": -1}}, r"detect\.denials\.window_s"),
        ({"rate": {"zscore": 3}}, r"detect\.rate\.zscore"),
    ]
    for patch, field in cases:
        with pytest.raises(ConfigError, match=field):
            parse_config({"detect": patch})
