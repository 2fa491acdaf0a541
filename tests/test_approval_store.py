"""Held-request storage and decisions on SQLite and the real PostgreSQL server: compare-and-set
release exactly once, timeouts, four-eyes, audit records, and failing closed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from maestro_gateway.approvals.models import (
    ApprovalsUnavailable,
    Conflict,
    Forbidden,
    HoldState,
    InvalidArgument,
    NotFound,
)
from maestro_gateway.approvals.service import ApprovalService
from maestro_gateway.approvals.store import ApprovalStore, open_store
from maestro_gateway.audit.recorder import AuditRecorder
from maestro_gateway.config import ApprovalsConfig, AuditConfig
from maestro_gateway.context import RequestContext
from tests.helpers import Clock, audit_fixture, audit_records, store_url_fixture  # noqa: F401 (fixtures)


@pytest.fixture
async def service(store_url: str, audit: AuditRecorder) -> AsyncIterator[ApprovalService]:
    cfg = ApprovalsConfig(url=store_url, hold_timeout_s=60, release_window_s=30)
    svc = ApprovalService(cfg, audit, clock=Clock())
    await svc.start(sweep=False)
    yield svc
    await svc.close()


def request(amount: int = 5000) -> RequestContext:
    message = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"data": {"amount": amount}}]}
    return RequestContext("r1", "bank", "SendMessage", {"message": message}, skill_id="pay")


FINDINGS = [{"type": "condition", "name": "large amount", "summary": "amount > 1000"}]


def audit_types(tmp_path: Path) -> list[str]:
    return [r["type"] for r in audit_records(tmp_path)]


async def test_hold_is_stored_exactly(service: ApprovalService, tmp_path: Path) -> None:
    """The held request is stored as it would be forwarded, with its findings and requester."""
    ctx = request()
    hold = await service.hold(ctx, "addr:10.0.0.1", "held: amount", FINDINGS)
    again = await service.get(hold.id)
    assert again is not None
    assert again.params == ctx.params
    assert again.findings == FINDINGS
    assert again.state is HoldState.PENDING
    assert again.requester == "addr:10.0.0.1"
    assert len(hold.id) == len("held-") + 32
    assert [h.id for h in await service.list(HoldState.PENDING)] == [hold.id]
    assert "approval.held" in audit_types(tmp_path)


async def test_release_happens_exactly_once_under_concurrency(service: ApprovalService) -> None:
    """Twenty concurrent releases of one approved hold: exactly one wins, the rest conflict."""
    hold = await service.hold(request(), "addr:10.0.0.1", "held", FINDINGS)
    await service.approve(hold.id, "alice", "looks right")
    results = await asyncio.gather(
        *(service.release(hold, f"r{i}") for i in range(20)), return_exceptions=True
    )
    wins = [r for r in results if not isinstance(r, BaseException)]
    assert len(wins) == 1
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
    got = await service.get(hold.id)
    assert got is not None
    assert got.state is HoldState.RELEASED


async def test_pending_hold_cannot_be_released(service: ApprovalService) -> None:
    """A hold nobody approved is never released, nor continued."""
    hold = await service.hold(request(), "addr:10.0.0.1", "held", FINDINGS)
    with pytest.raises(Conflict):
        await service.release(hold, "r1")
    with pytest.raises(Conflict):
        await service.claim(hold.id, "addr:10.0.0.1", "bank", "SendMessage")


async def test_four_eyes_and_named_approver(service: ApprovalService) -> None:
    """The requester cannot approve their own request, and a decision needs a name."""
    hold = await service.hold(request(), "alice", "held", FINDINGS)
    with pytest.raises(Forbidden):
        await service.approve(hold.id, "alice")
    with pytest.raises(InvalidArgument):
        await service.approve(hold.id, "  ")
    done = await service.approve(hold.id, "bob", "ok")
    assert done.state is HoldState.APPROVED
    assert done.decided_by == "bob"


async def test_one_decision_only(service: ApprovalService, tmp_path: Path) -> None:
    """A decided hold cannot be decided again; the denial and its reason are audited."""
    hold = await service.hold(request(), "addr:10.0.0.1", "held", FINDINGS)
    denied = await service.deny(hold.id, "bob", "destination unknown")
    assert denied.state is HoldState.DENIED
    assert denied.decision_reason == "destination unknown"
    with pytest.raises(Conflict):
        await service.approve(hold.id, "carol")
    with pytest.raises(NotFound):
        await service.approve("held-" + "0" * 32, "carol")
    assert audit_types(tmp_path)[-2:] == ["approval.held", "approval.denied"]


async def test_claim_checks_requester_agent_and_method(service: ApprovalService) -> None:
    """Only the requester may continue, at the same agent, with the same method."""
    hold = await service.hold(request(), "addr:10.0.0.1", "held", FINDINGS)
    await service.approve(hold.id, "bob")
    with pytest.raises(NotFound):
        await service.claim(hold.id, "addr:10.0.0.2", "bank", "SendMessage")
    with pytest.raises(NotFound):
        await service.claim(hold.id, "addr:10.0.0.1", "other", "SendMessage")
    with pytest.raises(InvalidArgument):
        await service.claim(hold.id, "addr:10.0.0.1", "bank", "SendStreamingMessage")
    assert (await service.claim(hold.id, "addr:10.0.0.1", "bank", "SendMessage")).id == hold.id


async def test_timeouts_deny(service: ApprovalService, tmp_path: Path) -> None:
    """A pending hold past its timeout, and an approval not used in its window, expire."""
    clock = service.clock
    assert isinstance(clock, Clock)
    pending = await service.hold(request(1), "addr:10.0.0.1", "held", FINDINGS)
    approved = await service.hold(request(2), "addr:10.0.0.1", "held", FINDINGS)
    await service.approve(approved.id, "bob")
    clock.now += 31  # past the release window, within the hold timeout
    with pytest.raises(Forbidden):
        await service.claim(approved.id, "addr:10.0.0.1", "bank", "SendMessage")
    with pytest.raises(Conflict):
        await service.release(approved, "r1")
    clock.now += 30  # past the hold timeout
    got = await service.get(pending.id)
    assert got is not None
    assert got.state is HoldState.EXPIRED
    with pytest.raises(Conflict):
        await service.approve(pending.id, "bob")
    assert audit_types(tmp_path).count("approval.expired") == 2


async def test_sweeper_expires_without_reads(store_url: str, audit: AuditRecorder) -> None:
    """The background sweeper expires timed-out holds on its own."""
    cfg = ApprovalsConfig(url=store_url, hold_timeout_s=0.05, sweep_interval_s=0.05)
    svc = ApprovalService(cfg, audit)
    await svc.start()
    try:
        hold = await svc.hold(request(), "addr:10.0.0.1", "held", FINDINGS)
        for _ in range(100):
            await asyncio.sleep(0.05)
            row = await svc.store.get(hold.id)  # the raw store: no expiry on read
            if row is not None and row.state is HoldState.EXPIRED:
                break
        assert row is not None
        assert row.state is HoldState.EXPIRED
    finally:
        await svc.close()


async def test_no_decision_without_audit(service: ApprovalService) -> None:
    """With the audit log gone, nothing is held, approved or released (fail closed)."""
    hold = await service.hold(request(), "addr:10.0.0.1", "held", FINDINGS)
    await service.audit.close()
    with pytest.raises(ApprovalsUnavailable):
        await service.approve(hold.id, "bob")
    got = await service.get(hold.id)
    assert got is not None
    assert got.state is HoldState.PENDING
    with pytest.raises(ApprovalsUnavailable):
        await service.hold(request(7), "addr:10.0.0.1", "held", FINDINGS)
    assert [h.state for h in await service.list()].count(HoldState.PENDING) == 1


async def test_release_is_undone_when_it_cannot_be_audited(
    service: ApprovalService, tmp_path: Path
) -> None:
    """A release the audit log cannot record is put back to approved (nothing was forwarded)."""
    hold = await service.hold(request(), "addr:10.0.0.1", "held", FINDINGS)
    await service.approve(hold.id, "bob")
    await service.audit.close()
    with pytest.raises(ApprovalsUnavailable):
        await service.release(hold, "r1")
    got = await service.get(hold.id)
    assert got is not None
    assert got.state is HoldState.APPROVED


async def test_store_failure_is_unavailable(store_url: str, audit: AuditRecorder) -> None:
    """A store that cannot be used answers ApprovalsUnavailable, never a raw driver error."""
    svc = ApprovalService(ApprovalsConfig(url=store_url), audit)
    await svc.start(sweep=False)
    await svc.store.close()
    with pytest.raises(ApprovalsUnavailable):
        await svc.hold(request(), "addr:10.0.0.1", "held", FINDINGS)
    with pytest.raises(ApprovalsUnavailable):
        await svc.get("held-" + "0" * 32)
    await svc.close()


async def test_holds_survive_reopening(store_url: str) -> None:
    """A hold written by one store instance is read back, unchanged, by a new one."""
    first: ApprovalStore = open_store(store_url)
    await first.init()
    svc = ApprovalService(ApprovalsConfig(url=store_url), AuditRecorder(AuditConfig(enabled=False)))
    svc._store = first  # reuse the opened store
    hold = await svc.hold(request(), "addr:10.0.0.1", "held", FINDINGS)
    await first.close()
    second = open_store(store_url)
    await second.init()
    try:
        assert await second.get(hold.id) == hold
    finally:
        await second.close()


def test_open_store_urls() -> None:
    """Store URLs: SQLite paths and memory, PostgreSQL with a schema; others refused."""
    assert type(open_store("sqlite://:memory:")).__name__ == "SqliteApprovalStore"
    pg: Any = open_store("postgresql://u@h/db?schema=held")
    assert pg.schema == "held"
    with pytest.raises(ValueError, match="unsupported"):
        open_store("mysql://x")
    with pytest.raises(ValueError, match="lowercase"):
        open_store("postgresql://u@h/db?schema=Bad-Name")
