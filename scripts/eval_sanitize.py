"""Evaluate the C23 output-sanitisation guard on the shared corpora and measure its cost.

    .venv/bin/python scripts/eval_sanitize.py [--corpora ../shared/corpora] [--json]

Measures (see docs/sanitize.md for the definitions):

- **executable** HTML: parsed by html5lib (the WHATWG algorithm, as browsers parse) *and* by
  Python's html.parser, and by html5lib again after one serialise/parse round trip (mutation
  XSS), any of: an element script, style, iframe, frame, frameset, object, embed, applet, base,
  meta, link, form, template, portal, svg or math; an ``on*``, ``srcdoc``, ``action`` or
  ``formaction`` attribute; a javascript:, vbscript:, data:, livescript: or mhtml: URL (blanks
  and controls ignored) in href, src, xlink:href, action, formaction, data, poster,
  background, srcset, codebase, cite, longdesc, dynsrc or lowsrc; a style attribute with
  ``expression(``, ``url(``, ``behavior``, ``-moz-binding`` or ``javascript:``.
- dompurify.jsonl: a fixture is **hostile** when its payload is executable, else benign.
  Hostile: **neutralised** = the output is not executable. Benign: **text kept** = same
  whitespace-normalised text content; **links kept** = every ``<a href>`` of the payload is
  in the output. All: **agrees** = same text content as one of DOMPurify's expected outputs.
- commonmark.jsonl: each example and its sanitised form are rendered with markdown-it-py
  (CommonMark, raw HTML on); **text**/**structure**/**links** kept = same normalised text /
  same sequence of element names / same (element, href|src) list; **unchanged** = output is
  byte-identical; **safe** = the rendered output is not executable.

Both files run with the default configuration (no domain allowlisted) and with
``allowed_link_domains``/``allowed_image_domains: ["*"]`` (any domain; schemes still checked).
The corpora are read at run time and never copied into the repository.
"""

from __future__ import annotations

import argparse
import contextlib
import html.parser
import json
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from maestro_gateway.context import RequestContext
from maestro_gateway.guards.sanitize import SanitizeGuard, SanitizeGuardConfig, sanitize_text

try:
    import html5lib  # type: ignore[import-untyped, unused-ignore]
except ImportError:  # the html.parser check alone is weaker: main() says so
    html5lib = None

EXEC_TAGS = {"script", "style", "iframe", "frame", "frameset", "object", "embed", "applet"}
EXEC_TAGS |= {"base", "meta", "link", "form", "template", "portal", "svg", "math"}
URL_ATTRS = {"href", "src", "xlink:href", "action", "formaction", "data", "poster", "background"}
URL_ATTRS |= {"srcset", "codebase", "cite", "longdesc", "dynsrc", "lowsrc"}
BAD_SCHEME = re.compile(r"(javascript|vbscript|data|livescript|mhtml):", re.I)
BAD_STYLE = re.compile(r"expression\(|url\(|behavior|-moz-binding|javascript:", re.I)
BLANKS = re.compile(r"[\x00-\x20\x7f]+")


def _attr_reasons(tag: str, name: str, value: str) -> list[str]:
    name = name.lower().rsplit("}", 1)[-1] if "}" not in name else "xlink:" + name.split("}")[1]
    if name.startswith("on") or name in ("srcdoc", "action", "formaction"):
        return [f"{tag}@{name}"]
    if name in URL_ATTRS and BAD_SCHEME.match(BLANKS.sub("", value)):
        return [f"{tag}@{name}=url"]
    if name == "style" and BAD_STYLE.search(value):
        return [f"{tag}@style"]
    return []


class _Collector(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.reasons: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in EXEC_TAGS:
            self.reasons.append(tag)
        for k, v in attrs:
            self.reasons += _attr_reasons(tag, k, v or "")


def _tree_reasons(root: Any) -> list[str]:
    reasons = []
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        tag = el.tag.rsplit("}", 1)[-1].lower()
        if tag in EXEC_TAGS:
            reasons.append(tag)
        for k, v in el.attrib.items():
            reasons += _attr_reasons(tag, k, v)
    return reasons


def _fragments(markup: str) -> list[Any]:
    """html5lib trees: scripting off and on (noscript parses differently), and the scripting-on
    tree serialised and parsed again (mutation XSS shows up on the second parse)."""
    if html5lib is None:
        return []
    parser = html5lib.HTMLParser(namespaceHTMLElements=False)
    trees = [parser.parseFragment(markup, scripting=s) for s in (False, True)]
    again = html5lib.serialize(trees[1], tree="etree", quote_attr_values="always")
    return [*trees, parser.parseFragment(again, scripting=True)]


def executable(markup: str) -> list[str]:
    """Why ``markup`` would run code or load active content (empty: it would not)."""
    p = _Collector()
    try:
        p.feed(markup)
        p.close()
        reasons = p.reasons
    except AssertionError:  # html.parser gives up on some markup: count that as a finding
        reasons = ["html.parser-error"]
    for tree in _fragments(markup):
        reasons += _tree_reasons(tree)
    return sorted(set(reasons))


def text_of(markup: str) -> str:
    """Whitespace-normalised text content (scripting on), without script/style/template."""
    trees = _fragments(markup)
    if not trees:
        return " ".join(html.unescape(re.sub(r"<[^>]*>", " ", markup)).split())
    out: list[str] = []

    def walk(el: Any) -> None:
        name = el.tag.rsplit("}", 1)[-1] if isinstance(el.tag, str) else ""
        if name and name not in ("script", "style", "template"):
            out.append(el.text or "")
            for child in el:
                walk(child)
                out.append(child.tail or "")
        elif not name:  # a comment: its text is not content
            pass

    walk(trees[1])
    return " ".join("".join(out).split())


class _Shape(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.links: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for k, v in attrs:
            if (tag, k) in (("a", "href"), ("img", "src")):
                self.links.append((tag, v or ""))


def shape(markup: str) -> tuple[list[str], list[tuple[str, str]]]:
    p = _Shape()
    try:
        p.feed(markup)
        p.close()
    except AssertionError:
        return ["?"], []
    return p.tags, p.links


def read(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").split("\n")  # not splitlines(): U+2028 in rows
    return [json.loads(line) for line in lines if line.strip()]


CONFIGS = {
    "default": SanitizeGuardConfig(),
    "any-domain": SanitizeGuardConfig.model_validate(
        {"markdown": {"allowed_link_domains": ["*"], "allowed_image_domains": ["*"]}}
    ),
}


def pct(n: int, d: int) -> str:
    return f"{n}/{d} ({100 * n / d:.1f}%)" if d else "0/0"


def eval_dompurify(rows: list[dict[str, Any]], verbose: bool) -> dict[str, Any]:
    result: dict[str, Any] = {}
    hostile = [r for r in rows if executable(r["payload"])]
    benign = [r for r in rows if not executable(r["payload"])]
    print(
        f"\n## dompurify.jsonl — {len(rows)} fixtures: {len(hostile)} hostile, {len(benign)} benign"
    )
    print(
        "| config | hostile neutralised | benign unchanged | benign text kept | benign links kept "
        "| text agrees with DOMPurify |"
    )
    print("|---|---|---|---|---|---|")
    for name, cfg in CONFIGS.items():
        outs = {r["id"]: sanitize_text(r["payload"], "text/html", cfg)[0] for r in rows}
        missed = [r["id"] for r in hostile if executable(outs[r["id"]])]
        unchanged = sum(outs[r["id"]] == r["payload"] for r in benign)
        text_kept = sum(text_of(outs[r["id"]]) == text_of(r["payload"]) for r in benign)
        links_kept = sum(
            set(h for t, h in shape(r["payload"])[1] if t == "a")
            <= set(h for t, h in shape(outs[r["id"]])[1] if t == "a")
            for r in benign
        )
        agrees = sum(
            any(text_of(outs[r["id"]]) == text_of(e) for e in r["expected_any_of"] if e is not None)
            for r in rows
        )
        n_h, n_b = len(hostile), len(benign)
        print(
            f"| {name} | {pct(n_h - len(missed), n_h)} | {pct(unchanged, n_b)} | "
            f"{pct(text_kept, n_b)} | {pct(links_kept, n_b)} | {pct(agrees, len(rows))} |"
        )
        if missed:
            print(f"  NOT neutralised: {missed}")
        if verbose:
            for r in benign:
                if text_of(outs[r["id"]]) != text_of(r["payload"]):
                    print(
                        f"  text changed {r['id']}: {r['payload'][:80]!r} -> {outs[r['id']][:80]!r}"
                    )
        result[name] = {
            "hostile": n_h,
            "neutralised": n_h - len(missed),
            "missed": missed,
            "benign": n_b,
            "benign_unchanged": unchanged,
            "benign_text_kept": text_kept,
            "benign_links_kept": links_kept,
            "agrees_with_dompurify": agrees,
        }
    return result


def eval_commonmark(rows: list[dict[str, Any]], verbose: bool) -> dict[str, Any]:
    md = MarkdownIt("commonmark")
    result: dict[str, Any] = {}
    raw_exec = [r["id"] for r in rows if executable(md.render(r["markdown"]))]
    print(
        f"\n## commonmark.jsonl — {len(rows)} examples; {len(raw_exec)} render executable HTML "
        f"unsanitised ({', '.join(raw_exec)})"
    )
    for name, cfg in CONFIGS.items():
        by_section: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0])
        unsafe = []
        for r in rows:
            out = sanitize_text(r["markdown"], "text/markdown", cfg)[0]
            before, after = md.render(r["markdown"]), md.render(out)
            (tags_b, links_b), (tags_a, links_a) = shape(before), shape(after)
            row = by_section[r["section"]]
            row[0] += 1
            row[1] += out == r["markdown"]
            row[2] += text_of(before) == text_of(after)
            row[3] += tags_b == tags_a
            row[4] += links_b == links_a
            if executable(after):
                unsafe.append(r["id"])
            else:
                row[5] += 1
            if verbose and text_of(before) != text_of(after):
                print(f"  {name} {r['id']}: {r['markdown'][:70]!r} -> {out[:70]!r}")
        total = [sum(v[i] for v in by_section.values()) for i in range(6)]
        print(f"\n### config {name}\n")
        print("| section | n | unchanged | text kept | structure kept | links kept | safe |")
        print("|---|---|---|---|---|---|---|")
        for section, v in sorted(by_section.items()):
            print(f"| {section} | {v[0]} | {v[1]} | {v[2]} | {v[3]} | {v[4]} | {v[5]} |")
        n = total[0]
        print(
            f"| **all** | {n} | {pct(total[1], n)} | {pct(total[2], n)} | {pct(total[3], n)} "
            f"| {pct(total[4], n)} | {pct(total[5], n)} |"
        )
        if unsafe:
            print(f"  rendered output still executable: {unsafe}")
        result[name] = dict(
            zip(
                ["n", "unchanged", "text_kept", "structure_kept", "links_kept", "safe"],
                total,
                strict=True,
            )
        ) | {"unsafe": unsafe}
    return result


def per_kb(fn: Callable[[], object], size: int, loops: int = 200) -> float:
    best = float("inf")
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        best = min(best, (time.perf_counter() - t0) / loops)
    return best * 1e6 / (size / 1024)


def speed(dompurify: Iterable[dict[str, Any]]) -> dict[str, float]:
    cfg = CONFIGS["default"]
    prose = ("The quick brown fox jumps over the lazy dog; agents answer questions. " * 16)[:1024]
    ansi = ("\x1b[1;31mERROR\x1b[0m build failed at step 3, see log\n" * 24)[:1024]
    unit = '<p>Report <b>ready</b>: <a href="/r/1" rel="noopener noreferrer">open</a></p>'
    canonical_html = unit * 13  # exactly what nh3 would write: left as it is
    allowlisted_html = unit.replace('"', "'").replace("<b>", "<B>") * 13  # re-serialised by nh3
    hostile_html = "".join(r["payload"] for r in dompurify)[:4096]
    md_links = (
        "See [the docs](https://docs.example/a) and ![chart](https://img.example/c.png).\n" * 14
    )[:1024]
    table = ("id,name,amount\n1,alice,=SUM(A1:A9)\n2,bob,-12.5\n" * 24)[:1024]
    cases = {
        "plain ASCII (fast path)": (prose, "text/plain"),
        "plain with ANSI escapes": (ansi, "text/plain"),
        "HTML, canonical and allowlisted": (canonical_html, "text/html"),
        "HTML, allowlisted, other quoting": (allowlisted_html, "text/html"),
        "HTML, DOMPurify fixtures": (hostile_html, "text/html"),
        "markdown prose (fast path)": (prose, "text/markdown"),
        "markdown with links/images": (md_links, "text/markdown"),
        "CSV with formulas": (table, "text/csv"),
    }
    figures = {}
    print("\n## speed (best of 7, µs per KB of text)\n")
    print("| input | µs/KB |")
    print("|---|---|")
    for name, (text, mode) in cases.items():
        loops = 20000 if "fast path" in name else 200
        figures[name] = per_kb(partial(sanitize_text, text, mode, cfg), len(text), loops)
        print(f"| {name} | {figures[name]:.1f} |")
    para = (
        "Agents answered the question, and the summary is below. " * 6
        + "Sources: [report](https://docs.example/r).\n\n"
    )
    streams = {
        "prose paragraphs with a link each": (para * 24)[:8192],
        "one 8 KB paragraph, links on every line": (md_links * 8)[:8192],
    }
    for name, doc in streams.items():
        figures[f"stream: {name}"] = stream_cost(doc)
        print(
            f"| markdown stream, {name}: µs per 16-byte chunk | {figures[f'stream: {name}']:.0f} |"
        )
    return figures


def stream_cost(doc: str) -> float:
    guard = SanitizeGuard(SanitizeGuardConfig(default_mode="text/markdown"))
    chunks = [doc[i : i + 16] for i in range(0, len(doc), 16)]
    ctx = RequestContext("bench", "agent", "SendStreamingMessage", {})
    coro_events = [
        {
            "artifactUpdate": {
                "taskId": "t",
                "contextId": "c",
                "append": i > 0,
                "artifact": {"artifactId": "a", "parts": [{"text": c}]},
            }
        }
        for i, c in enumerate(chunks)
    ]
    t0 = time.perf_counter()
    for event in coro_events:
        step = guard.on_stream_event(ctx, event)  # never awaits: drive it without a loop
        with contextlib.suppress(StopIteration):
            step.send(None)
    return (time.perf_counter() - t0) * 1e6 / len(chunks)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--corpora", type=Path, default=Path(__file__).resolve().parents[2] / "shared/corpora"
    )
    ap.add_argument("--json", action="store_true", help="print one JSON line at the end")
    ap.add_argument("-v", "--verbose", action="store_true", help="list what changed meaning")
    args = ap.parse_args(argv)
    base = args.corpora / "sanitize"
    if html5lib is None:
        print("warning: html5lib is not installed; checking with html.parser only", file=sys.stderr)
    dompurify = read(base / "dompurify.jsonl")
    out = {
        "dompurify": eval_dompurify(dompurify, args.verbose),
        "commonmark": eval_commonmark(read(base / "commonmark.jsonl"), args.verbose),
        "speed": speed(dompurify),
    }
    if args.json:
        print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
