"""The firewall's classifier: hashed n-gram features and a calibrated linear model (numpy only).

Features of a folded text (the same function builds training and run-time features):
- character 3-5-grams of the lower-cased, whitespace-collapsed text, hashed with a
  vectorised FNV-style hash (stable across processes, unlike ``hash()``);
- word unigrams and bigrams, hashed from CRC-32 of each word;
- each group weighted ``1 + log(tf)`` and L2-normalised;
- each feature twice: shared, and in a copy for its domain ("direct" requests, "indirect"
  agent output), so the two kinds of text can weigh the same words differently;
- one indicator per evasion signal (zero-width, homoglyph, base64 ...), after the hash space.

The weights, bias and Platt calibration come from ``scripts/train_firewall.py``.
"""

from __future__ import annotations

import functools
import json
import re
import zlib
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt

DIM = 1 << 20
SIGNALS = (
    "zero_width",
    "bidi_control",
    "tag_chars",
    "homoglyph",
    "nfkc_fold",
    "leetspeak",
    "html_comment",
    "spaced_letters",
    "encoded_base64",
    "encoded_hex",
    "encoded_url",
    "encoded_html_entities",
    "encoded_rot13",
    "view",
)
N_FEATURES = DIM + len(SIGNALS)
MAX_CHARS = 8192
MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "firewall.npz"

_WS = re.compile(r"\s+")
_WORD = re.compile(r"[a-z0-9']+")
_FNV = np.uint64(0x100000001B3)
_MIX1 = np.uint64(0xFF51AFD7ED558CCD)
_MIX2 = np.uint64(0xC4CEB9FE1A85EC53)
_SEEDS = {n: np.uint64(0xCBF29CE484222325 ^ (n * 0x9E3779B9)) for n in (3, 4, 5)}
_K_UNI, _K_BI_A, _K_BI_B = (
    np.uint64(0x9E3779B97F4A7C15),
    np.uint64(31),
    np.uint64(0x27D4EB2F165667C5),
)
_SHIFT33, _SHIFT29 = np.uint64(33), np.uint64(29)
_DIM = np.uint64(DIM)
_DOMAIN = {"direct": np.int64(0x5A5A5), "indirect": np.int64(0xA3C3F)}
_HALF = np.float32(np.sqrt(0.5))

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


def _mix(h: npt.NDArray[np.uint64]) -> IntArray:
    h = h ^ (h >> _SHIFT33)
    h = h * _MIX1
    h = h ^ (h >> _SHIFT29)
    h = h * _MIX2
    h = h ^ (h >> _SHIFT33)
    return (h % _DIM).astype(np.int64)


def _group(idx: IntArray) -> tuple[IntArray, FloatArray]:
    if idx.size == 0:
        return idx, np.zeros(0, np.float32)
    uniq, counts = np.unique(idx, return_counts=True)
    val = (1.0 + np.log(counts)).astype(np.float32)
    val /= np.float32(np.sqrt(float(np.dot(val, val))))
    return uniq, val


def featurize(
    text: str, signals: frozenset[str] | set[str] = frozenset(), domain: str = "direct"
) -> tuple[IntArray, FloatArray]:
    """Sparse features ``(indices, values)`` of one folded text (first ``MAX_CHARS`` chars)."""
    t = _WS.sub(" ", text[:MAX_CHARS].lower()).strip()
    cps = np.frombuffer(t.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    grams: list[npt.NDArray[np.uint64]] = []
    for n in (3, 4, 5):
        m = cps.size - n + 1
        if m <= 0:
            continue
        h = np.full(m, _SEEDS[n], dtype=np.uint64)
        for k in range(n):
            h = (h ^ cps[k : k + m]) * _FNV
        grams.append(h)
    chars = _mix(np.concatenate(grams)) if grams else np.zeros(0, np.int64)
    words = _WORD.findall(t)
    wh = np.fromiter((zlib.crc32(w.encode()) for w in words), dtype=np.uint64, count=len(words))
    word_parts = [wh * _K_UNI]
    if wh.size > 1:
        word_parts.append((wh[:-1] * _K_BI_A + wh[1:]) * _K_BI_B)
    word = _mix(np.concatenate(word_parts)) if wh.size else np.zeros(0, np.int64)
    ci, cv = _group(chars)
    wi, wv = _group(word)
    sig = [DIM + i for i, name in enumerate(SIGNALS) if name in signals]
    idx = np.concatenate([ci, wi])
    val = np.concatenate([cv, wv]) * _HALF
    # Domain adaptation ("frustratingly easy", Daume 2007): every feature also fires in a
    # copy owned by its domain, so direct prompts and agent output (documents, tool results)
    # share what they have in common yet each learns its own weights where they differ.
    dom = idx ^ _DOMAIN[domain]
    sig_idx = np.array(sig, dtype=np.int64)
    return (
        np.concatenate([idx, dom, sig_idx]),
        np.concatenate([val, val, np.ones(len(sig), dtype=np.float32)]),
    )


_LINES = re.compile(r"\n\s*")
SEGMENT_CHARS = 320
MAX_SEGMENTS = 48


def segments(text: str) -> list[str]:
    """Line-based segments of about ``SEGMENT_CHARS`` characters (at most ``MAX_SEGMENTS``):
    agent output is also judged piece by piece, so one instruction slipped into a long
    document is not diluted by the document's own words."""
    out: list[str] = []
    current = ""
    for line in _LINES.split(text):
        if len(current) + len(line) > SEGMENT_CHARS and current:
            out.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
        while len(current) > 2 * SEGMENT_CHARS:
            cut = current.rfind(" ", 0, SEGMENT_CHARS)
            cut = SEGMENT_CHARS if cut <= 0 else cut
            out.append(current[:cut])
            current = current[cut:].lstrip()
        if len(out) >= MAX_SEGMENTS:
            return out
    if current:
        out.append(current)
    return out


class LinearModel:
    """A calibrated linear model: weights over hashed features, a bias, a Platt scale, and
    the training metadata; saved and loaded as one ``.npz``. Subclasses set the feature count."""

    N_FEATURES: int = N_FEATURES
    LABEL = "model"

    def __init__(
        self, weights: FloatArray, bias: float, platt: tuple[float, float], meta: dict[str, Any]
    ) -> None:
        if weights.shape != (self.N_FEATURES,):
            raise ValueError(
                f"{self.LABEL} has {weights.shape} weights, expected ({self.N_FEATURES},)"
            )
        self.weights = weights
        self.bias = bias
        self.platt_a, self.platt_b = platt
        self.meta = meta

    def probability(self, margin: float) -> float:
        z = self.platt_a * margin + self.platt_b
        return float(1.0 / (1.0 + np.exp(-z))) if z > -500 else 0.0

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            weights=self.weights.astype(np.float16),
            bias=np.array([self.bias]),
            platt=np.array([self.platt_a, self.platt_b]),
            meta=np.array(json.dumps(self.meta, sort_keys=True)),
        )

    @classmethod
    def read(cls, path: str) -> Self:
        """The model saved at ``path`` (see ``save``)."""
        with np.load(path, allow_pickle=False) as data:
            platt = data["platt"]
            return cls(
                data["weights"].astype(np.float32),
                float(data["bias"][0]),
                (float(platt[0]), float(platt[1])),
                json.loads(str(data["meta"])),
            )


class Model(LinearModel):
    """A calibrated linear model over ``featurize`` features."""

    def margin(self, idx: IntArray, val: FloatArray) -> float:
        return float(np.dot(self.weights[idx], val)) + self.bias

    def score(
        self, text: str, signals: frozenset[str] | set[str] = frozenset(), domain: str = "direct"
    ) -> float:
        return self.probability(self.margin(*featurize(text, signals, domain)))


@functools.lru_cache(maxsize=4)
def load_model(path: str = str(MODEL_PATH)) -> Model:
    """Load (once per path) a model written by ``scripts/train_firewall.py``."""
    return Model.read(path)
