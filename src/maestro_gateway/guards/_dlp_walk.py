"""DLP over A2A payloads: every text part and data-part string of messages, tasks (status
message, history, artifacts), status and artifact updates, copied along the changed path only.

Streams: the text parts of one artifact (``taskId``, ``artifactId``) appended event by event
are one text. Each chunk is scanned after the last ``_RECENT`` characters already sent (their
context words count: "SSN: " in one chunk, the number in the next), and its tail that could
still grow into a finding is held back (``hold_start``): the last token, the short digit or
capital groups before it (a spaced card number, IBAN or phone), and any finding that reaches
the end of the chunk (a key block or JWT still arriving). The held text goes out in front of
the next chunk of that artifact, or whole at ``lastChunk``. An artifact replaced (``append``
not true) starts afresh.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING

from maestro_gateway.guards._payload import Obj as _Obj
from maestro_gateway.guards._payload import PayloadWalk
from maestro_gateway.guards._payload import field as _field
from maestro_gateway.guards._payload import items as _items
from maestro_gateway.scanning import Finding
from maestro_gateway.types import ALLOW, JSON, Verdict

if TYPE_CHECKING:
    from maestro_gateway.guards.dlp import Dlp

__all__ = ["DLP_BLOCKED", "NAME", "STREAMS", "Stream", "TooLarge", "Walk", "hold_start"]

NAME = "dlp"
DLP_BLOCKED = -32093
"""JSON-RPC error code of a DLP refusal (next to the WAF's -32091). Sent with HTTP 403."""
STREAMS = "dlp.streams"  # ctx.extra key: per artifact of this stream, its held tail
_RECENT = 64
_MAX_STREAMS = 64
_GROUP = re.compile(r"[+(]?[\dA-Z]{1,6}[)\-./]?|[\d()+\-./]{1,8}")
_SUSPICIOUS = re.compile(r"\d|@|_|://|[=+/\\]|-----|[A-Z]{2}|[a-z][A-Z]")


def hold_start(buf: str, cap: int) -> int:
    """Where the tail of ``buf`` that could still grow into a finding starts (≥ len - cap):
    its last token and the digit/capital groups before it, when they look like the start of
    an identifier or key (a digit, ``@``, ``_``, ``://``, ``=``, ``+``, ``/``, two capitals,
    mixed case, ``-----``). Words of prose are never held, so an artifact that ends without
    ``lastChunk`` loses nothing but such a tail."""
    n = len(buf)
    lo = max(0, n - cap)
    i = n
    if i > lo and buf[i - 1] == " ":  # a separator inside a spaced number, or the word's end
        k = i - 1
        while k > lo and not buf[k - 1].isspace():
            k -= 1
        if k == i - 1 or not _GROUP.fullmatch(buf[k : i - 1]):
            return n
        i = k
    else:
        while i > lo and not buf[i - 1].isspace():
            i -= 1
    while i - 1 > lo and buf[i - 1] == " ":
        k = i - 1
        while k > lo and not buf[k - 1].isspace():
            k -= 1
        if k == i - 1 or not _GROUP.fullmatch(buf[k : i - 1]):
            break
        i = k
    return i if _SUSPICIOUS.search(buf, i) else n


class TooLarge(ValueError):
    """A string above ``max_text_chars``: refused rather than passed unscanned."""


@dataclasses.dataclass(slots=True)
class Stream:
    """One streamed artifact: the tail held back, and the last characters already sent."""

    held: str = ""
    recent: str = ""


class Walk(PayloadWalk):
    """One payload through the scanner; collects what was found for the verdict."""

    def __init__(self, dlp: Dlp, streams: dict[tuple[str, str], Stream] | None) -> None:
        self.dlp, self.streams = dlp, streams
        self.found: list[Finding] = []

    def verdict(self, payload: JSON, request: bool = False) -> Verdict:
        try:
            if request:
                out = (
                    _field(payload, "message", self.message)
                    if isinstance(payload, dict)
                    else payload
                )
            else:
                out = self.result(payload)
        except TooLarge as exc:
            return Verdict.deny(403, DLP_BLOCKED, f"DLP: {exc}", NAME, rule="too-large")
        blocked = [f for f in self.found if self.dlp.action(f) == "block"]
        if blocked:
            types = ",".join(sorted({f.type for f in blocked}))
            rules = ",".join(sorted({f.rule for f in blocked}))
            where = "request" if request else "response"
            reason = f"blocked by DLP: the {where} carries {types}"
            return Verdict.deny(403, DLP_BLOCKED, reason, NAME, rule=rules, types=types)
        if out is payload:
            return ALLOW
        types = ",".join(sorted({f.type for f in self.found}))
        return Verdict.mutate(out, NAME, f"DLP: {types}")

    def text(self, value: str) -> str:
        found = self.dlp.findings(value)
        if not found:
            return value
        self.found += found
        return self.dlp.apply(value, found)

    def stream_text(self, state: Stream, chunk: str, final: bool) -> str:
        """One appended chunk: what to send now; ``state`` keeps the held tail."""
        buf, recent = state.held + chunk, state.recent
        off = len(recent)
        found = [f for f in self.dlp.findings(recent + buf) if f.end > off]
        found = [f if f.start >= off else dataclasses.replace(f, start=off) for f in found]
        cut = len(buf)
        if not final:
            cut = hold_start(buf, self.dlp.cfg.max_holdback_chars)
            for f in reversed(found):  # a finding crossing the cut, or still growing
                if f.start - off < cut and (f.end - off > cut or f.end - off == len(buf)):
                    cut = f.start - off
            cut = max(cut, len(buf) - self.dlp.cfg.max_holdback_chars)
        sent = [f for f in found if f.end - off <= cut]
        self.found += sent
        out = self.dlp.apply(recent + buf[:cut], sent)[off:] if sent else buf[:cut]
        state.held = buf[cut:]
        state.recent = (recent + buf[:cut])[-_RECENT:]
        return out

    def message(self, message: _Obj) -> _Obj:
        return _items(message, "parts", self.part)

    def task(self, task: _Obj) -> _Obj:
        out = _items(_field(task, "status", self.status), "history", self.message)
        return _items(out, "artifacts", self.message)

    def part(self, part: _Obj) -> _Obj:
        text = part.get("text")
        if isinstance(text, str):
            new = self.text(text)
            return part if new is text else {**part, "text": new}
        if "data" in part and self.dlp.cfg.scan_data_parts:
            data = self.data(part["data"], 0)
            return part if data is part["data"] else {**part, "data": data}
        return part

    def data(self, value: JSON, depth: int) -> JSON:
        if depth > 64:
            raise ValueError("data part nested deeper than 64 levels")
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            new = [self.data(v, depth + 1) for v in value]
            return value if all(a is b for a, b in zip(new, value, strict=True)) else new
        if isinstance(value, dict):
            nd = {k: self.data(v, depth + 1) for k, v in value.items()}
            return value if all(nd[k] is v for k, v in value.items()) else nd
        return value

    def artifact_update(self, event: _Obj) -> _Obj:
        art = event.get("artifact")
        if not isinstance(art, dict) or not isinstance(art.get("parts"), list):
            return event
        if self.streams is None:
            return _field(event, "artifact", self.message)
        key = (str(event.get("taskId")), str(art.get("artifactId")))
        last = event.get("lastChunk") is True
        state = self.streams.pop(key, None) if event.get("append") is True else None
        state = state or Stream()
        parts: list[JSON] = list(art["parts"])
        texts = [i for i, p in enumerate(parts) if isinstance(p, dict) and "text" in p]
        for i, part in enumerate(parts):
            if isinstance(part, dict) and i not in texts:
                parts[i] = self.part(part)
        for j, i in enumerate(texts):
            part = parts[i]
            text = part["text"] if isinstance(part["text"], str) else ""
            out = self.stream_text(state, text, last or j < len(texts) - 1)
            if out != text:
                parts[i] = {**part, "text": out}
        if not texts and state.held and last:
            parts.insert(0, {"text": self.stream_text(state, "", True)})
        if not last:
            self.streams[key] = state
            if len(self.streams) > _MAX_STREAMS:
                self.streams.pop(next(iter(self.streams)))
        if all(a is b for a, b in zip(parts, art["parts"], strict=True)) and len(parts) == len(
            art["parts"]
        ):
            return event
        return {**event, "artifact": {**art, "parts": parts}}
