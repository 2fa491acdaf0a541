"""Small pure-ASGI helpers: bounded body reading and responses."""

from __future__ import annotations

from typing import Any

import orjson

from maestro_gateway.types import Receive, Scope, Send

JSON_CT = b"application/json"


class BodyTooLarge(Exception):
    pass


class ClientDisconnected(Exception):
    pass


def header_map(scope: Scope) -> dict[str, str]:
    """Request headers as a dict of lower-case names; later duplicates are joined with ','."""
    out: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        out[name] = f"{out[name]},{value}" if name in out else value
    return out


async def read_body(receive: Receive, limit: int) -> bytes:
    """Read the whole request body; stop and raise BodyTooLarge past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = JSON_CT,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    hdrs = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if headers:
        hdrs.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})


async def send_json(
    send: Send, status: int, data: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send_bytes(send, status, orjson.dumps(data), JSON_CT, headers)
