"""Policy as code (C8): Cedar decisions, their records, and the gateway's default policy set."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from maestro_gateway.policy.engine import Decision, PolicyBundle, PolicyEngine, PolicyError
from maestro_gateway.policy.git_bundle import GitBundleConfig, load_git_bundle
from maestro_gateway.policy.tasks import TaskOwners

__all__ = [
    "Decision",
    "PolicyBundle",
    "PolicyConfig",
    "PolicyEngine",
    "PolicyError",
    "PolicyRuntime",
    "TaskOwners",
]


class PolicyConfig(BaseModel):
    """Where the Cedar policy set comes from (docs/authorization.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    files: list[str] = Field(
        [], description="Cedar files, or directories of *.cedar, added to the default set."
    )
    include_default: bool = Field(
        True, description="Start from the shipped default policies (policy/default.cedar)."
    )
    max_tracked_tasks: int = Field(
        100_000, gt=0, description="Task owners remembered in process (oldest forgotten)."
    )
    git: GitBundleConfig | None = Field(
        None, description="Load the policy bundle from git instead of files (docs/policy-git.md)."
    )


@dataclass
class PolicyRuntime:
    """What authorization needs at run time, shared by every (agent, skill)'s authz guard.

    ``tenant_of`` and ``on_decision`` are bound by the application once the registry and the
    audit log exist; until then agents are untenanted and records go to the structured log.
    """

    engine: PolicyEngine
    tasks: TaskOwners
    identity_required: bool = False
    tenant_of: Callable[[str], str | None] = field(default=lambda _agent: None)
    on_decision: Callable[[Decision, Any], None] | None = None
    guards_overlay: dict[str, Any] = field(default_factory=dict)
    """Guard settings from the bundle's guards.yaml, merged over the configuration's."""

    @staticmethod
    def from_config(cfg: PolicyConfig, identity_required: bool = False) -> PolicyRuntime:
        """Load the configured bundle; raises PolicyError when it cannot be used (the gateway
        does not start on a policy it cannot read, verify or test)."""
        overlay: dict[str, Any] = {}
        if cfg.git is not None:
            loaded = load_git_bundle(cfg.git)
            bundle, overlay = loaded.bundle, loaded.guards
        else:
            bundle = PolicyBundle.from_files(cfg.files, cfg.include_default)
        rt = PolicyRuntime(
            PolicyEngine(bundle), TaskOwners(cfg.max_tracked_tasks), identity_required
        )
        rt.guards_overlay = overlay
        return rt
