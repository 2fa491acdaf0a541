"""Request ids, W3C trace context, structured JSON logs and Prometheus metrics."""

from __future__ import annotations

import contextvars
import logging
import os
import re
import sys
import time
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def new_request_id(header: str | None) -> str:
    """The caller's X-Request-Id when it is well-formed, else a new random id."""
    if header and _REQUEST_ID.match(header):
        return header
    return os.urandom(12).hex()


def traceparent(header: str | None) -> tuple[str, str]:
    """(trace id, traceparent for the upstream hop): the caller's trace, a new span for us."""
    span = os.urandom(8).hex()
    if header:
        m = _TRACEPARENT.match(header.strip())
        if m and m.group(1) != "0" * 32 and m.group(2) != "0" * 16:
            return m.group(1), f"00-{m.group(1)}-{span}-{m.group(3)}"
    trace = os.urandom(16).hex()
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


class Metrics:
    """Prometheus metrics for the data path (own registry: several apps may share a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "maestro_requests",
            "A2A requests handled, by agent, method and verdict",
            ["agent", "method", "verdict"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "maestro_request_duration_seconds",
            "Time from request to end of response (first byte of stream for streams)",
            ["agent", "verdict"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
        )
        self.guard_denials = Counter(
            "maestro_guard_denials",
            "Requests or events stopped by a guard",
            ["guard", "rule"],
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def observe(self, agent: str, method: str, verdict: str, started: float) -> None:
        key = (agent, method, verdict)
        child = self._children.get(key)
        if child is None:
            child = (self.requests.labels(*key), self.latency.labels(agent, verdict))
            if len(self._children) < 5000:
                self._children[key] = child
        child[0].inc()
        child[1].observe(time.perf_counter() - started)
