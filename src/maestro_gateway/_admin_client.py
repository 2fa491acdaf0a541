"""What the admin command groups (agents, approvals, grants, playbooks) share: the ``--gateway``,
``--token`` and ``--actor`` options and one JSON call to the admin API.

A failed call ends the command with ``error: …`` (exit status 1), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

__all__ = ["add_connection_args", "call", "token_of", "when"]

TOKEN_HELP = "admin token (or MAESTRO_ADMIN_TOKEN)"


def add_connection_args(
    p: argparse.ArgumentParser, *, token_help: str = TOKEN_HELP, actor_help: str | None = None
) -> None:
    """``--gateway`` (or MAESTRO_GATEWAY_URL), ``--token``, and ``--actor`` (or MAESTRO_ACTOR)
    when ``actor_help`` is given."""
    p.add_argument(
        "--gateway", default=os.environ.get("MAESTRO_GATEWAY_URL", "http://127.0.0.1:8080")
    )
    p.add_argument("--token", default=None, help=token_help)
    if actor_help is not None:
        p.add_argument("--actor", default=os.environ.get("MAESTRO_ACTOR"), help=actor_help)


def token_of(args: argparse.Namespace) -> str | None:
    """``--token``, else MAESTRO_ADMIN_TOKEN."""
    token: str | None = args.token or os.environ.get("MAESTRO_ADMIN_TOKEN")
    return token


def call(
    url: str, method: str, path: str, token: str | None, body: Any = None, actor: str | None = None
) -> Any:
    """``method path`` on the gateway at ``url`` with a JSON body; the decoded JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url.rstrip("/") + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if actor:
        request.add_header("X-Maestro-Actor", actor)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        raise SystemExit(f"error: HTTP {exc.code}: {detail}") from None
    except urllib.error.URLError as exc:
        raise SystemExit(f"error: cannot reach the gateway at {url}: {exc.reason}") from None


def when(ts: float) -> str:
    """A UNIX time as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
