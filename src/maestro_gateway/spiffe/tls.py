"""TLS contexts from X.509 SVIDs, SPIFFE ID checks on peers, rotation without restart.

SPIFFE authenticates by URI SAN, not host name: contexts verify the peer's chain against the
trust bundle (``CERT_REQUIRED``) with host-name checking off, and the caller then checks the
peer's SPIFFE ID (:func:`check_peer`) — an agent must present exactly the ID it was registered
with, the gateway exactly its own.

Rotation: :class:`SvidContexts` keeps one server and one client ``SSLContext`` and reloads
the certificate and key into them when the files change (checked at most once a second on
use), so new handshakes use the new SVID while open connections finish on the old one. A
half-written pair (new key, old certificate) is skipped until both files agree.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

from maestro_gateway.spiffe.ids import peer_spiffe_id

__all__ = ["PeerRefused", "SvidContexts", "SvidPaths", "check_peer"]

log = logging.getLogger("maestro_gateway.spiffe")


class PeerRefused(Exception):
    """The peer's certificate does not carry the SPIFFE ID required of it."""


def check_peer(ssl_object: object, expected: str | None, trust_domain: str | None = None) -> str:
    """The peer's SPIFFE ID, when it is ``expected`` (or in ``trust_domain`` when no single ID
    is required). Raises PeerRefused otherwise."""
    sid = peer_spiffe_id(ssl_object)
    if sid is None:
        raise PeerRefused("the peer presented no X.509 SVID")
    if expected is not None and sid != expected:
        raise PeerRefused(f"the peer is {sid}, expected {expected}")
    if trust_domain is not None and not sid.startswith(f"spiffe://{trust_domain}/"):
        raise PeerRefused(f"the peer {sid} is outside the trust domain {trust_domain}")
    return sid


@dataclass(frozen=True, slots=True)
class SvidPaths:
    cert: str
    key: str
    bundle: str

    @staticmethod
    def in_dir(directory: str | Path, name: str) -> SvidPaths:
        d = Path(directory)
        return SvidPaths(str(d / f"{name}.pem"), str(d / f"{name}.key"), str(d / "bundle.pem"))


@dataclass
class SvidContexts:
    """A server and a client context for one workload, reloaded when its SVID files change."""

    paths: SvidPaths
    require_client_cert: bool = True
    server: ssl.SSLContext = field(init=False)
    client: ssl.SSLContext = field(init=False)
    _stamp: tuple[float, float] = field(init=False, default=(0.0, 0.0))
    _checked: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server.verify_mode = (
            ssl.CERT_REQUIRED if self.require_client_cert else ssl.CERT_OPTIONAL
        )
        self.client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.client.check_hostname = False  # SPIFFE: identity is the URI SAN (check_peer)
        self.client.verify_mode = ssl.CERT_REQUIRED
        for ctx in (self.server, self.client):
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_verify_locations(cafile=self.paths.bundle)
        if not self._load():
            raise ssl.SSLError(f"cannot load the SVID {self.paths.cert} with its key")

    def _mtimes(self) -> tuple[float, float]:
        return (os.stat(self.paths.cert).st_mtime_ns, os.stat(self.paths.key).st_mtime_ns)

    def _load(self) -> bool:
        try:
            stamp = self._mtimes()
            for ctx in (self.server, self.client):
                ctx.load_cert_chain(self.paths.cert, self.paths.key)
        except (OSError, ssl.SSLError) as exc:  # mid-rotation: try again on the next check
            log.warning("SVID not loaded", extra={"cert": self.paths.cert, "error": str(exc)})
            return False
        self._stamp = stamp
        return True

    def refresh(self) -> bool:
        """Reload the SVID if its files changed (at most one check per second); True if so."""
        now = time.monotonic()
        if now - self._checked < 1.0:
            return False
        self._checked = now
        try:
            if self._mtimes() == self._stamp:
                return False
        except OSError:
            return False
        loaded = self._load()
        if loaded:
            log.info("SVID rotated", extra={"cert": self.paths.cert})
        return loaded
