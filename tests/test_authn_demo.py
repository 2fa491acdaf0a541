"""The one-command demo runs with security on: dev-issuer tokens, MFA step-up, admin JWTs."""

from __future__ import annotations

import json
import stat
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.test_demo_command import free_port_block, start, stop

SEND = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "SendMessage",
    "params": {"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "hello"}]}},
}


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def post(url: str, token: str | None, body: Any = SEND) -> tuple[int, dict[str, str], Any]:
    headers = {"Content-Type": "application/json", "A2A-Version": "1.0"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, _lower(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, _lower(err.headers), json.loads(err.read() or b"null")


@pytest.mark.timeout(120)
def test_demo_tokens_mfa_and_admin(tmp_path: Path) -> None:
    """credentials.json holds working tokens: the user passes, no token and the no-MFA token get
    401 (invalid / step-up), the admin JWT reads the admin API and a plain user's JWT cannot."""
    base = free_port_block(4)
    state = tmp_path / ".demo"
    proc = start(state, base)
    try:
        creds_file = state / "credentials.json"
        assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
        accounts = json.loads(creds_file.read_text())["accounts"]
        assert set(accounts) == {"admin", "approver", "user", "user_no_mfa"}
        url = f"http://127.0.0.1:{base}"
        status, _, body = post(f"{url}/agents/echo", accounts["user"]["token"])
        assert status == 200
        assert "echo: hello" in json.dumps(body)
        status, headers, _ = post(f"{url}/agents/echo", None)
        assert status == 401
        assert headers["www-authenticate"].startswith("Bearer realm=")
        status, headers, _ = post(f"{url}/agents/echo", accounts["user_no_mfa"]["token"])
        assert status == 401
        assert 'error="insufficient_user_authentication"' in headers["www-authenticate"]
        for who in ("admin", "approver"):
            status, _, body = post(f"{url}/admin/v1/agents", accounts[who]["token"], None)
            assert status == 200, (who, body)
            assert "echo" in {a["agent_id"] for a in body["agents"]}
        status, _, _ = post(f"{url}/admin/v1/agents", accounts["user"]["token"], None)
        assert status == 403
        forged = accounts["admin"]["token"][:-6] + "AAAAAA"
        status, headers, _ = post(f"{url}/admin/v1/agents", forged, None)
        assert status == 401
        assert 'error="invalid_token"' in headers["www-authenticate"]
    finally:
        stop(proc)
