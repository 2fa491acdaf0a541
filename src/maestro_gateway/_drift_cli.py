"""``maestro-gateway scan-drift``: one read-only scan of the configured registry and audit log.

Prints each finding as one JSON line on stdout, a summary line on stderr, and exits 0 when
clean, 1 when there are findings, 2 when the scan could not be made (bad configuration, a
store that does not exist or cannot be read).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from maestro_gateway.audit.checkpoint import load_or_create_signer
from maestro_gateway.audit.log import AuditLog
from maestro_gateway.config import ConfigError, GatewayConfig, load_config
from maestro_gateway.drift import DriftScanner, ScanReport
from maestro_gateway.registry.store import open_store

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "scan-drift",
        help="compare the registry with the audit log, and agent cards with their origins",
    )
    p.add_argument("--config", required=True, help="the gateway's YAML configuration")
    p.add_argument("--no-cards", action="store_true", help="skip fetching the agents' cards")


def _sqlite_file(url: str) -> Path | None:
    if url.startswith("sqlite:///") and url not in ("sqlite:///:memory:",):
        return Path(url[len("sqlite:///") :])
    return None


async def scan_once(cfg: GatewayConfig, *, cards: bool = True) -> ScanReport:
    """One scan as ``scan-drift`` makes it: read-only, no audit records, no suspension."""
    key = Path(cfg.audit.key_path)
    if cfg.audit.enabled and not key.exists():  # noqa: ASYNC240 (a stat, before any I/O)
        raise FileNotFoundError(f"the audit key {key} does not exist")
    for label, url in (("registry", cfg.registry.url), ("audit log", cfg.audit.url)):
        path = _sqlite_file(url)
        if path is not None and not path.exists() and (label == "registry" or cfg.audit.enabled):
            raise FileNotFoundError(f"the {label} database {path} does not exist")
    store = open_store(cfg.registry.url)
    await store.init()
    audit: AuditLog | None = None
    try:
        if cfg.audit.enabled:
            vkey = load_or_create_signer(cfg.audit.key_path, cfg.audit.key_name).vkey
            audit = AuditLog.open(cfg.audit.url, None, vkey=vkey)
            await audit.store.init(create=False)
        scanner = DriftScanner(cfg, store=lambda: store, audit=lambda: audit, cards=cards)
        return await scanner.scan()
    finally:
        if audit is not None:
            await audit.store.close()
        await store.close()


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"{args.config}: invalid configuration\n{exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        report = asyncio.run(scan_once(cfg, cards=not args.no_cards))
    except Exception as exc:
        print(f"scan-drift: {exc}", file=sys.stderr)
        return EXIT_ERROR
    for item in report.findings:
        print(item.json_line())
    print(json.dumps(report.summary()), file=sys.stderr)
    if report.findings:
        return EXIT_FINDINGS
    return EXIT_ERROR if report.errors else EXIT_CLEAN
