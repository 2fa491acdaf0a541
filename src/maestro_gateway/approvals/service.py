"""The approvals service: holds, decisions, release and timeouts, each recorded in the audit log.

Every decision (``approval.held``, ``approval.approved``, ``approval.denied``,
``approval.expired``, ``approval.cancelled``, ``approval.released``) is a critical audit event,
durable before anyone is answered. When the store or the audit log cannot be used, the
operation fails with :class:`ApprovalsUnavailable` and nothing is held, decided or forwarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from maestro_gateway._sqlstore import unavailable_on_error
from maestro_gateway.approvals.models import (
    ApprovalsUnavailable,
    Conflict,
    Forbidden,
    Hold,
    HoldState,
    InvalidArgument,
    NotFound,
    new_hold_id,
    request_sha256,
)
from maestro_gateway.approvals.store import ApprovalStore, open_store
from maestro_gateway.audit._store import AuditUnavailable
from maestro_gateway.audit.recorder import AuditRecorder
from maestro_gateway.config import ApprovalsConfig
from maestro_gateway.context import RequestContext

__all__ = ["ApprovalService"]

log = logging.getLogger("maestro_gateway.approvals")

_LIVE = (HoldState.PENDING, HoldState.APPROVED)
MAX_REASON = 1000


class ApprovalService:
    def __init__(
        self,
        cfg: ApprovalsConfig,
        audit: AuditRecorder,
        *,
        store: ApprovalStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.audit = audit
        self.clock = clock
        self._store = store
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def store(self) -> ApprovalStore:
        if self._store is None:
            raise RuntimeError("ApprovalService.start() was not awaited")
        return self._store

    async def start(self, *, sweep: bool = True) -> None:
        if self._store is None:
            self._store = open_store(self.cfg.url)
        await self._store.init()
        if sweep:
            self._sweeper = asyncio.create_task(self._sweep_forever())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._store is not None:
            await self._store.close()
            self._store = None

    # -- the data path ---------------------------------------------------------------------------

    async def hold(
        self, ctx: RequestContext, requester: str, reason: str, findings: list[dict[str, Any]]
    ) -> Hold:
        """Store the request exactly as it would be forwarded, and record the hold."""
        now = self.clock()
        hold = Hold(
            id=new_hold_id(),
            agent_id=ctx.agent_id,
            method=ctx.method,
            params=ctx.params,
            skill_id=ctx.skill_id,
            client_version=ctx.client_version,
            binding=ctx.binding,
            requester=requester,
            findings=findings,
            reason=reason[:MAX_REASON],
            request_sha256=request_sha256(ctx.agent_id, ctx.method, ctx.params),
            state=HoldState.PENDING,
            created_at=now,
            expires_at=now + self.cfg.hold_timeout_s,
        )
        async with self._storage():
            await self.store.insert(hold)
        try:
            await self._audit("approval.held", hold, request_id=ctx.request_id)
        except ApprovalsUnavailable:  # not recorded: the hold must not exist either
            async with self._storage():
                await self.store.transition(
                    hold.id, [HoldState.PENDING], HoldState.DENIED,
                    decided_at=now, decided_by="gateway", decision_reason="audit log unavailable",
                )  # fmt: skip
            raise
        return hold

    async def claim(self, hold_id: str, requester: str, agent_id: str, method: str) -> Hold:
        """The approved hold a continuation may release, after every check but the release."""
        hold = await self.get(hold_id)
        if hold is None or hold.requester != requester or hold.agent_id != agent_id:
            raise NotFound("task not found")  # another requester's hold is not theirs to see
        if hold.method != method:
            raise InvalidArgument(f"continue this task with {hold.method}, as it was sent")
        if hold.state is HoldState.PENDING:
            raise Conflict("the request is still waiting for a human approval")
        if hold.state is HoldState.RELEASED:
            raise Conflict("the approved request was already released; send a new request")
        if hold.state is not HoldState.APPROVED:
            raise Forbidden(f"the request was not approved ({hold.state.value})")
        return hold

    async def release(self, hold: Hold, request_id: str) -> Hold:
        """Compare-and-set approved -> released; exactly one caller wins. Audited first."""
        now = self.clock()
        async with self._storage():
            released = await self.store.transition(
                hold.id, [HoldState.APPROVED], HoldState.RELEASED, live_at=now, released_at=now
            )
        if released is None:
            raise Conflict("the approved request was already released, or its approval expired")
        try:
            await self._audit("approval.released", released, request_id=request_id)
        except ApprovalsUnavailable:  # put it back: nothing was forwarded
            async with self._storage():
                await self.store.transition(
                    hold.id, [HoldState.RELEASED], HoldState.APPROVED, released_at=None
                )
            raise
        return released

    async def release_id(self, hold_id: str, request_id: str) -> Hold:
        """:meth:`release` by id (NotFound when there is no such hold)."""
        hold = await self.get(hold_id)
        if hold is None:
            raise NotFound("task not found")
        return await self.release(hold, request_id)

    async def note_upstream_task(self, hold_id: str, task_id: str) -> None:
        """Remember the agent's task id for a released hold (GetTask on the held id uses it)."""
        try:
            async with self._storage():
                await self.store.set_upstream_task(hold_id, task_id[:256])
        except ApprovalsUnavailable:
            log.warning("could not record the upstream task id", extra={"hold": hold_id})

    # -- approvers and requesters ----------------------------------------------------------------

    async def get(self, hold_id: str) -> Hold | None:
        """The hold; a live one whose time is up is expired on read."""
        async with self._storage():
            hold = await self.store.get(hold_id)
        if hold is not None and hold.state in _LIVE and hold.expires_at <= self.clock():
            await self.sweep()
            async with self._storage():
                hold = await self.store.get(hold_id)
        return hold

    async def list(self, state: HoldState | None = None, limit: int = 100) -> list[Hold]:
        await self.sweep()
        async with self._storage():
            return await self.store.list_holds(state, limit)

    async def approve(self, hold_id: str, actor: str, reason: str = "") -> Hold:
        return await self._decide(hold_id, actor, reason, HoldState.APPROVED)

    async def deny(self, hold_id: str, actor: str, reason: str = "") -> Hold:
        return await self._decide(hold_id, actor, reason, HoldState.DENIED)

    async def cancel(self, hold_id: str, requester: str) -> Hold:
        """The requester withdraws a pending hold (A2A CancelTask)."""
        hold = await self.get(hold_id)
        if hold is None or hold.requester != requester:
            raise NotFound("task not found")
        if hold.state is not HoldState.PENDING:
            raise Conflict(f"the held request is {hold.state.value}, not pending")
        now = self.clock()
        event = {"actor": requester, "reason": "cancelled by the requester"}
        await self._audit("approval.cancelled", hold, **event)
        async with self._storage():
            done = await self.store.transition(
                hold_id, [HoldState.PENDING], HoldState.CANCELLED, live_at=now,
                decided_at=now, decided_by=requester, decision_reason=event["reason"],
            )  # fmt: skip
        if done is None:
            raise Conflict("the held request was decided meanwhile")
        return done

    async def _decide(self, hold_id: str, actor: str, reason: str, to: HoldState) -> Hold:
        if not actor.strip():
            raise InvalidArgument("a decision needs the approver's name (X-Maestro-Actor)")
        hold = await self.get(hold_id)
        if hold is None:
            raise NotFound(f"no held request {hold_id!r}")
        if actor == hold.requester:
            raise Forbidden("four-eyes: the requester cannot decide their own request")
        if hold.state is not HoldState.PENDING:
            raise Conflict(f"the held request is {hold.state.value}, not pending")
        now, reason = self.clock(), reason[:MAX_REASON]
        fields: dict[str, Any] = {"decided_at": now, "decided_by": actor, "decision_reason": reason}
        if to is HoldState.APPROVED:
            fields["expires_at"] = now + self.cfg.release_window_s
        kind = "approval.approved" if to is HoldState.APPROVED else "approval.denied"
        # Recorded before it takes effect: a decision the audit log cannot hold is not made.
        await self._audit(kind, hold, actor=actor, reason=reason)
        async with self._storage():
            done = await self.store.transition(
                hold_id, [HoldState.PENDING], to, live_at=now, **fields
            )
        if done is None:
            await self.audit.note({"type": "approval.superseded", "hold": hold_id, "actor": actor})
            raise Conflict("the held request was decided or expired meanwhile")
        return done

    # -- timeouts --------------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Expire every live hold whose time is up; record each. Returns how many."""
        async with self._storage():
            expired = await self.store.expire_due(self.clock())
        for hold in expired:
            try:
                await self._audit("approval.expired", hold, reason="timed out")
            except ApprovalsUnavailable:  # expiry is a denial: it stands, the record is late
                log.error("expiry not recorded in the audit log", extra={"hold": hold.id})
        return len(expired)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.sweep_interval_s)
            try:
                await self.sweep()
            except ApprovalsUnavailable:
                log.error("approvals sweep failed; holds expire on read meanwhile")

    # -- plumbing --------------------------------------------------------------------------------

    async def _audit(self, kind: str, hold: Hold, **fields: Any) -> None:
        event = {
            "type": kind,
            "hold": hold.id,
            "agent": hold.agent_id,
            "method": hold.method,
            "skill": hold.skill_id,
            "requester": hold.requester,
            "request_sha256": hold.request_sha256,
            "findings": [f.get("summary", f.get("type")) for f in hold.findings][:20],
            **fields,
        }
        try:
            await self.audit.critical(event)
        except AuditUnavailable as exc:
            raise ApprovalsUnavailable(
                "the audit log cannot record this approval decision; nothing was done"
            ) from exc

    def _storage(self) -> AbstractAsyncContextManager[None]:
        """A store failure (logged) raises ApprovalsUnavailable: nothing is done."""
        return unavailable_on_error("approvals", ApprovalsUnavailable, log)
