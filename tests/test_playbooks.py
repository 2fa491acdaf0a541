"""C21 response playbooks: triggers, actions, dry run, caps, revert, audit, and the enforce
guard — unit tests with an injected clock and an audit capture (no network, no sleeps)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from maestro_gateway.audit._store import AuditUnavailable
from maestro_gateway.audit.recorder import AuditRecorder
from maestro_gateway.config import AuditConfig, ConfigError, parse_config
from maestro_gateway.context import RequestContext
from maestro_gateway.detect import Finding
from maestro_gateway.guards.enforce import ENFORCED, EnforceGuard
from maestro_gateway.playbooks import EnforcementState, PlaybooksConfig
from maestro_gateway.playbooks.engine import PlaybookEngine, RevertError
from maestro_gateway.types import VerdictKind

T0 = 1_764_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class AuditCapture(AuditRecorder):
    """Records critical events in memory; ``fail`` makes the log unavailable."""

    def __init__(self) -> None:
        super().__init__(AuditConfig(enabled=False))
        self.events: list[dict[str, Any]] = []
        self.fail = False

    async def critical(self, event: dict[str, Any]) -> int | None:
        if self.fail:
            raise AuditUnavailable("disk full")
        self.events.append(event)
        return len(self.events)


def playbook(name: str = "block-probers", **kw: Any) -> dict[str, Any]:
    pb: dict[str, Any] = {
        "name": name,
        "trigger": {"findings": ["denial_burst"], "min_confidence": 0.7},
        "actions": [{"type": "block_principal", "duration_s": 600}],
    }
    pb.update(kw)
    return pb


def build(
    *pbs: dict[str, Any], **cfg: Any
) -> tuple[PlaybookEngine, EnforcementState, AuditCapture, Clock]:
    clock = Clock()
    state = EnforcementState(clock)
    audit = AuditCapture()
    config = PlaybooksConfig.model_validate({"playbooks": list(pbs or [playbook()]), **cfg})
    return PlaybookEngine(config, state, audit, None, clock), state, audit, clock


def finding(
    principal: str = "addr:10.6.6.6", kind: str = "denial_burst", conf: float = 0.9, **kw: Any
) -> Finding:
    kw.setdefault("source", principal.removeprefix("addr:"))
    return Finding(kind, principal, conf, {"denials": 9}, T0, **kw)  # type: ignore[arg-type]


# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"actions": [{"type": "launch_missiles"}]}, "playbooks.playbooks.0.actions.0"),
        ({"trigger": {"findings": ["denial_burst"], "min_confidence": 1.5}}, "min_confidence"),
        ({"trigger": {"findings": ["not_a_finding"]}}, "trigger.findings.0"),
        ({"actions": [{"type": "webhook"}]}, "actions.0.webhook.url"),
        ({"actions": [{"type": "block_source", "duration_s": -1}]}, "duration_s"),
        ({"bogus": 1}, "playbooks.playbooks.0.bogus"),
    ],
)
def test_bad_playbooks_are_refused_naming_the_field(patch: dict[str, Any], field: str) -> None:
    """A playbook with a bad field is a configuration error whose message names the field."""
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        parse_config({"playbooks": {"playbooks": [playbook(**patch)]}})


def test_playbooks_load_from_a_file_and_bad_files_name_file_and_field(tmp_path: Path) -> None:
    """``playbooks.file`` adds the file's playbooks; a bad one names the file and the field;
    the same name twice is refused."""
    good = tmp_path / "pb.yaml"
    good.write_text(
        "playbooks:\n  - name: from-file\n    trigger: {findings: [token_reuse]}\n"
        "    actions: [{type: revoke_token}]\n"
    )
    cfg = parse_config({"playbooks": {"file": str(good), "playbooks": [playbook()]}})
    assert [p.name for p in cfg.playbooks.all_playbooks()] == ["block-probers", "from-file"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "- name: x\n"
        "  trigger: {findings: [token_reuse], count: 0}\n"
        "  actions: [{type: revoke_token}]\n"
    )
    with pytest.raises(ConfigError, match=r"bad\.yaml: playbooks\.0\.trigger\.count"):
        parse_config({"playbooks": {"file": str(bad)}})
    with pytest.raises(ConfigError, match="duplicate playbook names: block-probers"):
        parse_config({"playbooks": {"playbooks": [playbook(), playbook()]}})


# --- triggers and actions ---------------------------------------------------------------


async def test_finding_triggers_a_block_that_the_enforce_guard_applies() -> None:
    """A confident denial burst blocks its principal: audited first, then in force, and the
    enforce guard refuses that principal with 403/-32094 while others pass."""
    engine, state, audit, _ = build()
    await engine.on_finding(finding())
    [record] = engine.actions()
    assert (record.status, record.action, record.target) == (
        "applied",
        "block_principal",
        "addr:10.6.6.6",
    )
    assert audit.events[0]["type"] == "playbook.action"
    assert audit.events[0]["finding"]["type"] == "denial_burst"
    guard = EnforceGuard(state)
    v = await guard.on_request(
        RequestContext("r", "echo", "SendMessage", {}, client_addr="10.6.6.6")
    )
    assert (v.kind, v.status, v.code, v.details["rule"]) == (
        VerdictKind.DENY,
        403,
        ENFORCED,
        "blocked-principal",
    )
    assert ("Retry-After", "600") in v.details["headers"]
    other = await guard.on_request(
        RequestContext("r", "echo", "SendMessage", {}, client_addr="10.0.0.7")
    )
    assert other.allowed


async def test_trigger_needs_confidence_count_and_window() -> None:
    """Findings below min_confidence do not count; count=2 needs two within window_s."""
    pb = playbook(
        trigger={"findings": ["denial_burst"], "min_confidence": 0.7, "count": 2, "window_s": 60}
    )
    engine, state, _, _ = build(pb)
    await engine.on_finding(finding(conf=0.5))
    await engine.on_finding(finding(conf=0.5))
    assert engine.actions() == []
    await engine.on_finding(finding())
    f2 = Finding("denial_burst", "addr:10.6.6.6", 0.9, {}, T0 + 120, source="10.6.6.6")
    await engine.on_finding(f2)  # outside the window of the first
    assert engine.actions() == []
    f3 = Finding("denial_burst", "addr:10.6.6.6", 0.9, {}, T0 + 130, source="10.6.6.6")
    await engine.on_finding(f3)
    assert [r.status for r in engine.actions()] == ["applied"]
    assert state.blocked_principal("addr:10.6.6.6")


async def test_dry_run_records_and_audits_but_does_not_apply() -> None:
    """In dry-run (global or per playbook) the action is recorded and audited, not applied."""
    for engine, state, audit, _ in (build(dry_run=True), build(playbook(dry_run=True))):
        await engine.on_finding(finding())
        assert [r.status for r in engine.actions()] == ["dry_run"]
        assert audit.events[0]["status"] == "dry_run"
        assert state.empty()
        with pytest.raises(RevertError):
            await engine.revert(engine.actions()[0].id, "ops")


async def test_global_cap_stops_a_playbook_from_blocking_everyone() -> None:
    """With max_blocked_principals=3, five probing principals: three are blocked, the other
    two are refused by the cap (audited); a new finding on a blocked one adds no action."""
    engine, state, audit, _ = build(limits={"max_blocked_principals": 3})
    for i in range(5):
        await engine.on_finding(finding(f"addr:10.6.6.{i}"))
    statuses = [(r.target, r.status) for r in engine.actions()]
    assert [s for _, s in statuses] == ["applied"] * 3 + ["refused"] * 2
    assert "3 distinct principals" in engine.actions()[-1].reason
    assert [state.blocked_principal(f"addr:10.6.6.{i}") for i in range(5)] == [True] * 3 + [
        False
    ] * 2
    assert len(audit.events) == 5
    await engine.on_finding(finding("addr:10.6.6.0"))  # already blocked: no second action
    assert len(engine.actions()) == 5


async def test_per_playbook_rate_limit_and_protected_principals() -> None:
    """A playbook fires at most max_actions times per rate window; protected principals are
    never acted upon."""
    engine, state, _, _ = build(playbook(max_actions=2), protected_principals=["addr:10.9.9.9"])
    for i in range(4):
        await engine.on_finding(finding(f"addr:10.6.6.{i}"))
    assert [r.status for r in engine.actions()] == ["applied", "applied", "refused", "refused"]
    assert "playbook rate limit" in engine.actions()[-1].reason
    engine, state, _, _ = build(protected_principals=["addr:10.9.9.9"])
    await engine.on_finding(finding("addr:10.9.9.9"))
    assert engine.actions()[0].reason == "target is protected"
    assert state.empty()


async def test_no_audit_no_action() -> None:
    """When the audit log cannot record the action, it is not applied (status failed)."""
    engine, state, audit, _ = build()
    audit.fail = True
    await engine.on_finding(finding())
    assert engine.actions()[0].status == "failed"
    assert state.empty()


async def test_revert_lifts_the_measure_and_is_audited() -> None:
    """Reverting an applied block lifts it at once (and a new attack may block again); a
    second revert or an unknown id fails."""
    engine, state, audit, _ = build()
    await engine.on_finding(finding())
    action_id = engine.actions()[0].id
    record = await engine.revert(action_id, "alice")
    assert (record.status, record.reverted_by) == ("reverted", "alice")
    assert not state.blocked_principal("addr:10.6.6.6")
    assert audit.events[-1]["type"] == "playbook.revert"
    assert audit.events[-1]["actor"] == "alice"
    await engine.on_finding(finding())
    assert state.blocked_principal("addr:10.6.6.6")
    with pytest.raises(RevertError, match="reverted"):
        await engine.revert(action_id, "alice")
    with pytest.raises(RevertError) as err:
        await engine.revert("nope", "alice")
    assert err.value.status == 404


async def test_measures_expire_and_a_longer_one_is_kept() -> None:
    """A 600 s block ends after 600 s; a later shorter block does not shorten a longer one."""
    pbs = [playbook(), playbook("short", actions=[{"type": "block_principal", "duration_s": 10}])]
    engine, state, _, clock = build(*pbs)
    await engine.on_finding(finding())
    assert state.until("principal", "addr:10.6.6.6") == T0 + 600
    clock.now = T0 + 599
    assert state.blocked_principal("addr:10.6.6.6")
    clock.now = T0 + 601
    assert not state.blocked_principal("addr:10.6.6.6")


async def test_actions_without_a_target_are_skipped() -> None:
    """revoke_token on a finding with no token id is skipped, not applied to something else."""
    engine, state, _, _ = build(playbook(actions=[{"type": "revoke_token"}]))
    await engine.on_finding(finding())
    assert (engine.actions()[0].status, engine.actions()[0].reason) == (
        "skipped",
        "the finding names no target",
    )
    assert state.empty()


# --- the enforce guard --------------------------------------------------------------------


async def test_enforce_guard_answers_each_measure_with_its_error() -> None:
    """Blocked source -> 403; revoked token -> 401 invalid_token; step-up -> 401 with the
    RFC 9470 insufficient_user_authentication challenge; all with code -32094."""
    clock = Clock()
    state = EnforcementState(clock)
    guard = EnforceGuard(state)

    def ctx(addr: str = "10.0.0.1", token: str | None = None) -> RequestContext:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return RequestContext("r", "echo", "SendMessage", {}, client_addr=addr, headers=headers)

    assert (await guard.on_request(ctx())).allowed
    state.set("source", "10.0.0.2", None)
    v = await guard.on_request(ctx("10.0.0.2"))
    assert (v.status, v.code, v.details["rule"], v.details["headers"]) == (
        403,
        ENFORCED,
        "blocked-source",
        [],
    )
    from maestro_gateway.principal import token_id_from_header

    tid = token_id_from_header("Bearer stolen")
    assert tid is not None
    state.set("token", tid, T0 + 60)
    v = await guard.on_request(ctx(token="stolen"))
    assert (v.status, v.code, v.details["rule"]) == (401, ENFORCED, "token-revoked")
    assert 'error="invalid_token"' in dict(v.details["headers"])["WWW-Authenticate"]
    assert (await guard.on_request(ctx(token="other"))).allowed
    state.set("step_up", "addr:10.0.0.1", T0 + 60)
    v = await guard.on_request(ctx())
    assert (v.status, v.code, v.details["rule"]) == (401, ENFORCED, "step-up-required")
    assert (
        'error="insufficient_user_authentication"' in dict(v.details["headers"])["WWW-Authenticate"]
    )
    state.set("approval", "addr:10.0.0.3", None)
    assert state.requires_approval("addr:10.0.0.3")
    assert (await guard.on_request(ctx("10.0.0.3"))).allowed  # the approval guard's job


async def test_second_pass_after_authentication_checks_the_authenticated_identity() -> None:
    """Measures on an authenticated principal or a jti are enforced by the pass after authn
    (the first pass only knows addr:<source> and the bearer hash); it skips unauthenticated
    requests and does not re-check the source."""
    clock = Clock()
    state = EnforcementState(clock)
    first, second = EnforceGuard(state), EnforceGuard(state, after_authn=True)
    ctx = RequestContext("r", "echo", "SendMessage", {}, client_addr="10.0.0.1")
    state.set("principal", "https://idp|alice", None)
    state.set("token", "jti-7", None)
    assert (await first.on_request(ctx)).allowed  # not yet authenticated
    ctx.extra.update(principal="https://idp|alice", token_id="jti-1")
    v = await second.on_request(ctx)
    assert (v.status, v.details["rule"]) == (403, "blocked-principal")
    ctx.extra.update(principal="https://idp|bob", token_id="jti-7")
    v = await second.on_request(ctx)
    assert (v.status, v.details["rule"]) == (401, "token-revoked")
    state.set("source", "10.0.0.9", None)
    anon = RequestContext("r", "echo", "SendMessage", {}, client_addr="10.0.0.9")
    assert (await second.on_request(anon)).allowed
    assert not (await first.on_request(anon)).allowed


async def test_step_up_is_met_only_by_mfa_after_the_requirement() -> None:
    """A step-up requirement is met by an authenticated identity with MFA whose auth_time is
    after the requirement was set; an older MFA login or a password-only one gets the 401
    challenge with max_age."""
    from types import SimpleNamespace

    clock = Clock()
    state = EnforcementState(clock)
    guard = EnforceGuard(state, after_authn=True)
    state.set("step_up", "https://idp|alice", T0 + 3600)
    clock.now = T0 + 30

    def ctx(mfa: bool, auth_time: float) -> RequestContext:
        c = RequestContext("r", "echo", "SendMessage", {}, client_addr="10.0.0.1")
        ident = SimpleNamespace(mfa=mfa, auth_time=auth_time)
        c.extra.update(principal="https://idp|alice", token_id="jti-1", identity=ident)
        return c

    old = await guard.on_request(ctx(True, T0 - 5))
    assert (old.status, old.details["rule"]) == (401, "step-up-required")
    assert 'max_age="30"' in dict(old.details["headers"])["WWW-Authenticate"]
    assert not (await guard.on_request(ctx(False, T0 + 20))).allowed
    assert (await guard.on_request(ctx(True, T0 + 20))).allowed
