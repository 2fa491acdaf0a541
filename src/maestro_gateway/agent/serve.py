"""Run an agent behind mutual TLS with its SVID, exposing the client certificate to the app.

    from maestro_gateway.agent.serve import gateway_only, serve
    app = gateway_only(a2a_app, gateway_id="spiffe://corp.example/gateway",
                       jwks=gateway_jwks, audience="echo")
    asyncio.run(serve(app, svid_dir="/etc/pki", name="echo", port=9101))

:func:`serve` runs uvicorn on the gateway's hardened protocol (``server.GatewayHttpProtocol``:
header/body timeouts, header limits, and the ASGI TLS extension that :class:`GatewayOnly`
reads), with a TLS context built from the agent's SVID that *requires* a client certificate
of the trust bundle, and reloads the SVID when its files change (rotation without restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import uvicorn

from maestro_gateway.agent.guard import GatewayOnly
from maestro_gateway.assertion import AssertionVerifier
from maestro_gateway.config import ServerConfig
from maestro_gateway.server import protocol_for, uvicorn_options
from maestro_gateway.spiffe._asgi_tls import server_context, shared_contexts
from maestro_gateway.spiffe._workload_api import ENV, workload_api_paths
from maestro_gateway.spiffe.tls import SvidPaths
from maestro_gateway.types import ASGIApp

__all__ = ["gateway_only", "serve", "tls_options", "verifier_from_jwks"]


def verifier_from_jwks(
    jwks: Mapping[str, Any], *, issuer: str, audience: str, **kw: Any
) -> AssertionVerifier:
    """An assertion verifier for the gateway's published JWK Set (``/.well-known/jwks.json``)."""
    keys = {str(k["kid"]): k for k in jwks.get("keys", []) if isinstance(k, dict) and "kid" in k}
    if not keys:
        raise ValueError("the gateway JWK Set holds no key with a kid")
    return AssertionVerifier(keys, issuer=issuer, audience=audience, **kw)


def gateway_only(
    app: ASGIApp,
    *,
    gateway_id: str,
    jwks: Mapping[str, Any],
    audience: str,
    issuer: str | None = None,
) -> GatewayOnly:
    """``app`` wrapped so that only the gateway (its SVID and its signed assertion) gets in.

    ``issuer`` defaults to ``gateway_id`` (the gateway signs as its SPIFFE ID when it has one);
    ``audience`` is the agent's id in the gateway's registry."""
    verifier = verifier_from_jwks(jwks, issuer=issuer or gateway_id, audience=audience)
    return GatewayOnly(app, gateway_spiffe_id=gateway_id, verifier=verifier)


def tls_options(paths: SvidPaths, limits: ServerConfig | None = None) -> dict[str, Any]:
    """uvicorn settings: TLS from the SVID (client certificate required), the gateway protocol."""
    limits = limits or ServerConfig()
    factory = functools.partial(server_context, paths, True)
    return {"ssl_context_factory": factory, **uvicorn_options(limits, protocol_for(limits))}


async def serve(
    app: ASGIApp,
    *,
    svid_dir: str | Path | None = None,
    name: str | None = None,
    paths: SvidPaths | None = None,
    host: str = "127.0.0.1",
    port: int = 8443,
    sockets: Sequence[socket.socket] | None = None,
    refresh_s: float = 2.0,
    **uvicorn_kw: Any,
) -> None:
    """Serve ``app`` over mTLS until stopped. The SVID: ``svid_dir``/``name``, or ``paths``,
    else the SPIFFE Workload API at ``$SPIFFE_ENDPOINT_SOCKET`` (kept current in files)."""
    if paths is None and svid_dir is not None and name is not None:
        paths = SvidPaths.in_dir(svid_dir, name)
    if paths is None:
        endpoint = os.environ.get(ENV)
        if not endpoint:
            raise ValueError(f"give svid_dir and name, or paths, or set {ENV}")
        paths = await asyncio.to_thread(workload_api_paths, endpoint)
    options: dict[str, Any] = {"log_config": None, "access_log": False, **uvicorn_kw}
    config = uvicorn.Config(app, host=host, port=port, **tls_options(paths), **options)
    server = uvicorn.Server(config)
    refresher = asyncio.create_task(_refresh(paths, refresh_s))
    try:
        await server.serve(sockets=list(sockets) if sockets else None)
    finally:
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher


async def _refresh(paths: SvidPaths, every_s: float) -> None:
    contexts = shared_contexts(paths, True)
    while True:
        await asyncio.sleep(every_s)
        contexts.refresh()
