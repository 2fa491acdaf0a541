"""SSRF checks for URLs the gateway forwards: resolve the host, pin the addresses, check them.

Every address the name resolves to must be allowed; the resolved addresses are returned so a
caller that fetches the URL itself connects to exactly what was checked (no DNS rebinding
between check and use).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from maestro_gateway.config import SsrfConfig

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Names that resolve to cloud metadata services on some platforms.
METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata", "instance-data", "metadata.azure.com"}
)
ALLOWED_SCHEMES = frozenset({"http", "https"})


class SsrfError(Exception):
    """A URL the gateway refuses to forward; the message says why."""


@dataclass(frozen=True, slots=True)
class PinnedUrl:
    url: str
    host: str
    port: int
    addresses: tuple[str, ...]


class SsrfPolicy:
    def __init__(self, cfg: SsrfConfig) -> None:
        self._cfg = cfg
        self._hosts = frozenset(h.lower().rstrip(".") for h in cfg.allow_hosts)
        self._nets = tuple(ipaddress.ip_network(c, strict=False) for c in cfg.allow_cidrs)

    def address_allowed(self, addr: IPAddress) -> bool:
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if any(addr in net for net in self._nets):
            return True
        if addr.is_loopback:
            return self._cfg.allow_loopback
        if addr.is_link_local or addr.is_multicast or addr.is_unspecified or addr.is_reserved:
            return False  # link-local holds the cloud metadata services (169.254.169.254)
        if addr.is_private:
            return self._cfg.allow_private
        return addr.is_global

    async def check(self, url: str) -> PinnedUrl:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise SsrfError(f"malformed URL: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in ALLOWED_SCHEMES:
            raise SsrfError(f"URL scheme {scheme or '(none)'!r} is not allowed")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise SsrfError("URL has no host")
        if parts.username is not None or parts.password is not None:
            raise SsrfError("URL must not carry credentials")
        port = port or (443 if scheme == "https" else 80)
        if host in self._hosts:
            return PinnedUrl(url, host, port, ())
        if host in METADATA_HOSTS:
            raise SsrfError(f"host {host!r} is a cloud metadata service")
        addresses = await self._resolve(host, port)
        for text in addresses:
            if not self.address_allowed(ipaddress.ip_address(text.split("%", 1)[0])):
                raise SsrfError(f"host {host!r} resolves to a forbidden address {text}")
        return PinnedUrl(url, host, port, addresses)

    async def _resolve(self, host: str, port: int) -> tuple[str, ...]:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM),
                self._cfg.resolve_timeout_s,
            )
        except TimeoutError:
            raise SsrfError(f"host {host!r} did not resolve in time") from None
        except (OSError, UnicodeError) as exc:
            raise SsrfError(f"host {host!r} does not resolve: {exc}") from None
        addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise SsrfError(f"host {host!r} does not resolve")
        return addresses
