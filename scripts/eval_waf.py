"""Evaluate the C7 WAF on the shared corpora and measure its per-request cost.

    .venv/bin/python scripts/eval_waf.py [--corpora ../shared/corpora] [--paranoia 1]

Each corpus ``text`` is scanned as one HTTP parameter value (``scan_value(..., form=True)``)
and flagged when its anomaly score reaches the inbound threshold. ``waf/httpparams.jsonl`` is
split 50/50, stratified by category, with a fixed seed: rules are tuned on the first half
only ("tuning"); the second half ("held-back") and ``waf/payloadbox.jsonl`` are reported
separately. As an extra false-positive check, benign natural language and documents
(``prompts/benign.jsonl``, label-0 rows of ``indirect/*.jsonl``) are scanned as if they were
data-part values (what ``inspect.text_parts: true`` would see). Latency is the guard's
``on_request`` on a realistic 1 KB A2A SendMessage (headers, a text part, a data part,
metadata), driven without an event loop.
The corpora are read at run time and never copied into the repository.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from maestro_gateway.context import RequestContext
from maestro_gateway.guards.waf import (
    HYPERSCAN,
    LIBINJECTION,
    WafGuard,
    WafGuardConfig,
    WafInspectConfig,
    scan_value,
)

SEED = 7
ROOT = Path(__file__).resolve().parents[1]


def load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def split(
    rows: list[dict[str, Any]], seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """50/50 per category, shuffled with ``seed``: (tuning, held-back)."""
    by_cat: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_cat[row["category"]].append(row)
    rng = random.Random(seed)
    tune: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    for cat in sorted(by_cat):
        group = by_cat[cat][:]
        rng.shuffle(group)
        half = (len(group) + 1) // 2
        tune += group[:half]
        held += group[half:]
    return tune, held


def evaluate(
    name: str, rows: list[dict[str, Any]], cfg: WafGuardConfig, show: int, form: bool = True
) -> dict[str, Any]:
    total: dict[str, int] = defaultdict(int)
    hits: dict[str, int] = defaultdict(int)
    errors: list[tuple[str, str, list[int]]] = []
    tp = fp = fn = tn = 0
    for row in rows:
        score, findings = scan_value(row["text"], cfg, form=form)
        flagged = score >= cfg.inbound_threshold
        cat = row["category"]
        total[cat] += 1
        hits[cat] += flagged
        if row["label"] == 1:
            tp, fn = tp + flagged, fn + (not flagged)
        else:
            fp, tn = fp + flagged, tn + (not flagged)
        if flagged != (row["label"] == 1) and len(errors) < show:
            errors.append((cat, row["text"][:140], [f.rule_id for f in findings]))
    out: dict[str, Any] = {"rows": len(rows), "per_category": {}}
    print(f"\n== {name}: {len(rows)} rows")
    for cat in sorted(total):
        rate = hits[cat] / total[cat]
        what = "false-positive rate" if cat.startswith("benign") else "detection rate"
        print(f"  {cat:26} {hits[cat]:6}/{total[cat]:<6} {what} {rate:.4%}")
        out["per_category"][cat] = round(rate, 6)
    if tp + fn:
        out["recall"] = round(tp / (tp + fn), 6)
        print(f"  recall (attacks detected) {out['recall']:.4%}")
    if tp + fn and tp + fp:
        out["precision"] = round(tp / (tp + fp), 6)
        print(f"  precision                 {out['precision']:.4%}")
    if fp + tn:
        out["fpr"] = round(fp / (fp + tn), 6)
        print(f"  false-positive rate       {out['fpr']:.4%} ({fp} of {fp + tn} benign)")
    for cat, text, ids in errors:
        print(f"    miss/FP {cat}: {text!r} {ids}")
    return out


def sample_request() -> RequestContext:
    """A typical 1 KB SendMessage: browser-ish headers, a text part, a data part, metadata."""
    params = {
        "message": {
            "messageId": "9f1c2d3e-4b5a-6789-abcd-ef0123456789",
            "contextId": "ctx-2024-05-17-sales",
            "role": "ROLE_USER",
            "parts": [
                {"text": "Please summarise last quarter's orders for the EMEA region and "
                         "flag anything unusual, e.g. refunds over 500 EUR or orders "
                         "shipped to a different country than billed. Keep it short."},
                {"data": {"region": "EMEA", "quarter": "2024-Q1", "currency": "EUR",
                          "filters": {"status": ["shipped", "refunded"], "min_total": 500},
                          "columns": ["order_id", "customer", "total", "country"],
                          "customer_note": "Call back after 3pm (ask for Anna O'Neill)",
                          "report_url": "https://reports.example.com/q1/emea?format=pdf"}},
            ],
            "metadata": {"skillId": "summarize", "locale": "en-GB",
                         "client": "crm-web/4.2.1", "tags": ["quarterly", "emea"]},
        },
        "configuration": {"acceptedOutputModes": ["text/plain", "application/json"],
                          "historyLength": 5},
    }  # fmt: skip
    headers = {
        "host": "gateway.example.com",
        "content-type": "application/json",
        "content-length": "1012",
        "a2a-version": "1.0",
        "accept": "application/json, text/event-stream",
        "user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0 Safari",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "authorization": "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbm5hIn0.c2lnbmF0dXJl",
    }
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": params})
    return RequestContext("r1", "echo", "SendMessage", params, headers=headers,
                          body_size=len(body), raw_body=body.encode())  # fmt: skip


def latency(cfg: WafGuardConfig, n: int) -> dict[str, float]:
    guard = WafGuard(cfg)
    ctx = sample_request()
    samples: list[float] = []
    for i in range(n + 500):
        ctx.extra.clear()
        coro = guard.on_request(ctx)
        t0 = time.perf_counter_ns()
        try:
            coro.send(None)
        except StopIteration as stop:
            verdict = stop.value
        t1 = time.perf_counter_ns()
        if i >= 500:
            samples.append((t1 - t0) / 1000)
    assert verdict.allowed, verdict.reason
    samples.sort()
    return {
        "body_bytes": ctx.body_size,
        "p50_us": round(statistics.median(samples), 1),
        "p99_us": round(samples[int(len(samples) * 0.99)], 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpora", type=Path, default=ROOT.parent / "shared" / "corpora")
    ap.add_argument("--paranoia", type=int, default=1)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--show-errors", type=int, default=0, help="print N misses / FPs per set")
    ap.add_argument("--iterations", type=int, default=20000)
    args = ap.parse_args(argv)
    cfg = WafGuardConfig(paranoia_level=args.paranoia)
    print(f"hyperscan={HYPERSCAN} libinjection={LIBINJECTION} paranoia={args.paranoia} "
          f"threshold={cfg.inbound_threshold} seed={args.seed}")  # fmt: skip
    params = load(args.corpora / "waf" / "httpparams.jsonl")
    tune, held = split(params, args.seed)
    report: dict[str, Any] = {
        "httpparams_tuning": evaluate("httpparams TUNING half", tune, cfg, args.show_errors),
        "httpparams_heldback": evaluate("httpparams HELD-BACK half", held, cfg, args.show_errors),
        "payloadbox": evaluate(
            "payloadbox (all attacks)",
            load(args.corpora / "waf" / "payloadbox.jsonl"),
            cfg,
            args.show_errors,
        ),
    }
    prose = load(args.corpora / "prompts" / "benign.jsonl")
    for name in ("documents", "tool_outputs"):
        prose += [r for r in load(args.corpora / "indirect" / f"{name}.jsonl") if r["label"] == 0]
    report["natural_language_benign"] = evaluate(
        "natural-language benign (prompts, documents, tool outputs) as data values",
        prose,
        cfg,
        args.show_errors,
        form=False,
    )
    text_cfg = cfg.model_copy(update={"inspect": WafInspectConfig(text_parts=True)})
    report["latency_default"] = latency(cfg, args.iterations)
    report["latency_text_parts"] = latency(text_cfg, args.iterations)
    print("\n== latency of on_request, 1 KB SendMessage (µs)")
    print(f"  default inspection:   {report['latency_default']}")
    print(f"  text parts inspected: {report['latency_text_parts']}")
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
