"""The offline scanner: `maestro-gateway scan --guard NAME` over JSON lines."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).with_name("maestro-gateway"))


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([EXE, "scan", *args], input=stdin, capture_output=True, timeout=120)


def rows(out: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_waf_scan_marks_attacks_and_keeps_benign_rows(tmp_path: Path) -> None:
    """Each row comes back with its fields plus verdict, score, findings and latency."""
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"id": "a", "text": "1' OR '1'='1' --"})
        + "\n"
        + json.dumps({"id": "b", "text": "a quiet walk in the park", "extra": 3})
        + "\n"
    )
    result = run("--guard", "waf", str(src))
    assert result.returncode == 0, result.stderr
    out = rows(result.stdout)
    assert [r["id"] for r in out] == ["a", "b"]
    assert out[0]["verdict"] == "block"
    assert out[0]["findings"]
    assert all({"type", "start", "end", "rule"} <= f.keys() for f in out[0]["findings"])  # type: ignore[union-attr]
    assert out[1]["verdict"] == "allow"
    assert out[1]["extra"] == 3
    assert isinstance(out[1]["latency_us"], float)


def test_bad_rows_are_reported_and_the_scan_goes_on() -> None:
    """Not-JSON, non-object and text-less rows get an error row each; later rows are scanned."""
    data = b'not json\n[1, 2]\n{"id": "x"}\n{"id": "ok", "text": "<script>alert(1)</script>"}\n'
    result = run("--guard", "waf", "-", stdin=data)
    assert result.returncode == 0
    out = rows(result.stdout)
    assert [("error" in r) for r in out] == [True, True, True, False]
    assert out[3]["verdict"] == "block"
    assert b"3 bad rows" in result.stderr


def test_directory_input_scans_every_jsonl_file(tmp_path: Path) -> None:
    """A directory stands for every *.jsonl in it, in name order; other files are ignored."""
    (tmp_path / "b.jsonl").write_text(json.dumps({"id": 2, "text": "two"}) + "\n")
    (tmp_path / "a.jsonl").write_text(json.dumps({"id": 1, "text": "one"}) + "\n")
    (tmp_path / "notes.txt").write_text("not scanned")
    result = run("--guard", "waf", str(tmp_path))
    assert [r["id"] for r in rows(result.stdout)] == [1, 2]


def test_sanitize_scan_returns_the_sanitised_output() -> None:
    """For sanitize the row's payload is sanitised and the output written back."""
    data = json.dumps({"payload": '<img src=x onerror="alert(1)"><b>ok</b>'}).encode() + b"\n"
    out = rows(run("--guard", "sanitize", "-", stdin=data).stdout)
    assert out[0]["verdict"] == "redact"
    assert "onerror" not in str(out[0]["output"])
    assert "<b>ok</b>" in str(out[0]["output"])


def test_missing_input_is_a_clear_error(tmp_path: Path) -> None:
    """A path that does not exist exits 2 with its name."""
    result = run("--guard", "waf", str(tmp_path / "nope.jsonl"))
    assert result.returncode == 2
    assert b"nope.jsonl" in result.stderr


@pytest.mark.slow
def test_ten_thousand_rows_take_seconds(tmp_path: Path) -> None:
    """10,000 rows are scanned in a few seconds, including start-up."""
    src = tmp_path / "many.jsonl"
    with src.open("w") as fh:
        for i in range(10_000):
            fh.write(json.dumps({"id": i, "text": f"value {i} of a form field, user{i}@x.org"}))
            fh.write("\n")
    started = time.monotonic()
    result = run("--guard", "waf", str(src))
    elapsed = time.monotonic() - started
    assert result.returncode == 0
    assert len(rows(result.stdout)) == 10_000
    assert elapsed < 20, elapsed
