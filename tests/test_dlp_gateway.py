"""C19 DLP end to end: a real gateway on loopback between a client and recording agents."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest_asyncio

from tests.conftest import TIMEOUT, RunningGateway
from tests.helpers import gateway_with_agents
from tests.upstreams import RecordingAgent, SteppedStreamAgent

V10 = {"A2A-Version": "1.0"}
CARD = "4111 1111 1111 1111"
SSN = "536-22-8841"
AWS_KEY = "AKIAZ7Q4K2MZRT3XW6PB"  # the shape of an AWS access key id; not a real key
TASK = {"task": {"id": "t1", "contextId": "c1", "status": {"state": "TASK_STATE_WORKING"}}}


class Env:
    def __init__(self, gateway: RunningGateway, agents: dict[str, Any]) -> None:
        self.gateway, self.url = gateway, gateway.url
        self.rec: RecordingAgent = agents["rec"]
        self.strict: RecordingAgent = agents["strict"]
        self.stepped: SteppedStreamAgent = agents["stepped"]


@pytest_asyncio.fixture
async def env(tmp_path: Any) -> AsyncIterator[Env]:
    strict = {
        "actions": {"US_SSN": "block", "SECRET": "block", "EMAIL_ADDRESS": "hash"},
        "directions": {"requests": True},
    }
    async with gateway_with_agents(
        tmp_path,
        "rec",
        "strict",
        guards={"dlp": {"hmac_key_path": str(tmp_path / "dlp.key")}},
        guard_overrides=[{"agents": ["strict"], "guards": {"dlp": strict}}],
    ) as (gateway, agents):
        yield Env(gateway, agents)


def reply(text: str) -> dict[str, Any]:
    return {"message": {"messageId": "r1", "role": "ROLE_AGENT", "parts": [{"text": text}]}}


def rpc(text: str = "hello", method: str = "SendMessage") -> dict[str, Any]:
    message = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": text}]}
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": {"message": message}}


async def post(url: str, body: Any) -> Any:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http,
        http.post(url, json=body, headers=V10) as resp,
    ):
        return await resp.json(content_type=None)


async def stream(url: str, body: Any) -> list[Any]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http,
        http.post(url, json=body, headers=V10) as resp,
    ):
        return [orjson.loads(line[5:]) async for line in resp.content if line.startswith(b"data:")]


def text_of(answer: Any) -> str:
    return str(answer["result"]["message"]["parts"][0]["text"])


def chunk(text: str, last: bool = False, append: bool = True) -> dict[str, Any]:
    art = {"artifactId": "a", "parts": [{"text": text}]}
    update = {"taskId": "t1", "contextId": "c1", "artifact": art, "append": append}
    return {"artifactUpdate": {**update, "lastChunk": last}}


async def test_response_card_ssn_and_aws_key_are_redacted(env: Env) -> None:
    """An agent reply carrying a card number, an SSN and an AWS key reaches the client redacted."""
    env.rec.reply = reply(f"Card {CARD}, SSN {SSN}, key {AWS_KEY}. Done.")
    out = text_of(await post(f"{env.url}/agents/rec", rpc()))
    assert out == (
        "Card [REDACTED:CREDIT_CARD], SSN [REDACTED:US_SSN], key [REDACTED:SECRET]. Done."
    )


async def test_data_parts_and_task_artifacts_are_scanned(env: Env) -> None:
    """Strings inside data parts and task artifacts are redacted too, keys and numbers kept."""
    env.rec.reply = {
        "task": {
            "id": "t9",
            "contextId": "c9",
            "status": {"state": "TASK_STATE_COMPLETED"},
            "artifacts": [
                {"artifactId": "x", "parts": [{"data": {"card": CARD, "n": 4111, "ok": "fine"}}]}
            ],
        }
    }
    answer = await post(f"{env.url}/agents/rec", rpc())
    data = answer["result"]["task"]["artifacts"][0]["parts"][0]["data"]
    assert data == {"card": "[REDACTED:CREDIT_CARD]", "n": 4111, "ok": "fine"}


async def test_block_configured_type_denies(env: Env) -> None:
    """A type configured to block refuses the whole response with -32093 and the rule id."""
    env.strict.reply = reply(f"the key is {AWS_KEY}")
    answer = await post(f"{env.url}/agents/strict", rpc())
    assert answer["error"]["code"] == -32093
    meta = answer["error"]["data"][0]["metadata"]
    assert meta["guard"] == "dlp"
    assert meta["rule"] == "aws_access_key"
    assert AWS_KEY not in orjson.dumps(answer).decode()


async def test_benign_lookalikes_pass_untouched(env: Env) -> None:
    """Order numbers, versions, UUIDs and timestamps reach the client exactly as sent."""
    text = (
        "Order 4111111111111112 (v2.14.3, build 10.0.19045.2965), request "
        "123e4567-e89b-12d3-a456-426614174000 at 2024-03-15T10:22:33Z, ref 555-0199."
    )
    env.rec.reply = reply(text)
    assert text_of(await post(f"{env.url}/agents/rec", rpc())) == text


async def test_hash_action_is_stable_across_responses(env: Env) -> None:
    """The same email hashes to the same HMAC tag in two responses (correlation)."""
    env.strict.reply = reply("contact ana.lima@example.org")
    first = text_of(await post(f"{env.url}/agents/strict", rpc()))
    second = text_of(await post(f"{env.url}/agents/strict", rpc()))
    assert first == second
    assert first.startswith("contact [EMAIL_ADDRESS:hmac:")
    assert "ana.lima" not in first


async def test_requests_scanned_only_when_enabled(env: Env) -> None:
    """Requests are left alone by default; with requests on, a blocked type never reaches the
    agent, and a redacted one reaches it redacted."""
    await post(f"{env.url}/agents/rec", rpc(f"my SSN is {SSN}"))
    assert env.rec.requests[-1][1]["params"]["message"]["parts"][0]["text"] == f"my SSN is {SSN}"
    seen = len(env.strict.requests)
    denied = await post(f"{env.url}/agents/strict", rpc(f"my SSN is {SSN}"))
    assert denied["error"]["code"] == -32093
    assert len(env.strict.requests) == seen
    await post(f"{env.url}/agents/strict", rpc(f"card {CARD}"))
    sent = env.strict.requests[-1][1]["params"]["message"]["parts"][0]["text"]
    assert sent == "card [REDACTED:CREDIT_CARD]"


async def test_card_split_over_streamed_chunks_is_redacted(env: Env) -> None:
    """A card number split across two appended artifact chunks never reaches the client."""
    env.stepped.events = [
        TASK,
        chunk("Your card 4111 11", append=False),
        chunk("11 1111 1111 is on file"),
        chunk(".", last=True),
    ]
    env.stepped.release(4)
    got = await stream(f"{env.url}/agents/stepped", rpc("go", "SendStreamingMessage"))
    texts = [e["result"]["artifactUpdate"]["artifact"]["parts"][0]["text"] for e in got[1:]]
    assert "".join(texts) == "Your card [REDACTED:CREDIT_CARD] is on file."
    assert all("4111" not in t and "1111" not in t for t in texts)


async def test_huge_agent_output_is_bounded(env: Env) -> None:
    """A megabyte of digit-heavy output is scanned within the timeout and redacted correctly."""
    filler = "12 34-56 7.8 " * 60_000
    env.rec.reply = reply(filler + CARD)
    out = text_of(await post(f"{env.url}/agents/rec", rpc()))
    assert out.endswith("[REDACTED:CREDIT_CARD]")
    assert len(out) > len(filler)


async def test_artifact_without_last_chunk_keeps_its_prose(env: Env) -> None:
    """A whole artifact sent without lastChunk, ending in words, reaches the client in full."""
    done = {"statusUpdate": {"taskId": "t1", "contextId": "c1",
                             "status": {"state": "TASK_STATE_COMPLETED"}}}  # fmt: skip
    env.stepped.events = [TASK, chunk("The report is ready, see the summary", append=False), done]
    env.stepped.release(3)
    got = await stream(f"{env.url}/agents/stepped", rpc("go", "SendStreamingMessage"))
    art = got[1]["result"]["artifactUpdate"]["artifact"]
    assert art["parts"][0]["text"] == "The report is ready, see the summary"
    assert got[2]["result"] == done
