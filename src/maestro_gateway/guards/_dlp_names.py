"""DLP names and places (optional, ``detect_names``): a gazetteer and rules, not a model.

Runs of capitalised words are looked up in faker's locale data (``_dlp_gazetteer``):

- PERSON: a known first name followed by a known name (0.85) or by capitalised words that
  are not places (0.75); capitalised words after a title (Mr, Dr…) (0.9); capitalised words
  after "my name is", "Name:", "call me", "says"… even when no list knows them (0.75); a
  known first name alone (0.6). A run ending in a street or company word is not a person;
- LOCATION: a country (0.85); a known place after "in", "from", "to", "at"… (0.7).

The rest of the layer (addresses, organisations, dates, ages, NRP, titles) is ``_dlp_ner``.
Common English words (faker's word list) never count, so "Will" or "Mark" at a sentence start
is not a name. It misses names no list knows outside those phrases and cannot tell "Paris"
the person from the city; an NER model would, at ~100x the cost (docs/dlp.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from maestro_gateway.guards._dlp_gazetteer import TITLES, Gazetteer, gazetteer
from maestro_gateway.guards._dlp_ner import find_entities
from maestro_gateway.scanning import Finding

__all__ = ["Gazetteer", "find_names", "gazetteer"]


_NAME_CTX = re.compile(
    r"(?:name is|name's|name:|names are|i'm|i am|this is|call me|calls me|named|called|user:|"
    r"dear|hi|hello|thanks,|regards,|by|with|from|contact|ask|tell|met|said|and)\s*$"
)
_STRONG_CTX = re.compile(
    r"(?:my name is|name is|name's|name:|last name\?|first name\?|surname:?|call me|calls me|"
    r"named (?:him|her)|named|says|said|signed|sincerely,|regards,|assistant to|follow up with|"
    r"ms\.|mr\.|mrs\.|dr\.)\s*$"
)
_PLACE_CTX = re.compile(
    r"(?:\bin|from|to|at|near|visit|visiting|lives in|moved to|city of|based in|,|\n)\s*$"
)
_STRONG_PLACE = re.compile(r"(?:\bin|from|to|at|near|visit|visiting|lives in|city of)\s*$")
_POSSESSIVE = ("'s", "\u2019s")
_CALENDAR = frozenset((
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "january",
    "february", "march", "april", "may", "june", "july", "august", "september", "october",
    "november", "december",
))  # fmt: skip
_PARTICLES = frozenset((
    " van ", " von ", " de ", " da ", " di ", " del ", " der ", " den ", " le ", " la ", " du ",
    " dos ", " das ", " bin ", " al ", " ten ", " ter ",
))  # fmt: skip
"""Lower-case name particles that may sit inside a name ("Dyan van Gijn")."""


_CAP_WORD = re.compile(r"(?<![\w'\u2019-])[^\W\d_a-z\xdf-\xff][^\W\d_]*(?:['\u2019-][^\W\d_]+)*")
"""A word starting with a letter that is not an ASCII or Latin-1 lower-case one (checked in
code: other scripts' lower case), so the scan skips lower-case words in C."""


def _runs(text: str) -> Iterator[list[re.Match[str]]]:
    """Runs of capitalised words separated by one space (a title's dot allowed); an all-caps
    word ends a run."""
    run: list[re.Match[str]] = []
    for m in _CAP_WORD.finditer(text):
        word = m.group()
        if not (word[0].isupper() and (len(word) == 1 or not word.isupper())):
            if run:
                yield run
            run = []
            continue
        if run:
            gap = text[run[-1].end() : m.start()]
            if (gap not in (" ", ". ", "-") and gap not in _PARTICLES) or len(run) >= 5:
                yield run
                run = []
        run.append(m)
    if run:
        yield run


def _key(word: str) -> str:
    word = word.casefold()
    return word[:-2] if word.endswith(_POSSESSIVE) else word


def _end(m: re.Match[str]) -> int:
    return m.end() - 2 if m.group().endswith(_POSSESSIVE) else m.end()


def _listed(text: str, m: re.Match[str]) -> bool:
    """A word in a list of capitalised words ("Jones, Mitchell and Williams", "Thomas and
    Sons"): a surname-like first name there is more likely a firm's name than a person."""
    after = text[m.end() : m.end() + 6]
    before = text[max(0, m.start() - 5) : m.start()]
    return after.startswith((", ", " and ", " & ")) or before.endswith((", ", "and ", "& "))


_OBJECTS = re.compile(
    r" (?:the|a|an|it|this|that|these|those|your|my|our|his|her|their|me|us|"
    r"them|up|down|out|off|over|into|all|each|every)\b"
)


def _imperative(text: str, m: re.Match[str]) -> bool:
    """A lone name-like word opening a sentence and followed by an object ("Mark the date",
    "Sue them"): a verb, not a person."""
    before = text[max(0, m.start() - 2) : m.start()]
    opens = m.start() == 0 or before.endswith((". ", "? ", "! ", "\n", ": ")) or before == "\n"
    return opens and _OBJECTS.match(text, m.end()) is not None


def find_names(text: str, gaz: Gazetteer) -> Iterator[Finding]:
    """PERSON and LOCATION findings in ``text``, then the rest of the names layer."""
    yield from _people_and_places(text, gaz)
    yield from find_entities(text, gaz)


def _not_person(words: list[str], gaz: Gazetteer) -> bool:
    tail = words[-1].rstrip(".")
    return tail in gaz.street_words or tail in gaz.org_suffixes


def _people_and_places(text: str, gaz: Gazetteer) -> Iterator[Finding]:
    first, last, common = gaz.first, gaz.last, gaz.common
    for run in _runs(text):
        words = [_key(m.group()) for m in run]
        if words[0] in TITLES and len(run) > 1:
            names = [m for m, w in zip(run[1:4], words[1:4], strict=False) if w not in common]
            if names:
                yield Finding("PERSON", names[0].start(), _end(names[-1]), "name_title", 0.9)
                continue
        before0 = text[max(0, run[0].start() - 24) : run[0].start()].lower()
        if _STRONG_CTX.search(before0) and words[0] not in common:
            k = 1
            while k < min(len(run), 3) and words[k] not in common:
                k += 1
            if not _not_person(words[:k], gaz) and words[0] not in gaz.countries:
                yield Finding("PERSON", run[0].start(), _end(run[k - 1]), "name_context", 0.75)
                continue
        i = 0
        while i < len(run):
            w = words[i]
            before = text[max(0, run[i].start() - 24) : run[i].start()].lower()
            if w in common:
                i += 1
                continue
            if w in first and i + 1 < len(run) and words[i + 1] not in common:
                j = i + 1
                while j + 1 < len(run) and words[j + 1] not in common and j - i < 2:
                    j += 1
                known = words[j] in last or words[j] in first
                span = words[i : j + 1]
                if not _not_person(span, gaz) and (
                    known or not any(x in gaz.places for x in span[1:])
                ):
                    score = 0.85 if known else 0.75
                    yield Finding("PERSON", run[i].start(), _end(run[j]), "name_gazetteer", score)
                    i = j + 1
                    continue
            place = _place(words, i, gaz)
            if place:
                j, is_country = place
                ctx = _PLACE_CTX if w not in first else _STRONG_PLACE
                if is_country or ctx.search(before):
                    score = 0.85 if is_country else 0.7
                    yield Finding(
                        "LOCATION", run[i].start(), run[j].end(), "place_gazetteer", score
                    )
                    i = j + 1
                    continue
            if (
                w in first
                and len(run) == 1
                and len(w) > 2
                and w not in _CALENDAR
                and (w not in last or not _listed(text, run[i]))
                and not _imperative(text, run[i])
            ):
                yield Finding("PERSON", run[i].start(), _end(run[i]), "name_first", 0.6)
            elif (w in first or w in last) and _NAME_CTX.search(before):
                yield Finding("PERSON", run[i].start(), _end(run[i]), "name_context", 0.7)
            i += 1


def _place(words: list[str], i: int, gaz: Gazetteer) -> tuple[int, bool] | None:
    """The longest place name starting at word ``i``: (last word index, is a country)."""
    for j in range(min(len(words), i + 4) - 1, i - 1, -1):
        name = " ".join(words[i : j + 1])
        if name in gaz.countries:
            return j, True
        if name in gaz.places:
            return j, False
    return None
