"""The gateway's workload identity at run time: its SVID contexts, peer checks, assertions.

Built once by the application from ``spiffe:`` (:class:`~maestro_gateway.spiffe.config.
SpiffeConfig`). It owns the :class:`SvidContexts` (one server and one client ``SSLContext``,
reloaded in place when the SVID files change — a background task checks every ``refresh_s``),
checks each new upstream TLS connection's peer SPIFFE ID, and makes the assertion signer from
the gateway's signing key.

Who an agent must be: its registered ``expected_spiffe_id`` exactly; an agent registered without
one must present *some* SVID of the gateway's trust domain (the bundle alone would also accept
other trust domains it contains).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable

from maestro_gateway.assertion import AssertionSigner
from maestro_gateway.registry import _jose
from maestro_gateway.spiffe._asgi_tls import shared_contexts
from maestro_gateway.spiffe.config import SpiffeConfig
from maestro_gateway.spiffe.tls import PeerRefused, SvidContexts, check_peer

__all__ = ["GatewayWorkload"]

log = logging.getLogger("maestro_gateway.spiffe")


class GatewayWorkload:
    """The gateway's own SVID and what is done with it (None-safe when SPIFFE is off)."""

    def __init__(self, cfg: SpiffeConfig, public_url: str) -> None:
        self.cfg = cfg
        self.gateway_id = cfg.gateway_id or public_url  # who the gateway is, in every record
        paths = cfg.resolve_paths() if cfg.uses_svid else None  # files or the Workload API
        self.contexts: SvidContexts | None = None
        if cfg.uses_svid and paths is not None:
            self.contexts = shared_contexts(paths, cfg.inbound.require_client_cert)
        self.on_refused: Callable[[str | None, str], None] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def upstream_ssl(self) -> ssl.SSLContext | None:
        """The client context for https:// agents (None: ordinary server-authenticated TLS)."""
        if self.contexts is None or not self.cfg.upstream_mtls:
            return None
        return self.contexts.client

    @property
    def server_ssl(self) -> ssl.SSLContext | None:
        if self.contexts is None or not self.cfg.inbound.tls:
            return None
        return self.contexts.server

    def verify_peer(self, ssl_object: object, expected: str | None) -> str:
        """The agent's SPIFFE ID when it is the one required; raises PeerRefused otherwise."""
        td = None if expected is not None else self.cfg.trust_domain
        try:
            return check_peer(ssl_object, expected, td)
        except PeerRefused as exc:
            log.warning(
                "agent refused: wrong workload identity",
                extra={"expected": expected or f"spiffe://{td}/*", "reason": str(exc)},
            )
            if self.on_refused is not None:
                self.on_refused(expected, str(exc))
            raise

    def signer(self, key: _jose.PrivateKey, kid: str) -> AssertionSigner | None:
        """The request-assertion signer (None when assertions are off)."""
        if not self.cfg.assertions.enabled:
            return None
        return AssertionSigner(key, kid, self.gateway_id, self.cfg.assertions.ttl_s)

    def start(self) -> None:
        if self.contexts is not None and self._task is None:
            self._task = asyncio.create_task(self._refresh_loop(), name="svid-refresh")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _refresh_loop(self) -> None:
        assert self.contexts is not None
        while True:
            await asyncio.sleep(self.cfg.refresh_s)
            try:
                self.contexts.refresh()  # new handshakes use a rotated SVID; no restart
            except Exception:  # never let the loop die: the old SVID stays in use
                log.exception("SVID refresh failed")
