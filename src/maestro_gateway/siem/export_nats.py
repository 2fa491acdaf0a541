"""The NATS exporter: each OCSF event published on a subject (core NATS, nats-py).

Acknowledged when the client's flush (a PING answered by the server's PONG) returns after the
batch: the server has every message. Core NATS delivers to the subscribers connected at that
moment; a JetStream stream on the subject makes it durable on the NATS side.
"""

from __future__ import annotations

import contextlib

import nats
import orjson
from nats.aio.client import Client

from maestro_gateway.siem._exporter import ExportError
from maestro_gateway.siem.config import NatsExporterConfig


class NatsExporter:
    def __init__(self, cfg: NatsExporterConfig) -> None:
        self.name = cfg.name
        self.confirm_window_s = 0.0
        self.cfg = cfg
        self._nc: Client | None = None

    async def _client(self) -> Client:
        if self._nc is None or self._nc.is_closed:
            self._nc = await nats.connect(
                self.cfg.url,
                connect_timeout=self.cfg.timeout_s,
                allow_reconnect=False,
                max_reconnect_attempts=0,
            )
        return self._nc

    async def send(self, events: list[bytes]) -> None:
        try:
            nc = await self._client()
            for raw in events:
                subject = self.cfg.subject
                if self.cfg.per_class_subject:
                    subject += "." + str(orjson.loads(raw).get("class_uid", 0))
                await nc.publish(subject, raw)
            await nc.flush(timeout=max(1, round(self.cfg.timeout_s)))
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            await self.close()
            raise ExportError(f"NATS {self.cfg.url}: {exc!r}") from exc

    def healthy(self) -> bool:
        return True

    async def close(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(nats.errors.Error, OSError):
                await nc.close()
