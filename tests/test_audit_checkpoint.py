"""Signed notes and checkpoints (C2SP signed-note, tlog-checkpoint) with Ed25519.

Provenance of the vectors:

- [GO-NOTE] golang.org/x/mod ``sumdb/note`` (``example_test.go``: ``ExampleSign``,
  ``ExampleOpen``, ``ExampleSign_add_signatures``; the same text is in the package doc of
  ``note.go``). The EnochRoot key there is ``note.GenerateKey`` fed by a reader of zero bytes,
  i.e. the Ed25519 seed 0x00 * 32. Ed25519 (RFC 8032) signatures are deterministic, so signing
  the same text with the same key must give the published bytes.
- [C2SP-CKPT] the example checkpoint body of c2sp.org/tlog-checkpoint.
"""

from __future__ import annotations

import base64
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from maestro_gateway.audit import (
    Checkpoint,
    NoteError,
    NoteSigner,
    NoteVerifier,
    load_or_create_signer,
    open_note,
    verify_checkpoint,
)

# [GO-NOTE]
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotp"
    "RZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox3"
    "3WWd1RvMc+QQ=\n"
)
PETER_NOTE = TEXT + "\n" + PETER_SIG
BOTH_NOTE = TEXT + "\n" + PETER_SIG + ENOCH_SIG

# [C2SP-CKPT]
SOFA_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"


def peter() -> NoteSigner:
    seed = base64.b64decode(PETER_SKEY.split("+", 4)[4])
    assert seed[0] == 1  # algorithm byte: Ed25519
    return NoteSigner("PeterNeumann", Ed25519PrivateKey.from_private_bytes(seed[1:]))


def enoch() -> NoteSigner:
    return NoteSigner("EnochRoot", Ed25519PrivateKey.from_private_bytes(bytes(32)))


def test_signing_reproduces_the_go_note_vector() -> None:
    """Signing the Go example text with the PeterNeumann key gives the published note [GO-NOTE]."""
    signer = peter()
    assert signer.vkey == PETER_VKEY
    assert signer.key_id.hex() == "c74f20a3"
    assert signer.sign(TEXT) == PETER_NOTE


def test_key_id_derivation_matches_a_second_key() -> None:
    """The key id is SHA-256(name || \\n || 0x01 || key)[:4], as for EnochRoot [GO-NOTE]."""
    assert enoch().vkey == ENOCH_VKEY
    assert enoch().sign(TEXT) == TEXT + "\n" + ENOCH_SIG


def test_open_verifies_the_go_note() -> None:
    """The published note opens with the published vkey and names its signer [GO-NOTE]."""
    assert open_note(PETER_NOTE, [NoteVerifier.from_vkey(PETER_VKEY)]) == (TEXT, ["PeterNeumann"])


def test_unknown_signatures_are_ignored() -> None:
    """A doubly signed note verifies with either key alone, and with both [GO-NOTE]."""
    peter_v, enoch_v = NoteVerifier.from_vkey(PETER_VKEY), NoteVerifier.from_vkey(ENOCH_VKEY)
    assert open_note(BOTH_NOTE, [peter_v])[1] == ["PeterNeumann"]
    assert open_note(BOTH_NOTE, [enoch_v])[1] == ["EnochRoot"]
    assert open_note(BOTH_NOTE, [peter_v, enoch_v])[1] == ["PeterNeumann", "EnochRoot"]


def test_notes_that_must_not_open() -> None:
    """Tampered text, foreign keys, bad known signatures and malformed notes are refused."""
    peter_v = NoteVerifier.from_vkey(PETER_VKEY)
    bad_sig = PETER_SIG.replace("x08go/", "x08go+")
    refused = [
        PETER_NOTE.replace("problem is", "problem was"),  # text changed
        TEXT + "\n" + ENOCH_SIG,  # only an unknown key signed
        TEXT + "\n" + bad_sig,  # known key, wrong signature
        TEXT + "\n" + ENOCH_SIG + bad_sig,  # one bad known signature rejects the note
        TEXT + PETER_SIG,  # no blank line
        TEXT + "\n" + PETER_SIG.rstrip("\n"),  # no final newline
        TEXT + "\n" + PETER_SIG.replace("— ", "- "),  # not an em dash
        "bell\x07\n\n" + PETER_SIG,  # control character
        TEXT + "\n" + PETER_SIG.replace("=\n", "\n"),  # not canonical base64
    ]
    for note in refused:
        with pytest.raises(NoteError):
            open_note(note, [peter_v])


def test_malformed_vkeys_are_refused() -> None:
    """A vkey with a wrong key id, algorithm, name or encoding is refused."""
    for vkey in [
        PETER_VKEY.replace("c74f20a3", "c74f20a4"),
        PETER_VKEY.replace("PeterNeumann", "Peter"),
        PETER_VKEY.replace("+ARpc", "+Apc"),
        "PeterNeumann+c74f20a3+" + base64.b64encode(b"\x02" + bytes(32)).decode(),
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann",
    ]:
        with pytest.raises(NoteError):
            NoteVerifier.from_vkey(vkey)


def test_checkpoint_body_parses_the_c2sp_example() -> None:
    """The tlog-checkpoint example body parses and prints back byte for byte [C2SP-CKPT]."""
    checkpoint = Checkpoint.parse_body(SOFA_BODY)
    assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
    assert checkpoint.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert checkpoint.body() == SOFA_BODY


def test_signed_checkpoint_round_trip() -> None:
    """A checkpoint with a timestamp line signs, verifies and parses back to itself."""
    signer = NoteSigner("gw.example/audit", Ed25519PrivateKey.generate())
    stamp = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    checkpoint = Checkpoint("gw.example/audit", 42, bytes(range(32)), stamp)
    note = signer.sign_checkpoint(checkpoint)
    assert note.startswith(
        "gw.example/audit\n42\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
        "timestamp 2026-05-01T12:00:00.123456Z\n\n— gw.example/audit "
    )
    assert verify_checkpoint(note, signer.vkey, origin="gw.example/audit") == checkpoint
    with pytest.raises(NoteError, match="origin"):
        verify_checkpoint(note, signer.vkey, origin="other.example/log")
    with pytest.raises(NoteError):
        verify_checkpoint(note.replace("\n42\n", "\n43\n"), signer.vkey)


def test_malformed_checkpoint_bodies_are_refused() -> None:
    """Missing lines, non-decimal sizes and short root hashes are not checkpoints."""
    for body in [
        "origin\n12\n",
        "origin\n012\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "origin\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "origin\n1\nAAAA\n",
        "origin\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n",
    ]:
        with pytest.raises(NoteError):
            Checkpoint.parse_body(body)


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    """The Ed25519 key file is created with mode 0600 and loads back as the same key."""
    path = tmp_path / "keys" / "audit.pem"
    first = load_or_create_signer(path, "gw.example/audit")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_signer(path, "gw.example/audit").vkey == first.vkey


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    """A key file other users could read is refused rather than used."""
    path = tmp_path / "audit.pem"
    load_or_create_signer(path, "gw.example/audit")
    os.chmod(path, 0o644)
    with pytest.raises(PermissionError, match="0600"):
        load_or_create_signer(path, "gw.example/audit")
