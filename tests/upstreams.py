"""Small raw-ASGI upstream agents for gateway tests: one records what reaches it, one streams
under the test's control."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from maestro_gateway.testing.echo_agent import agent_card
from maestro_gateway.types import Receive, Scope, Send


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


class RecordingAgent:
    """Answers every SendMessage with a fixed reply (or ``reply``) and records the requests."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.requests: list[tuple[dict[str, str], Any]] = []
        self.reply: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":
            body = orjson.dumps(agent_card(self.base_url))
        else:
            request = orjson.loads(await _body(receive))
            headers = {k.decode(): v.decode() for k, v in scope["headers"]}
            self.requests.append((headers, request))
            result = self.reply or {
                "message": {"messageId": "r1", "role": "ROLE_AGENT", "parts": [{"text": "ok"}]}
            }
            body = orjson.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result})
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


class SteppedStreamAgent:
    """Streams events one at a time: each waits for the test to call ``release()``."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.gate = asyncio.Semaphore(0)
        self.events: list[dict[str, Any]] = []

    def release(self, n: int = 1) -> None:
        for _ in range(n):
            self.gate.release()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send(
                {"type": "http.response.body", "body": orjson.dumps(agent_card(self.base_url))}
            )
            return
        request = orjson.loads(await _body(receive))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        for event in self.events:
            await asyncio.wait_for(self.gate.acquire(), 20)
            data = orjson.dumps({"jsonrpc": "2.0", "id": request["id"], "result": event})
            await send(
                {
                    "type": "http.response.body",
                    "body": b"data: " + data + b"\n\n",
                    "more_body": True,
                }
            )
        await send({"type": "http.response.body", "body": b""})
