"""Evaluate the C19 DLP guard on the shared corpora (quality per entity type, and speed).

    .venv/bin/python scripts/eval_dlp.py [--corpora ../shared/corpora] [--show 5]

``dlp/pii.jsonl`` is scored at entity level: a finding counts as a true positive when its type
equals a gold span's type and the spans overlap with intersection-over-union >= 0.5 (each gold
span matched at most once); "exact" counts identical spans only. Gold types the guard has no
recognizer for (PERSON, STREET_ADDRESS, GPE, ORGANIZATION, TITLE, AGE, NRP, DOMAIN_NAME,
ZIP_CODE) count as misses in the all-types figure. ``dlp/secrets.jsonl`` is scored per row: a
row is flagged when any SECRET finding is reported.

Rows are split by ``sha256(id)``: first byte even = "dev-train" (rules were tuned looking at
these), odd = "dev-test" (never looked at while tuning). Both are reported, labelled.
Speed: ``Dlp.scan_text`` on 1 KB texts (corpus rows joined to >= 1 KB), best of 3 per text, µs
per KB, p50/p99. The corpora are read at run time and never copied into the repository.
Importable: ``evaluate(corpora) -> dict`` returns the metrics the last printed line holds;
``report_scanned(pii_rows, secrets_rows)`` scores rows already scanned by
``maestro-gateway scan --guard dlp`` (used by ``scripts/eval.py``) and returns them with a
``headline`` dict. Secrets: besides the FPR over every label-0 row, the FPR over label-0 rows
whose text is not labelled 1 elsewhere in the file (the same text is a near-miss for one rule
and a positive example of another, so no row-level detector can get both right).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from maestro_gateway.guards.dlp import Dlp, DlpGuardConfig

ROOT = Path(__file__).resolve().parents[1]
STRUCTURED = (
    "CREDIT_CARD", "PHONE_NUMBER", "EMAIL_ADDRESS", "IBAN_CODE", "US_SSN", "IP_ADDRESS",
    "US_DRIVER_LICENSE",
)  # fmt: skip
IOU = 0.5
GOLD_AS = {"GPE": "LOCATION"}  # the corpus says GPE where Presidio's analyzer says LOCATION


def corpora_dir(given: str | None = None) -> Path:
    return Path(given or os.environ.get("MAESTRO_CORPORA") or ROOT.parent / "shared" / "corpora")


def part_of(row_id: str) -> str:
    """The deterministic split of a row: "dev-train" or "dev-test"."""
    return "dev-train" if hashlib.sha256(row_id.encode()).digest()[0] % 2 == 0 else "dev-test"


def load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = min(a[1], b[1]) - max(a[0], b[0])
    return inter / (max(a[1], b[1]) - min(a[0], b[0])) if inter > 0 else 0.0


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return {"precision": round(p, 4), "recall": round(r, 4), "tp": tp, "fp": fp, "fn": fn}


Found = list[tuple[str, int, int]]
"""Findings of one row: (type, start, end)."""


def eval_pii(rows: list[dict[str, Any]], dlp: Dlp, show: int = 0) -> dict[str, Any]:
    return score_pii([(r, _found(dlp, r["text"])) for r in rows], show)


def _found(dlp: Dlp, text: str) -> Found:
    return [(f.type, f.start, f.end) for f in dlp.scan_text(text).findings]


def score_pii(scanned: list[tuple[dict[str, Any], Found]], show: int = 0) -> dict[str, Any]:
    """Entity-level scores of rows and their findings (same type, IoU >= 0.5)."""
    rows = [r for r, _ in scanned]
    tp: dict[str, int] = defaultdict(int)
    fp: dict[str, int] = defaultdict(int)
    fn: dict[str, int] = defaultdict(int)
    exact: dict[str, int] = defaultdict(int)
    rows_without: dict[str, int] = defaultdict(int)  # rows without a gold span of the type
    rows_flagged: dict[str, int] = defaultdict(int)  # ... where the type was still reported
    errors: list[str] = []
    types = set(STRUCTURED) | {"DATE_TIME", "UK_NINO", "SECRET", "PERSON", "LOCATION"}
    for row, found in scanned:
        text = row["text"]
        gold = [(GOLD_AS.get(s["type"], s["type"]), s["start"], s["end"]) for s in row["spans"]]
        used: set[int] = set()
        for ftype, start, end in found:
            best, best_iou = -1, IOU
            for i, (gtype, gs, ge) in enumerate(gold):
                if (
                    i not in used
                    and gtype == ftype
                    and (v := _iou((start, end), (gs, ge))) >= best_iou
                ):
                    best, best_iou = i, v
            if best >= 0:
                used.add(best)
                tp[ftype] += 1
                exact[ftype] += (start, end) == gold[best][1:]
            else:
                fp[ftype] += 1
                if len(errors) < show * 4:
                    errors.append(
                        f"FP {ftype} {text[start:end]!r} in {text[max(0, start - 30) : end + 10]!r}"
                    )
        for i, (gtype, gs, ge) in enumerate(gold):
            if i not in used:
                fn[gtype] += 1
                if gtype in STRUCTURED and len(errors) < show * 4:
                    errors.append(
                        f"FN {gtype} {text[gs:ge]!r} in {text[max(0, gs - 30) : ge + 10]!r}"
                    )
        gold_types = {g[0] for g in gold}
        found_types = {f[0] for f in found}
        for t in types:
            if t not in gold_types:
                rows_without[t] += 1
                rows_flagged[t] += t in found_types
    per_type: dict[str, Any] = {}
    for t in sorted(set(tp) | set(fp) | set(fn)):
        per_type[t] = _prf(tp[t], fp[t], fn[t]) | {"exact": exact[t]}
        if t in rows_without:
            per_type[t]["row_fpr"] = round(rows_flagged[t] / max(rows_without[t], 1), 4)
    s_tp, s_fp, s_fn = (sum(d[t] for t in STRUCTURED) for d in (tp, fp, fn))
    a_tp, a_fp, a_fn = (sum(d.values()) for d in (tp, fp, fn))
    return {
        "rows": len(rows),
        "per_type": per_type,
        "structured": _prf(s_tp, s_fp, s_fn),
        "all_types": _prf(a_tp, a_fp, a_fn),
        "errors": errors,
    }


def eval_secrets(
    rows: list[dict[str, Any]], dlp: Dlp, show: int = 0, positives: set[str] | None = None
) -> dict[str, Any]:
    scanned = [(r, [f.type for f in dlp.scan_text(r["text"]).findings]) for r in rows]
    return score_secrets(scanned, show, positives)


def score_secrets(
    scanned: list[tuple[dict[str, Any], list[str]]],
    show: int = 0,
    positives: set[str] | None = None,
) -> dict[str, Any]:
    """Row-level recall and false-positive rate (flagged = any SECRET finding). ``positives``:
    texts labelled 1 anywhere in the file; a label-0 row with such a text is a near-miss for
    one rule that the file itself calls a credential for another, reported apart."""
    if positives is None:
        positives = {r["text"] for r, _ in scanned if r["label"]}
    tp = fn = fp = tn = fp_contradicted = tn_contradicted = 0
    errors: list[str] = []
    for row, types in scanned:
        hit = "SECRET" in types
        if row["label"] == 1:
            tp += hit
            fn += not hit
            if not hit and len(errors) < show * 3:
                errors.append(f"FN {row['rule_id']}: {row['text'][:100]!r}")
        else:
            contradicted = row["text"] in positives
            fp += hit
            tn += not hit
            fp_contradicted += hit and contradicted
            tn_contradicted += (not hit) and contradicted
            if hit and len(errors) < show * 3:
                errors.append(f"FP {row['rule_id']}: {row['text'][:100]!r}")
    clean_neg = fp + tn - fp_contradicted - tn_contradicted
    return {
        "rows": len(scanned),
        "recall": round(tp / max(tp + fn, 1), 4),
        "fpr": round(fp / max(fp + tn, 1), 4),
        "fpr_excluding_texts_labelled_1": round((fp - fp_contradicted) / max(clean_neg, 1), 4),
        "tp": tp, "fn": fn, "fp": fp, "tn": tn,
        "fp_on_rows_also_labelled_positive": fp_contradicted,
        "negatives_also_labelled_positive": fp_contradicted + tn_contradicted,
        "errors": errors,
    }  # fmt: skip


def speed(texts: list[str], dlp: Dlp) -> dict[str, float]:
    """µs per KB of ``Dlp.scan_text`` over ~1 KB texts made of the given rows."""
    docs, cur = [], ""
    for t in texts:
        cur += t + "\n"
        if len(cur.encode()) >= 1024:
            docs.append(cur)
            cur = ""
    per_kb = []
    for doc in docs:
        best = min(_timed(dlp, doc) for _ in range(3))
        per_kb.append(best / (len(doc.encode()) / 1024))
    per_kb.sort()
    return {
        "texts": len(docs),
        "p50_us_per_kb": round(statistics.median(per_kb), 1),
        "p99_us_per_kb": round(per_kb[min(len(per_kb) - 1, int(len(per_kb) * 0.99))], 1),
    }


def _timed(dlp: Dlp, text: str) -> float:
    t0 = time.perf_counter()
    dlp.scan_text(text)
    return (time.perf_counter() - t0) * 1e6


def evaluate(corpora: Path | None = None, show: int = 0, names: bool = False) -> dict[str, Any]:
    """The metrics dict: per split, PII per type and secrets; speed. ``names``: with the
    optional PERSON/LOCATION gazetteer (``detect_names``)."""
    root = corpora or corpora_dir()
    with tempfile.TemporaryDirectory() as tmp:
        dlp = Dlp(DlpGuardConfig(hmac_key_path=str(Path(tmp) / "k"), detect_names=names))
        pii = load(root / "dlp" / "pii.jsonl")
        secrets = load(root / "dlp" / "secrets.jsonl")
        out: dict[str, Any] = {"span_rule": f"same type and IoU >= {IOU}", "names": names}
        positives = {r["text"] for r in secrets if r["label"] == 1}  # file-wide
        for part in ("dev-train", "dev-test"):
            n = show if part == "dev-train" else 0  # errors are shown for dev-train only
            sec = [r for r in secrets if part_of(r["id"]) == part]
            out[part] = {
                "pii": eval_pii([r for r in pii if part_of(r["id"]) == part], dlp, n),
                "secrets": eval_secrets(sec, dlp, n, positives),
            }
        benign = [r["text"] for r in pii if not r["spans"]]
        out["speed"] = {
            "mixed_corpus": speed([r["text"] for r in pii + secrets], dlp),
            "benign_text": speed(benign * 20, dlp),
        }
    return out


def _row(label: str, m: dict[str, Any], extra: str = "") -> str:
    counts = f"{m['tp']:4} {m['fp']:4} {m['fn']:4}"
    return f"{label:20} {m['precision']:6.3f} {m['recall']:6.3f} {counts}{extra}"


def _table(name: str, res: dict[str, Any]) -> None:
    pii, sec = res["pii"], res["secrets"]
    print(f"\n== {name}: dlp/pii.jsonl ({pii['rows']} rows), entity level")
    print(f"{'type':20} {'prec':>6} {'recall':>6}   tp   fp   fn exact row_fpr")
    for t, m in pii["per_type"].items():
        print(_row(t, m, f" {m['exact']:5} {m.get('row_fpr', '')!s:>7}"))
    for k in ("structured", "all_types"):
        print(_row(k.upper(), pii[k]))
    flagged, negatives = sec["fp"], sec["fp"] + sec["tn"]
    clean = negatives - sec["negatives_also_labelled_positive"]
    print(
        f"-- {name}: dlp/secrets.jsonl ({sec['rows']} rows): recall {sec['recall']:.3f} "
        f"({sec['tp']}/{sec['tp'] + sec['fn']}), FPR {sec['fpr']:.3f} ({flagged}/{negatives}); "
        f"FPR on label-0 texts not labelled 1 elsewhere in the file "
        f"{sec['fpr_excluding_texts_labelled_1']:.3f} "
        f"({flagged - sec['fp_on_rows_also_labelled_positive']}/{clean})"
    )
    for e in pii["errors"] + sec["errors"]:
        print("   ", e)


def headline(res: dict[str, Any]) -> dict[str, Any]:
    """The main dev-test figures (flat keys; ``scripts/eval.py`` prefixes them with dlp_)."""
    pii, sec = res["dev-test"]["pii"], res["dev-test"]["secrets"]
    head: dict[str, Any] = {
        "structured_precision": pii["structured"]["precision"],
        "structured_recall": pii["structured"]["recall"],
        "all_types_precision": pii["all_types"]["precision"],
        "all_types_recall": pii["all_types"]["recall"],
        "secrets_recall": sec["recall"],
        "secrets_fpr": sec["fpr"],
        "secrets_fpr_excluding_texts_labelled_1": sec["fpr_excluding_texts_labelled_1"],
    }
    for t in STRUCTURED:
        if t in pii["per_type"]:
            head[f"{t.lower()}_recall"] = pii["per_type"][t]["recall"]
    return head


def report_scanned(
    pii_rows: list[dict[str, Any]], secrets_rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """Tables from rows written by ``maestro-gateway scan --guard dlp`` (each row's fields plus
    ``verdict`` and ``findings`` with type/start/end), split into dev-train and dev-test;
    returns the metrics with a ``headline`` dict of the main dev-test figures. Rows with an
    ``error`` field are counted and left out."""
    bad = [r for r in pii_rows + secrets_rows if "error" in r]
    pii_ok = [r for r in pii_rows if "error" not in r]
    sec_ok = [r for r in secrets_rows if "error" not in r]
    positives = {r["text"] for r in sec_ok if r.get("label") == 1}
    out: dict[str, Any] = {"span_rule": f"same type and IoU >= {IOU}", "bad_rows": len(bad)}
    for part in ("dev-train", "dev-test"):
        pii = [(r, _scanned(r)) for r in pii_ok if part_of(r["id"]) == part]
        sec = [(r, [t for t, _, _ in _scanned(r)]) for r in sec_ok if part_of(r["id"]) == part]
        out[part] = {"pii": score_pii(pii), "secrets": score_secrets(sec, 0, positives)}
        _table(part, out[part])
    out["headline"] = headline(out)
    return out


def _scanned(row: dict[str, Any]) -> Found:
    return [(f["type"], int(f["start"]), int(f["end"])) for f in row.get("findings") or []]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpora", default=None)
    ap.add_argument("--names", action="store_true", help="with detect_names (needs faker)")
    ap.add_argument(
        "--show",
        type=int,
        default=0,
        help="print up to N*4 dev-train errors (dev-test errors are never shown)",
    )
    args = ap.parse_args(argv)
    res = evaluate(corpora_dir(args.corpora), args.show, args.names)
    for part in ("dev-train", "dev-test"):
        _table(part, res[part])
    print(f"\n== speed (Dlp.scan_text, µs per KB): {res['speed']}")
    head = {"guard": "dlp", "split": "dev-test", "detect_names": args.names}
    head |= headline(res) | {"speed_us_per_kb": res["speed"]["mixed_corpus"]}
    print(json.dumps(head))
    return 0


if __name__ == "__main__":
    sys.exit(main())
