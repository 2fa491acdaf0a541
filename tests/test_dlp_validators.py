"""C19 DLP, unit level: validators, recognizers, look-alikes, actions and stream hold-back."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from maestro_gateway.context import RequestContext
from maestro_gateway.guards._dlp_actions import load_hmac_key, mask
from maestro_gateway.guards._dlp_validators import (
    card_brand,
    is_card,
    is_iban,
    is_ip,
    is_jwt,
    is_nino,
    is_us_ssn,
    looks_like_secret,
    luhn_ok,
)
from maestro_gateway.guards._dlp_walk import Stream, Walk, hold_start
from maestro_gateway.guards.dlp import Dlp, DlpGuard, DlpGuardConfig, TooLarge
from maestro_gateway.types import VerdictKind

AWS_KEY = "AKIAZ7Q4K2MZRT3XW6PB"  # shape of an AWS access key id; not a real key


def dlp(tmp_path: Path, **cfg: object) -> Dlp:
    return Dlp(DlpGuardConfig.model_validate({"hmac_key_path": str(tmp_path / "k"), **cfg}))


def types(d: Dlp, text: str) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in d.scan_text(text).findings]


def _b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def test_luhn_and_card_ranges() -> None:
    """Luhn holds for known test PANs; a card needs an issued IIN range and a valid length."""
    assert luhn_ok("4111111111111111")
    assert not luhn_ok("4111111111111112")
    assert card_brand("4111111111111111") == "visa"
    assert card_brand("378282246310005") == "amex"
    assert card_brand("5500000000000004") == "mastercard"
    assert is_card("4111 1111 1111 1111")
    assert is_card("5500-0000-0000-0004")
    assert not is_card("9111111111111111")  # no scheme starts with 9
    assert not is_card("1234567812345670")  # Luhn-valid, but not an issued range
    assert not is_card("0000000000000000")


def test_iban_mod97() -> None:
    """IBANs are checked by country length and mod-97; one changed digit fails."""
    assert is_iban("GB82WEST12345698765432")
    assert is_iban("DE89370400440532013000")
    assert not is_iban("GB82WEST12345698765433")
    assert not is_iban("XX82WEST12345698765432")


def test_ssn_rules() -> None:
    """SSA rules: no area 000/666/9xx, group 00, serial 0000, nor published example numbers."""
    assert is_us_ssn("536-22-8841")
    assert is_us_ssn("536228841")
    for bad in ("000-12-3456", "666-12-3456", "912-12-3456", "536-00-1234", "536-22-0000",
                "078-05-1120", "536-22 8841"):  # fmt: skip
        assert not is_us_ssn(bad), bad


def test_nino_and_ip() -> None:
    """UK NINO prefix rules; IP addresses by ipaddress with no leading-zero octets."""
    assert is_nino("AB 12 34 56 C")
    assert not is_nino("GB123456A")
    assert not is_nino("DA123456A")
    assert is_ip("192.168.10.4")
    assert is_ip("2001:db8::1")
    assert not is_ip("300.1.1.1")
    assert not is_ip("01.2.3.4")
    assert not is_ip("12:34:56")


def test_jwt_structure() -> None:
    """A JWT needs a JSON header with alg and a JSON object payload, not just three dots."""
    token = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64({'sub': 'u1', 'iat': 1})}.c2lnbmF0dXJl"
    assert is_jwt(token)
    assert not is_jwt("eyJhbGciOi.eyJzdWIi.abc")
    assert not is_jwt(f"{_b64({'typ': 'JWT'})}.{_b64({'sub': 1})}.sig")


def test_secret_lookalikes_are_rejected() -> None:
    """Placeholders, variables, identifiers and UUIDs are not credentials; random values are."""
    assert looks_like_secret("Zx9kQ2mP7vL4nR8tY3wB6cF1")
    uuid = "123e4567-e89b-12d3-a456-426614174000"
    for fake in ("xxxxxxxxxxxxxxxx", "${API_TOKEN}", "your_api_key_here", "getSecretValue",
                 uuid, "<insert-token>", "changeme12345"):  # fmt: skip
        assert not looks_like_secret(fake), fake


def test_structured_pii_found_with_exact_spans(tmp_path: Path) -> None:
    """Cards, IBAN, SSN, email, phone, IP and a driver licence in context are found, spans exact."""
    d = dlp(tmp_path)
    text = (
        "Card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00, SSN: 536-22-8841, "
        "mail ana.lima@example.org, call +44 20 7946 0958, from 203.0.113.9. "
        "Driver's license number is D1234567."
    )
    assert types(d, text) == [
        ("CREDIT_CARD", "4111 1111 1111 1111"),
        ("IBAN_CODE", "DE89 3704 0044 0532 0130 00"),
        ("US_SSN", "536-22-8841"),
        ("EMAIL_ADDRESS", "ana.lima@example.org"),
        ("PHONE_NUMBER", "+44 20 7946 0958"),
        ("IP_ADDRESS", "203.0.113.9"),
        ("US_DRIVER_LICENSE", "D1234567"),
    ]


def test_dates_of_birth_only_in_context(tmp_path: Path) -> None:
    """A date is a DATE_TIME finding only near birth words."""
    d = dlp(tmp_path)
    assert types(d, "She was born on 12/03/1985.") == [("DATE_TIME", "12/03/1985")]
    assert types(d, "The release shipped on 12/03/1985.") == []


def test_benign_lookalikes_untouched(tmp_path: Path) -> None:
    """Order numbers, versions, UUIDs, timestamps, hashes and prose give no findings."""
    d = dlp(tmp_path)
    text = (
        "Order #4111111111111112 shipped. Upgrade to version 10.2.3.4 (build 10.0.19045.2965). "
        "Request id 123e4567-e89b-12d3-a456-426614174000 at 2024-03-15T10:22:33Z, "
        "commit 9fceb02d0ae598e95dc970b74767f19372d61af8, ticket 123-4567, "
        "token count: 4096, the password field is required, api_key=${API_KEY}."
    )
    result = d.scan_text(text)
    assert result.findings == ()
    assert result.verdict == "allow"
    assert result.output == text


def test_secrets_found_by_kind(tmp_path: Path) -> None:
    """Cloud keys, tokens, key blocks, JWTs, URL passwords and key-context values are SECRET."""
    d = dlp(tmp_path)
    jwt = f"{_b64({'alg': 'HS256'})}.{_b64({'sub': 'svc', 'exp': 9})}.Zm9vYmFyYmF6cXV4"
    pem = (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAq7w1\nZ2hp\n-----END RSA PRIVATE KEY-----"
    )
    cases = {
        "aws_access_key": f"aws key {AWS_KEY} here",
        "github_token": "token ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A" + " ok",
        "slack_token": "xoxb-2045871234-5591827364-Qa7Zk3Lp9Xm2Rt6Vn1Bc8Df4",
        "stripe_key": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
        "private_key": pem,
        "jwt": f"Authorization token {jwt}",
        "connection_string": "postgres://app:Sx7pQ2vL9k@db.internal:5432/orders",
        "high_entropy": 'config = {"api_key": "Zx9kQ2mP7vL4nR8tY3wB6cF1"}',
    }
    for rule, text in cases.items():
        found = d.scan_text(text).findings
        assert [f.rule for f in found if f.type == "SECRET"] == [rule], (rule, found)


def test_actions_redact_mask_hash_block(tmp_path: Path) -> None:
    """Per-type actions: redact tag, mask keeps last 4, hash is an HMAC tag, block verdict."""
    text = "card 4111-1111-1111-1111 mail bo@example.com ssn 536-22-8841"
    cfg = {"actions": {"CREDIT_CARD": "mask", "EMAIL_ADDRESS": "hash", "US_SSN": "redact"}}
    out = dlp(tmp_path, **cfg).scan_text(text)
    assert out.verdict == "redact"
    assert out.output is not None
    assert "****-****-****-1111" in out.output
    assert "[REDACTED:US_SSN]" in out.output
    assert "[EMAIL_ADDRESS:hmac:" in out.output
    assert "bo@example.com" not in out.output
    blocked = dlp(tmp_path, actions={"US_SSN": "block"}).scan_text(text)
    assert blocked.verdict == "block"
    assert blocked.details["rules"] == ["ssn_dashed"]
    assert mask("AB12-CD34") == "****-CD34"


def test_hmac_hash_is_stable_and_keyed(tmp_path: Path) -> None:
    """The same value hashes to the same tag across scanners sharing the key file, not others."""
    text = "write to bo@example.com"
    first = dlp(tmp_path, default_action="hash").scan_text(text).output
    again = dlp(tmp_path, default_action="hash").scan_text(text).output
    assert first == again
    assert first is not None
    assert first.startswith("write to [EMAIL_ADDRESS:hmac:")
    key_file = tmp_path / "k"
    assert key_file.stat().st_mode & 0o077 == 0
    assert len(load_hmac_key(str(key_file))) == 32
    other = Dlp(DlpGuardConfig(default_action="hash", hmac_key_path=str(tmp_path / "other")))
    assert other.scan_text(text).output != first


def test_config_refuses_unknown_types_and_rules() -> None:
    """Unknown entity types or secret rule ids in the config are errors, not silent no-ops."""
    with pytest.raises(ValidationError):
        DlpGuardConfig.model_validate({"types": ["CREDIT_CARDS"]})
    with pytest.raises(ValidationError):
        DlpGuardConfig.model_validate({"actions": {"aws_key": "block"}})
    DlpGuardConfig.model_validate({"actions": {"aws_access_key": "block", "SECRET": "hash"}})


def test_hold_start_keeps_what_could_grow() -> None:
    """The held tail is an identifier-like last token plus the digit groups before it; prose
    words are not held."""
    assert hold_start("my card is 4111 1111 ", 64) == len("my card is ")
    assert hold_start("write to ana.lima@exa", 64) == len("write to ")
    assert hold_start("all done. ", 64) == len("all done. ")
    assert hold_start("call +44 20 ", 64) == len("call ")
    assert hold_start("x" * 100, 16) == 100
    assert hold_start("key AKIA" + "Z" * 100, 16) == 92
    assert hold_start("the answer is here", 64) == len("the answer is here")


def test_split_card_is_redacted_across_chunks(tmp_path: Path) -> None:
    """A card number split over appended chunks is held back and redacted when complete."""
    walk = Walk(dlp(tmp_path), {})
    state = Stream()
    sent = [walk.stream_text(state, c, False) for c in ("Pay with 4111 11", "11 1111 1111 now")]
    sent.append(walk.stream_text(state, " please", True))
    assert "".join(sent) == "Pay with [REDACTED:CREDIT_CARD] now please"
    assert "4111" not in sent[0]


def test_context_in_an_earlier_chunk_counts(tmp_path: Path) -> None:
    """A context word already sent still scores the number that follows in a later chunk."""
    walk = Walk(dlp(tmp_path), {})
    state = Stream()
    sent = [
        walk.stream_text(state, "my SSN is ", False),
        walk.stream_text(state, "536228841", True),
    ]
    assert "".join(sent) == "my SSN is [REDACTED:US_SSN]"


def test_huge_text_is_bounded(tmp_path: Path) -> None:
    """Digit-heavy megabyte input scans in bounded time; above max_text_chars it is refused."""
    d = dlp(tmp_path)
    text = ("1-2 3.4 " * 40_000) + "4111 1111 1111 1111"
    assert d.scan_text(text).findings[-1].type == "CREDIT_CARD"
    with pytest.raises(TooLarge, match="exceeds max_text_chars"):
        dlp(tmp_path, max_text_chars=1000).scan_text(text)


def test_names_and_places_are_opt_in(tmp_path: Path) -> None:
    """With detect_names, known names and countries are PERSON/LOCATION; off, nothing; common
    capitalised words at a sentence start are not names."""
    text = "Yesterday Maria Schmidt flew from Lisbon to Canada. Will it rain?"
    assert [t for t, _ in types(dlp(tmp_path), text)] == []
    found = types(dlp(tmp_path, detect_names=True), text)
    assert ("PERSON", "Maria Schmidt") in found
    assert ("LOCATION", "Canada") in found
    assert all(value != "Will" for _, value in found)


def test_many_findings_resolve_in_linear_time(tmp_path: Path) -> None:
    """Tens of thousands of findings in one text resolve quickly (no quadratic overlap check)."""
    text = "card 4111 1111 1111 1111; " * 20_000
    started = time.perf_counter()
    result = dlp(tmp_path).scan_text(text)
    assert len(result.findings) == 20_000
    assert time.perf_counter() - started < 15  # quadratic resolution took minutes


async def test_stream_block_denies_the_event_that_completes_the_secret(tmp_path: Path) -> None:
    """With SECRET set to block, the event completing a split key is refused with -32093."""
    guard = DlpGuard(DlpGuardConfig(actions={"SECRET": "block"}, hmac_key_path=str(tmp_path / "k")))
    ctx = RequestContext("r", "agent", "SendStreamingMessage", {})

    def event(text: str, append: bool) -> dict[str, object]:
        art = {"artifactId": "a", "parts": [{"text": text}]}
        return {"artifactUpdate": {"taskId": "t", "contextId": "c", "artifact": art,
                                   "append": append}}  # fmt: skip

    first = await guard.on_stream_event(ctx, event("key " + AWS_KEY[:10], False))
    assert first.kind is VerdictKind.MUTATE  # the partial key is held back, not sent
    assert AWS_KEY[:4] not in str(first.payload)
    second = await guard.on_stream_event(ctx, event(AWS_KEY[10:] + " ok", True))
    assert second.kind is VerdictKind.DENY
    assert second.code == -32093
    assert second.details["rule"] == "aws_access_key"
