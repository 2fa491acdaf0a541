"""JWS/JWK primitives on ``cryptography``: asymmetric algorithms only, nothing else.

RFC 7515 (JWS), RFC 7517/7518 (JWK, algorithms), RFC 8037 and RFC 9864 (EdDSA / Ed25519),
RFC 7638 (JWK thumbprint). Malformed keys or signatures raise ``ValueError``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

REFUSED_ALGS = frozenset({"none", "HS256", "HS384", "HS512"})
"""Never acceptable on a public card: no signature, or a shared secret anyone verifying holds."""

_EC_ALGS: dict[str, tuple[str, type[hashes.HashAlgorithm]]] = {
    "ES256": ("P-256", hashes.SHA256),
    "ES384": ("P-384", hashes.SHA384),
    "ES512": ("P-521", hashes.SHA512),
}
_RSA_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
_CURVES: dict[str, tuple[ec.EllipticCurve, int]] = {
    "P-256": (ec.SECP256R1(), 32),
    "P-384": (ec.SECP384R1(), 48),
    "P-521": (ec.SECP521R1(), 66),
}
_EDDSA_ALGS = frozenset({"EdDSA", "Ed25519"})
VERIFY_ALGS = frozenset({*_EC_ALGS, *_EDDSA_ALGS, *(f"{p}S{n}" for p in "RP" for n in _RSA_HASHES)})
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding (RFC 7515 §2)."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int(jwk: Mapping[str, Any], name: str) -> int:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"JWK member {name!r} is missing")
    return int.from_bytes(b64url_decode(value), "big")


def public_key_from_jwk(jwk: Mapping[str, Any]) -> PublicKey:
    """The public key a JWK describes; symmetric (``oct``) and unknown key types are refused."""
    kty = jwk.get("kty")
    if kty == "EC":
        curve, _ = _CURVES.get(str(jwk.get("crv")), (None, 0))
        if curve is None:
            raise ValueError(f"unsupported EC curve {jwk.get('crv')!r}")
        numbers = ec.EllipticCurvePublicNumbers(_int(jwk, "x"), _int(jwk, "y"), curve)
        return numbers.public_key()
    if kty == "OKP":
        if jwk.get("crv") != "Ed25519":
            raise ValueError(f"unsupported OKP curve {jwk.get('crv')!r}")
        return ed25519.Ed25519PublicKey.from_public_bytes(b64url_decode(str(jwk.get("x", ""))))
    if kty == "RSA":
        key = rsa.RSAPublicNumbers(_int(jwk, "e"), _int(jwk, "n")).public_key()
        if key.key_size < 2048:
            raise ValueError("RSA keys shorter than 2048 bits are refused")
        return key
    if kty == "oct":
        raise ValueError("symmetric (oct) keys cannot verify public cards")
    raise ValueError(f"unsupported key type {kty!r}")


def private_key_from_jwk(jwk: Mapping[str, Any]) -> PrivateKey:
    """A private EC (P-256/384/521) or Ed25519 key from its JWK (with ``d``)."""
    public = public_key_from_jwk(jwk)
    if isinstance(public, ec.EllipticCurvePublicKey):
        private: PrivateKey = ec.derive_private_key(_int(jwk, "d"), public.curve)
    elif isinstance(public, ed25519.Ed25519PublicKey):
        private = ed25519.Ed25519PrivateKey.from_private_bytes(b64url_decode(str(jwk.get("d"))))
    else:
        raise ValueError("signing needs an EC or Ed25519 key")
    if public_jwk(private) != public_jwk(public):
        raise ValueError("JWK private part does not match its public part")
    return private


def default_alg(key: PrivateKey | PublicKey) -> str:
    """The algorithm we sign with for this key: ES256/384/512 by curve, EdDSA for Ed25519."""
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "EdDSA"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        for alg, (crv, _) in _EC_ALGS.items():
            if _CURVES[crv][0].name == key.curve.name:
                return alg
    raise ValueError("no signing algorithm for this key")


def key_fits_alg(key: PublicKey, alg: str) -> bool:
    if alg in _EC_ALGS:
        curve = _CURVES[_EC_ALGS[alg][0]][0]
        return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == curve.name
    if alg in _EDDSA_ALGS:
        return isinstance(key, ed25519.Ed25519PublicKey)
    return alg in VERIFY_ALGS and isinstance(key, rsa.RSAPublicKey)


def sign(alg: str, key: PrivateKey, data: bytes) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey) and alg in _EDDSA_ALGS:
        return key.sign(data)
    if isinstance(key, ec.EllipticCurvePrivateKey) and alg in _EC_ALGS:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(_EC_ALGS[alg][1]())))
        size = _CURVES[_EC_ALGS[alg][0]][1]
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    raise ValueError(f"cannot sign {alg} with this key")


def verify(alg: str, key: PublicKey, data: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``alg`` over ``data`` by ``key`` (callers check key_fits_alg)."""
    try:
        if isinstance(key, ed25519.Ed25519PublicKey) and alg in _EDDSA_ALGS:
            key.verify(signature, data)
        elif isinstance(key, ec.EllipticCurvePublicKey) and alg in _EC_ALGS:
            size = _CURVES[_EC_ALGS[alg][0]][1]
            if len(signature) != 2 * size:
                return False
            r, s = (int.from_bytes(signature[i : i + size], "big") for i in (0, size))
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(_EC_ALGS[alg][1]()))
        elif isinstance(key, rsa.RSAPublicKey) and alg in VERIFY_ALGS:
            digest = _RSA_HASHES[alg[2:]]()
            pad: padding.AsymmetricPadding = (
                padding.PKCS1v15()
                if alg.startswith("RS")
                else padding.PSS(padding.MGF1(digest), digest.digest_size)
            )
            key.verify(signature, data, pad, digest)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def public_jwk(key: PrivateKey | PublicKey) -> dict[str, str]:
    """The public JWK (required members only) of an EC or Ed25519 key."""
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        pub = key.public_key() if isinstance(key, ed25519.Ed25519PrivateKey) else key
        raw = pub.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        pub_ec = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
        crv = next(c for c, (cls, _) in _CURVES.items() if cls.name == pub_ec.curve.name)
        size = _CURVES[crv][1]
        nums = pub_ec.public_numbers()
        x, y = (b64url(n.to_bytes(size, "big")) for n in (nums.x, nums.y))
        return {"kty": "EC", "crv": crv, "x": x, "y": y}
    raise ValueError("only EC and Ed25519 keys are exported")


def private_jwk(key: PrivateKey) -> dict[str, str]:
    jwk = public_jwk(key)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        jwk["d"] = b64url(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
    else:
        size = _CURVES[jwk["crv"]][1]
        jwk["d"] = b64url(key.private_numbers().private_value.to_bytes(size, "big"))
    return jwk


def thumbprint(jwk: Mapping[str, str]) -> str:
    """RFC 7638 SHA-256 thumbprint (base64url) of a public EC or OKP JWK."""
    members = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("crv", "kty", "x")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())
