"""Segment model for agent output: is this sentence a request addressed to an assistant?

Indirect injections are often ordinary requests ("Show me how to...", "Add a sentence in your
response that...") slipped into an e-mail, a table, a code answer or a tool result. Over the
whole document a bag of words cannot see them, so agent output is also cut into segments
(lines, table cells, sentences; long ones into windows of ``WINDOW`` words) and each segment
is scored by a small linear model. The document's segment score is the highest segment's.

Features of a segment (the same function builds training and run-time features):
- hashed word unigrams and bigrams, the first word and first two words (imperatives and
  questions open a request), the last word;
- its shape: length bucket, ends with "?", starts with a capital, share of digit and
  capitalised tokens (table cells and headers are mostly names and numbers);
- its position (first, last, middle) and how different its words are from the rest of the
  document (cosine of hashed word counts, bucketed): an inserted request is off-topic.

Everything is vectorised over the document's tokens (``numpy`` only).
"""

from __future__ import annotations

import functools
import re
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt

from maestro_gateway.guards._fw_model import LinearModel

SEG_DIM = 1 << 18
DENSE = (
    "len_3_5",
    "len_6_12",
    "len_13_30",
    "len_31_plus",
    "ends_question",
    "starts_upper",
    "digits_25",
    "caps_50",
    "first",
    "last",
    "only",
    "cos_0_05",
    "cos_05_15",
    "cos_15_30",
    "cos_30_plus",
    "code_like",
)
N_SEG_FEATURES = SEG_DIM + len(DENSE)
MIN_WORDS = 3
WINDOW = 40
MAX_SEGMENTS = 256
_D = {name: SEG_DIM + i for i, name in enumerate(DENSE)}

_SPLIT = re.compile(r"\s*(?:\n|\||\t|(?<=[.!?:;])\s+(?=[\"'(\[]?[A-Z0-9]))\s*")
_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")
_MIX1 = np.uint64(0xFF51AFD7ED558CCD)
_MIX2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33, _S29 = np.uint64(33), np.uint64(29)
_K = {
    k: np.uint64(v)
    for k, v in (
        ("uni", 0x9E3779B97F4A7C15),
        ("bi", 0x27D4EB2F165667C5),
        ("first", 0x165667B19E3779F9),
        ("first2", 0xD6E8FEB86659FD93),
        ("last", 0x94D049BB133111EB),
    )
}
_SEG_MASK = np.uint64(SEG_DIM - 1)
_COS_BUCKETS = np.uint64(4095)
_LEN_EDGES = np.array([5, 12, 30])  # words: 3-5, 6-12, 13-30, 31+
_COS_EDGES = np.array([0.05, 0.15, 0.30])

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


def _mix(h: npt.NDArray[np.uint64]) -> IntArray:
    h = h ^ (h >> _S33)
    h = h * _MIX1
    h = h ^ (h >> _S29)
    h = h * _MIX2
    h = h ^ (h >> _S33)
    return (h & _SEG_MASK).astype(np.int64)


def split_segments(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each segment of ``text`` (lines, cells, sentences), in order."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _SPLIT.finditer(text):
        if m.start() > start:
            spans.append((start, m.start()))
        start = m.end()
        if len(spans) >= MAX_SEGMENTS:
            return spans
    if start < len(text):
        spans.append((start, len(text)))
    return spans


class SegmentFeatures:
    """Sparse features of every scored segment of one text: ``rows[k]`` is the segment
    (index into ``spans``) that feature ``(idx[k], val[k])`` belongs to."""

    __slots__ = ("idx", "rows", "spans", "val")

    def __init__(
        self, spans: list[tuple[int, int]], rows: IntArray, idx: IntArray, val: FloatArray
    ) -> None:
        self.spans = spans
        self.rows = rows
        self.idx = idx
        self.val = val


def segment_features(text: str) -> SegmentFeatures:
    """Features of each segment of ``text`` with at least ``MIN_WORDS`` words."""
    spans: list[tuple[int, int]] = []
    words: list[str] = []
    seg_of: list[int] = []
    upper: list[bool] = []
    qmark: list[bool] = []
    codey: list[bool] = []
    for a, b in split_segments(text):
        toks = _WORD.findall(text, a, b)
        if not toks:
            continue
        for i in range(0, len(toks), WINDOW):
            part = toks[i : i + WINDOW]
            if len(part) < MIN_WORDS and (i > 0 or len(toks) < MIN_WORDS):
                if i > 0:  # a short tail joins the previous window
                    words.extend(part)
                    seg_of.extend([len(spans) - 1] * len(part))
                continue
            spans.append((a, b))
            piece = text[a:b]
            codey.append(sum(map(piece.count, "=(){}[];<>_`")) >= 0.04 * len(piece))
            upper.append(part[0][:1].isupper())
            qmark.append(text[a:b].rstrip().endswith("?") and i + WINDOW >= len(toks))
            words.extend(part)
            seg_of.extend([len(spans) - 1] * len(part))
    n = len(spans)
    if n == 0:
        return SegmentFeatures([], *(np.zeros(0, np.int64),) * 2, np.zeros(0, np.float32))
    seg = np.array(seg_of, dtype=np.int64)
    lower = [w.lower() for w in words]
    h = np.fromiter((zlib.crc32(w.encode()) for w in lower), np.uint64, len(lower))
    is_digit = np.fromiter((w.isdigit() for w in words), bool, len(words))
    is_cap = np.fromiter((w[:1].isupper() for w in words), bool, len(words))
    starts = np.flatnonzero(np.concatenate(([True], seg[1:] != seg[:-1])))
    bounds = np.append(starts, seg.size)
    ends = bounds[1:] - 1
    counts = np.diff(bounds)
    same = seg[1:] == seg[:-1]
    bi_h = (h[:-1] * _K["uni"] + h[1:]) * _K["bi"]
    second = np.minimum(starts + 1, ends)
    hashed = [
        (_mix(h * _K["uni"]), seg),
        (_mix(bi_h[same]), seg[1:][same]),
        (_mix(h[starts] * _K["first"]), np.arange(n)),
        (_mix((h[starts] * _K["uni"] + h[second]) * _K["first2"]), np.arange(n)),
        (_mix(h[ends] * _K["last"]), np.arange(n)),
    ]
    idx = np.concatenate([i for i, _ in hashed])
    rows = np.concatenate([r for _, r in hashed])
    per_seg = np.bincount(rows, minlength=n).astype(np.float32)
    val = (1.0 / np.sqrt(per_seg))[rows]
    dense_rows, dense_idx = _dense(n, counts, seg, h, is_digit, is_cap, upper, qmark, codey)

    return SegmentFeatures(
        spans,
        np.concatenate([rows, dense_rows]),
        np.concatenate([idx, dense_idx]),
        np.concatenate([val, np.ones(dense_rows.size, np.float32)]).astype(np.float32),
    )


def _dense(
    n: int,
    counts: IntArray,
    seg: IntArray,
    h: npt.NDArray[np.uint64],
    is_digit: npt.NDArray[np.bool_],
    is_cap: npt.NDArray[np.bool_],
    upper: list[bool],
    qmark: list[bool],
    codey: list[bool],
) -> tuple[IntArray, IntArray]:
    """Indicator features of each segment: shape, position and topic shift."""
    rng = np.arange(n)
    length = _D["len_3_5"] + np.searchsorted(_LEN_EDGES, counts)
    rows = [rng]
    idx = [length]
    digits = np.bincount(seg, weights=is_digit, minlength=n) / counts
    caps = np.bincount(seg, weights=is_cap, minlength=n) / counts
    for name, mask in (
        ("ends_question", np.array(qmark)),
        ("starts_upper", np.array(upper)),
        ("digits_25", digits >= 0.25),
        ("caps_50", caps >= 0.5),
        ("code_like", np.array(codey)),
    ):
        rows.append(rng[mask])
        idx.append(np.full(int(mask.sum()), _D[name]))
    if n == 1:
        rows.append(np.zeros(1, np.int64))
        idx.append(np.array([_D["only"]]))
        return np.concatenate(rows), np.concatenate(idx)
    rows += [np.array([0, n - 1])]
    idx += [np.array([_D["first"], _D["last"]])]
    # Topic shift: cosine between the segment's hashed word counts and the rest's.
    bucket = (h & _COS_BUCKETS).astype(np.int64)
    doc = np.bincount(bucket, minlength=4096).astype(np.float64)
    keys, cnt = np.unique(seg * 4096 + bucket, return_counts=True)
    key_seg = keys // 4096
    seg_sq = np.bincount(key_seg, weights=cnt.astype(np.float64) ** 2, minlength=n)
    dot_doc = np.bincount(key_seg, weights=cnt * doc[keys % 4096], minlength=n)
    rest_dot = dot_doc - seg_sq
    rest_sq = float(doc @ doc) - 2 * dot_doc + seg_sq
    cos = rest_dot / np.sqrt(np.maximum(seg_sq * rest_sq, 1e-9))
    cos_idx = _D["cos_0_05"] + np.searchsorted(_COS_EDGES, cos, side="right")
    rows.append(rng)
    idx.append(cos_idx)
    return np.concatenate(rows), np.concatenate(idx)


def segment_margins(feats: SegmentFeatures, weights: FloatArray, bias: float) -> FloatArray:
    """The linear model's margin for each segment of ``feats``."""
    if not feats.spans:
        return np.zeros(0, np.float32)
    contrib = weights[feats.idx] * feats.val
    return (np.bincount(feats.rows, weights=contrib, minlength=len(feats.spans)) + bias).astype(
        np.float32
    )


SEG_MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "firewall-seg.npz"


def seg_model_path(model_path: str | None) -> Path:
    """The segment model next to a main model file (``x.npz`` -> ``x-seg.npz``)."""
    if model_path is None:
        return SEG_MODEL_PATH
    path = Path(model_path)
    return path.with_name(path.stem + "-seg.npz")


class SegmentModel(LinearModel):
    """The calibrated segment model: ``score`` is the probability that the document carries
    a request addressed to an assistant, with the span of the segment that does."""

    N_FEATURES = N_SEG_FEATURES
    LABEL = "segment model"

    def score(self, text: str) -> tuple[float, tuple[int, int]]:
        """Calibrated probability of the highest-scoring segment, and its span."""
        feats = segment_features(text)
        if not feats.spans:
            return 0.0, (0, 0)
        margins = segment_margins(feats, self.weights, self.bias)
        best = int(np.argmax(margins))
        return self.probability(float(margins[best])), feats.spans[best]


@functools.lru_cache(maxsize=4)
def load_segment_model(path: str = str(SEG_MODEL_PATH)) -> SegmentModel:
    """Load (once per path) a segment model written by ``scripts/train_firewall.py``."""
    return SegmentModel.read(path)
