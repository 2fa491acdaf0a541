"""C7 WAF: request inspection in the spirit of the OWASP Core Rule Set (threats T3, T1).

Each rule that matches adds its severity score (critical 5, error 4, warning 3, notice 2) to
the request's anomaly score; a request whose score reaches ``inbound_threshold`` is refused
(``mode: block``) or only recorded (``mode: log_only``). Rules carry a paranoia level (1-4):
those above ``paranoia_level`` do not run, except up to ``detection_paranoia_level``, where
they run and are recorded without counting (to measure a higher level before enforcing it).

What is inspected (``inspect``): request headers, query parameters, and the string values of
the A2A params by field: data parts, metadata, URLs (part and webhook URLs), other fields
(ids, file names, media types, tenant...), and text parts. Text parts are off by default:
they carry natural language for a model ("explain SELECT * FROM users WHERE 1=1"), where
injection syntax is legitimate and the threat is prompt injection (the C3 firewall's job);
data parts, metadata and URLs are what tools consume, so they are inspected. JSON keys of
data parts and metadata are inspected too (``{"$where": ...}``, ``__proto__``).

Protocol checks (``check_http_anomalies``) run over the raw ASGI header list when the data
plane passes them in ``ctx.extra["http_anomalies"]``, else over ``ctx.headers`` (duplicates
joined with ',', which keeps every shape these rules look for detectable).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from maestro_gateway.context import RequestContext
from maestro_gateway.guards._waf_engine import HYPERSCAN, LIBINJECTION, engine, http_anomalies
from maestro_gateway.guards._waf_rules import BY_ID, RULES, Finding, Rule
from maestro_gateway.types import ALLOW, JSON, FailMode, Verdict

__all__ = [
    "HYPERSCAN",
    "LIBINJECTION",
    "RULES",
    "WAF_BLOCKED",
    "Finding",
    "Rule",
    "WafGuard",
    "WafGuardConfig",
    "WafHttpConfig",
    "WafInspectConfig",
    "check_http_anomalies",
    "scan_value",
]

NAME = "waf"
WAF_BLOCKED = -32091
"""JSON-RPC error code of a WAF refusal (implementation-defined server-error range, next to
the rate limiter's -32090). Sent with HTTP 403."""

log = logging.getLogger("maestro_gateway.guards.waf")

Kind = Literal["field", "text", "data", "metadata", "url"]
_SKIP_FIELDS = frozenset({"raw", "token", "credentials"})
_PART_FIELDS: dict[str, Kind] = {"text": "text", "data": "data", "url": "url"}
_UNSAFE = re.compile(r"[^\w.$@:-]")
_NAME = object()  # path marker: the finding is in a JSON key, not its value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WafInspectConfig(_Model):
    """Which parts of a request are inspected."""

    headers: bool = True
    query: bool = Field(True, description="Query parameters (ctx.extra['query_string']).")
    text_parts: bool = Field(False, description="Natural-language text parts (see docs/waf.md).")
    data_parts: bool = True
    metadata: bool = True
    urls: bool = Field(True, description="Part URLs and push-notification webhook URLs.")
    other_fields: bool = Field(True, description="Ids, file names, media types, tenant...")
    protocol: bool = Field(True, description="Method and header anomalies (920/921 rules).")
    skip_headers: list[str] = Field(
        ["authorization", "proxy-authorization"], description="Headers never value-scanned."
    )
    skip_keys: list[str] = Field([], description="Data/metadata keys whose values are skipped.")

    @field_validator("skip_headers")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [v.lower() for v in value]


class WafHttpConfig(_Model):
    """Limits of the protocol checks."""

    allowed_methods: list[str] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    max_header_bytes: int = Field(8192, gt=0, description="One header, name plus value.")
    max_headers: int = Field(100, gt=0)
    max_total_header_bytes: int = Field(32768, gt=0)


class WafGuardConfig(_Model):
    """C7 WAF: anomaly scoring over CRS-style rules."""

    enabled: bool = True
    fail_mode: Literal["fail_closed", "fail_open"] = "fail_closed"
    mode: Literal["block", "log_only"] = "block"
    paranoia_level: int = Field(1, ge=1, le=4)
    detection_paranoia_level: int | None = Field(
        None, ge=1, le=4, description="Run and record rules up to this level without counting."
    )
    inbound_threshold: int = Field(5, ge=1)
    inspect: WafInspectConfig = WafInspectConfig()
    http: WafHttpConfig = WafHttpConfig()
    disabled_rules: list[int] = []
    max_decode_depth: int = Field(3, ge=0, le=8)
    max_findings: int = Field(32, gt=0, description="Findings kept per request.")
    record_excerpts: bool = Field(False, description="Keep matched text in ctx.extra['waf'].")

    @field_validator("disabled_rules")
    @classmethod
    def _known(cls, value: list[int]) -> list[int]:
        if unknown := sorted(set(value) - BY_ID.keys()):
            raise ValueError(f"unknown WAF rule ids: {unknown}")
        return value

    @model_validator(mode="after")
    def _levels(self) -> WafGuardConfig:
        if (self.detection_paranoia_level or 4) < self.paranoia_level:
            raise ValueError("detection_paranoia_level must be >= paranoia_level")
        return self

    def active_rules(self) -> frozenset[int]:
        top = max(self.paranoia_level, self.detection_paranoia_level or 0)
        off = set(self.disabled_rules)
        return frozenset(r.id for r in RULES if r.paranoia <= top and r.id not in off)


def _score(findings: Sequence[Finding], paranoia_level: int) -> int:
    return sum(f.score for f in findings if f.paranoia <= paranoia_level)


def scan_value(
    text: str, cfg: WafGuardConfig | None = None, *, location: str = "value", form: bool = False
) -> tuple[int, list[Finding]]:
    """Anomaly score and findings for one value (offline use: ``scan --guard waf``).

    ``form=True`` treats ``text`` as a form/query value (``+`` is a space).
    """
    cfg = cfg or WafGuardConfig()
    findings = engine(cfg.active_rules()).scan(text, location, form, cfg.max_decode_depth)
    return _score(findings, cfg.paranoia_level), findings


def check_http_anomalies(
    method: str,
    raw_headers: Sequence[tuple[bytes, bytes]],
    cfg: WafGuardConfig | None = None,
    *,
    http_version: str = "1.1",
) -> list[Finding]:
    """Protocol findings over the raw ASGI header list (``scope["headers"]``, un-joined).

    Pure: call it in the data plane with ``scope["method"]``, ``scope["headers"]`` and
    ``scope["http_version"]``, and either refuse at once or hand the result to the guard in
    ``ctx.extra["http_anomalies"]``. Only rules active under ``cfg`` are returned.
    """
    cfg = cfg or WafGuardConfig()
    h = cfg.http
    found = http_anomalies(
        method,
        raw_headers,
        frozenset(h.allowed_methods),
        h.max_header_bytes,
        h.max_headers,
        h.max_total_header_bytes,
        http_version,
    )
    active = cfg.active_rules()
    return [f for f in found if f.rule_id in active]


class WafGuard:
    """C7: blocks (403, code -32091) requests whose anomaly score reaches the threshold."""

    name = NAME

    def __init__(self, cfg: WafGuardConfig) -> None:
        self.cfg = cfg
        self.fail_mode = FailMode(cfg.fail_mode)
        self._active = cfg.active_rules()
        self._engine = engine(self._active)
        self._block = cfg.mode == "block"
        ins = cfg.inspect
        self._kinds: dict[str, bool] = {
            "field": ins.other_fields,
            "text": ins.text_parts,
            "data": ins.data_parts,
            "metadata": ins.metadata,
            "url": ins.urls,
        }
        self._skip_keys = frozenset(ins.skip_keys)
        self._skip_headers = frozenset(ins.skip_headers)
        self._methods = frozenset(cfg.http.allowed_methods)

    async def on_request(self, ctx: RequestContext) -> Verdict:
        cfg = self.cfg
        findings: list[Finding] = []
        for batch in self._inspect(ctx):
            findings.extend(batch)
            if self._block and _score(findings, cfg.paranoia_level) >= cfg.inbound_threshold:
                break  # enough to refuse: stop spending CPU on a hostile request
            if len(findings) >= cfg.max_findings:
                break
        if not findings:
            return ALLOW
        findings = findings[: cfg.max_findings]
        score = _score(findings, cfg.paranoia_level)
        blocked = score >= cfg.inbound_threshold
        ids = ",".join(dict.fromkeys(str(f.rule_id) for f in findings))
        ctx.extra["waf"] = {
            "mode": cfg.mode,
            "score": score,
            "threshold": cfg.inbound_threshold,
            "paranoia_level": cfg.paranoia_level,
            "blocked": blocked and self._block,
            "rules": ids,
            "findings": [f.as_dict(cfg.record_excerpts) for f in findings],
        }
        log.log(
            logging.WARNING if blocked else logging.INFO,
            "waf findings",
            extra={"request_id": ctx.request_id, "score": score, "rules": ids, "mode": cfg.mode},
        )
        if not (blocked and self._block):
            return ALLOW
        counted = [f for f in findings if f.paranoia <= cfg.paranoia_level]
        where = "; ".join(f"{f.rule_id} {f.message} at {f.location}" for f in counted[:3])
        reason = f"blocked by the WAF: anomaly score {score} >= {cfg.inbound_threshold} ({where})"
        rules = ",".join(dict.fromkeys(str(f.rule_id) for f in counted))
        return Verdict.deny(403, WAF_BLOCKED, reason, NAME, rule=rules, score=score)

    def _inspect(self, ctx: RequestContext) -> Iterator[list[Finding]]:
        """Findings batch by batch (protocol, headers, query, params), for early exit."""
        ins, depth, scan_many = self.cfg.inspect, self.cfg.max_decode_depth, self._engine.scan_many
        if ins.protocol:
            given = ctx.extra.get("http_anomalies")
            if isinstance(given, list):
                yield [f for f in given if isinstance(f, Finding) and f.rule_id in self._active]
            else:
                yield self._anomalies(ctx)
        if ins.headers:
            names = [n for n in ctx.headers if n not in self._skip_headers]
            found = scan_many([ctx.headers[n] for n in names], False, depth)
            yield [_at(f, "header:" + _safe(names[int(f.location)])) for f in found]
        query = ctx.extra.get("query_string")
        if ins.query and query:
            text = query.decode("latin-1") if isinstance(query, bytes) else str(query)
            where: list[str] = []
            values: list[str] = []
            for pair in text.split("&"):
                key, _, value = pair.partition("=")
                where += [f"query:{_safe(key)} (name)", f"query:{_safe(key)}"]
                values += [key, value]
            yield [_at(f, where[int(f.location)]) for f in scan_many(values, True, depth)]
        paths: list[Any] = []
        values = []
        self._strings(ctx.params, paths, values)
        yield [_at(f, _location(paths[int(f.location)])) for f in scan_many(values, False, depth)]

    def _anomalies(self, ctx: RequestContext) -> list[Finding]:
        h = self.cfg.http
        pairs = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in ctx.headers.items()]
        method = str(ctx.extra.get("http_method") or "")
        found = http_anomalies(
            method, pairs, self._methods, h.max_header_bytes, h.max_headers,
            h.max_total_header_bytes, str(ctx.extra.get("http_version") or "1.1"),
        )  # fmt: skip
        return [f for f in found if f.rule_id in self._active]

    def _strings(self, params: JSON, paths: list[Any], values: list[str]) -> None:
        """Append the inspected strings of the params and their paths (linked ``(parent,
        step)`` pairs). Keys of data parts and metadata are inspected too (step ``_NAME``)."""
        kinds, skip_keys = self._kinds, self._skip_keys
        stack: list[tuple[Any, Any, str]] = [(params, (None, "params"), "field")]
        while stack:
            value, path, kind = stack.pop()
            if isinstance(value, str):
                if kinds.get(kind, False):
                    paths.append(path)
                    values.append(value)
            elif isinstance(value, list):
                child = "part" if kind == "parts" else kind
                stack.extend([(item, (path, i), child) for i, item in enumerate(value)])
            elif isinstance(value, dict):
                if kind in ("data", "metadata"):  # free-form: everything below is `kind`
                    for key, item in value.items():
                        paths.append(((path, key), _NAME))
                        values.append(str(key))
                        if key not in skip_keys:
                            stack.append((item, (path, key), kind))
                    continue
                for key, item in value.items():
                    if key in _SKIP_FIELDS:
                        continue
                    if key == "metadata":
                        child = "metadata"
                    elif kind == "part":
                        child = _PART_FIELDS.get(key, "field")
                    elif key == "parts":
                        child = "parts"
                    else:
                        child = "url" if key == "url" else "field"
                    if kinds.get(child, True):  # prune disabled subtrees
                        stack.append((item, (path, key), child))

    async def on_response(self, ctx: RequestContext, payload: JSON) -> Verdict:
        return ALLOW

    async def on_stream_event(self, ctx: RequestContext, event: JSON) -> Verdict:
        return ALLOW


def _at(finding: Finding, location: str) -> Finding:
    return dataclasses.replace(finding, location=location)


def _location(path: Any) -> str:
    steps: list[Any] = []
    while path is not None:
        path, step = path
        steps.append(step)
    out = ""
    for step in reversed(steps):
        if step is _NAME:
            out += " (name)"
        else:
            out += f"[{step}]" if isinstance(step, int) else ("." if out else "") + _safe(step)
    return out


def _safe(name: object) -> str:
    """A key or header name fit for a location (and so for the refusal's reason): the
    attacker chooses it, so only plain characters are kept, and at most 64 of them."""
    text = _UNSAFE.sub("?", str(name))
    return text if len(text) <= 64 else text[:61] + "..."
