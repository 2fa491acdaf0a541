"""Evaluate the C2 firewall on the shared corpora and measure its cost.

    .venv/bin/python scripts/eval_firewall.py [--corpora ../shared/corpora] [--threshold T]

Every row goes through ``Firewall.scan_text`` (normalisation, signatures, classifier: the
data path's code). Figures are given per file and per category, separately for "dev-test"
(``sha256(id) % 10 >= 7``: never trained or tuned on) and "dev-train" (labelled as such).
``prompts/harmful_plain.jsonl`` (plain harmful requests, no injection technique) is reported
apart: flagging it is a policy choice. Speed: ``scan_text`` on one core over 1 KB windows of
corpus text (p50/p99 per KB), and per corpus row. The last line is one JSON object with the
headline figures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _firewall_data import FILES, POLICY_FILES, corpora_dir, load, part_of

from maestro_gateway.guards.firewall import Firewall, FirewallGuardConfig

__all__ = ["main", "part_of"]  # part_of(row) -> "dev-train" | "dev-test"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _table(title: str, groups: dict[tuple[str, str], list[tuple[int, bool]]]) -> None:
    print(f"\n{title}")
    print(f"{'file':28} {'category':38} {'n':>6} {'flag':>6} {'recall':>7} {'FPR':>7} {'prec':>7}")
    for (file, cat), items in sorted(groups.items()):
        pos = [f for y, f in items if y == 1]
        neg = [f for y, f in items if y == 0]
        tp, fp = sum(pos), sum(neg)
        recall = f"{tp / len(pos):.4f}" if pos else "-"
        fpr = f"{fp / len(neg):.4f}" if neg else "-"
        prec = f"{tp / (tp + fp):.4f}" if (tp + fp) else "-"
        print(f"{file:28} {cat:38} {len(items):6} {tp + fp:6} {recall:>7} {fpr:>7} {prec:>7}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpora", type=Path, default=corpora_dir())
    parser.add_argument("--threshold", type=float, default=None, help="default: the config's")
    parser.add_argument("--bench-rounds", type=int, default=2000)
    args = parser.parse_args(argv)
    print(
        "command:",
        " ".join([".venv/bin/python", "scripts/eval_firewall.py", *(argv or sys.argv[1:])]),
    )
    cfg = FirewallGuardConfig()
    fw = Firewall(cfg.settings())
    threshold = cfg.threshold if args.threshold is None else args.threshold
    indirect_threshold = cfg.indirect_threshold if args.threshold is None else args.threshold
    by_split: dict[str, dict[tuple[str, str], list[tuple[int, bool]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    headline: dict[str, dict[str, list[tuple[int, bool]]]] = defaultdict(lambda: defaultdict(list))
    row_us: list[float] = []
    texts: list[str] = []
    for name in (*FILES, *POLICY_FILES):
        limit = indirect_threshold if name.startswith("indirect/") else threshold
        for row in load(name, args.corpora):
            t0 = time.perf_counter()
            result = fw.scan_text(row["text"], indirect=name.startswith("indirect/"))
            row_us.append((time.perf_counter() - t0) * 1e6)
            texts.append(row["text"])
            flagged = result.score >= limit
            label = int(row["label"])
            by_split[row["split"]][(name, "(all)")].append((label, flagged))
            by_split[row["split"]][(name, str(row["category"]))].append((label, flagged))
            headline[row["split"]][name].append((label, flagged))
    for split in ("dev-test", "dev-train"):
        _table(
            f"== {split} (threshold {threshold}, indirect {indirect_threshold}) ==", by_split[split]
        )
    # Speed: 1 KB windows of corpus text, on one core, everything included.
    rng = random.Random(1)
    joined = "\n".join(texts)
    windows = [
        joined[i : i + 1024]
        for i in (rng.randrange(len(joined) - 1024) for _ in range(args.bench_rounds))
    ]
    for w in windows[:50]:
        fw.scan_text(w)
    per_kb: list[float] = []
    cpu_kb: list[float] = []
    for w in windows:
        t0, c0 = time.perf_counter(), time.thread_time()
        fw.scan_text(w)
        cpu_kb.append((time.thread_time() - c0) * 1e3)
        per_kb.append((time.perf_counter() - t0) * 1e3)
    ind_kb: list[float] = []
    for w in windows:
        c0 = time.thread_time()
        fw.scan_text(w, indirect=True)
        ind_kb.append((time.thread_time() - c0) * 1e3)
    print(
        "speed per 1 KB window as agent output (indirect: + segments), CPU time: "
        f"p50 {_pct(ind_kb, 0.5):.3f} ms, p99 {_pct(ind_kb, 0.99):.3f} ms"
    )
    print(
        f"\nspeed per 1 KB window ({len(windows)} windows), wall: "
        f"p50 {_pct(per_kb, 0.5):.3f} ms, p99 {_pct(per_kb, 0.99):.3f} ms"
    )
    print(
        "speed per 1 KB window, CPU time of the scanning thread: "
        f"p50 {_pct(cpu_kb, 0.5):.3f} ms, p99 {_pct(cpu_kb, 0.99):.3f} ms"
    )
    print(
        f"speed per corpus row ({len(row_us)} rows): p50 {_pct(row_us, 0.5) / 1e3:.3f} ms, "
        f"p99 {_pct(row_us, 0.99) / 1e3:.3f} ms, max {max(row_us) / 1e3:.1f} ms"
    )
    test = headline["dev-test"]

    def rate(name: str, label: int) -> float:
        items = [f for y, f in test[name] if y == label]
        return round(sum(items) / len(items), 4) if items else 0.0

    clean = [f for n in FILES[2:] for y, f in test[n] if y == 0]
    injected = [f for n in FILES[2:] for y, f in test[n] if y == 1]
    summary: dict[str, Any] = {
        "guard": "firewall",
        "split": "dev-test",
        "attacks_recall": rate("prompts/attacks.jsonl", 1),
        "benign_fpr": rate("prompts/benign.jsonl", 0),
        "indirect_injected_recall": round(sum(injected) / max(1, len(injected)), 4),
        "indirect_clean_fpr": round(sum(clean) / max(1, len(clean)), 4),
        "harmful_plain_flagged": rate("prompts/harmful_plain.jsonl", 1),
        "p50_ms_per_kb": round(_pct(per_kb, 0.5), 3),
        "p99_ms_per_kb": round(_pct(per_kb, 0.99), 3),
        "cpu_p50_ms_per_kb": round(_pct(cpu_kb, 0.5), 3),
        "cpu_p99_ms_per_kb": round(_pct(cpu_kb, 0.99), 3),
        "indirect_cpu_p50_ms_per_kb": round(_pct(ind_kb, 0.5), 3),
        "indirect_cpu_p99_ms_per_kb": round(_pct(ind_kb, 0.99), 3),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
