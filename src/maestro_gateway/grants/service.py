"""The grants service: issue, use, revoke and list just-in-time grants, each recorded.

Issues and revocations are critical audit events (``grant.issued``, ``grant.revoked``), durable
before anyone is answered; uses (``grant.used``) and the last use (``grant.exhausted``) are
batched events. When the store cannot be used every operation raises
:class:`GrantsUnavailable`: the guard then denies (503) and nothing is issued or revoked.
"""

from __future__ import annotations

import logging
import time
import unicodedata
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

from maestro_gateway._sqlstore import unavailable_on_error
from maestro_gateway.audit._store import AuditUnavailable
from maestro_gateway.audit.recorder import AuditRecorder
from maestro_gateway.config import AuditConfig
from maestro_gateway.grants._sql import SqlGrantStore
from maestro_gateway.grants.config import GrantsConfig
from maestro_gateway.grants.models import (
    Conflict,
    Grant,
    GrantsUnavailable,
    InvalidGrant,
    NotFound,
    new_grant_id,
)
from maestro_gateway.grants.store import open_store

__all__ = ["GrantService"]

log = logging.getLogger("maestro_gateway.grants")

MAX_FIELD = 256
MAX_REASON = 1000


def _field(name: str, value: object, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_FIELD:
        raise InvalidGrant(f"{name} must be a non-empty string of at most {MAX_FIELD} characters")
    if any(unicodedata.category(c).startswith("C") for c in value):
        raise InvalidGrant(f"{name} must not contain control or format characters")
    return value


class GrantService:
    """Grants on a store from ``cfg.url``; ``audit`` is bound by the application."""

    def __init__(
        self,
        cfg: GrantsConfig,
        audit: AuditRecorder | None = None,
        *,
        store: SqlGrantStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.audit = audit or AuditRecorder(AuditConfig(enabled=False))
        self.clock = clock
        self._store = store

    async def start(self) -> None:
        if self._store is None:
            self._store = open_store(self.cfg.url)
        await self._store.init()

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()

    @property
    def store(self) -> SqlGrantStore:
        if self._store is None:
            raise RuntimeError("GrantService.start() was not awaited")
        return self._store

    async def issue(
        self,
        *,
        principal: object,
        agent_id: object,
        skill_id: object,
        task_id: object = None,
        ttl_s: object = None,
        uses: object = None,
        actor: str,
        source: str,
        reason: object = "",
        decision_id: str | None = None,
        max_ttl_s: float | None = None,
        max_uses: int | None = None,
    ) -> Grant:
        """Validate, store and record a grant (``max_*`` tighten the configured bounds)."""
        ttl_cap = min(self.cfg.max_ttl_s, max_ttl_s or self.cfg.max_ttl_s)
        uses_cap = min(self.cfg.max_uses, max_uses or self.cfg.max_uses)
        default_ttl = ttl_cap if max_ttl_s is not None else min(self.cfg.default_ttl_s, ttl_cap)
        ttl = _number("ttl_s", ttl_s, default_ttl)
        if ttl > ttl_cap:
            raise InvalidGrant(f"ttl_s must be at most {ttl_cap:g}")
        count: int | None = uses_cap if max_uses is not None else None  # policy: always counted
        if uses is not None:
            if isinstance(uses, bool) or not isinstance(uses, int) or not 1 <= uses <= uses_cap:
                raise InvalidGrant(f"uses must be a whole number from 1 to {uses_cap}")
            count = uses
        if not isinstance(reason, str) or len(reason) > MAX_REASON:
            raise InvalidGrant(f"reason must be a string of at most {MAX_REASON} characters")
        now = self.clock()
        grant = Grant(
            id=new_grant_id(),
            principal=str(_field("principal", principal)),
            agent_id=str(_field("agent", agent_id)),
            skill_id=str(_field("skill", skill_id)),
            task_id=_field("task_id", task_id, optional=True),
            expires_at=now + ttl,
            uses_left=count,
            max_uses=count,
            issued_at=now,
            issued_by=actor,
            source=source,
            reason=reason,
            decision_id=decision_id,
        )
        async with self._storage():
            await self.store.insert(grant)
        try:
            await self.audit.critical({"type": "grant.issued", **grant.audit(), "actor": actor,
                                       "reason": reason, "decision": decision_id})  # fmt: skip
        except AuditUnavailable as exc:  # an unrecorded grant must not be usable
            async with self._storage():
                await self.store.revoke(grant.id, "gateway", "audit log unavailable", now)
            raise GrantsUnavailable("the audit log cannot record this grant; none issued") from exc
        return grant

    async def revoke(self, grant_id: str, actor: str, reason: str = "") -> Grant:
        if len(reason) > MAX_REASON:
            raise InvalidGrant(f"reason must be at most {MAX_REASON} characters")
        async with self._storage():
            revoked = await self.store.revoke(grant_id, actor, reason, self.clock())
            existing = None if revoked else await self.store.get(grant_id)
        if revoked is None:
            if existing is None:
                raise NotFound("no such grant")
            raise Conflict(f"grant already revoked by {existing.revoked_by}")
        try:
            await self.audit.critical({"type": "grant.revoked", **revoked.audit(), "actor": actor,
                                       "reason": reason})  # fmt: skip
        except AuditUnavailable as exc:  # the revocation stands; say it was not recorded
            raise GrantsUnavailable("grant revoked, but the audit log could not record it") from exc
        return revoked

    async def get(self, grant_id: str) -> Grant | None:
        async with self._storage():
            return await self.store.get(grant_id)

    async def list(
        self,
        *,
        principal: str | None = None,
        agent_id: str | None = None,
        active_only: bool = False,
        limit: int = 100,
    ) -> list[Grant]:
        async with self._storage():
            return await self.store.list_grants(
                principal=principal, agent_id=agent_id,
                live_at=self.clock() if active_only else None, limit=limit,
            )  # fmt: skip

    async def consume(
        self, principal: str, agent_id: str, skill_id: str, task_ids: Sequence[str], request_id: str
    ) -> Grant | None:
        """Spend one use of a matching live grant; None when the caller holds none."""
        async with self._storage():
            grant = await self.store.consume(principal, agent_id, skill_id, task_ids, self.clock())
        if grant is not None:
            event = {**grant.audit(), "request_id": request_id}
            await self.audit.note({"type": "grant.used", **event})
            if grant.uses_left == 0:
                await self.audit.note({"type": "grant.exhausted", **event})
        return grant

    def _storage(self) -> AbstractAsyncContextManager[None]:
        """A store failure (logged) raises GrantsUnavailable: nothing is done."""
        return unavailable_on_error("grants", GrantsUnavailable, log)


def _number(name: str, value: object, default: float) -> float:
    if value is None:
        return float(default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InvalidGrant(f"{name} must be a positive number")
    return float(value)
