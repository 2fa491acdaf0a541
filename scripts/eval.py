"""`make eval`: run `maestro-gateway scan` over the development corpora and print the quality
tables of every content guard; the last line is one JSON object with the headline figures.

    .venv/bin/python scripts/eval.py [--corpora DIR] [--guards firewall,waf,dlp,sanitize]

Every figure comes from the scan command's output (the same code the gateway runs), written to
a temporary directory. Rows are labelled by the part of the data they belong to:

- ``dev-train``: what a guard was trained or tuned on (firewall: the training split of
  ``scripts/train_firewall.py``; WAF: the tuning half of ``waf/httpparams.jsonl``; DLP: the
  tuning split of ``scripts/eval_dlp.py``);
- ``dev-test``: never trained or tuned on — the figures to judge a guard by.

Classification is reported per file and per category: precision, recall, false-positive rate;
for DLP, entity-level precision and recall per entity type (see ``scripts/eval_dlp.py``).
The corpora are read at run time and never copied into the repository.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
Row = dict[str, Any]
Part = Callable[[Row], str]


def script(name: str) -> ModuleType:
    """Import a sibling script (their split functions define dev-train and dev-test)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def scan(guard: str, path: Path, out_dir: Path, *extra: str) -> list[Row]:
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{guard}-{path.parent.name}-{path.name}"
    exe = Path(sys.executable).with_name("maestro-gateway")
    with out.open("wb") as fh:
        subprocess.run(
            [str(exe), "scan", "--guard", guard, *extra, str(path)],
            stdout=fh,
            check=True,
            cwd=ROOT,
        )
    with out.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def ratio(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


def fmt(x: float | None) -> str:
    return "   -  " if x is None else f"{x:6.4f}"


def confusion(rows: list[Row]) -> dict[str, Any]:
    tp = sum(1 for r in rows if r["label"] == 1 and r["verdict"] != "allow")
    fn = sum(1 for r in rows if r["label"] == 1 and r["verdict"] == "allow")
    fp = sum(1 for r in rows if r["label"] == 0 and r["verdict"] != "allow")
    tn = sum(1 for r in rows if r["label"] == 0 and r["verdict"] == "allow")
    lat = sorted(r["latency_us"] for r in rows)
    return {
        "n": len(rows),
        "precision": ratio(tp, tp + fp) if tp + fn else None,  # no positives: undefined
        "recall": ratio(tp, tp + fn),
        "fpr": ratio(fp, fp + tn),
        "p50_us": round(statistics.median(lat), 1) if lat else None,
        "p99_us": round(lat[int(0.99 * (len(lat) - 1))], 1) if lat else None,
    }


def classification(title: str, files: dict[str, list[Row]], part: Part) -> dict[str, Any]:
    """Per file and per category tables, split into dev-train / dev-test."""
    print(f"\n## {title}\n")
    print(
        f"{'file':<28} {'part':<9} {'n':>6} {'prec':>6} {'recall':>6} {'FPR':>6} "
        f"{'p50µs':>7} {'p99µs':>7}"
    )
    summary: dict[str, Any] = {}
    for name, rows in files.items():
        good = [r for r in rows if "error" not in r]
        for p in ("dev-train", "dev-test", "all"):
            sel = good if p == "all" else [r for r in good if part(r) == p]
            if not sel or (p == "all" and len({part(r) for r in good}) == 1):
                continue
            c = confusion(sel)
            summary[f"{name}|{p}"] = c
            print(
                f"{name:<28} {p:<9} {c['n']:>6} {fmt(c['precision'])} {fmt(c['recall'])} "
                f"{fmt(c['fpr'])} {c['p50_us']:>7} {c['p99_us']:>7}"
            )
    print(f"\n{'file / category (dev-test)':<52} {'n':>6} {'flagged':>8}")
    for name, rows in files.items():
        by_cat: dict[str, list[Row]] = defaultdict(list)
        for r in rows:
            if "error" not in r and part(r) != "dev-train":
                by_cat[r.get("category", "?")].append(r)
        for cat, sel in sorted(by_cat.items()):
            flagged = sum(1 for r in sel if r["verdict"] != "allow")
            kind = "FPR" if sel[0]["label"] == 0 else "recall"
            print(f"{name + ' / ' + cat:<52} {len(sel):>6} {flagged / len(sel):>8.4f} ({kind})")
    return summary


def eval_firewall(corpora: Path, tmp: Path) -> dict[str, Any]:
    data = script("_firewall_data")  # the training split (scripts/train_firewall.py)

    def part(row: Row) -> str:
        return str(data.split_of(str(row["id"])))

    files = {
        f"{d}/{f}": scan("firewall", corpora / d / f, tmp, "--direction", direction)
        for d, f, direction in [
            ("prompts", "attacks.jsonl", "input"),
            ("prompts", "benign.jsonl", "input"),
            ("prompts", "harmful_plain.jsonl", "input"),
            ("indirect", "documents.jsonl", "output"),  # agent output: indirect injection
            ("indirect", "tool_outputs.jsonl", "output"),
        ]
    }
    return classification("AI firewall (C2)", files, part)


def eval_waf(corpora: Path, tmp: Path) -> dict[str, Any]:
    waf = script("eval_waf")
    tune_rows, _ = waf.split(waf.load(corpora / "waf" / "httpparams.jsonl"), waf.SEED)
    tuned = {r["id"] for r in tune_rows}

    def part(row: Row) -> str:
        return "dev-train" if row.get("id") in tuned else "dev-test"

    files = {
        f"waf/{f}": scan("waf", corpora / "waf" / f, tmp)
        for f in ("httpparams.jsonl", "payloadbox.jsonl")
    }
    return classification("WAF (C7)", files, part)


def eval_dlp(corpora: Path, tmp: Path) -> dict[str, Any]:
    """Default settings, then with the optional names layer (``guards.dlp.detect_names``)."""
    dlp = script("eval_dlp")
    print("\n## DLP (C19), default settings\n")
    pii = scan("dlp", corpora / "dlp" / "pii.jsonl", tmp)
    secrets = scan("dlp", corpora / "dlp" / "secrets.jsonl", tmp)
    result: dict[str, Any] = dlp.report_scanned(pii, secrets)
    names_cfg = tmp / "dlp-names.yaml"
    names_cfg.write_text(json.dumps({"guards": {"dlp": {"detect_names": True}}}))
    print("\n## DLP (C19), with the names layer (detect_names: true)\n")
    pii_names = scan(
        "dlp", corpora / "dlp" / "pii.jsonl", tmp / "names", "--config", str(names_cfg)
    )
    with_names = dlp.report_scanned(pii_names, secrets)
    for key in ("all_types_precision", "all_types_recall"):
        if key in with_names.get("headline", {}):
            result.setdefault("headline", {})[f"names_{key}"] = with_names["headline"][key]
    return result


def eval_sanitize(corpora: Path, tmp: Path) -> dict[str, Any]:
    san = script("eval_sanitize")
    print("\n## Output sanitisation (C23)\n")
    rows = scan("sanitize", corpora / "sanitize" / "dompurify.jsonl", tmp)
    hostile = [r for r in rows if "error" not in r and san.executable(r["payload"])]
    neutralised = sum(1 for r in hostile if not san.executable(r["output"]))
    md = scan("sanitize", corpora / "sanitize" / "commonmark.jsonl", tmp)
    md_ok = [r for r in md if "error" not in r]
    safe = sum(1 for r in md_ok if not san.executable(r["output"]))
    print(f"dompurify.jsonl: hostile fixtures neutralised {neutralised}/{len(hostile)}")
    print(
        f"commonmark.jsonl: outputs not executable {safe}/{len(md_ok)} "
        f"(meaning kept: see scripts/eval_sanitize.py)"
    )
    return {"hostile_neutralised": ratio(neutralised, len(hostile)), "hostile": len(hostile)}


EVALS = {"firewall": eval_firewall, "waf": eval_waf, "dlp": eval_dlp, "sanitize": eval_sanitize}


def headline(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    head: dict[str, Any] = {}
    fw = results.get("firewall", {})
    for key, name in [
        ("prompts/attacks.jsonl|dev-test", "firewall_attacks_recall"),
        ("indirect/documents.jsonl|dev-test", "firewall_indirect_documents"),
        ("indirect/tool_outputs.jsonl|dev-test", "firewall_indirect_tool_outputs"),
    ]:
        if key in fw:
            head[name] = (
                fw[key]["recall"]
                if name.endswith("recall")
                else {"recall": fw[key]["recall"], "fpr": fw[key]["fpr"]}
            )
    if "prompts/benign.jsonl|dev-test" in fw:
        head["firewall_benign_fpr"] = fw["prompts/benign.jsonl|dev-test"]["fpr"]
    waf = results.get("waf", {})
    if "waf/httpparams.jsonl|dev-test" in waf:
        c = waf["waf/httpparams.jsonl|dev-test"]
        head["waf_httpparams_recall"], head["waf_httpparams_fpr"] = c["recall"], c["fpr"]
    if "waf/payloadbox.jsonl|dev-test" in waf:
        head["waf_payloadbox_recall"] = waf["waf/payloadbox.jsonl|dev-test"]["recall"]
    if "dlp" in results:
        head.update({f"dlp_{k}": v for k, v in results["dlp"].get("headline", {}).items()})
    if "sanitize" in results:
        head["sanitize_hostile_neutralised"] = results["sanitize"]["hostile_neutralised"]
    return head


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = os.environ.get("MAESTRO_CORPORA", str(ROOT.parent / "shared" / "corpora"))
    ap.add_argument("--corpora", default=default)
    ap.add_argument("--guards", default=",".join(EVALS))
    args = ap.parse_args(argv)
    corpora = Path(args.corpora)
    if not corpora.is_dir():
        print(f"error: no corpora at {corpora} (set MAESTRO_CORPORA)", file=sys.stderr)
        return 2
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="maestro-eval-") as tmp:
        for guard in args.guards.split(","):
            results[guard] = EVALS[guard](corpora, Path(tmp))
    print(json.dumps(headline(results), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
