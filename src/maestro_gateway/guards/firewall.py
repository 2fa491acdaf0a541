"""C2 AI firewall: prompt injection and jailbreak, direct and indirect (threats T1, T7, T5).

What is scanned:
- requests (SendMessage, SendStreamingMessage): every text part and every data part's strings
  of ``params.message``; the score and top findings are kept in ``ctx.extra["firewall"]``
  (the approval guard reads it);
- responses and every stream event (indirect injection from an agent's output, artifacts and
  status messages), with ``indirect_threshold``; a stream event is scanned together with the
  tail of the previous events' text, so an instruction split over two chunks is still seen;
- agent cards, at registration (``scan_card``, called by the registry).

Each text is normalised (``maestro_gateway.text.normalize``: NFKC, homoglyphs, invisible
characters, leetspeak, spacing, base64/hex/URL/entities/ROT13 decoding), then scored by the
signature layer and a calibrated classifier (see ``_fw_scan``), and, when configured, by an
external HTTP judge or ONNX model (``_fw_external``, off by default); agent output is also judged
sentence by sentence by the segment model (``_fw_segments``: requests addressed to an
assistant slipped into a document or tool result). A score at or above the
threshold is refused with HTTP 403 and JSON-RPC code -32092 (``action: block``), held for a
human (``escalate``) or only recorded (``log``, for trials); a score in the grey zone
``[escalate_threshold, threshold)`` is escalated.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from maestro_gateway.context import RequestContext
from maestro_gateway.guards._fw_external import External, ExternalConfig, ExternalFailure
from maestro_gateway.guards._fw_rules import BY_ID, RULES
from maestro_gateway.guards._fw_scan import Firewall, Settings, card_texts
from maestro_gateway.scanning import ScanResult
from maestro_gateway.types import ALLOW, JSON, FailMode, Verdict

__all__ = [
    "FIREWALL_BLOCKED",
    "RULES",
    "Firewall",
    "FirewallGuard",
    "FirewallGuardConfig",
    "build_firewall",
    "card_poisoning",
    "card_texts",
]

NAME = "firewall"
FIREWALL_BLOCKED = -32092
"""JSON-RPC error code of a firewall refusal (next to the WAF's -32091). Sent with HTTP 403."""
MESSAGE_METHODS = frozenset({"SendMessage", "SendStreamingMessage"})
_TAIL = 512  # characters of earlier stream text scanned with each event
_MAX_STRINGS = 512

log = logging.getLogger("maestro_gateway.guards.firewall")


class FirewallGuardConfig(BaseModel):
    """C2 AI firewall: prompt-injection and jailbreak detection.

    The default thresholds are those ``scripts/train_firewall.py`` suggests for the shipped
    model: the lowest whose out-of-fold false-positive rate on dev-train meets the goals
    (1% on benign prompts, 2% on clean agent output).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    fail_mode: Literal["fail_closed", "fail_open"] = "fail_closed"
    requests: bool = Field(True, description="Scan request messages (direct injection).")
    responses: bool = Field(
        True, description="Scan responses and stream events (indirect injection)."
    )
    action: Literal["block", "escalate", "log"] = Field(
        "block", description="Requests scoring >= threshold: refuse, hold for a human, or log."
    )
    response_action: Literal["block", "log"] = "block"
    threshold: float = Field(
        0.52, gt=0, le=1, description="Calibrated probability that blocks a request."
    )
    escalate_threshold: float | None = Field(
        None, gt=0, le=1, description="Grey zone [escalate_threshold, threshold) is escalated."
    )
    indirect_threshold: float = Field(
        0.935, gt=0, le=1, description="Calibrated probability that blocks agent output."
    )
    cards: Literal["block", "log", "off"] = Field(
        "block", description="Agent cards at registration: refuse poisoned ones, or log."
    )
    card_threshold: float = Field(0.52, gt=0, le=1)
    max_scan_chars: int = Field(
        65536, ge=1024, description="Per text; beyond it only head and tail are scanned."
    )
    max_decode_depth: int = Field(2, ge=0, le=4)
    disabled_rules: list[str] = []
    model_path: str | None = Field(None, description="A model file from train_firewall.py.")
    max_findings: int = Field(8, gt=0, description="Findings kept in ctx.extra['firewall'].")
    external: ExternalConfig = Field(
        ExternalConfig(), description="Optional HTTP judge / ONNX model (off by default)."
    )

    @model_validator(mode="after")
    def _check(self) -> FirewallGuardConfig:
        if self.escalate_threshold is not None and self.escalate_threshold >= self.threshold:
            raise ValueError("escalate_threshold must be below threshold")
        if unknown := sorted(set(self.disabled_rules) - BY_ID.keys()):
            raise ValueError(f"unknown firewall rule ids: {unknown}")
        return self

    def settings(self) -> Settings:
        return Settings(
            self.threshold,
            self.escalate_threshold,
            self.max_scan_chars,
            self.max_decode_depth,
            frozenset(self.disabled_rules),
            self.model_path,
        )


def _collect(value: JSON, out: list[str], depth: int = 0) -> None:
    """Every string under ``value`` (data parts), bounded in count and depth."""
    if len(out) >= _MAX_STRINGS or depth > 32:
        return
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for item in value:
            _collect(item, out, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            _collect(item, out, depth + 1)


def part_texts(parts: JSON) -> list[str]:
    """The texts of a message's parts: each text part, and each data part's strings joined."""
    texts: list[str] = []
    for part in parts[:_MAX_STRINGS] if isinstance(parts, list) else []:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        if "data" in part:
            strings: list[str] = []
            _collect(part["data"], strings)
            if strings:
                texts.append("\n".join(strings))
    return texts


def output_texts(payload: JSON, out: list[str], depth: int = 0) -> list[str]:
    """Texts of every message part in an agent's output (messages, artifacts, status
    messages), skipping the ``history`` echo of the request."""
    if depth > 16 or len(out) >= _MAX_STRINGS:
        return out
    if isinstance(payload, dict):
        for key, value in payload.items():
            if key == "parts":
                out.extend(part_texts(value))
            elif key != "history" and isinstance(value, dict | list):
                output_texts(value, out, depth + 1)
    elif isinstance(payload, list):
        for item in payload:
            output_texts(item, out, depth + 1)
    return out


class FirewallGuard:
    """C2: refuses (403, code -32092) messages and agent output that carry an injection."""

    name = NAME

    def __init__(self, cfg: FirewallGuardConfig) -> None:
        self.cfg = cfg
        self.fail_mode = FailMode(cfg.fail_mode)
        self.firewall = _firewall(cfg.settings())
        self.external = External(cfg.external)

    async def _scan(self, texts: list[str], threshold: float, indirect: bool) -> ScanResult | None:
        worst: ScanResult | None = None
        for text in texts:
            result = self.firewall.scan_text(text, threshold, indirect=indirect)
            if worst is None or result.score > worst.score:
                worst = result
            if worst.verdict == "block":
                break  # enough to decide: stop spending CPU on a hostile request
        if worst is not None and self.external.enabled:  # one external call for all texts
            worst = await self.external.combine(
                "\n".join(texts),
                worst,
                "output" if indirect else "input",
                lambda score: self.firewall.verdict(score, threshold),
            )
        return worst

    def _external_failed(self, ctx: RequestContext, exc: ExternalFailure, where: str) -> Verdict:
        """A failed external detector with ``fail_mode: closed``: deny, saying which and why."""
        ctx.extra["firewall_external_error"] = str(exc)
        reason = f"AI firewall could not check the {where}: {exc} (fail_mode closed)"
        return Verdict.deny(503, FIREWALL_BLOCKED, reason, NAME, rule=exc.rule + "-error")

    def _record(self, result: ScanResult, threshold: float, action: str) -> dict[str, Any]:
        rules = ",".join(dict.fromkeys(f.rule for f in result.findings if f.type != "EVASION"))
        record: dict[str, Any] = {
            "score": round(result.score, 4),
            "verdict": result.verdict,
            "threshold": threshold,
            "action": action,
            "rules": rules,
            "findings": [f.as_json() for f in result.findings[: self.cfg.max_findings]],
        }
        if "builtin" in result.details:  # external detectors ran: keep each score
            record["external"] = {
                k: v for k, v in result.details.items() if k == "builtin" or k.startswith("FW-EXT")
            }
        return record

    def _decide(
        self,
        ctx: RequestContext,
        result: ScanResult,
        record: dict[str, Any],
        action: str,
        where: str,
    ) -> Verdict:
        if result.verdict == "allow":
            return ALLOW
        log.warning(
            "firewall finding",
            extra={
                "request_id": ctx.request_id,
                "where": where,
                "score": record["score"],
                "rules": record["rules"],
                "verdict": result.verdict,
                "action": action,
            },
        )
        if action == "log":
            return ALLOW
        rules = record["rules"] or "FW-ML"
        what = "prompt injection" if where == "request" else "indirect prompt injection"
        reason = f"{what} detected in the {where} (score {record['score']:.2f}; rules {rules})"
        if result.verdict == "escalate" or action == "escalate":
            return Verdict.escalate(reason, NAME, rule=rules, score=record["score"])
        return Verdict.deny(403, FIREWALL_BLOCKED, reason, NAME, rule=rules, score=record["score"])

    async def on_request(self, ctx: RequestContext) -> Verdict:
        if not self.cfg.requests or ctx.method not in MESSAGE_METHODS:
            return ALLOW
        params = ctx.params if isinstance(ctx.params, dict) else {}
        message = params.get("message")
        texts = part_texts(message.get("parts")) if isinstance(message, dict) else []
        # The caller's own words, echoed back in the answer ("Report: <what you asked>"), are
        # not an injection from a third party: output scanning leaves them out.
        ctx.extra["_firewall_asked"] = [t.strip() for t in texts if len(t.strip()) >= 12][:8]
        try:
            result = await self._scan(texts, self.cfg.threshold, False)
        except ExternalFailure as exc:
            return self._external_failed(ctx, exc, "request")
        if result is None:
            return ALLOW
        record = self._record(result, self.cfg.threshold, self.cfg.action)
        ctx.extra["firewall"] = record
        return self._decide(ctx, result, record, self.cfg.action, "request")

    async def _output(self, ctx: RequestContext, payload: JSON, stream: bool) -> Verdict:
        if not self.cfg.responses:
            return ALLOW
        texts = _without_echo(output_texts(payload, []), ctx.extra.get("_firewall_asked"))
        if not texts:
            return ALLOW
        if stream:  # scan with the tail of the earlier events: instructions split over chunks
            joined = "\n".join(texts)
            texts = [str(ctx.extra.get("_firewall_tail", "")) + joined]
            ctx.extra["_firewall_tail"] = joined[-_TAIL:]
        try:
            result = await self._scan(texts, self.cfg.indirect_threshold, True)
        except ExternalFailure as exc:
            return self._external_failed(ctx, exc, "agent response")
        if result is None or result.verdict == "allow":
            return ALLOW
        if result.verdict == "escalate":  # no human can hold an answer: the grey zone is logged
            result = ScanResult("allow", result.score, result.findings)
        record = self._record(result, self.cfg.indirect_threshold, self.cfg.response_action)
        ctx.extra["firewall_response"] = record
        if result.verdict == "allow":
            return ALLOW
        return self._decide(ctx, result, record, self.cfg.response_action, "agent response")

    async def on_response(self, ctx: RequestContext, payload: JSON) -> Verdict:
        return await self._output(ctx, payload, False)

    async def on_stream_event(self, ctx: RequestContext, event: JSON) -> Verdict:
        return await self._output(ctx, event, True)


def _without_echo(texts: list[str], asked: object) -> list[str]:
    """Agent output without the caller's own request text: verbatim copies are blanked out,
    and texts that are only a piece of it are dropped."""
    if not isinstance(asked, list) or not asked:
        return texts
    out = []
    for text in texts:
        stripped = text.strip()
        if stripped and any(stripped in phrase for phrase in asked):
            continue  # a piece of the caller's words (e.g. one chunk of a streamed echo)
        for phrase in asked:
            if phrase in text:
                text = text.replace(phrase, " ")
        out.append(text)
    return out


@functools.lru_cache(maxsize=16)
def _firewall(settings: Settings) -> Firewall:
    return Firewall(settings)


def build_firewall(cfg: FirewallGuardConfig | None = None) -> Firewall:
    """The detector for ``cfg`` (shared per settings): ``scan_text`` / ``scan_card`` offline."""
    return _firewall((cfg or FirewallGuardConfig()).settings())


def card_poisoning(
    cfg: FirewallGuardConfig, card: dict[str, Any], agent_id: str = ""
) -> str | None:
    """Why an agent card must be refused (prompt injection in its text), or None.

    With ``cards: log`` a poisoned card is only logged; with ``cards: off`` nothing is scanned.
    """
    if not cfg.enabled or cfg.cards == "off":
        return None
    result = _firewall(cfg.settings()).scan_card(card, cfg.card_threshold)
    if result.score < cfg.card_threshold:
        return None
    hits = [f for f in result.findings if f.type != "EVASION"]
    where = hits[0].rule.split(":", 1)[0] if hits else "card"
    rules = ",".join(dict.fromkeys(f.rule.split(":", 1)[-1] for f in hits)) or "FW-ML"
    log.warning(
        "poisoned agent card",
        extra={
            "agent": agent_id,
            "score": round(result.score, 4),
            "rules": rules,
            "field": where,
            "action": cfg.cards,
        },
    )
    if cfg.cards == "log":
        return None
    return (
        f"agent card refused by the AI firewall: prompt injection in {where} "
        f"(score {result.score:.2f}; rules {rules})"
    )
