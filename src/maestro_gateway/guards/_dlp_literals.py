"""Many literal phrases found at once, case-insensitive and whole-word (hyperscan), for the
DLP names layer's word lists (nationalities, job titles): one pass over the text instead of a
Python loop over its words. Spans are in characters of the scanned ``str``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["Literals"]


class Literals:
    """Whole-word, case-insensitive occurrences of ``phrases``."""

    def __init__(self, phrases: Iterable[str]) -> None:
        import hyperscan  # imported here: only the optional names layer builds these

        self.phrases = sorted({p for p in phrases if p})
        self._db = hyperscan.Database()
        flags = hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SOM_LEFTMOST
        self._db.compile(
            expressions=[rb"\b" + re.escape(p).encode() + rb"\b" for p in self.phrases],
            ids=list(range(len(self.phrases))),
            elements=len(self.phrases),
            flags=[flags] * len(self.phrases),
        )

    def find(self, text: str) -> list[tuple[int, int]]:
        """(start, end) character spans of every occurrence, longest first at a start."""
        raw = text.encode("utf-8", "surrogatepass")
        found: list[tuple[int, int]] = []

        def on_match(pid: int, start: int, end: int, flags: int, context: object) -> None:
            found.append((start, end))

        self._db.scan(raw, match_event_handler=on_match)
        if len(raw) != len(text):  # non-ASCII: byte offsets to character offsets
            found = [(_chars(raw, s), _chars(raw, e)) for s, e in found]
        return sorted(set(found), key=lambda se: (se[0], se[0] - se[1]))


def _chars(raw: bytes, offset: int) -> int:
    return len(raw[:offset].decode("utf-8", "ignore"))
