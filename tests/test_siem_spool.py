"""SIEM spool and service: bounded, non-blocking, at-least-once, persistent across restarts."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from maestro_gateway.siem import Cursor, ExportError, SiemConfig, SiemService, Spool, backoff
from maestro_gateway.siem.ocsf import api_activity, detection_finding


class RecordingExporter:
    """A unit-test exporter: records what it acknowledges, fails while ``down`` is set."""

    def __init__(self, name: str = "rec") -> None:
        self.name = name
        self.confirm_window_s = 0.0
        self.down = False
        self.received: list[dict[str, Any]] = []
        self.calls = 0

    async def send(self, events: list[bytes]) -> None:
        self.calls += 1
        if self.down:
            raise ExportError("receiver down")
        self.received.extend(orjson.loads(e) for e in events)

    def healthy(self) -> bool:
        return True

    async def close(self) -> None:
        return None


def config(tmp: Path, **kw: Any) -> SiemConfig:
    base: dict[str, Any] = {
        "enabled": True,
        "spool_dir": str(tmp / "spool"),
        "exporters": [{"type": "jsonl", "name": "rec", "path": str(tmp / "x.jsonl")}],
        "retry_initial_s": 0.01,
        "retry_max_s": 0.05,
    }
    return SiemConfig.model_validate({**base, **kw})


def call_event(i: int) -> dict[str, Any]:
    return api_activity(
        request_id=f"r{i}", agent="echo", method="SendMessage", verdict="allow",
        status_code=200, duration_ms=1.0,
    )  # fmt: skip


async def until(predicate: Any, limit_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_events_are_delivered_once_each_in_order(tmp_path: Path) -> None:
    """Every emitted event reaches the exporter, in emission order, with no duplicates."""
    exp = RecordingExporter()
    svc = SiemService(config(tmp_path), [exp])
    await svc.start()
    for i in range(1000):
        assert svc.emit(call_event(i))
    await until(lambda: len(exp.received) == 1000)
    await svc.close()
    assert [e["metadata"]["correlation_uid"] for e in exp.received] == [
        f"r{i}" for i in range(1000)
    ]


async def test_outage_is_retried_and_nothing_is_lost(tmp_path: Path) -> None:
    """While the exporter fails, events stay in the spool and are retried with backoff; once it
    recovers every event arrives."""
    exp = RecordingExporter()
    exp.down = True
    svc = SiemService(config(tmp_path), [exp])
    await svc.start()
    for i in range(200):
        svc.emit(call_event(i))
    await until(lambda: exp.calls >= 3)
    assert svc.spool.used_bytes > 0
    assert not exp.received
    exp.down = False
    await until(lambda: len(exp.received) == 200)
    await svc.close()
    assert svc.stats["retries_rec"] >= 3


async def test_spool_survives_a_restart(tmp_path: Path) -> None:
    """Events spooled while the exporter was down are delivered by the next process start."""
    exp = RecordingExporter()
    exp.down = True
    svc = SiemService(config(tmp_path, drain_timeout_s=0.1), [exp])
    await svc.start()
    for i in range(50):
        svc.emit(call_event(i))
    await until(lambda: svc.stats["spooled"] == 50)
    await svc.close()
    fresh = RecordingExporter()
    svc2 = SiemService(config(tmp_path), [fresh])
    await svc2.start()
    await until(lambda: len(fresh.received) == 50)
    await svc2.close()
    assert len({e["metadata"]["uid"] for e in fresh.received}) == 50


async def test_full_spool_refuses_normal_events_but_keeps_room_for_critical(
    tmp_path: Path,
) -> None:
    """With the receiver down and the spool at its cap, API Activity is refused and counted,
    while findings still get in through the critical reserve."""
    exp = RecordingExporter()
    exp.down = True
    cfg = config(tmp_path, max_spool_bytes=64 * 1024, critical_reserve=0.25)
    svc = SiemService(cfg, [exp])
    await svc.start()
    accepted = sum(svc.emit(call_event(i)) for i in range(500))
    await until(lambda: svc.queue_length == 0)
    assert accepted < 500
    assert svc.stats["dropped_spool_full_normal"] == 500 - accepted
    finding = detection_finding(title="t", analytic="waf", rule="942100")
    assert svc.emit(finding, critical=True)
    assert not svc.emit(call_event(999))
    await until(lambda: svc.queue_length == 0)
    assert svc.spool.used_bytes <= cfg.max_spool_bytes
    await svc.close()


async def test_queue_is_bounded_and_emit_never_waits(tmp_path: Path) -> None:
    """A burst larger than the queue is cut at the queue's cap (drops counted), synchronously."""
    exp = RecordingExporter()
    svc = SiemService(config(tmp_path, max_queue=100, critical_reserve=0.1), [exp])
    await svc.start()
    results = [svc.emit(call_event(i)) for i in range(1000)]  # no await: the writer can't run
    assert sum(results) == 90
    assert svc.stats["dropped_queue_full_normal"] == 910
    assert svc.emit(detection_finding(title="t", analytic="waf"), critical=True)
    assert svc.stats["queue_high_water"] <= 100
    await until(lambda: len(exp.received) == 91)
    await svc.close()


async def test_processes_sharing_a_spool_dir_get_their_own_slots(tmp_path: Path) -> None:
    """Two services (e.g. gateway workers) on one spool_dir write separate slots, and a later
    start takes over a free slot and delivers what it holds."""
    down = RecordingExporter()
    down.down = True
    first = SiemService(config(tmp_path, drain_timeout_s=0.1), [down])
    second = SiemService(config(tmp_path), [RecordingExporter()])
    await first.start()
    await second.start()
    assert first.spool.dir != second.spool.dir
    first.emit(call_event(1))
    await until(lambda: first.stats["spooled"] == 1)
    await first.close()
    await second.close()
    again = RecordingExporter()
    third = SiemService(config(tmp_path), [again])
    await third.start()
    assert third.spool.dir == first.spool.dir
    await until(lambda: len(again.received) == 1)
    await third.close()


def test_segments_rotate_and_are_released_after_every_cursor_passes(tmp_path: Path) -> None:
    """Segments close at their size and are deleted once all cursors are past them."""
    spool = Spool(tmp_path, segment_bytes=4096, fsync=False)
    spool.open()
    for i in range(100):
        spool.append([b'{"n":%d,"pad":"%s"}\n' % (i, b"x" * 100)])
    assert spool.pending_segments() > 2
    a = b = spool.first()
    lines: list[bytes] = []
    while True:
        got, nxt = spool.read(a, 1000, 1 << 20)
        lines += got
        if nxt == a:
            break
        a = nxt
    assert [orjson.loads(x)["n"] for x in lines] == list(range(100))
    before = spool.used_bytes
    assert spool.release([a, b]) == 0  # b has read nothing yet
    assert spool.release([a]) > 0
    assert spool.used_bytes < before
    spool.close()


def test_a_deleted_segment_is_skipped_not_fatal(tmp_path: Path) -> None:
    """A closed segment removed behind the spool's back is skipped; later segments are read."""
    spool = Spool(tmp_path, segment_bytes=100, fsync=False)
    spool.open()
    spool.append([b'{"n":1,"pad":"%s"}\n' % (b"x" * 100)])  # closes segment 1
    spool.append([b'{"n":2}\n'])
    (tmp_path / f"{1:016d}.seg").unlink()
    cursor, lines = spool.first(), []
    for _ in range(5):
        got, cursor = spool.read(cursor, 10, 1 << 20)
        lines += got
    assert lines == [b'{"n":2}']
    spool.close()


def test_torn_last_line_is_cut_at_open(tmp_path: Path) -> None:
    """A crash mid-write leaves a partial line; the next open cuts it and keeps whole lines."""
    seg = tmp_path / f"{1:016d}.seg"
    seg.write_bytes(b'{"a":1}\n{"a":2}\n{"a":')
    spool = Spool(tmp_path, segment_bytes=1 << 20, fsync=True)
    spool.open()
    lines, _ = spool.read(Cursor(1, 0), 10, 1 << 20)
    assert lines == [b'{"a":1}', b'{"a":2}']
    assert os.path.getsize(seg) == 16
    spool.close()


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    """Each retry waits between half and all of min(cap, initial * 2^(n-1))."""
    for attempt, step in [(1, 0.1), (2, 0.2), (4, 0.8), (20, 5.0)]:
        delays = [backoff(attempt, 0.1, 5.0) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays)
        assert len(set(delays)) > 1


def test_enabled_without_exporters_is_a_config_error(tmp_path: Path) -> None:
    """An enabled SIEM with nowhere to send is refused at load time."""
    with pytest.raises(ValueError, match="no exporter"):
        SiemConfig.model_validate({"enabled": True, "spool_dir": str(tmp_path)})


class LossyConnection(RecordingExporter):
    """A unit-test exporter without acknowledgements (like syslog): what it was sent is lost
    when its connection breaks before the confirmation window has passed."""

    def __init__(self) -> None:
        super().__init__("lossy")
        self.confirm_window_s = 0.3

    def healthy(self) -> bool:
        return not self.down


async def test_unacknowledged_batches_are_resent_when_the_connection_broke(
    tmp_path: Path,
) -> None:
    """With a confirmation window, a batch whose connection breaks before the window ends is
    sent again from the last confirmed position, and only confirmed batches count as
    delivered."""
    exp = LossyConnection()
    svc = SiemService(config(tmp_path), [exp])
    await svc.start()
    for i in range(10):
        svc.emit(call_event(i))
    await until(lambda: len(exp.received) == 10)
    exp.down = True  # the receiver died holding the 10 events unprocessed
    exp.received.clear()
    await until(lambda: svc.stats["resent_lossy"] >= 10)
    assert svc.stats["delivered_lossy"] == 0
    exp.down = False
    await until(lambda: svc.stats["delivered_lossy"] == 10)
    await svc.close()
    assert [e["metadata"]["correlation_uid"] for e in exp.received] == [f"r{i}" for i in range(10)]
