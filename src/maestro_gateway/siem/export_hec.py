"""The HTTP batch exporter, in the Splunk HTTP Event Collector format.

Body: one ``{"time": <epoch seconds>, "host": …, "source": …, "sourcetype": "ocsf:<class>",
"index": …, "event": {…OCSF…}}`` object per line; header ``Authorization: Splunk <token>``.
Acknowledged by a 2xx answer. 408, 429 and 5xx are retried (as are connection errors and 401/403:
a wrong token must not lose events); any other 4xx means the receiver refuses this content and
the batch is counted as rejected. aiohttp, off the data path (docs/siem.md).
"""

from __future__ import annotations

import socket
import ssl

import aiohttp
import orjson

from maestro_gateway.siem._exporter import ExportError, Rejected
from maestro_gateway.siem.config import HecExporterConfig

_RETRY = {401, 403, 408, 429}


class HecExporter:
    def __init__(self, cfg: HecExporterConfig) -> None:
        self.name = cfg.name
        self.confirm_window_s = 0.0
        self.cfg = cfg
        self.host = socket.gethostname()
        self._session: aiohttp.ClientSession | None = None
        self._headers = {
            "Authorization": f"Splunk {cfg.token}",
            "Content-Type": "application/json",
        }

    def body(self, events: list[bytes]) -> bytes:
        lines = []
        for raw in events:
            event = orjson.loads(raw)
            item = {
                "time": round(int(event.get("time", 0)) / 1000, 3),
                "host": self.host,
                "source": self.cfg.source,
                "sourcetype": f"{self.cfg.sourcetype_prefix}:"
                + str(event.get("class_name", "event")).lower().replace(" ", "_"),
                "event": event,
            }
            if self.cfg.index:
                item["index"] = self.cfg.index
            lines.append(orjson.dumps(item))
        return b"\n".join(lines)

    async def send(self, events: list[bytes]) -> None:
        if self._session is None:
            ctx = ssl.create_default_context(cafile=self.cfg.ca_file)
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s),
                connector=aiohttp.TCPConnector(ssl=ctx, limit=2),
            )
        try:
            async with self._session.post(
                self.cfg.url, data=self.body(events), headers=self._headers
            ) as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ExportError(f"HEC {self.cfg.url}: {exc!r}") from exc
        if 200 <= status < 300:
            return
        if status in _RETRY or status >= 500:
            raise ExportError(f"HEC {self.cfg.url}: HTTP {status}")
        raise Rejected(f"HEC {self.cfg.url}: HTTP {status}, the batch is refused")

    def healthy(self) -> bool:
        return True

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
