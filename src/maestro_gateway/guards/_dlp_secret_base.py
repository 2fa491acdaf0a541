"""DLP secret rules, the machinery: the rule record, its constructor, the shared regex pieces
and the value checks the rule tables (``_dlp_secrets``, ``_dlp_secrets_saas``) use.

A rule is a pattern (the span reported is one group), an optional validator of the value,
optional context (``near``: a word that must be close, ``not_before``: key text that hands
the value to a stricter rule) and a score. Every value is also checked against placeholders
(``EXAMPLE``, ``xxxx``, one repeated character, ``123456``…) unless the rule opts out
(formats whose real values contain long runs: key blocks, JWTs, ``AAAA…`` bearer tokens).
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from maestro_gateway.guards._dlp_validators import looks_like_secret, shannon_entropy

__all__ = [
    "ASSIGN",
    "KEY",
    "KEY_WORDS",
    "VALUE",
    "B",
    "E",
    "Q",
    "SecretRule",
    "base62_crc_ok",
    "basic_auth",
    "is_fake",
    "password",
    "pem_b64",
    "rule",
    "url_password",
    "varied",
]

Check = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class SecretRule:
    id: str
    pattern: re.Pattern[str]
    group: int = 0  # the span reported (0: the whole match)
    validate: Check | None = None
    score: float = 0.95
    boundary: bool = False  # the match must not follow a letter, digit or underscore
    lower: bool = False  # ``pattern`` runs over the lower-cased text (see rule())
    trigger: str | None = None  # what the hyperscan prefilter looks for (default: pattern)
    near: re.Pattern[str] | None = None  # must occur close to the match
    not_before: re.Pattern[str] | None = None  # must not end the text before the value
    fake_check: bool = True  # placeholders (``is_fake``) are rejected


def _lowered(regex: str) -> str:
    """``regex`` for lower-cased text: letters lower-cased (escapes kept), case flags gone."""
    out, i = [], 0
    while i < len(regex):
        if regex[i] == "\\":
            out.append(regex[i : i + 2])
            i += 2
            continue
        out.append(regex[i].lower())
        i += 1
    return "".join(out).replace("(?i:", "(?:").replace("(?im)", "(?m)").replace("(?i)", "")


B = r"(?<![A-Za-z0-9_])"  # start boundary; leading, it is checked in code (see rule())
E = r"(?![A-Za-z0-9_])"  # end boundary
Q = r"""["'`]?"""
ASSIGN = r"""(?:\\?["'`]?\s*(?:=>|:=|[:=>]|\s)\s*\\?["'`]?|["'`]\s*,\s*["'`]{1,2})"""
"""Between a key and its value: ``=``, ``:``, ``:=``, ``=>``, an XML ``>``, quotes (escaped
too, as in JSON inside a string), or a call's ``("key", "value")``."""
KEY_WORDS = (
    r"api[_.-]?key|apikey|secret|token|passw(?:or)?d|passwd|pwd|auth[_.-]?key"
    r"|credential|access[_.-]?key|private[_.-]?key|client[_.-]?secret|licen[cs]e[_.-]?key"
    r"|signing[_.-]?key|app[_.-]?key|master[_.-]?key|session[_.-]?key|encryption[_.-]?key"
    r"|webhook|bearer|key"
)
"""The words that start a key-context match (lower case)."""
KEY = r"(?i:(?:" + KEY_WORDS + r")[\w.-]{0,20})"
VALUE = r"([A-Za-z0-9_+/=~.!@#$&%^*-]{{12,256}}{0})(?![A-Za-z0-9_+/=~.!@#$&%^*-])"
"""A key-context value; possessive (``{0}`` = "+") where ``re`` runs it, so a run longer than
256 characters fails at once instead of backtracking (the prefilter gets the plain form)."""


def rule(id: str, regex: str, group: int = 0, validate: Check | None = None,
         score: float = 0.95, trigger: str | None = None, near: str | None = None,
         not_before: str | None = None, fake_check: bool = True) -> SecretRule:  # fmt: skip
    """A rule. Speed (``re`` searches a literal prefix fast, not a leading lookbehind or a
    case-insensitive alternation, ~50-300 µs/KB each): a leading ``B`` becomes a check in
    code, and a case-insensitive rule runs lower-cased over the lower-cased text. ``near`` and
    ``not_before`` are case-insensitive regexes over the text around the match."""
    boundary = regex.startswith(B)
    regex = regex.removeprefix(B) if boundary else regex
    lower = "(?i" in regex
    compiled = re.compile(_lowered(regex) if lower else regex, re.ASCII)
    return SecretRule(
        id, compiled, group, validate, score, boundary, lower, trigger,
        None if near is None else re.compile(near, re.IGNORECASE),
        None if not_before is None else re.compile(not_before + r"$", re.IGNORECASE),
        fake_check,
    )  # fmt: skip


def varied(min_entropy: float) -> Check:
    """High entropy and more than six distinct characters (random, not a pattern)."""
    return lambda s: shannon_entropy(s) >= min_entropy and len(set(s)) > 6


_FAKE = re.compile(
    r"(?i)example|placeholder|dummy|redacted|sample|changeme|replace[_-]?me|insert[_-]?your"
    r"|your[_-]|<[^>\s]{1,40}>|\{\{|\$\{|x{5,}|\*{4,}|(.)\1{7,}"
    r"|0123456|1234567|2345678|3456789|abcdefg|bcdefgh"
)


def is_fake(value: str) -> bool:
    """A placeholder or made-up value: EXAMPLE, ``xxxxx``, ``<your-key>``, ``${VAR}``, one
    character eight times in a row, a run of consecutive digits or letters."""
    return _FAKE.search(value) is not None


_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62_crc_ok(token: str) -> bool:
    """GitHub (``ghp_``…) and npm (``npm_``) tokens: the last 6 characters are the CRC32 of
    the random part before them, in base62 (0-9A-Za-z), zero-padded."""
    body = token[token.index("_") + 1 :] if token.startswith("npm_") else token[4:]
    random, check = body[:-6], body[-6:]
    n, out = zlib.crc32(random.encode()), ""
    while n:
        n, r = divmod(n, 62)
        out = _B62[r] + out
    return out.rjust(6, "0") == check


def pem_b64(value: str) -> bool:
    """Base64 of a PEM block (Kubernetes ``client-key-data``, env files)."""
    try:
        head = base64.b64decode(value[:64] + "=" * (-len(value[:64]) % 4))
    except (binascii.Error, ValueError):
        return False
    return b"PRIVATE KEY" in head or b"BEGIN" in head


def basic_auth(value: str) -> bool:
    """An HTTP Basic credential: base64 of printable ``user:password``."""
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    user, sep, pw = raw.partition(b":")
    return bool(sep and user and pw) and raw.isascii() and raw.decode().isprintable()


def password(value: str) -> bool:
    """A literal password in password context: no character-class or entropy bar beyond a
    floor (people choose "whiteduke"), but not a placeholder, variable, call, masked value or
    lower-case words joined by ``-``/``_``/``.`` (a label, selector or setting name)."""
    return looks_like_secret(value, min_entropy=2.0, min_len=6, min_classes=1)


_NOT_URL_PASSWORD = re.compile(r"^[$<{*]|\$\{|\{\{|^x+$|^\.+$|^(?:my|your)[A-Z_-]")


def url_password(value: str) -> bool:
    """A password in ``scheme://user:password@host``: short ones count, not placeholders
    (``${PASS}``, ``<password>``, ``myPassword``)."""
    if _NOT_URL_PASSWORD.search(value):
        return False
    return password(value) or (len(value) >= 3 and not is_fake(value))
