"""The registry as the gateway uses it: store + card checks + the data path's directory.

Every change goes through here, so the served cards and the directory are rebuilt after
each one (the data path never reads the store).
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from maestro_gateway.audit._store import AuditUnavailable
from maestro_gateway.audit.recorder import AuditRecorder
from maestro_gateway.config import GatewayConfig
from maestro_gateway.guards.firewall import card_poisoning
from maestro_gateway.registry.cards import (
    GatewaySigner,
    InvalidCard,
    card_endpoint,
    card_sha256,
    rewrite_card_for_gateway,
    validate_card,
    verify_card_signatures,
)
from maestro_gateway.registry.models import (
    AgentRecord,
    AgentState,
    AgentVersion,
    InvalidArgument,
    RegistryEvent,
    RegistryUnavailable,
)
from maestro_gateway.registry.routing import ROUTER_ID, Directory, Target
from maestro_gateway.registry.store import RegistryStore, open_store
from maestro_gateway.spiffe._fetch import UpstreamError, get_mtls

log = logging.getLogger("maestro_gateway.registry")

WELL_KNOWN = "/.well-known/agent-card.json"


class RegistryService:
    def __init__(
        self, cfg: GatewayConfig, directory: Directory, audit: AuditRecorder | None = None
    ) -> None:
        self.cfg = cfg
        self.directory = directory
        self.audit = audit
        self._store: RegistryStore | None = None
        self._signer: GatewaySigner | None = None
        self._served: dict[str, dict[str, Any]] = {}
        self._router_card: dict[str, Any] | None = None
        self._trusted: dict[str, dict[str, Any]] = {}
        # C12 (docs/mtls.md): https card fetches use the gateway's SVID and check the agent's.
        self.card_ssl: ssl.SSLContext | None = None
        self.verify_peer: Callable[[object, str | None], object] | None = None

    @property
    def store(self) -> RegistryStore:
        if self._store is None:
            raise RuntimeError("RegistryService.start() was not awaited")
        return self._store

    @property
    def signer(self) -> GatewaySigner:
        if self._signer is None:
            raise RuntimeError("RegistryService.start() was not awaited")
        return self._signer

    async def start(self) -> None:
        key = self.cfg.gateway_key
        self._signer = GatewaySigner(key.path, alg=key.alg, kid=key.kid)
        self._trusted = _trusted_keys(self.cfg)
        self._store = open_store(self.cfg.registry.url)
        await self._store.init()
        await self.refresh()
        await self._seed()

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()
            self._store = None

    async def healthy(self) -> bool:
        try:
            await self.store.get("-healthcheck-")
        except Exception:
            return False
        return True

    async def _seed(self) -> None:
        """Register (and activate) the agents listed in the configuration, once."""
        for seed in self.cfg.agents:
            if await self.store.get(seed.id) is not None:
                continue
            try:
                await self.register(
                    seed.id,
                    card_url=seed.card_url,
                    actor="config",
                    expected_spiffe_id=seed.expected_spiffe_id,
                )
                if seed.activate:
                    await self.transition(seed.id, AgentState.ACTIVE, actor="config")
            except (InvalidCard, aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.error("seed agent not registered", extra={"agent": seed.id, "error": str(exc)})

    async def refresh(self) -> None:
        snapshot = await self.store.active_snapshot()
        active = await self.store.list_agents(AgentState.ACTIVE)
        spiffe_ids = {r.agent_id: r.expected_spiffe_id for r in active if r.expected_spiffe_id}
        tenants = {r.agent_id: r.tenant for r in active if r.tenant}  # C8 tenant isolation
        targets: dict[str, Target] = {}
        served: dict[str, dict[str, Any]] = {}
        for agent_id, version in snapshot.items():
            skills = frozenset(
                s["id"]
                for s in version.card.get("skills") or []
                if isinstance(s, dict) and "id" in s
            )
            targets[agent_id] = Target(
                agent_id,
                version.upstream_url,
                version.protocol_version,
                version.card,
                skills,
                version.version,
                tenant=tenants.get(agent_id),
                expected_spiffe_id=spiffe_ids.get(agent_id),
            )
            served[agent_id] = self.served_card(agent_id, version.card)
        self.directory.replace(targets)
        self._served = served
        self._router_card = self.signer.sign(self.directory.router_card(self.cfg.public_url))

    def served_card(self, agent_id: str, card: dict[str, Any]) -> dict[str, Any]:
        """An agent's card as clients see it: URLs point at the gateway, signed by the gateway."""
        return self.signer.sign(rewrite_card_for_gateway(card, self.cfg.public_url, agent_id))

    def served_card_for(self, agent_id: str) -> dict[str, Any] | None:
        return self._served.get(agent_id)

    def router_card(self) -> dict[str, Any] | None:
        return self._router_card

    def public_jwks(self) -> dict[str, Any]:
        return self.signer.public_jwks()

    async def fetch_card(self, url: str, expected_spiffe_id: str | None = None) -> dict[str, Any]:
        """GET an agent card (a base URL gets the well-known path), bounded in size and time.

        Over https with SPIFFE on, the gateway presents its SVID and the agent must present
        ``expected_spiffe_id`` (or an ID of the trust domain), as on the data path."""
        if WELL_KNOWN not in url and not url.endswith("/agent.json"):
            url = url.rstrip("/") + WELL_KNOWN
        limit = self.cfg.registry.max_card_bytes
        if self.card_ssl is not None and url.startswith("https:"):
            raw = await self._fetch_mtls(url, expected_spiffe_id, limit)
        else:
            timeout = aiohttp.ClientTimeout(total=self.cfg.registry.card_fetch_timeout_s)
            try:
                async with (
                    aiohttp.ClientSession(timeout=timeout) as session,
                    session.get(url, allow_redirects=False) as resp,
                ):
                    if resp.status != 200:
                        raise InvalidCard(f"fetching {url}: HTTP {resp.status}")
                    raw = await resp.content.read(limit + 1)
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                msg = f"could not fetch the card at {url}: {type(exc).__name__}"
                raise InvalidCard(msg) from None
        if len(raw) > limit:
            raise InvalidCard(f"card at {url} is larger than {limit} bytes")
        try:
            card = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise InvalidCard(f"card at {url} is not JSON") from None
        if not isinstance(card, dict):
            raise InvalidCard(f"card at {url} is not a JSON object")
        return card

    async def _fetch_mtls(self, url: str, expected: str | None, limit: int) -> bytes:
        """C12: the card over mTLS, from the agent with the expected SPIFFE ID only."""
        assert self.card_ssl is not None
        timeout_s = self.cfg.registry.card_fetch_timeout_s
        try:
            status, raw = await get_mtls(
                url, self.card_ssl, self.verify_peer, expected, timeout_s, limit
            )
        except UpstreamError as exc:
            if exc.kind == "identity":
                raise InvalidCard(f"agent at {url} refused: {exc}") from None
            raise InvalidCard(f"could not fetch the card at {url}: {exc}") from None
        if status != 200:
            raise InvalidCard(f"fetching {url}: HTTP {status}")
        return raw

    async def register(
        self,
        agent_id: str,
        *,
        actor: str,
        card: Any = None,
        card_url: str | None = None,
        upstream_url: str | None = None,
        tenant: str | None = None,
        owner: str | None = None,
        expected_spiffe_id: str | None = None,
    ) -> AgentVersion:
        """Validate, verify and store a new version of an agent's card (state: pending)."""
        if agent_id == ROUTER_ID:
            raise InvalidArgument(f"agent id {ROUTER_ID!r} is reserved for the skill router")
        if card is None:
            if not card_url:
                raise InvalidCard("give a card or a card URL")
            card = await self.fetch_card(card_url, expected_spiffe_id)
        checked = validate_card(card, max_bytes=self.cfg.registry.max_card_bytes)
        if reason := card_poisoning(self.cfg.guards.firewall, checked, agent_id):  # C2, T5
            raise InvalidCard(reason)
        signed, kid = False, None
        if checked.get("signatures"):
            kid = verify_card_signatures(checked, self._trusted)
            signed = True
        elif self.cfg.registry.require_signed_cards:
            raise InvalidCard("card is not signed, and this registry requires signed cards")
        url, protocol_version = card_endpoint(checked)
        intent = {
            "agent": agent_id,
            "actor": actor,
            "card_sha256": card_sha256(checked),
            # what the version row will hold besides the card, so drift scans can compare it
            "upstream_url": upstream_url or url,
            "source_url": card_url,
            "protocol_version": protocol_version,
            "signed": signed,
            "signature_kid": kid,
            "owner": owner or actor,
            "tenant": tenant,
        }
        known = await self._audit_intent("registry.register.requested", intent, agent_id)
        version = await self.store.register(
            agent_id,
            checked,
            actor=actor,
            source_url=card_url,
            tenant=tenant,
            owner=owner or actor,
            upstream_url=upstream_url or url,
            protocol_version=protocol_version,
            signed=signed,
            signature_kid=kid,
            expected_spiffe_id=expected_spiffe_id,
        )
        log.info(
            "agent registered",
            extra={"agent": agent_id, "version": version.version, "actor": actor},
        )
        await self._audit_events(agent_id, known)
        await self.refresh()
        return version

    async def transition(
        self, agent_id: str, state: AgentState, *, actor: str, version: int | None = None
    ) -> AgentRecord:
        intent = {"agent": agent_id, "actor": actor, "state": state.value, "version": version}
        known = await self._audit_intent("registry.transition.requested", intent, agent_id)
        record = await self.store.transition(agent_id, version, state, actor=actor)
        await self._audit_events(agent_id, known)
        log.info(
            "agent state changed", extra={"agent": agent_id, "state": state.value, "actor": actor}
        )
        await self.refresh()
        return record

    async def _audit_intent(self, kind: str, fields: dict[str, Any], agent_id: str) -> int:
        """Record that a change was asked for, durably, before making it: no audit, no change.

        Returns how many registry events the agent had, to audit exactly the new ones after.
        """
        known = len(await self.store.events(agent_id))
        if self.audit is not None:
            try:
                await self.audit.critical({"type": kind, **fields})
            except AuditUnavailable:
                raise RegistryUnavailable(
                    "the audit log cannot record this change; nothing was changed"
                ) from None
        return known

    async def _audit_events(self, agent_id: str, known: int) -> None:
        """Record each registry event the change produced (who, what, before -> after hash)."""
        if self.audit is None:
            return
        for event in (await self.store.events(agent_id))[known:]:
            record = {
                "type": f"registry.{event.action}",
                "agent": event.agent_id,
                "version": event.version,
                "actor": event.actor,
                "at": event.at.isoformat(),
                "before_sha256": event.before_sha256,
                "after_sha256": event.after_sha256,
            }
            try:
                await self.audit.critical(record)
            except AuditUnavailable:  # queued, retried; the caller must not think it is durable
                raise RegistryUnavailable(
                    "the change was made, but its audit record is not yet durable (it is "
                    "queued and retried)"
                ) from None

    async def list_agents(self, state: AgentState | None = None) -> list[AgentRecord]:
        return await self.store.list_agents(state)

    async def get(self, agent_id: str) -> AgentRecord | None:
        return await self.store.get(agent_id)

    async def versions(self, agent_id: str) -> list[AgentVersion]:
        return await self.store.versions(agent_id)

    async def events(self, agent_id: str) -> list[RegistryEvent]:
        return await self.store.events(agent_id)


def _trusted_keys(cfg: GatewayConfig) -> dict[str, dict[str, Any]]:
    keys: dict[str, dict[str, Any]] = {}
    for trusted in cfg.registry.trusted_keys:
        jwk = trusted.jwk
        if jwk is None and trusted.jwk_file:
            jwk = json.loads(Path(trusted.jwk_file).read_text(encoding="utf-8"))
        if jwk is not None:
            keys[trusted.kid] = jwk
    return keys
