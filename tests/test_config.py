"""The configuration model, its generated JSON Schema and the shipped examples."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from maestro_gateway.cli import main
from maestro_gateway.config import ConfigError, config_json_schema, load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def test_schema_file_is_fresh() -> None:
    """The checked-in config JSON Schema equals the one generated from the model (`make schema`)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts/gen_config_schema.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_are_valid(path: Path) -> None:
    """Every example configuration loads through the model and validates against the schema."""
    load_config(path)
    jsonschema.validate(yaml.safe_load(path.read_text()), config_json_schema())


def test_examples_exist() -> None:
    """The examples directory is not empty (so the parametrized test above is not vacuous)."""
    assert len(EXAMPLES) >= 2


def test_error_names_the_field_path() -> None:
    """A bad value is reported with the dotted path of the field and what was expected."""
    with pytest.raises(ConfigError) as info:
        parse_config({"guards": {"validate": {"max_depth": 0}}, "listen": {"port": "x"}})
    text = str(info.value)
    assert "guards.validate.max_depth: Input should be greater than 0" in text
    assert "listen.port: Input should be a valid integer" in text


def test_unknown_field_is_refused() -> None:
    """A misspelt key is an error, not silently ignored."""
    with pytest.raises(ConfigError, match=r"registry\.urll: Extra inputs are not permitted"):
        parse_config({"registry": {"urll": "sqlite://:memory:"}})


def test_check_config_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`check-config` exits 0 on a good file and 1 with the field path on a bad one."""
    good = tmp_path / "good.yaml"
    good.write_text("listen: {port: 9000}\n")
    assert main(["check-config", str(good)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("listen: {port: 700000}\n")
    assert main(["check-config", str(bad)]) == 1
    assert "listen.port" in capsys.readouterr().err


def test_invalid_yaml_is_a_clear_error(tmp_path: Path) -> None:
    """A file that is not YAML gives a ConfigError naming the file."""
    bad = tmp_path / "broken.yaml"
    bad.write_text("listen: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_schema_is_json_serialisable() -> None:
    """The generated schema is plain JSON (so editors can use it)."""
    assert json.loads(json.dumps(config_json_schema()))["title"] == "GatewayConfig"
