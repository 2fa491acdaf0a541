"""C17 guard units: its place in the pipeline, which skills are JIT-only (config and
guard_overrides), and which task ids a request offers a task-scoped grant."""

from __future__ import annotations

from maestro_gateway.config import GuardsConfig, parse_config
from maestro_gateway.context import RequestContext
from maestro_gateway.grants import GrantsConfig
from maestro_gateway.grants.service import GrantService
from maestro_gateway.guards.grants import GrantsGuardConfig, task_ids
from maestro_gateway.pipeline import Pipeline, ordered_guards
from maestro_gateway.policy import PolicyConfig, PolicyRuntime


def test_grants_guard_runs_right_after_authz() -> None:
    """With JIT-only skills configured the grants guard sits immediately after authz."""
    cfg = GuardsConfig.model_validate({"grants": {"jit_only": {"bank": ["pay"]}}})
    policy = PolicyRuntime.from_config(PolicyConfig())
    grants = GrantService(GrantsConfig())
    names = [g.name for g in ordered_guards(cfg, policy=policy, grants=grants)]
    assert names.index("grants") == names.index("authz") + 1


def test_no_jit_skills_means_no_grants_guard() -> None:
    """Without JIT-only skills the guard is not in the pipeline at all."""
    names = [g.name for g in ordered_guards(GuardsConfig(), grants=GrantService(GrantsConfig()))]
    assert "grants" not in names


def test_jit_skills_from_map_wildcards_and_overrides() -> None:
    """jit_only per agent and "*", and skills set through a guard override, all count."""
    cfg = GrantsGuardConfig(jit_only={"bank": ["pay"], "*": ["wipe"]}, skills=["x"])
    assert cfg.jit_skills("bank") == {"pay", "wipe", "x"}
    assert cfg.jit_skills("other") == {"wipe", "x"}
    gw = parse_config(
        {"guard_overrides": [{"agents": ["repo"], "guards": {"grants": {"skills": ["rm"]}}}]}
    )
    pipeline = Pipeline(gw)
    assert pipeline.settings("repo").grants.jit_skills("repo") == {"rm"}
    assert not pipeline.settings("echo").grants.active
    assert "grants" in [g.name for g in pipeline.guards("repo", "rm")]


def test_task_ids_of_messages_and_task_methods() -> None:
    """A message offers its taskId and contextId; GetTask its id; junk offers nothing."""
    msg = {"message": {"taskId": "t1", "contextId": "c1"}}
    assert task_ids(RequestContext("r", "a", "SendMessage", msg)) == ("t1", "c1")
    assert task_ids(RequestContext("r", "a", "GetTask", {"id": "t2"})) == ("t2",)
    assert task_ids(RequestContext("r", "a", "SendMessage", {"message": {"taskId": 5}})) == ()
    assert task_ids(RequestContext("r", "a", "SendMessage", [1])) == ()
