"""Request ids, trace context, the access log and the metrics exposition."""

from __future__ import annotations

import asyncio
import io
import time

import orjson
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from maestro_gateway.observability import AccessLog, Metrics, new_request_id, traceparent


def test_request_id_keeps_wellformed_caller_ids_only() -> None:
    """A well-formed X-Request-Id is kept; a hostile one is replaced by a fresh id."""
    assert new_request_id("abc-123") == "abc-123"
    fresh = new_request_id("evil\nid")
    assert fresh != "evil\nid"
    assert len(fresh) == 24
    assert new_request_id(None) != new_request_id(None)


def test_traceparent_invalid_is_replaced() -> None:
    """An all-zero or malformed traceparent starts a new trace."""
    trace, header = traceparent("00-" + "0" * 32 + "-00f067aa0ba902b7-01")
    assert trace != "0" * 32
    assert header.startswith(f"00-{trace}-")
    trace2, _ = traceparent("garbage")
    assert len(trace2) == 32


async def test_access_log_is_buffered_and_flushed() -> None:
    """Access lines are JSON, buffered, and flushed shortly after (not per request)."""
    out = io.BytesIO()
    log = AccessLog(True, stream=out, flush_s=0.01)
    log.write({"msg": "request", "request_id": "r1"})
    log.write({"msg": "request", "request_id": "r2"})
    assert out.getvalue() == b""
    await asyncio.sleep(0.05)
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [line["request_id"] for line in lines] == ["r1", "r2"]
    assert all("ts" in line for line in lines)


def test_access_log_disabled_writes_nothing() -> None:
    """A disabled access log writes nothing."""
    out = io.BytesIO()
    log = AccessLog(False, stream=out)
    log.write({"msg": "request"})
    log.flush()
    assert out.getvalue() == b""


def test_metrics_exposition_parses() -> None:
    """Counters and the latency histogram render as valid Prometheus text."""
    metrics = Metrics()
    start = time.perf_counter()
    metrics.observe("echo", "SendMessage", "allow", start)
    metrics.observe("echo", "SendMessage", "allow", start - 0.003)
    metrics.denied("validate", "ssrf")
    families = {
        f.name: f
        for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())
    }
    requests = families["maestro_requests"].samples
    assert [(s.labels["agent"], s.value) for s in requests if s.name.endswith("_total")] == [
        ("echo", 2.0)
    ]
    hist = families["maestro_request_duration_seconds"].samples
    count = [s.value for s in hist if s.name.endswith("_count")]
    assert count == [2.0]
    inf = [s.value for s in hist if s.name.endswith("_bucket") and s.labels["le"] == "+Inf"]
    assert inf == [2.0]
    denials = families["maestro_guard_denials"].samples
    assert denials[0].labels == {"guard": "validate", "rule": "ssrf"}
