"""DLP actions: what replaces a finding in the text, and the deployment's HMAC key.

- ``redact``: ``[REDACTED:TYPE]``;
- ``mask``: every letter and digit but the last four becomes ``*`` (separators kept);
- ``hash``: ``[TYPE:hmac:<10 hex>]``, HMAC-SHA256 of the value under the deployment key, so the
  same value gives the same tag on every gateway sharing the key file (correlation without
  disclosure);
- ``allow``: left as is (still reported); ``block``: the whole response is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from maestro_gateway.keyfiles import create_private_file
from maestro_gateway.scanning import Finding

__all__ = ["Action", "apply_actions", "load_hmac_key", "mask", "replacement"]

Action = Literal["block", "redact", "mask", "hash", "allow"]
_KEYS: dict[str, bytes] = {}


def load_hmac_key(path: str) -> bytes:
    """The 32-byte HMAC key in ``path`` (hex), created (0600, atomically) if absent."""
    hit = _KEYS.get(path)
    if hit is not None:
        return hit
    file = Path(path)
    if not file.exists():
        create_private_file(file, os.urandom(32).hex().encode() + b"\n")
    key = bytes.fromhex(file.read_text(encoding="ascii").strip())
    if len(key) < 16:
        raise ValueError(f"{path}: DLP HMAC key shorter than 16 bytes")
    _KEYS[path] = key
    return key


def mask(value: str, keep: int = 4) -> str:
    """Letters and digits but the last ``keep`` become ``*``; separators stay."""
    alnum = sum(c.isalnum() for c in value)
    out, seen = [], 0
    for c in value:
        if c.isalnum():
            seen += 1
            out.append(c if seen > alnum - keep else "*")
        else:
            out.append(c)
    return "".join(out)


def replacement(finding: Finding, value: str, action: Action, key: bytes) -> str:
    if action == "mask":
        return mask(value)
    if action == "hash":
        tag = hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:10]
        return f"[{finding.type}:hmac:{tag}]"
    if action == "allow":
        return value
    return f"[REDACTED:{finding.type}]"


def apply_actions(
    text: str, findings: Sequence[tuple[Finding, Action]], key: bytes, offset: int = 0
) -> str:
    """``text`` with each finding replaced (findings sorted, non-overlapping; spans index
    ``text`` shifted by ``offset``)."""
    out: list[str] = []
    pos = 0
    for finding, action in findings:
        start, end = finding.start - offset, finding.end - offset
        if action in ("allow", "block") or start < pos:
            continue
        out.append(text[pos:start])
        out.append(replacement(finding, text[start:end], action, key))
        pos = end
    out.append(text[pos:])
    return "".join(out)
