"""The C3 approval guard: which requests are high-risk (skills, argument conditions, firewall)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from maestro_gateway.approvals.models import (
    Approved,
    approval_covers,
    request_sha256,
)
from maestro_gateway.config import GuardsConfig, parse_config
from maestro_gateway.context import RequestContext
from maestro_gateway.guards.approval import ApprovalGuard, ApprovalGuardConfig
from maestro_gateway.pipeline import Pipeline, ordered_guards
from maestro_gateway.principal import principal_of
from maestro_gateway.types import VerdictKind

POLICY: dict[str, Any] = {
    "skills": {"wire-transfer": "critical", "lookup": "low"},
    "conditions": [
        {"name": "large amount", "path": "amount", "op": "gt", "value": 1000},
        {"path": "destination", "op": "not_in", "value": ["ACME-01", "ACME-02"]},
        {"path": "tool", "op": "in", "value": ["delete_records"]},
        {"name": "prod host", "path": "target.host", "op": "regex", "value": r"(^|\.)prod\."},
    ],
    "firewall_grey_zone": {"low": 0.5, "high": 0.9},
}


def ctx_for(data: Any = None, skill: str | None = None, **extra: Any) -> RequestContext:
    parts: list[dict[str, Any]] = [{"text": "please do it"}]
    if data is not None:
        parts.append({"data": data})
    message: dict[str, Any] = {"messageId": "m1", "role": "ROLE_USER", "parts": parts}
    return RequestContext(
        request_id="r1",
        agent_id="bank",
        method="SendMessage",
        params={"message": message},
        client_addr="127.0.0.1",
        skill_id=skill,
        extra=dict(extra),
    )


async def verdict_types(data: Any = None, skill: str | None = None, **extra: Any) -> list[str]:
    guard = ApprovalGuard(ApprovalGuardConfig.model_validate(POLICY))
    verdict = await guard.on_request(ctx_for(data, skill, **extra))
    if verdict.kind is VerdictKind.ALLOW:
        return []
    assert verdict.kind is VerdictKind.ESCALATE
    assert verdict.guard == "approval"
    return [
        f["type"] + ":" + str(f.get("name", f.get("skill", "")))
        for f in verdict.details["findings"]
    ]


@pytest.mark.parametrize(
    ("data", "skill", "expected"),
    [
        ({"amount": 10, "destination": "ACME-01"}, None, []),
        ({"amount": 5000, "destination": "ACME-01"}, None, ["condition:large amount"]),
        ({"amount": 1000, "destination": "ACME-01"}, None, []),
        (
            {"amount": 10, "destination": "EVIL-9"},
            None,
            ["condition:destination not_in ['ACME-01', 'ACME-02']"],
        ),
        ({"tool": "delete_records"}, None, ["condition:tool in ['delete_records']"]),
        ({"target": {"host": "db.prod.example"}}, None, ["condition:prod host"]),
        ({"target": {"host": "db.staging.example"}}, None, []),
        ({"amount": 1}, "wire-transfer", ["skill_risk:wire-transfer"]),
        ({"amount": 1}, "lookup", []),
    ],
)
async def test_policy_flags_what_it_names(
    data: Any, skill: str | None, expected: list[str]
) -> None:
    """Skill risk, each condition operator and the thresholds flag exactly what they name."""
    assert await verdict_types(data, skill) == expected


async def test_type_confusion_is_held_not_waved_through() -> None:
    """An amount sent as a string, a boolean or an object cannot be compared, so it is held."""
    for amount in ("1000000", True, {"value": 1e9}, None):
        assert "condition:large amount" in await verdict_types({"amount": amount})


async def test_values_inside_lists_are_each_checked() -> None:
    """A list of transfers is searched element by element: one large amount among small is held."""
    data = {"amount": [5, 7, 50_000]}
    assert "condition:large amount" in await verdict_types(data)
    nested = [{"amount": 1}, {"amount": 2_000}]
    assert "condition:large amount" in await verdict_types(nested)


async def test_oversized_lists_are_held() -> None:
    """More values than the guard inspects cannot hide a large amount past the limit: held."""
    data = {"amount": [1] * 10_001}
    assert "condition:large amount" in await verdict_types(data)


async def test_firewall_grey_zone() -> None:
    """A firewall score in [low, high) holds the request; below it or absent, nothing happens."""
    assert await verdict_types(None, None, firewall={"score": 0.7}) == ["firewall_grey_zone:"]
    assert await verdict_types(None, None, firewall={"score": 0.2}) == []
    assert await verdict_types(None, None, firewall={"score": 0.95}) == []
    assert await verdict_types(None, None) == []


async def test_only_messages_are_judged() -> None:
    """GetTask and other non-message methods are never held by the approval guard."""
    guard = ApprovalGuard(ApprovalGuardConfig.model_validate(POLICY))
    ctx = ctx_for({"amount": 10**9})
    ctx.method = "GetTask"
    assert (await guard.on_request(ctx)).kind is VerdictKind.ALLOW


def test_config_refuses_fail_open_and_bad_conditions() -> None:
    """No fail-open mode exists, and a condition whose value does not fit its op is refused."""
    with pytest.raises(ValidationError):
        ApprovalGuardConfig.model_validate({"fail_mode": "fail_open"})
    with pytest.raises(ValidationError):
        ApprovalGuardConfig.model_validate(
            {"conditions": [{"path": "a", "op": "gt", "value": "x"}]}
        )
    with pytest.raises(ValidationError):
        ApprovalGuardConfig.model_validate({"conditions": [{"path": "a", "op": "in", "value": 3}]})
    with pytest.raises(ValidationError):
        ApprovalGuardConfig.model_validate({"firewall_grey_zone": {"low": 0.9, "high": 0.5}})
    with pytest.raises(ValidationError):
        ApprovalGuardConfig.model_validate({"mode": "log_only"})


def test_approval_runs_after_waf_and_before_sanitize() -> None:
    """With a policy, the approval guard runs after the refusing guards and before sanitize."""
    assert "approval" not in [g.name for g in ordered_guards(GuardsConfig())]  # no policy
    names = [g.name for g in ordered_guards(GuardsConfig.model_validate({"approval": POLICY}))]
    assert names.index("approval") > names.index("waf")
    assert names.index("approval") < names.index("sanitize")
    if "firewall" in names:
        assert names.index("approval") > names.index("firewall")


async def test_pipeline_passes_an_escalation_only_for_the_approved_hash() -> None:
    """An approval marker passes exactly the approved request; any other payload escalates."""
    cfg = parse_config({"guards": {"approval": POLICY}})
    pipeline = Pipeline(cfg)
    try:
        ctx = ctx_for({"amount": 5000, "destination": "ACME-01"})
        assert (await pipeline.request(ctx)).kind is VerdictKind.ESCALATE
        sha = request_sha256(ctx.agent_id, ctx.method, ctx.params)
        ctx.extra["approval"] = Approved("held-x", sha)
        assert approval_covers(ctx)
        assert (await pipeline.request(ctx)).kind is VerdictKind.ALLOW
        other = ctx_for({"amount": 5001, "destination": "ACME-01"})
        other.extra["approval"] = Approved("held-x", sha)
        assert (await pipeline.request(other)).kind is VerdictKind.ESCALATE
        forged = ctx_for({"amount": 5000, "destination": "ACME-01"})
        forged.extra["approval"] = {"hold_id": "held-x", "sha256": sha}  # not the marker type
        assert (await pipeline.request(forged)).kind is VerdictKind.ESCALATE
    finally:
        await pipeline.close()


def test_principal_is_the_address_until_identity_sets_one() -> None:
    """The requester is an authenticated principal when set, else the client address."""
    ctx = ctx_for()
    assert principal_of(ctx) == "addr:127.0.0.1"
    ctx.extra["principal"] = "user:alice"
    assert principal_of(ctx) == "user:alice"


def test_public_names_exist() -> None:
    """Every name in maestro_gateway.approvals.__all__ exists."""
    import maestro_gateway.approvals as approvals

    for name in approvals.__all__:
        assert hasattr(approvals, name), name
