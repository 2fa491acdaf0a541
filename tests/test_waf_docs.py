"""docs/waf.md stays true to the code: its rule table and its configuration example."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from maestro_gateway.guards.waf import RULES, WafGuardConfig

DOC = Path(__file__).resolve().parents[1] / "docs" / "waf.md"


def test_every_rule_is_documented_with_its_score_and_level() -> None:
    """Each rule has a row in the table giving its severity, score and paranoia level."""
    text = DOC.read_text(encoding="utf-8")
    for rule in RULES:
        row = f"| {rule.id} | {rule.family} | {rule.severity} ({rule.score}) | {rule.paranoia} |"
        assert row in text, rule.id


def test_configuration_example_is_valid() -> None:
    """The YAML example validates, alone and with each of its overrides applied."""
    block = re.search(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert block is not None
    example: dict[str, Any] = yaml.safe_load(block.group(1))
    base = example["guards"]["waf"]
    cfg = WafGuardConfig.model_validate(base)
    assert cfg.paranoia_level == 1
    assert not cfg.inspect.text_parts
    for override in example["guard_overrides"]:
        patch = override["guards"]["waf"]
        merged = {**base, **patch}
        if "inspect" in patch:
            merged["inspect"] = {**base["inspect"], **patch["inspect"]}
        WafGuardConfig.model_validate(merged)
