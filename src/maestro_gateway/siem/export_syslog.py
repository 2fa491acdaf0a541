"""The syslog exporter: RFC 5424 messages, octet-counted (RFC 6587 §3.4.1) over TCP or TLS
(RFC 5425), one persistent connection.

Message: ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG`` where PRI = facility * 8 +
the syslog severity mapped from OCSF ``severity_id``, TIMESTAMP is the event's time (UTC, ms),
MSGID is ``OCSF<class_uid>``, the structured data element carries the class, activity,
severity and the event uid, and MSG is the OCSF event as JSON.

Acknowledgement: syslog over TCP has none. ``send`` returns once the batch is written and
drained to the kernel and the connection showed no sign of the receiver closing (it never
sends, so any end-of-stream means it went away: the connection is dropped and the batch sent
again on a new one). The batch counts as delivered only ``confirm_window_s`` later if the
connection is still healthy then; otherwise everything since the last confirmed batch is sent
again (``_delivery.py``). A receiver that accepted bytes but had not processed them within the
window when it died is covered; one that keeps a connection up while silently discarding is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from datetime import UTC, datetime
from typing import Any

import orjson

from maestro_gateway.siem._exporter import ExportError
from maestro_gateway.siem.config import SyslogExporterConfig

# OCSF severity_id -> syslog severity (RFC 5424 table 2).
_SEVERITY = {0: 6, 1: 6, 2: 5, 3: 4, 4: 3, 5: 2, 6: 1}
_SD_ESCAPE = str.maketrans({"\\": "\\\\", '"': '\\"', "]": "\\]"})


def _header_token(value: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, or the nil value."""
    cleaned = "".join(c for c in value if "!" <= c <= "~")[:limit]
    return cleaned or "-"


def format_rfc5424(
    event: dict[str, Any], raw: bytes, *, facility: int, hostname: str, app_name: str, sd_id: str
) -> bytes:
    """One RFC 5424 message (without framing) carrying ``raw`` (the event's JSON) as MSG."""
    pri = facility * 8 + _SEVERITY.get(int(event.get("severity_id", 0)), 6)
    ms = int(event.get("time", 0))
    stamp = datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    stamp += f".{ms % 1000:03d}Z"
    meta = event.get("metadata") or {}
    params = {
        "class_uid": event.get("class_uid", 0),
        "activity_id": event.get("activity_id", 0),
        "severity_id": event.get("severity_id", 0),
        "uid": meta.get("uid", ""),
    }
    sd = " ".join(f'{k}="{str(v).translate(_SD_ESCAPE)}"' for k, v in params.items())
    msgid = f"OCSF{event.get('class_uid', 0)}"
    header = (
        f"<{pri}>1 {stamp} {_header_token(hostname, 255)} {_header_token(app_name, 48)} "
        f"{os.getpid()} {msgid} [{sd_id} {sd}] "
    )
    return header.encode() + raw


def frame(message: bytes) -> bytes:
    """RFC 6587 octet counting: ``MSG-LEN SP SYSLOG-MSG``."""
    return b"%d %s" % (len(message), message)


class SyslogExporter:
    def __init__(self, cfg: SyslogExporterConfig) -> None:
        self.name = cfg.name
        self.confirm_window_s = cfg.confirm_window_s
        self.cfg = cfg
        self.hostname = cfg.hostname or socket.gethostname()
        self._ssl: ssl.SSLContext | None = None
        if cfg.tls:
            self._ssl = ssl.create_default_context(cafile=cfg.ca_file)
            self._ssl.minimum_version = ssl.TLSVersion.TLSv1_2
            if cfg.cert_file:
                self._ssl.load_cert_chain(cfg.cert_file, cfg.key_file)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> asyncio.StreamWriter:
        if self._writer is not None:
            if self.healthy():
                return self._writer
            # The receiver went away: batches sent on this connection but not yet confirmed may
            # be lost, so fail, and let the delivery loop rewind and resend them on a new one.
            await self.close()
            raise ExportError("the receiver closed the connection")
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                self.cfg.host,
                self.cfg.port,
                ssl=self._ssl,
                server_hostname=(self.cfg.server_name or self.cfg.host) if self._ssl else None,
            ),
            self.cfg.timeout_s,
        )
        self._reader, self._writer = reader, writer
        return writer

    async def send(self, events: list[bytes]) -> None:
        out = bytearray()
        for raw in events:
            msg = format_rfc5424(
                orjson.loads(raw),
                raw,
                facility=self.cfg.facility,
                hostname=self.hostname,
                app_name=self.cfg.app_name,
                sd_id=self.cfg.sd_id,
            )
            out += frame(msg)
        try:
            writer = await self._connect()
            writer.write(bytes(out))
            await asyncio.wait_for(writer.drain(), self.cfg.timeout_s)
            await asyncio.sleep(0)  # let a pending end-of-stream or reset arrive
            if self._reader is not None and self._reader.at_eof():
                raise ExportError("syslog receiver closed the connection")
        except (OSError, TimeoutError, ExportError) as exc:
            await self.close()
            raise ExportError(f"syslog {self.cfg.host}:{self.cfg.port}: {exc}") from exc

    def healthy(self) -> bool:
        return (
            self._reader is not None
            and self._writer is not None
            and not self._reader.at_eof()
            and not self._writer.is_closing()
        )

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
                await asyncio.wait_for(writer.wait_closed(), 2)
