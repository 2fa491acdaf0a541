"""The ``siem:`` section of the gateway configuration (C5 SIEM export).

Disabled by default. Each exporter has a unique ``name``: its delivery cursor in the spool is
kept under that name, so renaming an exporter makes it start again from the oldest spooled event.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class JsonlExporterConfig(_Model):
    """Append one OCSF event per line to a local file."""

    type: Literal["jsonl"]
    name: str = Field("jsonl", pattern=_NAME)
    path: str = ".demo/siem-events.jsonl"
    fsync: bool = Field(True, description="fsync the file before a batch counts as delivered.")


class SyslogExporterConfig(_Model):
    """RFC 5424 messages over TCP with octet-counting framing (RFC 6587), or TLS (RFC 5425)."""

    type: Literal["syslog"]
    name: str = Field("syslog", pattern=_NAME)
    host: str = "127.0.0.1"
    port: int = Field(6514, ge=1, le=65535)
    tls: bool = True
    ca_file: str | None = Field(None, description="CA bundle for the receiver; None = system.")
    cert_file: str | None = Field(None, description="Client certificate (mutual TLS).")
    key_file: str | None = None
    server_name: str | None = Field(None, description="Name checked in the receiver's cert.")
    facility: int = Field(13, ge=0, le=23, description="13 = log audit (RFC 5424 table 1).")
    app_name: str = Field("maestro-gateway", pattern=r"^[!-~]{1,48}$")
    hostname: str | None = Field(None, description="HOSTNAME field; None = this host's name.")
    sd_id: str = Field(
        "ocsf@32473", pattern=r"^[!#-<>-\\^-~]{1,32}$", description="SD-ID of the OCSF element."
    )
    timeout_s: float = Field(10.0, gt=0)
    confirm_window_s: float = Field(
        1.0,
        ge=0,
        description="A sent batch counts as delivered after this long on a healthy connection; "
        "if the connection fails first it is sent again (syslog has no acknowledgement).",
    )


class HecExporterConfig(_Model):
    """HTTP batches in the Splunk HTTP Event Collector format."""

    type: Literal["hec"]
    name: str = Field("hec", pattern=_NAME)
    url: str = Field(description="e.g. https://splunk:8088/services/collector/event")
    token: str = Field(min_length=1, description="Sent as `Authorization: Splunk <token>`.")
    index: str | None = None
    source: str = "maestro-gateway"
    sourcetype_prefix: str = Field("ocsf", description="sourcetype = <prefix>:<class name>.")
    ca_file: str | None = None
    timeout_s: float = Field(10.0, gt=0)


class NatsExporterConfig(_Model):
    """Publish each event to a NATS subject (core NATS; flushed before it counts as sent)."""

    type: Literal["nats"]
    name: str = Field("nats", pattern=_NAME)
    url: str = "nats://127.0.0.1:4222"
    subject: str = Field("maestro.siem.ocsf", pattern=r"^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$")
    per_class_subject: bool = Field(
        False, description="Append the OCSF class uid: maestro.siem.ocsf.2004."
    )
    timeout_s: float = Field(10.0, gt=0)


ExporterConfig = Annotated[
    JsonlExporterConfig | SyslogExporterConfig | HecExporterConfig | NatsExporterConfig,
    Field(discriminator="type"),
]


class SiemConfig(_Model):
    """C5 SIEM export: OCSF 1.x events through a bounded on-disk spool to each exporter."""

    enabled: bool = False
    spool_dir: str = Field(
        ".demo/siem-spool", description="Each process takes a slot w<N>/ under it (a lock file)."
    )
    max_spool_bytes: int = Field(256 * 1024 * 1024, ge=64 * 1024, description="Per slot.")
    segment_bytes: int = Field(4 * 1024 * 1024, ge=4096)
    max_queue: int = Field(10_000, ge=10, description="Events waiting for the spool writer.")
    critical_reserve: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="Share of the queue and spool kept for critical events (findings, registry "
        "changes, failed logins): non-critical events are refused first.",
    )
    fsync: Literal["batch", "never"] = Field(
        "batch", description="batch: fsync each written batch before it is read for export."
    )
    max_batch: int = Field(500, ge=1, description="Events per exporter call.")
    max_event_bytes: int = Field(64 * 1024, ge=1024, description="Larger events are refused.")
    retry_initial_s: float = Field(0.2, gt=0)
    retry_max_s: float = Field(30.0, gt=0)
    drain_timeout_s: float = Field(
        2.0, ge=0, description="At shutdown, time given to exporters to catch up."
    )
    exporters: list[ExporterConfig] = []

    @model_validator(mode="after")
    def _check(self) -> SiemConfig:
        names = [e.name for e in self.exporters]
        if len(set(names)) != len(names):
            raise ValueError("exporter names must be unique")
        if self.enabled and not self.exporters:
            raise ValueError("siem is enabled but no exporter is configured")
        return self
