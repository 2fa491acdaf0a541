"""A policy bundle's own tests: example requests with the decision each must get.

A bundle is accepted only when every case passes (``maestro-gateway policy test``, and before
every reload). Cases are YAML lists in ``tests/*.yaml`` of the bundle::

    - name: an admin with MFA may register an agent
      principal: {type: User, id: alice, roles: [registry-admin], mfa: true}
      action: register
      resource: {type: Agent, id: echo}
      context: {identity_required: true}
      expect: allow

``principal`` defaults: ``roles: []``, ``tenant: ""``, ``mfa: false``, ``issuer: ""``;
types are written without the ``Maestro::`` namespace. Resources take ``tenant``/``owner``
(agents) or ``agent``/``owner``/``tenant`` (tasks) or ``requester`` (approvals).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from maestro_gateway.policy.engine import PolicyEngine, PolicyError

__all__ = ["CaseResult", "PolicyCase", "load_cases", "run_cases"]


class _Entity(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    type: str
    id: str


class PolicyCase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    principal: _Entity
    action: str
    resource: _Entity
    context: dict[str, Any] = Field(default_factory=dict)
    expect: Literal["allow", "deny"]


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: PolicyCase
    passed: bool
    got: str
    policies: tuple[str, ...]
    errors: tuple[str, ...]


def load_cases(text: str, source: str) -> list[PolicyCase]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise PolicyError(f"{source}: expected a list of test cases")
    cases = []
    for i, item in enumerate(data):
        try:
            cases.append(PolicyCase.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise PolicyError(f"{source}: case {i}: {where}: {first['msg']}") from None
    return cases


_PRINCIPAL_DEFAULTS = {"roles": [], "tenant": "", "mfa": False, "strength": 0, "issuer": ""}
_RESOURCE_DEFAULTS = {
    "Agent": {"tenant": "", "owner": ""},
    "Task": {"agent": "", "owner": "", "tenant": ""},
    "Approval": {"agent": "", "requester": ""},
}


def _entity(e: _Entity, defaults: dict[str, Any], principal: bool) -> tuple[dict[str, str], Any]:
    kind = e.type if "::" in e.type else f"Maestro::{e.type}"
    uid = {"type": kind, "id": e.id}
    extra = dict(e.model_extra or {})
    attrs = {**defaults, **extra}
    if principal:
        attrs.setdefault("uid", e.id)
        attrs["strength"] = extra.get("strength", 2 if attrs["mfa"] else 1)
    else:
        attrs.setdefault("id", e.id)
    return uid, {"uid": uid, "attrs": attrs, "parents": []}


def run_cases(engine: PolicyEngine, cases: list[PolicyCase]) -> list[CaseResult]:
    results = []
    for case in cases:
        p_uid, p_ent = _entity(case.principal, _PRINCIPAL_DEFAULTS, True)
        r_kind = case.resource.type.removeprefix("Maestro::")
        r_uid, r_ent = _entity(case.resource, _RESOURCE_DEFAULTS.get(r_kind, {}), False)
        context = {"identity_required": True, **case.context}
        d = engine.decide(p_uid, case.action, r_uid, context, [p_ent, r_ent])
        got = "allow" if d.allowed else "deny"
        results.append(CaseResult(case, got == case.expect, got, d.policies, d.errors))
    return results
