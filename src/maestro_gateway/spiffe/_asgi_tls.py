"""The ASGI TLS extension for a connection, and server contexts shared within a process.

No ASGI server hands the client certificate to the application; the gateway's uvicorn
protocol (``server.GatewayHttpProtocol``) reads it once per connection with
:func:`tls_extension` and puts it in every request's ``scope["extensions"]["tls"]``:

- ``client_cert_chain``: the peer's certificate as PEM (a one-element list; empty without one),
  already verified against the trust bundle by the server's TLS context;
- ``tls_version``: 0x0303 (TLS 1.2) or 0x0304 (TLS 1.3); ``cipher_suite``: None (the stdlib
  does not expose the code), ``server_cert``: None;
- ours: ``spiffe_id`` (the certificate's SPIFFE ID, None if it is no X.509 SVID) and
  ``fingerprint_sha256`` (hex SHA-256 of the DER certificate).
"""

from __future__ import annotations

import hashlib
import ssl
from functools import lru_cache
from typing import Any

from cryptography import x509

from maestro_gateway.spiffe.ids import InvalidSpiffeId, spiffe_id_of_cert
from maestro_gateway.spiffe.tls import SvidContexts, SvidPaths

__all__ = ["server_context", "shared_contexts", "tls_extension"]

_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def tls_extension(ssl_object: Any) -> dict[str, Any]:
    """The ASGI ``tls`` extension dict for a TLS connection (see the module docstring)."""
    der = ssl_object.getpeercert(binary_form=True)
    ext: dict[str, Any] = {
        "server_cert": None,
        "client_cert_chain": [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": _VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": None,
        "spiffe_id": None,
        "fingerprint_sha256": None,
    }
    if der:
        ext["client_cert_chain"] = [ssl.DER_cert_to_PEM_cert(der)]
        ext["fingerprint_sha256"] = hashlib.sha256(der).hexdigest()
        ext["spiffe_id"] = _spiffe_id(der)
    return ext


@lru_cache(maxsize=1024)
def _spiffe_id(der: bytes) -> str | None:
    try:
        return spiffe_id_of_cert(x509.load_der_x509_certificate(der))
    except (InvalidSpiffeId, ValueError):
        return None


_shared: dict[tuple[SvidPaths, bool], SvidContexts] = {}


def shared_contexts(paths: SvidPaths, require_client_cert: bool) -> SvidContexts:
    """One :class:`SvidContexts` per SVID and mode in this process: uvicorn's listener and the
    application's refresh task then use (and reload) the very same ``SSLContext``."""
    key = (paths, require_client_cert)
    hit = _shared.get(key)
    if hit is None:
        hit = _shared[key] = SvidContexts(paths, require_client_cert)
    return hit


def server_context(
    paths: SvidPaths, require_client_cert: bool, _config: object = None, _default: object = None
) -> ssl.SSLContext:
    """For uvicorn's ``ssl_context_factory`` (``functools.partial(server_context, paths, req)``,
    picklable for multi-worker serving)."""
    return shared_contexts(paths, require_client_cert).server
