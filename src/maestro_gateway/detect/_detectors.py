"""The six detectors. Each turns an Observation into zero or more (cooldown key, Finding).

State per detector is a BoundedMap (LRU + idle TTL) keyed by principal, agent or token, so
memory is capped by ``max_principals`` / ``max_agents`` / ``max_tokens`` whatever the traffic.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from maestro_gateway.detect._state import BoundedMap, Ewma, RateState, Window
from maestro_gateway.detect.config import DetectConfig
from maestro_gateway.detect.model import Finding, Observation, logistic, saturating

Emitted = list[tuple[str, Finding]]
_MAX_GAP_BUCKETS = 200  # zeros fed for idle buckets; (1-alpha)^200 is 0 for any useful alpha


def _top(counts: dict[str, int], n: int = 10) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n])


class RateDetector:
    """Requests per bucket vs. the EWMA baseline of earlier buckets, per principal and agent."""

    def __init__(self, cfg: DetectConfig) -> None:
        self.cfg = cfg.rate
        self.principals: BoundedMap[RateState] = BoundedMap(cfg.max_principals, cfg.idle_ttl_s)
        self.agents: BoundedMap[RateState] = BoundedMap(cfg.max_agents, cfg.idle_ttl_s)

    def observe(self, obs: Observation) -> Emitted:
        cfg, out = self.cfg, []
        bucket = int(obs.at // cfg.bucket_s)
        scopes = [("principal", obs.principal, self.principals)]
        if obs.status != 404:
            scopes.append(("agent", obs.agent, self.agents))
        for scope, key, states in scopes:
            st = states.get(key, obs.at, lambda: RateState(Ewma(cfg.alpha)))
            st.add(bucket, _MAX_GAP_BUCKETS)
            if st.flagged or st.ewma.n < cfg.min_buckets or st.count < cfg.min_count:
                continue
            z = st.ewma.z(st.count, cfg.min_std)
            if z < cfg.z_threshold:
                continue
            st.flagged = True  # once per bucket
            evidence = {
                "scope": scope,
                "count": st.count,
                "bucket_s": cfg.bucket_s,
                "baseline_mean": round(st.ewma.mean, 3),
                "baseline_std": round(st.ewma.var**0.5, 3),
                "z": round(z, 2),
                "z_threshold": cfg.z_threshold,
                "buckets_seen": st.ewma.n,
            }
            finding = Finding(
                "rate_anomaly",
                obs.principal if scope == "principal" else "",
                logistic(z - cfg.z_threshold),
                evidence,
                obs.at,
                agent=obs.agent if scope == "agent" else None,
                source=obs.source if scope == "principal" else None,
            )
            out.append((f"{scope}:{key}", finding))
        return out


class DenialBurstDetector:
    """Denials (any guard: WAF, firewall, policy, limits) from one principal in a window."""

    def __init__(self, cfg: DetectConfig) -> None:
        self.cfg = cfg.denials
        self.windows: BoundedMap[Window] = BoundedMap(cfg.max_principals, cfg.idle_ttl_s)
        self._cap = max(64, self.cfg.threshold * 50)

    def observe(self, obs: Observation) -> Emitted:
        cfg = self.cfg
        win = self.windows.get(obs.principal, obs.at, lambda: Window(cfg.window_s, self._cap))
        label = f"{obs.agent}\x1f{obs.guard or '-'}\x1f{obs.rule}" if obs.denied else ""
        win.add(obs.at, label)
        if not obs.denied:
            return []
        total = len(win)
        denials = total - win.labels.get("", 0)
        if denials < cfg.threshold:
            return []
        guards: dict[str, int] = {}
        rules: dict[str, int] = {}
        agents: dict[str, int] = {}
        for lab, n in win.labels.items():
            if not lab:
                continue
            agent, guard, rule = lab.split("\x1f")
            guards[guard] = guards.get(guard, 0) + n
            agents[agent] = agents.get(agent, 0) + n
            for r in filter(None, rule.split(",")):
                rules[r] = rules.get(r, 0) + n
        ratio = denials / total
        evidence = {
            "denials": denials,
            "requests": total,
            "denial_ratio": round(ratio, 3),
            "window_s": cfg.window_s,
            "threshold": cfg.threshold,
            "guards": _top(guards),
            "rules": _top(rules),
            "distinct_rules": len(rules),
            "agents": _top(agents),
            "last_request_id": obs.request_id,
        }
        confidence = saturating(denials / cfg.threshold) * (0.5 + 0.5 * ratio)
        finding = Finding(
            "denial_burst",
            obs.principal,
            confidence,
            evidence,
            obs.at,
            agent=obs.agent,
            source=obs.source,
            token_id=obs.token_id,
        )
        return [(obs.principal, finding)]


@dataclass(slots=True)
class _Known:
    first_at: float
    n: int = 0
    targets: OrderedDict[str, None] = field(default_factory=OrderedDict)


class FirstAccessDetector:
    """An established principal reaching an agent or skill it never used before."""

    def __init__(self, cfg: DetectConfig) -> None:
        self.cfg = cfg.first_access
        self.principals: BoundedMap[_Known] = BoundedMap(cfg.max_principals, cfg.idle_ttl_s)
        self.started: float | None = None

    def observe(self, obs: Observation) -> Emitted:
        if obs.status == 404:  # a missing agent is enumeration (distinct_agents), not access
            return []
        cfg = self.cfg
        if self.started is None:
            self.started = obs.at
        known = self.principals.get(obs.principal, obs.at, lambda: _Known(obs.at))
        targets = [f"agent:{obs.agent}"]
        if obs.skill:
            targets.append(f"skill:{obs.agent}/{obs.skill}")
        new = [t for t in targets if t not in known.targets]
        warm = obs.at - self.started >= cfg.warmup_s and known.n >= cfg.min_history
        agents_known = sum(1 for t in known.targets if t.startswith("agent:"))
        known.n += 1
        for t in new:
            known.targets[t] = None
            if len(known.targets) > cfg.max_targets:
                known.targets.popitem(last=False)
        if not new or not warm:
            return []
        # Surprise grows with the principal's history and shrinks with how many agents it
        # already uses (a principal of one agent reaching a second is the odd one).
        history = saturating(known.n / (5 * cfg.min_history))
        spread = 1.0 / (1.0 + 0.25 * max(agents_known - 1, 0))
        out: Emitted = []
        for t in new:
            weight = 0.9 if t.startswith("agent:") else 0.7
            evidence = {
                "target": t,
                "principal_requests": known.n - 1,
                "known_agents": agents_known,
                "known_targets": len(known.targets) - len(new),
                "first_seen_at": known.first_at,
            }
            finding = Finding(
                "first_access",
                obs.principal,
                weight * history * spread,
                evidence,
                obs.at,
                agent=obs.agent,
                source=obs.source,
                token_id=obs.token_id,
            )
            out.append((f"{obs.principal}|{t}", finding))
        return out


@dataclass(slots=True)
class _Hours:
    first_at: float
    counts: list[int] = field(default_factory=lambda: [0] * 168)
    total: int = 0


class OffHoursDetector:
    """Access in an hour of the week the principal's history says it (almost) never works."""

    _DECAY_AT = 50_000

    def __init__(self, cfg: DetectConfig) -> None:
        self.cfg = cfg.off_hours
        self.zone = ZoneInfo(self.cfg.timezone)
        self.principals: BoundedMap[_Hours] = BoundedMap(cfg.max_principals, cfg.idle_ttl_s)

    def hour_of_week(self, at: float) -> int:
        local = datetime.fromtimestamp(at, self.zone)
        return local.weekday() * 24 + local.hour

    def observe(self, obs: Observation) -> Emitted:
        cfg = self.cfg
        hist = self.principals.get(obs.principal, obs.at, lambda: _Hours(obs.at))
        h = self.hour_of_week(obs.at)
        c = hist.counts
        out: Emitted = []
        if hist.total >= cfg.min_events and obs.at - hist.first_at >= cfg.min_span_s:
            # Laplace-smoothed share of the hour and its two neighbours (so 9:05 is not odd
            # for someone who works 8-9); the neighbour sums add up to 3 x total.
            near = c[(h - 1) % 168] + c[h] + c[(h + 1) % 168]
            p = (near + 1) / (3 * hist.total + 168)
            active = sum(1 for x in c if x) / 168 if p < cfg.max_probability else 1.0
            if active <= cfg.max_active_share:
                usual = sorted(range(168), key=lambda i: -c[i])[:5]
                evidence = {
                    "hour_of_week": h,
                    "timezone": cfg.timezone,
                    "probability": round(p, 6),
                    "max_probability": cfg.max_probability,
                    "history_events": hist.total,
                    "history_days": round((obs.at - hist.first_at) / 86400, 1),
                    "active_share": round(active, 3),
                    "usual_hours_of_week": usual,
                }
                confidence = (1 - p / cfg.max_probability) * saturating(hist.total / cfg.min_events)
                finding = Finding(
                    "off_hours",
                    obs.principal,
                    confidence,
                    evidence,
                    obs.at,
                    agent=obs.agent,
                    source=obs.source,
                    token_id=obs.token_id,
                )
                out.append((f"{obs.principal}|{h}", finding))
        c[h] += 1
        hist.total += 1
        if hist.total >= self._DECAY_AT:  # old habits fade: halve, keeping the shape
            hist.counts = [x // 2 for x in c]
            hist.total = sum(hist.counts)
        return out


class DistinctAgentsDetector:
    """One principal calling many distinct agents (missing ones included) in a short window."""

    def __init__(self, cfg: DetectConfig) -> None:
        self.cfg = cfg.distinct_agents
        self.windows: BoundedMap[Window] = BoundedMap(cfg.max_principals, cfg.idle_ttl_s)
        self._cap = self.cfg.threshold * 32

    def observe(self, obs: Observation) -> Emitted:
        cfg = self.cfg
        win = self.windows.get(obs.principal, obs.at, lambda: Window(cfg.window_s, self._cap))
        win.add(obs.at, obs.agent)
        distinct = len(win.labels)
        if distinct < cfg.threshold:
            return []
        evidence = {
            "distinct_agents": distinct,
            "requests": len(win),
            "window_s": cfg.window_s,
            "threshold": cfg.threshold,
            "agents": sorted(win.labels)[:32],
        }
        finding = Finding(
            "distinct_agents",
            obs.principal,
            saturating(distinct / cfg.threshold),
            evidence,
            obs.at,
            agent=obs.agent,
            source=obs.source,
            token_id=obs.token_id,
        )
        return [(obs.principal, finding)]


class TokenReuseDetector:
    """A token id (``jti`` or bearer hash) presented from a source it was never seen from."""

    def __init__(self, cfg: DetectConfig) -> None:
        self.cfg = cfg.token_reuse
        self.tokens: BoundedMap[OrderedDict[str, float]] = BoundedMap(
            cfg.max_tokens, self.cfg.ttl_s
        )

    def observe(self, obs: Observation) -> Emitted:
        if not obs.token_id:
            return []
        sources = self.tokens.get(obs.token_id, obs.at, OrderedDict)
        out: Emitted = []
        if sources and obs.source not in sources:
            last_other = max(sources.values())
            gap = max(obs.at - last_other, 0.0)
            # Two addresses using one token at nearly the same time is strong evidence of a
            # copied token; a token that already roams between many addresses is less odd.
            confidence = (0.5 + 0.45 * 2.0 ** (-gap / 3600.0)) / (1.0 + 0.5 * (len(sources) - 1))
            evidence = {
                "new_source": obs.source,
                "known_sources": list(sources)[-8:],
                "seconds_since_other_source": round(gap, 3),
            }
            finding = Finding(
                "token_reuse",
                obs.principal,
                confidence,
                evidence,
                obs.at,
                agent=obs.agent,
                source=obs.source,
                token_id=obs.token_id,
            )
            out.append((f"{obs.token_id}|{obs.source}", finding))
        sources[obs.source] = obs.at
        sources.move_to_end(obs.source)
        if len(sources) > self.cfg.max_sources:
            sources.popitem(last=False)
        return out
