"""HEC, NATS and JSON-lines exporters against real receivers on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import nats
import orjson

from maestro_gateway.siem import SiemConfig, SiemService
from maestro_gateway.siem.ocsf import detection_finding
from tests.services import unavailable
from tests.siem_receivers import HecServer
from tests.test_siem_spool import call_event, until

TOKEN = "3f2a6c1e-test-token"


def siem(tmp: Path, exporter: dict[str, Any], **kw: Any) -> SiemConfig:
    return SiemConfig.model_validate(
        {
            "enabled": True,
            "spool_dir": str(tmp / "spool"),
            "exporters": [exporter],
            "retry_initial_s": 0.05,
            "retry_max_s": 0.3,
            **kw,
        }
    )


async def test_hec_batches_carry_the_token_and_splunk_body_shape(tmp_path: Path) -> None:
    """The HEC receiver gets `Authorization: Splunk <token>` and newline-separated
    {time, host, source, sourcetype, event} objects whose event is the OCSF event."""
    hec = HecServer(TOKEN)
    await hec.start()
    svc = SiemService(siem(tmp_path, {"type": "hec", "url": hec.url, "token": TOKEN}))
    await svc.start()
    finding = detection_finding(title="t", analytic="waf", rule="942100")
    svc.emit(finding, critical=True)
    for i in range(99):
        svc.emit(call_event(i))
    await until(lambda: len(hec.events) == 100)
    await svc.close()
    await hec.stop()
    assert hec.bad_requests == []
    assert hec.events[0] == finding


async def test_hec_wrong_token_keeps_events_spooled(tmp_path: Path) -> None:
    """A receiver refusing the token (403) is retried, never counted as delivered."""
    hec = HecServer("another-token")
    await hec.start()
    svc = SiemService(siem(tmp_path, {"type": "hec", "url": hec.url, "token": TOKEN}))
    await svc.start()
    svc.emit(call_event(1))
    await until(lambda: svc.stats["retries_hec"] >= 2)
    assert hec.events == []
    assert svc.stats["delivered_hec"] == 0
    await svc.close()
    await hec.stop()


async def test_hec_receiver_killed_and_resumed_gets_every_event(tmp_path: Path) -> None:
    """The HEC server is stopped mid-stream while the gateway keeps emitting, then started again:
    every event arrives at least once (exactly once after dedupe on metadata.uid), and the
    in-memory queue never passes its cap."""
    hec = HecServer(TOKEN)
    await hec.start()
    cfg = siem(tmp_path, {"type": "hec", "url": hec.url, "token": TOKEN},
               max_queue=100, max_batch=25)  # fmt: skip
    svc = SiemService(cfg)
    await svc.start()
    sent: list[str] = []
    refused = 0

    async def emit(n: int) -> None:
        nonlocal refused
        for i in range(n):
            event = call_event(len(sent))
            if svc.emit(event):
                sent.append(event["metadata"]["uid"])
            else:  # the queue is full: refused and counted, never blocking
                refused += 1
            if i % 10 == 0:
                await asyncio.sleep(0.002)

    await emit(500)
    await hec.stop()
    await emit(2000)
    spooled_during_outage = svc.spool.used_bytes
    await asyncio.sleep(0.5)
    await hec.start()
    await emit(500)
    await until(lambda: {e["metadata"]["uid"] for e in hec.events} >= set(sent), limit_s=30)
    await svc.close()
    await hec.stop()
    received = [e["metadata"]["uid"] for e in hec.events]
    assert set(received) == set(sent)
    assert len(sent) + refused == 3000
    assert refused == svc.stats["dropped_queue_full_normal"]
    assert len(sent) >= 2000
    assert len(received) - len(set(received)) <= cfg.max_batch  # at most one batch re-sent
    assert svc.stats["queue_high_water"] <= cfg.max_queue
    assert svc.stats["retries_hec"] >= 1
    assert spooled_during_outage > 0


async def test_nats_subscriber_counts_every_event(tmp_path: Path) -> None:
    """Events published to the configured subject (per class) reach a real NATS subscriber."""
    try:
        sub_nc = await nats.connect("nats://127.0.0.1:4222", connect_timeout=2,
                                    allow_reconnect=False)  # fmt: skip
    except Exception as exc:
        unavailable(f"NATS at 127.0.0.1:4222 is not reachable: {exc!r}")
    got: list[tuple[str, dict[str, Any]]] = []

    async def on_msg(msg: Any) -> None:
        got.append((msg.subject, orjson.loads(msg.data)))

    subject = f"test.siem.{tmp_path.name.replace('-', '_')}"
    await sub_nc.subscribe(f"{subject}.>", cb=on_msg)
    await sub_nc.flush()
    exporter = {"type": "nats", "subject": subject, "per_class_subject": True}
    svc = SiemService(siem(tmp_path, exporter))
    await svc.start()
    for i in range(300):
        svc.emit(call_event(i))
    svc.emit(detection_finding(title="t", analytic="waf"), critical=True)
    await until(lambda: len(got) == 301)
    await svc.close()
    await sub_nc.close()
    assert {s for s, _ in got} == {f"{subject}.6003", f"{subject}.2004"}
    assert len({e["metadata"]["uid"] for _, e in got}) == 301


async def test_jsonl_file_gets_one_event_per_line(tmp_path: Path) -> None:
    """The JSON-lines exporter appends each event as one line of JSON, across two runs."""
    out = tmp_path / "events.jsonl"
    cfg = siem(tmp_path, {"type": "jsonl", "path": str(out)})
    for run in range(2):
        svc = SiemService(cfg)
        await svc.start()
        for i in range(100):
            svc.emit(call_event(run * 100 + i))
        await until(lambda s=svc: s.stats["delivered_jsonl"] == 100)
        await svc.close()
    lines = out.read_bytes().splitlines()
    events = [orjson.loads(line) for line in lines]
    assert [e["metadata"]["correlation_uid"] for e in events] == [f"r{i}" for i in range(200)]
    assert all(e["class_uid"] == 6003 and e["type_uid"] == 600301 for e in events)
