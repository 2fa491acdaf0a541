"""ASGI assembly: the stack is built once; the error boundary is outermost.

Routes:
  POST /agents/{id}                          A2A JSON-RPC binding
  *    /agents/{id}/rest/...                 A2A HTTP+JSON binding (optionally /{tenant}/...)
  GET  /agents/{id}/.well-known/agent-card.json   the agent's card, rewritten and re-signed
  GET  /.well-known/jwks.json                the gateway's card-signing public key(s)
  GET  /healthz  /readyz  /metrics           operations
  *    /admin/v1/...                         registry admin API (OpenAPI at /admin/v1/openapi.json)
  POST /grants/v1/request                    ask for a just-in-time grant for oneself (C17)
  POST /oauth2/token                         RFC 8693 token exchange for child agents (C16)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from maestro_gateway.a2a.errors import A2AError, not_found
from maestro_gateway.admin.api import build_admin_app
from maestro_gateway.admin.grants import grant_http
from maestro_gateway.admin.playbooks import playbook_routes
from maestro_gateway.approvals.a2a import ApprovalGate
from maestro_gateway.approvals.service import ApprovalService
from maestro_gateway.audit.export import CheckpointExporter, latest_of
from maestro_gateway.audit.recorder import AuditRecorder
from maestro_gateway.config import GatewayConfig, config_sha256
from maestro_gateway.dataplane import DataPlane
from maestro_gateway.drift import DriftScanner
from maestro_gateway.http import send_bytes, send_json
from maestro_gateway.identity.exchange import PATH as TOKEN_PATH
from maestro_gateway.identity.exchange import TokenExchange
from maestro_gateway.observability import AccessLog, Metrics
from maestro_gateway.pipeline import Pipeline
from maestro_gateway.playbooks.runtime import ResponseRuntime
from maestro_gateway.policy import Decision, PolicyError
from maestro_gateway.policy.git_bundle import GitBundleWatcher, LoadedBundle
from maestro_gateway.proxy import Upstream
from maestro_gateway.registry.routing import ROUTER_ID, Directory
from maestro_gateway.registry.service import RegistryService
from maestro_gateway.siem import SiemService
from maestro_gateway.spiffe._gateway import GatewayWorkload
from maestro_gateway.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("maestro_gateway.app")
decision_log = logging.getLogger("maestro_gateway.authz")

CARD_SUFFIX = "/.well-known/agent-card.json"


class Gateway:
    """The gateway's ASGI application."""

    def __init__(self, cfg: GatewayConfig) -> None:
        self.cfg = cfg
        self.metrics = Metrics()
        self.directory = Directory(cfg.routing)
        # C12 the gateway's SVID: mTLS to agents, inbound TLS, request assertions (docs/mtls.md)
        self.workload = GatewayWorkload(cfg.spiffe, cfg.public_url)
        ssl_ctx = self.workload.upstream_ssl
        self.upstream = Upstream(
            cfg.upstream, ssl_ctx, self.workload.verify_peer if ssl_ctx is not None else None
        )
        self.audit = AuditRecorder(cfg.audit)
        self.registry = RegistryService(cfg, self.directory, self.audit)
        self.drift = DriftScanner.for_gateway(cfg, self.registry, self.audit)  # docs/drift.md
        self.checkpoint_export = CheckpointExporter(cfg.audit.export, latest_of(self.audit))
        self.pipeline = Pipeline(cfg)
        self._bind_policy()
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
        self._bind_workload()
        self.approvals = ApprovalService(cfg.approvals, self.audit)
        self.dataplane.approvals = ApprovalGate(self.approvals)
        # C5/C15 detection and C21 playbooks, off the request path (docs/playbooks.md).
        self.response = ResponseRuntime(cfg, self.audit, self.registry, self.pipeline.enforcement)
        if self.response.observer is not None:
            self.dataplane.finished_hooks.append(self.response.observer)
        # C17 just-in-time grants: recorded in the audit log; admin routes and self-requests.
        self.pipeline.grants.audit = self.audit
        grant_routes, self.grant_requests = grant_http(
            cfg, self.pipeline.grants, self.pipeline.policy, self.pipeline.authenticator,
            self.registry, self.directory,
        )  # fmt: skip
        self.admin: ASGIApp = build_admin_app(
            self.registry,
            self.approvals,
            playbook_routes(self.response) + grant_routes,
            self.pipeline.authenticator,
            self.pipeline.policy,
        )
        self.siem = SiemService(cfg.siem) if cfg.siem.enabled else None
        # C16 delegated tokens for child agents (off unless identity.exchange.enabled).
        self.token_exchange = TokenExchange(
            cfg, self.pipeline.authenticator, self.pipeline.policy, self.directory, self.audit
        )
        self.ready = False

    def _bind_policy(self) -> None:
        """C8: agents' tenants come from the registry; decision records go to the log and
        the audit log; a git policy bundle is followed (docs/authorization.md)."""
        policy = self.pipeline.policy
        directory = self.directory

        def tenant_of(agent_id: str) -> str | None:
            target = directory.get(agent_id)
            return target.tenant if target is not None else None

        def on_decision(decision: Decision, ctx: Any) -> None:
            record = decision.record()
            record["request_id"] = getattr(ctx, "request_id", None)
            if not decision.allowed:
                decision_log.info("authz denied", extra={"decision": record})
            self.audit.note_nowait(record)

        policy.tenant_of, policy.on_decision = tenant_of, on_decision
        git = self.cfg.policy.git
        self.policy_watcher = (
            GitBundleWatcher(git, self._install_bundle, self._reject_bundle)
            if git is not None and git.commit is None
            else None
        )
        if self.policy_watcher is not None:
            version = policy.engine.bundle.version
            self.policy_watcher.commit = version.removeprefix("git:")
        self._policy_task: asyncio.Task[None] | None = None

    def _bind_workload(self) -> None:
        """C12/T6: each agent's expected SPIFFE ID comes from the registry; the card fetch uses
        the same client TLS as the data path; refused agent identities are audited."""
        directory, workload = self.directory, self.workload

        def peer_of(agent_id: str) -> str | None:
            target = directory.get(agent_id)
            return target.expected_spiffe_id if target is not None else None

        def refused(expected: str | None, reason: str) -> None:
            self.audit.note_nowait(
                {"type": "upstream.identity_refused", "expected": expected, "reason": reason[:500]}
            )

        self.upstream.peer_of, workload.on_refused = peer_of, refused
        self.upstream.require_tls = self.cfg.spiffe.upstream_require_tls
        if workload.upstream_ssl is not None:
            self.registry.card_ssl = workload.upstream_ssl
            self.registry.verify_peer = workload.verify_peer
        spiffe = self.cfg.spiffe
        if spiffe.uses_svid or spiffe.assertions.enabled or spiffe.gateway_id:
            self.dataplane.gateway_id = workload.gateway_id

    async def _install_bundle(self, loaded: LoadedBundle) -> None:
        try:
            self.pipeline.install_bundle(loaded.bundle, loaded.guards)
        except PolicyError as exc:
            await self._reject_bundle(loaded.commit, str(exc))
            return
        await self.audit.critical(
            {"type": "policy.bundle.installed", "bundle": loaded.bundle.version,
             "tests": len(loaded.results)}
        )  # fmt: skip

    async def _reject_bundle(self, commit: str, reason: str) -> None:
        await self.audit.note(
            {"type": "policy.bundle.rejected", "commit": commit, "reason": reason[:1000]}
        )

    async def startup(self) -> None:
        if self.siem is not None:  # first, so that it sees the config.loaded record
            await self.siem.start()
            self.audit.observers.append(self.siem.audit_record)
            self.dataplane.finished_hooks.append(self.siem.call_finished)
            self.metrics.siem_stats = self.siem.snapshot
        await self.audit.start()
        await self.audit.critical({"type": "config.loaded", "sha256": config_sha256(self.cfg)})
        await self.upstream.start()
        await self.approvals.start()  # held requests survive restarts (docs/approvals.md)
        await self.pipeline.grants.start()  # C17 grants survive restarts (docs/grants.md)
        await self.registry.start()
        signer = self.registry.signer  # T6: assertions are signed with the gateway's JWKS key
        self.upstream.assertions = self.workload.signer(signer._key, signer.kid)
        self.workload.start()  # picks up a rotated SVID without a restart
        await self.response.start()  # detection and playbook background task
        self.drift.start()  # periodic, in the background
        self.checkpoint_export.start()
        await self.audit.critical(
            {"type": "policy.bundle.loaded", "bundle": self.pipeline.policy.engine.bundle.version}
        )
        if self.policy_watcher is not None:  # new commits of the policy bundle (C13)
            self._policy_task = asyncio.create_task(self.policy_watcher.run())
        self.ready = True

    async def shutdown(self) -> None:
        self.ready = False
        if self._policy_task is not None:
            self._policy_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._policy_task
        await self.response.stop()  # drains queued observations while the audit log is open
        await self.drift.stop()
        await self.checkpoint_export.stop()  # sends the last checkpoint
        await self.registry.close()
        await self.upstream.close()
        await self.workload.close()
        await self.approvals.close()
        await self.pipeline.grants.close()
        await self.pipeline.close()
        await self.audit.close()
        if self.siem is not None:
            await self.siem.close()
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
        if path.startswith("/grants/"):  # a caller asks for a JIT grant for itself (C17)
            return await self.grant_requests(scope, receive, send)
        if path == TOKEN_PATH and self.token_exchange.enabled:  # C16 (docs/delegation.md)
            return await self.token_exchange(scope, receive, send)
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
