"""The built-in development CA: short-lived X.509 SVIDs for the gateway and each agent.

For development, tests and the demo — production takes SVIDs from the SPIFFE Workload API.
A CA directory holds ``ca.pem``/``ca.key`` (the trust domain's root) and ``bundle.pem``
(the trust bundle others verify against), and one ``<name>.pem``/``<name>.key`` per issued
SVID. Keys are ECDSA P-256, written 0600; an SVID carries one URI SAN (its SPIFFE ID), is not
a CA, and is valid for server and client authentication. ``rotate`` issues a fresh key and
certificate under the same ID and replaces the files atomically, so a process that reloads
them (``spiffe.tls.SvidFiles``) picks the new SVID up without a restart.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from maestro_gateway.spiffe.ids import parse_spiffe_id, spiffe_id_of_cert, trust_domain_of

__all__ = ["CaError", "Issued", "init_ca", "issue_svid", "rotate_svid"]

_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


class CaError(Exception):
    """The CA directory is missing, incomplete, or the request does not fit it."""


@dataclass(frozen=True, slots=True)
class Issued:
    name: str
    spiffe_id: str
    cert_path: Path
    key_path: Path
    not_after: dt.datetime


def _write(path: Path, data: bytes, private: bool) -> None:
    """Replace ``path`` atomically (readers see the old file or the new one, never half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600 if private else 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def init_ca(directory: str | Path, trust_domain: str, days: int = 365) -> Path:
    """Create the trust domain's root CA (refuses to overwrite an existing one)."""
    parse_spiffe_id(f"spiffe://{trust_domain}")
    root = Path(directory)
    if (root / "ca.key").exists():
        raise CaError(f"{root}: a CA already exists (remove it to start over)")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{trust_domain} dev CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"spiffe://{trust_domain}")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    _write(root / "ca.key", _key_pem(key), private=True)
    _write(root / "ca.pem", pem, private=False)
    _write(root / "bundle.pem", pem, private=False)
    _write(root / "ca.json", json.dumps({"trust_domain": trust_domain}).encode(), False)
    return root


def _load_ca(root: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, str]:
    try:
        key = serialization.load_pem_private_key((root / "ca.key").read_bytes(), None)
        cert = x509.load_pem_x509_certificate((root / "ca.pem").read_bytes())
        td = json.loads((root / "ca.json").read_text())["trust_domain"]
    except (OSError, ValueError, KeyError) as exc:
        raise CaError(f"{root}: not a CA directory (run `pki init`): {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CaError(f"{root}/ca.key is not an EC key")
    return key, cert, str(td)


def issue_svid(
    directory: str | Path, name: str, spiffe_id: str, ttl: dt.timedelta = dt.timedelta(hours=24)
) -> Issued:
    """Issue ``<name>.pem``/``<name>.key`` for ``spiffe_id`` (in the CA's trust domain)."""
    if not name or set(name) - _NAME_OK:
        raise CaError(f"{name!r}: names are lowercase letters, digits, '-', '_' and '.'")
    root = Path(directory)
    ca_key, ca_cert, td = _load_ca(root)
    parse_spiffe_id(spiffe_id)
    if trust_domain_of(spiffe_id) != td:
        raise CaError(f"{spiffe_id} is outside this CA's trust domain {td}")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    not_after = min(now + ttl, ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SPIFFE")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, True, False, True, False, False, False, False), True
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_path, cert_path = root / f"{name}.key", root / f"{name}.pem"
    # Key first: a reader that sees the new certificate must also find its key.
    _write(key_path, _key_pem(key), private=True)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), private=False)
    return Issued(name, spiffe_id, cert_path, key_path, not_after)


def rotate_svid(
    directory: str | Path, name: str, ttl: dt.timedelta = dt.timedelta(hours=24)
) -> Issued:
    """Re-issue an existing SVID under the same SPIFFE ID with a fresh key."""
    path = Path(directory) / f"{name}.pem"
    try:
        current = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise CaError(f"{path}: no SVID to rotate: {exc}") from None
    return issue_svid(directory, name, spiffe_id_of_cert(current), ttl)
