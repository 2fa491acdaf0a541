"""DLP names layer, postal addresses: streets with their house numbers, units, military
addresses, and the city and country lines of an address block (``detect_names``).

A street is a name ending in a street word ("Bond Street", "Søndergade", "Laukaantie",
"Pfarrgasse"), a street name faker's locale data knows, or a prefix form ("Rua …", "Via …",
"ul. …"), with its house number. An address inside a sentence is reported as one
STREET_ADDRESS span (house number to postal code and country); an address laid out as a block
under a name is reported line by line (number, street, unit, city and country as LOCATION,
postal code).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from maestro_gateway.guards._dlp_gazetteer import Gazetteer
from maestro_gateway.scanning import Finding

__all__ = ["UNIT", "find_addresses"]

_W = r"[^\W\d_][^\W_]*(?:['\u2019.-][^\W\d_]+)*\.?"  # a word (letters, then letters or digits)
_NUM = r"\d{1,5}[A-Za-z]?(?![\w/-])"
_MORPH = (
    "gade", "vej", "gatan", "gata", "straße", "strasse", "straat", "weg", "veien", "vegen",
    "vei", "vägen", "väg", "stræti", "straeti", "braut", "vegur", "tie", "katu", "kuja", "laan",
    "gasse", "allee", "platz", "plein", "dreef", "stien", "bakken", "gränd", "torget", "vænget",
    "gården", "tún", "ulica", "cesta", "steig", "pfad", "damm", "markt",
)  # fmt: skip
"""Endings of street names in Germanic, Nordic, Finnish, Baltic and Slavic languages."""
_STREET = re.compile(
    r"\b(?:rua|rúa|avenida|av\.|calle|carrer|via|viale|piazza|piazzetta|strada"
    r"|corso|largo|travessa|rue|boulevard|chemin|ulica|ul\.|paseo|camino|praça|plaza|pod)"
    r"(?:\s+" + _W + r"){1,6}?\s+" + _NUM
)  # fmt: skip
"""Prefix-form streets, over the lower-cased text."""
_WORD_NUM = re.compile(r"\b([^\W\d_][\w'\u2019-]*\.?)[ \t]+(\d{1,5}[A-Za-z]?\.?)(?![\w/-])")
_BEFORE_WORDS = re.compile(r"(?:[^\W\d_][\w'\u2019.-]*[ \t]+){1,2}$")
_HU_STREET = ("u.", "utca", "útja", "út")
_UNIT_GATE = ("suite", "apt", "apartment", "unit", "flat")
_PREFIX_GATE = re.compile(
    "rua |rúa |avenida |av\\. |calle |carrer |via |viale |piazza|strada |corso |largo |travessa "
    "|rue |boulevard |chemin |ulica |ul\\. |paseo |camino |praça |plaza |pod "
)
"""The prefix words alone: a literal alternation ``re`` checks fast before the full rule."""
_EN_STREET = re.compile(
    r"\b\d{1,6}(?:\s\d{1,5})?\s+(?:[A-Z][\w'\u2019-]*\.?\s+){0,3}([A-Z][a-z]+)\.?\b"
)
_EN_ABBR = frozenset(("st", "rd", "ave", "blvd", "ln", "dr", "ct", "pl", "hwy", "pkwy", "sq"))
UNIT = re.compile(r"\b(?:suite|apt\.?|apartment|unit|flat)\s?#?\d{1,5}[a-z]?\b")
"""A unit line ("Suite 501", "Apt. 12"), over the lower-cased text."""
_MILITARY = re.compile(
    r"\b(?:psc|unit)\s\d{3,5},?\s+box\s\d{3,5}\s*\n?\s*[adf]po\s+a[aep]\s+\d{5}"
    r"|\b(?:usns|usnv|uss|uscgc)\s+[^\W\d_][\w'\u2019-]*\s*\n?\s*fpo\s+a[aep]\s+\d{5}"
)
"""Military addresses, over the lower-cased text."""
_BLOCK_LINE = re.compile(
    r"[ \t>?]*([^\W\d_](?:[^\W\d_]|[ '\u2019.()-]){0,40}?)[ \t,]*(?:\b[A-Z]{2}\b)?[ \t]*"
    r"(\d{4,5})?[ \t]*$"
)


_TAIL = re.compile(
    r"[ \t]*,?[ \t]*(?:(?i:suite|apt\.?|apartment|unit|flat)[ \t]?#?\d{1,5}[A-Za-z]?\b"
    r"|\d{4,5}(?:-\d{3,4})?\b|\([^\W\d_]+\)|[^\W\d_][\w'\u2019.-]*)"
)
_CORNER_OTHER = re.compile(r" and ((?:[^\W\d_][\w'\u2019-]*[ \t]?){1,3})")
_CONNECTORS = frozenset(("de", "del", "do", "da", "la", "le", "di", "du", "van", "von", "e", "y"))


_LINE = 240  # the longest line looked at around a street (keeps hostile input linear)


def _line_start(text: str, i: int) -> int:
    j = text.rfind("\n", max(0, i - _LINE), i)
    return j + 1 if j >= 0 else max(0, i - _LINE)


def _line_end(text: str, i: int) -> int:
    j = text.find("\n", i, i + _LINE)
    return j if j >= 0 else min(len(text), i + _LINE)


def _extent(text: str, end: int) -> int:
    """Where a postal address that has a street ending at ``end`` ends: units, city, state,
    postal code and country on the same line, then on indented or capitals-only lines."""
    pos, lines, last = end, 0, end
    while pos < len(text) and pos - end < 160:
        if text[pos] == "\n":
            line = text[pos + 1 : _line_end(text, pos + 1)]
            if lines >= 4 or not line.strip() or not (line[0] in " \t,>?" or line.isupper()):
                break
            lines, pos = lines + 1, pos + 1
            continue
        m = _TAIL.match(text, pos)
        if m is None:
            break
        token = m.group().strip(" \t,")
        if token[0].isalpha() and not token[0].isupper():
            after = _TAIL.match(text, m.end())
            if (
                token not in _CONNECTORS
                or after is None
                or not after.group().strip(" ,")[:1].isupper()
            ):
                break
        pos = m.end()
        if not token.endswith("."):
            last = pos
        elif token[:-1].casefold() not in ("apt", "st"):
            last = pos - 1
            break
        else:
            last = pos
        while pos < len(text) and text[pos] in " \t,":
            pos += 1
        pos = min(pos, len(text))
        if pos < len(text) and text[pos] not in "\n" and not _TAIL.match(text, pos):
            break
    return last


def _trim(text: str, start: int, end: int) -> int:
    """Drop lower-case words in front of a street name ("enter on Sludevej 13")."""
    while True:
        m = re.match(r"[^\W\d_][\w'\u2019.-]*[ \t]+", text[start:end])
        if (
            m is None
            or m.group()[0].isupper()
            or re.match(r"(?i:rua|rúa|avenida|via|rue|calle|ul\.|strada)\b", m.group())
        ):
            return start
        start += m.end()


def find_addresses(text: str, low: str, gaz: Gazetteer) -> Iterator[Finding]:
    """STREET_ADDRESS (and address-block LOCATION) findings in ``text`` (``low``: the text
    lower-cased, same length)."""
    if "po a" in low:
        for m in _MILITARY.finditer(low):
            yield Finding("STREET_ADDRESS", m.start(), m.end(), "address_military", 0.95)
    for m in UNIT.finditer(low) if any(u in low for u in _UNIT_GATE) else ():
        yield Finding("STREET_ADDRESS", m.start(), m.end(), "address_unit", 0.8)
    yield from _streets(text, low, gaz)


def _streets(text: str, low: str, gaz: Gazetteer) -> Iterator[Finding]:
    spans = [m.span() for m in _STREET.finditer(low)] if _PREFIX_GATE.search(low) else []
    for m in _EN_STREET.finditer(text):
        if m.group(1).lower() in gaz.street_words or m.group(1).lower() in _EN_ABBR:
            spans.append(m.span())
    for m in _WORD_NUM.finditer(text):
        word = m.group(1).casefold()
        start, end = m.start(), m.end()
        if m.group(2).endswith(".") and word not in _HU_STREET:
            end -= 1
        lead = _BEFORE_WORDS.search(text, max(0, start - 60), start)
        name = (text[lead.start() : start] if lead else "") + m.group(1)
        if word.endswith(_MORPH) or word in _HU_STREET:
            spans.append((lead.start() if lead and word in _HU_STREET else start, end))
        elif word in gaz.streets:
            spans.append((start, end))
        elif lead and name.casefold() in gaz.streets:
            spans.append((lead.start(), end))
    for start, end in spans:
        start = _trim(text, start, end)
        if start >= end:
            continue
        line_start = _line_start(text, start)
        lead = re.search(r"(?<![\w.])(\d{1,6})[ \t]+$", text[line_start:start])
        s0 = line_start + lead.start(1) if lead else start
        corner = re.search(r"(?i:the corner of )$", text[max(0, s0 - 14) : s0])
        full = _extent(text, end)
        if corner:
            s0 -= 14
            other = _CORNER_OTHER.match(text, full)
            full += len(other.group().rstrip()) if other else 0
        above = max(line_start - 1, 0)
        prev = text[_line_start(text, above) : above]
        inline = bool(text[line_start:s0].strip(" \t>?")) or prev.rstrip().endswith(":")
        if (full > end and inline) or corner:
            yield Finding("STREET_ADDRESS", s0, full, "address_full", 0.92)
            continue
        if lead:
            yield Finding("STREET_ADDRESS", s0, line_start + lead.end(1), "address_number", 0.6)
        yield Finding("STREET_ADDRESS", start, end, "address_street", 0.9)
        yield from _block(text, end, gaz)


def _block(text: str, end: int, gaz: Gazetteer) -> Iterator[Finding]:
    """The lines under a street line: units are skipped, then a city line, then a country
    line with its postal code."""
    pos = text.find("\n", end, end + _LINE)
    city_seen = False
    for _ in range(4):
        if pos < 0:
            return
        line_end = _line_end(text, pos + 1)
        line = text[pos + 1 : line_end]
        pos = line_end if line_end < len(text) and text[line_end] == "\n" else -1
        if not line.strip(" \t>?") or UNIT.fullmatch(line.strip(" \t>?").lower()):
            continue
        m = _BLOCK_LINE.fullmatch(line)
        if m is None:
            return
        base = line_end - len(line)
        name = m.group(1).strip()
        if not name or len(name.split()) > 4:
            return
        ns = base + m.start(1)
        if name.casefold() in gaz.countries or name.split(" (")[0].casefold() in gaz.countries:
            yield Finding("LOCATION", ns, ns + len(name.split(" (")[0]), "address_country", 0.75)
            if m.group(2):
                yield Finding(
                    "STREET_ADDRESS", base + m.start(2), base + m.end(2), "address_zip", 0.6
                )
            return
        if city_seen:
            return
        city_seen = True
        yield Finding("LOCATION", ns, ns + len(name), "address_city", 0.75)
