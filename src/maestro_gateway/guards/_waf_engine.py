"""The WAF engine: decoding, multi-pattern matching, libinjection, and HTTP header checks.

Matching uses one Hyperscan database per set of active rules (all patterns in one pass over
each value) and falls back to Python ``re`` rule by rule when Hyperscan is not installed;
libinjection backs rules 942100 and 941100 (without it they are inactive and the regex rules
remain). Both are optional imports so that a machine without them still runs, slower and
with lower SQLi/XSS recall.

Values are decoded in passes (``%XX``/``%uXXXX``, ``+`` in form values, HTML entities, JS
escapes, NFKC and invisible characters, NUL) up to ``max_depth`` times, and every distinct
form is matched: ``%252e%252e%252f`` is seen as ``%2e%2e%2f`` and as ``../``. Command
injection and file rules also see a shell-normalised form (quotes, backslashes, ``^`` and
``$IFS`` removed), as CRS's ``t:cmdLine``.
"""

from __future__ import annotations

import functools
import html
import importlib
import logging
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from itertools import accumulate
from typing import Any
from urllib.parse import unquote, unquote_plus

from maestro_gateway.guards._waf_rules import (
    BY_ID,
    SPECIAL_COUNTS,
    SQLI_TRIGGER,
    XSS_TRIGGER,
    Finding,
    Rule,
)


def _optional(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


log = logging.getLogger("maestro_gateway.guards.waf")
_hs: Any = _optional("hyperscan")
_li: Any = _optional("libinjection")
HYPERSCAN = _hs is not None
LIBINJECTION = _li is not None

_DECODE = re.compile(r"[%&\\\x00]|[^\x00-\x7f]")
_PCT_U = re.compile(r"%u([0-9a-fA-F]{4})")
_JS_ESC = re.compile(r"\\(?:x([0-9a-fA-F]{2})|u\{([0-9a-fA-F]{1,6})\}|u([0-9a-fA-F]{4}))")
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u2060-\u2064\ufeff]")
_SHELL_JUNK = re.compile(r"\$\{?IFS\}?|\$@|\$\{[a-z]?\}")
_SHELL_QUOTES = re.compile(r"[\\'\"^]")
_SPECIAL = re.compile("[~!@#$%^&*()\\-+={}\\[\\]|:;\"'\u00b4\u2019\u2018`<>]")


def _js_char(m: re.Match[str]) -> str:
    code = int(m.group(1) or m.group(2) or m.group(3), 16)
    return chr(code) if code <= 0x10FFFF else m.group(0)


def decode_once(text: str, form: bool) -> str:
    """One decoding pass (URL, HTML entities, JS escapes, Unicode folding, NUL removal)."""
    out = text
    if "%" in out:
        out = _PCT_U.sub(lambda m: chr(int(m.group(1), 16)), out)
        out = unquote_plus(out) if form else unquote(out)
    elif form and "+" in out:
        out = out.replace("+", " ")
    if "&" in out:
        out = html.unescape(out)
    if "\\" in out:
        out = _JS_ESC.sub(_js_char, out)
    if not out.isascii():
        out = _INVISIBLE.sub("", unicodedata.normalize("NFKC", out))
    return out.replace("\x00", "") if "\x00" in out else out


def variants(text: str, form: bool, max_depth: int) -> list[tuple[str, str]]:
    """``(transform, text)`` for the value as sent and each distinct decoding pass."""
    out = [("none", text)]
    if not (_DECODE.search(text) or (form and "+" in text)):
        return out
    current = text
    for depth in range(1, max_depth + 1):
        nxt = decode_once(current, form and depth == 1)
        if nxt == current:
            break
        out.append((f"decode{depth}", nxt))
        current = nxt
    return out


def cmdline(text: str) -> str:
    """The shell-normalised form: ``c'a't$IFS/e"t"c/pas\\swd`` becomes ``cat /etc/passwd``."""
    return _SHELL_QUOTES.sub("", _SHELL_JUNK.sub(" ", text))


# Multi-line anchors: ``^``/``$`` also match at a newline, so that a value matching a rule
# implies a match in several values joined with "\n" (the batch pre-filter of scan_many).
_FLAGS = (
    0 if _hs is None else _hs.HS_FLAG_CASELESS | _hs.HS_FLAG_SINGLEMATCH | _hs.HS_FLAG_MULTILINE
)
_EVERY = 0 if _hs is None else _FLAGS & ~_hs.HS_FLAG_SINGLEMATCH
_WINDOW = 1024  # characters searched with `re` before a match's end, to find its start
_RE_FLAGS = re.IGNORECASE | re.MULTILINE
# A value needs the slow path when it may decode to something else or has shell quoting.
_SLOW = re.compile(r"[%&\\\x00'\"^$]|[^\x00-\x7f]")
_SLOW_FORM = re.compile(r"[%&\\\x00'\"^$+]|[^\x00-\x7f]")


def _database(patterns: list[tuple[int, str]], every: Sequence[tuple[int, str]] = ()) -> Any:
    """A Hyperscan database: ``patterns`` report once per scan, ``every`` at each match."""
    db = _hs.Database()
    both = [*patterns, *every]
    db.compile(
        expressions=[p.encode() for _, p in both],
        ids=[i for i, _ in both],
        elements=len(both),
        flags=[_FLAGS] * len(patterns) + [_EVERY] * len(every),
    )
    return db


def _collect(rule_id: int, start: int, end: int, flags: int, found: dict[int, int]) -> None:
    found.setdefault(rule_id, end)


def _collect_at(rule_id: int, start: int, end: int, flags: int, found: list[Any]) -> None:
    found.append((rule_id, end))


def _size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "replace"))


class Engine:
    """Scans values against one set of active rules (built once per set, then cached)."""

    def __init__(self, active: frozenset[int], use_hyperscan: bool = True) -> None:
        rules = [BY_ID[i] for i in sorted(active) if BY_ID[i].pattern]
        self._rules: dict[int, Rule] = {r.id: r for r in rules}
        self._regex = {r.id: re.compile(str(r.pattern), _RE_FLAGS) for r in rules}
        self._regex.update({i: re.compile(p, _RE_FLAGS) for i, p in (SQLI_TRIGGER, XSS_TRIGGER)})
        self._cmd_ids = [r.id for r in rules if r.cmdline]
        self.sqli = 942100 in active and _li is not None
        self.xss = 941100 in active and _li is not None
        self.counts = [(BY_ID[i], n) for i, n in SPECIAL_COUNTS.items() if i in active]
        self._db: Any = None
        self._cmd_db: Any = None
        if _hs is not None and use_hyperscan:
            pats = [(r.id, str(r.pattern)) for r in rules]
            self._db = _database(pats, [SQLI_TRIGGER, XSS_TRIGGER])
            if self._cmd_ids:
                self._cmd_db = _database([(i, str(BY_ID[i].pattern)) for i in self._cmd_ids])

    def _match(self, text: str, cmd: bool) -> dict[int, int]:
        """``{rule id: end offset}`` of the rules (and triggers) matching ``text``."""
        db = self._cmd_db if cmd else self._db
        if db is not None:
            found: dict[int, int] = {}
            db.scan(text.encode("utf-8", "replace"), match_event_handler=_collect, context=found)
            return found
        ids = self._cmd_ids if cmd else self._regex
        return {i: m.end() for i in ids if (m := self._regex[i].search(text))}

    def _spans(self, text: str, ends: dict[int, int]) -> dict[int, tuple[int, int]]:
        """Character spans of the rules in ``ends`` (rule id: where its match ended).

        Matching told where a match ended; ``re`` finds its start in the 1 KB before that,
        so a span costs little whatever the value's size (the patterns are linear anyway).
        """
        data = text.encode("utf-8", "replace") if self._db is not None else b""
        out: dict[int, tuple[int, int]] = {}
        for rid, end in ends.items():
            if data and not data.isascii():
                end = len(data[:end].decode("utf-8", "ignore"))
            m = self._regex[rid].search(text, max(0, end - _WINDOW), end)
            out[rid] = m.span() if m else (max(0, end - 1), end)
        return out

    def scan(self, value: str, location: str, form: bool = False, depth: int = 3) -> list[Finding]:
        """Findings for one value: at most one per rule, the first form that matched."""
        found: dict[int, Finding] = {}
        forms = variants(value, form, depth)
        for transform, text in forms:
            ids = self._match(text, False)
            new = {i: e for i, e in ids.items() if i in self._rules and i not in found}
            for rid, (start, end) in self._spans(text, new).items():
                found[rid] = Finding.of(
                    BY_ID[rid], location, start, end, transform, text[start:end]
                )
            sqli = SQLI_TRIGGER[0] in ids and 942100 not in found
            xss = XSS_TRIGGER[0] in ids and 941100 not in found
            for f in self._libinjection(text, location, sqli, xss, transform):
                found[f.rule_id] = f
        last = forms[-1][1]
        if self._cmd_ids and (_SHELL_QUOTES.search(last) or "$" in last):
            shell = cmdline(last)
            new = {i: e for i, e in self._match(shell, True).items() if i not in found}
            for rid, (start, end) in self._spans(shell, new).items():
                found[rid] = Finding.of(
                    BY_ID[rid], location, start, end, "cmdline", shell[start:end]
                )
        out = list(found.values())
        return out + self._counts(last, location, forms[-1][0]) if self.counts else out

    def _libinjection(
        self, text: str, location: str, sqli: bool, xss: bool, transform: str = "none"
    ) -> list[Finding]:
        out = []
        if sqli and self.sqli and (hit := _li.is_sql_injection(text))["is_sqli"]:
            start, end = _token_span(hit.get("token_vector") or (), len(text))
            out.append(Finding.of(BY_ID[942100], location, start, end, transform, text[start:end]))
        if xss and self.xss and _li.is_xss(text)["is_xss"]:
            out.append(Finding.of(BY_ID[941100], location, 0, len(text), transform, text))
        return out

    def _counts(self, text: str, location: str, transform: str = "none") -> list[Finding]:
        n = len(_SPECIAL.findall(text))
        return [Finding.of(r, location, 0, len(text), transform) for r, m in self.counts if n >= m]

    def scan_many(self, values: list[str], form: bool = False, depth: int = 3) -> list[Finding]:
        """Findings for several values; each finding's ``location`` is the value's index.

        The values are matched together first, joined with "\\n": a rule matching one value
        matches the joined text (anchors are multi-line), so when the joined text matches no
        rule, only the values that need decoding and those where a libinjection trigger
        occurs are looked at one by one. Benign requests thus cost one pass, not one per value.
        """
        if not values:
            return []
        joined = "\n".join(values)
        hits = self._offsets(joined)
        if any(rid in self._rules for rid, _ in hits):  # something matched: find what, where
            return [f for i, v in enumerate(values) for f in self.scan(v, str(i), form, depth)]
        size = _size if self._db is not None else len  # offsets: UTF-8 bytes, or characters
        ends = list(accumulate(size(v) + 1 for v in values))
        slow_re = _SLOW_FORM if form else _SLOW
        if joined.isascii():
            slow = {bisect_right(ends, m.start()) for m in slow_re.finditer(joined)}
        else:
            slow = {i for i, v in enumerate(values) if slow_re.search(v)}
        out = [f for i in sorted(slow) for f in self.scan(values[i], str(i), form, depth)]
        sqli = {bisect_right(ends, end - 1) for rid, end in hits if rid == SQLI_TRIGGER[0]}
        xss = {bisect_right(ends, end - 1) for rid, end in hits if rid == XSS_TRIGGER[0]}
        for i in sorted((sqli | xss) - slow):
            out += self._libinjection(values[i], str(i), i in sqli, i in xss)
        if self.counts:
            out += [
                f for i, v in enumerate(values) if i not in slow for f in self._counts(v, str(i))
            ]
        return out

    def _offsets(self, text: str) -> list[tuple[int, int]]:
        """``(id, end offset)`` of every rule (once) and trigger match; the offsets count
        UTF-8 bytes with Hyperscan and characters with the ``re`` fallback."""
        if self._db is not None:
            found: list[tuple[int, int]] = []
            self._db.scan(
                text.encode("utf-8", "replace"), match_event_handler=_collect_at, context=found
            )
            return found
        triggers = [i for i in self._regex if i not in self._rules]
        out = [(i, m.end()) for i in triggers for m in self._regex[i].finditer(text)]
        return out + [(i, 0) for i in self._rules if self._regex[i].search(text)]


def _token_span(tokens: Iterable[dict[str, Any]], size: int) -> tuple[int, int]:
    spans = [(t["pos"], t["pos"] + t["len"]) for t in tokens if t.get("len")]
    if not spans:
        return 0, size
    return min(s for s, _ in spans), min(size, max(e for _, e in spans))


@functools.lru_cache(maxsize=64)
def engine(active: frozenset[int]) -> Engine:
    """The engine for a set of active rule ids (compiling a Hyperscan database once)."""
    if _hs is None or _li is None:
        _warn_degraded()
    return Engine(active)


@functools.cache
def _warn_degraded() -> None:
    missing = [name for name, mod in (("hyperscan", _hs), ("libinjection", _li)) if mod is None]
    log.warning(
        "WAF running without %s: %s",
        " and ".join(missing),
        "stdlib re, about 20x slower" if _hs is None else "lower SQLi/XSS recall",
    )


# --- HTTP header checks -------------------------------------------------------------------

_TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_NOT_TOKEN = re.compile(rb"[^!#$%&'*+.^_`|~0-9A-Za-z:-]|^:|::|:$")
_CTL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_DIGITS = re.compile(rb"^[0-9]+$")


def http_anomalies(
    method: str,
    headers: Iterable[tuple[bytes, bytes]],
    allowed_methods: frozenset[str],
    max_header_bytes: int,
    max_headers: int,
    max_total_bytes: int,
    http_version: str = "1.1",
) -> list[Finding]:
    """Protocol findings for a request line and its headers (one finding per rule)."""
    found: dict[int, Finding] = {}

    def add(rule_id: int, where: str | bytes) -> None:
        if rule_id not in found:
            if isinstance(where, bytes):
                where = "header:" + where.decode("latin-1").lower()
            found[rule_id] = Finding.of(BY_ID[rule_id], where)

    if method and not _TOKEN.match(method.encode("latin-1", "replace")):
        add(920100, "request:method")
    elif method and method not in allowed_methods:
        add(911100, "request:method")
    lengths: list[bytes] = []
    encodings: list[bytes] = []
    hosts: list[bytes] = []
    pairs = list(headers)
    names = b":".join([n for n, _ in pairs])
    values = b"\n".join([v for _, v in pairs])
    bad_name = _NOT_TOKEN.search(names) is not None
    bad_value = _CTL.search(values) is not None or not values.isascii()
    total = len(names) + len(values) + 3 * len(pairs)
    for name, value in pairs:
        if bad_name and not _TOKEN.match(name):
            add(920270, name)
        if bad_value and _CTL.search(value):
            add(920271, name)
        if bad_value and not value.isascii():
            add(920272, name)
        if len(name) + len(value) > max_header_bytes:
            add(920370, name)
        lname = name.lower()
        if lname == b"content-length":
            lengths.extend(v.strip(b" \t") for v in value.split(b","))
        elif lname == b"transfer-encoding":
            encodings.append(value)
        elif lname == b"host":
            hosts.extend(value.split(b","))
        elif (lname == b"upgrade" and b"h2c" in value.lower()) or lname == b"http2-settings":
            add(921113, name)
    count = len(pairs)
    if count > max_headers:
        add(920371, "request:headers")
    if total > max_total_bytes:
        add(920372, "request:headers")
    if lengths:
        if not all(_DIGITS.match(v) for v in lengths):
            add(920160, "header:content-length")
        if len({v.lstrip(b"0") for v in lengths}) > 1:
            add(920161, "header:content-length")
        elif len(lengths) > 1:
            add(920162, "header:content-length")
    if encodings:
        items = [t.strip(b" \t").lower() for t in b",".join(encodings).split(b",")]
        if items != [b"chunked"] or len(encodings) > 1:
            add(921111, "header:transfer-encoding")
        if lengths:
            add(920181, "header:transfer-encoding")
        if http_version == "1.0":
            add(921112, "header:transfer-encoding")
    if not hosts:
        add(920280, "header:host")
    elif len(hosts) > 1:
        add(920281, "header:host")
    return list(found.values())
