"""SPIFFE IDs (``spiffe://<trust-domain>/<path>``) and reading them out of X.509 SVIDs.

Parsing follows the SPIFFE ID specification: scheme ``spiffe``, a trust domain of lowercase
letters, digits, ``.``, ``-`` and ``_`` (no port, no user info), a path of non-empty segments
without ``.``/``..`` of the same characters plus upper case, and no query or fragment. An
X.509 SVID carries exactly one URI SAN, its SPIFFE ID.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any

from cryptography import x509

__all__ = [
    "InvalidSpiffeId",
    "parse_spiffe_id",
    "peer_spiffe_id",
    "spiffe_id_of_cert",
    "spiffe_id_of_pem",
    "trust_domain_of",
]

_TD = re.compile(r"^[a-z0-9._-]+$")
_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")


class InvalidSpiffeId(ValueError):
    """Not a valid SPIFFE ID, or a certificate that is not an X.509 SVID."""


def parse_spiffe_id(value: str) -> str:
    """The ID itself when valid; raises InvalidSpiffeId with the reason otherwise."""
    if not isinstance(value, str) or not value.startswith("spiffe://"):
        raise InvalidSpiffeId(f"{value!r}: a SPIFFE ID starts with spiffe://")
    if len(value) > 2048:
        raise InvalidSpiffeId("SPIFFE ID longer than 2048 bytes")
    rest = value[len("spiffe://") :]
    if "?" in rest or "#" in rest:
        raise InvalidSpiffeId(f"{value!r}: no query or fragment allowed")
    td, slash, path = rest.partition("/")
    if not td or not _TD.match(td):
        raise InvalidSpiffeId(f"{value!r}: bad trust domain (lowercase letters, digits, .-_)")
    if slash:
        for seg in path.split("/"):
            if not seg or seg in (".", "..") or not _SEGMENT.match(seg):
                raise InvalidSpiffeId(f"{value!r}: bad path segment {seg!r}")
    return value


def trust_domain_of(spiffe_id: str) -> str:
    return parse_spiffe_id(spiffe_id)[len("spiffe://") :].split("/", 1)[0]


def spiffe_id_of_cert(cert: x509.Certificate) -> str:
    """The SPIFFE ID of an X.509 SVID (exactly one ``spiffe://`` URI SAN)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise InvalidSpiffeId("certificate has no subject alternative name") from None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise InvalidSpiffeId(f"an X.509 SVID has exactly one URI SAN, this one has {len(uris)}")
    return parse_spiffe_id(uris[0])


_pem_cache: OrderedDict[str, str] = OrderedDict()


def spiffe_id_of_pem(pem: str) -> str:
    """The SPIFFE ID of a PEM certificate (parsed once per distinct certificate)."""
    hit = _pem_cache.get(pem)
    if hit is not None:
        return hit
    try:
        cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    except ValueError as exc:
        raise InvalidSpiffeId(f"not a PEM certificate: {exc}") from None
    sid = spiffe_id_of_cert(cert)
    _pem_cache[pem] = sid
    if len(_pem_cache) > 1024:
        _pem_cache.popitem(last=False)
    return sid


def peer_spiffe_id(ssl_object: Any) -> str | None:
    """The verified peer's SPIFFE ID on a TLS connection (None without a peer certificate)."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    try:
        return spiffe_id_of_cert(x509.load_der_x509_certificate(der))
    except (InvalidSpiffeId, ValueError):
        return None
