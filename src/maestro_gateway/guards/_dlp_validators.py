"""DLP validators: pure checks that turn a pattern match into a finding (or reject it).

Each takes the matched text and answers whether it is a real identifier of its kind; the
recognizers call them after the cheap pattern layer, so they cut false positives.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import re
from collections import Counter

import orjson
from stdnum import iban as _iban
from stdnum.exceptions import ValidationError

__all__ = [
    "PLACEHOLDER",
    "card_brand",
    "digits",
    "is_card",
    "is_iban",
    "is_ip",
    "is_jwt",
    "is_nino",
    "is_us_ssn",
    "looks_like_secret",
    "luhn_ok",
    "shannon_entropy",
]

_NON_DIGIT = re.compile(r"\D")


def digits(text: str) -> str:
    return _NON_DIGIT.sub("", text)


def luhn_ok(number: str) -> bool:
    """The Luhn (mod 10) check of a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# (brand, IIN prefix ranges as (low, high) over the first 6 digits, allowed lengths)
_BRANDS: tuple[tuple[str, tuple[tuple[int, int], ...], frozenset[int]], ...] = (
    ("visa", ((400000, 499999),), frozenset({13, 16, 19})),
    ("mastercard", ((510000, 559999), (222100, 272099)), frozenset({16})),
    ("amex", ((340000, 349999), (370000, 379999)), frozenset({15})),
    ("diners", ((300000, 305999), (309500, 309599), (360000, 369999), (380000, 399999)),
     frozenset({14, 15, 16, 17, 18, 19})),
    ("discover", ((601100, 601199), (622126, 622925), (644000, 659999)),
     frozenset({16, 17, 18, 19})),
    ("jcb", ((350000, 359999),), frozenset({16, 17, 18, 19})),  # 3528-3589, and 35xx as issued
    ("jcb15", ((180000, 180099), (213100, 213199)), frozenset({15})),
    ("unionpay", ((620000, 629999), (810000, 817199)), frozenset({16, 17, 18, 19})),
    ("maestro", ((500000, 509999), (560000, 589999), (639000, 639999), (670000, 679999)),
     frozenset(range(12, 20))),
    ("mir", ((220000, 220499),), frozenset({16, 17, 18, 19})),
    ("rupay", ((608000, 608999), (652100, 653099)), frozenset({16})),
)  # fmt: skip


def card_brand(number: str) -> str | None:
    """The card scheme whose IIN range and length fit ``number`` (digits only), else None."""
    if not 12 <= len(number) <= 19:
        return None
    iin = int(number[:6])
    for brand, ranges, lengths in _BRANDS:
        if len(number) in lengths and any(lo <= iin <= hi for lo, hi in ranges):
            return brand
    return None


def is_card(text: str) -> bool:
    """A payment card number: known IIN range and length, Luhn-valid, not one repeated digit."""
    number = digits(text)
    return card_brand(number) is not None and luhn_ok(number) and len(set(number)) > 1


def is_iban(text: str) -> bool:
    """An IBAN: known country and length, mod-97 check (python-stdnum)."""
    try:
        _iban.validate(text)
    except ValidationError:
        return False
    return True


_SSN_SHAPE = re.compile(r"(\d{3})([- ]?)(\d{2})\2(\d{4})")


def is_us_ssn(text: str) -> bool:
    """A possible US SSN (SSA rules): area not 000, 666 or 900-999; group not 00; serial not
    0000; not a number the SSA published as an example (078-05-1120, 219-09-9999…)."""
    m = _SSN_SHAPE.fullmatch(text)
    if m is None:
        return False
    area, group, serial = m.group(1), m.group(3), m.group(4)
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    if area + group + serial in ("078051120", "219099999", "123456789", "111111111"):
        return False
    return len(set(area + group + serial)) > 1


_NINO = re.compile(r"([A-CEGHJ-PR-TW-Z]{2}) ?\d{2} ?\d{2} ?\d{2} ?[A-D]")
_NINO_BAD_PREFIX = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def is_nino(text: str) -> bool:
    """A UK National Insurance number (HMRC prefix rules: no D, F, I, Q, U, V; second letter
    not O; not BG, GB, KN, NK, NT, TN, ZZ)."""
    m = _NINO.fullmatch(text.upper())
    return m is not None and m.group(1)[1] != "O" and m.group(1) not in _NINO_BAD_PREFIX


def is_ip(text: str) -> bool:
    """An IPv4 or IPv6 address (ipaddress), IPv4 in dotted-quad form without leading zeros."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return False
    if addr.version == 4:
        return all(p == "0" or not p.startswith("0") for p in text.split("."))
    return text.count(":") >= 2


def _b64url_json(segment: str) -> object:
    padded = segment + "=" * (-len(segment) % 4)
    try:
        return orjson.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError):
        return None


def is_jwt(text: str) -> bool:
    """A JWS compact token: a JSON header with ``alg``, a JSON object payload (or a JWE's five
    segments with a JSON header), and a signature segment for a signed token."""
    segments = text.split(".")
    if len(segments) not in (3, 5):
        return False
    header = _b64url_json(segments[0])
    if not isinstance(header, dict) or "alg" not in header:
        return False
    if len(segments) == 5:
        return "enc" in header
    payload = _b64url_json(segments[1])
    return isinstance(payload, dict) and (bool(segments[2]) or header.get("alg") == "none")


def shannon_entropy(text: str) -> float:
    """Bits per character of ``text``."""
    if not text:
        return 0.0
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


_PLACEHOLDER = re.compile(
    r"(?i)x{4,}|\*{3,}|#{3,}|\.{3}|<[^>]*>|^\$|\$[{(]|\{\{|%\(|%[A-Z_]+%|changeme|example|placeholder"
    r"|^your|dummy|redacted|sample|^fake|^test|^(?:secret|password|passwd|token|api_?key|none|null"
    r"|undefined|true|false|[a-z_]+\(.*)$|(?:my|the|your)_?password|lorem|[a-z]\(|\.(?:get|to)[A-Z]"
)
PLACEHOLDER = _PLACEHOLDER
"""Placeholders, variables, calls and stock words that are not a credential value."""
_IDENTIFIER = re.compile(
    r"[a-z]+([A-Z_.-][a-z0-9]+)+|[A-Za-z]+(_[A-Za-z]+)+|[A-Z]+(_[A-Z0-9]+)*|[#.]?[a-z]+([-_.][a-z]+)+"
)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def looks_like_secret(
    value: str, min_entropy: float = 3.0, min_len: int = 8, min_classes: int = 2
) -> bool:
    """A value in key-like context that is a credential rather than a look-alike: long enough,
    mixed characters, high entropy, and not a placeholder, variable, function call or word."""
    if len(value) < min_len or _PLACEHOLDER.search(value) or _IDENTIFIER.fullmatch(value):
        return False
    if _UUID.fullmatch(value):  # an identifier, not a credential
        return False
    classes = sum(
        (
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
            any(not c.isalnum() for c in value),
        )
    )
    if classes < min_classes or len(set(value)) < min(len(value) // 3, 8):
        return False
    threshold = min_entropy if len(value) >= 16 else min_entropy - 0.5
    return shannon_entropy(value) >= threshold
