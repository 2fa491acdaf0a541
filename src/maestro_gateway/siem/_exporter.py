"""What an exporter is, and the retry schedule the service uses for all of them.

An exporter's ``send`` returns only when the receiver has the whole batch (see each module for
what "has" means for its protocol); it raises :class:`ExportError` (or any ``OSError`` /
``TimeoutError``) otherwise, and the same batch is offered again after a backoff. A batch the
receiver refuses for its content, where a retry cannot help, raises :class:`Rejected`.
"""

from __future__ import annotations

import random
from typing import Protocol


class ExportError(Exception):
    """The receiver did not take the batch; it will be offered again."""


class Rejected(ExportError):
    """The receiver refused the batch for its content; retrying cannot help."""


class Exporter(Protocol):
    name: str
    confirm_window_s: float
    """0: ``send`` returning is the acknowledgement. Otherwise (syslog) a sent batch counts as
    delivered only after this long with ``healthy()`` still true; see ``_delivery.py``."""

    def healthy(self) -> bool:
        """Whether the connection the last batches went over is still up."""
        ...

    async def send(self, events: list[bytes]) -> None:
        """Deliver OCSF events (each one JSON object, no newline); return once acknowledged."""
        ...

    async def close(self) -> None: ...


_jitter = random.Random()


def backoff(attempt: int, initial: float, cap: float) -> float:
    """Exponential backoff with "equal jitter": half the step fixed, half random, capped."""
    step = min(cap, initial * 2.0 ** min(attempt - 1, 30))
    return step / 2 + _jitter.uniform(0, step / 2)
