"""C1 input validation: each attack below is stopped by the validate guard."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from maestro_gateway.config import SsrfConfig, ValidateGuardConfig
from maestro_gateway.context import RequestContext
from maestro_gateway.guards._ssrf import SsrfError, SsrfPolicy
from maestro_gateway.guards.validate import ValidateGuard, check_shape
from maestro_gateway.types import VerdictKind


def message(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"message": {"messageId": "m1", "role": "ROLE_USER", "parts": list(parts)}}


def ctx(params: Any, method: str = "SendMessage", size: int = 100) -> RequestContext:
    return RequestContext("r1", "echo", method, params, body_size=size)


async def verdict(params: Any, cfg: ValidateGuardConfig | None = None, method: str = "SendMessage"):  # type: ignore[no-untyped-def]
    return await ValidateGuard(cfg or ValidateGuardConfig()).on_request(ctx(params, method))


async def test_valid_message_is_allowed() -> None:
    """A plain, well-formed SendMessage passes unchanged."""
    assert (await verdict(message({"text": "hello"}))).kind is VerdictKind.ALLOW


async def test_schema_violation_is_denied_with_path() -> None:
    """A part with two kinds breaks the A2A schema and is refused, naming the field."""
    v = await verdict(message({"text": "a", "url": "https://example.com"}))
    assert v.kind is VerdictKind.DENY
    assert "parts[0]" in v.reason
    assert v.details["rule"] == "a2a-schema"


async def test_deep_nesting_is_denied() -> None:
    """A data part nested 100 levels deep breaks the depth limit."""
    deep: Any = "x"
    for _ in range(100):
        deep = {"a": deep}
    v = await verdict(message({"data": deep}))
    assert v.kind is VerdictKind.DENY
    assert v.details["rule"] == "json-limits"


async def test_element_count_is_bounded() -> None:
    """A data part with 20k elements breaks the element limit."""
    v = await verdict(message({"data": list(range(20_000))}))
    assert v.details["rule"] == "json-limits"


def test_check_shape_counts_keys_and_depth() -> None:
    """The shape check is exact at the boundary."""
    assert check_shape({"a": {"b": 1}}, 2, 100, 10) is None
    assert check_shape({"a": {"b": {"c": 1}}}, 2, 100, 10) is not None
    assert check_shape(["x" * 11], 5, 100, 10) is not None


async def test_too_many_parts() -> None:
    """More parts than allowed is refused."""
    cfg = ValidateGuardConfig(max_parts=2)
    v = await verdict(message(*({"text": str(i)} for i in range(3))), cfg)
    assert v.details["rule"] == "part-count"


async def test_oversized_part() -> None:
    """A text part above the per-part limit is refused."""
    cfg = ValidateGuardConfig(max_part_bytes=10)
    v = await verdict(message({"text": "x" * 11}), cfg)
    assert v.details["rule"] == "part-size"


async def test_body_size_per_skill() -> None:
    """A body above the (per-skill) limit is refused with HTTP 413."""
    guard = ValidateGuard(ValidateGuardConfig(max_body_bytes=50))
    v = await guard.on_request(ctx(message({"text": "x"}), size=51))
    assert (v.kind, v.status) == (VerdictKind.DENY, 413)


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("hello\x00world", "control-char"),
        ("bell\x07", "control-char"),
        ("caf\u00e9 \x9b", "control-char"),
        ("amount: \u202e0001\u202c", "bidi-override"),
        ("invoice \u2066evil\u2069", "bidi-override"),
        ("hi \U000e0069\U000e0067\U000e006e\U000e006f\U000e0072\U000e0065", "tag-char"),
    ],
)
async def test_hostile_characters_are_refused(text: str, rule: str) -> None:
    """Control, bidi-override and tag characters in text parts are refused."""
    v = await verdict(message({"text": text}))
    assert v.kind is VerdictKind.DENY
    assert v.details["rule"] == rule


async def test_hostile_characters_can_be_allowed() -> None:
    """With the checks switched off, the same text passes."""
    cfg = ValidateGuardConfig(reject_bidi_controls=False)
    assert (await verdict(message({"text": "a\u202eb"}), cfg)).kind is VerdictKind.ALLOW


async def test_newlines_and_tabs_are_fine() -> None:
    """Ordinary whitespace controls (TAB, LF, CR) are not refused."""
    assert (await verdict(message({"text": "a\tb\r\nc"}))).kind is VerdictKind.ALLOW


async def test_unicode_is_normalised() -> None:
    """Decomposed text is NFC-normalised and the request continues mutated."""
    params = message({"text": "cafe\u0301"})
    v = await verdict(copy.deepcopy(params))
    assert v.kind is VerdictKind.MUTATE
    assert v.payload["message"]["parts"][0]["text"] == "caf\u00e9"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/admin",
        "http://localhost:8080/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://10.0.0.5/",
        "http://2130706433/",
        "http://0.0.0.0/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "file:///etc/passwd",
        "gopher://example.com/",
        "http://user:pw@example.com/",
    ],
)
async def test_ssrf_urls_in_parts_are_refused(url: str) -> None:
    """URL parts pointing at internal, loopback, metadata or non-HTTP targets are refused."""
    v = await verdict(message({"url": url}))
    assert v.kind is VerdictKind.DENY
    assert v.details["rule"] == "ssrf"


async def test_ssrf_webhook_url_is_refused() -> None:
    """A push-notification webhook to the metadata service is refused."""
    params = {"taskId": "t1", "url": "http://169.254.169.254/hook"}
    v = await verdict(params, method="CreateTaskPushNotificationConfig")
    assert v.details["rule"] == "ssrf"
    send = message({"text": "hi"})
    send["configuration"] = {"taskPushNotificationConfig": {"url": "http://10.1.2.3/"}}
    assert (await verdict(send)).details["rule"] == "ssrf"


async def test_public_address_is_allowed() -> None:
    """A literal public address passes the SSRF check (no DNS needed)."""
    assert (await verdict(message({"url": "https://93.184.216.34/doc.pdf"}))).allowed


async def test_allowlisted_network() -> None:
    """An explicitly allowed network passes even though it is private."""
    cfg = ValidateGuardConfig(ssrf=SsrfConfig(allow_cidrs=["10.0.0.0/8"]))
    assert (await verdict(message({"url": "http://10.0.0.5/x"}), cfg)).allowed


async def test_unresolvable_host_is_refused() -> None:
    """A host that does not resolve is refused (fail closed), not passed through."""
    policy = SsrfPolicy(SsrfConfig())
    with pytest.raises(SsrfError):
        await policy.check("http://no-such-host.invalid/")
