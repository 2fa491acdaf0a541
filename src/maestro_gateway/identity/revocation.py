"""Revocation of tokens by ``jti``: a deny list that can be changed while the gateway runs.

Two ways in, both live: :meth:`JtiDenyList.revoke` (in process, e.g. from an admin route), and
a file (``identity.revoked_jti_file``) re-read when its modification time changes — checked at
most once a second on the request path, so every worker process picks a change up. The file is
a JSON list of ``jti`` strings, or an object ``{jti: until}`` where ``until`` is a Unix time
after which the entry may be forgotten (the token has expired anyway). An unreadable file keeps
the last good list and is logged: a typo must not un-revoke anything.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import orjson

__all__ = ["JtiDenyList"]

log = logging.getLogger("maestro_gateway.identity.revocation")
FOREVER = float("inf")


class JtiDenyList:
    def __init__(
        self,
        path: str | None = None,
        check_interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._path = Path(path) if path else None
        self._interval = check_interval_s
        self._clock = clock
        self._local: dict[str, float] = {}
        self._file: dict[str, float] = {}
        self._mtime: int | None = None
        self._checked = -FOREVER

    def revoke(self, jti: str, until: float = FOREVER) -> None:
        """Refuse tokens with this ``jti`` from now on (until ``until``, a Unix time)."""
        self._local[jti] = until
        if len(self._local) > 100_000:
            self._expire()

    def unrevoke(self, jti: str) -> None:
        self._local.pop(jti, None)

    def revoked(self, jti: str) -> bool:
        if self._path is not None:
            self._maybe_reload()
        if not self._local and not self._file:
            return False
        until = self._local.get(jti) or self._file.get(jti)
        return until is not None and self._clock() < until

    def _expire(self) -> None:
        now = self._clock()
        self._local = {j: u for j, u in self._local.items() if u > now}

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < self._interval:
            return
        self._checked = now
        assert self._path is not None
        try:
            mtime = os.stat(self._path).st_mtime_ns
        except FileNotFoundError:
            mtime = None
        except OSError as exc:
            log.error("revocation file unreadable", extra={"error": repr(exc)})
            return
        if mtime == self._mtime:
            return
        if mtime is None:
            self._file, self._mtime = {}, None
            return
        try:
            self._file = _parse(orjson.loads(self._path.read_bytes()))
            self._mtime = mtime
        except (OSError, ValueError) as exc:
            log.error(
                "revocation file not loaded; keeping the last list", extra={"error": repr(exc)}
            )


def _parse(doc: object) -> dict[str, float]:
    if isinstance(doc, list):
        return {str(j): FOREVER for j in doc if isinstance(j, str)}
    if isinstance(doc, dict):
        out: dict[str, float] = {}
        for jti, until in doc.items():
            ok = isinstance(until, (int, float)) and not isinstance(until, bool)
            out[str(jti)] = float(until) if ok else FOREVER
        return out
    raise ValueError("revocation file must hold a JSON list or object")
