"""Finding and decoding encoded payloads: base64, hex, URL escapes, HTML entities, ROT13.

Each decoder returns ``(start, end, decoded, kind)`` tuples: the span of the encoded text in
its input and what it decodes to. Only decodings that yield readable text are kept, and every
decoder is bounded (blob count, blob size), so hostile input costs linear time at most.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import re
from urllib.parse import unquote

from maestro_gateway.text._fold import STOPWORDS

Decoded = tuple[int, int, str, str]

_B64 = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/_=-])")
_HEX = re.compile(r"(?<![0-9A-Za-z])(?:[0-9A-Fa-f]{2}[ :]?){10,}(?![0-9A-Za-z])")
_HEX_ESC = re.compile(r"(?:\\x[0-9A-Fa-f]{2}){6,}")
_URL = re.compile(r"(?:%[0-9A-Fa-f]{2}[^%\s]{0,3}){3,}")
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z]{2,8});")
_WORDS = re.compile(r"[A-Za-z]+")
_SEGMENT = re.compile(r"[^\n:]+")
_MAX_BLOBS = 8
_MAX_BLOB = 65536


def readable(data: bytes) -> str | None:
    """``data`` as text when it is mostly printable UTF-8 with some letters, else None."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(text) < 4:
        return None
    printable = sum(1 for c in text if c.isprintable() or c in "\n\r\t")
    letters = sum(1 for c in text if c.isalpha())
    if printable < 0.95 * len(text) or letters < 0.4 * len(text) or " " not in text.strip():
        return None
    return text


def _b64(blob: str) -> str | None:
    if len(blob) > _MAX_BLOB or blob.isalpha() or blob.isdigit():
        return None
    raw = blob.rstrip("=")
    raw += "=" * (-len(raw) % 4)
    try:
        altchars = b"-_" if ("-" in raw or "_" in raw) else None
        return readable(base64.b64decode(raw, altchars=altchars, validate=True))
    except (binascii.Error, ValueError):
        return None


def _hex(blob: str) -> str | None:
    digits = re.sub(r"[^0-9A-Fa-f]", "", blob.replace("\\x", ""))
    if len(digits) % 2 or len(digits) > 2 * _MAX_BLOB:
        return None
    try:
        return readable(bytes.fromhex(digits))
    except ValueError:
        return None


def stopword_rate(text: str) -> float:
    words = _WORDS.findall(text[:4096].lower())
    if len(words) < 4:
        return 0.0
    return sum(1 for w in words if w in STOPWORDS) / len(words)


def decode_all(text: str) -> list[Decoded]:
    """Every readable decoding found in ``text`` (at most a few per kind)."""
    out: list[Decoded] = []
    for pattern, decoder, kind in (
        (_B64, _b64, "base64"),
        (_HEX, _hex, "hex"),
        (_HEX_ESC, _hex, "hex"),
    ):
        for tried, m in enumerate(pattern.finditer(text)):
            if tried >= 4 * _MAX_BLOBS:
                break
            decoded = decoder(m.group())
            if decoded is not None:
                out.append((m.start(), m.end(), decoded, kind))
                if len(out) >= _MAX_BLOBS:
                    return out
    if "%" in text and _URL.search(text):
        decoded = unquote(text)
        if decoded != text:
            out.append((0, len(text), decoded, "url"))
    if "&" in text and len(_ENTITY.findall(text, 0, 65536)) >= 2:
        decoded = html.unescape(text)
        if decoded != text:
            out.append((0, len(text), decoded, "html_entities"))
    out.extend(_rot13(text))
    return out


def _rot13(text: str) -> list[Decoded]:
    """ROT13, per line (or sentence-ish segment): kept when the rotated segment reads as
    English and the original does not."""
    out: list[Decoded] = []
    if not text.isascii():
        return out
    for m in _SEGMENT.finditer(text, 0, 65536):
        seg = m.group()
        if len(seg) < 12 or stopword_rate(seg) >= 0.2:
            continue
        rotated = codecs.encode(seg, "rot13")
        if stopword_rate(rotated) >= 0.25:
            out.append((m.start(), m.end(), rotated, "rot13"))
            if len(out) >= _MAX_BLOBS:
                break
    return out
