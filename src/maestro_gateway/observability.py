"""Request ids, W3C trace context, structured JSON logs and Prometheus metrics."""

from __future__ import annotations

import asyncio
import bisect
import contextvars
import logging
import random
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

# Ids are unique, not secret (W3C trace context asks for randomness, not unpredictability):
# a seeded PRNG costs ~0.2 µs where os.urandom costs a system call each time.
_random = random.Random()
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def new_request_id(header: str | None) -> str:
    """The caller's X-Request-Id when it is well-formed, else a new random id."""
    if header and _REQUEST_ID.match(header):
        return header
    return f"{_random.getrandbits(96):024x}"


def traceparent(header: str | None) -> tuple[str, str]:
    """(trace id, traceparent for the upstream hop): the caller's trace, a new span for us."""
    span = f"{_random.getrandbits(64) or 1:016x}"
    if header:
        m = _TRACEPARENT.match(header.strip())
        if m and m.group(1) != "0" * 32 and m.group(2) != "0" * 16:
            return m.group(1), f"00-{m.group(1)}-{span}-{m.group(3)}"
    trace = f"{_random.getrandbits(128) or 1:032x}"
    return trace, f"00-{trace}-{span}-01"


_RESERVED = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; every line about a request carries its request id."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id_var.get()
        if rid:
            data["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


def setup_logging(level: str = "info", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("maestro_gateway")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


class AccessLog:
    """The per-request access line, written without the logging machinery's per-record cost.

    Lines are JSON (one object each, with the request id), buffered and flushed every
    ``flush_s`` or when the buffer passes ``max_buffer`` bytes, so the hot path never waits on
    a write to stderr.
    """

    def __init__(
        self,
        enabled: bool,
        stream: Any = None,
        flush_s: float = 0.05,
        max_buffer: int = 64 * 1024,
    ) -> None:
        self.enabled = enabled
        self._stream = stream if stream is not None else sys.stderr.buffer
        self._flush_s = flush_s
        self._max = max_buffer
        self._buffer = bytearray()
        self._scheduled = False

    def write(self, fields: dict[str, Any]) -> None:
        if not self.enabled:
            return
        fields["ts"] = round(time.time(), 6)
        self._buffer += orjson.dumps(fields, default=str)
        self._buffer += b"\n"
        if len(self._buffer) >= self._max:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_later(self._flush_s, self.flush)
            except RuntimeError:  # no loop: write now
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        if self._buffer:
            data, self._buffer = bytes(self._buffer), bytearray()
            try:
                self._stream.write(data)
                self._stream.flush()
            except (OSError, ValueError):  # stderr closed: nowhere to report it
                pass


_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class Metrics:
    """Data-path metrics kept in plain dicts (a few hundred ns per request), exposed through
    prometheus_client at scrape time by a custom collector.

    ``prometheus_client``'s own Counter/Histogram cost ~15 µs per request on this path (locks,
    label lookups); counting here and rendering there keeps the library's exposition format.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._requests: dict[tuple[str, str, str], int] = {}
        self._latency: dict[tuple[str, str], list[float]] = {}  # bucket counts, then sum
        self._denials: dict[tuple[str, str], int] = {}
        self.rate_limit_decisions: Callable[[], dict[tuple[str, str, str], int]] | None = None
        self.siem_stats: Callable[[], dict[str, int]] | None = None
        self.registry.register(self)

    def observe(self, agent: str, method: str, verdict: str, started: float) -> None:
        if len(self._requests) >= 5000 and (agent, method, verdict) not in self._requests:
            agent, method = "other", "other"  # bound label cardinality
        key = (agent, method, verdict)
        self._requests[key] = self._requests.get(key, 0) + 1
        elapsed = time.perf_counter() - started
        hist = self._latency.get((agent, verdict))
        if hist is None:
            hist = self._latency[(agent, verdict)] = [0.0] * (len(_BUCKETS) + 2)
        hist[bisect.bisect_left(_BUCKETS, elapsed)] += 1
        hist[-1] += elapsed

    def denied(self, guard: str, rule: str) -> None:
        key = (guard, rule)
        self._denials[key] = self._denials.get(key, 0) + 1

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "maestro_requests",
            "A2A requests handled, by agent, method and verdict",
            labels=["agent", "method", "verdict"],
        )
        for rkey, count in sorted(self._requests.items()):
            requests.add_metric(list(rkey), count)
        yield requests
        latency = HistogramMetricFamily(
            "maestro_request_duration_seconds",
            "Time from request to end of response (end of stream for streams)",
            labels=["agent", "verdict"],
        )
        for lkey, hist in sorted(self._latency.items()):
            cumulative, buckets = 0.0, []
            for bound, n in zip((*_BUCKETS, float("inf")), hist[:-1], strict=True):
                cumulative += n
                buckets.append((str(bound) if bound != float("inf") else "+Inf", cumulative))
            latency.add_metric(list(lkey), buckets, hist[-1])
        yield latency
        denials = CounterMetricFamily(
            "maestro_guard_denials",
            "Requests or events stopped by a guard",
            labels=["guard", "rule"],
        )
        for dkey, total in sorted(self._denials.items()):
            denials.add_metric(list(dkey), total)
        yield denials
        if self.rate_limit_decisions is not None:
            decisions = CounterMetricFamily(
                "maestro_ratelimit_decisions",
                "Rate and concurrency limit decisions, by limit, outcome and backend",
                labels=["limit", "outcome", "backend"],
            )
            for key, n in sorted(self.rate_limit_decisions().items()):
                decisions.add_metric(list(key), n)
            yield decisions
        if self.siem_stats is not None:
            siem = CounterMetricFamily(
                "maestro_siem_events",
                "SIEM export: accepted, spooled, delivered/retries/resent/rejected per exporter, "
                "dropped by reason",
                labels=["counter"],
            )
            backlog = GaugeMetricFamily(
                "maestro_siem_backlog", "SIEM queue length and spool size", labels=["what"]
            )
            for name, value in sorted(self.siem_stats().items()):
                if name in ("queue_length", "spool_bytes", "queue_high_water"):
                    backlog.add_metric([name], value)
                else:
                    siem.add_metric([name], value)
            yield siem
            yield backlog
