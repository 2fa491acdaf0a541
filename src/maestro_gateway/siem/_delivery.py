"""One exporter's delivery loop: read the spool from its cursor, send, retry, commit.

Two cursors: ``sent`` (how far the exporter has been given events) and the committed cursor
(saved to disk; the spool may delete what lies behind it). For an exporter whose ``send``
returning is a real acknowledgement (``confirm_window_s == 0``: JSONL, HEC, NATS) the two move
together. For syslog, where TCP carries no acknowledgement, a sent batch is committed only after
``confirm_window_s`` has passed with the connection still healthy; if the connection fails
first, delivery rewinds to the committed cursor and sends everything since again (receivers
dedupe on ``metadata.uid``). So a receiver that dies or stops loses nothing it had not
processed within the window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable

from maestro_gateway.siem._exporter import Exporter, Rejected, backoff
from maestro_gateway.siem._spool import Cursor, Spool
from maestro_gateway.siem.config import SiemConfig

log = logging.getLogger("maestro_gateway.siem")

READ_BYTES = 1024 * 1024


class Delivery:
    def __init__(
        self,
        exp: Exporter,
        spool: Spool,
        cfg: SiemConfig,
        stats: Counter[str],
        commit: Callable[[str, Cursor], Awaitable[None]],
        committed: Cursor,
    ) -> None:
        self.exp, self.spool, self.cfg, self.stats = exp, spool, cfg, stats
        self.commit = commit
        self.committed = self.sent = committed
        self.wake = asyncio.Event()
        self.wake.set()  # deliver what an earlier run left in the spool
        self.unconfirmed: deque[tuple[float, Cursor, int]] = deque()
        self.closing: Callable[[], bool] = lambda: False

    async def run(self) -> None:
        name, window = self.exp.name, self.exp.confirm_window_s
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            if self.unconfirmed:
                await self._confirm(loop.time() - window)
            batch, nxt = await asyncio.to_thread(
                self.spool.read, self.sent, self.cfg.max_batch, READ_BYTES
            )
            if not batch:
                if nxt != self.sent:  # moved on to the next segment
                    await self._sent(nxt, 0, loop.time())
                    continue
                if self.closing() and not self.unconfirmed:
                    return
                due = self.unconfirmed[0][0] + window if self.unconfirmed else None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), due and max(0, due - loop.time()))
                self.wake.clear()
                continue
            try:
                await self.exp.send(batch)
            except Rejected as exc:
                self.stats[f"rejected_{name}"] += len(batch)
                log.error("siem batch refused", extra={"exporter": name, "error": str(exc)})
            except Exception as exc:
                attempt += 1
                self.stats[f"retries_{name}"] += 1
                self._rewind()
                delay = backoff(attempt, self.cfg.retry_initial_s, self.cfg.retry_max_s)
                log.warning(
                    "siem export failed; will retry",
                    extra={"exporter": name, "error": str(exc), "retry_in_s": delay},
                )
                await asyncio.sleep(delay)
                continue
            attempt = 0
            await self._sent(nxt, len(batch), loop.time())

    async def _sent(self, cursor: Cursor, count: int, now: float) -> None:
        self.sent = cursor
        if self.exp.confirm_window_s > 0 and (count or self.unconfirmed):
            self.unconfirmed.append((now, cursor, count))
        else:
            self.stats[f"delivered_{self.exp.name}"] += count
            self.committed = cursor
            await self.commit(self.exp.name, cursor)

    async def _confirm(self, due_before: float) -> None:
        """Commit the batches sent before ``due_before`` if the connection is still healthy;
        otherwise rewind so that they are sent again."""
        if not self.unconfirmed or self.unconfirmed[0][0] > due_before:
            return
        if not self.exp.healthy():
            self._rewind()
            return
        count, cursor = 0, self.committed
        while self.unconfirmed and self.unconfirmed[0][0] <= due_before:
            _, cursor, n = self.unconfirmed.popleft()
            count += n
        self.stats[f"delivered_{self.exp.name}"] += count
        self.committed = cursor
        await self.commit(self.exp.name, cursor)

    def _rewind(self) -> None:
        if self.unconfirmed:
            self.stats[f"resent_{self.exp.name}"] += sum(n for _, _, n in self.unconfirmed)
            self.unconfirmed.clear()
        self.sent = self.committed
