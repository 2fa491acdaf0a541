"""Syslog export against a real rsyslogd on loopback: RFC 5424 over TCP (octet counting) and
TLS, the OCSF payload intact, and no event lost when rsyslog is stopped and started again."""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio

from maestro_gateway.siem import SiemConfig, SiemService
from maestro_gateway.siem.config import SyslogExporterConfig
from maestro_gateway.siem.export_syslog import SyslogExporter, format_rfc5424, frame
from maestro_gateway.siem.ocsf import api_activity, detection_finding
from tests.siem_receivers import Rsyslog
from tests.test_siem_spool import call_event, until


@pytest_asyncio.fixture
async def rsyslog(tmp_path: Path) -> AsyncIterator[Rsyslog]:
    server = Rsyslog(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def syslog_config(tmp: Path, server: Rsyslog, tls: bool, **kw: Any) -> SiemConfig:
    exporter: dict[str, Any] = {
        "type": "syslog",
        "host": "127.0.0.1",
        "port": server.tls_port if tls else server.tcp_port,
        "tls": tls,
        "hostname": "gw-test-1",
    }
    if tls:
        exporter |= {"ca_file": str(server.ca), "server_name": "localhost"}
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


_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]00:00)$")


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
async def test_rsyslog_receives_rfc5424_with_ocsf_payload(
    rsyslog: Rsyslog, tmp_path: Path, tls: bool
) -> None:
    """rsyslog parses each message as RFC 5424 (PRI, version 1, timestamp, hostname, app-name,
    procid, msgid, structured data) and the MSG is the OCSF event, byte for byte as JSON."""
    svc = SiemService(syslog_config(tmp_path, rsyslog, tls))
    await svc.start()
    finding = detection_finding(title="waf guard blocked a request", analytic="waf",
                                rule="942100", request_id="req-1")  # fmt: skip
    activity = api_activity(request_id="req-2", agent="echo", method="SendMessage",
                            verdict="allow", status_code=200, duration_ms=2.5)  # fmt: skip
    svc.emit(finding, critical=True)
    svc.emit(activity)
    await until(lambda: len(rsyslog.received()) == 2)
    await svc.close()
    rows = {r[6]: r for r in rsyslog.received()}
    pri, version, stamp, host, app, procid, _msgid, sd, msg = rows["OCSF2004"]
    assert (pri, version, host, app) == ("108", "1", "gw-test-1", "maestro-gateway")  # 13*8+4
    assert procid == str(os.getpid())
    assert _STAMP.match(stamp), stamp
    uid = finding["metadata"]["uid"]
    assert sd == f'[ocsf@32473 class_uid="2004" activity_id="1" severity_id="3" uid="{uid}"]'
    assert orjson.loads(msg) == finding
    assert rows["OCSF6003"][0] == "110"  # informational -> 6
    assert orjson.loads(rows["OCSF6003"][8]) == activity


def test_structured_data_values_are_escaped() -> None:
    """Quotes, backslashes and closing brackets in SD values are escaped (RFC 5424 §6.3.3)."""
    event = {"class_uid": 2004, "severity_id": 1, "time": 0, "metadata": {"uid": 'a"b\\c]d'}}
    msg = format_rfc5424(event, b"{}", facility=13, hostname="h o\x01st", app_name="app",
                         sd_id="ocsf@32473")  # fmt: skip
    assert b'uid="a\\"b\\\\c\\]d"' in msg
    assert msg.startswith(b"<110>1 1970-01-01T00:00:00.000Z host app ")
    assert frame(b"abc") == b"3 abc"


async def test_events_survive_rsyslog_restart(rsyslog: Rsyslog, tmp_path: Path) -> None:
    """rsyslog stopped mid-stream and started again: every event emitted before, during and
    after the outage arrives (at least once; the event uids dedupe), and the queue stays under
    its cap."""
    cfg = syslog_config(tmp_path, rsyslog, tls=False, max_queue=200, max_batch=20)
    svc = SiemService(cfg)
    await svc.start()
    sent: list[str] = []

    async def emit(n: int) -> None:
        for _i in range(n):
            event = call_event(len(sent))
            if svc.emit(event):
                sent.append(event["metadata"]["uid"])
            await asyncio.sleep(0.001)

    await emit(150)
    await rsyslog.stop()
    await emit(300)  # receiver down: the spool holds them
    assert svc.stats["queue_high_water"] <= cfg.max_queue
    await rsyslog.start()
    await emit(150)

    def uids() -> set[str]:
        return {orjson.loads(r[8])["metadata"]["uid"] for r in rsyslog.received()}

    await until(lambda: uids() >= set(sent), limit_s=30)
    await svc.close()
    assert len(sent) == 600
    assert svc.stats["retries_syslog"] >= 1


async def test_tls_exporter_refuses_an_untrusted_receiver(rsyslog: Rsyslog, tmp_path: Path) -> None:
    """Without the receiver's CA the TLS handshake fails: nothing is sent, it stays spooled."""
    cfg = syslog_config(tmp_path, rsyslog, tls=True, retry_initial_s=0.05)
    cfg = cfg.model_copy(
        update={"exporters": [cfg.exporters[0].model_copy(update={"ca_file": None})]}
    )
    svc = SiemService(cfg)
    await svc.start()
    svc.emit(call_event(1))
    await until(lambda: svc.stats["retries_syslog"] >= 2)
    assert rsyslog.received() == []
    assert svc.spool.used_bytes > 0
    await svc.close()


def test_hostname_defaults_to_this_host() -> None:
    """Without a configured HOSTNAME the exporter uses the machine's host name."""
    exp = SyslogExporter(SyslogExporterConfig(type="syslog", tls=False))
    assert exp.hostname == socket.gethostname()
