"""Server-Sent Events: an incremental, bounded parser and the encoder.

The parser yields one event's ``data`` (joined data lines) at a time, so a stream is
never buffered whole; an event larger than ``max_event_bytes`` is an error, not a hang.
"""

from __future__ import annotations

from collections.abc import AsyncIterator


class SSEError(Exception):
    """The upstream stream is not valid SSE or breaks a size limit."""


async def iter_events(
    batches: AsyncIterator[list[bytes]], max_event_bytes: int
) -> AsyncIterator[list[bytes]]:
    """Yield, for each batch of raw lines (as they arrived together), the events they complete.

    Batches keep what arrived together together, so a relay can forward it in one write.
    """
    data: list[bytes] = []
    size = 0
    async for lines in batches:
        done: list[bytes] = []
        for raw in lines:
            line = raw.rstrip(b"\r\n")
            if not line:
                if data:
                    done.append(b"\n".join(data))
                    data = []
                    size = 0
                continue
            size += len(line)
            if size > max_event_bytes:
                raise SSEError(f"event larger than {max_event_bytes} bytes")
            if line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
            # ":" comments (keep-alives) and event:, id:, retry: carry nothing A2A uses.
        if done:
            yield done
    if data:
        yield [b"\n".join(data)]


def encode_event(data: bytes) -> bytes:
    """One SSE event with a single data line (JSON never contains raw newlines)."""
    return b"data: " + data + b"\n\n"
