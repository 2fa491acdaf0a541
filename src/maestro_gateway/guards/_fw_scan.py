"""The firewall's scanner: normalisation, signatures and the classifier, combined into one
calibrated score per text (``Firewall.scan_text``) or per agent card (``Firewall.scan_card``).

Score: ``1 - (1 - p_model) * prod(1 - confidence of each matching rule)`` (noisy-OR), where
``p_model`` is the classifier's Platt-calibrated probability, maximised over the folded text
and every decoded view. Agent output (``indirect=True``) is also judged sentence by sentence
by the segment model (``_fw_segments``): its score is the higher of the two, the segment
model being calibrated so that both flag at the same threshold. Long texts are scanned in
overlapping chunks up to ``max_scan_chars``; past that, only the head and the tail are
scanned (the finding ``FW-E-truncated`` says so).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from maestro_gateway.guards._fw_model import Model, load_model
from maestro_gateway.guards._fw_rules import RULES
from maestro_gateway.guards._fw_segments import (
    SegmentModel,
    load_segment_model,
    seg_model_path,
)
from maestro_gateway.guards._fw_sigs import Signatures
from maestro_gateway.scanning import Finding, ScanResult, ScanVerdict
from maestro_gateway.text.normalize import normalize

CHUNK = 8192
OVERLAP = 512
ML_RULE = "FW-ML"
SEG_RULE = "FW-SEG"
MIN_WORDS = 4
_SIGNATURES: dict[frozenset[str], Signatures] = {}
CARD_FIELDS = ("name", "description")
SKILL_FIELDS = ("name", "description", "examples", "tags")


@dataclass(frozen=True, slots=True)
class Settings:
    """What the scanner needs from the guard's configuration."""

    threshold: float = 0.5
    escalate_threshold: float | None = None
    max_scan_chars: int = 65536
    max_decode_depth: int = 2
    disabled_rules: frozenset[str] = frozenset()
    model_path: str | None = None


class HasSettings(Protocol):
    """A configuration that yields scanner settings (``FirewallGuardConfig``)."""

    def settings(self) -> Settings: ...


def _signatures(disabled: frozenset[str]) -> Signatures:
    sigs = _SIGNATURES.get(disabled)
    if sigs is None:
        sigs = _SIGNATURES[disabled] = Signatures(tuple(r for r in RULES if r.id not in disabled))
    return sigs


def pieces(text: str, limit: int) -> Iterator[tuple[int, str]]:
    """``(offset, piece)``: overlapping chunks up to ``limit`` chars, then the tail."""
    if len(text) <= CHUNK:
        yield 0, text
        return
    end = min(len(text), limit)
    step = CHUNK - OVERLAP
    start = 0
    while start < end:
        yield start, text[start : min(start + CHUNK, end)]
        if start + CHUNK >= end:
            break
        start += step
    if len(text) > limit:
        tail = max(end, len(text) - CHUNK)
        yield tail, text[tail:]


class Firewall:
    """C2 detector: ``scan_text`` for one text, ``scan_card`` for an agent card."""

    def __init__(
        self, settings: Settings | HasSettings | None = None, model: Model | None = None
    ) -> None:
        """Built from ``Settings`` or straight from a ``FirewallGuardConfig``."""
        if settings is not None and not isinstance(settings, Settings):
            settings = settings.settings()
        self.settings = settings or Settings()
        self.model = model or (
            load_model(self.settings.model_path) if self.settings.model_path else load_model()
        )
        self.segment_model: SegmentModel = load_segment_model(
            str(seg_model_path(self.settings.model_path))
        )
        self.signatures = _signatures(self.settings.disabled_rules)

    def _model(self, text: str, kinds: set[str], domain: str) -> float:
        """The classifier's probability; texts under MIN_WORDS words ("Write report") give
        it too little context, so only the signatures judge them."""
        if len(text) < 64 and len(text.split()) < MIN_WORDS:
            return 0.0
        return self.model.score(text, kinds, domain)

    def verdict(self, score: float, threshold: float | None = None) -> ScanVerdict:
        s = self.settings
        if score >= (s.threshold if threshold is None else threshold):
            return "block"
        if s.escalate_threshold is not None and score >= s.escalate_threshold:
            return "escalate"
        return "allow"

    def scan_text(
        self, text: str, threshold: float | None = None, *, indirect: bool = False
    ) -> ScanResult:
        """Score one text; the verdict uses ``threshold`` (default: the configured one).

        ``indirect=True`` scores it as agent output (documents, tool results, artifacts)
        rather than as a request: the classifier weighs its words for that domain.
        """
        s = self.settings
        domain = "indirect" if indirect else "direct"
        p_model = p_seg = 0.0
        seg_span = (0, 0)
        rules: dict[str, float] = {}
        findings: list[Finding] = []
        evasions: dict[str, Finding] = {}
        truncated = len(text) > s.max_scan_chars
        for base, piece in pieces(text, s.max_scan_chars):
            norm = normalize(piece, s.max_decode_depth)
            kinds = norm.signal_kinds()
            for sig in norm.signals:
                evasions.setdefault(
                    sig.kind,
                    Finding("EVASION", base + sig.start, base + sig.end, "FW-E-" + sig.kind, 1.0),
                )
            p_model = max(p_model, self._model(norm.text, kinds, domain))
            if indirect:  # requests addressed to an assistant, sentence by sentence
                p, (a, b) = self.segment_model.score(norm.text)
                if p > p_seg:
                    p_seg, seg_span = p, norm.span(a, b)
                    seg_span = (base + seg_span[0], base + seg_span[1])
            for rule, a, b in self.signatures.scan(norm.text):
                a, b = norm.span(a, b)
                if rule.id not in rules:
                    findings.append(
                        Finding(rule.type, base + a, base + b, rule.id, rule.confidence)
                    )
                rules[rule.id] = rule.confidence
            for view in norm.views:
                p_model = max(p_model, self._model(view.text, kinds | {"view"}, domain))
                for rule, _, _ in self.signatures.scan(view.text):
                    if rule.id not in rules:
                        findings.append(
                            Finding(
                                rule.type,
                                base + view.start,
                                base + view.end,
                                rule.id,
                                rule.confidence,
                            )
                        )
                    rules[rule.id] = rule.confidence
        if truncated:
            evasions["truncated"] = Finding(
                "EVASION", s.max_scan_chars, len(text), "FW-E-truncated", 1.0
            )
        keep = 1.0 - p_model
        for confidence in rules.values():
            keep *= 1.0 - confidence
        score = max(1.0 - keep, p_seg)
        if p_model >= 0.5 or (s.escalate_threshold is not None and p_model >= s.escalate_threshold):
            findings.append(Finding("PROMPT_INJECTION", 0, len(text), ML_RULE, p_model))
        if p_seg >= 0.5:
            findings.append(Finding("PROMPT_INJECTION", *seg_span, SEG_RULE, p_seg))
        findings.sort(key=lambda f: -f.score)
        details: dict[str, Any] = {"model": round(p_model, 4)}
        if indirect:
            details["segment"] = round(p_seg, 4)
        return ScanResult(
            self.verdict(score, threshold), score, (*findings, *evasions.values()), details=details
        )

    def scan_card(self, card: dict[str, Any], threshold: float | None = None) -> ScanResult:
        """Scan an agent card's names, descriptions and skill text; the worst field wins.

        Each finding's ``rule`` is prefixed with the field it was found in
        (``skills[2].description:FW-100``); spans are offsets into that field.
        """
        worst: ScanResult | None = None
        found: list[Finding] = []
        for where, text in card_texts(card):
            result = self.scan_text(text, threshold)
            found.extend(
                Finding(f.type, f.start, f.end, f"{where}:{f.rule}", f.score)
                for f in result.findings
                if f.type != "EVASION" or result.score >= 0.5
            )
            if worst is None or result.score > worst.score:
                worst = result
        if worst is None:
            return ScanResult("allow", 0.0)
        found.sort(key=lambda f: -f.score)
        return ScanResult(worst.verdict, worst.score, tuple(found[:32]), details=worst.details)


def card_texts(card: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """``(field path, text)`` of every human-readable field of an agent card."""
    for key in CARD_FIELDS:
        if isinstance(card.get(key), str):
            yield key, card[key]
    provider = card.get("provider")
    if isinstance(provider, dict) and isinstance(provider.get("organization"), str):
        yield "provider.organization", provider["organization"]
    skills = card.get("skills")
    for i, skill in enumerate(skills[:256] if isinstance(skills, list) else []):
        if not isinstance(skill, dict):
            continue
        for key in SKILL_FIELDS:
            value = skill.get(key)
            if isinstance(value, str):
                yield f"skills[{i}].{key}", value
            elif isinstance(value, list):
                strings = [v for v in value[:256] if isinstance(v, str)]
                if strings:
                    yield f"skills[{i}].{key}", "\n".join(strings)
