"""The per-mode text sanitisers behind the C23 output guard (``sanitize.py`` holds the API);
markdown, and the ``sanitize`` dispatch over all modes, are in ``_sanitize_md.py``.

``sanitize(text, mode, rules)`` returns ``(output, findings)``. Terminal escapes are stripped in
every mode first; then, by mode:

- html: kept verbatim when every tag is strictly formed and allowlisted, else nh3 (ammonia);
- markdown: markdown-it-py tokens with their source positions; disallowed links, images,
  autolinks, reference definitions and bare URLs are removed or defanged, raw HTML goes through
  the HTML rules; the result is parsed again until nothing changes (else it is all escaped);
- csv: the OWASP formula-injection prefix ``'``; json: terminal escapes written as ``\\u001b``.
"""

from __future__ import annotations

import html as _html
import json
import re
from dataclasses import dataclass
from typing import Literal, TypedDict
from urllib.parse import unquote, urlsplit

import nh3

Mode = Literal["text/plain", "text/markdown", "text/html", "text/csv", "application/json"]
PLAIN: Mode = "text/plain"
MARKDOWN: Mode = "text/markdown"
HTML: Mode = "text/html"
CSV: Mode = "text/csv"
JSON_: Mode = "application/json"
_MODES: dict[str, Mode] = {m: m for m in (PLAIN, MARKDOWN, HTML, CSV, JSON_)} | {
    "text/x-markdown": MARKDOWN,
    "text/md": MARKDOWN,
    "application/xhtml+xml": HTML,
    "image/svg+xml": HTML,
    "application/csv": CSV,
    "text/tab-separated-values": CSV,
    "text/comma-separated-values": CSV,
    "text/json": JSON_,
}


class Finding(TypedDict):
    """One neutralised construct; ``start``/``end`` index the text the rule ran on."""

    type: str
    start: int
    end: int
    rule: str


def mode_of(media_type: object) -> Mode | None:
    """The output mode for a media type: None when absent, text/plain when unknown."""
    if not isinstance(media_type, str) or not media_type.strip():
        return None
    mt = media_type.split(";", 1)[0].strip().lower()
    return _MODES.get(mt) or (JSON_ if mt.endswith("+json") else PLAIN)


# -- terminal escapes (every mode) -------------------------------------------------------------
_TERM = re.compile(
    r"(?P<csi>(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~])"
    r"|(?P<osc>(?:\x1b\]|\x9d)(?P<n>\d*)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c))"
    r"|(?P<dcs>(?:\x1b[PX^_]|[\x90\x98\x9e\x9f])[^\x1b\x9c]*(?:\x1b\\|\x9c))"
    r"|(?P<esc>\x1b[ -/]*[0-~]?)|(?P<c1>[\x80-\x9f])|(?P<c0>[\x00-\x08\x0b\x0c\x0e-\x1f\x7f])"
    r"|(?P<cr>\r(?!\n))"
)
_C0 = bytes(i for i in range(32) if i not in (9, 10, 13)) + b"\x7f"


def strip_terminal(text: str) -> tuple[str, list[Finding]]:
    """Remove CSI, OSC (8 hyperlinks, 52 clipboard writes), DCS/SOS/PM/APC strings, other ESC
    sequences, C0 controls but TAB/LF/CR, and C1 controls; a lone CR (overwrite) becomes LF."""
    if text.isascii() and "\r" not in text and len(text.encode().translate(None, _C0)) == len(text):
        return text, []  # the fast path: about 1 µs per KB
    findings: list[Finding] = []

    def sub(m: re.Match[str]) -> str:
        rule = m.lastgroup or "c0"
        if rule == "osc" and m.group("n") in ("8", "52"):  # hyperlink, clipboard write
            rule += "-" + m.group("n")
        findings.append(Finding(type="terminal", start=m.start(), end=m.end(), rule=rule))
        return "\n" if rule == "cr" else ""

    out = _TERM.sub(sub, text)
    return (out, findings) if findings else (text, [])


# -- URL policy ----------------------------------------------------------------------------
_SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")
_BLANKS = re.compile(r"[\x00-\x20\x7f]+")
_PLAIN_PATH = re.compile(r"(?!//)[\w/.#?=&+~-]*", re.A)  # relative: no scheme, %, \, blanks


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """Link and image targets that may stay: http(s) to an allowlisted domain (``*``: any),
    mailto to one (links only), relative URLs if allowed. Every other scheme is refused."""

    link_domains: frozenset[str]
    image_domains: frozenset[str]
    allow_relative: bool

    def refuse(self, url: str, image: bool) -> str | None:
        """None when ``url`` may stay, else the rule that refuses it."""
        if _PLAIN_PATH.fullmatch(url):
            return None if self.allow_relative else "relative-url"
        raw = _BLANKS.sub("", url)
        flat = _BLANKS.sub("", unquote(raw)).lower()
        m = _SCHEME.match(flat)
        if m is None:
            if raw[:2] in ("//", "\\\\", "/\\", "\\/"):
                return self._host("https:" + raw, image)
            if "[:]" in flat or "[.]" in flat:  # a defanged URL completed by later text
                return "defanged-url"
            return None if self.allow_relative else "relative-url"
        if m.group(1) in ("http", "https"):
            return self._host(raw, image)
        if m.group(1) == "mailto" and not image:
            to = raw[7:].split("?", 1)[0].split(",")
            ok = all(_domain_ok(a.rpartition("@")[2].lower(), self.link_domains) for a in to)
            return None if ok else "disallowed-link-domain"
        return "unsafe-scheme"

    def _host(self, url: str, image: bool) -> str | None:
        try:  # browsers read "\" as "/" in http(s) URLs: so do we, before finding the host
            parts = urlsplit(re.sub(r"(?i)\\|%5c", "/", url))
            host = (parts.hostname or "").rstrip(".")
        except ValueError:
            return "bad-url"
        if "@" in parts.netloc or not host or "%" in host or len(host) > 253:
            return "bad-url"
        if _domain_ok(host, self.image_domains if image else self.link_domains):
            return None
        return "disallowed-image-domain" if image else "disallowed-link-domain"


def _domain_ok(host: str, domains: frozenset[str]) -> bool:
    """``host`` is an allowed domain or a subdomain of one."""
    labels = host.split(".")
    return "*" in domains or any(".".join(labels[i:]) in domains for i in range(len(labels)))


# -- HTML -------------------------------------------------------------------------------------
_URL_ATTRS = frozenset({"href", "src", "cite", "longdesc"})
_SP = "[ \t\n\r\f]"
_ATTR_RE = (
    rf"([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:{_SP}*={_SP}*(\"[^\"]*\"|'[^']*'|[^ \t\n\r\f\"'=<>`]+))?"
)
_TAG = re.compile(rf"<(/?)([a-zA-Z][a-zA-Z0-9]*)((?:{_SP}+{_ATTR_RE})*){_SP}*/?>")
_ATTR = re.compile(_ATTR_RE)


@dataclass(frozen=True, slots=True)
class Rules:
    """Everything the sanitisers need, compiled once from the guard's configuration."""

    policy: UrlPolicy
    tags: frozenset[str]
    attributes: dict[str, frozenset[str]]  # per allowed tag, with those allowed on every tag
    cleaner: nh3.Cleaner
    defang: bool
    csv_formula: bool
    inert_code: bool


def build_rules(
    tags: frozenset[str],
    attributes: dict[str, frozenset[str]],
    policy: UrlPolicy,
    defang: bool,
    csv_formula: bool,
    inert_code: bool,
) -> Rules:
    def attribute_filter(tag: str, attr: str, value: str) -> str | None:
        refused = attr in _URL_ATTRS and policy.refuse(value, attr == "src")  # src loads unasked
        return None if refused else value

    cleaner = nh3.Cleaner(
        tags=set(tags),
        attributes={k: set(v) for k, v in attributes.items()},
        attribute_filter=attribute_filter,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
        strip_comments=True,
        url_relative="pass_through" if policy.allow_relative else "deny",
    )
    generic = attributes.get("*", frozenset())
    per_tag = {t: attributes.get(t, frozenset()) | generic for t in tags}
    return Rules(policy, tags, per_tag, cleaner, defang, csv_formula, inert_code)


def _tag_ok(m: re.Match[str], rules: Rules) -> bool:
    """Whether one strictly formed tag is allowlisted exactly as nh3 would leave it."""
    name = m.group(2).lower()
    allowed = rules.attributes.get(name)
    if allowed is None or m.group(1):
        return allowed is not None and not m.group(3)
    rel = None
    for am in _ATTR.finditer(m.group(3)):
        attr, value = am.group(1).lower(), am.group(2) or ""
        value = value[1:-1] if value[:1] in ("'", '"') else value
        value = _html.unescape(value) if "&" in value else value
        if name == "a" and attr == "rel":
            rel = value
        elif attr not in allowed or (
            attr in _URL_ATTRS and rules.policy.refuse(value, attr == "src")
        ):
            return False
    return name != "a" or bool(m.group(1)) or rel == "noopener noreferrer"


def html_ok(text: str, rules: Rules) -> bool:
    """Every ``<`` starts a strictly formed, allowlisted tag (so the text is left as it is)."""
    pos = 0
    while (i := text.find("<", pos)) >= 0:
        m = _TAG.match(text, i)
        if m is None or not _tag_ok(m, rules):
            return False
        pos = m.end()
    return True


def html_text(text: str, rules: Rules) -> tuple[str, list[Finding]]:
    """nh3's output, unless nh3 changed nothing or only re-serialised allowlisted tags."""
    if "<" not in text:
        return text, []  # no tag, comment or declaration can start without "<"
    out = rules.cleaner.clean(text)
    if out == text or html_ok(text, rules):
        return text, []
    return out, [Finding(type="html", start=0, end=len(text), rule="allowlist")]


def one_tag(tag: str, rules: Rules) -> str:
    """One inline HTML tag inside markdown: itself if allowlisted, nh3's rewrite of it, or ''."""
    m = _TAG.fullmatch(tag)
    if m is not None and _tag_ok(m, rules):
        return tag
    if m is None or m.group(1):
        return ""
    m = _TAG.match(rules.cleaner.clean(tag))
    return m.group(0) if m is not None and not m.group(1) else ""


# -- CSV and JSON ------------------------------------------------------------------------------
_CELL = re.compile(r"(?:^|(?<=[,;\t\n\r]))[ \t\r]*\"?[ \t]*([=+\-@])")
_NUMBER = re.compile(r"[+-](?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?%?\"?(?=[,;\t\r\n]|$)")


def csv_text(text: str) -> tuple[str, list[Finding]]:
    """Prefix ``'`` to every cell that starts (after blanks or a quote) with = + - @, unless it
    is a plain number. A cell starts after any of , ; TAB or a line break, quoted or not."""
    findings: list[Finding] = []
    out: list[str] = []
    pos = 0
    for m in _CELL.finditer(text):
        at = m.start(1)
        if m.group(1) in "+-" and _NUMBER.match(text, at):
            continue
        out += (text[pos:at], "'")
        pos = at
        findings.append(Finding(type="csv", start=at, end=at + 1, rule="formula-prefix"))
    return ("".join([*out, text[pos:]]), findings) if findings else (text, [])


def csv_cell(value: str) -> str:
    """One cell of a table held as JSON rows: the same rule as ``csv_text``."""
    m = _CELL.match(value)
    if m is None or (m.group(1) in "+-" and _NUMBER.fullmatch(value, m.start(1))):
        return value
    return value[: m.start(1)] + "'" + value[m.start(1) :]


_JSTR = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_JESC = re.compile(r"\\u00(?:[01][0-9a-fA-F]|7[fF]|[89][0-9a-fA-F])")


def json_text(text: str) -> tuple[str, list[Finding]]:
    """Terminal escapes written as JSON ``\\u001b`` escapes inside string literals."""
    if "\\u" not in text:
        return text, []
    findings: list[Finding] = []
    out: list[str] = []
    pos = 0
    for m in _JSTR.finditer(text):
        if not _JESC.search(m.group()):
            continue
        try:
            clean, found = strip_terminal(json.loads(m.group()))
        except ValueError:
            continue
        if found:
            out += (text[pos : m.start()], json.dumps(clean, ensure_ascii=False))
            pos = m.end()
            s, e = m.span()
            findings += [Finding(type="terminal", start=s, end=e, rule=f["rule"]) for f in found]
    return ("".join([*out, text[pos:]]), findings) if findings else (text, [])
