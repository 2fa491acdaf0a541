"""DLP pattern layer: one hyperscan pass over the text (prefilter mode, one match per rule)
tells which rules can match at all; only those run their Python pattern and validators.

Prefilter mode accepts every construct the Python patterns use (lookarounds, backreferences,
large bounded repeats) by widening them, so its matches are a superset of the Python ones for
ASCII-class patterns (the patterns are compiled with ``re.ASCII``). On prose without digits or
key-like words most rules never run, which is where the speed comes from (docs/dlp.md).
If the database cannot be built, every rule runs (same findings, slower).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

log = logging.getLogger("maestro_gateway.guards.dlp")

try:
    import hyperscan

    HYPERSCAN = True
except ImportError:  # pragma: no cover - hyperscan is a dependency; kept for odd platforms
    HYPERSCAN = False

__all__ = ["HYPERSCAN", "Prefilter"]


class Prefilter:
    """Which of ``patterns`` (by index) may match a text; ``None`` when unknown (run all)."""

    def __init__(self, patterns: Sequence[tuple[str, bool]]) -> None:
        """``patterns``: (expression, case-insensitive) pairs."""
        self.size = len(patterns)
        self._db: object | None = None
        if not HYPERSCAN:
            return
        flags = hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_SINGLEMATCH
        flags |= hyperscan.HS_FLAG_ALLOWEMPTY
        db = hyperscan.Database()
        try:
            db.compile(
                expressions=[p.encode() for p, _ in patterns],
                ids=list(range(len(patterns))),
                elements=len(patterns),
                flags=[flags | (hyperscan.HS_FLAG_CASELESS if ci else 0) for _, ci in patterns],
            )
        except hyperscan.error as exc:  # every rule runs instead: correct, slower
            log.warning("DLP prefilter not built; every rule runs", extra={"error": str(exc)})
            return
        self._db = db

    def hits(self, text: str) -> set[int] | None:
        if self._db is None:
            return None
        found: set[int] = set()

        def on_match(rule: int, start: int, end: int, flags: int, context: object) -> None:
            found.add(rule)

        self._db.scan(  # type: ignore[attr-defined]
            text.encode("utf-8", "surrogatepass"), match_event_handler=on_match
        )
        return found
