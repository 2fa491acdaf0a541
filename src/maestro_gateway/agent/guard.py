"""``GatewayOnly``: pure ASGI middleware for agents; everything not from the gateway is refused.

For every HTTP request (paths in ``public_paths`` — by default the public agent card — aside):

1. **Caller identity (mTLS).** The TLS client certificate (ASGI TLS extension,
   ``scope["extensions"]["tls"]["client_cert_chain"]``, already verified against the trust
   bundle by the server's TLS context) must be an X.509 SVID with exactly the gateway's SPIFFE
   ID. No certificate: 401. Another SPIFFE ID (another workload, another trust domain): 403.
2. **Request assertion.** The ``Maestro-Assertion`` header must be a gateway-signed JWT bound
   to this method, path and body, to this agent (audience), unexpired, and never seen before
   (nonce). Missing: 401; anything else wrong: 403.
3. The request goes on with the body replayed unchanged and the verified claims (end user,
   delegation chain) in ``scope["state"]["maestro"]``.

The body is read before the application runs (bounded by ``max_body_bytes``: 413 beyond), as
its hash is part of what the gateway signed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import orjson

from maestro_gateway.assertion import HEADER, AssertionRefused, AssertionVerifier
from maestro_gateway.spiffe.ids import InvalidSpiffeId, spiffe_id_of_pem
from maestro_gateway.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["GatewayOnly"]

log = logging.getLogger("maestro_gateway.agent")
_HEADER_B = HEADER.encode()


class _Refuse(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class GatewayOnly:
    def __init__(
        self,
        app: ASGIApp,
        *,
        gateway_spiffe_id: str | None,
        verifier: AssertionVerifier,
        public_paths: Iterable[str] = ("/.well-known/agent-card.json",),
        max_body_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        """``gateway_spiffe_id=None`` turns the mTLS check off (assertion only) — for agents
        that terminate TLS elsewhere; the assertion alone still binds each request."""
        self.app, self.gateway_id, self.verifier = app, gateway_spiffe_id, verifier
        self.public_paths = frozenset(public_paths)
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in self.public_paths and scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        try:
            self._check_peer(scope)
            body = await self._body(receive)
            token = _header(scope, _HEADER_B)
            if token is None:
                raise _Refuse(401, "no gateway assertion: call this agent through the gateway")
            try:
                claims = self.verifier.verify(token, scope["method"], scope["path"], body)
            except AssertionRefused as exc:
                raise _Refuse(403, str(exc)) from None
        except _Refuse as exc:
            log.warning(
                "request refused: not from the gateway",
                extra={"status": exc.status, "reason": exc.message, "path": scope["path"]},
            )
            await _send_error(send, exc.status, exc.message)
            return
        scope.setdefault("state", {})["maestro"] = claims
        await self.app(scope, _replay(body, receive), send)

    def _check_peer(self, scope: Scope) -> None:
        if self.gateway_id is None:
            return
        tls = (scope.get("extensions") or {}).get("tls") or {}
        chain = tls.get("client_cert_chain") or []
        if not chain:
            raise _Refuse(401, "no client certificate: mTLS with the gateway's SVID is required")
        try:
            peer = spiffe_id_of_pem(chain[0])
        except InvalidSpiffeId as exc:
            raise _Refuse(403, f"client certificate is not an X.509 SVID: {exc}") from None
        if peer != self.gateway_id:
            raise _Refuse(403, f"caller {peer} is not the gateway")

    async def _body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Refuse(400, "client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _Refuse(413, "request body too large")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_error(send: Send, status: int, message: str) -> None:
    body = orjson.dumps({"error": {"code": status, "message": message}})
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if status == 401:
        headers.append((b"www-authenticate", b'Maestro-Assertion realm="agent"'))
    start: dict[str, Any] = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})
