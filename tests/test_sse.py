"""The SSE parser: event framing, comments, CRLF, size limits, batching."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from maestro_gateway.a2a.sse import SSEError, encode_event, iter_events


async def batches(*items: list[bytes]) -> AsyncIterator[list[bytes]]:
    for item in items:
        yield item


async def collect(*items: list[bytes], limit: int = 1000) -> list[list[bytes]]:
    return [e async for e in iter_events(batches(*items), limit)]


async def test_events_are_split_on_blank_lines() -> None:
    """Each blank line ends one event; multi-line data is joined with LF."""
    got = await collect([b"data: a\n", b"\n", b"data: b1\r\n", b"data:b2\r\n", b"\r\n"])
    assert got == [[b"a", b"b1\nb2"]]


async def test_events_keep_their_arrival_batches() -> None:
    """Events that arrived together are yielded together; an event may span batches."""
    got = await collect([b"data: a", b"", b"data: b"], [b""], [b"data: c", b""])
    assert got == [[b"a"], [b"b"], [b"c"]]


async def test_comments_and_fields_are_ignored() -> None:
    """Keep-alive comments and event/id fields carry no data."""
    assert await collect([b": ping\n", b"event: x\n", b"id: 1\n", b"data: z\n", b"\n"]) == [[b"z"]]


async def test_unterminated_last_event_is_delivered() -> None:
    """An event cut off by the end of the stream is still delivered."""
    assert await collect([b"data: tail\n"]) == [[b"tail"]]


async def test_oversized_event_is_an_error() -> None:
    """An event larger than the limit raises instead of buffering without bound."""
    with pytest.raises(SSEError):
        await collect([b"data: " + b"x" * 2000 + b"\n"], limit=1000)


def test_encode() -> None:
    """Encoding produces one data line and a blank line."""
    assert encode_event(b"{}") == b"data: {}\n\n"
