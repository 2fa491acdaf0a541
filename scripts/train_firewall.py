"""Train the C2 firewall's classifier from the dev-train split of the shared corpora.

    .venv/bin/python scripts/train_firewall.py [--corpora ../shared/corpora] [--out PATH]

Reproducible: fixed seeds, a deterministic split (``sha256(id) % 10 < 7`` is dev-train) and
a deterministic solver (liblinear). Training rows: dev-train rows of ``prompts/attacks``,
``prompts/benign`` and ``indirect/*`` (``prompts/harmful_plain`` is never trained on: flagging
plain harmful requests is a policy choice reported apart), obfuscated copies of short
dev-train attacks, and synthetic rows from our own templates (benign text full of trigger
words; human-style attacks, some obfuscated). Rows are normalised exactly as at run time
(``maestro_gateway.text.normalize``), then featurised by ``_fw_model.featurize``.

The regularisation strength is chosen, and the Platt calibration fitted, on out-of-fold
margins (5 group-stratified folds of dev-train; an obfuscated copy stays in its original's
fold). The final model is refitted on all of dev-train and written to
``src/maestro_gateway/models/firewall.npz``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _firewall_data import (
    FILES,
    corpora_dir,
    decouple_indirect,
    load,
    obfuscated_copies,
    part_of,
    synthetic,
)
from _firewall_segments import build_docs, oof_doc_margins

from maestro_gateway.guards._fw_model import (
    MAX_CHARS,
    MODEL_PATH,
    N_FEATURES,
    SEGMENT_CHARS,
    Model,
    featurize,
    segments,
)
from maestro_gateway.guards._fw_segments import SegmentModel, seg_model_path
from maestro_gateway.guards._fw_sigs import Signatures
from maestro_gateway.text.normalize import normalize

SEED = 20261125
__all__ = ["main", "part_of"]  # part_of: the dev split, imported by scripts/eval.py
BENIGN_INSTRUCTION_WEIGHT = 4.0  # long benign instructions are the hard negatives
# The goals are 1% and 2%; agent output keeps a margin (dev sets have ~200 clean documents).
TARGET_FPR = {"direct": 0.01, "indirect": 0.015}
# Per matrix row: (file, label, role, signature score, source row); role "main" (the text),
# "seg" (a segment of agent output), "view" or "attack" (extra training texts).
kinds_of_rows: list[tuple[str, int, str, float, int]] = []
_SIGS = Signatures()


def _sig_score(text: str) -> float:
    keep = 1.0
    for rule in {r.id: r for r, _, _ in _SIGS.scan(text)}.values():
        keep *= 1.0 - rule.confidence
    return 1.0 - keep


GRID = np.r_[np.arange(0.5, 0.99, 0.005), np.arange(0.99, 0.9999, 0.0005)]


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


def _scores(p: np.ndarray, files: tuple[str, ...]) -> dict[int, tuple[float, int]]:
    """Per source row: the noisy-OR of model and signatures on its text, as ``scan_text``
    computes it (the "seg" rows are training texts only: at run time the segment model
    judges segments)."""
    best: dict[int, tuple[float, int]] = {}
    for i, (file, label, role, sig, src) in enumerate(kinds_of_rows):
        if role == "main" and file.startswith(files):
            score = 1.0 - (1.0 - p[i]) * (1.0 - sig)
            best[src] = (max(score, best.get(src, (0.0, label))[0]), label)
    return best


def _thresholds(p: np.ndarray, seg: list[float]) -> tuple[dict[str, float], float]:
    """Thresholds from out-of-fold dev-train scores, and the shift of the segment model's
    logit that puts its own threshold at the indirect one.

    Requests: the smallest threshold whose FPR on benign prompts meets TARGET_FPR. Agent
    output is flagged when the main score reaches ``t1`` or the segment model's probability
    reaches ``t2``; the pair with the best recall at TARGET_FPR on clean indirect rows is
    chosen, and the segment model is re-calibrated so that ``t2`` maps onto ``t1`` (the
    document score is the higher of the two).
    """
    rows = list(_scores(p, ("prompts/benign.jsonl", "synthetic")).values())
    for t in GRID:
        neg = [s >= t for s, y in rows if y == 0]
        if sum(neg) <= TARGET_FPR["direct"] * len(neg):
            break
    attacks = [
        1.0 - (1.0 - p[i]) * (1.0 - sig) >= t
        for i, (file, label, role, sig, _) in enumerate(kinds_of_rows)
        if role == "main" and label == 1 and file == "prompts/attacks.jsonl"
    ]
    print(
        f"direct: threshold {t:.3f}: out-of-fold FPR {sum(neg) / max(1, len(neg)):.4f}, "
        f"attacks.jsonl recall {sum(attacks) / max(1, len(attacks)):.4f}"
    )
    out = {"direct": round(float(t), 3)}
    ind = _scores(p, ("indirect/",))
    srcs = sorted(ind)
    main = np.array([ind[s][0] for s in srcs])
    segp = np.array([seg[s] for s in srcs])
    y = np.array([ind[s][1] for s in srcs])
    best = (-1.0, 0.99, 0.99)
    for t1 in GRID[GRID >= 0.9]:
        for t2 in GRID:
            flagged = (main >= t1) | (segp >= t2)
            if flagged[y == 0].sum() <= TARGET_FPR["indirect"] * (y == 0).sum():
                recall = float(flagged[y == 1].mean())
                if recall > best[0]:
                    best = (recall, float(t1), float(t2))
    recall, t1, t2 = best
    flagged = (main >= t1) | (segp >= t2)
    for name, sel in (("main only", main >= t1), ("main or segments", flagged)):
        print(
            f"indirect ({name}): threshold {t1:.4f} / segments {t2:.3f}: out-of-fold FPR "
            f"{sel[y == 0].mean():.4f}, recall {sel[y == 1].mean():.4f} "
            f"(dev-train indirect rows incl. planted templates)"
        )
    out["indirect"] = round(t1, 4)
    return out, _logit(t1) - _logit(min(t2, 0.9999))


OBFUSCATED = ("synthetic_obfuscated_attack", "obfuscated_")


def _rows_features(
    rows: list[dict[str, Any]],
) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray, np.ndarray]:
    """Feature matrix, labels, sample weights and group ids (one row per text scored)."""
    data: list[np.ndarray] = []
    indices: list[np.ndarray] = []
    indptr = [0]
    labels: list[int] = []
    weights: list[float] = []
    groups: list[int] = []
    kinds_of_rows.clear()
    for source, row in enumerate(rows):
        norm = normalize(row["text"][:MAX_CHARS])
        kinds = norm.signal_kinds()
        group = int(
            hashlib.sha256(
                str(row.get("group", row["id"])).removesuffix("-obf").encode()
            ).hexdigest()[:8],
            16,
        )
        weight = float(row.get("weight", 1.0))
        if row["category"] == "benign_instruction":
            weight *= BENIGN_INSTRUCTION_WEIGHT
        domain = "indirect" if str(row["file"]).startswith("indirect/") else "direct"
        texts = [(norm.text, kinds, "main", weight)]
        if row["label"] == 0 or str(row["category"]).startswith(OBFUSCATED):
            texts += [(v.text, kinds | {"view"}, "view", weight) for v in norm.views]
        if domain == "indirect" and len(norm.text) > SEGMENT_CHARS:
            # Segments of clean output are negatives; those of injected output are only
            # scored (weight 0: which segment holds the instruction is not known).
            seg_weight = weight if row["label"] == 0 else 0.0
            texts += [(seg, kinds, "seg", seg_weight) for seg in segments(norm.text)]
        if domain == "indirect" and row["label"] == 1 and row.get("attack_text"):
            texts.append((normalize(str(row["attack_text"])).text, kinds, "attack", weight))
        for text, sig, role, text_weight in texts:
            kinds_of_rows.append(
                (str(row["file"]), int(row["label"]), role, _sig_score(text), source)
            )
            idx, val = featurize(text, sig, domain)
            indices.append(idx)
            data.append(val)
            indptr.append(indptr[-1] + idx.size)
            labels.append(int(row["label"]))
            weights.append(text_weight)
            groups.append(group)
    x = sparse.csr_matrix(
        (np.concatenate(data), np.concatenate(indices), np.array(indptr)),
        shape=(len(labels), N_FEATURES),
    )
    x.sum_duplicates()
    return x, np.array(labels), np.array(weights), np.array(groups)


def _fit(x: sparse.csr_matrix, y: np.ndarray, w: np.ndarray, c: float) -> LogisticRegression:
    clf = LogisticRegression(
        C=c, solver="liblinear", class_weight="balanced", max_iter=2000, random_state=SEED
    )
    clf.fit(x, y, sample_weight=w)
    return clf


def _oof(x: sparse.csr_matrix, y: np.ndarray, w: np.ndarray, g: np.ndarray, c: float) -> np.ndarray:
    out = np.zeros(len(y))
    folds = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=SEED)
    for train, test in folds.split(x, y, g):
        out[test] = _fit(x[train], y[train], w[train], c).decision_function(x[test])
    return out


def _segments(indirect: list[dict[str, Any]]) -> tuple[dict[str, float], SegmentModel]:
    """The segment model (``_firewall_segments``): out-of-fold calibrated probability per
    indirect row id, and the shipped model (the average of the fold models)."""
    started = time.perf_counter()
    docs = build_docs(indirect)
    margins, coef, bias = oof_doc_margins(docs)
    keep = np.array([d.row_id is not None for d in docs])
    labels = np.array([d.span is not None for d in docs], dtype=int)
    platt = LogisticRegression(C=1e6, solver="lbfgs", max_iter=1000)
    platt.fit(margins[keep].reshape(-1, 1), labels[keep])
    probs = platt.predict_proba(margins.reshape(-1, 1))[:, 1]
    auc = roc_auc_score(labels[keep], margins[keep])
    a, b = float(platt.coef_[0][0]), float(platt.intercept_[0])
    print(
        f"segment model: {len(docs)} documents, out-of-fold document AUC {auc:.4f} "
        f"(folds by document x attack), Platt a={a:.4f} b={b:.4f} "
        f"({time.perf_counter() - started:.0f}s)"
    )
    weights = coef.astype(np.float32)
    meta = {
        "trained_on": "dev-train (sha256(id) % 10 < 7) indirect/* + planted templates",
        "documents": len(docs),
        "oof_auc": round(float(auc), 5),
        "platt": [a, b],
    }
    model = SegmentModel(weights, bias, (a, b), meta)
    by_id = {d.row_id: float(p) for d, p in zip(docs, probs, strict=True) if d.row_id}
    return by_id, model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpora", type=Path, default=corpora_dir())
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    parser.add_argument("--c-grid", default="4")
    args = parser.parse_args(argv)
    print(
        "command:",
        " ".join([".venv/bin/python", "scripts/train_firewall.py", *(argv or sys.argv[1:])]),
    )
    started = time.perf_counter()
    corpus = [r for f in FILES for r in load(f, args.corpora)]
    train = [r for r in corpus if r["split"] == "dev-train"]
    decoupled = decouple_indirect(train)
    rows = decoupled + obfuscated_copies(train) + synthetic()
    print(f"rows: {len(corpus)} corpus, {len(train)} dev-train, {len(rows)} with augmentation")
    x, y, w, g = _rows_features(rows)
    print(
        f"matrix: {x.shape[0]} x {x.shape[1]}, {x.nnz} non-zeros "
        f"({time.perf_counter() - started:.1f}s)"
    )
    best: tuple[float, float, np.ndarray] | None = None
    for c in (float(v) for v in args.c_grid.split(",")):
        oof = _oof(x, y, w, g, c)
        auc = roc_auc_score(y, oof, sample_weight=w)
        cal = LogisticRegression(C=1e6, max_iter=1000).fit(oof.reshape(-1, 1), y, sample_weight=w)
        loss = log_loss(y, cal.predict_proba(oof.reshape(-1, 1))[:, 1], sample_weight=w)
        print(f"C={c:g}: out-of-fold AUC {auc:.5f}, calibrated log-loss {loss:.5f}")
        if best is None or -loss > best[0]:
            best = (-loss, c, oof)
    assert best is not None
    _, c, oof = best
    platt = LogisticRegression(C=1e6, solver="lbfgs", max_iter=1000)
    platt.fit(oof.reshape(-1, 1), y, sample_weight=w)
    seg_by_id, seg_model = _segments(
        [r for r in decoupled if str(r["file"]).startswith("indirect/")]
    )
    seg = [seg_by_id.get(str(r["id"]), 0.0) for r in rows]
    thresholds, shift = _thresholds(platt.predict_proba(oof.reshape(-1, 1))[:, 1], seg)
    seg_model.platt_b += shift
    seg_model.meta["platt"] = [seg_model.platt_a, seg_model.platt_b]
    seg_model.meta["shift"] = round(shift, 5)
    a, b = float(platt.coef_[0][0]), float(platt.intercept_[0])
    final = _fit(x, y, w, c)
    meta = {
        "trained_on": "dev-train (sha256(id) % 10 < 7) of " + ", ".join(FILES) + " + synthetic",
        "rows": int(x.shape[0]),
        "C": c,
        "platt": [a, b],
        "seed": SEED,
        "oof_log_loss": round(-best[0], 5),
        "suggested_thresholds": thresholds,
    }
    weights = np.zeros(N_FEATURES, dtype=np.float32)
    weights[:] = final.coef_[0]
    model = Model(weights, float(final.intercept_[0]), (a, b), meta)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    seg_model.save(seg_model_path(str(args.out)))
    size = args.out.stat().st_size + seg_model_path(str(args.out)).stat().st_size
    print(
        f"chose C={c:g}; Platt a={a:.4f} b={b:.4f}; wrote {args.out} ({size / 1e6:.2f} MB) "
        f"in {time.perf_counter() - started:.0f}s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
