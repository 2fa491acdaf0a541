"""Markdown for the C23 output guard, and ``sanitize``: the dispatch over every mode.

Split from ``_sanitize_modes.py`` (which holds the modes' shared rules, HTML, CSV and JSON):
markdown is the one mode built on a parser (markdown-it-py tokens with source positions).
"""

from __future__ import annotations

import html as _html
import re
from bisect import bisect_right
from collections.abc import Callable
from typing import Any, NamedTuple

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline, autolink, backtick, html_inline, image, link
from markdown_it.token import Token

from maestro_gateway.guards._sanitize_modes import (
    CSV,
    HTML,
    JSON_,
    MARKDOWN,
    Finding,
    Mode,
    Rules,
    csv_text,
    html_ok,
    html_text,
    json_text,
    one_tag,
    strip_terminal,
)


# -- markdown ----------------------------------------------------------------------------------
class _Span(NamedTuple):
    kind: str  # link, image, autolink, html, code
    start: int  # offsets in the inline token's content
    end: int
    label: tuple[int, int]
    token: Token | None


class _Edit(NamedTuple):
    start: int
    end: int
    repl: str
    finding: Finding


class _Md(MarkdownIt):
    def validateLink(self, url: str) -> bool:  # tokenise every destination; the policy decides
        return True


_Rule = Callable[[StateInline, bool], bool]
_SPAN_TOKENS = ("link_open", "image", "html_inline", "code_inline")


def _recorder(kind: str, rule: _Rule) -> _Rule:
    """Wrap an inline rule so that what it matched is recorded with its source span."""

    def recorded(state: StateInline, silent: bool) -> bool:
        start, count = state.pos, len(state.tokens)
        if not rule(state, silent):
            return False
        if not silent and (spans := state.env.get("_spans")) is not None:
            tok = next((t for t in state.tokens[count:] if t.type in _SPAN_TOKENS), None)
            label = (start, start)
            if kind == "link":
                label = (start + 1, state.md.helpers.parseLinkLabel(state, start, True))
            elif kind == "image":
                label = (start + 2, state.md.helpers.parseLinkLabel(state, start + 1, False))
            spans.append(_Span(kind, start, state.pos, label, tok))
        return True

    return recorded


def _core_inline(state: StateCore) -> None:
    for token in state.tokens:
        if token.type == "inline":
            spans: list[_Span] = []
            state.env["_spans"] = spans
            token.children = token.children or []
            state.md.inline.parse(token.content, state.md, state.env, token.children)
            token.meta["spans"] = spans
    state.env.pop("_spans", None)


_MD = _Md("commonmark")
_MD.core.ruler.at("inline", _core_inline)
for _name, _kind, _fn in (
    ("link", "link", link),
    ("image", "image", image),
    ("autolink", "autolink", autolink),
    ("html_inline", "html", html_inline),
    ("backticks", "code", backtick),
):
    _MD.inline.ruler.at(_name, _recorder(_kind, _fn))

_BARE = re.compile(r"(?i:https?://|ftp://)[^\s<>]*|www\.[^\s<>]*")
_TRAIL = re.compile(r"[?!.,:*_~'\"]+$")
_MD_SPECIAL = re.compile(r"[\\`*_\[\]()<>!&|~#]")
_PASSES = 4
_MD_MAX = 256 * 1024  # markdown-it-py costs up to ~5 µs per character on hostile input


def _defang(url: str, escape: bool = True) -> str:
    """``https://evil.example/x`` → ``hxxps[:]//evil[.]example/x`` (markdown-escaped)."""
    head, sep, tail = url.partition("://")
    if sep:
        host, slash, path = tail.partition("/")
        text = re.sub("(?i)^http", "hxxp", head) + "[:]//" + host.replace(".", "[.]") + slash + path
    else:
        text = url.replace(":", "[:]", 1).replace(".", "[.]")
    return _MD_SPECIAL.sub(r"\\\g<0>", text) if escape else text


def _bare_url(url: str) -> str:
    """A bare URL without the trailing punctuation GFM leaves out of autolinks."""
    url = _TRAIL.sub("", url)
    while url.endswith(")") and url.count(")") > url.count("("):
        url = _TRAIL.sub("", url[:-1])
    return url


def _refuse_bare(url: str, rules: Rules) -> str | None:
    return rules.policy.refuse(url if "://" in url else "http://" + url, False)


def _defang_bare(text: str, rules: Rules, escape: bool) -> str:
    """Every bare URL to a domain not allowlisted, defanged (no markdown context needed)."""

    def sub(m: re.Match[str]) -> str:
        url = _bare_url(m.group())
        return (
            m.group()
            if not _refuse_bare(url, rules)
            else _defang(url, escape) + m.group()[len(url) :]
        )

    return _BARE.sub(sub, text) if "://" in text or "www." in text else text


_INERT = str.maketrans({c: f"&#{ord(c)};" for c in "\\`*_[]()<>!&|~"})


def escape_inert(text: str, mode: Mode, rules: Rules) -> str:
    """Text that stays inert whatever precedes it (a stream chunk whose context is unknown).
    Markdown: disallowed bare URLs defanged, punctuation as numeric character references (a
    backslash before one only makes it visible); JSON: backslashes doubled; HTML: escaped."""
    if mode == MARKDOWN:
        return _defang_bare(text, rules, False).translate(_INERT)
    if mode == HTML:
        return _html.escape(text)
    return text.replace("\\", "\\\\") if mode == JSON_ else text


def _mapper(
    first: int, content: str, lines: list[str], starts: list[int]
) -> Callable[[int], int] | None:
    """Offsets in a block's content (container markers, indentation gone) → the document's."""
    offs: list[int] = []
    segs: list[tuple[int, int]] = []
    off = 0
    for j, cl in enumerate(content.split("\n")):
        if first + j >= len(lines):
            return None
        src, core = lines[first + j].rstrip(" \t"), cl.strip(" \t")
        p = len(src) - len(core) if src.endswith(core) else src.rfind(core)
        if p < 0:
            return None
        offs.append(off)
        segs.append((len(cl) - len(cl.lstrip(" \t")), starts[first + j] + p))
        off += len(cl) + 1

    def to_doc(pos: int) -> int:
        j = bisect_right(offs, pos) - 1
        return segs[j][1] + max(0, pos - offs[j] - segs[j][0])

    return to_doc


def _span_fix(sp: _Span, content: str, rules: Rules) -> tuple[str, str, str] | None:
    """(replacement, type, rule) for a disallowed link, image, autolink or inline tag."""
    tok = sp.token
    if tok is None or sp.kind == "code":
        return None
    if sp.kind == "html":
        new = one_tag(tok.content, rules)
        return None if new == tok.content else (new, "html", "raw-html")
    image = sp.kind == "image"
    url = str(tok.attrGet("src" if image else "href") or "")
    rule = rules.policy.refuse(url, image)
    if rule is None:
        return None
    if sp.kind == "autolink":
        return _defang(content[sp.start + 1 : sp.end - 1]), sp.kind, rule
    label = content[sp.label[0] : sp.label[1]]
    if not rules.defang:
        return label, sp.kind, rule
    return f"{label} ({'image: ' if image else ''}{_defang(url)})", sp.kind, rule


_Fix = tuple[int, int, str, str, str]  # start, end, replacement, type, rule


def _inline_fixes(text: str, spans: list[_Span], rules: Rules) -> list[_Fix]:
    fixes = [(sp.start, sp.end, *fix) for sp in spans if (fix := _span_fix(sp, text, rules))]
    if "://" in text or "www." in text:
        for m in _BARE.finditer(text):
            if any(sp.start <= m.start() < sp.end for sp in spans):
                continue  # inside a link, image or code span: not linkified
            url = _bare_url(m.group())
            if rule := _refuse_bare(url, rules):
                fixes.append((m.start(), m.start() + len(url), _defang(url), "bare-url", rule))
    return fixes


def _plan(src: str, rules: Rules) -> list[_Edit]:
    """The edits one pass makes over ``src``."""
    env: dict[str, Any] = {}
    tokens = _MD.parse(src, env)
    lines = src.split("\n")
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    edits: list[_Edit] = []

    def edit(s: int, e: int, repl: str, kind: str, rule: str) -> None:
        edits.append(_Edit(s, e, repl, Finding(type=kind, start=s, end=e, rule=rule)))

    def whole(tok: Token) -> None:  # source positions unknown: escape the block's lines
        a, b = tok.map or (0, 1)
        s, e = starts[a], starts[b - 1] + len(lines[b - 1])
        edit(s, e, escape_inert(src[s:e], MARKDOWN, rules), "markdown", "unmapped")

    for ref in [*env.get("references", {}).values(), *env.get("duplicate_refs", [])]:
        href, policy = ref["href"], rules.policy  # a definition may serve links and images
        if rule := policy.refuse(href, False) or policy.refuse(href, True):
            a, b = ref["map"]
            s = starts[a] + max(lines[a].find("["), 0)
            end = s if rules.defang else starts[b - 1] + len(lines[b - 1])
            edit(s, end, "\\" if rules.defang else "", "reference", rule)
    for tok in tokens:
        if tok.map is None:
            continue
        first = tok.map[0]
        if tok.type == "inline":
            if not (fixes := _inline_fixes(tok.content, tok.meta.get("spans") or [], rules)):
                continue
            if (to_doc := _mapper(first, tok.content, lines, starts)) is None:
                whole(tok)
                continue
            for s, e, repl, kind, rule in fixes:
                edit(to_doc(s), to_doc(e), repl, kind, rule)
        elif tok.type == "html_block":
            text = tok.content.rstrip("\n")
            if not text or html_ok(text, rules):
                continue
            if (to_doc := _mapper(first, text, lines, starts)) is None:
                whole(tok)
                continue
            s = to_doc(0)
            blank = re.sub(r"[-+*]|\d+[.)]", lambda m: " " * len(m.group()), src[starts[first] : s])
            new = rules.cleaner.clean(text).rstrip("\n").replace("\n", "\n" + blank)
            edit(s, to_doc(len(text)), new, "html", "raw-html")
        elif tok.type == "fence" and rules.inert_code and tok.info.strip().lower() != "text":
            s = starts[first] + lines[first].find(tok.markup) + len(tok.markup)
            edit(s, starts[first] + len(lines[first]), "text", "code-block", "inert-code-block")
    return edits


def _md_plain(src: str, rules: Rules) -> bool:
    """No construct this module acts on can be present: no parse needed."""
    if "[" in src or "<" in src or "://" in src or "www." in src:
        return False
    return not (rules.inert_code and ("```" in src or "~~~" in src))


def markdown(text: str, rules: Rules) -> tuple[str, list[Finding]]:
    """Neutralise links, images and raw HTML, passing again until nothing changes."""
    src = text.replace("\r\n", "\n") if "\r" in text else text
    findings: list[Finding] = []
    if len(src) > _MD_MAX and not _md_plain(src, rules):
        findings.append(Finding(type="markdown", start=0, end=len(src), rule="too-large"))
        return escape_inert(src, MARKDOWN, rules), findings
    for _ in range(_PASSES):
        if _md_plain(src, rules) or not (edits := _plan(src, rules)):
            return (src if findings else text), findings
        parts: list[str] = []
        pos = 0
        for ed in sorted(edits, key=lambda x: (x.start, x.end)):
            if ed.start >= pos:  # an edit inside another one waits for the next pass
                parts += (src[pos : ed.start], ed.repl)
                pos = ed.end
                findings.append(ed.finding)
        src = "".join([*parts, src[pos:]])
    findings.append(Finding(type="markdown", start=0, end=len(src), rule="escape-fallback"))
    return escape_inert(src, MARKDOWN, rules), findings


_CLOSERS = re.compile(r"[)\]>`]")
_OPENERS = re.compile(r"[\[<:\\&%`~]|//|www\.")


def markdown_quiet_append(before: str, chunk: str) -> bool:
    """Appending ``chunk`` to sanitised markdown ``before`` can neither form nor change a link,
    image, autolink, tag, code span or reference definition: no closer (``) ] > ` ``) in the
    chunk, and the last line of ``before`` plus the chunk holds nothing that opens one or makes
    a destination absolute (``[ < : // \\ & % ` ~ www.``). A destination continued from
    there stays relative; a definition's destination on a new line starts with the chunk."""
    if _CLOSERS.search(chunk):
        return False
    return not _OPENERS.search(before[before.rfind("\n") + 1 :] + chunk)


def reset_point(text: str, mode: Mode) -> int:
    """Where a stream of appended chunks may restart parsing without looking further back. In
    markdown: the start of the last top-level block that follows a blank line."""
    if mode != MARKDOWN:
        return text.rfind("\n") + 1 if mode == CSV else 0
    lines = text.split("\n")
    blocks = [t.map[0] for t in _MD.parse(text.replace("\r\n", "\n")) if t.map and t.level == 0]
    line = max((b for b in blocks if b > 0 and not lines[b - 1].strip()), default=0)
    return sum(len(x) + 1 for x in lines[:line])


def sanitize(text: str, mode: Mode, rules: Rules) -> tuple[str, list[Finding]]:
    """Sanitise ``text`` for ``mode``: terminal escapes first, then the mode's own rules."""
    out, findings = strip_terminal(text)
    more: list[Finding] = []
    if mode == HTML:
        out, more = html_text(out, rules)
    elif mode == MARKDOWN:
        out, more = markdown(out, rules)
    elif mode == CSV and rules.csv_formula:
        out, more = csv_text(out)
    elif mode == JSON_:
        out, more = json_text(out)
    return out, findings + more
