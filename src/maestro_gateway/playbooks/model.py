"""Declarative response playbooks (the ``playbooks:`` section): trigger -> actions.

A playbook fires when ``trigger.count`` findings of one of ``trigger.findings``, each with
confidence >= ``trigger.min_confidence``, arrive for one subject (``group_by``) within
``trigger.window_s``. Playbooks are written inline or in a YAML file (``file:``, a mapping with
a ``playbooks:`` list, or the list itself); both are validated when the configuration loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from maestro_gateway.detect.model import FindingType

__all__ = [
    "Action",
    "PlaybookConfig",
    "PlaybookLimits",
    "PlaybooksConfig",
    "Trigger",
    "load_playbook_file",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trigger(_Model):
    findings: list[FindingType] = Field(min_length=1, description="Finding types that count.")
    min_confidence: float = Field(0.8, ge=0, le=1)
    count: int = Field(1, ge=1, description="Matching findings for one subject in the window.")
    window_s: float = Field(600.0, gt=0)
    group_by: Literal["principal", "source", "agent", "token"] = "principal"


class _Timed(_Model):
    duration_s: float | None = Field(
        900.0, gt=0, description="How long the measure holds; null = until reverted."
    )


class BlockPrincipal(_Timed):
    type: Literal["block_principal"]


class BlockSource(_Timed):
    type: Literal["block_source"]


class RevokeToken(_Timed):
    type: Literal["revoke_token"]
    duration_s: float | None = Field(None, gt=0, description="null = until reverted.")


class SuspendAgent(_Model):
    type: Literal["suspend_agent"]


class RequireStepUp(_Timed):
    type: Literal["require_step_up"]


class RequireApproval(_Timed):
    type: Literal["require_approval"]


class Webhook(_Model):
    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://[^\s]+$")
    headers: dict[str, str] = {}
    timeout_s: float = Field(5.0, gt=0, le=60)


Action = Annotated[
    BlockPrincipal
    | BlockSource
    | RevokeToken
    | SuspendAgent
    | RequireStepUp
    | RequireApproval
    | Webhook,
    Field(discriminator="type"),
]


class PlaybookConfig(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    description: str = ""
    enabled: bool = True
    dry_run: bool = Field(False, description="Record the actions, do not apply them.")
    trigger: Trigger
    actions: list[Action] = Field(min_length=1)
    max_actions: int = Field(20, ge=1, description="Firings of this playbook per rate window.")
    rate_window_s: float = Field(3600.0, gt=0)


class PlaybookLimits(_Model):
    """Global caps, so no playbook (or set of them) can lock everyone out."""

    window_s: float = Field(3600.0, gt=0)
    max_actions: int = Field(100, ge=1, description="Actions applied by all playbooks.")
    max_blocked_principals: int = Field(
        10, ge=0, description="Distinct principals blocked (block/step-up/revoke) per window."
    )
    max_blocked_sources: int = Field(10, ge=0, description="Distinct sources blocked.")
    max_suspended_agents: int = Field(3, ge=0, description="Distinct agents suspended.")


class PlaybooksConfig(_Model):
    """C21 automated response."""

    enabled: bool = True
    dry_run: bool = Field(False, description="Every playbook records only (global dry run).")
    file: str | None = Field(None, description="YAML file of more playbooks.")
    playbooks: list[PlaybookConfig] = []
    limits: PlaybookLimits = PlaybookLimits()
    protected_principals: list[str] = Field([], description="Never acted upon.")
    protected_sources: list[str] = Field([], description="Source addresses never blocked.")
    max_records: int = Field(10_000, ge=1, description="Action records kept in memory.")
    max_webhooks_in_flight: int = Field(8, ge=1)

    @model_validator(mode="after")
    def _check(self) -> PlaybooksConfig:
        names = [p.name for p in self.all_playbooks()]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate playbook names: {', '.join(dupes)}")
        return self

    def all_playbooks(self) -> list[PlaybookConfig]:
        """Inline playbooks, then those of ``file`` (read and validated again)."""
        extra = load_playbook_file(self.file) if self.file else []
        return [*self.playbooks, *extra]


def load_playbook_file(path: str | Path) -> list[PlaybookConfig]:
    """Playbooks from a YAML file; ValueError naming the file and each bad field."""
    p = Path(path)
    try:
        data: Any = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{p}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{p}: not valid YAML: {exc}") from None
    if isinstance(data, dict):
        data = data.get("playbooks")
    if not isinstance(data, list):
        raise ValueError(f"{p}: expected a list of playbooks (or a mapping with 'playbooks')")
    out = []
    for i, item in enumerate(data):
        try:
            out.append(PlaybookConfig.model_validate(item))
        except ValidationError as exc:
            bad = "; ".join(
                f"playbooks.{i}.{'.'.join(str(x) for x in e['loc'])}: {e['msg']}"
                for e in exc.errors()
            )
            raise ValueError(f"{p}: {bad}") from None
    return out
