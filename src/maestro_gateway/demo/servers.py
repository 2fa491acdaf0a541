"""Run demo agents in-process on uvicorn (used by the gateway ``demo`` command and by tests)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import socket
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from maestro_gateway.spiffe.tls import SvidPaths

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 10.0


@dataclass(frozen=True)
class AgentSpec:
    """One agent to serve: ``kind`` (echo/writer/worker), ``port`` (0 = any free), ``protocol``.

    ``name`` keys :attr:`AgentServers.urls`; it defaults to ``kind`` for 1.0 agents and to
    ``"<kind>-v03"`` for 0.3 agents.
    """

    kind: str
    port: int = 0
    protocol: str = "1.0"
    name: str | None = None

    @property
    def key(self) -> str:
        if self.name:
            return self.name
        return (
            self.kind
            if self.protocol == "1.0"
            else f"{self.kind}-v{self.protocol.replace('.', '')}"
        )


class _InProcessServer(uvicorn.Server):
    """A uvicorn server that leaves the host process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass
class _Running:
    server: _InProcessServer
    task: asyncio.Task[None]
    app: Any


@dataclass
class AgentServers:
    """Handle on running agents: ``urls`` maps each spec key to its base URL."""

    urls: dict[str, str] = field(default_factory=dict)
    _running: list[_Running] = field(default_factory=list, repr=False)

    async def close(self) -> None:
        """Stop every server: cancel running agent tasks, then shut uvicorn down (bounded)."""
        running, self._running = self._running, []
        for item in running:  # ends open SSE streams so uvicorn need not wait for them
            inner = item.app
            for _ in range(4):  # under wrappers such as GatewayOnly (``.app``)
                if getattr(inner, "state", None) is not None:
                    break
                inner = getattr(inner, "app", inner)
            handler = getattr(getattr(inner, "state", None), "a2a_handler", None)
            if handler is not None:
                with contextlib.suppress(Exception):
                    await handler.aclose()
            item.server.should_exit = True
        for item in running:
            try:
                await asyncio.wait_for(asyncio.shield(item.task), SHUTDOWN_TIMEOUT)
            except (TimeoutError, asyncio.CancelledError, Exception):
                item.server.force_exit = True
                item.task.cancel()
                with contextlib.suppress(BaseException):
                    await item.task

    async def __aenter__(self) -> AgentServers:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _url_host(host: str) -> str:
    """Host part for a URL: wildcard binds advertise loopback; IPv6 gets brackets."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    except ValueError:
        pass
    return host


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets it knows are TCP
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _as_spec(spec: AgentSpec | str) -> AgentSpec:
    return spec if isinstance(spec, AgentSpec) else AgentSpec(kind=spec)


AppFactory = Callable[[str], Any]
"""Builds an ASGI app from the base URL it will be served at."""


async def serve_apps(
    apps: Mapping[str, AppFactory] | Iterable[tuple[str, AppFactory, int]],
    host: str = "127.0.0.1",
    tls: Mapping[str, SvidPaths] | None = None,
) -> AgentServers:
    """Serve ASGI apps in-process, each on its own port; ``urls`` is keyed like ``apps``.

    ``apps`` maps a name to a factory (port 0, i.e. any free port) or is a sequence of
    ``(name, factory, port)``. Each socket is bound before its app is built, so the factory
    gets the real ``http://host:port`` base URL. Signal handlers and logging config are left
    untouched (uvicorn gets ``log_config=None``, no signal capture). Apps named in ``tls`` are
    served on ``https://`` with that SVID, client certificates required, on the gateway's
    protocol that exposes them to the app (``maestro_gateway.agent.serve.tls_options``).
    """
    from maestro_gateway.agent.serve import tls_options

    entries = [(k, f, 0) for k, f in apps.items()] if isinstance(apps, Mapping) else list(apps)
    servers = AgentServers()
    try:
        for key, factory, port in entries:
            if key in servers.urls:
                raise ValueError(f"duplicate server name {key!r}")
            sock = _bind(host, port)
            svid = (tls or {}).get(key)
            scheme = "https" if svid is not None else "http"
            base_url = f"{scheme}://{_url_host(host)}:{sock.getsockname()[1]}"
            try:
                app = factory(base_url)
            except Exception:
                sock.close()
                raise
            config = uvicorn.Config(
                app,
                log_config=None,
                access_log=False,
                lifespan="auto",  # apps without lifespan support are fine too
                timeout_graceful_shutdown=2,
                **(tls_options(svid) if svid is not None else {}),
            )
            server = _InProcessServer(config)
            task = asyncio.create_task(server.serve(sockets=[sock]), name=f"serve:{key}")
            servers._running.append(_Running(server, task, app))
            await _wait_started(server, task, key)
            servers.urls[key] = base_url
            logger.info("serving %s at %s", key, base_url)
    except BaseException:
        await servers.close()
        raise
    return servers


async def serve_agents(
    specs: Iterable[AgentSpec | str],
    host: str = "127.0.0.1",
    *,
    long_job_seconds: float = 30.0,
    tls: Mapping[str, SvidPaths] | None = None,
    guard: Callable[[str, Any], Any] | None = None,
) -> AgentServers:
    """Start one uvicorn server per demo agent spec in this event loop (see :func:`serve_apps`).

    A plain string spec is a kind served on A2A 1.0 at any free port. ``urls`` is keyed by
    :attr:`AgentSpec.key`. ``tls`` serves the named agents over mTLS; ``guard(key, app)``
    wraps each agent app (e.g. in ``GatewayOnly``).
    """
    from maestro_gateway.demo.agents import build_agent_app  # agents re-exports this module

    entries: list[tuple[str, AppFactory, int]] = []
    for spec in map(_as_spec, specs):
        factory: AppFactory = functools.partial(
            _agent_app, build_agent_app, spec.kind, spec.protocol, long_job_seconds
        )
        if guard is not None:
            factory = functools.partial(_guarded, guard, spec.key, factory)
        entries.append((spec.key, factory, spec.port))
    return await serve_apps(entries, host, tls)


def _guarded(guard: Callable[[str, Any], Any], key: str, build: AppFactory, base_url: str) -> Any:
    return guard(key, build(base_url))


def _agent_app(
    build: Callable[..., Any], kind: str, protocol: str, seconds: float, base_url: str
) -> Any:
    return build(kind, base_url, protocol, long_job_seconds=seconds)


async def _wait_started(server: uvicorn.Server, task: asyncio.Task[None], key: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT
    while not server.started:
        if task.done():
            exc = task.exception() if not task.cancelled() else None
            raise RuntimeError(f"demo agent {key!r} failed to start") from exc
        if loop.time() > deadline:
            raise TimeoutError(f"demo agent {key!r} did not start in {STARTUP_TIMEOUT} s")
        await asyncio.sleep(0.01)
