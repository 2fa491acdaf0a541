"""DLP names layer, the word lists (``detect_names``): built once per process from the locale
data of the ``faker`` package plus one small file of ours (``models/dlp-nrp.json``).

From faker's 86 locales: first names, last names, cities/regions/countries, street names and
street suffixes, company suffixes and job titles; common English words (faker's lorem list)
never count as a name. ~0.4 s and ~20 MB once per process; nothing is downloaded.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path

from maestro_gateway.guards._dlp_literals import Literals

__all__ = ["Gazetteer", "gazetteer"]

_NRP_FILE = Path(__file__).resolve().parents[1] / "models" / "dlp-nrp.json"
TITLES = frozenset(("mr", "mrs", "ms", "miss", "dr", "prof", "sir", "madam", "mx", "mister"))


@dataclass(frozen=True, slots=True)
class Gazetteer:
    first: frozenset[str]
    last: frozenset[str]
    places: frozenset[str]
    countries: frozenset[str]
    common: frozenset[str]
    streets: frozenset[str] = frozenset()  # street names (without the house number)
    street_words: frozenset[str] = frozenset()  # "street", "avenue", "gade"… (one word)
    org_suffixes: frozenset[str] = frozenset()  # "inc", "llc", "gmbh"…
    jobs: frozenset[str] = frozenset()  # "midwife", "network and computer systems administrator"
    nrp: frozenset[str] = frozenset()  # "german", "swedish", "muslim"…
    find_nrp: Literals | None = field(default=None, compare=False)  # nrp and plurals
    find_jobs: Literals | None = field(default=None, compare=False)
    find_org: Literals | None = field(default=None, compare=False)  # company words


def _values(value: object) -> list[str]:
    if isinstance(value, dict):
        return [k for k in value if isinstance(k, str)]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str)]
    return []


def _providers(package: str) -> list[tuple[str, object]]:
    mod = importlib.import_module(package)
    return [
        (m.name, importlib.import_module(f"{package}.{m.name}").Provider)
        for m in pkgutil.iter_modules(mod.__path__)
    ]


def _fold(values: list[str]) -> set[str]:
    return {v.casefold().strip() for v in values if v and "{" not in v}


_CACHE: list[Gazetteer] = []
_PLACE_ATTRS = ("cit", "state", "province", "region", "town", "municipal", "district", "county")
_SKIP = ("format", "formats", "suffix", "suffixes", "prefix", "prefixes", "abbr", "code", "codes")
_STREET_NAMES = ("street_names", "streets", "common_street_names", "frequent_street_names",
                 "plant_street_names", "historic_people_street_names")  # fmt: skip
_ORG_EXTRA = ("inc", "inc.", "llc", "ltd", "ltd.", "plc", "corp", "corp.", "corporation", "gmbh",
              "ag", "co.", "company", "group", "associates", "partners", "holdings",
              "incorporated", "limited", "sons", "agency", "movers", "software", "solutions",
              "consulting", "systems", "technologies", "labs", "ventures", "analytics",
              "networks", "logistics", "industries", "enterprises")  # fmt: skip


def gazetteer() -> Gazetteer:
    """The gazetteer (ImportError if faker is not installed)."""
    if _CACHE:
        return _CACHE[0]
    from faker.providers.lorem.en_US import Provider as Lorem

    first: set[str] = set()
    last: set[str] = set()
    for _, pr in _providers("faker.providers.person"):
        for attr in ("first_names", "first_names_male", "first_names_female"):
            first |= _fold(_values(getattr(pr, attr, None)))
        for attr in ("last_names", "last_names_male", "last_names_female"):
            last |= _fold(_values(getattr(pr, attr, None)))
    places: set[str] = set()
    countries: set[str] = set()
    streets: set[str] = set()
    street_words: set[str] = set()
    for locale, pr in _providers("faker.providers.address"):
        for attr in dir(pr):
            if attr.startswith("_"):
                continue
            if attr in _STREET_NAMES:
                streets |= _fold(_values(getattr(pr, attr, None)))
            elif attr.startswith("street_suffix") and locale.startswith("en"):
                street_words |= {w for w in _fold(_values(getattr(pr, attr))) if " " not in w}
            elif attr.endswith(_SKIP):
                continue
            elif "countr" in attr:
                countries |= _fold(_values(getattr(pr, attr, None)))
            elif any(k in attr for k in _PLACE_ATTRS):
                places |= _fold(_values(getattr(pr, attr, None)))
    org: set[str] = set(_ORG_EXTRA)
    for _, pr in _providers("faker.providers.company"):
        org |= {w for w in _fold(_values(getattr(pr, "company_suffixes", None))) if len(w) > 1}
    from faker.providers.job.en_US import Provider as Jobs

    common = frozenset(w.casefold() for w in Lorem.word_list) | TITLES
    nrp = frozenset(json.loads(_NRP_FILE.read_text(encoding="utf-8"))["words"])
    jobs = frozenset(_fold(list(Jobs.jobs)))
    gaz = Gazetteer(
        frozenset(first - common), frozenset(last - common),
        frozenset(p for p in places - common if not p[0].isdigit()),
        frozenset(countries - common), common,
        frozenset(s for s in streets if len(s) > 3 and not s[0].isdigit()),
        frozenset(street_words - {"a", "b"}), frozenset(org), jobs, nrp,
        Literals([w + s for w in nrp for s in ("", "s", "es")]), Literals(jobs),
        Literals({o.rstrip(".") for o in org}),
    )  # fmt: skip
    _CACHE.append(gaz)
    return gaz
