"""Three deterministic demo agents served with a2a-sdk as real A2A servers.

``build_agent_app(kind, base_url, protocol)`` returns a Starlette ASGI app:

- ``protocol="1.0"``: A2A 1.0 JSON-RPC at ``POST /`` and HTTP+JSON REST (``/message:send``,
  ``/tasks/{id}``, ...; also under ``/{tenant}/``), card at ``/.well-known/agent-card.json``
  whose ``supportedInterfaces`` both point at ``base_url``. Requests must carry
  ``A2A-Version: 1.0`` (the SDK treats a missing header as 0.3 and rejects it with -32009).
- ``protocol="0.3"``: the same agent logic on the A2A 0.3 wire only, through the SDK's 0.3
  adapters: JSON-RPC ``message/send`` etc. at ``POST /``, 0.3 REST under ``/v1/``, and a 0.3
  card (``protocolVersion`` "0.3.0", ``url``, ``preferredTransport``). 1.0 method names get
  -32601 there.

:func:`serve_agents` (re-exported from :mod:`maestro_gateway.demo.servers`) runs them in-process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from a2a.compat.v0_3.conversions import to_compat_agent_card
from a2a.helpers import get_message_text
from a2a.server.agent_execution import AgentExecutor
from a2a.server.context import ServerCallContext
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes, create_rest_routes
from a2a.server.tasks import InMemoryPushNotificationConfigStore, InMemoryTaskStore
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Message,
    SendMessageRequest,
    Task,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from maestro_gateway.demo.executors import EchoExecutor, WorkerExecutor, WriterExecutor

AGENT_KINDS: tuple[str, ...] = ("echo", "writer", "worker")
PROTOCOLS: tuple[str, ...] = ("1.0", "0.3")
CARD_PATH = "/.well-known/agent-card.json"

_TEXT = ["text/plain"]


def _skill(skill_id: str, name: str, description: str, *examples: str) -> AgentSkill:
    return AgentSkill(
        id=skill_id,
        name=name,
        description=description,
        tags=["demo", "deterministic"],
        examples=list(examples),
        input_modes=_TEXT,
        output_modes=_TEXT,
    )


_CARDS: dict[str, tuple[str, str, AgentCapabilities, list[AgentSkill]]] = {
    "echo": (
        "Demo Echo Agent",
        "Replies with a Message echoing the text, or summarizes it (no tasks).",
        AgentCapabilities(streaming=True, push_notifications=False),
        [
            _skill("echo", "Echo", "Returns 'echo: <text>'.", "hello"),
            _skill(
                "summarize",
                "Summarize",
                "Returns the first N words (metadata skill=summarize, maxWords=N; "
                "or a 'summarize:' prefix).",
                "summarize: a long text to shorten",
            ),
        ],
    ),
    "writer": (
        "Demo Writer Agent",
        "Writes a short report on the given topic, streamed as artifact chunks.",
        AgentCapabilities(streaming=True, push_notifications=False),
        [_skill("write-report", "Write report", "Streams a Markdown report.", "agent security")],
    ),
    "worker": (
        "Demo Worker Agent",
        "Runs a cancellable long job, and books trips after asking for a date.",
        AgentCapabilities(streaming=True, push_notifications=True),
        [
            _skill(
                "long-job",
                "Long job",
                "'long' (or returnImmediately): ~30 s WORKING with progress updates; cancellable.",
                "long",
            ),
            _skill(
                "book-travel",
                "Book travel",
                "'book a trip' -> INPUT_REQUIRED 'which date?'; the reply completes it.",
                "book a trip",
            ),
        ],
    ),
}


def build_agent_card(kind: str, base_url: str, protocol: str = "1.0") -> AgentCard:
    """The card (SDK proto) of agent ``kind`` served at ``base_url`` over ``protocol``."""
    name, description, capabilities, skills = _CARDS[_check_kind(kind)]
    version = "0.3.0" if _check_protocol(protocol) == "0.3" else "1.0"
    url = base_url.rstrip("/")
    return AgentCard(
        name=name,
        description=description,
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version=version),
            AgentInterface(url=url, protocol_binding="HTTP+JSON", protocol_version=version),
        ],
        capabilities=capabilities,
        default_input_modes=_TEXT,
        default_output_modes=_TEXT,
        skills=skills,
    )


def card_v03_dict(card: AgentCard) -> dict[str, Any]:
    """A pure 0.3 card document (camelCase) for a card whose interfaces are 0.3."""
    compat = to_compat_agent_card(card)
    data: dict[str, Any] = compat.model_dump(mode="json", by_alias=True, exclude_none=True)
    # 0.3 says additionalInterfaces SHOULD also list the main url/transport pair.
    main = {"url": data["url"], "transport": data["preferredTransport"]}
    data["additionalInterfaces"] = [main, *data.get("additionalInterfaces", [])]
    return data


class _WorkerRequestHandler(DefaultRequestHandler):
    """SDK handler where a ``long`` message always returns at once (the job runs on)."""

    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Message | Task:
        if get_message_text(params.message).strip().lower() == "long":
            params.configuration.return_immediately = True
        result: Message | Task = await super().on_message_send(params, context)
        return result


def build_request_handler(
    kind: str, card: AgentCard, *, long_job_seconds: float = 30.0
) -> DefaultRequestHandler:
    """The SDK request handler (in-memory task store) wrapping the executor for ``kind``."""
    if kind == "worker":
        return _WorkerRequestHandler(
            agent_executor=WorkerExecutor(long_job_seconds),
            task_store=InMemoryTaskStore(),
            agent_card=card,
            push_config_store=InMemoryPushNotificationConfigStore(),
        )
    executor: AgentExecutor = EchoExecutor() if kind == "echo" else WriterExecutor()
    return DefaultRequestHandler(
        agent_executor=executor, task_store=InMemoryTaskStore(), agent_card=card
    )


def build_agent_app(
    kind: str, base_url: str, protocol: str = "1.0", *, long_job_seconds: float = 30.0
) -> Starlette:
    """An ASGI app serving demo agent ``kind`` at ``base_url`` on A2A ``protocol`` ("1.0"/"0.3").

    The SDK request handler is kept on ``app.state.a2a_handler``; it is closed (its running
    tasks cancelled) on lifespan shutdown.
    """
    card = build_agent_card(kind, base_url, protocol)
    handler = build_request_handler(kind, card, long_job_seconds=long_job_seconds)
    routes: list[BaseRoute]
    if protocol == "1.0":
        routes = [
            *create_agent_card_routes(card),
            *create_jsonrpc_routes(handler, "/"),
            *create_rest_routes(handler),
        ]
    else:
        routes = _routes_v03(card, handler)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await handler.aclose()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.a2a_handler = handler
    app.state.agent_card = card
    return app


def _rpc_error(request_id: Any, code: int, message: str) -> JSONResponse:
    error = {"code": code, "message": message}
    return JSONResponse({"jsonrpc": "2.0", "id": request_id, "error": error})


def _routes_v03(card: AgentCard, handler: DefaultRequestHandler) -> list[BaseRoute]:
    """0.3-only routes: card, JSON-RPC (slash methods) and REST ``/v1/...`` via SDK adapters."""
    # Imported here: importing the adapters before a2a.server.routes trips an SDK import cycle.
    from a2a.compat.v0_3.jsonrpc_adapter import JSONRPC03Adapter
    from a2a.compat.v0_3.rest_adapter import REST03Adapter

    card_doc = card_v03_dict(card)
    rpc = JSONRPC03Adapter(http_handler=handler)

    async def get_card(_request: Request) -> Response:
        return JSONResponse(card_doc)

    async def jsonrpc(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return _rpc_error(None, -32700, "Parse error")
        if not isinstance(body, dict):
            return _rpc_error(None, -32600, "Invalid Request")
        request_id = body.get("id")
        if isinstance(request_id, bool) or not isinstance(request_id, str | int | None):
            request_id = None
        method = body.get("method")
        if body.get("jsonrpc") != "2.0" or not isinstance(method, str):
            return _rpc_error(request_id, -32600, "Invalid Request")
        if not rpc.supports_method(method):
            return _rpc_error(request_id, -32601, "Method not found")
        return await rpc.handle_request(
            request_id=request_id, method=method, body=body, request=request
        )

    routes: list[BaseRoute] = [
        Route(CARD_PATH, get_card, methods=["GET"]),
        Route("/.well-known/agent.json", get_card, methods=["GET"]),
        Route("/", jsonrpc, methods=["POST"]),
    ]
    for (path, method), endpoint in REST03Adapter(http_handler=handler).routes().items():
        routes.append(Route(path, endpoint, methods=[method]))
    return routes


def _check_kind(kind: str) -> str:
    if kind not in AGENT_KINDS:
        raise ValueError(f"unknown demo agent kind {kind!r}; expected one of {AGENT_KINDS}")
    return kind


def _check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unsupported A2A protocol {protocol!r}; expected one of {PROTOCOLS}")
    return protocol


from maestro_gateway.demo.servers import (  # noqa: E402
    AgentServers,
    AgentSpec,
    serve_agents,
    serve_apps,
)

__all__ = [
    "AGENT_KINDS",
    "PROTOCOLS",
    "AgentServers",
    "AgentSpec",
    "build_agent_app",
    "build_agent_card",
    "serve_agents",
    "serve_apps",
]
