"""C19 data-loss prevention (threat T4: sensitive data in agent output; optionally in requests).

Finds PII (email, phone, payment card, IBAN, US SSN, UK NINO, IP address, US driver licence and
date of birth in context) and secrets (cloud and SaaS tokens, private keys, JWTs, credentials
in connection strings, high-entropy values in key-like context) in every text part and data-part
string of responses, tasks, artifacts, status messages and streamed events; requests when
``directions.requests`` is on. Each finding type gets an action: block (deny with -32093),
redact, mask, hash (HMAC, stable for correlation) or allow.

Detection: one hyperscan pass (prefilter mode) picks the rules that can match; their
compiled ``re`` patterns find candidates; validators (Luhn and IIN ranges, mod-97, SSA rules,
phonenumbers, ipaddress, JWT structure, entropy and look-alike rejection) and context words
score them. Overlapping findings: the higher score wins, then the longer span. Names,
places, addresses, organisations and other quasi-identifiers come from an optional layer of
rules over a gazetteer (``detect_names``). Figures: docs/dlp.md.

Streams: text appended chunk by chunk to one artifact is scanned with what came before it; a
chunk's tail that could be the start of an identifier or key (its last token, digit groups) is
held back and sent with the next chunk of that artifact, or at ``lastChunk``.
"""

from __future__ import annotations

import bisect
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from maestro_gateway.context import RequestContext
from maestro_gateway.guards._dlp_actions import Action, apply_actions, load_hmac_key
from maestro_gateway.guards._dlp_engine import Prefilter
from maestro_gateway.guards._dlp_names import Gazetteer, find_names, gazetteer
from maestro_gateway.guards._dlp_pii import PII_PATTERNS, PII_TRIGGERS, PII_TYPES, find_pii
from maestro_gateway.guards._dlp_secrets import SECRET_RULES, find_secrets
from maestro_gateway.guards._dlp_walk import DLP_BLOCKED, NAME, STREAMS, TooLarge, Walk
from maestro_gateway.scanning import Finding, ScanResult
from maestro_gateway.types import ALLOW, JSON, FailMode, Verdict

__all__ = [
    "DLP_BLOCKED",
    "ENTITY_TYPES",
    "NAME_TYPES",
    "SECRET_RULE_IDS",
    "Dlp",
    "DlpDirections",
    "DlpGuard",
    "DlpGuardConfig",
    "TooLarge",
]

NAME_TYPES = frozenset((
    "PERSON", "LOCATION", "STREET_ADDRESS", "ORGANIZATION", "AGE", "DATE_TIME", "NRP", "TITLE",
    "DOMAIN_NAME", "ZIP_CODE",
))  # fmt: skip
"""Reported only with ``detect_names`` (DATE_TIME also by the date-of-birth recognizer)."""
ENTITY_TYPES = frozenset(PII_TYPES | {"SECRET"} | NAME_TYPES)
SECRET_RULE_IDS = frozenset(r.id for r in SECRET_RULES)
_PREFILTER: list[Prefilter] = []


def _prefilter() -> Prefilter:
    """The one hyperscan database of every pattern (built on first use, ~0.7 s)."""
    if not _PREFILTER:
        pii = [(p, False) for p in PII_TRIGGERS]
        secrets = [(r.trigger, False) if r.trigger else (r.pattern.pattern, r.lower)
                   for r in SECRET_RULES]  # fmt: skip
        _PREFILTER.append(Prefilter(pii + secrets))
    return _PREFILTER[0]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DlpDirections(_Model):
    responses: bool = Field(True, description="Responses and every streamed event.")
    requests: bool = Field(False, description="Client requests (message parts) too.")


class DlpGuardConfig(_Model):
    """C19 DLP."""

    enabled: bool = True
    fail_mode: Literal["fail_closed", "fail_open"] = "fail_closed"
    directions: DlpDirections = DlpDirections()
    default_action: Action = "redact"
    actions: dict[str, Action] = Field(
        {}, description='Per entity type ("CREDIT_CARD", "SECRET"…) or secret rule id.'
    )
    types: list[str] | None = Field(None, description="Entity types scanned; None = all.")
    min_score: float = Field(0.5, ge=0.0, le=1.0)
    hmac_key_path: str = Field(
        ".demo/dlp-hmac.key", description="Key of the hash action (hex); created if absent."
    )
    scan_data_parts: bool = True
    detect_names: bool = Field(
        False,
        description="Names layer: PERSON, LOCATION, STREET_ADDRESS, ORGANIZATION, AGE, dates, "
        "NRP, TITLE, DOMAIN_NAME, ZIP_CODE from rules over faker's locale data (needs the faker "
        "package; ~0.4 s and ~20 MB once per process).",
    )
    max_text_chars: int = Field(
        2_000_000, gt=0, description="A longer string is refused, never passed unscanned."
    )
    max_holdback_chars: int = Field(
        16384, ge=0, description="Most text held back per streamed artifact (key blocks)."
    )

    @field_validator("types")
    @classmethod
    def _types(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (bad := sorted(set(value) - ENTITY_TYPES)):
            raise ValueError(f"unknown DLP entity types: {bad}")
        return value

    @field_validator("actions")
    @classmethod
    def _actions(cls, value: dict[str, Action]) -> dict[str, Action]:
        if bad := sorted(set(value) - ENTITY_TYPES - SECRET_RULE_IDS):
            raise ValueError(f"unknown DLP entity types or secret rules: {bad}")
        return value


class Dlp:
    """The scanner: findings, actions and the text after them, for one configuration."""

    def __init__(self, cfg: DlpGuardConfig | None = None) -> None:
        self.cfg = cfg = cfg or DlpGuardConfig()
        self._types = None if cfg.types is None else frozenset(cfg.types)
        self._key: bytes | None = None
        self._prefilter = _prefilter()
        self._names: Gazetteer | None = None
        wanted = self._types is None or bool(NAME_TYPES & self._types)
        if cfg.detect_names and wanted:
            self._names = gazetteer()  # ImportError without faker: a configuration error

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = load_hmac_key(self.cfg.hmac_key_path)
        return self._key

    def action(self, finding: Finding) -> Action:
        acts = self.cfg.actions
        return acts.get(finding.rule) or acts.get(finding.type) or self.cfg.default_action

    def findings(self, text: str) -> list[Finding]:
        """Resolved findings: enabled types, score ≥ min_score, no overlaps (PII and secrets
        first, then the higher score, then the longer span), by position."""
        if len(text) > self.cfg.max_text_chars:
            raise TooLarge(f"text of {len(text)} characters exceeds max_text_chars")
        types, floor = self._types, self.cfg.min_score
        hits = self._prefilter.hits(text)
        n = len(PII_PATTERNS)
        found = [f for f in find_pii(text, types, hits) if f.score >= floor]
        if types is None or "SECRET" in types:
            shifted = None if hits is None else {i - n for i in hits if i >= n}
            found += [f for f in find_secrets(text, shifted) if f.score >= floor]
        primary = len(found)  # validated identifiers and secrets: the names layer never
        if self._names is not None:  # displaces one, whatever its score
            found += [
                f
                for f in find_names(text, self._names)
                if f.score >= floor and (types is None or f.type in types)
            ]
        if len(found) < 2:
            return found
        order = sorted(
            range(len(found)),
            key=lambda i: (i >= primary, -found[i].score, found[i].start - found[i].end),
        )
        kept: list[Finding] = []  # non-overlapping, by start (so by end too)
        starts: list[int] = []
        for f in (found[k] for k in order):
            i = bisect.bisect_left(starts, f.start)
            if (i and kept[i - 1].end > f.start) or (i < len(kept) and kept[i].start < f.end):
                continue
            kept.insert(i, f)
            starts.insert(i, f.start)
        return kept

    def apply(self, text: str, findings: list[Finding], offset: int = 0) -> str:
        pairs = [(f, self.action(f)) for f in findings]
        if all(a in ("allow", "block") for _, a in pairs):
            return text
        return apply_actions(text, pairs, self.key, offset)

    def scan_text(self, text: str) -> ScanResult:
        """Findings, verdict (block > redact > allow) and the text after the actions."""
        found = self.findings(text)
        out = self.apply(text, found)
        blocked = [f for f in found if self.action(f) == "block"]
        verdict: Literal["block", "redact", "allow"] = (
            "block" if blocked else "redact" if out != text else "allow"
        )
        score = max((f.score for f in found), default=0.0)
        details = {"rules": sorted({f.rule for f in blocked})} if blocked else {}
        return ScanResult(verdict, score, tuple(found), out, details)


class DlpGuard:
    """C19: redacts (or refuses, -32093) sensitive data in responses, stream events and,
    when enabled, requests."""

    name = NAME

    def __init__(self, cfg: DlpGuardConfig) -> None:
        self.cfg = cfg
        self.fail_mode = FailMode(cfg.fail_mode)
        self.dlp = Dlp(cfg)

    async def on_request(self, ctx: RequestContext) -> Verdict:
        if not self.cfg.directions.requests:
            return ALLOW
        return Walk(self.dlp, None).verdict(ctx.params, request=True)

    async def on_response(self, ctx: RequestContext, payload: JSON) -> Verdict:
        if not self.cfg.directions.responses:
            return ALLOW
        return Walk(self.dlp, None).verdict(payload)

    async def on_stream_event(self, ctx: RequestContext, event: JSON) -> Verdict:
        if not self.cfg.directions.responses:
            return ALLOW
        streams = ctx.extra.get(STREAMS)
        if not isinstance(streams, dict):
            streams = ctx.extra[STREAMS] = {}
        return Walk(self.dlp, streams).verdict(event)
