"""Fuzzing the gateway's JSON-RPC and REST request handling, in process.

The real ``Gateway`` ASGI app (SQLite registry, the echo agent on loopback behind it) is called
with hand-built ASGI messages. For every case the oracle in ``tests/fuzz_support.py`` checks: the
app finishes in time, sends exactly one ``http.response.start`` with a status below 500 (502-504
only for a request that was forwarded), a JSON (or SSE) body carrying a protocol-shaped error
for every refusal, and lets no exception escape. No ERROR is logged and the registry is the same
at the end. Hypothesis drives the structured cases; a seeded mutation loop adds the volume
(>= 100,000 cases in all, checked by the last test).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from maestro_gateway.app import Gateway, create_app
from maestro_gateway.config import parse_config
from maestro_gateway.demo import servers as demo_servers
from maestro_gateway.demo.servers import serve_apps
from maestro_gateway.testing import echo_app
from tests import fuzz_support as fz
from tests.fuzz_support import Case, FuzzFailure, Harness

MIN_TOTAL = 100_000
# FUZZ_SCALE=0.1 for a quick local run (the totals test then skips its 100k check).
SCALE = float(os.environ.get("FUZZ_SCALE", "1"))
# FUZZ_SEED=<int> explores other cases (CI runs the fixed, derandomized set).
FUZZ_SEED = int(os.environ["FUZZ_SEED"]) if os.environ.get("FUZZ_SEED") else None
STARTUP_TIMEOUT = 30.0
# Seeded mutation loops: (family, seed, cases). Most mutants are refused before the upstream.
MUTATION_RUNS = {
    "jsonrpc10": (0x5EED10, 35_000),
    "jsonrpc03": (0x5EED03, 30_000),
    "rest": (0x5EEDAA, 30_000),
}
FUZZ_TESTS = {
    "valid_seeds",
    "raw_bytes",
    "arbitrary_json",
    "jsonrpc10",
    "jsonrpc03",
    "rest_hypothesis",
    "forwarded",
    "body_limit",
    *(f"mutation-{family}" for family in MUTATION_RUNS),
}


def fuzz_settings(n: int) -> Any:
    """Hypothesis settings for ``n`` examples: derandomized, or seeded from FUZZ_SEED."""
    configured = settings(
        max_examples=max(1, int(n * SCALE)),
        deadline=None,
        database=None,
        derandomize=FUZZ_SEED is None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )

    def apply(test: Any) -> Any:
        test = configured(test)
        return test if FUZZ_SEED is None else seed(FUZZ_SEED)(test)

    return apply


@dataclass
class Env:
    app: Gateway
    harness: Harness
    registry_before: Any
    dns: Any


async def registry_snapshot(app: Gateway) -> Any:
    """Every agent record and version, and what the directory routes to."""
    agents = await app.registry.list_agents()
    versions = {a.agent_id: await app.registry.versions(a.agent_id) for a in agents}
    targets = [(t.agent_id, t.url, t.protocol_version, t.version) for t in app.directory.targets()]
    return agents, versions, targets


def _nodelay_bind(original: Any) -> Any:
    """``servers._bind`` plus TCP_NODELAY on the listener (accepted sockets inherit it).

    ``_bind`` makes the socket with proto 0, so asyncio's ``_set_nodelay`` (which wants
    ``proto == IPPROTO_TCP``) skips the accepted connections and every response waits ~40 ms
    for a delayed ACK (Nagle): the forwarded fuzz cases would take 40 ms each instead of 0.3 ms.
    """

    def bind(host: str, port: int) -> socket.socket:
        sock: socket.socket = original(host, port)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    return bind


@pytest_asyncio.fixture(scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    state = tmp_path_factory.mktemp("fuzz")
    with pytest.MonkeyPatch.context() as mp:
        dns = fz.install_dns_guard(mp)
        mp.setattr(demo_servers, "_bind", _nodelay_bind(demo_servers._bind))
        servers = await asyncio.wait_for(serve_apps({"echo": echo_app}), STARTUP_TIMEOUT)
        try:
            card_url = f"{servers.urls['echo']}/.well-known/agent-card.json"
            cfg = parse_config(
                {
                    "public_url": "http://gateway.invalid",
                    "registry": {"url": f"sqlite:///{state}/registry.db"},
                    "gateway_key": {"path": str(state / "gateway-key.pem")},
                    "audit": {
                        "url": f"sqlite:///{state / 'audit.db'}",
                        "key_path": str(state / "audit-signing-key.pem"),
                        "state_file": str(state / "audit-verified.checkpoint"),
                    },
                    "agents": [{"id": fz.AGENT, "card_url": card_url}],
                    "routing": [{"pattern": r"\breport\b", "skill": "echo"}],
                }
            )
            app = create_app(cfg)
            await asyncio.wait_for(app.startup(), STARTUP_TIMEOUT)
            try:
                assert app.directory.get(fz.AGENT) is not None, "echo agent not active"
                assert app.directory.get(fz.MISSING_AGENT) is None
                # The seeds read and cancel task t-1: bind it to the fuzz client, as if it had
                # created it through the gateway (authz hides tasks of anyone else).
                app.pipeline.policy.tasks.record(fz.AGENT, "t-1", "addr:203.0.113.7", "")
                harness = Harness(app)
                # Per-case ERROR capture: on the root logger, and on the gateway's own logger in
                # case setup_logging() (propagate=False) ran earlier in this process.
                loggers = {logging.getLogger(), logging.getLogger("maestro_gateway")}
                for lg in loggers:
                    lg.addHandler(harness.log_handler)
                try:
                    yield Env(app, harness, await registry_snapshot(app), dns)
                finally:
                    for lg in loggers:
                        lg.removeHandler(harness.log_handler)
            finally:
                await asyncio.wait_for(app.shutdown(), STARTUP_TIMEOUT)
        finally:
            await asyncio.wait_for(servers.close(), STARTUP_TIMEOUT)


@pytest.fixture
def errors_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture WARNING and above from the gateway, even if its logger stopped propagating."""
    gw_logger = logging.getLogger("maestro_gateway")
    caplog.set_level(logging.WARNING)
    caplog.set_level(logging.WARNING, logger="maestro_gateway")
    attached = not gw_logger.propagate
    if attached:
        gw_logger.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        if attached:
            gw_logger.removeHandler(caplog.handler)


def assert_no_errors_logged(caplog: pytest.LogCaptureFixture, env: Env) -> None:
    """No ERROR record in this test, apart from those of tolerated known bugs."""
    tolerated = {id(r) for r in env.harness.tolerated}
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR and id(r) not in tolerated]
    assert not bad, "ERROR logged during fuzzing:\n" + "\n".join(
        f"{r.name}: {r.getMessage()} {getattr(r, 'path', '')} {r.exc_text or ''}" for r in bad[:5]
    )


def report(request: pytest.FixtureRequest, line: str) -> None:
    """Print past pytest's output capture (the case counts belong in every CI log)."""
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capman = plugins.get_plugin("capturemanager")
    if reporter is None or capman is None:  # pragma: no cover
        print(line)
        return
    with capman.global_and_fixture_disabled():
        reporter.write_line(line)


class Failures:
    """Collects oracle violations of a loop, one per distinct first line, then fails once."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}
        self.count = 0

    def add(self, exc: FuzzFailure) -> None:
        self.count += 1
        key = str(exc).split("\n", 1)[0][:120]
        self.seen.setdefault(key, str(exc))

    def raise_if_any(self) -> None:
        if self.seen:
            details = "\n\n".join(list(self.seen.values())[:8])
            raise AssertionError(f"{self.count} failing cases, {len(self.seen)} kinds:\n{details}")


# -- sanity: the fuzzer's valid seeds really are accepted and forwarded ---------------------------


async def test_valid_seeds_are_forwarded(env: Env, errors_log: Any) -> None:
    """Every valid seed request (both JSON-RPC versions, every REST route) is forwarded and gets
    a 2xx answer or a relayed protocol error."""
    h = env.harness
    cases: list[Case] = []
    for method, seeds in fz.SEEDS_10.items():
        cases += [
            fz.jsonrpc_case(orjson.dumps(fz.rpc(method, p)), "1.0", label="fwd") for p in seeds
        ]
    for method, seeds in fz.SEEDS_03.items():
        cases += [
            fz.jsonrpc_case(orjson.dumps(fz.rpc(method, p)), None, label="fwd") for p in seeds
        ]
    for http, template, body in fz.REST_ROUTES:
        for prefix in ("", "/acme"):
            path = f"/agents/{fz.AGENT}/rest{prefix}{template.format(task='t-1', config='p-1')}"
            raw = orjson.dumps(body) if body is not None else b""
            headers = fz.headers_for("application/a2a+json", "1.0")
            cases.append(Case(http, path, b"", headers, raw, label="fwd"))
    for case in cases:
        outcome = await h.check(case)
        assert outcome.forwarded, f"valid seed not forwarded:\n{case.describe()}"
        assert outcome.sent[0]["status"] < 500, case.describe()
    fz.STATS["valid_seeds"] += len(cases)
    assert_no_errors_logged(errors_log, env)


# -- hypothesis: raw bytes, arbitrary JSON, near-valid envelopes, REST ---------------------------


@fuzz_settings(3000)
@given(
    body=st.one_of(st.binary(max_size=300), st.sampled_from(fz.BYTE_TOKENS)),
    binding=fz.BINDINGS,
    ctype=st.sampled_from(fz.CONTENT_TYPES),
    version=st.sampled_from(fz.A2A_VERSIONS),
    agent=fz.AGENTS,
    splits=fz.SPLITS,
)
async def test_fuzz_raw_bytes(
    env: Env,
    errors_log: Any,
    body: bytes,
    binding: str,
    ctype: str | None,
    version: str | None,
    agent: str,
    splits: tuple[int, ...],
) -> None:
    """Arbitrary bytes as a JSON-RPC or REST body, any Content-Type and A2A-Version, get a
    protocol error (never a 500, a hang or an exception)."""
    case = fz.make_json_case(body, binding, version, ctype, agent, [], "bytes")
    case.splits = splits
    await env.harness.check(case)
    fz.STATS["raw_bytes"] += 1
    assert_no_errors_logged(errors_log, env)


@fuzz_settings(3000)
@given(
    body=st.one_of(fz.json_bodies(), fz.DEEP_BODIES),
    binding=fz.BINDINGS,
    version=st.sampled_from(["1.0", None, "0.3", "1.0"]),
    agent=fz.AGENTS,
)
async def test_fuzz_arbitrary_json(
    env: Env, errors_log: Any, body: bytes, binding: str, version: str | None, agent: str
) -> None:
    """Any JSON document (deep nesting, huge numbers, NaN, surrogate escapes, control, bidi and
    tag characters) as a request body is answered without a 5xx."""
    case = fz.make_json_case(body, binding, version, "application/json", agent, [], "json")
    await env.harness.check(case)
    fz.STATS["arbitrary_json"] += 1
    assert_no_errors_logged(errors_log, env)


async def _check_envelope(
    env: Env,
    envelope: tuple[Any, str | None],
    agent: str,
    ascii_only: bool,
    extra: list[tuple[str, str]],
    ctype: str | None,
) -> None:
    value, version = envelope
    body = fz.dumps(value, ascii_only=ascii_only)
    await env.harness.check(fz.jsonrpc_case(body, version, agent, ctype, "env", extra))


_CTYPES = st.one_of(st.just("application/json"), st.sampled_from(fz.CONTENT_TYPES))


@fuzz_settings(5000)
@given(
    envelope=fz.envelopes(v03=False),
    agent=fz.AGENTS,
    ascii_only=st.booleans(),
    extra=st.one_of(st.just([]), fz.HEADERS_EXTRA),
    ctype=_CTYPES,
)
async def test_fuzz_jsonrpc10_envelopes(
    env: Env,
    errors_log: Any,
    envelope: tuple[Any, str | None],
    agent: str,
    ascii_only: bool,
    extra: list[tuple[str, str]],
    ctype: str | None,
) -> None:
    """Near-valid A2A 1.0 JSON-RPC requests for every method, with mutated params and headers,
    are forwarded or refused with a JSON-RPC error, never a 5xx."""
    await _check_envelope(env, envelope, agent, ascii_only, extra, ctype)
    fz.STATS["jsonrpc10"] += 1
    assert_no_errors_logged(errors_log, env)


@fuzz_settings(5000)
@given(
    envelope=fz.envelopes(v03=True),
    agent=fz.AGENTS,
    ascii_only=st.booleans(),
    extra=st.one_of(st.just([]), fz.HEADERS_EXTRA),
    ctype=_CTYPES,
)
async def test_fuzz_jsonrpc03_envelopes(
    env: Env,
    errors_log: Any,
    envelope: tuple[Any, str | None],
    agent: str,
    ascii_only: bool,
    extra: list[tuple[str, str]],
    ctype: str | None,
) -> None:
    """Near-valid A2A 0.3 JSON-RPC requests for every method (translated to 1.0 by the gateway)
    are forwarded or refused with a JSON-RPC error, never a 5xx."""
    await _check_envelope(env, envelope, agent, ascii_only, extra, ctype)
    fz.STATS["jsonrpc03"] += 1
    assert_no_errors_logged(errors_log, env)


_REST_BODIES = st.one_of(
    st.just(b""),
    fz.json_bodies(fz.PARAMS_10["SendMessage"]),
    fz.json_bodies(fz.PARAMS_10["CreateTaskPushNotificationConfig"]),
    fz.json_bodies(),
    st.binary(max_size=100),
)


@fuzz_settings(4000)
@given(
    http=st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "get", "X"]),
    agent=st.sampled_from([fz.AGENT, fz.AGENT, fz.MISSING_AGENT, fz.ROUTER, "%2e%2e", "a" * 300]),
    sub=fz.rest_paths(),
    elsewhere=st.one_of(
        st.just(None), st.just(None), st.just(None), st.sampled_from(fz.OTHER_PATHS)
    ),
    query=st.one_of(
        st.sampled_from(fz.REST_QUERIES),
        st.binary(max_size=60),
        st.text(max_size=30).map(lambda s: s.encode("utf-8", "surrogatepass")),
    ),
    body=st.one_of(_REST_BODIES),
    ctype=st.sampled_from(["application/a2a+json", "application/a2a+json", *fz.CONTENT_TYPES]),
    version=st.sampled_from(["1.0", *fz.A2A_VERSIONS]),
    extra=st.one_of(st.just([]), fz.HEADERS_EXTRA),
)
async def test_fuzz_rest_requests(
    env: Env,
    errors_log: Any,
    http: str,
    agent: str,
    sub: str,
    query: bytes,
    body: bytes,
    ctype: str | None,
    version: str | None,
    extra: list[tuple[str, str]],
    elsewhere: str | None,
) -> None:
    """REST requests (method x path with tenant prefixes, percent-encoding, '..', long segments
    and colons x query x body; sometimes other gateway paths) are answered with a result or a
    google.rpc.Status error."""
    headers = fz.headers_for(ctype, version, extra)
    path = elsewhere if elsewhere is not None else f"/agents/{agent}/rest{sub}"
    case = Case(http, path, query, headers, body, label="rest")
    await env.harness.check(case)
    fz.STATS["rest_hypothesis"] += 1
    assert_no_errors_logged(errors_log, env)


@fuzz_settings(600)
@given(
    method=st.sampled_from(sorted(fz.SEEDS_10)),
    text=fz.TEXT,
    parts=st.lists(fz.PART_10, max_size=3),
    binding=st.sampled_from(["jsonrpc10", "jsonrpc03", "rest", "router"]),
    leave_early=st.sampled_from([False, False, False, True]),
)
async def test_fuzz_forwarded_requests(
    env: Env,
    errors_log: Any,
    method: str,
    text: str,
    parts: list[Any],
    binding: str,
    leave_early: bool,
) -> None:
    """Valid requests with hostile text and parts travel to the echo agent and back (unary and
    streaming, both versions, both bindings; the client sometimes leaving mid-stream) and are
    answered without a 5xx, a hang or an exception."""
    params = orjson.loads(orjson.dumps(fz.SEEDS_10[method][0]))
    if "message" in params:
        params["message"]["parts"] = [{"text": text}, *parts]
        if binding == "router":
            params["message"]["metadata"] = {"skillId": "echo"}
    if binding == "rest":
        case = _rest_case_for(method, params)
    else:
        version = "1.0"
        body_params: Any = params
        name = method
        if binding == "jsonrpc03":
            from maestro_gateway.a2a import compat03

            try:
                name, body_params = compat03.request_to_03(method, params)
            except Exception:  # not expressible in 0.3: send it as 1.0 instead
                name, body_params = method, params
            else:
                version = None
        agent = fz.ROUTER if binding == "router" else fz.AGENT
        body = fz.dumps(fz.rpc(name, body_params), ascii_only=False)
        case = fz.jsonrpc_case(body, version, agent, label="fwd")
    case.leave_early = leave_early
    await env.harness.check(case)
    fz.STATS["forwarded"] += 1
    assert_no_errors_logged(errors_log, env)


def _rest_case_for(method: str, params: dict[str, Any]) -> Case:
    routes = {
        "SendMessage": ("POST", "/message:send", True),
        "SendStreamingMessage": ("POST", "/message:stream", True),
        "GetTask": ("GET", "/tasks/t-1", False),
        "ListTasks": ("GET", "/tasks", False),
        "CancelTask": ("POST", "/tasks/t-1:cancel", True),
        "SubscribeToTask": ("GET", "/tasks/t-1:subscribe", False),
        "CreateTaskPushNotificationConfig": ("POST", "/tasks/t-1/pushNotificationConfigs", True),
        "GetTaskPushNotificationConfig": ("GET", "/tasks/t-1/pushNotificationConfigs/p", False),
        "ListTaskPushNotificationConfigs": ("GET", "/tasks/t-1/pushNotificationConfigs", False),
        "DeleteTaskPushNotificationConfig": (
            "DELETE",
            "/tasks/t-1/pushNotificationConfigs/p",
            False,
        ),
        "GetExtendedAgentCard": ("GET", "/extendedAgentCard", False),
    }
    http, path, with_body = routes[method]
    body = fz.dumps(params, ascii_only=False) if with_body else b""
    headers = fz.headers_for("application/a2a+json", "1.0")
    return Case(http, f"/agents/{fz.AGENT}/rest{path}", b"", headers, body, label="fwd")


# -- body size around the limit -------------------------------------------------------------------


async def test_body_size_around_the_limit(env: Env, errors_log: Any) -> None:
    """Bodies just under, at and over the 1 MiB limit, in one or many chunks, with truthful or
    lying Content-Length, are accepted or refused with 413, never a 5xx."""
    h = env.harness
    n = 0
    prefix = b'{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":'
    prefix += b'{"messageId":"m","role":"ROLE_USER","parts":[{"text":"'
    suffix = b'"}]}}}'
    rnd = random.Random(0x1)
    for size in (fz.LIMIT - 1, fz.LIMIT, fz.LIMIT + 1, fz.LIMIT + 4096, 2 * fz.LIMIT):
        filler = size - len(prefix) - len(suffix)
        for fill in (b"a", b"\xc3\xa9"):
            body = prefix + (fill * (filler // len(fill) + 1))[:filler] + suffix
            assert len(body) == size
            for splits in ((), (1,), tuple(range(65536, size, 65536)), (size - 1,)):
                for lie in (None, "0", str(size), str(size + 100), "abc"):
                    for binding in ("jsonrpc", "rest-send"):
                        extra = [("content-length", lie)] if lie else []
                        case = fz.make_json_case(
                            body, binding, "1.0", "application/json", fz.AGENT, extra, "limit"
                        )
                        case.splits = splits
                        outcome = await h.check(case)
                        status = outcome.sent[0]["status"]
                        if size > fz.LIMIT:
                            assert status == 413, case.describe()
                        n += 1
    for _ in range(200):  # random sizes near the limit, random chunking, some disconnects
        size = fz.LIMIT + rnd.randint(-64, 64)
        body = bytes(rnd.randrange(256) for _ in range(64)) * (size // 64) + b"x" * (size % 64)
        case = fz.make_json_case(
            body,
            rnd.choice(["jsonrpc", "rest-send"]),
            "1.0",
            "application/json",
            rnd.choice([fz.AGENT, fz.ROUTER]),
            [],
            "limit",
        )
        case.splits = tuple(sorted(rnd.randint(0, size) for _ in range(rnd.randint(0, 20))))
        case.disconnect = rnd.random() < 0.1
        await h.check(case)
        n += 1
    fz.STATS["body_limit"] += n
    assert_no_errors_logged(errors_log, env)


# -- the seeded mutation loops (the volume) -------------------------------------------------------


@pytest.mark.timeout(300)
@pytest.mark.parametrize("family", sorted(MUTATION_RUNS))
async def test_mutation_fuzz(
    env: Env, errors_log: Any, family: str, request: pytest.FixtureRequest
) -> None:
    """Seeded random mutations (structural and byte-level) of valid requests of one family
    never get a 5xx for unforwarded input, a hang, an exception or a malformed error body."""
    base_seed, total = MUTATION_RUNS[family]
    total = max(1, int(total * SCALE))
    rnd = random.Random(base_seed if FUZZ_SEED is None else base_seed ^ FUZZ_SEED)
    seeds = fz.seed_bodies()
    h = env.harness
    failures = Failures()
    forwarded_before = h.forwards
    started = time.perf_counter()
    for _ in range(total):
        case = fz.mutation_case(rnd, family, seeds)
        try:
            await h.check(case)
        except FuzzFailure as exc:
            failures.add(exc)
    elapsed = time.perf_counter() - started
    fz.STATS[f"mutation-{family}"] += total
    forwarded = h.forwards - forwarded_before
    report(
        request,
        f"\n[fuzz] mutation {family}: {total} cases in {elapsed:.1f}s, "
        f"{forwarded} forwarded, {failures.count} failing",
    )
    failures.raise_if_any()
    assert forwarded > total // 100, "almost nothing was forwarded: the seeds are broken"
    assert_no_errors_logged(errors_log, env)


# -- totals and the registry ----------------------------------------------------------------------


async def test_fuzz_totals_and_registry_unchanged(env: Env, request: pytest.FixtureRequest) -> None:
    """After the whole fuzz run (>= 100,000 cases) the registry holds the same agents and
    versions and the directory routes to the same upstreams."""
    assert await registry_snapshot(env.app) == env.registry_before
    ran = {name for name, n in fz.STATS.items() if n}
    statuses = dict(sorted(env.harness.statuses.items()))
    report(
        request,
        f"\n[fuzz] cases: {sum(fz.STATS.values())} total {dict(fz.STATS)}; "
        f"forwarded {env.harness.forwards}; statuses {statuses}; dns {dict(env.dns)}; "
        f"known bugs hit {dict(env.harness.known)}",
    )
    if not ran >= FUZZ_TESTS:
        pytest.skip(f"only part of the fuzz suite ran (missing {sorted(FUZZ_TESTS - ran)})")
    if SCALE < 1:
        pytest.skip(f"FUZZ_SCALE={SCALE}: the {MIN_TOTAL} case minimum is not checked")
    assert sum(fz.STATS.values()) >= MIN_TOTAL


# -- regressions: bugs this fuzzer found (fixed in cd125cf) ---------------------------------------


async def test_router_rule_match_on_non_string_text_part_is_refused(env: Env) -> None:
    """A SendMessage to the router agent whose text part is not a string gets a protocol error,
    not an internal error (routing by rule used to join the texts unchecked: TypeError)."""
    params = {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": 1}]}}
    for parts in ([{"text": 1}], [{"text": ["report"]}], 7):
        params["message"]["parts"] = parts
        case = fz.jsonrpc_case(orjson.dumps(fz.rpc("SendMessage", params)), "1.0", agent=fz.ROUTER)
        fz.check_outcome(case, await env.harness.run(case))
        body = orjson.dumps(params)
        path = f"/agents/{fz.ROUTER}/rest/message:send"
        rest_case = Case("POST", path, b"", fz.headers_for("application/a2a+json", "1.0"), body)
        fz.check_outcome(rest_case, await env.harness.run(rest_case))


async def test_non_ascii_digit_in_rest_int_query_is_refused(env: Env) -> None:
    """GET /tasks with historyLength or pageSize made of Unicode digits (superscript,
    Arabic-Indic, fullwidth) gets 400 INVALID_ARGUMENT, not a 500 (str.isdigit() let them reach
    int())."""
    headers = fz.headers_for(None, "1.0")
    for query in ("historyLength=\u00b2", "pageSize=\u0663", "historyLength=\uff11"):
        case = Case("GET", f"/agents/{fz.AGENT}/rest/tasks", query.encode(), headers)
        outcome = await env.harness.run(case)
        assert fz.check_outcome(case, outcome) == 400, case.describe()
