"""Character-level folding tables: invisible characters, homoglyphs, leetspeak.

Kept apart from the algorithms in ``normalize.py`` so the tables can grow without noise.
"""

from __future__ import annotations

import re

# Zero-width and other invisible format characters (not the ZWJ inside emoji sequences,
# which ``normalize`` treats separately), bidi embeddings/overrides/isolates, and the
# U+E0000 tag block ("ASCII smuggling").
ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e\u034f")
BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
TAG_FIRST, TAG_LAST = 0xE0000, 0xE007F

# Letters from other scripts that render like Latin ones (a subset of Unicode's
# confusables.txt covering Cyrillic, Greek, Armenian and a few symbols; NFKC already folds
# fullwidth and mathematical alphanumerics).
_CONFUSABLE_PAIRS = (
    "\u0430a \u0432b \u0441c \u0435e \u04bbh \u0456i \u0458j \u043ak "
    "\u043cm \u043dh \u043eo \u0440p \u0455s \u0442t \u0445x \u0443y "
    "\u0501d \u051bq \u051dw \u04cfl \u0261g \u028fy \u0410A \u0412B "
    "\u0421C \u0415E \u041dH \u0406I \u0408J \u041aK \u041cM \u041eO "
    "\u0420P \u0405S \u0422T \u0425X \u0423Y \u050cG \u03b1a \u03b2b "
    "\u03b5e \u03b7n \u03b9i \u03bak \u03bdv \u03bfo \u03c1p \u03c4t "
    "\u03c5u \u03c7x \u03c9w \u0391A \u0392B \u0395E \u0396Z \u0397H "
    "\u0399I \u039aK \u039cM \u039dN \u039fO \u03a1P \u03a4T \u03a5Y "
    "\u03a7X \u0585o \u0578n \u057du \u0581g \u0570h \u2170i \u217cl "
    "\u2113l \u0131i \u0237j \u01c0l \ua4f2l "
)
CONFUSABLES: dict[int, str] = {}
for _pair in _CONFUSABLE_PAIRS.split():
    if len(_pair) == 2:
        CONFUSABLES[ord(_pair[0])] = _pair[1]

# Leetspeak: one character for one character, so offsets survive.
LEET = str.maketrans(
    {
        "0": "o",
        "1": "i",
        "3": "e",
        "4": "a",
        "5": "s",
        "7": "t",
        "@": "a",
        "$": "s",
        "!": "i",
        "|": "l",
    }
)
# A token mixing letters and leet characters ("1gn0r3", "pr3v!0us"), not a plain number.
LEET_TOKEN = re.compile(r"(?<![\w@$!|])(?=[\w@$!|]*[A-Za-z])(?=[\w@$!|]*[013457@$!|])[\w@$!|]{3,}")
# Letters spaced out: "i g n o r e", "i.g.n.o.r.e", "i-g-n-o-r-e" (at least four letters).
SPACED = re.compile(r"(?<!\w)(?:[A-Za-z0-9][ \t._\-*·|/]{1,3}){3,}[A-Za-z0-9](?!\w)")
SPACED_SEP = re.compile(r"[ \t._\-*·|/]")
WORD_GAP = re.compile(r"[ \t._\-*·|/]{2,}")

STOPWORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "for",
        "is",
        "are",
        "be",
        "you",
        "your",
        "this",
        "that",
        "with",
        "it",
        "as",
        "at",
        "by",
        "from",
        "not",
        "all",
        "i",
        "me",
        "my",
        "we",
        "do",
        "what",
        "how",
        "please",
        "now",
        "any",
    ]
)
