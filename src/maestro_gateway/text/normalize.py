"""Evasion folding shared by the content guards.

``normalize(text)`` returns the folded text the detectors read, the decoded alternatives
("views") found inside it, and the evasion signals seen on the way:

1. NFKC (fullwidth, mathematical letters, ligatures), homoglyph folding (Cyrillic/Greek
   look-alikes), and removal of zero-width, bidi and U+E0000 tag characters. Each removal
   is a signal; tag characters also spell hidden ASCII, which becomes a view.
2. Leetspeak folding ("1gn0r3" -> "ignore", one character for one, so offsets survive);
   HTML-comment and code-fence markers blanked (the text inside is kept and scanned).
3. Spaced-out letters ("i g n o r e") collapsed into a view.
4. Bounded-depth decoding of base64, hex, URL escapes, HTML entities and ROT13: each
   readable decoding is normalised again (depth - 1) and added as a view.

Offsets: ``Normalized.span(start, end)`` maps a span of the folded text back to the input.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field

from maestro_gateway.text._decode import decode_all
from maestro_gateway.text._fold import (
    BIDI,
    CONFUSABLES,
    LEET,
    LEET_TOKEN,
    SPACED,
    SPACED_SEP,
    TAG_FIRST,
    TAG_LAST,
    WORD_GAP,
    ZERO_WIDTH,
)

__all__ = ["Normalized", "Signal", "View", "normalize"]

_MARKERS = re.compile(r"<!--|-->|^[ \t]*(?:```|~~~)[\w+-]*[ \t]*$", re.MULTILINE)
_SPECIAL = re.compile(
    "["
    + re.escape("".join(sorted(ZERO_WIDTH | BIDI)))
    + "".join(re.escape(chr(c)) for c in CONFUSABLES)
    + "\U000e0000-\U000e007f]"
)
_MAX_VIEWS = 16
_EMAIL_AT = re.compile(r"[A-Za-z0-9._%+-]@[A-Za-z0-9-]")


@dataclass(frozen=True, slots=True)
class Signal:
    """An evasion technique seen in the input: its kind and where (input offsets)."""

    kind: str
    start: int
    end: int
    count: int = 1


@dataclass(frozen=True, slots=True)
class View:
    """A decoded or re-folded alternative text, and the input span it stands for."""

    text: str
    start: int
    end: int
    kind: str


@dataclass(frozen=True, slots=True)
class Normalized:
    text: str
    offsets: list[int] | None = None
    views: tuple[View, ...] = ()
    signals: tuple[Signal, ...] = ()
    size: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The input span of ``text[start:end]``."""
        if self.offsets is None:
            return start, end
        if not self.offsets:
            return 0, 0
        last = len(self.offsets) - 1
        a = self.offsets[min(max(start, 0), last)]
        b = self.offsets[min(max(end - 1, 0), last)] + 1
        return a, max(a, b)

    def signal_kinds(self) -> set[str]:
        return {s.kind for s in self.signals}


@functools.lru_cache(maxsize=4096)
def _nfkc(char: str) -> str:
    return unicodedata.normalize("NFKC", char)


def _fold_chars(text: str, signals: list[Signal]) -> tuple[str, list[int] | None, str]:
    """Folded text, its offset map (None when identical) and hidden tag-character text."""
    if text.isascii() or (
        _SPECIAL.search(text) is None and unicodedata.is_normalized("NFKC", text)
    ):
        return text, None, ""
    out: list[str] = []
    offsets: list[int] = []
    hidden: list[str] = []
    counts: dict[str, list[int]] = {}
    prev = ""
    for i, c in enumerate(text):
        cp = ord(c)
        if c in ZERO_WIDTH:
            if prev.isalnum() and c != "\u200d":
                counts.setdefault("zero_width", []).append(i)
            continue
        if c in BIDI:
            counts.setdefault("bidi_control", []).append(i)
            continue
        if TAG_FIRST <= cp <= TAG_LAST:
            if prev != "\U0001f3f4":  # black flag + tags = a regional flag emoji
                counts.setdefault("tag_chars", []).append(i)
                if 0xE0020 <= cp <= 0xE007E:
                    hidden.append(chr(cp - 0xE0000))
            continue
        mapped = CONFUSABLES.get(cp)
        if mapped is not None:
            if prev.isascii() and prev.isalpha():
                counts.setdefault("homoglyph", []).append(i)
            out.append(mapped)
            offsets.append(i)
            prev = mapped
            continue
        folded = c if cp < 0x80 else _nfkc(c)
        if folded != c and cp >= 0x80 and folded.isascii():
            counts.setdefault("nfkc_fold", []).append(i)
        for f in folded:
            out.append(f)
            offsets.append(i)
        prev = c
    for kind, where in counts.items():
        signals.append(Signal(kind, where[0], where[-1] + 1, len(where)))
    return "".join(out), offsets, "".join(hidden)


def _leet(text: str, signals: list[Signal]) -> str:
    """Fold leetspeak tokens. A digit only at a token's edge ("mp3", "7pm", "th3") is folded
    only when the text already has two tokens with leet characters inside them."""
    inner = 0

    def fold(m: re.Match[str], edges: bool) -> str:
        nonlocal inner
        token = m.group()
        if _EMAIL_AT.search(token):
            return token  # an address ("bob@example"), not "@" for "a"
        body = token.rstrip("!|")
        core = body.strip("0123456789")
        if core == core.translate(LEET) and not edges:
            return token
        new = body.translate(LEET)
        if not new.isalpha() or new == body:
            return token
        inner += 1
        return new + token[len(body) :]

    out = LEET_TOKEN.sub(lambda m: fold(m, False), text)
    if inner >= 2:
        signals.append(Signal("leetspeak", 0, len(text), inner))
        out = LEET_TOKEN.sub(lambda m: fold(m, True), out)
    return out


def _blank(m: re.Match[str]) -> str:
    return " " * len(m.group())


def _spaced(m: re.Match[str]) -> str:
    return " ".join(SPACED_SEP.sub("", word) for word in WORD_GAP.split(m.group()))


def normalize(text: str, max_depth: int = 2) -> Normalized:
    """Fold ``text`` and decode what it hides (see the module docstring)."""
    signals: list[Signal] = []
    views: list[View] = []
    folded, offsets, hidden = _fold_chars(text, signals)
    size = len(text)

    def where(start: int, end: int) -> tuple[int, int]:
        if offsets is None:
            return start, end
        if not offsets:
            return 0, 0
        last = len(offsets) - 1
        return offsets[min(start, last)], offsets[min(max(end - 1, 0), last)] + 1

    if hidden:
        views.append(View(hidden, 0, size, "tag_chars"))
    if "<!--" in folded or "```" in folded or "~~~" in folded:
        if "<!--" in folded:
            signals.append(Signal("html_comment", 0, size))
        folded = _MARKERS.sub(_blank, folded)
    decoded = decode_all(folded) if max_depth > 0 else []  # before leet folding mangles blobs
    if not folded.isalpha():
        folded = _leet(folded, signals)
    spaced = list(SPACED.finditer(folded))
    real = [m for m in spaced if sum(c.isalpha() for c in m.group()) >= 5]
    if real:
        a, b = where(real[0].start(), real[-1].end())
        signals.append(Signal("spaced_letters", a, b, len(real)))
        views.append(View(SPACED.sub(_spaced, folded), 0, size, "spaced"))
    for start, end, plain, kind in decoded:
        a, b = where(start, end)
        signals.append(Signal("encoded_" + kind, a, b))
        inner = normalize(plain, max_depth - 1)
        views.append(View(inner.text, a, b, kind))
        views.extend(View(v.text, a, b, kind + "+" + v.kind) for v in inner.views)
        signals.extend(Signal(s.kind, a, b, s.count) for s in inner.signals)
        if len(views) >= _MAX_VIEWS:
            break
    return Normalized(folded, offsets, tuple(views[:_MAX_VIEWS]), tuple(signals), size)
