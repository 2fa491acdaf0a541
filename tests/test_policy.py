"""C8 policy engine and the shipped default policy set (Cedar)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from maestro_gateway.policy import PolicyBundle, PolicyEngine, PolicyError
from maestro_gateway.policy.engine import default_policy_text, mask


def user(
    uid: str, roles: tuple[str, ...] = (), mfa: bool = True, tenant: str = ""
) -> tuple[Any, Any]:
    ref = {"type": "Maestro::User", "id": uid}
    attrs = {"uid": uid, "roles": list(roles), "tenant": tenant, "mfa": mfa, "strength": 2}
    return ref, {"uid": ref, "attrs": {**attrs, "issuer": "https://idp"}, "parents": []}


def agent(agent_id: str = "echo", tenant: str = "") -> tuple[Any, Any]:
    ref = {"type": "Maestro::Agent", "id": agent_id}
    return ref, {
        "uid": ref,
        "attrs": {"id": agent_id, "tenant": tenant, "owner": ""},
        "parents": [],
    }


def task(owner: str, tenant: str = "") -> tuple[Any, Any]:
    ref = {"type": "Maestro::Task", "id": "t1"}
    attrs = {"id": "t1", "agent": "echo", "owner": owner, "tenant": tenant}
    return ref, {"uid": ref, "attrs": attrs, "parents": []}


ENGINE = PolicyEngine(PolicyBundle.parse(default_policy_text(), "default"))


def decide(p: tuple[Any, Any], action: str, r: tuple[Any, Any], **context: Any) -> Any:
    context.setdefault("identity_required", True)
    return ENGINE.decide(p[0], action, r[0], context, [p[1], r[1]])


def test_registry_write_needs_admin_role_and_mfa() -> None:
    """An admin with MFA may register; without MFA or without the role, denied."""
    assert decide(user("a", ("registry-admin",)), "register", agent()).allowed
    assert not decide(user("a", ("registry-admin",), mfa=False), "register", agent()).allowed
    assert not decide(user("a", ("approver",)), "register", agent()).allowed


def test_four_eyes_activation() -> None:
    """Whoever registered a version cannot activate it; another admin can."""
    d = decide(user("alice", ("registry-admin",)), "activate", agent(), version_author="alice")
    assert not d.allowed
    assert d.policies == ("four-eyes-activation",)
    assert decide(
        user("bob", ("registry-admin",)), "activate", agent(), version_author="alice"
    ).allowed


def test_tenant_isolation_hides_other_tenants_agents() -> None:
    """A principal of tenant A may not invoke tenant B's agent, nor may an untenanted one."""
    assert decide(user("u", tenant="a"), "invoke", agent(tenant="a")).allowed
    assert not decide(user("u", tenant="a"), "invoke", agent(tenant="b")).allowed
    assert not decide(user("u"), "invoke", agent(tenant="b")).allowed
    assert decide(user("u", tenant="a"), "invoke", agent()).allowed


def test_tasks_are_visible_only_to_their_creator() -> None:
    """read_task and cancel_task are allowed for the task's owner only."""
    assert decide(user("u1"), "read_task", task("u1")).allowed
    assert not decide(user("u2"), "read_task", task("u1")).allowed
    assert not decide(user("u2"), "cancel_task", task("u1")).allowed
    assert not decide(user("u1", tenant="a"), "read_task", task("u1", tenant="b")).allowed


def test_anonymous_callers_only_while_identity_is_off() -> None:
    """Maestro::Anonymous may invoke when identity is not required, never once it is."""
    anon_ref = {"type": "Maestro::Anonymous", "id": "addr:10.0.0.1"}
    attrs = {"uid": "addr:10.0.0.1", "roles": [], "tenant": "", "mfa": False, "strength": 0}
    anon = (anon_ref, {"uid": anon_ref, "attrs": {**attrs, "issuer": ""}, "parents": []})
    assert decide(anon, "invoke", agent(), identity_required=False).allowed
    assert not decide(anon, "invoke", agent(), identity_required=True).allowed
    assert not decide(anon, "register", agent(), identity_required=False).allowed


def test_bootstrap_admin_loses_its_rights_when_identity_is_on() -> None:
    """The static admin token administers only while identity is off."""
    ref = {"type": "Maestro::Service", "id": "bootstrap"}
    attrs = {"uid": "bootstrap", "roles": [], "tenant": "", "mfa": False, "strength": 0}
    boot = (ref, {"uid": ref, "attrs": {**attrs, "issuer": ""}, "parents": []})
    assert decide(boot, "activate", agent(), identity_required=False).allowed
    assert not decide(boot, "activate", agent(), identity_required=True).allowed


def test_undecided_and_unknown_actions_deny() -> None:
    """An action no policy mentions is denied, with no matching policy."""
    d = decide(user("a", ("registry-admin",)), "format_disk", agent())
    assert not d.allowed
    assert d.policies == ()


def test_evaluation_error_denies() -> None:
    """A permit that errors (missing context attribute) never lets a request through."""
    bundle = PolicyBundle.parse(
        'permit (principal, action, resource) when { context.missing == "x" };', "t"
    )
    (p_ref, p_ent), (r_ref, r_ent) = user("a"), agent()
    d = PolicyEngine(bundle).decide(p_ref, "invoke", r_ref, {}, [p_ent, r_ent])
    assert not d.allowed


def test_decision_record_masks_secrets_and_names_the_bundle() -> None:
    """The record carries id, policies, result, bundle version and masked inputs."""
    d = decide(user("a", ("registry-admin",)), "register", agent(), api_token="s3cret")
    rec = d.record()
    assert rec["result"] == "allow"
    assert rec["policies"] == ["registry-admin-mfa"]
    assert rec["bundle"].startswith("sha256:")
    assert "s3cret" not in str(rec)
    assert len(rec["decision_id"]) == 32
    assert mask({"Authorization": "Bearer x", "nested": [{"password": "p"}]}) == {
        "Authorization": "***",
        "nested": [{"password": "***"}],
    }


def test_bad_bundle_is_refused_and_the_running_one_kept(tmp_path: Path) -> None:
    """A policy file that does not parse raises PolicyError; the engine keeps its bundle."""
    bad = tmp_path / "bad.cedar"
    bad.write_text("permit (principal, action, resource) when { ")
    engine = PolicyEngine(PolicyBundle.parse(default_policy_text(), "default"))
    before = engine.bundle.version
    with pytest.raises(PolicyError, match="do not parse"):
        engine.swap(PolicyBundle.from_files([str(bad)]))
    assert engine.bundle.version == before


def test_extra_policy_files_add_to_the_default(tmp_path: Path) -> None:
    """A forbid in an added file wins over the default permits (and changes the version)."""
    (tmp_path / "nights.cedar").write_text(
        '@id("no-nights")\nforbid (principal, action == Action::"invoke", resource)'
        " when { context.hour < 6 };"
    )
    bundle = PolicyBundle.from_files([str(tmp_path)])
    engine = PolicyEngine(bundle)
    p, r = user("u"), agent()
    night = engine.decide(
        p[0], "invoke", r[0], {"identity_required": True, "hour": 3}, [p[1], r[1]]
    )
    day = engine.decide(p[0], "invoke", r[0], {"identity_required": True, "hour": 12}, [p[1], r[1]])
    assert not night.allowed
    assert night.policies == ("no-nights",)
    assert day.allowed
    assert bundle.version != ENGINE.bundle.version


def test_cached_decisions_follow_the_bundle_and_keep_fresh_ids() -> None:
    """A repeated decision is answered from cache with its own decision id; after a swap the
    new bundle decides."""
    engine = PolicyEngine(PolicyBundle.parse(default_policy_text(), "default"))
    (p_ref, p_ent), (r_ref, r_ent) = user("u"), agent()
    ctx = {"identity_required": True}
    first = engine.decide(p_ref, "invoke", r_ref, ctx, [p_ent, r_ent])
    again = engine.decide(p_ref, "invoke", r_ref, ctx, [p_ent, r_ent])
    assert first.allowed
    assert again.allowed
    assert first.decision_id != again.decision_id
    forbid = '@id("closed")\nforbid (principal, action, resource);'
    engine.swap(PolicyBundle.parse(default_policy_text() + forbid, "closed"))
    after = engine.decide(p_ref, "invoke", r_ref, ctx, [p_ent, r_ent])
    assert not after.allowed
    assert after.policies == ("closed",)
