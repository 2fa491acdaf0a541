"""`maestro-gateway policy test|show` on a bundle work tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXE = str(Path(sys.executable).with_name("maestro-gateway"))
POLICY = '@id("no-nights")\nforbid (principal, action, resource) when { context.hour < 6 };\n'
CASE = """- name: {name}
  principal: {{type: User, id: bob}}
  action: invoke
  resource: {{type: Agent, id: echo}}
  context: {{hour: {hour}}}
  expect: {expect}
"""


def bundle(tmp_path: Path, *cases: str) -> Path:
    (tmp_path / "policies").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "policies" / "main.cedar").write_text(POLICY)
    (tmp_path / "tests" / "cases.yaml").write_text("".join(cases))
    return tmp_path


def policy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, "policy", *args], capture_output=True, text=True, timeout=60)


def test_passing_bundle_exits_zero_and_names_the_deciding_policy(tmp_path: Path) -> None:
    """Every case PASSes, with the policy that decided it; exit code 0."""
    root = bundle(tmp_path, CASE.format(name="night", hour=3, expect="deny"))
    out = policy("test", "--dir", str(root))
    assert out.returncode == 0, out.stderr
    assert "PASS night: deny (no-nights)" in out.stdout


def test_failing_case_exits_one(tmp_path: Path) -> None:
    """A case whose expected decision differs FAILs and the exit code is 1."""
    root = bundle(tmp_path, CASE.format(name="wrong", hour=3, expect="allow"))
    out = policy("test", "--dir", str(root))
    assert out.returncode == 1
    assert "FAIL wrong: deny" in out.stdout


def test_unparsable_policy_is_a_clear_error(tmp_path: Path) -> None:
    """A policy that does not parse is reported with its file, exit code 1."""
    root = bundle(tmp_path, CASE.format(name="x", hour=3, expect="deny"))
    (root / "policies" / "main.cedar").write_text("permit (principal, action")
    out = policy("test", "--dir", str(root))
    assert out.returncode == 1
    assert "do not parse" in out.stderr


def test_show_lists_policy_ids(tmp_path: Path) -> None:
    """show prints the bundle version and every @id, defaults included."""
    out = policy("show", "--dir", str(bundle(tmp_path)))
    assert out.returncode == 0
    assert "four-eyes-activation" in out.stdout
    assert "no-nights" in out.stdout
