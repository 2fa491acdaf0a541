"""The real OpenID provider for the identity tests: npm ``oidc-provider`` in a subprocess.

``tests/oidc/provider.js`` runs it; its dependencies are installed with ``npm ci`` (from the
committed package-lock.json) the first time, when ``tests/oidc/node_modules`` is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp

NODE_DIR = Path(__file__).parent / "oidc"
AUDIENCE = "urn:maestro:gateway"
INTROSPECTION_CLIENT = ("gateway", "gateway-secret-for-introspection")
SERVICE_CLIENT = ("svc-reporter", "svc-reporter-secret")


def ensure_node_modules() -> None:
    """``npm ci`` in tests/oidc when its node_modules is missing (the npm registry is reachable)."""
    if (NODE_DIR / "node_modules" / "oidc-provider").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed for the identity tests (apt-get install nodejs npm)")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=NODE_DIR,
        check=True,
        timeout=300,
    )


class OidcProvider:
    """One running provider: its issuer URL, and the test hooks (mint, rotate)."""

    def __init__(self, proc: subprocess.Popen[str], issuer: str) -> None:
        self.proc = proc
        self.issuer = issuer

    @classmethod
    def start(cls) -> OidcProvider:
        ensure_node_modules()
        node = shutil.which("node") or "node"
        proc = subprocess.Popen(
            [node, "provider.js", "--port", "0", "--audience", AUDIENCE],
            cwd=NODE_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "NODE_ENV": "test"},
        )
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("{"):
                return cls(proc, json.loads(line)["issuer"])
            if not line and proc.poll() is not None:
                break
        proc.kill()
        raise RuntimeError("oidc-provider did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.issuer + path, json=body) as resp,
        ):
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def mint(self, account: str, **fields: Any) -> str:
        """A token signed by the provider: JWT for ``resource`` (default our audience), or
        opaque with ``resource=None``. ``fields``: acr, amr, auth_time, iat, exp, claims…"""
        body: dict[str, Any] = {"account": account, "resource": AUDIENCE, **fields}
        if body["resource"] is None:
            del body["resource"]
        return str((await self._post("/__admin/mint", body))["access_token"])

    async def rotate(self, keep_old: bool = True) -> str:
        """Put a new signing key first; returns its kid."""
        return str((await self._post("/__admin/rotate", {"keep_old": keep_old}))["kid"])

    async def private_jwks(self) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.issuer + "/__admin/jwks") as resp,
        ):
            data: dict[str, Any] = await resp.json()
            return data

    async def client_credentials(self, resource: str | None = AUDIENCE) -> str:
        """A real token-endpoint grant for the service client (JWT with a resource)."""
        form = {"grant_type": "client_credentials", "scope": "a2a"}
        if resource:
            form["resource"] = resource
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                self.issuer + "/token", data=form, auth=aiohttp.BasicAuth(*SERVICE_CLIENT)
            ) as resp,
        ):
            assert resp.status == 200, await resp.text()
            return str((await resp.json())["access_token"])
