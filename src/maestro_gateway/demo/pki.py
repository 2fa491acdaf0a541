"""The demo's workload identities: a dev CA in ``<state>/pki`` and one SVID per workload.

Created on the first run (trust domain ``maestro.demo``); each SVID is re-issued when it is
missing, expires within an hour, or carries another SPIFFE ID. The running demo rotates them
all every few hours; the gateway and the agents pick the new files up without a restart.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509

from maestro_gateway.spiffe import init_ca, issue_svid, rotate_svid, spiffe_id_of_cert
from maestro_gateway.spiffe._asgi_tls import shared_contexts
from maestro_gateway.spiffe.tls import SvidPaths

__all__ = ["GATEWAY_ID", "TRUST_DOMAIN", "agent_spiffe_id", "ensure_pki", "rotate_forever"]

log = logging.getLogger("maestro_gateway.demo")

TRUST_DOMAIN = "maestro.demo"
GATEWAY_ID = f"spiffe://{TRUST_DOMAIN}/gateway"
SVID_TTL = dt.timedelta(hours=24)


def agent_spiffe_id(name: str) -> str:
    return f"spiffe://{TRUST_DOMAIN}/agent/{name}"


def _fresh(cert_file: Path, spiffe_id: str) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        same = spiffe_id_of_cert(cert) == spiffe_id
    except (OSError, ValueError):
        return False
    left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    return same and left > dt.timedelta(hours=1)


def ensure_pki(pki: Path, agents: Iterable[str]) -> dict[str, str]:
    """The CA and fresh SVIDs for the gateway and ``agents``; returns {file name: SPIFFE ID}."""
    if not (pki / "ca.key").exists():
        init_ca(pki, TRUST_DOMAIN)
    wanted = {"gateway": GATEWAY_ID, **{name: agent_spiffe_id(name) for name in agents}}
    for name, spiffe_id in wanted.items():
        if not _fresh(pki / f"{name}.pem", spiffe_id):
            issue_svid(pki, name, spiffe_id, SVID_TTL)
    return wanted


async def rotate_forever(pki: Path, agents: Iterable[str], every_s: float = 6 * 3600) -> None:
    """Rotate every SVID periodically; agents' server contexts are reloaded here (the
    gateway's own contexts are reloaded by the gateway)."""
    names = list(agents)
    while True:
        await asyncio.sleep(every_s)
        for name in ["gateway", *names]:
            rotate_svid(pki, name, SVID_TTL)
        for name in names:
            shared_contexts(SvidPaths.in_dir(pki, name), True).refresh()
        log.info("demo SVIDs rotated", extra={"dir": str(pki)})
