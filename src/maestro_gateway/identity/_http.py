"""The identity provider's HTTP client: one pooled aiohttp session, bounded answers."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from maestro_gateway.identity.model import IdentityUnavailable

MAX_BODY = 512 * 1024


class IdpClient:
    """GET/POST JSON to identity providers; every failure is :class:`IdentityUnavailable`."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=16, ttl_dns_cache=60),
                headers={"Accept": "application/json", "User-Agent": "maestro-gateway"},
            )
        return self._session

    async def get_json(self, url: str, timeout_s: float) -> Any:
        return await self._request("GET", url, timeout_s)

    async def post_form(
        self, url: str, form: dict[str, str], timeout_s: float, auth: tuple[str, str]
    ) -> Any:
        return await self._request("POST", url, timeout_s, form, aiohttp.BasicAuth(*auth))

    async def _request(
        self,
        method: str,
        url: str,
        timeout_s: float,
        form: dict[str, str] | None = None,
        auth: aiohttp.BasicAuth | None = None,
    ) -> Any:
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        try:
            async with self._open().request(
                method, url, data=form, auth=auth, timeout=timeout, allow_redirects=False
            ) as resp:
                if resp.status != 200:
                    raise IdentityUnavailable(f"{method} {url}: HTTP {resp.status}")
                body = await resp.content.read(MAX_BODY + 1)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise IdentityUnavailable(f"{method} {url}: {type(exc).__name__}") from None
        if len(body) > MAX_BODY:
            raise IdentityUnavailable(f"{method} {url}: answer larger than {MAX_BODY} bytes")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise IdentityUnavailable(f"{method} {url}: answer is not JSON") from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
