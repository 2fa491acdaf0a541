"""DLP PII recognizers: a pattern finds candidates, a validator and nearby context words score
them (Presidio's recipe, without its cost). Types are Presidio's entity names.

Scores: a validated identifier with a strong shape (card, IBAN, email, IP) scores 0.8-1.0;
shapes that other numbers share (phone, SSN without dashes, driver licence, date of birth)
score below the default ``min_score`` (0.5) unless a context word is near.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import phonenumbers

from maestro_gateway.guards._dlp_validators import (
    digits,
    is_card,
    is_iban,
    is_ip,
    is_nino,
    is_us_ssn,
)
from maestro_gateway.scanning import Finding

__all__ = ["PII_PATTERNS", "PII_TRIGGERS", "PII_TYPES", "Recognizer", "find_pii"]

_BEFORE, _AFTER = 48, 24


def _c(regex: str) -> re.Pattern[str]:
    """ASCII classes: ``\\d`` is 0-9 (validators do digit arithmetic), and the hyperscan
    prefilter over UTF-8 bytes finds a superset of what the pattern finds."""
    return re.compile(regex, re.ASCII)


def _words(*words: str) -> re.Pattern[str]:
    return re.compile(r"(?<![a-z])(?:" + "|".join(words) + r")(?![a-z])")


@dataclass(frozen=True, slots=True)
class Recognizer:
    type: str
    rule: str
    pattern: re.Pattern[str]
    score: float  # a validated match without context
    context: re.Pattern[str] | None = None
    boost: float = 0.35
    validate: Callable[[str], bool] | None = None
    negative: re.Pattern[str] | None = None  # context words that rule the match out
    trigger: str | None = None  # for the prefilter, when context is required (score 0 alone)


def _around(text: str, start: int, end: int) -> str:
    return text[max(0, start - _BEFORE) : start].lower() + " | " + text[end : end + _AFTER].lower()


_CARD_CTX = _words("card", "cards", "cc", "credit", "debit", "visa", "mastercard", "amex", "pan")
_SSN_CTX = _words("ssn", "ssns", "social security", "social-security", "ss#", "ss #", "ssn#")
_IP_NEG = _words("version", "release", "build", "v", "ver", "firmware", "oid", "sdk")
_ID_NEG = _words("order", "invoice", "ticket", "ref", "reference", "tracking", "serial",
                 "isbn", "sku", "part", "po", "case", "build", "version")  # fmt: skip


def _card(text: str) -> bool:
    seps = {c for c in text if not c.isdigit()}
    if len(seps) > 1:
        return False
    if seps:
        groups = re.split(r"[ -]", text)
        if any(len(g) < 3 for g in groups[:-1]) or len(groups) > 5:
            return False
    return is_card(text)


_RECOGNIZERS: tuple[Recognizer, ...] = (
    Recognizer(
        "EMAIL_ADDRESS", "email",
        _c(
            r"(?<![\w.+%:/=-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
            r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
        ),
        0.95, validate=lambda s: ".." not in s and not s.split("@")[0].endswith("."),
    ),
    Recognizer(
        "CREDIT_CARD", "card_luhn",
        _c(r"(?<![\w.,+/-])\d(?:[ -]?\d){11,18}(?![\w/]|[.,-]\d)"),
        0.8, _CARD_CTX, 0.2, _card,
    ),
    Recognizer(
        "IBAN_CODE", "iban_mod97",
        _c(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?"
           r"(?![A-Za-z0-9])"),
        0.9,
    ),
    Recognizer(
        "US_SSN", "ssn_dashed",
        _c(r"(?<![\w.-])\d{3}([- ])\d{2}\1\d{4}(?![\w-]|\.\d)"),
        0.6, _SSN_CTX, 0.4, is_us_ssn, _words("phone", "tel", "fax", "call", "isbn"),
    ),
    Recognizer(
        "US_SSN", "ssn_plain",
        _c(r"(?<![\w.-])\d{9}(?![\w-]|\.\d)"), 0.0, _SSN_CTX, 0.8, is_us_ssn,
        trigger=r"(?i)ssn|social.security|ss ?#",
    ),
    Recognizer(
        "UK_NINO", "uk_nino",
        _c(r"(?<![\w-])[A-Za-z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-Da-d](?![\w-])"),
        0.55, _words("national insurance", "nino", "ni number", "ni no", "nin"), 0.4, is_nino,
    ),
    Recognizer(
        "IP_ADDRESS", "ipv4",
        _c(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)"),
        0.8, None, 0.0, is_ip, _IP_NEG,
    ),
    Recognizer(
        "IP_ADDRESS", "ipv6",
        _c(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])"),
        0.8, None, 0.0, lambda s: is_ip(s) and sum(c.isalnum() for c in s) >= 3,
    ),
    Recognizer(
        "US_DRIVER_LICENSE", "us_driver_license",
        _c(r"(?<![\w-])(?=[A-Z0-9-]*\d{4})[A-Z0-9]{1,4}(?:-?[A-Z0-9]){4,15}(?![\w-])"),
        0.0,
        _words("driver'?s? licen[cs]e", "drivers? licen[cs]e", "driving licen[cs]e", "dl",
               "dl#", "dl no", "licen[cs]e (?:number|no|#)", "dln"),
        0.75, trigger=r"(?i)licen[cs]e|dl",
    ),
    Recognizer(
        "DATE_TIME", "date_of_birth",
        _c(
            r"(?<![\w./-])(?:\d{1,2}[./-]\d{1,2}[./-](?:19|20)?\d{2}|(?:19|20)\d{2}-\d{2}-\d{2}"
            r"|\d{1,2}(?:st|nd|rd|th)? (?:of )?[A-Z][a-z]{2,8},? (?:19|20)\d{2}"
            r"|[A-Z][a-z]{2,8}\.? \d{1,2}(?:st|nd|rd|th)?,? (?:19|20)\d{2})(?![\w/-])"
        ),
        0.0, _words("born", "birth", "dob", "d\\.o\\.b\\.?", "birthday", "birthdate", "b-day"),
        0.85, trigger=r"(?i)born|birth|dob|d\.o\.b|b-day",
    ),
)  # fmt: skip

_PHONE = _c(
    r"(?<![\w+/.-])(?<!\d,)(?:\+|\()?\d[\d ().-]{5,22}\d(?:[ ]?(?:x|ext\.?)[ ]?\d{1,6})?"
    r"(?!\w|[.,-]\d)"
)
"""Phone candidates; after a comma only when no digit precedes it ("Office,0301…" is one,
"1,234,567" is not)."""
_PHONE_CTX = _words(
    "phone", "phones", "tel", "telephone", "call", "calls", "called", "calling", "mobile",
    "cell", "fax", "desk", "office", "contact", "reach", "ring", "text", "sms", "whatsapp",
    "answering", "dial", "messages", "hotline", "mob", "ph", "cellphone", "landline",
)  # fmt: skip
_NANP = re.compile(r"(?:\+?1[ .-]?|001[ .-]?)?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?:.*)?")
_DATE_SHAPE = re.compile(r"\d{1,4}([./-])\d{1,2}\1\d{1,4}|\d{1,2}:\d{2}")


def _phone_score(cand: str, around: str) -> float:
    """International (+, 00) numbers valid under phonenumbers, or NANP-shaped and valid, stand
    alone; anything else phone-shaped needs a context word (0.7: local numbers of every
    country, so no region is assumed; asking phonenumbers for 14 regions cost ~40% of the
    scan). Order, invoice, ticket… numbers without context are ruled out."""
    n = len(digits(cand.split("x")[0].split("ext")[0]))
    if not 7 <= n <= 15 or _DATE_SHAPE.fullmatch(cand):
        return 0.0
    ctx = _PHONE_CTX.search(around) is not None
    if not ctx and _ID_NEG.search(around):
        return 0.0
    try:
        if cand.startswith(("+", "00")):
            num = phonenumbers.parse("+" + cand.lstrip("+0") if cand.startswith("00") else cand)
            if phonenumbers.is_valid_number(num):
                return 1.0 if ctx else 0.8
            return 0.6 if ctx else 0.45 if phonenumbers.is_possible_number(num) else 0.0
        if _NANP.fullmatch(cand) and phonenumbers.is_valid_number(phonenumbers.parse(cand, "US")):
            return 0.95 if ctx else 0.6
    except phonenumbers.NumberParseException:
        pass
    return 0.7 if ctx else 0.0


PII_TYPES = frozenset(r.type for r in _RECOGNIZERS) | {"PHONE_NUMBER"}


def _iban_trim(cand: str) -> str | None:
    """The longest prefix of a spaced candidate (whole groups) that is a valid IBAN."""
    parts = cand.split(" ")
    for k in range(len(parts), 0, -1):
        joined = "".join(parts[:k])
        if len(joined) >= 15 and is_iban(joined):
            return " ".join(parts[:k])
    return None


PII_PATTERNS = (*(r.pattern for r in _RECOGNIZERS), _PHONE)
"""The patterns in prefilter order: each recognizer's, then the phone candidates'."""
PII_TRIGGERS = (*(r.trigger or r.pattern.pattern for r in _RECOGNIZERS), _PHONE.pattern)
"""What the prefilter looks for, in the same order (context words where context is needed)."""


def find_pii(
    text: str, enabled: frozenset[str] | None = None, hits: set[int] | None = None
) -> Iterator[Finding]:
    """Every scored PII candidate in ``text`` (overlaps are resolved by the caller);
    ``hits``: the indexes in ``PII_PATTERNS`` the prefilter saw (None: all)."""
    for i, rec in enumerate(_RECOGNIZERS):
        if (enabled is not None and rec.type not in enabled) or (
            hits is not None and i not in hits
        ):
            continue
        for m in rec.pattern.finditer(text):
            value, start = m.group(), m.start()
            end = m.end()
            if rec.type == "IBAN_CODE":
                trimmed = _iban_trim(value)
                if trimmed is None:
                    continue
                value, end = trimmed, start + len(trimmed)
            elif rec.validate is not None and not rec.validate(value):
                continue
            score = rec.score
            if rec.context is not None or rec.negative is not None:
                around = _around(text, start, end)
                ctx = rec.context is not None and rec.context.search(around) is not None
                if not ctx and rec.negative is not None and rec.negative.search(around):
                    continue
                if ctx:
                    score = min(1.0, score + rec.boost)
            if score > 0:
                yield Finding(rec.type, start, end, rec.rule, score)
    if (enabled is None or "PHONE_NUMBER" in enabled) and (
        hits is None or len(_RECOGNIZERS) in hits
    ):
        for m in _PHONE.finditer(text):
            score = _phone_score(m.group(), _around(text, m.start(), m.end()))
            if score > 0:
                yield Finding("PHONE_NUMBER", m.start(), m.end(), "phone", score)
