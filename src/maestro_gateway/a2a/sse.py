"""Server-Sent Events: an incremental, bounded parser and the encoder.

The parser yields one event's ``data`` (joined data lines) at a time, so a stream is
never buffered whole; an event larger than ``max_event_bytes`` is an error, not a hang.
"""

from __future__ import annotations

from collections.abc import AsyncIterator


class SSEError(Exception):
    """The upstream stream is not valid SSE or breaks a size limit."""


async def iter_events(lines: AsyncIterator[bytes], max_event_bytes: int) -> AsyncIterator[bytes]:
    """Yield the data of each event from an iterator of raw lines (with or without EOL)."""
    data: list[bytes] = []
    size = 0
    async for raw in lines:
        line = raw.rstrip(b"\r\n")
        if not line:
            if data:
                yield b"\n".join(data)
                data = []
                size = 0
            continue
        size += len(line)
        if size > max_event_bytes:
            raise SSEError(f"event larger than {max_event_bytes} bytes")
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b":"):
            continue  # comment / keep-alive
        # event:, id:, retry: lines carry nothing the A2A binding uses.
    if data:
        yield b"\n".join(data)


def encode_event(data: bytes) -> bytes:
    """One SSE event with a single data line (JSON never contains raw newlines)."""
    return b"data: " + data + b"\n\n"
