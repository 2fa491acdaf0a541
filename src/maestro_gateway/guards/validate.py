"""C1 input validation: the first guard on every request.

Checks, in order (cheapest and most fundamental first):
1. body size (the app already stopped reading past the limit; this applies per-skill limits);
2. JSON nesting depth, element count and string size, before anything walks the payload;
3. A2A 1.0 schema of the method's params (the app translated 0.3 requests already);
4. message parts: count, size, Unicode normalisation, control / bidi-override / tag characters;
5. URL parts and push-notification webhook URLs against SSRF (resolved and pinned).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from maestro_gateway.a2a.errors import INVALID_PARAMS, A2AError
from maestro_gateway.a2a.schema import validate_params
from maestro_gateway.config import ValidateGuardConfig
from maestro_gateway.context import RequestContext
from maestro_gateway.guards._ssrf import SsrfError, SsrfPolicy
from maestro_gateway.types import ALLOW, JSON, FailMode, Verdict

NAME = "validate"

# C0 controls except TAB, LF, CR; DEL; C1 controls.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Embedding/override (LRE RLE PDF LRO RLO) and isolates (LRI RLI FSI PDI).
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
# Unicode tag characters: invisible ASCII look-alikes used to smuggle instructions.
_TAG = re.compile("[\U000e0000-\U000e007f]")


def _deny(reason: str, rule: str, status: int = 400) -> Verdict:
    return Verdict.deny(status, INVALID_PARAMS, reason, NAME, rule=rule)


def check_shape(value: JSON, max_depth: int, max_elements: int, max_string: int) -> str | None:
    """Return why ``value`` breaks the structural limits, or None. Iterative: no recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    count = 0
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > max_elements:
            return f"more than {max_elements} JSON elements"
        if isinstance(item, dict):
            if depth > max_depth:
                return f"JSON nested deeper than {max_depth}"
            for v in item.values():
                stack.append((v, depth + 1))
            count += len(item)  # keys count as elements too
        elif isinstance(item, list):
            if depth > max_depth:
                return f"JSON nested deeper than {max_depth}"
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, str) and len(item) > max_string:
            return f"a string is longer than {max_string} characters"
    return None


class ValidateGuard:
    """C1: JSON-RPC/A2A schema, limits, Unicode hygiene and SSRF checks on requests."""

    name = NAME

    def __init__(self, cfg: ValidateGuardConfig) -> None:
        self.cfg = cfg
        self.fail_mode = FailMode(cfg.fail_mode)
        self._ssrf = SsrfPolicy(cfg.ssrf)
        self._form: Any = None if cfg.normalize == "none" else cfg.normalize

    async def on_request(self, ctx: RequestContext) -> Verdict:
        cfg = self.cfg
        if ctx.body_size > cfg.max_body_bytes:
            return _deny(f"request body larger than {cfg.max_body_bytes} bytes", "body-size", 413)
        params = ctx.params
        if not self._shape_bounded(ctx):
            why = check_shape(params, cfg.max_depth, cfg.max_elements, cfg.max_string_bytes)
            if why:
                return _deny(f"params: {why}", "json-limits")
        try:
            validate_params(ctx.method, params)
        except A2AError as exc:
            return Verdict.deny(400, exc.code, exc.message, NAME, rule="a2a-schema")
        changed = False
        message = params.get("message") if isinstance(params, dict) else None
        if isinstance(message, dict):
            verdict, changed = self._check_parts(message.get("parts") or [], "params.message")
            if verdict is not None:
                return verdict
            for i, part in enumerate(message.get("parts") or []):
                where = f"params.message.parts[{i}].url"
                if "url" in part and (v := await self._check_url(ctx, part["url"], where)):
                    return v
        for url, where in _webhook_urls(ctx.method, params):
            if (v := await self._check_url(ctx, url, where)) is not None:
                return v
        if changed:
            return Verdict.mutate(params, NAME, "unicode normalised")
        return ALLOW

    def _shape_bounded(self, ctx: RequestContext) -> bool:
        """Whether the raw body alone proves the structural limits hold (so no walk is needed).

        Upper bounds, exact for any JSON text: nesting depth <= number of '{' and '[';
        elements <= 1 + containers + ',' + ':'; any string <= the body's length.
        Only for 1.0 JSON-RPC requests: a translated 0.3 request is not the body as sent, and
        REST params also come from the path and query.
        """
        body = ctx.raw_body
        if not body or ctx.client_version != "1.0" or ctx.binding != "jsonrpc":
            return False
        cfg = self.cfg
        containers = body.count(b"{") + body.count(b"[")
        return (
            containers <= cfg.max_depth
            and 1 + containers + body.count(b",") + body.count(b":") <= cfg.max_elements
            and len(body) <= cfg.max_string_bytes
        )

    def _check_parts(self, parts: list[Any], where: str) -> tuple[Verdict | None, bool]:
        cfg = self.cfg
        if len(parts) > cfg.max_parts:
            return _deny(f"{where}: more than {cfg.max_parts} parts", "part-count"), False
        changed = False
        for i, part in enumerate(parts):
            text = part.get("text")
            size = len(text) if isinstance(text, str) else len(part.get("raw") or "") * 3 // 4
            if size > cfg.max_part_bytes:
                reason = f"{where}.parts[{i}]: part larger than {cfg.max_part_bytes} bytes"
                return _deny(reason, "part-size"), False
            if not isinstance(text, str):
                continue
            if self._form is not None and not unicodedata.is_normalized(self._form, text):
                text = unicodedata.normalize(self._form, text)
                part["text"] = text
                changed = True
            if text.isascii():
                if cfg.reject_control_chars and _CONTROL.search(text):
                    return _deny(f"{where}.parts[{i}]: control character", "control-char"), False
                continue
            for enabled, pattern, label in (
                (cfg.reject_control_chars, _CONTROL, "control-char"),
                (cfg.reject_bidi_controls, _BIDI, "bidi-override"),
                (cfg.reject_tag_chars, _TAG, "tag-char"),
            ):
                if enabled and (m := pattern.search(text)):
                    code = f"U+{ord(m.group()):04X}"
                    reason = f"{where}.parts[{i}]: forbidden {label.replace('-', ' ')} {code}"
                    return _deny(reason, label), False
        return None, changed

    async def _check_url(self, ctx: RequestContext, url: Any, where: str) -> Verdict | None:
        if not isinstance(url, str):
            return _deny(f"{where}: URL must be a string", "ssrf")
        try:
            pinned = await self._ssrf.check(url)
        except SsrfError as exc:
            return Verdict.deny(400, INVALID_PARAMS, f"{where}: {exc}", NAME, rule="ssrf")
        # Kept for gateway-side fetches of this URL: connect to what was checked.
        ctx.extra.setdefault("pinned_urls", {})[url] = pinned.addresses
        return None

    async def on_response(self, ctx: RequestContext, payload: JSON) -> Verdict:
        return ALLOW

    async def on_stream_event(self, ctx: RequestContext, event: JSON) -> Verdict:
        return ALLOW


def _webhook_urls(method: str, params: JSON) -> list[tuple[str, str]]:
    """Push-notification webhook URLs carried by a request."""
    if not isinstance(params, dict):
        return []
    found: list[tuple[str, str]] = []
    if method == "CreateTaskPushNotificationConfig" and "url" in params:
        found.append((params["url"], "params.url"))
    config = params.get("configuration")
    if isinstance(config, dict):
        push = config.get("taskPushNotificationConfig")
        if isinstance(push, dict) and "url" in push:
            found.append((push["url"], "params.configuration.taskPushNotificationConfig.url"))
    return found
