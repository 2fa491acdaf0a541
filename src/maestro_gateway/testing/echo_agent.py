"""A fast A2A 1.0 JSON-RPC echo agent (raw ASGI + orjson) for benchmarks and tests.

``POST /`` serves four methods:

- ``SendMessage`` -> ``{"message": {messageId, role: ROLE_AGENT, parts: [{text: <first text
  part of the request>}]}}`` (plus ``contextId`` when the request carried one);
- ``SendStreamingMessage`` -> SSE: a WORKING task, 5 ``artifactUpdate`` chunks whose texts
  concatenate to the echoed text (``append`` after the first, ``lastChunk`` on the fifth), then a
  COMPLETED ``statusUpdate``; each event is ``data: <JSON-RPC response>\\n\\n``;
- ``GetTask`` -> a canned COMPLETED task with the requested id; ``CancelTask`` -> the same task,
  CANCELED.

``GET /.well-known/agent-card.json`` serves a 1.0 card pointing at ``base_url``. A request
without ``A2A-Version`` is accepted (benchmark tools rarely send it); an explicit version other
than 1.x gets -32009 VersionNotSupported. Run it with
``python -m maestro_gateway.testing.echo_agent --host 127.0.0.1 --port 9001 [--workers 4]``.
"""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
ASGIMessage = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[ASGIMessage]]
Send = Callable[[ASGIMessage], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CARD_PATH = "/.well-known/agent-card.json"
STREAM_CHUNKS = 5
MAX_BODY = 4 * 1024 * 1024
BASE_URL_ENV = "MAESTRO_ECHO_AGENT_BASE_URL"

_JSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def agent_card(base_url: str) -> dict[str, Any]:
    """The echo agent's A2A 1.0 Agent Card."""
    skill = {
        "id": "echo",
        "name": "Echo",
        "description": "Returns the first text part of the message unchanged.",
        "tags": ["test", "echo"],
        "examples": ["hello"],
    }
    return {
        "name": "Maestro Echo Test Agent",
        "description": "Fast deterministic A2A 1.0 echo agent for benchmarks and tests.",
        "supportedInterfaces": [
            {"url": base_url.rstrip("/"), "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
        ],
        "version": "1.0.0",
        "capabilities": {"streaming": True, "pushNotifications": False, "extensions": []},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [skill],
    }


def _error(rid: Any, code: int, message: str, reason: str | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if reason is not None:
        info = {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": reason,
            "domain": "a2a-protocol.org",
        }
        err["data"] = [info]
    return {"jsonrpc": "2.0", "id": rid, "error": err}


def _ok(rid: Any, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "result": result}


def _first_text(message: dict[str, Any]) -> str:
    for part in message.get("parts") or ():
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            return str(part["text"])
    return ""


def _canned_task(task_id: str, state: str) -> dict[str, Any]:
    return {
        "id": task_id,
        "contextId": "echo-context",
        "status": {"state": state},
        "artifacts": [{"artifactId": "echo", "parts": [{"text": "canned"}]}],
        "history": [],
    }


def _stream_events(rid: Any, message: dict[str, Any]) -> list[bytes]:
    text = _first_text(message)
    task_id = uuid.uuid4().hex
    ctx = message.get("contextId") or uuid.uuid4().hex
    task = {"id": task_id, "contextId": ctx, "status": {"state": "TASK_STATE_WORKING"}}
    events: list[dict[str, Any]] = [{"task": task}]
    n = len(text)
    for i in range(STREAM_CHUNKS):
        piece = text[i * n // STREAM_CHUNKS : (i + 1) * n // STREAM_CHUNKS]
        update = {
            "taskId": task_id,
            "contextId": ctx,
            "artifact": {"artifactId": "echo", "parts": [{"text": piece}]},
            "append": i > 0,
            "lastChunk": i == STREAM_CHUNKS - 1,
        }
        events.append({"artifactUpdate": update})
    done = {"taskId": task_id, "contextId": ctx, "status": {"state": "TASK_STATE_COMPLETED"}}
    events.append({"statusUpdate": done})
    return [b"data: " + orjson.dumps(_ok(rid, ev)) + b"\n\n" for ev in events]


def _send_message(rid: Any, message: dict[str, Any]) -> dict[str, Any]:
    reply: dict[str, Any] = {
        "messageId": uuid.uuid4().hex,
        "role": "ROLE_AGENT",
        "parts": [{"text": _first_text(message)}],
    }
    if isinstance(message.get("contextId"), str):
        reply["contextId"] = message["contextId"]
    return _ok(rid, {"message": reply})


def _dispatch(body: Any, version: str | None) -> dict[str, Any] | list[bytes]:
    """A JSON-RPC response dict, or SSE frames for SendStreamingMessage."""
    if not isinstance(body, dict):
        return _error(None, -32600, "Invalid Request")
    rid = body.get("id")
    if isinstance(rid, bool) or not isinstance(rid, str | int | None):
        return _error(None, -32600, "Invalid Request")
    method = body.get("method")
    if body.get("jsonrpc") != "2.0" or not isinstance(method, str):
        return _error(rid, -32600, "Invalid Request")
    if version is not None and version.split(".", 1)[0] != "1":
        msg = f"A2A version {version!r} is not supported; expected 1.0"
        return _error(rid, -32009, msg, "VERSION_NOT_SUPPORTED")
    params = body.get("params")
    if method in ("SendMessage", "SendStreamingMessage"):
        message = params.get("message") if isinstance(params, dict) else None
        if not isinstance(message, dict):
            return _error(rid, -32602, "Invalid params: message is required")
        if method == "SendMessage":
            return _send_message(rid, message)
        return _stream_events(rid, message)
    if method in ("GetTask", "CancelTask"):
        task_id = params.get("id") if isinstance(params, dict) else None
        if not isinstance(task_id, str) or not task_id:
            return _error(rid, -32602, "Invalid params: id is required")
        state = "TASK_STATE_COMPLETED" if method == "GetTask" else "TASK_STATE_CANCELED"
        return _ok(rid, _canned_task(task_id, state))
    return _error(rid, -32601, "Method not found")


class _BodyTooLarge(Exception):
    pass


async def _read_body(receive: Receive) -> bytes | None:
    """The request body; ``None`` if the client went away."""
    chunks: list[bytes] = []
    size = 0
    while True:
        event = await receive()
        if event["type"] == "http.disconnect":
            return None
        chunk = event.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise _BodyTooLarge
        chunks.append(chunk)
        if not event.get("more_body", False):
            return b"".join(chunks)


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        event = await receive()
        if event["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif event["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def echo_app(base_url: str) -> ASGIApp:
    """The echo agent as a raw ASGI app whose card advertises ``base_url``."""
    card = orjson.dumps(agent_card(base_url))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == CARD_PATH:
            if method in ("GET", "HEAD"):
                await _respond(send, 200, _JSON_HEADERS, b"" if method == "HEAD" else card)
            else:
                await _respond(send, 405, [(b"allow", b"GET")], b"")
            return
        if path != "/":
            await _respond(send, 404, [(b"content-type", b"text/plain")], b"not found")
            return
        if method != "POST":
            await _respond(send, 405, [(b"allow", b"POST")], b"")
            return
        try:
            raw = await _read_body(receive)
        except _BodyTooLarge:
            await _respond(send, 413, [(b"content-type", b"text/plain")], b"body too large")
            return
        if raw is None:
            return
        version: str | None = None
        for name, value in scope["headers"]:
            if name == b"a2a-version":
                version = value.decode("latin-1").strip() or None
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            out: dict[str, Any] | list[bytes] = _error(None, -32700, "Parse error")
        else:
            out = _dispatch(body, version)
        if isinstance(out, dict):
            await _respond(send, 200, _JSON_HEADERS, orjson.dumps(out))
            return
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        for frame in out:
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


def app_from_env() -> ASGIApp:
    """uvicorn factory: the echo app with its base URL from ``MAESTRO_ECHO_AGENT_BASE_URL``."""
    return echo_app(os.environ.get(BASE_URL_ENV, "http://127.0.0.1:9001"))


def main(argv: list[str] | None = None) -> None:
    """Command line: run the echo agent on uvicorn (httptools + uvloop, no access log)."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--base-url", help="URL advertised in the card (default http://host:port)")
    args = parser.parse_args(argv)
    host = f"[{args.host}]" if ":" in args.host else args.host
    os.environ[BASE_URL_ENV] = args.base_url or f"http://{host}:{args.port}"
    uvicorn.run(
        "maestro_gateway.testing.echo_agent:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        http="httptools",
        loop="uvloop",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
