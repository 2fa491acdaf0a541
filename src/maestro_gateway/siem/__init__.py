"""SIEM export (control C5): OCSF 1.x events through a bounded on-disk spool to exporters.

- :mod:`.ocsf` — event builders: Authentication (3002), API Activity (6003), Detection Finding
  (2004), Entity Management (3004)
- :mod:`.service` — :class:`SiemService`: non-blocking ``emit``, the spool writer, one
  at-least-once delivery task per exporter with backoff and jitter
- :mod:`.export_jsonl`, :mod:`.export_syslog`, :mod:`.export_hec`, :mod:`.export_nats` — one
  exporter each
- :mod:`.config` — the ``siem:`` configuration section

See docs/siem.md.
"""

from maestro_gateway.siem._exporter import Exporter, ExportError, Rejected, backoff
from maestro_gateway.siem._spool import Cursor, Spool
from maestro_gateway.siem.config import (
    HecExporterConfig,
    JsonlExporterConfig,
    NatsExporterConfig,
    SiemConfig,
    SyslogExporterConfig,
)
from maestro_gateway.siem.service import SiemService, build_exporter

__all__ = [
    "Cursor",
    "ExportError",
    "Exporter",
    "HecExporterConfig",
    "JsonlExporterConfig",
    "NatsExporterConfig",
    "Rejected",
    "SiemConfig",
    "SiemService",
    "Spool",
    "SyslogExporterConfig",
    "backoff",
    "build_exporter",
]
