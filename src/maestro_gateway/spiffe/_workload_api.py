"""X.509 SVIDs from the SPIFFE Workload API (``SPIFFE_ENDPOINT_SOCKET``), written as files.

The `spiffe` package's client streams X.509 contexts from the Workload API (a SPIRE agent's
Unix socket) on a background thread; each update — the first one, and every rotation the
agent pushes — is written here atomically into a private directory as ``<name>.pem`` (the
SVID's certificate chain), ``<name>.key`` (0600) and ``bundle.pem`` (the authorities of the
SVID's own trust domain; federated bundles are not written). The gateway's
:class:`~maestro_gateway.spiffe.tls.SvidContexts` reload those files when they change, exactly
as with the development CA, so rotation needs no restart and one code path serves both.

One writer per socket and directory in a process (:func:`workload_api_paths`); several
processes (uvicorn workers) writing the same files write the same content, atomically.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from maestro_gateway.spiffe.ca import _write
from maestro_gateway.spiffe.tls import SvidPaths

__all__ = [
    "ENV",
    "WorkloadApiError",
    "WorkloadApiFiles",
    "close_writers",
    "default_dir",
    "workload_api_paths",
]

log = logging.getLogger("maestro_gateway.spiffe")

ENV = "SPIFFE_ENDPOINT_SOCKET"


class WorkloadApiError(Exception):
    """No X.509 SVID could be had from the Workload API (in time)."""


def default_dir(socket: str) -> Path:
    """A private per-user directory for the files fetched through ``socket``."""
    tag = hashlib.sha256(socket.encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"maestro-svid-{os.getuid()}-{tag}"


class WorkloadApiFiles:
    """Follows the Workload API and keeps ``directory``'s SVID files current."""

    def __init__(
        self, socket: str, directory: Path, name: str = "svid", spiffe_id: str | None = None
    ) -> None:
        self.socket, self.directory, self.name, self.spiffe_id = socket, directory, name, spiffe_id
        self.paths = SvidPaths.in_dir(directory, name)
        self.updates = 0
        self.error: str | None = None
        self._first = threading.Event()
        self._client: Any = None
        self._handle: Any = None

    def start(self, timeout_s: float = 10.0) -> SvidPaths:
        """Start following; returns the file paths once the first SVID is written."""
        from spiffe import WorkloadApiClient  # imported here: grpc only when this is used

        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        try:
            self._client = WorkloadApiClient(self.socket)
        except Exception as exc:
            raise WorkloadApiError(f"Workload API at {self.socket}: {exc}") from None
        self._handle = self._client.stream_x509_contexts(self._on_update, self._on_error)
        if not self._first.wait(timeout_s):
            self.close()
            raise WorkloadApiError(
                f"no X.509 SVID from the Workload API at {self.socket} in {timeout_s:g} s"
                + (f": {self.error}" if self.error else "")
            )
        if self.updates == 0:
            self.close()
            raise WorkloadApiError(f"Workload API at {self.socket}: {self.error}")
        return self.paths

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def _on_error(self, exc: Exception) -> None:
        self.error = str(exc)
        log.error("Workload API stream failed", extra={"socket": self.socket, "error": str(exc)})
        self._first.set()  # start() reports it; a running gateway keeps its last SVID

    def _on_update(self, context: Any) -> None:
        try:
            self._write(context)
        except Exception as exc:  # a bad update never replaces a good SVID
            self.error = f"unusable X.509 context: {exc}"
            log.error("Workload API update not used", extra={"error": self.error})
            return
        self.updates += 1
        self._first.set()
        log.info("SVID from the Workload API", extra={"spiffe_id": self.spiffe_id})

    def _write(self, context: Any) -> None:
        svids = list(context.x509_svids)
        if self.spiffe_id is not None:
            svids = [s for s in svids if str(s.spiffe_id) == self.spiffe_id]
        if not svids:
            raise WorkloadApiError(f"the Workload API offers no SVID {self.spiffe_id or ''}")
        svid = svids[0]
        pem = serialization.Encoding.PEM
        chain = b"".join(cert.public_bytes(pem) for cert in svid.cert_chain)
        key = svid.private_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        bundle = context.x509_bundle_set.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
        if bundle is None or not bundle.x509_authorities:
            raise WorkloadApiError(f"no trust bundle for {svid.spiffe_id.trust_domain}")
        authorities = b"".join(sorted(a.public_bytes(pem) for a in bundle.x509_authorities))
        # Bundle first, then key, then certificate: a reader that sees the new certificate
        # finds its key (SvidContexts skips a pair that does not match until both agree).
        _write(Path(self.paths.bundle), authorities, private=False)
        _write(Path(self.paths.key), key, private=True)
        _write(Path(self.paths.cert), chain, private=False)


_writers: dict[tuple[str, str], WorkloadApiFiles] = {}
_lock = threading.Lock()


def workload_api_paths(
    socket: str,
    directory: str | Path | None = None,
    spiffe_id: str | None = None,
    timeout_s: float = 10.0,
) -> SvidPaths:
    """The SVID files kept current from ``socket`` (started on first use in this process)."""
    where = Path(directory) if directory is not None else default_dir(socket)
    key = (socket, str(where))
    with _lock:
        writer = _writers.get(key)
        if writer is None:
            writer = WorkloadApiFiles(socket, where, spiffe_id=spiffe_id)
            writer.start(timeout_s)
            _writers[key] = writer
    return writer.paths


def close_writers() -> None:
    """Stop following every Workload API in this process (the files stay)."""
    with _lock:
        for writer in _writers.values():
            writer.close()
        _writers.clear()
