"""Offline scanning: ``maestro-gateway scan --guard NAME IN... > OUT.jsonl``.

Each input row is a JSON object with a ``text`` field (``payload`` for sanitize; ``markdown``
is accepted too). It is written back with the guard's result added: ``verdict``
(allow | block | redact | escalate), ``score``, ``findings`` (``{type, start, end, rule,
score}``), ``latency_us`` and, where the guard changes text, ``output``. For the firewall,
``direction`` (the row's field, else ``--direction``) says whether the text is a request
(``input``, the default) or agent output (``output``: documents, tool results), which is
scored for indirect injection against ``indirect_threshold``. The scanners are the
guards' own functions with the same configuration the gateway would use (``--config``), so
offline figures are the data path's figures.

A bad row (not JSON, not an object, no text) is written back with an ``error`` field and
counted on stderr; the scan goes on. An input may be a directory: every ``*.jsonl`` in it,
sorted, and ``-`` is standard input.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from maestro_gateway.config import GuardsConfig
from maestro_gateway.scanning import Finding, ScanResult, ScanVerdict

__all__ = ["GUARDS", "ScanStats", "build_scanner", "scan_files", "scan_rows"]

Scanner = Callable[[dict[str, Any]], ScanResult]


@dataclass(frozen=True)
class Options:
    media_type: str | None = None  # sanitize: output mode for rows that name none
    direction: str = "input"  # firewall: rows are requests (input) or agent output (output)


def _waf(cfg: GuardsConfig, opts: Options) -> Scanner:
    from maestro_gateway.guards.waf import scan_value

    waf = cfg.waf

    def run(row: dict[str, Any]) -> ScanResult:
        score, found = scan_value(_text(row), waf, form=bool(row.get("form", False)))
        findings = tuple(
            Finding(f.family.upper(), f.start, f.end, str(f.rule_id), float(f.score)) for f in found
        )
        verdict: ScanVerdict = "block" if score >= waf.inbound_threshold else "allow"
        transforms = sorted({f.transform for f in found})
        return ScanResult(verdict, float(score), findings, details={"transform": transforms})

    return run


def _sanitize(cfg: GuardsConfig, opts: Options) -> Scanner:
    from maestro_gateway.guards.sanitize import sanitize_text

    san = cfg.sanitize

    def run(row: dict[str, Any]) -> ScanResult:
        text = row.get("payload")
        if not isinstance(text, str):
            text = row.get("markdown") if "markdown" in row else _text(row)
        if not isinstance(text, str):
            raise ValueError("row has no string 'payload', 'markdown' or 'text' field")
        mt = row.get("media_type")
        if not isinstance(mt, str):
            mt = opts.media_type or ("text/markdown" if "markdown" in row else "text/html")
        out, found = sanitize_text(text, mt, san)
        findings = tuple(Finding(f["type"], f["start"], f["end"], f["rule"]) for f in found)
        verdict: ScanVerdict = "redact" if out != text else "allow"
        return ScanResult(verdict, 1.0 if findings else 0.0, findings, output=out)

    return run


def _firewall(cfg: GuardsConfig, opts: Options) -> Scanner:
    from maestro_gateway.guards.firewall import Firewall

    fw, indirect_threshold = Firewall(cfg.firewall), cfg.firewall.indirect_threshold

    def run(row: dict[str, Any]) -> ScanResult:
        if (
            _direction(row, opts.direction) == "output"
        ):  # agent output: indirect injection, its own threshold
            return fw.scan_text(_text(row), indirect_threshold, indirect=True)
        return fw.scan_text(_text(row))

    return run


def _direction(row: dict[str, Any], default: str) -> str:
    """``input`` (a request) or ``output`` (agent output, documents, tool results): the row's
    own ``direction`` field, else ``default`` (the command line's)."""
    value = row.get("direction", default)
    if value not in ("input", "output"):
        raise ValueError("'direction' must be 'input' or 'output'")
    return str(value)


def _dlp(cfg: GuardsConfig, opts: Options) -> Scanner:
    from maestro_gateway.guards.dlp import Dlp

    dlp = Dlp(cfg.dlp)
    return lambda row: dlp.scan_text(_text(row))


GUARDS: dict[str, Callable[[GuardsConfig, Options], Scanner]] = {
    "firewall": _firewall,
    "waf": _waf,
    "dlp": _dlp,
    "sanitize": _sanitize,
}


def _text(row: dict[str, Any]) -> str:
    text = row.get("text")
    if not isinstance(text, str):
        raise ValueError("row has no string 'text' field")
    return text


def build_scanner(
    guard: str,
    cfg: GuardsConfig | None = None,
    media_type: str | None = None,
    direction: str = "input",
) -> Scanner:
    if guard not in GUARDS:
        raise ValueError(f"unknown guard {guard!r}; choose one of {', '.join(GUARDS)}")
    scanner = GUARDS[guard](cfg or GuardsConfig(), Options(media_type, direction))
    scanner({"text": "warm up: compile <b>patterns</b> 1=1", "payload": "<b>warm</b> up"})
    return scanner  # engines are built lazily: the first row's latency must not include that


@dataclass
class ScanStats:
    rows: int = 0
    bad: int = 0
    flagged: int = 0
    latency_us_total: float = 0.0


def scan_rows(
    lines: Iterator[tuple[str, int, bytes]], scanner: Scanner, out: IO[bytes], stats: ScanStats
) -> None:
    """Scan ``(source, line number, raw line)`` items, writing one result line each."""
    for source, lineno, raw in lines:
        if not raw.strip():
            continue
        stats.rows += 1
        try:
            row = orjson.loads(raw)
            if not isinstance(row, dict):
                raise ValueError("row is not a JSON object")
            started = time.perf_counter_ns()
            result = scanner(row)
            latency = (time.perf_counter_ns() - started) / 1000
        except Exception as exc:  # a bad row is reported, never fatal
            stats.bad += 1
            print(f"{source}:{lineno}: {type(exc).__name__}: {exc}", file=sys.stderr)
            out.write(orjson.dumps({"source": source, "line": lineno, "error": str(exc)[:300]}))
            out.write(b"\n")
            continue
        stats.latency_us_total += latency
        if result.verdict != "allow":
            stats.flagged += 1
        row.update(result.as_json())
        row["latency_us"] = round(latency, 1)
        out.write(orjson.dumps(row))
        out.write(b"\n")


def _inputs(paths: list[str]) -> Iterator[tuple[str, int, bytes]]:
    for name in paths:
        if name == "-":
            for i, raw in enumerate(sys.stdin.buffer, 1):
                yield "-", i, raw
            continue
        p = Path(name)
        files = sorted(p.glob("*.jsonl")) if p.is_dir() else [p]
        for f in files:
            with f.open("rb") as fh:
                for i, raw in enumerate(fh, 1):
                    yield str(f), i, raw


def scan_files(
    guard: str,
    paths: list[str],
    out: IO[bytes],
    cfg: GuardsConfig | None = None,
    media_type: str | None = None,
    direction: str = "input",
) -> ScanStats:
    scanner = build_scanner(guard, cfg, media_type, direction)
    for name in paths:
        if name != "-" and not Path(name).exists():
            raise FileNotFoundError(name)
    stats = ScanStats()
    scan_rows(_inputs(paths), scanner, out, stats)
    return stats
