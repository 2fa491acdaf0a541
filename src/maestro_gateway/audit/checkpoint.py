"""Signed checkpoints: C2SP ``tlog-checkpoint`` bodies in C2SP ``signed-note`` envelopes (Ed25519).

A checkpoint body is ``<origin>\\n<tree size>\\n<base64 root hash>\\n`` plus, here, one extension
line ``timestamp <RFC 3339 UTC>``. The note is the body, a blank line, then one line per
signature: ``— <key name> <base64(key id || Ed25519 signature)>``, where the key id is
``SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4]``. Verifiers are configured with
a *vkey* ``<name>+<hex key id>+<base64(0x01 || public key)>``, the form that
``golang.org/x/mod/sumdb/note`` and the transparency-dev tools print. Following the note spec,
signatures from unknown keys are ignored, a known key whose signature fails rejects the whole
note, and a note with no verified signature is rejected.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from maestro_gateway.keyfiles import create_private_file

__all__ = [
    "Checkpoint",
    "NoteError",
    "NoteSigner",
    "NoteVerifier",
    "load_or_create_signer",
    "open_note",
    "verify_checkpoint",
]

ALG_ED25519 = 0x01
_DASH = "\u2014 "
_MAX_SIGNATURES = 100


class NoteError(ValueError):
    """A note, vkey or checkpoint is malformed or does not verify; the message says why."""


def _b64decode(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"not standard base64: {text!r}") from exc
    if base64.b64encode(raw).decode() != text:
        raise NoteError(f"not canonical base64: {text!r}")
    return raw


def _check_key_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise NoteError(f"key name {name!r} must be non-empty, without spaces or '+'")


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key id of an Ed25519 key (C2SP signed-note, signature type 0x01)."""
    return sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: ``size`` leaves with root ``root_hash``, issued by the log ``origin``."""

    origin: str
    size: int
    root_hash: bytes
    timestamp: datetime | None = None

    def body(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode()]
        if self.timestamp is not None:
            stamp = self.timestamp.astimezone(UTC).isoformat(timespec="microseconds")
            lines.append("timestamp " + stamp.replace("+00:00", "Z"))
        return "\n".join(lines) + "\n"

    @classmethod
    def parse_body(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
            raise NoteError("a checkpoint body is at least 3 non-empty lines, each ending in \\n")
        origin, size, root_b64, *extensions = lines[:-1]
        if not size.isdigit() or not size.isascii() or (size != "0" and size.startswith("0")):
            raise NoteError(f"checkpoint tree size {size!r} is not a decimal number")
        root_hash = _b64decode(root_b64)
        if len(root_hash) != 32:
            raise NoteError(f"checkpoint root hash is {len(root_hash)} bytes, not 32")
        timestamp = None
        for line in extensions:
            if line.startswith("timestamp "):
                try:
                    timestamp = datetime.fromisoformat(line[len("timestamp ") :])
                except ValueError as exc:
                    raise NoteError(f"bad checkpoint timestamp line {line!r}") from exc
        return cls(origin, int(size), root_hash, timestamp)


class NoteSigner:
    """Signs notes with an Ed25519 key under a key name (for a log: its origin)."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        _check_key_name(name)
        self.name = name
        self._key = private_key
        self.public_key = _raw_public(private_key.public_key())
        self.key_id = key_id(name, self.public_key)

    @property
    def vkey(self) -> str:
        """The verifier key to hand to auditors: ``<name>+<hex id>+<base64(0x01 || key)>``."""
        encoded = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.key_id, self._key.public_key())

    def sign(self, text: str) -> str:
        """``text`` (ending in a newline) as a signed note with this key's signature line."""
        _check_text(text)
        signature = self._key.sign(text.encode())
        blob = base64.b64encode(self.key_id + signature).decode()
        return f"{text}\n{_DASH}{self.name} {blob}\n"

    def sign_checkpoint(self, checkpoint: Checkpoint) -> str:
        return self.sign(checkpoint.body())


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted Ed25519 key: signatures from the same ``(name, key_id)`` must verify with it."""

    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        name, _, rest = vkey.partition("+")
        hex_id, _, encoded = rest.partition("+")
        _check_key_name(name)
        if len(hex_id) != 8 or any(c not in "0123456789abcdef" for c in hex_id):
            raise NoteError(f"vkey key id {hex_id!r} is not 8 lowercase hex digits")
        raw = _b64decode(encoded)
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError("vkey is not an Ed25519 key (type 0x01 and 32 bytes)")
        if key_id(name, raw[1:]).hex() != hex_id:
            raise NoteError(f"vkey key id {hex_id} does not match its name and key")
        return cls(name, bytes.fromhex(hex_id), Ed25519PublicKey.from_public_bytes(raw[1:]))


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("note contains a control character other than newline")


def open_note(note: str, verifiers: Iterable[NoteVerifier]) -> tuple[str, list[str]]:
    """The text of ``note`` and the names of the trusted keys whose signatures verified."""
    _check_text(note)
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line before its signatures")
    text, lines = note[: split + 1], note[split + 2 : -1].split("\n")
    if len(lines) > _MAX_SIGNATURES:
        raise NoteError(f"note has more than {_MAX_SIGNATURES} signatures")
    known = {(v.name, v.key_id): v for v in verifiers}
    verified: list[str] = []
    for line in lines:
        name, _, blob = line.removeprefix(_DASH).partition(" ")
        if not line.startswith(_DASH) or not blob:
            raise NoteError(f"malformed signature line {line!r}")
        _check_key_name(name)
        raw = _b64decode(blob)
        if len(raw) < 5:
            raise NoteError(f"signature from {name} is too short")
        verifier = known.get((name, raw[:4]))
        if verifier is None:
            continue  # unknown keys are ignored (signed-note §Signatures)
        try:
            verifier.public_key.verify(raw[4:], text.encode())
        except InvalidSignature as exc:
            raise NoteError(f"signature from {name} ({raw[:4].hex()}) does not verify") from exc
        verified.append(name)
    if not verified:
        raise NoteError("note has no signature from a trusted key")
    return text, verified


def verify_checkpoint(
    note: str, vkey: str | NoteVerifier, *, origin: str | None = None
) -> Checkpoint:
    """The checkpoint in ``note`` once signed by ``vkey`` (and issued by ``origin``, if given)."""
    verifier = NoteVerifier.from_vkey(vkey) if isinstance(vkey, str) else vkey
    text, _ = open_note(note, [verifier])
    checkpoint = Checkpoint.parse_body(text)
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"checkpoint origin {checkpoint.origin!r} is not {origin!r}")
    return checkpoint


def load_or_create_signer(path: str | os.PathLike[str], name: str) -> NoteSigner:
    """The Ed25519 key in PEM file ``path`` (created 0600 if missing) as a signer named ``name``."""
    file = Path(path)
    if not file.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
        create_private_file(file, pem)
    mode = stat.S_IMODE(file.stat().st_mode)
    if mode & 0o077:
        raise PermissionError(f"audit key file {file} has mode {mode:o}; it must be 0600")
    key = load_pem_private_key(file.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"audit key file {file} does not hold an Ed25519 private key")
    return NoteSigner(name, key)
