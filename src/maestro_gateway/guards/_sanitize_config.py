"""The C23 output-sanitisation configuration and its compiled rules (``guards.sanitize``)."""

from __future__ import annotations

import re
from typing import Literal

import nh3
from pydantic import BaseModel, ConfigDict, Field, field_validator

from maestro_gateway.guards._sanitize_modes import Rules, UrlPolicy, build_rules

__all__ = [
    "FORBIDDEN_TAGS",
    "OutputMode",
    "SanitizeGuardConfig",
    "SanitizeHtmlConfig",
    "SanitizeMarkdownConfig",
    "compile_rules",
]

OutputMode = Literal["text/plain", "text/markdown", "text/html", "text/csv", "application/json"]
_FORBIDDEN = """script style iframe frame frameset object embed applet param form input button
    textarea select option optgroup keygen isindex base meta link svg math template noscript
    noembed noframes xmp plaintext listing title portal fencedframe"""
FORBIDDEN_TAGS = frozenset(_FORBIDDEN.split())
"""Tags that run code, load content or change how the browser parses what follows."""
_FORBIDDEN_ATTR = re.compile(
    r"on.*|style|srcdoc|srcset|rel|formaction|action|ping|poster|background|data|codebase"
    r"|dynsrc|lowsrc|xlink:.*|xmlns.*|http-equiv|is|slot|popover.*"
)
_DOMAIN = re.compile(r"\*|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SanitizeHtmlConfig(_Model):
    """The HTML allowlist, for text/html parts and raw HTML inside markdown."""

    allowed_tags: list[str] | None = Field(
        None, description="Default: nh3's conservative set (no script, iframe, form, svg …)."
    )
    allowed_attributes: dict[str, list[str]] | None = Field(
        None, description='Per tag, "*" for every tag. Default: nh3\'s set, lang and title.'
    )

    @field_validator("allowed_tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (bad := sorted({t.lower() for t in value} & FORBIDDEN_TAGS)):
            raise ValueError(f"tags that run code or load content cannot be allowed: {bad}")
        return None if value is None else [t.lower() for t in value]

    @field_validator("allowed_attributes")
    @classmethod
    def _attributes(cls, value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        names = {a.lower() for attrs in (value or {}).values() for a in attrs}
        if bad := sorted(a for a in names if _FORBIDDEN_ATTR.fullmatch(a)):
            raise ValueError(f"attributes that run code or load content cannot be allowed: {bad}")
        return value


class SanitizeMarkdownConfig(_Model):
    """Where links and images may point (markdown, and href/src in HTML)."""

    allowed_link_domains: list[str] = Field(
        [], description='Domains (and their subdomains) links may point to; "*" for any.'
    )
    allowed_image_domains: list[str] = Field(
        [], description='Domains images may load from (zero-click exfiltration); "*" for any.'
    )
    on_disallowed: Literal["remove", "defang"] = Field(
        "remove", description="remove: keep the link text / alt text; defang: add hxxps[:]//…"
    )
    allow_relative_urls: bool = Field(True, description="Relative URLs stay on the UI's origin.")

    @field_validator("allowed_link_domains", "allowed_image_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        out = []
        for item in value:
            d = item.strip().lower().rstrip(".").removeprefix("*.")
            try:
                d = d if d == "*" else d.encode("idna").decode("ascii")
            except UnicodeError:
                d = ""
            if not _DOMAIN.fullmatch(d):
                raise ValueError(f"{item!r} is not a domain name")
            out.append(d)
        return out


class SanitizeGuardConfig(_Model):
    """C23 output sanitisation."""

    enabled: bool = True
    fail_mode: Literal["fail_closed", "fail_open"] = "fail_closed"
    default_mode: OutputMode = Field("text/plain", description="Parts without a mediaType.")
    force_mode: OutputMode | None = Field(
        None, description="Every text part, whatever its mediaType (the UI decides rendering)."
    )
    html: SanitizeHtmlConfig = SanitizeHtmlConfig()
    markdown: SanitizeMarkdownConfig = SanitizeMarkdownConfig()
    csv_formula: bool = Field(True, description="Prefix ' to spreadsheet formula cells.")
    inert_code_blocks: bool = Field(False, description="Markdown fences get the info 'text'.")
    scan_data_parts: bool = Field(True, description="Sanitise strings inside data parts.")


_COMPILED: dict[int, tuple[SanitizeGuardConfig, Rules]] = {}


def compile_rules(cfg: SanitizeGuardConfig) -> Rules:
    """The compiled rules of a configuration (cached per configuration object)."""
    hit = _COMPILED.get(id(cfg))
    if hit is not None and hit[0] is cfg:
        return hit[1]
    md, html = cfg.markdown, cfg.html
    policy = UrlPolicy(
        frozenset(md.allowed_link_domains),
        frozenset(md.allowed_image_domains),
        md.allow_relative_urls,
    )
    tags = frozenset(nh3.ALLOWED_TAGS if html.allowed_tags is None else html.allowed_tags)
    attrs = html.allowed_attributes
    if attrs is None:
        attrs = {k: list(v) for k, v in nh3.ALLOWED_ATTRIBUTES.items()} | {"*": ["lang", "title"]}
    attributes = {k.lower(): frozenset(a.lower() for a in v) for k, v in attrs.items()}
    defang = md.on_disallowed == "defang"
    rules = build_rules(
        tags - FORBIDDEN_TAGS, attributes, policy, defang, cfg.csv_formula, cfg.inert_code_blocks
    )
    if len(_COMPILED) >= 64:
        _COMPILED.clear()
    _COMPILED[id(cfg)] = (cfg, rules)
    return rules
