"""The worked example of docs/audit.md: its values are real and its verifier code works."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from maestro_gateway.audit import AuditLog, NoteSigner, merkle, verify_inclusion_document

DOC = (Path(__file__).parent.parent / "docs" / "audit.md").read_text()
# The documentation key: never a real one (docs/audit.md says how it is made).
SIGNER = NoteSigner(
    "gateway.example/audit",
    Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(b"maestro-gateway docs/audit.md example key").digest()
    ),
)
RECORDS = [
    ("alice", "echo", "allow"),
    ("bob", "writer", "allow"),
    ("mallory", "worker", "deny"),
    ("alice", "writer", "allow"),
    ("bob", "echo", "allow"),
]


def block(marker: str) -> str:
    """The fenced code block that follows ``<!-- marker -->`` in docs/audit.md."""
    found = re.search(rf"<!-- {marker} -->\n```\w*\n(.*?)```", DOC, re.S)
    assert found, marker
    return found.group(1)


class Clock:
    """2026-05-01T12:00:00Z, one second later at each reading."""

    def __init__(self) -> None:
        self.now = datetime(2026, 5, 1, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


async def test_documented_example_is_reproduced(tmp_path: Path) -> None:
    """The documented vkey and proof document are what the documented log produces."""
    url = f"sqlite:///{tmp_path}/a.db"
    async with AuditLog.open(url, SIGNER, clock=Clock(), flush_interval=3600) as log:
        for who, agent, decision in RECORDS:
            record = {"event": "a2a.request", "principal": who, "agent": agent}
            await log.append({**record, "decision": decision})
        doc = await log.prove(2)
    assert block("example-vkey").strip() == SIGNER.vkey
    assert json.loads(block("example-document")) == doc
    assert doc["checkpoint"].split("\n\n")[0] in DOC


def test_worked_steps_are_the_real_hashes() -> None:
    """Every hash in the step table is the one the climb computes, ending at the signed root."""
    doc = json.loads(block("example-document"))
    r, steps = merkle.leaf_hash(doc["entry"].encode()), []
    steps.append(r)
    fn, sn = doc["index"], doc["tree_size"] - 1
    for p in map(bytes.fromhex, doc["proof"]):
        if fn & 1 or fn == sn:
            r = merkle.node_hash(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = merkle.node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
        steps.append(r)
    for value in steps:
        assert f"`{value.hex()}`" in DOC
    assert base64.b64encode(r).decode() in doc["checkpoint"]


def standalone() -> Any:
    namespace: dict[str, Any] = {}
    exec(compile(block("standalone-verifier"), "docs/audit.md", "exec"), namespace)
    return namespace["check"]


def test_standalone_verifier_accepts_the_example() -> None:
    """The documented verifier and the package agree on the example document."""
    doc, vkey = json.loads(block("example-document")), block("example-vkey").strip()
    entry = standalone()(doc, doc["checkpoint"], vkey)
    assert entry == verify_inclusion_document(doc, doc["checkpoint"], vkey)
    assert entry["record"]["principal"] == "mallory"


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(entry=d["entry"].replace("deny", "allow")),
        lambda d: d.update(index=3),
        lambda d: d.update(proof=d["proof"][:2]),
        lambda d: d.update(proof=[d["proof"][0], d["proof"][2], d["proof"][1]]),
        lambda d: d.update(checkpoint=d["checkpoint"].replace("\n5\n", "\n6\n")),
    ],
)
def test_standalone_verifier_refuses_altered_documents(change: Any) -> None:
    """The documented verifier refuses a changed entry, index, proof or checkpoint."""
    doc, vkey = json.loads(block("example-document")), block("example-vkey").strip()
    change(doc)
    with pytest.raises((ValueError, InvalidSignature)):
        standalone()(doc, doc["checkpoint"], vkey)
