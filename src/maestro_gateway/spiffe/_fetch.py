"""One GET over mTLS with a SPIFFE ID check on the peer (agent cards at registration).

aiohttp does not let the caller see the peer certificate of a connection it has already
released, so the card fetch over https with SPIFFE on uses the data path's own HTTP client,
whose ``verify_peer`` hook runs after each handshake, before anything is sent.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

from maestro_gateway.upstream_http import HttpClient, UpstreamError

__all__ = ["UpstreamError", "get_mtls"]


async def get_mtls(
    url: str,
    context: ssl.SSLContext,
    verify_peer: Callable[[object, str | None], object] | None,
    expected: str | None,
    timeout_s: float,
    limit: int,
) -> tuple[int, bytes]:
    """(status, at most ``limit + 1`` bytes of body); UpstreamError(kind="identity") when the
    peer is not ``expected``."""
    client = HttpClient(
        connect_timeout=timeout_s,
        read_timeout=timeout_s,
        limit_per_host=1,
        ssl=context,
        verify_peer=verify_peer,
    )
    try:
        resp = await client.request(
            "GET", url, {"Accept": "application/json"}, b"", timeout_s, peer_id=expected
        )
        try:
            body = await resp.read(limit + 1) if resp.status == 200 else b""
        except UpstreamError as exc:
            if exc.kind != "too_large":
                raise
            body = b"x" * (limit + 1)
        finally:
            resp.release()
        return resp.status, body
    finally:
        await client.close()
