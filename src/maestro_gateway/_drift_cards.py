"""Each active agent's card at its origin against the approved version (rug-pull detection).

The card is fetched the way the registry fetches it (GET of the card URL, the well-known path
appended to a base URL, no redirects, bounded in size and time), but only after the URL passes
the scanner's SSRF policy, and the connection goes to the addresses that were checked (no DNS
rebinding between check and use): the URL comes from the registry database, which the scanner
does not trust. The fetched card is compared by the SHA-256 of its RFC 8785 (JCS) form, the hash
the registry pinned at approval.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult

from maestro_gateway._drift_finding import Finding, finding
from maestro_gateway.guards._ssrf import PinnedUrl, SsrfError, SsrfPolicy
from maestro_gateway.registry.cards import card_sha256
from maestro_gateway.registry.models import AgentVersion, InvalidCard
from maestro_gateway.registry.service import WELL_KNOWN

_MAX_PATHS = 20


@dataclass(frozen=True, slots=True)
class CardCheck:
    """The outcome for one agent: a finding (or None when the card is unchanged)."""

    agent_id: str
    finding: Finding | None
    changed: bool


def card_url(source_url: str) -> str:
    """Where the card registered from ``source_url`` lives (a base URL gets the well-known path)."""
    if WELL_KNOWN not in source_url and not source_url.endswith("/agent.json"):
        return source_url.rstrip("/") + WELL_KNOWN
    return source_url


class _PinnedResolver(AbstractResolver):
    """Resolves the checked host to the addresses the SSRF policy allowed, and nothing else."""

    def __init__(self, pinned: PinnedUrl) -> None:
        self._pinned = pinned

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host != self._pinned.host:
            raise OSError(f"unexpected host {host!r}")
        return [
            ResolveResult(
                hostname=host,
                host=addr,
                port=port,
                proto=0,
                flags=socket.AI_NUMERICHOST,
                family=socket.AF_INET6 if ":" in addr else socket.AF_INET,
            )
            for addr in self._pinned.addresses
        ]

    async def close(self) -> None:
        return None


async def check_card(
    version: AgentVersion, policy: SsrfPolicy, *, timeout_s: float, max_bytes: int
) -> CardCheck:
    """Fetch ``version``'s card at its origin and compare it with the approved one.

    ``version`` must have been registered from a card URL (``source_url``).
    """
    assert version.source_url is not None
    agent, url = version.agent_id, card_url(version.source_url)
    base: dict[str, Any] = {"version": version.version, "card_url": url}
    try:
        pinned = await policy.check(url)
    except SsrfError as exc:
        return CardCheck(
            agent, finding("card.origin_refused", "medium", agent, **base, error=str(exc)), False
        )
    resolver = _PinnedResolver(pinned) if pinned.addresses else None
    try:
        async with (
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=resolver, force_close=True),
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as session,
            session.get(url, allow_redirects=False) as resp,
        ):
            status = resp.status
            raw = await resp.content.read(max_bytes + 1) if status == 200 else b""
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
        unreachable = finding("card.origin_unreachable", "medium", agent, 0.9, **base, error=error)
        return CardCheck(agent, unreachable, False)
    if status != 200:
        unreachable = finding(
            "card.origin_unreachable", "medium", agent, 0.9, **base, error=f"HTTP {status}"
        )
        return CardCheck(agent, unreachable, False)
    problem, live = _parse(raw, max_bytes)
    if problem is None and live is not None:
        try:
            live_sha: str | None = card_sha256(live)
        except InvalidCard as exc:
            problem, live_sha = str(exc), None
        if live_sha == version.card_sha256:
            return CardCheck(agent, None, False)
    evidence: dict[str, Any] = {**base, "approved_sha256": version.card_sha256}
    if problem is not None:
        evidence["problem"] = problem
    else:
        assert live is not None
        evidence["live_sha256"] = card_sha256(live)
        evidence["diff"] = card_diff(version.card, live)
    return CardCheck(agent, finding("card.changed", "critical", agent, **evidence), True)


def _parse(raw: bytes, max_bytes: int) -> tuple[str | None, dict[str, Any] | None]:
    if len(raw) > max_bytes:
        return f"the card served is larger than {max_bytes} bytes", None
    try:
        card = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "the card served is not JSON", None
    if not isinstance(card, dict):
        return "the card served is not a JSON object", None
    return None, card


def card_diff(old: Any, new: Any) -> dict[str, Any]:
    """Which JSON paths were ``added``, ``removed`` or ``changed`` (up to 20 each, no values).

    Lists of objects with an ``id`` (skills) are compared by id, other lists by position.
    """
    out: dict[str, list[str]] = {"added": [], "removed": [], "changed": []}
    _walk(old, new, "", out)
    summary: dict[str, Any] = {k: v[:_MAX_PATHS] for k, v in out.items()}
    if more := sum(max(0, len(v) - _MAX_PATHS) for v in out.values()):
        summary["more"] = more
    return summary


def _walk(old: Any, new: Any, path: str, out: dict[str, list[str]]) -> None:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new), key=str):
            child = (
                f"{path}{key}"
                if str(key).startswith("[")
                else f"{path}.{key}"
                if path
                else str(key)
            )
            if key not in new:
                out["removed"].append(child)
            elif key not in old:
                out["added"].append(child)
            else:
                _walk(old[key], new[key], child, out)
        return
    if isinstance(old, list) and isinstance(new, list):
        old_ids, new_ids = _by_id(old), _by_id(new)
        if old_ids is not None and new_ids is not None:
            _walk(old_ids, new_ids, path, out)
            return
        for index in range(max(len(old), len(new))):
            child = f"{path}[{index}]"
            if index >= len(new):
                out["removed"].append(child)
            elif index >= len(old):
                out["added"].append(child)
            else:
                _walk(old[index], new[index], child, out)
        return
    if old != new or type(old) is not type(new):
        out["changed"].append(path or "(card)")


def _by_id(items: list[Any]) -> dict[str, Any] | None:
    if not items or not all(isinstance(i, dict) and isinstance(i.get("id"), str) for i in items):
        return None
    keyed = {f"[id={i['id']}]": i for i in items}
    return keyed if len(keyed) == len(items) else None
