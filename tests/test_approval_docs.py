"""docs/approvals.md stays true to the code: its configuration example and its error code."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from maestro_gateway.approvals import APPROVAL_REFUSED
from maestro_gateway.config import parse_config
from maestro_gateway.pipeline import ordered_guards

DOC = Path(__file__).resolve().parents[1] / "docs" / "approvals.md"


def test_configuration_example_is_valid_and_active() -> None:
    """The YAML example validates as a gateway configuration and adds the approval guard."""
    block = re.search(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert block is not None
    cfg = parse_config(yaml.safe_load(block.group(1)))
    assert cfg.guards.approval.active
    assert cfg.approvals.hold_timeout_s == 3600
    assert "approval" in [g.name for g in ordered_guards(cfg.guards)]


def test_documented_error_code_is_the_real_one() -> None:
    """The error code the page documents for refused continuations is the one the code sends."""
    assert f"`{APPROVAL_REFUSED}`" in DOC.read_text(encoding="utf-8")
