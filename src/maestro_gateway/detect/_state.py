"""Bounded per-key state for the detectors: an LRU map with an idle TTL, EWMA statistics, and
sliding windows. Memory is capped by construction: every map has ``max_entries`` and every
window a maximum length."""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")


class BoundedMap(Generic[V]):
    """Key -> state, least recently used evicted beyond ``max_entries``, idle ones after ``ttl``.

    ``get(key, now, factory)`` touches the key (moves it to the back) and creates its state on
    first use; eviction is amortised O(1): the oldest entries are checked on each access.
    """

    def __init__(self, max_entries: int, ttl: float) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._data: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def peek(self, key: str) -> V | None:
        hit = self._data.get(key)
        return None if hit is None else hit[1]

    def get(self, key: str, now: float, factory: Callable[[], V]) -> V:
        hit = self._data.pop(key, None)
        value = factory() if hit is None else hit[1]
        self._data[key] = (now, value)
        self._expire(now)
        return value

    def put(self, key: str, now: float, value: V) -> None:
        self._data.pop(key, None)
        self._data[key] = (now, value)
        self._expire(now)

    def items(self) -> Iterator[tuple[str, V]]:
        for key, (_, value) in self._data.items():
            yield key, value

    def _expire(self, now: float) -> None:
        data = self._data
        while len(data) > self.max_entries:
            data.popitem(last=False)
            self.evicted += 1
        for _ in range(2):  # at most two idle entries per access: amortised, never a scan
            if not data:
                return
            key, (seen, _) = next(iter(data.items()))
            if now - seen <= self.ttl:
                return
            del data[key]
            self.evicted += 1


@dataclass(slots=True)
class Ewma:
    """Exponentially weighted mean and variance (West's incremental form)."""

    alpha: float
    mean: float = 0.0
    var: float = 0.0
    n: int = 0

    def update(self, x: float) -> None:
        if self.n == 0:
            self.mean, self.var = x, 0.0
        else:
            diff = x - self.mean
            incr = self.alpha * diff
            self.mean += incr
            self.var = (1.0 - self.alpha) * (self.var + diff * incr)
        self.n += 1

    def z(self, x: float, min_std: float) -> float:
        """How many standard deviations ``x`` lies above the mean. The deviation has two floors:
        ``min_std``, and the Poisson noise of a count with this mean (sqrt(mean)), so a very
        regular caller is not flagged for ordinary jitter."""
        return (x - self.mean) / max(math.sqrt(self.var), math.sqrt(max(self.mean, 0.0)), min_std)


@dataclass(slots=True)
class RateState:
    """Requests counted in fixed buckets; a closed bucket feeds the EWMA baseline."""

    ewma: Ewma
    bucket: int = -1
    count: int = 0
    flagged: bool = False

    def add(self, bucket: int, max_gap: int) -> None:
        if bucket != self.bucket:
            if self.bucket >= 0:
                self.ewma.update(self.count)
                # Buckets with no request at all are zeros of the series (bounded catch-up).
                for _ in range(min(bucket - self.bucket - 1, max_gap)):
                    self.ewma.update(0.0)
            self.bucket, self.count, self.flagged = bucket, 0, False
        self.count += 1


class Window:
    """Events in the last ``span`` seconds (at most ``cap`` kept) with a count per label."""

    __slots__ = ("cap", "events", "labels", "span")

    def __init__(self, span: float, cap: int) -> None:
        self.span = span
        self.cap = cap
        self.events: deque[tuple[float, str]] = deque()
        self.labels: Counter[str] = Counter()

    def add(self, now: float, label: str) -> None:
        self.events.append((now, label))
        self.labels[label] += 1
        if len(self.events) > self.cap:
            self._drop()
        self.trim(now)

    def trim(self, now: float) -> None:
        events = self.events
        while events and now - events[0][0] > self.span:
            self._drop()

    def _drop(self) -> None:
        _, label = self.events.popleft()
        left = self.labels[label] - 1
        if left:
            self.labels[label] = left
        else:
            del self.labels[label]

    def __len__(self) -> int:
        return len(self.events)
