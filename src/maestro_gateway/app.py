"""ASGI assembly: the stack is built once; the error boundary is outermost.

Routes:
  POST /agents/{id}                          A2A JSON-RPC binding
  *    /agents/{id}/rest/...                 A2A HTTP+JSON binding (optionally /{tenant}/...)
  GET  /agents/{id}/.well-known/agent-card.json   the agent's card, rewritten and re-signed
  GET  /.well-known/jwks.json                the gateway's card-signing public key(s)
  GET  /healthz  /readyz  /metrics           operations
  *    /admin/v1/...                         registry admin API (OpenAPI at /admin/v1/openapi.json)
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from maestro_gateway.a2a.errors import A2AError, not_found
from maestro_gateway.admin.api import build_admin_app
from maestro_gateway.audit.recorder import AuditRecorder
from maestro_gateway.config import GatewayConfig, config_sha256
from maestro_gateway.dataplane import DataPlane
from maestro_gateway.http import send_bytes, send_json
from maestro_gateway.observability import AccessLog, Metrics
from maestro_gateway.pipeline import Pipeline
from maestro_gateway.proxy import Upstream
from maestro_gateway.registry.routing import ROUTER_ID, Directory
from maestro_gateway.registry.service import RegistryService
from maestro_gateway.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("maestro_gateway.app")

CARD_SUFFIX = "/.well-known/agent-card.json"


class Gateway:
    """The gateway's ASGI application."""

    def __init__(self, cfg: GatewayConfig) -> None:
        self.cfg = cfg
        self.metrics = Metrics()
        self.directory = Directory(cfg.routing)
        self.upstream = Upstream(cfg.upstream)
        self.audit = AuditRecorder(cfg.audit)
        self.registry = RegistryService(cfg, self.directory, self.audit)
        self.pipeline = Pipeline(cfg)
        self.metrics.rate_limit_decisions = self.pipeline.limiter.decisions
        log_cfg = cfg.logging
        self.access_log = AccessLog(log_cfg.access_log and log_cfg.level in ("debug", "info"))
        self.dataplane = DataPlane(
            self.pipeline,
            self.upstream,
            self.directory,
            self.metrics,
            self.access_log,
            self.audit,
            self.registry.served_card,
        )
        self.admin: ASGIApp = build_admin_app(self.registry)
        self.ready = False

    async def startup(self) -> None:
        await self.audit.start()
        await self.audit.critical({"type": "config.loaded", "sha256": config_sha256(self.cfg)})
        await self.upstream.start()
        await self.registry.start()
        self.ready = True

    async def shutdown(self) -> None:
        self.ready = False
        await self.registry.close()
        await self.upstream.close()
        await self.pipeline.close()
        await self.audit.close()
        self.access_log.flush()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            try:
                await self._http(scope, receive, send)
            except Exception:  # the error boundary: never a traceback to the client
                log.exception("unhandled error", extra={"path": scope.get("path")})
                await _safe_error(send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if path.startswith("/agents/"):
            rest = path[len("/agents/") :]
            agent_id, sep, sub = rest.partition("/")
            if not agent_id:
                return await _error(send, not_found())
            if not sep:
                if method != "POST":
                    return await _method_not_allowed(send, "POST")
                return await self.dataplane.handle(scope, receive, send, agent_id, None)
            sub = "/" + sub
            if sub == CARD_SUFFIX or sub == "/.well-known/agent.json":
                if method != "GET":
                    return await _method_not_allowed(send, "GET")
                return await self._card(send, agent_id)
            if sub == "/rest" or sub.startswith("/rest/"):
                return await self.dataplane.handle(scope, receive, send, agent_id, sub[5:] or "/")
            return await _error(send, not_found())
        if path.startswith("/admin/"):
            return await self.admin(scope, receive, send)
        if method != "GET":
            return await _method_not_allowed(send, "GET")
        if path == "/healthz":
            return await send_json(send, 200, {"status": "ok"})
        if path == "/readyz":
            ok = self.ready and await self.registry.healthy()
            return await send_json(send, 200 if ok else 503, {"ready": ok})
        if path == "/metrics":
            body = generate_latest(self.metrics.registry)
            return await send_bytes(send, 200, body, CONTENT_TYPE_LATEST.encode())
        if path in ("/.well-known/jwks.json", "/.well-known/maestro-gateway/jwks.json"):
            return await send_json(send, 200, self.registry.public_jwks())
        if path == CARD_SUFFIX:
            return await self._card(send, ROUTER_ID)
        return await _error(send, not_found("resource"))

    async def _card(self, send: Send, agent_id: str) -> None:
        card: dict[str, Any] | None
        if agent_id == ROUTER_ID:
            card = self.registry.router_card()
        else:
            card = self.registry.served_card_for(agent_id)
        if card is None:
            return await _error(send, not_found())
        await send_json(send, 200, card, [(b"cache-control", b"max-age=60")])


async def _error(send: Send, exc: A2AError) -> None:
    await send_bytes(send, exc.status, exc.rest_bytes())


async def _method_not_allowed(send: Send, allow: str) -> None:
    exc = A2AError(-32601, "method not allowed", 405, reason="METHOD_NOT_ALLOWED")
    await send_bytes(send, 405, exc.rest_bytes(), headers=[(b"allow", allow.encode())])


async def _safe_error(send: Send) -> None:
    try:
        await _error(send, A2AError(-32603, "internal error", 500))
    except Exception:  # the response had already started; nothing more can be said
        log.debug("could not send error response")


def create_app(cfg: GatewayConfig) -> Gateway:
    return Gateway(cfg)
