"""The guard pipeline: order, verdicts, per-agent/per-skill settings, fail-closed."""

from __future__ import annotations

from typing import Any

from maestro_gateway.config import parse_config
from maestro_gateway.context import RequestContext
from maestro_gateway.pipeline import Pipeline
from maestro_gateway.types import ALLOW, JSON, FailMode, Verdict, VerdictKind


class Exploding:
    """A guard that always raises."""

    name = "exploding"

    def __init__(self, fail_mode: FailMode) -> None:
        self.fail_mode = fail_mode

    async def on_request(self, ctx: RequestContext) -> Verdict:
        raise RuntimeError("boom")

    async def on_response(self, ctx: RequestContext, payload: JSON) -> Verdict:
        raise RuntimeError("boom")

    async def on_stream_event(self, ctx: RequestContext, event: JSON) -> Verdict:
        raise RuntimeError("boom")


class Upper:
    """A guard that upper-cases the payload's text."""

    name = "upper"
    fail_mode = FailMode.FAIL_CLOSED

    async def on_request(self, ctx: RequestContext) -> Verdict:
        return ALLOW

    async def on_response(self, ctx: RequestContext, payload: JSON) -> Verdict:
        return Verdict.mutate({"text": payload["text"].upper()}, self.name)

    async def on_stream_event(self, ctx: RequestContext, event: JSON) -> Verdict:
        return await self.on_response(ctx, event)


def ctx(agent: str = "echo", skill: str | None = None) -> RequestContext:
    params = {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}]}}
    return RequestContext("r", agent, "SendMessage", params, skill_id=skill)


def pipeline_with(*guards: Any) -> Pipeline:
    p = Pipeline(parse_config({}))
    p._cache[("echo", None)] = (p.settings("echo"), list(guards))
    return p


async def test_guard_exception_denies_by_default() -> None:
    """A guard that raises denies the request (fail closed), with a clear reason."""
    v = await pipeline_with(Exploding(FailMode.FAIL_CLOSED)).request(ctx())
    assert v.kind is VerdictKind.DENY
    assert "fail-closed" in v.reason
    assert v.status == 503


async def test_guard_exception_on_response_denies() -> None:
    """A guard failing on a response stops the response too."""
    v = await pipeline_with(Exploding(FailMode.FAIL_CLOSED)).response(ctx(), {"text": "x"})
    assert v.kind is VerdictKind.DENY


async def test_fail_open_is_explicit() -> None:
    """Only a guard configured fail-open lets the request through when it fails."""
    v = await pipeline_with(Exploding(FailMode.FAIL_OPEN)).request(ctx())
    assert v.kind is VerdictKind.ALLOW


async def test_mutation_reaches_later_guards_and_result() -> None:
    """A response mutation becomes the payload returned by the pipeline."""
    v = await pipeline_with(Upper()).response(ctx(), {"text": "secret"}, stream=True)
    assert v.kind is VerdictKind.MUTATE
    assert v.payload == {"text": "SECRET"}


async def test_default_pipeline_validates() -> None:
    """The default pipeline refuses a request that breaks the A2A schema."""
    bad = RequestContext("r", "echo", "SendMessage", {"message": {"parts": "nope"}})
    v = await Pipeline(parse_config({})).request(bad)
    assert v.kind is VerdictKind.DENY


def test_overrides_apply_per_agent_and_skill() -> None:
    """A guard override matches its agents and skills only; later overrides win."""
    cfg = parse_config(
        {
            "guard_overrides": [
                {"agents": ["big"], "guards": {"validate": {"max_body_bytes": 5000}}},
                {"skills": ["upload"], "guards": {"validate": {"max_body_bytes": 9000}}},
                {"agents": ["off"], "guards": {"validate": {"enabled": False}}},
            ]
        }
    )
    p = Pipeline(cfg)
    assert p.settings("echo").validate_.max_body_bytes == 1024 * 1024
    assert p.settings("big").validate_.max_body_bytes == 5000
    assert p.settings("big", "upload").validate_.max_body_bytes == 9000
    content = ["waf", "firewall", "approval", "dlp", "sanitize"]
    assert [g.name for g in p.guards("off", None)] == ["enforce", "authz", *content]
    assert [g.name for g in p.guards("echo", None)] == ["enforce", "validate", "authz", *content]
