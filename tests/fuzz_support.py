"""Fuzzing support for ``tests/test_fuzz.py``: an in-process ASGI driver for the real gateway,
the per-case oracle, hypothesis strategies and a fast seeded mutation engine.

Nothing here opens a client connection: requests are hand-built ASGI scopes fed to
``Gateway.__call__``. Only accepted requests travel on, over loopback, to the echo agent.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import ipaddress
import itertools
import json
import logging
import random
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import orjson
from hypothesis import strategies as st

from maestro_gateway.a2a.methods import METHODS_10 as A2A_METHODS_10
from maestro_gateway.app import Gateway
from maestro_gateway.guards._ssrf import SsrfError, SsrfPolicy

AGENT = "echo"  # registered, active, forwards to the in-process echo agent
MISSING_AGENT = "no-such-agent"
ROUTER = "router"  # the gateway's virtual routing agent
LIMIT = 1024 * 1024  # validate.max_body_bytes in the default configuration
CHEAP_TIMEOUT = 10.0  # seconds a request may take; generous for a loaded CI runner
FORWARD_TIMEOUT = 20.0

METHODS_10 = sorted(A2A_METHODS_10)
METHODS_03 = [
    "message/send",
    "message/stream",
    "tasks/get",
    "tasks/cancel",
    "tasks/resubscribe",
    "tasks/pushNotificationConfig/set",
    "tasks/pushNotificationConfig/get",
    "tasks/pushNotificationConfig/list",
    "tasks/pushNotificationConfig/delete",
    "agent/getAuthenticatedExtendedCard",
]

# -- cases and outcomes ---------------------------------------------------------------------------


@dataclass
class Case:
    """One HTTP request, as an ASGI server would hand it to the app."""

    method: str = "POST"
    raw_path: str = f"/agents/{AGENT}"  # as on the wire: ASCII, percent-encoded
    query: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    splits: tuple[int, ...] = ()  # body chunk boundaries (more_body=True between them)
    disconnect: bool = False  # the client goes away instead of sending the last chunk
    leave_early: bool = False  # the client goes away right after the body (e.g. mid-stream)
    label: str = ""

    @property
    def path(self) -> str:
        return unquote(self.raw_path)  # what uvicorn puts in scope["path"]

    def describe(self) -> str:
        body = self.body if len(self.body) <= 600 else self.body[:600] + b"...(truncated)"
        return (
            f"[{self.label}] {self.method} {self.raw_path[:300]!r} query={self.query[:200]!r}\n"
            f"  headers={self.headers!r}\n  body({len(self.body)} bytes)={body!r}\n"
            f"  splits={self.splits} disconnect={self.disconnect} leave_early={self.leave_early}"
        )


@dataclass
class Outcome:
    sent: list[dict[str, Any]]
    forwarded: bool
    elapsed: float
    error: BaseException | None = None
    timed_out: bool = False
    log_errors: list[logging.LogRecord] = field(default_factory=list)


class FuzzFailure(AssertionError):
    pass


STATS: Counter[str] = Counter()  # per-test case counts, reported by the summary test


# -- the in-process driver ------------------------------------------------------------------------


class Harness:
    """Drives the gateway app with hand-built ASGI messages and checks every answer."""

    def __init__(self, app: Gateway) -> None:
        self.app = app
        self.forwarded = False
        self.statuses: Counter[int] = Counter()
        self.forwards = 0
        self.known: Counter[str] = Counter()  # failures matching a KNOWN_BUGS entry
        self.tolerated: list[logging.LogRecord] = []  # the ERROR records of those failures
        self._records: list[logging.LogRecord] = []
        self.log_handler = _ListHandler(self._records)
        up = app.upstream
        call_json, stream = up.call_json, up.stream

        async def counting_call_json(*args: Any, **kwargs: Any) -> Any:
            self.forwarded = True
            return await call_json(*args, **kwargs)

        def counting_stream(*args: Any, **kwargs: Any) -> Any:
            self.forwarded = True
            return stream(*args, **kwargs)

        up.call_json = counting_call_json  # type: ignore[method-assign]
        up.stream = counting_stream  # type: ignore[method-assign]

    async def run(self, case: Case) -> Outcome:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": case.method,
            "scheme": "http",
            "path": case.path,
            "raw_path": case.raw_path.encode("latin-1", "replace"),
            "query_string": case.query,
            "root_path": "",
            "headers": list(case.headers),
            "client": ("203.0.113.7", 50123),  # not loopback: no admin rights
            "server": ("gateway.invalid", 80),
            "state": {},
        }
        bounds = [0, *sorted(b for b in case.splits if 0 < b < len(case.body)), len(case.body)]
        messages: list[dict[str, Any]] = [
            {"type": "http.request", "body": case.body[a:b], "more_body": True}
            for a, b in itertools.pairwise(bounds)
        ] or [{"type": "http.request", "body": b"", "more_body": True}]
        if case.disconnect:
            messages[-1] = {"type": "http.disconnect"}
        else:
            messages[-1]["more_body"] = False
        done = asyncio.Event()
        sent: list[dict[str, Any]] = []
        pending = iter(messages)

        async def receive() -> dict[str, Any]:
            message = next(pending, None)
            if message is not None:
                return message
            if case.leave_early:
                await asyncio.sleep(0)  # let the request reach the upstream, then leave
                return {"type": "http.disconnect"}
            await done.wait()  # like a server: nothing more until the client goes away
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                done.set()

        self.forwarded = False
        self._records.clear()
        started = time.perf_counter()
        outcome = Outcome(sent, False, 0.0)
        timeout = FORWARD_TIMEOUT if case.label.startswith("fwd") else CHEAP_TIMEOUT
        try:
            await asyncio.wait_for(self.app(scope, receive, send), timeout)
        except TimeoutError:
            outcome.timed_out = True
        except Exception as exc:  # anything escaping the app is a finding
            outcome.error = exc
        done.set()
        outcome.log_errors = list(self._records)
        outcome.elapsed = time.perf_counter() - started
        outcome.forwarded = self.forwarded
        self.forwards += self.forwarded
        return outcome

    async def check(self, case: Case) -> Outcome:
        """Run ``case`` and raise FuzzFailure when the answer breaks the oracle."""
        outcome = await self.run(case)
        try:
            status = check_outcome(case, outcome)
        except AssertionError as exc:
            bug = known_bug(case, outcome)
            if bug is not None:
                self.known[bug] += 1
                self.tolerated.extend(outcome.log_errors)
                return outcome
            logs = "".join(
                f"\n  logged {r.levelname} {r.name}: {r.getMessage()}\n{r.exc_text or ''}"
                for r in outcome.log_errors[:2]
            )
            raise FuzzFailure(
                f"{exc}\n{case.describe()}\n  sent={_show_sent(outcome)}{logs}"
            ) from outcome.error
        self.statuses[status] += 1
        return outcome


class _ListHandler(logging.Handler):
    """Keeps the ERROR records logged while one case runs (with their tracebacks)."""

    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.ERROR)
        self.records = records
        self.setFormatter(logging.Formatter())

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatter.formatException(record.exc_info)  # type: ignore[union-attr]
        self.records.append(record)


def _show_sent(outcome: Outcome) -> str:
    out = []
    for m in outcome.sent:
        m = dict(m)
        if isinstance(m.get("body"), bytes) and len(m["body"]) > 800:
            m["body"] = m["body"][:800] + b"..."
        out.append(m)
    return f"{out!r} forwarded={outcome.forwarded} elapsed={outcome.elapsed:.3f}s"


# -- the oracle -----------------------------------------------------------------------------------


def _expected_rpc_id(case: Case) -> tuple[bool, Any]:
    """(True, id) when the body is a JSON-RPC object whose id the gateway must echo."""
    try:
        obj = orjson.loads(case.body)
    except orjson.JSONDecodeError:
        return False, None
    if not isinstance(obj, dict):
        return False, None
    rid = obj.get("id")
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        return False, None
    if isinstance(rid, str) and len(rid) > 256:
        return False, None
    return True, rid


def _is_rest_error(data: Any, status: int) -> bool:
    err = data.get("error") if isinstance(data, dict) else None
    return (
        isinstance(data, dict)
        and set(data) == {"error"}
        and isinstance(err, dict)
        and type(err.get("code")) is int
        and err["code"] == status
        and isinstance(err.get("status"), str)
        and isinstance(err.get("message"), str)
        and isinstance(err.get("details"), list)
        and all(isinstance(d, dict) and "@type" in d for d in err["details"])
    )


def _check_rpc(data: Any, case: Case, must_echo_id: bool, forwarded: bool) -> None:
    assert isinstance(data, dict), f"JSON-RPC response is not an object: {data!r:.300}"
    assert data.get("jsonrpc") == "2.0", "JSON-RPC response without jsonrpc 2.0"
    assert ("result" in data) != ("error" in data), "need exactly one of result/error"
    has_id, rid = _expected_rpc_id(case)
    got = data.get("id", "<absent>")
    if "result" in data or must_echo_id:
        assert has_id, f"a response id {got!r} for a request without a usable id"
        assert type(got) is type(rid), f"id {got!r} != {rid!r}"
        assert got == rid, f"id {got!r} != {rid!r}"
    else:
        assert got is None or (has_id and type(got) is type(rid) and got == rid), (
            f"error id {got!r} is neither null nor the request id {rid!r}"
        )
    if "error" in data:
        err = data["error"]
        assert isinstance(err, dict), "error is not an object"
        assert type(err.get("code")) is int, f"error.code not an int: {err!r:.300}"
        assert isinstance(err.get("message"), str), "error.message not a string"
        assert isinstance(err.get("data"), list), f"error.data not a list: {err!r:.300}"
        assert err["code"] != -32603 or forwarded, f"internal error, not forwarded: {err!r:.300}"


def _headers(start: dict[str, Any]) -> dict[bytes, bytes]:
    hdrs = start.get("headers", [])
    assert all(
        isinstance(h, (tuple, list)) and len(h) == 2 and all(isinstance(x, bytes) for x in h)
        for h in hdrs
    ), f"bad response headers {hdrs!r}"
    return {k.lower(): v for k, v in hdrs}


def check_outcome(case: Case, out: Outcome) -> int:
    """The oracle. Returns the HTTP status; raises AssertionError on any violation."""
    assert not out.timed_out, "the app did not finish in time (hang)"
    assert out.error is None, f"an exception escaped the app: {out.error!r}"
    status = _check_response(case, out)
    assert not out.log_errors, f"ERROR logged: {out.log_errors[0].getMessage()}"
    return status


def _check_response(case: Case, out: Outcome) -> int:
    sent = out.sent
    if case.disconnect and not sent:
        return 499  # the client left before the request was complete: nothing to answer
    if case.leave_early:  # whatever was sent must still be a well-formed (partial) response
        assert not sent or sent[0]["type"] == "http.response.start", "body before start"
        assert [m["type"] for m in sent].count("http.response.start") <= 1, "two starts"
        if not sent or sent[-1].get("more_body", False):
            return 499
    assert sent, "no response at all"
    start = sent[0]
    assert start["type"] == "http.response.start", f"first message is {start['type']}"
    assert all(m["type"] == "http.response.body" for m in sent[1:]), "a second response start"
    assert len(sent) >= 2, "no response body message"
    assert not sent[-1].get("more_body", False), "the response body never ended"
    assert all(m.get("more_body", False) for m in sent[1:-1]), "messages after the body ended"
    status = start["status"]
    assert type(status) is int, f"bad status {status!r}"
    assert 200 <= status <= 599, f"bad status {status!r}"
    if status >= 500:
        assert status in (502, 503, 504), f"HTTP {status}"
        assert out.forwarded, f"HTTP {status} for a request that was never forwarded"
    hdrs = _headers(start)
    body = b"".join(m.get("body", b"") for m in sent[1:])
    if b"content-length" in hdrs:
        assert int(hdrs[b"content-length"]) == len(body), "content-length does not match"
    ctype = hdrs.get(b"content-type", b"").split(b";")[0].strip()
    path, method = case.path, case.method
    parts = path.split("/")
    agent_path = path.startswith("/agents/") and len(parts) > 2 and parts[2] != ""
    jsonrpc = agent_path and len(parts) == 3  # POST /agents/{id}
    if ctype == b"text/event-stream":
        assert status == 200, f"SSE with HTTP {status}"
        assert out.forwarded, "SSE for a request that was not forwarded"
        _check_sse(body, case, jsonrpc)
        return status
    if path == "/metrics" and method == "GET":
        return status
    assert ctype in (b"application/json", b"application/a2a+json"), f"content-type {ctype!r}"
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise AssertionError(f"response body is not JSON: {exc}") from None
    if jsonrpc and method == "POST" and status == 200:
        _check_rpc(data, case, False, out.forwarded)
    elif status >= 400:
        if jsonrpc and isinstance(data, dict) and "jsonrpc" in data:
            _check_rpc(data, case, False, out.forwarded)
            assert "error" in data, f"HTTP {status} with a JSON-RPC result"
        else:
            assert _is_rest_error(data, status), (
                f"HTTP {status} body not an A2A error: {data!r:.400}"
            )
    return status


def _check_sse(body: bytes, case: Case, jsonrpc: bool) -> None:
    events = [e for e in body.split(b"\n\n") if e]
    assert events, "an SSE response without events"
    assert body.endswith(b"\n\n"), "SSE body does not end with a blank line"
    for i, event in enumerate(events):
        assert event.startswith(b"data: "), f"bad SSE event {event!r:.200}"
        assert b"\n" not in event, f"multi-line SSE event {event!r:.200}"
        data = orjson.loads(event[6:])
        if jsonrpc:
            _check_rpc(data, case, True, True)
            if "error" in data:
                assert i == len(events) - 1, "an SSE error event that is not the last"
        else:
            assert isinstance(data, dict), f"REST stream event not an object: {data!r:.200}"
            if "error" in data:
                assert _is_rest_error(data, data["error"].get("code")), "bad REST stream error"
                assert i == len(events) - 1, "an SSE error event that is not the last"


# -- known bugs -----------------------------------------------------------------------------------
# While a bug the fuzzer found is open, an entry here (name -> predicate on the case and outcome)
# tolerates exactly that failure, next to an xfail(strict=True) reproduction in test_fuzz.py, so
# the fuzz run stays green; the totals line reports how often each was hit. When the fix lands the
# strict xfail XPASSes: delete the entry and turn the reproduction into a regression test.
KNOWN_BUGS: dict[str, Callable[[Case, Outcome], bool]] = {}


def known_bug(case: Case, out: Outcome) -> str | None:
    for name, matches in KNOWN_BUGS.items():
        if matches(case, out):
            return name
    return None


# -- DNS safety net -------------------------------------------------------------------------------


def safe_host(host: str) -> bool:
    """Hosts the fuzzer may let the gateway resolve: .invalid names, localhost, IP literals."""
    h = host.lower().rstrip(".")
    if any(c <= " " or c == "\x7f" for c in h):
        return False  # the C resolver may cut the name at a NUL and look up the rest
    if h == "localhost" or h.endswith(".invalid") or h == "invalid":
        return True
    try:
        ipaddress.ip_address(h.split("%", 1)[0])
        return True
    except ValueError:
        pass
    if h and all(c in "0123456789abcdefx." for c in h):
        try:
            socket.inet_aton(h)  # 127.1, 0x7f.0.0.1, 2130706433: numeric, no DNS
            return True
        except OSError:
            return False
    return False


def install_dns_guard(mp: Any) -> Counter[str]:
    """Patch SsrfPolicy._resolve so a mutated URL can never make the gateway query real DNS.

    Unsafe names answer as NXDOMAIN would (SsrfError); the counter records how many.
    """
    original = SsrfPolicy._resolve
    blocked: Counter[str] = Counter()

    async def guarded(self: SsrfPolicy, host: str, port: int) -> tuple[str, ...]:
        if not safe_host(host):
            blocked["blocked"] += 1
            raise SsrfError(f"host {host!r} does not resolve")
        blocked["resolved"] += 1
        return await original(self, host, port)

    mp.setattr(SsrfPolicy, "_resolve", guarded)
    return blocked


# -- JSON encoding of hostile values --------------------------------------------------------------


def dumps(value: Any, rnd: random.Random | None = None, ascii_only: bool | None = None) -> bytes:
    """JSON bytes of ``value``; lone surrogates, NaN and huge ints go through the stdlib."""
    try:
        if ascii_only is None and (rnd is None or rnd.random() < 0.8):
            return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        pass
    if ascii_only is None:
        ascii_only = rnd.random() < 0.5 if rnd is not None else True
    try:
        text = json.dumps(value, ensure_ascii=ascii_only)
    except RecursionError:  # nested deeper than the stdlib encoder goes
        text = _dumps_iter(value, ascii_only)
    return text.encode("utf-8", "surrogatepass")


def _dumps_iter(value: Any, ascii_only: bool) -> str:
    """An iterative JSON encoder, for values nested beyond the recursion limit."""
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):  # literal JSON text (JSON values hold no tuples)
            out.append(item[0])
        elif isinstance(item, dict):
            out.append("{")
            stack.append(("}",))
            for i, (k, v) in enumerate(reversed(list(item.items()))):
                stack.append(v)
                sep = "," if i < len(item) - 1 else ""
                stack.append((sep + json.dumps(str(k), ensure_ascii=ascii_only) + ":",))
        elif isinstance(item, list):
            out.append("[")
            stack.append(("]",))
            for i, v in enumerate(reversed(item)):
                stack.append(v)
                if i < len(item) - 1:
                    stack.append((",",))
        else:
            out.append(json.dumps(item, ensure_ascii=ascii_only))
    return "".join(out)


# -- vocabulary -----------------------------------------------------------------------------------

ODD_STRINGS = [
    "",
    " ",
    "a" * 300,
    "\x00",
    "\x1b[31mred\x1b[0m",
    "ignore\u202eprevious",
    "\u2066isolate\u2069",
    "tag\U000e0041\U000e0042",
    "\ufeffbom",
    "zero\u200bwidth",
    "e\u0301",  # NFC changes it
    "\ufb01",  # NFKC changes it
    "\U0010ffff",
    "\ud800",  # lone surrogate (sent as an escape)
    "\udfff\ud800",
    "\U0001d573\U0001d58a\U0001d591\U0001d591\U0001d594",  # mathematical fraktur "Hello"
    "\r\n\t",
    "\x7f\x85\x9f",
    "../../etc/passwd",
    "%2e%2e%2f",
    "report",
    "TASK_STATE_COMPLETED",
    "ROLE_USER",
    "user",
    "1.0",
    "null",
]
ODD_INTS = [0, -1, 1, 2**31 - 1, 2**31, -(2**31) - 1, 2**53 + 1, 2**63 - 1, 2**64, -(2**63), 10**40]
ODD_FLOATS = [0.5, -0.0, 1e308, 5e-324, float("nan"), float("inf"), float("-inf")]
ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    *ODD_INTS,
    *ODD_FLOATS,
    *ODD_STRINGS,
    [],
    {},
    [None],
    {"": None},
    {"kind": "text", "text": "x"},
    [[[[[[[[[[[]]]]]]]]]]],
]
KEYS = [
    "message",
    "messageId",
    "role",
    "parts",
    "text",
    "raw",
    "url",
    "data",
    "kind",
    "file",
    "uri",
    "bytes",
    "mimeType",
    "mediaType",
    "filename",
    "name",
    "metadata",
    "contextId",
    "taskId",
    "id",
    "configuration",
    "historyLength",
    "returnImmediately",
    "blocking",
    "acceptedOutputModes",
    "pushNotificationConfig",
    "taskPushNotificationConfig",
    "authentication",
    "schemes",
    "scheme",
    "credentials",
    "token",
    "tenant",
    "pageSize",
    "pageToken",
    "status",
    "includeArtifacts",
    "skillId",
    "pushNotificationConfigId",
    "referenceTaskIds",
    "extensions",
    "data_part_compat",
    "value",
    "__proto__",
    "",
]
SAFE_HOSTS = [
    "agent.invalid",
    "x.y.invalid",
    "INVALID",
    "xn--nxasmq6b.invalid",
    "localhost",
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f.0.0.1",
    "0.0.0.0",
    "10.0.0.1",
    "169.254.169.254",
    "192.168.1.1",
    "100.64.0.1",
    "8.8.8.8",
    "1.1.1.1",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:8.8.8.8]",
    "[fe80::1%25eth0]",
    "[2001:4860:4860::8888]",
    "[fd00::1]",
    "[::]",
    "metadata.invalid",
    "h\u00e9.invalid",
    "a..invalid",
]
ODD_URLS = [
    "",
    "http://",
    "https:///path",
    "file:///etc/passwd",
    "gopher://agent.invalid:70/_x",
    "javascript:alert(1)",
    "data:text/plain;base64,AAAA",
    "ftp://agent.invalid/x",
    "//agent.invalid/x",
    "http://user:pw@agent.invalid/",
    "http://@8.8.8.8/",
    "http://agent.invalid:99999/",
    "http://agent.invalid:-1/",
    "http://agent.invalid:abc/",
    "http://[::1/",
    "http://[::1]:80/",
    "http://8.8.8.8#@127.0.0.1/",
    "http://127.0.0.1\\@8.8.8.8/",
    "HTTP://8.8.8.8/",
    "http://8.8.8.8/" + "a" * 3000,
    "http://8.8.8.8/%00%ff%2e%2e/",
    "http://metadata.google.internal/",
    "http://metadata/computeMetadata",
    "https://8.8.8.8:443/hook",
    "http://agent.invalid\r\nX-Injected: 1/",
    "http://\u00e9.invalid/",
    "http://[fe80::1%25eth0]/",
]


def odd_url(rnd: random.Random) -> str:
    if rnd.random() < 0.4:
        return rnd.choice(ODD_URLS)
    scheme = rnd.choice(["http", "https", "HTTPS", "ftp", "ws", "", "http:"])
    userinfo = rnd.choice(["", "", "", "u@", "u:p@", ":@"])
    host = rnd.choice(SAFE_HOSTS)
    port = rnd.choice(["", "", ":80", ":0", ":65535", ":65536", ":8080", ":", ":x"])
    path = rnd.choice(["", "/", "/hook", "/%2e%2e/%2f", "/a?b=c#d", "/" + "x" * 200])
    return f"{scheme}://{userinfo}{host}{port}{path}"


# -- valid seeds: (1.0 method | 0.3 method) -> params --------------------------------------------


def message_10(text: str = "hello report", **extra: Any) -> dict[str, Any]:
    return {"messageId": "m-1", "role": "ROLE_USER", "parts": [{"text": text}], **extra}


def message_03(text: str = "hello report", **extra: Any) -> dict[str, Any]:
    parts = [{"kind": "text", "text": text}]
    return {"kind": "message", "messageId": "m-1", "role": "user", "parts": parts, **extra}


PARTS_10 = [
    {"text": "plain"},
    {"raw": base64.b64encode(b"\x00\x01binary").decode(), "mediaType": "application/octet-stream"},
    {"url": "https://8.8.8.8/file.txt", "filename": "file.txt", "mediaType": "text/plain"},
    {"data": {"k": [1, 2, {"z": None}]}},
    {"data": [1, "two"], "metadata": {"m": 1}},
]
PARTS_03 = [
    {"kind": "text", "text": "plain"},
    {"kind": "file", "file": {"bytes": "AAEC", "mimeType": "application/octet-stream"}},
    {"kind": "file", "file": {"uri": "https://8.8.8.8/f.txt", "name": "f.txt"}},
    {"kind": "data", "data": {"k": 1}},
    {"kind": "data", "data": {"value": 3}, "metadata": {"data_part_compat": True}},
]
PUSH_10 = {"url": "https://8.8.8.8/hook", "token": "tok", "authentication": {"scheme": "Bearer"}}
PUSH_03 = {
    "url": "https://8.8.8.8/hook",
    "token": "tok",
    "authentication": {"schemes": ["Bearer"], "credentials": "c"},
}

SEEDS_10: dict[str, list[dict[str, Any]]] = {
    "SendMessage": [
        {"message": message_10()},
        {
            "message": message_10(parts=PARTS_10, contextId="c1", metadata={"skillId": "echo"}),
            "configuration": {
                "acceptedOutputModes": ["text/plain"],
                "historyLength": 3,
                "returnImmediately": False,
            },
            "metadata": {"x": 1},
        },
    ],
    "SendStreamingMessage": [{"message": message_10("stream me")}],
    "GetTask": [{"id": "t-1"}, {"id": "t-1", "historyLength": 2, "tenant": "acme"}],
    "ListTasks": [{}, {"contextId": "c1", "pageSize": 10, "status": "TASK_STATE_WORKING"}],
    "CancelTask": [{"id": "t-1"}, {"id": "t-1", "metadata": {"why": "x"}}],
    "SubscribeToTask": [{"id": "t-1"}],
    "CreateTaskPushNotificationConfig": [{"taskId": "t-1", **PUSH_10}],
    "GetTaskPushNotificationConfig": [{"taskId": "t-1", "id": "p-1"}],
    "ListTaskPushNotificationConfigs": [{"taskId": "t-1", "pageSize": 5}],
    "DeleteTaskPushNotificationConfig": [{"taskId": "t-1", "id": "p-1"}],
    "GetExtendedAgentCard": [{}, {"tenant": "acme"}],
}
SEEDS_03: dict[str, list[dict[str, Any]]] = {
    "message/send": [
        {"message": message_03()},
        {
            "message": message_03(parts=PARTS_03, contextId="c1", metadata={"skillId": "echo"}),
            "configuration": {
                "acceptedOutputModes": ["text/plain"],
                "historyLength": 0,
                "blocking": True,
                "pushNotificationConfig": PUSH_03,
            },
        },
    ],
    "message/stream": [{"message": message_03("stream me")}],
    "tasks/get": [{"id": "t-1"}, {"id": "t-1", "historyLength": 4, "metadata": {}}],
    "tasks/cancel": [{"id": "t-1", "metadata": {"a": "b"}}],
    "tasks/resubscribe": [{"id": "t-1"}],
    "tasks/pushNotificationConfig/set": [{"taskId": "t-1", "pushNotificationConfig": PUSH_03}],
    "tasks/pushNotificationConfig/get": [{"id": "t-1", "pushNotificationConfigId": "p-1"}],
    "tasks/pushNotificationConfig/list": [{"id": "t-1"}],
    "tasks/pushNotificationConfig/delete": [{"id": "t-1", "pushNotificationConfigId": "p-1"}],
    "agent/getAuthenticatedExtendedCard": [{}],
}

# REST routes: (HTTP method, path template under /rest, 1.0 params seed for the body or None)
REST_ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/message:send", {"message": message_10()}),
    ("POST", "/message:stream", {"message": message_10("stream")}),
    ("GET", "/tasks/{task}", None),
    ("GET", "/tasks", None),
    ("POST", "/tasks/{task}:cancel", {}),
    ("POST", "/tasks/{task}:subscribe", None),
    ("GET", "/tasks/{task}:subscribe", None),
    ("POST", "/tasks/{task}/pushNotificationConfigs", PUSH_10),
    ("GET", "/tasks/{task}/pushNotificationConfigs", None),
    ("GET", "/tasks/{task}/pushNotificationConfigs/{config}", None),
    ("DELETE", "/tasks/{task}/pushNotificationConfigs/{config}", None),
    ("GET", "/extendedAgentCard", None),
]
REST_QUERIES = [
    b"",
    b"historyLength=3",
    b"pageSize=10&pageToken=abc",
    b"contextId=c1&status=TASK_STATE_WORKING&includeArtifacts=true",
    b"statusTimestampAfter=2024-01-01T00:00:00Z",
    b"historyLength=-1",
    b"historyLength=9999999999",
    b"pageSize=%31%30",
    b"includeArtifacts=yes",
    b"unknown=1",
    b"a=%ff%fe",
    b"\xff\xfe=1",
    b"pageSize=1&pageSize=2",
    b"&&&==&",
    b"historyLength=\xd9\xa3",  # an Arabic-Indic digit: str.isdigit() but not ASCII
    b"historyLength=\xc2\xb2",  # superscript two: isdigit() but int() refuses it
    b"pageSize=" + b"9" * 5000,
    b"tenant=t",
]

A2A_VERSIONS: list[str | None] = [
    None,
    "1.0",
    "0.3",
    "1",
    "1.0.0",
    "0.3.0",
    " 1.0 ",
    "",
    "2.0",
    "1.1",
    "0.2",
    "abc",
    "1.0,0.3",
    ".",
    "1..0",
    "1.0\x00",
    "\xe9",
    "9" * 200,
]
CONTENT_TYPES: list[str | None] = [
    "application/json",
    "application/a2a+json",
    "application/json; charset=utf-8",
    'application/json;charset="UTF-8"',
    "APPLICATION/JSON",
    "application/json; charset=latin-1",
    "application/json; charset=utf-16",
    "application/json; boundary=x",
    "application/json;;",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=--x",
    "",
    None,
    "application/json\x00",
    "application/json, text/plain",
    "*/*",
]


OTHER_PATHS = [  # the rest of the gateway's surface, and near misses (the admin API is left out)
    "/",
    "/agents",
    "/agents/",
    "/agents//rest/tasks",
    f"/agents/{AGENT}/",
    f"/agents/{AGENT}/rest",
    f"/agents/{AGENT}/rest/",
    f"/agents/{AGENT}/.well-known/agent-card.json",
    f"/agents/{AGENT}/.well-known/agent.json",
    f"/agents/{MISSING_AGENT}/.well-known/agent-card.json",
    f"/agents/{ROUTER}/.well-known/agent-card.json",
    f"/agents/{AGENT}/other",
    f"/agents/{AGENT}%2Frest%2Ftasks",
    "/.well-known/agent-card.json",
    "/.well-known/jwks.json",
    "/.well-known/maestro-gateway/jwks.json",
    "/healthz",
    "/readyz",
    "/metrics",
    "/%2e%2e/agents/echo",
    "/AGENTS/echo",
]


def headers_for(
    ctype: str | None, version: str | None, extra: list[tuple[str, str]] = ()
) -> list[tuple[bytes, bytes]]:
    out = [(b"host", b"gateway.invalid")]
    if ctype is not None:
        out.append((b"content-type", ctype.encode("latin-1", "replace")))
    if version is not None:
        out.append((b"a2a-version", version.encode("latin-1", "replace")))
    out.extend((k.encode("latin-1", "replace"), v.encode("latin-1", "replace")) for k, v in extra)
    return out


EXTRA_HEADERS = [
    ("x-request-id", "abc-123"),
    ("x-request-id", "bad id with spaces\xff"),
    ("x-request-id", "a" * 100),
    ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    ("traceparent", "00-00000000000000000000000000000000-0000000000000000-01"),
    ("traceparent", "garbage"),
    ("a2a-extensions", "https://ext.invalid/a, https://ext.invalid/b"),
    ("x-a2a-extensions", "urn:x"),
    ("a2a-extensions", "caf\xe9"),
    ("authorization", "Bearer x"),
    ("content-length", "0"),
    ("content-length", "-1"),
    ("content-length", "99999999999999999999"),
    ("transfer-encoding", "chunked"),
    ("content-type", "text/plain"),  # a duplicate: joined with ','
    ("a2a-version", "1.0"),  # a duplicate: joined with ','
]


def rpc(method: Any, params: Any, rid: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}


def jsonrpc_case(
    body: bytes,
    version: str | None,
    agent: str = AGENT,
    ctype: str | None = "application/json",
    label: str = "rpc",
    extra: list[tuple[str, str]] = (),
) -> Case:
    return Case(
        "POST", f"/agents/{agent}", b"", headers_for(ctype, version, extra), body, label=label
    )


# -- the seeded mutation engine -------------------------------------------------------------------


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Locations inside a JSON value (dict keys / list indexes), down to 40 levels."""
    out: list[tuple[Any, ...]] = []
    stack = [(value, prefix)]
    while stack:
        item, path = stack.pop()
        out.append(path)
        if len(path) > 40:
            continue
        if isinstance(item, dict):
            stack.extend((v, (*path, k)) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, (*path, i)) for i, v in enumerate(item))
    return out


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        value = value[p]
    return value


def random_json(rnd: random.Random, depth: int = 0) -> Any:
    r = rnd.random()
    if depth > 3 or r < 0.5:
        return copy.deepcopy(rnd.choice(ODD_VALUES)) if rnd.random() < 0.7 else rnd.choice(KEYS)
    if r < 0.75:
        return [random_json(rnd, depth + 1) for _ in range(rnd.randint(0, 3))]
    return {rnd.choice(KEYS): random_json(rnd, depth + 1) for _ in range(rnd.randint(0, 3))}


def deep(n: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(n):
        value = [value] if i % 2 else {"k": value}
    return value


def mutate_value(rnd: random.Random, root: Any, steps: int, focus: tuple[Any, ...] = ()) -> Any:
    """Apply ``steps`` structural mutations to a deep copy of ``root``.

    Inserted values are fresh copies or the value being replaced (wrapped), so no cycles form.
    Most mutations land at or under ``focus`` (e.g. the JSON-RPC params), when it exists.
    """
    root = orjson.loads(orjson.dumps(root))
    holder = [root]
    odd: Callable[[], Any] = lambda: copy.deepcopy(rnd.choice(ODD_VALUES))  # noqa: E731
    for _ in range(steps):
        paths = _paths(holder[0], (0,))
        if focus and rnd.random() < 0.85:
            n = len(focus) + 1
            paths = (
                [p for p in paths if p[1:n] == focus and len(p) > n]
                or [p for p in paths if p[1:n] == focus]
                or paths
            )
        path = rnd.choice(paths)
        parent = _get(holder, path[:-1])
        key = path[-1]
        current = parent[key]
        op = rnd.random()
        if op < 0.30:  # replace with an odd value
            parent[key] = odd() if rnd.random() < 0.8 else random_json(rnd)
        elif op < 0.42:  # delete
            if isinstance(parent, dict) and len(path) > 1:
                del parent[key]
            elif isinstance(parent, list) and len(path) > 1:
                parent.pop(key)
        elif op < 0.54 and isinstance(current, dict):  # add a field
            current[rnd.choice(KEYS)] = random_json(rnd)
        elif op < 0.62 and isinstance(current, list):  # grow / duplicate elements
            if current and rnd.random() < 0.5:
                current.extend([current[0]] * rnd.choice([1, 2, 70]))  # aliases: no cycles
            else:
                current.append(random_json(rnd))
        elif op < 0.70 and isinstance(current, str):  # perturb a string
            s = rnd.choice(ODD_STRINGS)
            parent[key] = rnd.choice([current + s, s + current, current[: len(current) // 2]])
        elif op < 0.76:  # wrap: a value becomes a list / object holding it
            parent[key] = rnd.choice([[current], {"value": current}, {"kind": "data"}])
        elif op < 0.80:  # nest deeply
            parent[key] = deep(rnd.choice([31, 32, 33, 40, 200, 600]), current)
        elif op < 0.86 and isinstance(current, dict):  # swap in a part of another kind
            current.update(copy.deepcopy(rnd.choice(PARTS_10 + PARTS_03)))
        elif op < 0.93:  # a URL somewhere
            parent[key] = odd_url(rnd)
        elif isinstance(current, (int, float)) and not isinstance(current, bool):
            parent[key] = rnd.choice(ODD_INTS + ODD_FLOATS)
        else:
            parent[key] = copy.deepcopy(rnd.choice(["", "x", 0, None, [], {}]))
    return holder[0]


BYTE_TOKENS = [
    b"{",
    b"}",
    b"[",
    b"]",
    b'"',
    b"\\",
    b",",
    b":",
    b"\\u0000",
    b"\\ud800",
    b"\\udc00\\ud800",
    b"1e999",
    b"-0",
    b"99999999999999999999999",
    b"NaN",
    b"Infinity",
    b"null",
    b"true",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xef\xbb\xbf",
    b"\xf4\x90\x80\x80",
    b'"jsonrpc":"2.0",',
    b'"id":',
    b'"method":"SendMessage"',
    b'"params":',
    b"/*",
    b"\n",
]


def mutate_bytes(rnd: random.Random, data: bytes, other: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rnd.choice([1, 1, 1, 2, 3, 8])):
        op = rnd.random()
        pos = rnd.randint(0, len(b))
        if op < 0.25 and b:  # flip a byte
            i = rnd.randrange(len(b))
            b[i] = rnd.randrange(256) if rnd.random() < 0.5 else b[i] ^ (1 << rnd.randrange(8))
        elif op < 0.45:
            b[pos:pos] = rnd.choice(BYTE_TOKENS)
        elif op < 0.6 and b:  # delete a range
            end = min(len(b), pos + rnd.choice([1, 2, 5, 50]))
            del b[pos:end]
        elif op < 0.7 and b:  # duplicate a range
            start = rnd.randrange(len(b))
            b[pos:pos] = b[start : start + rnd.choice([1, 4, 16, 64])]
        elif op < 0.8:  # truncate
            del b[pos:]
        elif op < 0.9 and other:  # splice from another seed
            start = rnd.randrange(len(other))
            b[pos:] = other[start:]
        else:
            b[pos:pos] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 8)))
    return bytes(b)


def seed_jsonrpc(rnd: random.Random, v03: bool) -> tuple[str, Any, str | None]:
    table = SEEDS_03 if v03 else SEEDS_10
    method = rnd.choice(list(table))
    version = rnd.choice([None, None, "0.3", "0.3.0"]) if v03 else rnd.choice(["1.0", "1.0.2"])
    return method, rnd.choice(table[method]), version


def mutation_case(rnd: random.Random, family: str, seeds: list[bytes]) -> Case:
    """A random mutant of a valid request of ``family`` (jsonrpc10, jsonrpc03 or rest)."""
    if family == "rest":
        return _rest_mutation(rnd, seeds)
    method, params, version = seed_jsonrpc(rnd, family == "jsonrpc03")
    env = rpc(method, params, rnd.choice([1, "req-1", 0, -7]))
    r = rnd.random()
    if r < 0.05:
        value: Any = env  # unmutated: must be forwarded and answered
    elif r < 0.85:
        value = mutate_value(rnd, env, rnd.choice([1, 1, 1, 2, 3, 5]), focus=("params",))
        if rnd.random() < 0.1:  # a method of the other version, or another method
            value = value if not isinstance(value, dict) else {**value}
            if isinstance(value, dict):
                value["method"] = rnd.choice(METHODS_10 + METHODS_03 + ["", "x/y", "SendMessage "])
    else:
        value = None
    body = (
        dumps(value, rnd) if value is not None else mutate_bytes(rnd, dumps(env), rnd.choice(seeds))
    )
    ctype = "application/json" if rnd.random() < 0.95 else rnd.choice(CONTENT_TYPES)
    if rnd.random() < 0.05:
        version = rnd.choice(A2A_VERSIONS)
    agent = AGENT if rnd.random() < 0.85 else rnd.choice([ROUTER, ROUTER, MISSING_AGENT])
    extra = [rnd.choice(EXTRA_HEADERS)] if rnd.random() < 0.1 else []
    case = jsonrpc_case(body, version, agent, ctype, f"mut-{family}", extra)
    _maybe_split(rnd, case)
    return case


def _rest_mutation(rnd: random.Random, seeds: list[bytes]) -> Case:
    http, template, params = rnd.choice(REST_ROUTES)
    task = rnd.choice(["t-1", "t-1", "t%3Acancel", "..", "%2e%2e", "a%2Fb", "x" * 600, "%00", "é"])
    config = rnd.choice(["p-1", "p-1", "", "..", "%2F", "p:1"])
    sub = template.format(task=task, config=config)
    if rnd.random() < 0.3:
        sub = "/" + rnd.choice(["acme", "tasks", "message:send", "%2F", "t" * 300]) + sub
    if rnd.random() < 0.1:
        http = rnd.choice(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
    if rnd.random() < 0.1:
        sub = sub.replace("/", rnd.choice(["//", "/./", "/../", "%2F"]), 1)
    query = rnd.choice(REST_QUERIES) if rnd.random() < 0.5 else b""
    if params is None:
        body = b"" if rnd.random() < 0.8 else dumps(random_json(rnd), rnd)
    elif rnd.random() < 0.85:
        value = mutate_value(rnd, params, rnd.choice([0, 1, 1, 2, 3]))
        body = dumps(value, rnd)
    else:
        body = mutate_bytes(rnd, dumps(params), rnd.choice(seeds))
    ctype = "application/a2a+json" if rnd.random() < 0.95 else rnd.choice(CONTENT_TYPES)
    version = rnd.choice(["1.0", "1.0", "1.0", None, rnd.choice(A2A_VERSIONS)])
    agent = AGENT if rnd.random() < 0.85 else rnd.choice([ROUTER, MISSING_AGENT, "", "%2e%2e"])
    case = Case(
        http,
        f"/agents/{agent}/rest{sub}",
        query,
        headers_for(ctype, version),
        body,
        label="mut-rest",
    )
    _maybe_split(rnd, case)
    return case


def _maybe_split(rnd: random.Random, case: Case) -> None:
    if case.body and rnd.random() < 0.1:
        n = len(case.body)
        case.splits = tuple(sorted(rnd.randint(0, n) for _ in range(rnd.randint(1, 4))))
    if rnd.random() < 0.003:
        case.disconnect = True
    elif rnd.random() < 0.003:
        case.leave_early = True


def seed_bodies() -> list[bytes]:
    out = [dumps(rpc(m, p)) for m, ps in {**SEEDS_10, **SEEDS_03}.items() for p in ps]
    out += [dumps(p) for _, _, p in REST_ROUTES if p is not None]
    return out


# -- hypothesis strategies ------------------------------------------------------------------------

_chars = st.characters(codec=None, exclude_categories=())  # every code point, surrogates too
_special_chars = st.sampled_from(
    [
        *"\x00\x07\x1b\x7f\x85\x9f\u202a\u202e\u2066\u2069\u200b\ufeff\U000e0001\U000e007f",
        *["\ud800", "\udfff", "e", "\u0301", "\ufb01", "A", "z", " ", '"', "\\", "/"],
    ]
)
TEXT = st.one_of(
    st.text(_chars, max_size=20),
    st.text(_special_chars, max_size=12),
    st.sampled_from(ODD_STRINGS),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # unbounded: huge ints too
    st.sampled_from(ODD_INTS),
    st.floats(),  # NaN and infinities too
    TEXT,
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), TEXT), children, max_size=4),
    ),
    max_leaves=25,
)


def deep_text(n: int, leaf: Any, open_close: tuple[bytes, bytes]) -> bytes:
    """``n`` levels of nesting as JSON text (no encoder recursion limits involved)."""
    opener, closer = open_close
    return opener * n + orjson.dumps(leaf) + closer * n


DEEP = st.builds(
    deep_text,
    st.integers(1, 1100),
    st.sampled_from([1, "x", None, {}, []]),
    st.sampled_from([(b"[", b"]"), (b'{"a":', b"}"), (b'{"params":[', b"]}")]),
)


def _deep_envelope(text: bytes) -> bytes:
    return b'{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":' + text + b"}}"


DEEP_BODIES = st.one_of(DEEP, DEEP.map(_deep_envelope))


@st.composite
def json_bodies(draw: Any, value: Any = JSON) -> bytes:
    """JSON text for ``value``: orjson, or the stdlib (for NaN, huge ints, surrogates)."""
    v = draw(value)
    style = draw(st.sampled_from(["orjson", "ascii", "utf8"]))
    if style == "orjson":
        try:
            return orjson.dumps(v)
        except (TypeError, orjson.JSONEncodeError):
            style = "ascii"
    return dumps(v, ascii_only=style == "ascii")


def _opt(valid: Any, *hostile: Any) -> Any:
    """A field value: usually ``valid``, sometimes absent (``...``), odd or arbitrary JSON."""
    return st.one_of(valid, valid, valid, st.just(...), st.sampled_from(ODD_VALUES), JSON, *hostile)


def _obj(required: dict[str, Any]) -> Any:
    """An object whose fields each come from a strategy (``...`` = left out), sometimes with an
    unexpected extra field."""
    base = st.fixed_dictionaries(required)
    extras = st.dictionaries(st.sampled_from(KEYS) | TEXT, JSON, max_size=2)

    def build(parts: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
        fields, more = parts
        out = {k: v for k, v in fields.items() if v is not ...}
        for k, v in more.items():
            out.setdefault(k, v)
        return out

    return st.tuples(base, st.one_of(st.just({}), st.just({}), extras)).map(build)


URLS = st.one_of(
    st.sampled_from(ODD_URLS),
    st.builds(
        lambda s, u, h, p, path: f"{s}://{u}{h}{p}{path}",
        st.sampled_from(["http", "https", "ftp", "file", "HTTP", ""]),
        st.sampled_from(["", "", "u:p@", "@"]),
        st.sampled_from(SAFE_HOSTS)
        | st.text("abcxyz-_.é", min_size=1, max_size=10).map(lambda label: f"{label}.invalid"),
        st.sampled_from(["", ":80", ":0", ":65536", ":-1", ":x"]),
        st.text(st.sampled_from("/%2e.aZ?#&=@\\:;"), max_size=20),
    ),
)
B64 = st.one_of(
    st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()),
    st.binary(max_size=40).map(lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")),
    st.sampled_from(["", "=", "A", "A===", "!!!!", "QUJD\n"]),
)
META = st.one_of(st.just(...), st.dictionaries(TEXT, JSON, max_size=3), JSON)
_PART_EXTRAS = {"mediaType": _opt(TEXT), "filename": _opt(TEXT), "metadata": META}
PART_10 = st.one_of(
    _obj({"text": _opt(TEXT), **_PART_EXTRAS}),
    _obj({"raw": _opt(B64), **_PART_EXTRAS}),
    _obj({"url": _opt(URLS), **_PART_EXTRAS}),
    _obj({"data": JSON, **_PART_EXTRAS}),
    _obj({"text": TEXT, "url": URLS}),  # two kinds at once
    JSON,
)
_FILE_03 = st.one_of(
    _obj({"bytes": _opt(B64), "mimeType": _opt(TEXT), "name": _opt(TEXT)}),
    _obj({"uri": _opt(URLS), "mimeType": _opt(TEXT), "name": _opt(TEXT)}),
    JSON,
)
PART_03 = st.one_of(
    _obj({"kind": _opt(st.just("text")), "text": _opt(TEXT), "metadata": META}),
    _obj({"kind": _opt(st.just("file")), "file": _FILE_03, "metadata": META}),
    _obj(
        {"kind": _opt(st.just("data")), "data": _opt(st.dictionaries(TEXT, JSON)), "metadata": META}
    ),
    _obj({"kind": st.sampled_from(["text", "file", "data", "x", "", "TEXT"]), "text": TEXT}),
    JSON,
)
SKILL_META = st.one_of(
    META, st.fixed_dictionaries({"skillId": st.sampled_from(["echo", "nope", "", "x" * 129])})
)
STR_LIST = _opt(st.lists(TEXT, max_size=3))


def _message(parts: Any, roles: list[str], v03: bool) -> Any:
    fields = {
        "messageId": _opt(TEXT),
        "role": _opt(st.sampled_from(roles)),
        "parts": _opt(st.lists(parts, max_size=4)),
        "contextId": st.just(...) | TEXT,
        "taskId": st.just(...) | TEXT,
        "referenceTaskIds": st.just(...) | STR_LIST,
        "extensions": st.just(...) | STR_LIST,
        "metadata": SKILL_META,
    }
    if v03:
        fields["kind"] = _opt(st.just("message"))
    return _obj(fields)


MESSAGE_10 = _message(PART_10, ["ROLE_USER", "ROLE_AGENT", "user", 1, 2, 0], False)
MESSAGE_03 = _message(PART_03, ["user", "agent", "ROLE_USER", "system"], True)
HISTORY = st.one_of(st.just(...), st.sampled_from(ODD_INTS), st.integers(-5, 5), JSON)
PUSH_10_ST = _obj(
    {
        "taskId": _opt(TEXT),
        "url": _opt(URLS),
        "id": st.just(...) | TEXT,
        "token": st.just(...) | TEXT,
        "tenant": st.just(...) | TEXT,
        "authentication": st.just(...)
        | _obj({"scheme": _opt(TEXT), "credentials": st.just(...) | TEXT}),
    }
)
PUSH_03_ST = _obj(
    {
        "url": _opt(URLS),
        "id": st.just(...) | TEXT,
        "token": st.just(...) | TEXT,
        "authentication": st.just(...)
        | _obj({"schemes": STR_LIST, "credentials": st.just(...) | TEXT}),
    }
)
CONFIG_10 = _obj(
    {
        "acceptedOutputModes": st.just(...) | STR_LIST,
        "historyLength": HISTORY,
        "returnImmediately": st.just(...) | _opt(st.booleans()),
        "taskPushNotificationConfig": st.just(...) | PUSH_10_ST,
    }
)
CONFIG_03 = _obj(
    {
        "acceptedOutputModes": st.just(...) | STR_LIST,
        "historyLength": HISTORY,
        "blocking": st.just(...) | _opt(st.booleans()),
        "pushNotificationConfig": st.just(...) | PUSH_03_ST,
    }
)
TENANT = st.just(...) | _opt(TEXT)


def _send(message: Any, config: Any) -> Any:
    return _obj(
        {"message": _opt(message), "configuration": st.just(...) | config, "metadata": META}
        | ({"tenant": TENANT} if config is CONFIG_10 else {})
    )


_ID = _opt(TEXT)
PARAMS_10: dict[str, Any] = {
    "SendMessage": _send(MESSAGE_10, CONFIG_10),
    "SendStreamingMessage": _send(MESSAGE_10, CONFIG_10),
    "GetTask": _obj({"id": _ID, "historyLength": HISTORY, "tenant": TENANT}),
    "ListTasks": _obj(
        {
            "contextId": st.just(...) | TEXT,
            "status": st.just(...)
            | st.sampled_from(["TASK_STATE_WORKING", "working", 3, 99, "TASK_STATE_UNSPECIFIED"]),
            "pageSize": HISTORY,
            "pageToken": st.just(...) | TEXT,
            "historyLength": HISTORY,
            "statusTimestampAfter": st.just(...)
            | st.sampled_from(["2024-01-01T00:00:00Z", "yesterday", "2024-13-45T99:99:99Z"]),
            "includeArtifacts": st.just(...) | _opt(st.booleans()),
            "tenant": TENANT,
        }
    ),
    "CancelTask": _obj({"id": _ID, "metadata": META, "tenant": TENANT}),
    "SubscribeToTask": _obj({"id": _ID, "tenant": TENANT}),
    "CreateTaskPushNotificationConfig": PUSH_10_ST,
    "GetTaskPushNotificationConfig": _obj({"taskId": _ID, "id": _ID, "tenant": TENANT}),
    "ListTaskPushNotificationConfigs": _obj(
        {"taskId": _ID, "pageSize": HISTORY, "pageToken": st.just(...) | TEXT, "tenant": TENANT}
    ),
    "DeleteTaskPushNotificationConfig": _obj({"taskId": _ID, "id": _ID, "tenant": TENANT}),
    "GetExtendedAgentCard": _obj({"tenant": TENANT}),
}
PARAMS_03: dict[str, Any] = {
    "message/send": _send(MESSAGE_03, CONFIG_03),
    "message/stream": _send(MESSAGE_03, CONFIG_03),
    "tasks/get": _obj({"id": _ID, "historyLength": HISTORY, "metadata": META}),
    "tasks/cancel": _obj({"id": _ID, "metadata": META}),
    "tasks/resubscribe": _obj({"id": _ID, "metadata": META}),
    "tasks/pushNotificationConfig/set": _obj(
        {"taskId": _ID, "pushNotificationConfig": _opt(PUSH_03_ST)}
    ),
    "tasks/pushNotificationConfig/get": _obj(
        {"id": _ID, "pushNotificationConfigId": st.just(...) | _opt(TEXT), "metadata": META}
    ),
    "tasks/pushNotificationConfig/list": _obj({"id": _ID, "metadata": META}),
    "tasks/pushNotificationConfig/delete": _obj(
        {"id": _ID, "pushNotificationConfigId": _opt(TEXT), "metadata": META}
    ),
    "agent/getAuthenticatedExtendedCard": st.one_of(st.just(...), _obj({}), JSON),
}
assert set(PARAMS_10) == set(METHODS_10)
assert set(PARAMS_03) == set(METHODS_03)

RPC_IDS = st.one_of(
    st.integers(-3, 3),
    st.sampled_from(["r-1", "", "x" * 256, "x" * 257, 2**63, -(2**63) - 1, 1.5, True, None]),
    st.just(...),
    JSON,
)


@st.composite
def envelopes(draw: Any, v03: bool) -> tuple[Any, str | None]:
    """A near-valid JSON-RPC request of one version and the A2A-Version header to send."""
    table = PARAMS_03 if v03 else PARAMS_10
    method = draw(st.sampled_from(sorted(table)))
    env = {
        "jsonrpc": draw(_opt(st.just("2.0"), st.sampled_from(["1.0", "2", 2.0]))),
        "id": draw(RPC_IDS),
        "method": draw(
            st.one_of(
                st.just(method),
                st.just(method),
                st.just(method),
                st.just(method),
                st.sampled_from(METHODS_10 + METHODS_03 + ["", "rpc.discover", "sendmessage"]),
                TEXT,
                JSON,
            )
        ),
        "params": draw(st.one_of(table[method], table[method], table[method], st.just(...), JSON)),
    }
    env = {k: v for k, v in env.items() if v is not ...}
    if draw(st.integers(0, 9)) == 0:
        env.update(draw(st.dictionaries(TEXT, JSON, max_size=2)))
    versions = [None, "0.3", "0.3.1", None] if v03 else ["1.0", "1.0", "1.0.1", "1"]
    version = draw(st.one_of(st.sampled_from(versions), st.sampled_from(A2A_VERSIONS)))
    return env, version


HEADER_VALUE = st.one_of(
    st.sampled_from([v for _, v in EXTRA_HEADERS]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40),
    st.text(st.characters(max_codepoint=0xFF), max_size=10),  # CR/LF/NUL: beyond a real server
)
HEADERS_EXTRA = st.lists(
    st.tuples(st.sampled_from(sorted({k for k, _ in EXTRA_HEADERS})), HEADER_VALUE), max_size=2
)

_SEGMENT = st.one_of(
    st.sampled_from(["t-1", "..", ".", "%2e%2e", "%2F", "a%2Fb", "%00", "%ff", "x:y", ":cancel"]),
    st.sampled_from(["tasks", "message:send", "extendedAgentCard", "pushNotificationConfigs"]),
    st.text(st.sampled_from("abcXYZ019-_.~:%@!$&'()*+,;= "), max_size=12).map(
        lambda s: quote(s, safe="%:@!$&'()*+,;=-_.~")
    ),
    st.integers(200, 5000).map(lambda n: "s" * n),
    st.text(_chars, max_size=6).map(lambda s: quote(s.encode("utf-8", "surrogatepass"), safe="")),
)


@st.composite
def rest_paths(draw: Any) -> str:
    """A path under /agents/{id}/rest: a real route with fuzzed segments, or random segments."""
    if draw(st.booleans()):
        _, template, _ = draw(st.sampled_from(REST_ROUTES))
        sub = template.format(task=draw(_SEGMENT), config=draw(_SEGMENT))
    else:
        sub = "/" + "/".join(draw(st.lists(_SEGMENT, max_size=5)))
    if draw(st.integers(0, 3)) == 0:
        sub = "/" + draw(_SEGMENT) + sub  # a tenant prefix
    if draw(st.integers(0, 9)) == 0:
        sub += draw(st.sampled_from(["/", "//", "/..", ":cancel", ":subscribe", "?"]))
    return sub


def make_json_case(
    body: bytes,
    binding: str,
    version: str | None,
    ctype: str | None,
    agent: str,
    extra: list[tuple[str, str]],
    label: str,
) -> Case:
    if binding == "jsonrpc":
        return jsonrpc_case(body, version, agent, ctype, label, extra)
    path, http = (
        ("/message:send", "POST") if binding == "rest-send" else ("/tasks/t-1:cancel", "POST")
    )
    return Case(
        http,
        f"/agents/{agent}/rest{path}",
        b"",
        headers_for(ctype, version, extra),
        body,
        label=label,
    )


AGENTS = st.sampled_from([AGENT, AGENT, AGENT, MISSING_AGENT, ROUTER])
BINDINGS = st.sampled_from(["jsonrpc", "jsonrpc", "rest-send", "rest-cancel"])
SPLITS = st.one_of(st.just(()), st.lists(st.integers(0, 4000), max_size=4).map(tuple))
