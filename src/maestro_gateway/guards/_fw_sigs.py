"""Multi-pattern matching for the firewall's signature layer (Hyperscan; ``re`` fallback)."""

from __future__ import annotations

import importlib
import re
from typing import Any

from maestro_gateway.guards._fw_rules import RULES, Rule


def _optional(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:  # pragma: no cover - hyperscan is a dependency; re keeps us working
        return None


_hs: Any = _optional("hyperscan")
HYPERSCAN = _hs is not None
Match = tuple[Rule, int, int]


_WINDOW = 2048  # bytes searched with ``re`` before a match's end, to find its span


def _first(rule_index: int, start: int, end: int, flags: int, found: dict[int, int]) -> None:
    found.setdefault(rule_index, end)


class Signatures:
    """Scans a text against every rule once; reports each rule's leftmost match."""

    def __init__(self, rules: tuple[Rule, ...] = RULES, use_hyperscan: bool = True) -> None:
        self.rules = rules
        self._regex = [re.compile(r.pattern, re.IGNORECASE | re.MULTILINE) for r in rules]
        self._db: Any = None
        if _hs is not None and use_hyperscan:
            flags = _hs.HS_FLAG_CASELESS | _hs.HS_FLAG_MULTILINE | _hs.HS_FLAG_SINGLEMATCH
            db = _hs.Database()
            db.compile(
                expressions=[r.pattern.encode() for r in rules],
                ids=list(range(len(rules))),
                elements=len(rules),
                flags=[flags] * len(rules),
            )
            self._db = db

    def scan(self, text: str) -> list[Match]:
        """``(rule, start, end)`` per matching rule, as character offsets into ``text``."""
        if self._db is None:
            return [
                (r, m.start(), m.end())
                for r, rx in zip(self.rules, self._regex, strict=True)
                if (m := rx.search(text))
            ]
        data = text.encode("utf-8", "replace")
        found: dict[int, int] = {}
        self._db.scan(data, match_event_handler=_first, context=found)
        out: list[Match] = []
        for index in sorted(found):
            end = found[index]
            lo = max(0, end - _WINDOW)
            window = data[lo:end].decode("utf-8", "ignore")
            base = len(data[:lo].decode("utf-8", "ignore")) if lo else 0
            m = self._regex[index].search(window)
            if m is None:  # a match longer than the window: report where it ends
                m = self._regex[index].search(text)
                if m is None:
                    continue
                base = 0
            out.append((self.rules[index], base + m.start(), base + m.end()))
        return out
