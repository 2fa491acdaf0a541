"""C23 output sanitisation (threat T4: agent output that attacks whatever renders it).

Runs on every response and every streamed event. Each text part is sanitised by its output
mode (``force_mode``, else the part's ``mediaType``, else ``metadata.mediaType`` of its message
or artifact, else ``default_mode``); terminal escapes are stripped in every mode:

- ``text/html``: an nh3 (ammonia) allowlist; tags that run code or load content can't be allowed;
- ``text/markdown``: links, images, autolinks, reference definitions and bare URLs to
  domains not allowlisted are removed or defanged (the image-exfiltration attack), unsafe
  schemes always; raw HTML goes through the HTML allowlist; fenced code optionally made inert;
- ``text/csv``: spreadsheet formula cells get the OWASP ``'`` prefix;
- ``application/json``: terminal escapes hidden in string escapes;
- ``data`` parts: strings stripped of terminal escapes, tables (lists of rows) as CSV cells.

Streams: markdown, CSV and JSON text appended chunk by chunk to one artifact is checked in the
context of what the client already holds (re-read from the last block boundary), so a link or
image split over chunks cannot slip through; when an earlier chunk would have to change, the
event carries the whole artifact with ``append: false``. Parts are copied along the changed path
only; the caller's payload is never modified.

Cost (best of 7, CPython 3.11 on the 2-vCPU VM of docs/performance.md, per KB of text;
``scripts/eval_sanitize.py``): plain ASCII without escapes 0.9 µs (1.6 µs via sanitize_text);
with ANSI escapes ~105 µs; HTML nh3 already wrote ~58 µs, other HTML ~150 µs; markdown
without brackets, tags or URLs ~3 µs, with links ~1.35 ms (markdown-it-py parses ~0.8 ms/KB,
twice when something was removed). A whole task response with two 1 KB plain parts: ~10 µs.
A streamed markdown answer: ~34 µs per 16-byte chunk; one paragraph full of links, re-read
per chunk: ~1.3 ms per chunk. See docs/sanitize.md.
"""

from __future__ import annotations

from typing import Any

from maestro_gateway.context import RequestContext
from maestro_gateway.guards._payload import Obj as _Obj
from maestro_gateway.guards._payload import PayloadWalk
from maestro_gateway.guards._payload import field as _field
from maestro_gateway.guards._payload import items as _items
from maestro_gateway.guards._sanitize_config import (
    FORBIDDEN_TAGS,
    OutputMode,
    SanitizeGuardConfig,
    SanitizeHtmlConfig,
    SanitizeMarkdownConfig,
    compile_rules,
)
from maestro_gateway.guards._sanitize_md import (
    escape_inert,
    markdown_quiet_append,
    reset_point,
    sanitize,
)
from maestro_gateway.guards._sanitize_modes import (
    CSV,
    JSON_,
    MARKDOWN,
    PLAIN,
    Finding,
    Mode,
    UrlPolicy,
    csv_cell,
    mode_of,
    strip_terminal,
)
from maestro_gateway.types import ALLOW, JSON, FailMode, Verdict

__all__ = [
    "FORBIDDEN_TAGS",
    "NAME",
    "Finding",
    "OutputMode",
    "SanitizeGuard",
    "SanitizeGuardConfig",
    "SanitizeHtmlConfig",
    "SanitizeMarkdownConfig",
    "sanitize_text",
]

NAME = "sanitize"
_WINDOW = 32 * 1024  # markdown/CSV/JSON re-read per chunk at most; past it, chunks are escaped
_STREAMS = "sanitize.streams"  # ctx.extra key: the artifacts of this stream, as sent so far


def sanitize_text(
    text: str, media_type: str, cfg: SanitizeGuardConfig
) -> tuple[str, list[Finding]]:
    """Sanitise one text as ``media_type`` (empty: ``cfg.default_mode``), for offline use.

    Returns the output and the findings ``{type, start, end, rule}``: terminal findings index
    ``text``, the others the text after terminal escapes were stripped (the same when none).
    """
    return sanitize(text, mode_of(media_type) or cfg.default_mode, compile_rules(cfg))


class _Doc:
    """One mode's text in one artifact as the client holds it: ``prefix`` is final, ``window``
    (since the last block boundary) is re-read with every appended chunk."""

    __slots__ = ("checked", "escape", "mode", "prefix", "template", "window")

    def __init__(self, mode: Mode, template: dict[str, Any], known: bool) -> None:
        self.mode, self.template = mode, template
        self.prefix = self.window = ""
        self.escape = not known  # an append to text this stream never saw: context unknown
        self.checked = 0

    @property
    def text(self) -> str:
        return self.prefix + self.window

    def append(self, chunk: str, walk: _Walk) -> tuple[str, bool]:
        """The text to send for ``chunk``, and whether it is the whole part (not appended)."""
        if self.escape:  # inert whatever came before: no re-reading needed
            plain = self.mode in (MARKDOWN, JSON_)
            out = escape_inert(
                walk.clean(chunk, PLAIN if plain else self.mode), self.mode, walk.rules
            )
            self.prefix += out
            return out, False
        md, window = self.mode == MARKDOWN, self.window
        out = walk.clean(chunk, self.mode) if md else chunk  # a markdown chunk must be safe alone
        for _ in range(3):
            if md and (not window or markdown_quiet_append(window, out)):
                return self._send(window + out, out)
            joined = walk.clean(window + out, self.mode)  # and safe after what was sent
            if joined == window + out:
                return self._send(joined, out)
            if not joined.startswith(window):
                break  # what was sent must change: send the whole text again
            if not md:
                return self._send(joined, joined[len(window) :])
            out = walk.clean(joined[len(window) :], self.mode)
        else:
            joined = walk.clean(window + out, self.mode)
        self._commit(joined)
        return self.text, True

    def _send(self, joined: str, out: str) -> tuple[str, bool]:
        self._commit(joined)
        return out, False

    def _commit(self, window: str) -> None:
        self.window = window
        if self.mode != MARKDOWN or len(window) >= 2 * self.checked + 2048:
            cut = reset_point(window, self.mode)
            self.prefix, self.window = self.prefix + window[:cut], window[cut:]
            self.checked = len(self.window)
        if len(self.window) > _WINDOW:
            self.prefix, self.window, self.escape = self.prefix + self.window, "", True


class _Artifact:
    """One artifact (or message) as sent so far: its text streams, and (while it has one, up to
    64) the other parts earlier events carried, for a resend with ``append: false``."""

    __slots__ = ("docs", "known", "others")

    def __init__(self, known: bool = True) -> None:
        self.docs: dict[Mode, _Doc] = {}
        self.others: list[JSON] = []
        self.known = known


_ANY_URL = UrlPolicy(frozenset("*"), frozenset("*"), True)


class _Walk(PayloadWalk):
    """One payload: every message, task status, history entry and artifact, copy on write."""

    def __init__(self, guard: SanitizeGuard, streams: dict[tuple[str, str], _Artifact] | None):
        self.cfg, self.rules, self.streams = guard.cfg, guard.rules, streams
        self.seen: set[str] = set()

    def clean(self, text: str, mode: Mode) -> str:
        out, found = sanitize(text, mode, self.rules)
        self.seen.update(f["rule"] for f in found)
        return out

    def message(self, message: _Obj) -> _Obj:
        return self.holder(message, _Artifact())[0]

    def task(self, task: _Obj) -> _Obj:
        out = _items(_field(task, "status", self.status), "history", self.message)

        def artifact(art: _Obj) -> _Obj:
            state = _Artifact()
            new = self.holder(art, state)[0]
            self.remember((str(task.get("id")), str(art.get("artifactId"))), state)
            return new

        return _items(out, "artifacts", artifact)

    def artifact_update(self, event: _Obj) -> _Obj:
        art = event.get("artifact")
        if not isinstance(art, dict):
            return event
        key = (str(event.get("taskId")), str(art.get("artifactId")))
        append = event.get("append") is True
        state = self.streams.get(key) if append and self.streams is not None else None
        state = state or _Artifact(known=not append)
        self.remember(key, state)
        new, whole = self.holder(art, state)
        if new is art:
            return event
        return {**event, "artifact": new, "append": False} if whole else {**event, "artifact": new}

    def remember(self, key: tuple[str, str], state: _Artifact) -> None:
        if self.streams is not None:
            self.streams.pop(key, None)
            self.streams[key] = state
            if len(self.streams) > 64:
                self.streams.pop(next(iter(self.streams)))

    def holder(self, obj: _Obj, state: _Artifact) -> tuple[_Obj, bool]:
        """A message or artifact: its parts, plus the name/description a UI shows."""
        out, whole = obj, False
        meta = obj.get("metadata")
        default = mode_of(meta.get("mediaType")) if isinstance(meta, dict) else None
        parts = obj.get("parts")
        if isinstance(parts, list):
            new: list[JSON] = []
            others: list[JSON] = []  # parts that are not one of the text streams
            for part in parts:
                p, w, streamed = self.part(part, default, state)
                new.append(p)
                whole |= w
                if not streamed:
                    others.append(p)
            if whole:  # the text streams whole (merged per mode), then every other part
                texts = [{**d.template, "text": d.text} for d in state.docs.values()]
                new = texts + state.others + others
            if state.docs and len(state.others) < 64:
                state.others += others[: 64 - len(state.others)]
            if whole or any(a is not b for a, b in zip(new, parts, strict=True)):
                out = {**obj, "parts": new}
        for key in ("name", "description"):  # shown by UIs: no terminal escapes
            value = out.get(key)
            if isinstance(value, str) and (clean := self.clean(value, "text/plain")) != value:
                out = {**out, key: clean}
        return out, whole

    def part(self, part: JSON, default: Mode | None, state: _Artifact) -> tuple[JSON, bool, bool]:
        """The part sanitised, whether its text stream must be resent whole, whether streamed."""
        if not isinstance(part, dict):
            return part, False, False
        text = part.get("text")
        if isinstance(text, str):
            mode = self.cfg.force_mode or mode_of(part.get("mediaType")) or default
            mode = mode or self.cfg.default_mode
            if mode in (MARKDOWN, CSV, JSON_):  # context matters: one text stream per mode
                doc = state.docs.get(mode)
                if doc is None:
                    template = {k: v for k, v in part.items() if k != "text"}
                    doc = state.docs[mode] = _Doc(mode, template, state.known)
                out, whole = doc.append(text, self)
                return (part if out == text else {**part, "text": out}), whole, True
            out = self.clean(text, mode)
            new: JSON = part if out == text else {**part, "text": out}
        elif "data" in part and self.cfg.scan_data_parts:
            data = self.data(part["data"], 0, False)
            new = part if data is part["data"] else {**part, "data": data}
        elif isinstance(url := part.get("url"), str) and _ANY_URL.refuse(url, False):
            self.seen.add("unsafe-url-part")
            new = {k: v for k, v in part.items() if k not in ("url", "mediaType", "filename")}
            new["text"] = "[unsafe URL removed]"
        else:
            new = part
        return new, False, False

    def data(self, value: JSON, depth: int, cell: bool) -> JSON:
        """Strings lose terminal escapes; tables (lists of rows) get CSV formula prefixes."""
        if depth > 64:
            raise ValueError("data part nested deeper than 64 levels")
        if isinstance(value, str):
            out, found = strip_terminal(value)
            self.seen.update(f["rule"] for f in found)
            if cell and self.cfg.csv_formula and (prefixed := csv_cell(out)) != out:
                self.seen.add("formula-prefix")
                return prefixed
            return out
        rows = isinstance(value, list) and value and all(isinstance(r, list | dict) for r in value)
        if isinstance(value, list):
            new = [
                self.row(v, depth + 1) if rows else self.data(v, depth + 1, False) for v in value
            ]
            return value if all(a is b for a, b in zip(new, value, strict=True)) else new
        if isinstance(value, dict):
            nd = {k: self.data(v, depth + 1, False) for k, v in value.items()}
            return value if all(nd[k] is v for k, v in value.items()) else nd
        return value

    def row(self, row: JSON, depth: int) -> JSON:
        if isinstance(row, list):
            new = [self.data(c, depth + 1, True) for c in row]
            return row if all(a is b for a, b in zip(new, row, strict=True)) else new
        nd = {k: self.data(c, depth + 1, True) for k, c in row.items()}
        return row if all(nd[k] is c for k, c in row.items()) else nd


class SanitizeGuard:
    """C23: neutralises agent output in responses and every streamed event (never requests)."""

    name = NAME

    def __init__(self, cfg: SanitizeGuardConfig) -> None:
        self.cfg = cfg
        self.fail_mode = FailMode(cfg.fail_mode)
        self.rules = compile_rules(cfg)

    async def on_request(self, ctx: RequestContext) -> Verdict:
        return ALLOW

    async def on_response(self, ctx: RequestContext, payload: JSON) -> Verdict:
        return self._check(payload, None)

    async def on_stream_event(self, ctx: RequestContext, event: JSON) -> Verdict:
        streams = ctx.extra.get(_STREAMS)
        if not isinstance(streams, dict):
            streams = ctx.extra[_STREAMS] = {}
        return self._check(event, streams)

    def _check(self, payload: JSON, streams: dict[tuple[str, str], _Artifact] | None) -> Verdict:
        if not self.cfg.enabled:
            return ALLOW
        walk = _Walk(self, streams)
        out = walk.result(payload)
        if out is payload:
            return ALLOW
        return Verdict.mutate(out, NAME, "output sanitised: " + ", ".join(sorted(walk.seen)))
