"""Signed agent cards (A2A §8.4): verify agents' signatures, sign the gateway's cards.

Each ``signatures`` entry is a JWS in the flattened, detached-payload form the A2A SDKs emit:
``{"protected": b64url(header), "signature": b64url(sig), "header"?: {...}}``; the payload is
the canonical card without ``signatures`` (see ``_canonical.signing_payloads`` for the forms
rebuilt). Only the *protected* header is trusted: ``alg`` and ``kid`` come from there, keys come
only from the caller's trusted set (``jku`` is never fetched), symmetric algorithms and ``none``
are refused, and a JWK's own ``alg``/``use``/``key_ops`` must allow the verification. Revoking a
key means removing it from the trusted set.
"""

from __future__ import annotations

import copy
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from maestro_gateway.keyfiles import create_private_file
from maestro_gateway.registry import _jose
from maestro_gateway.registry._canonical import signing_payloads
from maestro_gateway.registry.models import InvalidCard

__all__ = ["GatewaySigner", "sign_card", "verify_card_signatures"]


class _Refused(Exception):
    """One signature entry does not verify; the message says why."""


def verify_card_signatures(
    card: Mapping[str, Any],
    trusted_keys: Mapping[str, Mapping[str, Any]],
    *,
    required: bool = False,
) -> str | None:
    """The ``kid`` of the first signature that verifies with a trusted key.

    ``trusted_keys`` maps kid → public JWK. Returns ``None`` for an unsigned card unless
    ``required``. Raises InvalidCard when signatures are present but none verifies (tampered
    card, untrusted kid, symmetric or ``none`` alg, malformed entry), listing each reason.
    """
    entries = card.get("signatures")
    if not entries:
        if required:
            raise InvalidCard("agent card is not signed and a signature is required")
        return None
    if not isinstance(entries, list):
        raise InvalidCard("agent card signatures must be an array")
    payloads = signing_payloads(card)
    reasons: list[str] = []
    for index, entry in enumerate(entries):
        try:
            return _verify_entry(entry, payloads, trusted_keys)
        except _Refused as refused:
            reasons.append(f"signatures[{index}]: {refused}")
    raise InvalidCard("no agent card signature verifies with a trusted key: " + "; ".join(reasons))


def _verify_entry(
    entry: Any, payloads: list[bytes], trusted_keys: Mapping[str, Mapping[str, Any]]
) -> str:
    if not isinstance(entry, dict):
        raise _Refused("not an object")
    protected, signature = entry.get("protected"), entry.get("signature")
    if not isinstance(protected, str) or not isinstance(signature, str):
        raise _Refused("protected and signature must be base64url strings")
    try:
        header = json.loads(_jose.b64url_decode(protected))
        raw_signature = _jose.b64url_decode(signature)
    except ValueError as exc:
        raise _Refused("protected header or signature is not valid base64url JSON") from exc
    if not isinstance(header, dict):
        raise _Refused("protected header is not a JSON object")
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or alg.lower() == "none" or alg in _jose.REFUSED_ALGS:
        raise _Refused(f"alg {alg!r} is refused: public cards need an asymmetric signature")
    if alg not in _jose.VERIFY_ALGS:
        raise _Refused(f"alg {alg!r} is not supported")
    if "crit" in header or header.get("b64") is False:
        raise _Refused("critical or unencoded-payload JWS extensions are not supported")
    if not isinstance(kid, str) or not kid:
        raise _Refused("the protected header has no kid")
    jwk = trusted_keys.get(kid)
    if jwk is None:
        raise _Refused(f"key {kid!r} is not trusted")
    try:
        key = _jose.public_key_from_jwk(jwk)
    except ValueError as exc:
        raise _Refused(f"trusted key {kid!r} is unusable: {exc}") from exc
    if jwk.get("alg", alg) != alg or not _jose.key_fits_alg(key, alg):
        raise _Refused(f"trusted key {kid!r} is not a key for alg {alg!r}")
    if jwk.get("use", "sig") != "sig" or "verify" not in jwk.get("key_ops", ["verify"]):
        raise _Refused(f"trusted key {kid!r} is not meant for verifying signatures")
    for payload in payloads:
        signing_input = f"{protected}.{_jose.b64url(payload)}".encode()
        if _jose.verify(alg, key, signing_input, raw_signature):
            return kid
    raise _Refused(f"signature by {kid!r} does not match the card (altered since it was signed)")


def sign_card(card: Mapping[str, Any], private_jwk: Mapping[str, Any], kid: str) -> dict[str, Any]:
    """A copy of ``card`` with one more signature by ``private_jwk`` (EC → ES256/384/512,
    Ed25519 → EdDSA), in the form a2a-sdk's ``create_signature_verifier`` accepts."""
    try:
        key = _jose.private_key_from_jwk(private_jwk)
    except ValueError as exc:
        raise InvalidCard(f"cannot sign with this key: {exc}") from exc
    return _sign(card, key, kid)


def _sign(card: Mapping[str, Any], key: _jose.PrivateKey, kid: str) -> dict[str, Any]:
    alg = _jose.default_alg(key)
    header = {"alg": alg, "kid": kid, "typ": "JOSE"}
    protected = _jose.b64url(json.dumps(header, separators=(",", ":")).encode())
    payload = signing_payloads(card)[0]
    signing_input = f"{protected}.{_jose.b64url(payload)}".encode()
    signature = _jose.b64url(_jose.sign(alg, key, signing_input))
    signed = copy.deepcopy(dict(card))
    signed["signatures"] = [
        *signed.get("signatures", []),
        {"protected": protected, "signature": signature},
    ]
    return signed


class GatewaySigner:
    """The gateway's card-signing key, loaded from ``path`` or created there (PEM, mode 0600).

    ``alg`` picks the key type created (P-256 for ES256, Ed25519 for EdDSA) and must match an
    existing key. ``kid`` defaults to the RFC 7638 thumbprint of the public key, so it is stable
    across restarts and changes with the key. A key file that group or others may access is
    refused.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        alg: Literal["ES256", "EdDSA"] = "ES256",
        kid: str | None = None,
    ) -> None:
        self._setup(_load_or_create(Path(path), alg), kid)

    @classmethod
    def from_key(cls, private_key: _jose.PrivateKey, *, kid: str | None = None) -> GatewaySigner:
        """A signer for a key held in memory (tests, keys from a secret manager)."""
        signer = cls.__new__(cls)
        signer._setup(private_key, kid)
        return signer

    def _setup(self, key: _jose.PrivateKey, kid: str | None) -> None:
        self._key = key
        self.alg = _jose.default_alg(key)
        self.kid = kid or _jose.thumbprint(_jose.public_jwk(key))

    def public_jwk(self) -> dict[str, str]:
        return {**_jose.public_jwk(self._key), "kid": self.kid, "alg": self.alg, "use": "sig"}

    def public_jwks(self) -> dict[str, Any]:
        """The JWK Set the gateway publishes so clients can verify its cards."""
        return {"keys": [self.public_jwk()]}

    def trusted_keys(self) -> dict[str, dict[str, str]]:
        """``{kid: jwk}`` for :func:`verify_card_signatures`."""
        return {self.kid: self.public_jwk()}

    def sign(self, card: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``card`` signed with the gateway key."""
        return _sign(card, self._key, self.kid)


def _load_or_create(file: Path, alg: Literal["ES256", "EdDSA"]) -> _jose.PrivateKey:
    if not file.exists():
        new: _jose.PrivateKey = (
            ec.generate_private_key(ec.SECP256R1())
            if alg == "ES256"
            else ed25519.Ed25519PrivateKey.generate()
        )
        create_private_file(
            file, new.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        )
    mode = stat.S_IMODE(file.stat().st_mode)
    if mode & 0o077:
        raise PermissionError(
            f"gateway key file {file} has mode {mode:o}; it must be readable by its owner only "
            "(chmod 600)"
        )
    key = load_pem_private_key(file.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise ValueError(f"gateway key file {file} holds neither an EC nor an Ed25519 key")
    if _jose.default_alg(key) != alg:
        raise ValueError(f"gateway key file {file} holds a {_jose.default_alg(key)} key, not {alg}")
    return key
