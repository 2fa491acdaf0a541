"""C17 grant storage and service on SQLite and the real PostgreSQL server: exactly N uses under
concurrency, task scoping, expiry, revocation once, audit records, bounds and failing closed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from maestro_gateway.audit.recorder import AuditRecorder
from maestro_gateway.config import AuditConfig
from maestro_gateway.grants import (
    Conflict,
    GrantsConfig,
    GrantsUnavailable,
    InvalidGrant,
    NotFound,
)
from maestro_gateway.grants.service import GrantService
from tests.helpers import Clock, audit_fixture, audit_records, store_url_fixture  # noqa: F401 (fixtures)

ALICE = "https://idp.example|alice"


@pytest.fixture
async def service(store_url: str, audit: AuditRecorder) -> AsyncIterator[GrantService]:
    svc = GrantService(GrantsConfig(url=store_url, max_uses=50), audit, clock=Clock())
    await svc.start()
    yield svc
    await svc.close()


async def issue(svc: GrantService, **kw: object) -> str:
    fields: dict[str, Any] = {"principal": ALICE, "agent_id": "bank", "skill_id": "pay", **kw}
    grant = await svc.issue(actor="avery", source="approver", reason="ticket 7", **fields)
    return grant.id


async def test_uses_are_spent_exactly_n_times(service: GrantService, tmp_path: Path) -> None:
    """A grant with 3 uses matches exactly 3 calls; the last use is recorded as exhaustion."""
    gid = await issue(service, uses=3)
    left = [await service.consume(ALICE, "bank", "pay", (), "r") for _ in range(4)]
    assert [g.uses_left if g else None for g in left] == [2, 1, 0, None]
    assert service.audit.log is not None
    await service.audit.log.flush()  # uses are batched; issues are durable at once
    types = [r["type"] for r in audit_records(tmp_path)]
    assert types.count("grant.used") == 3
    assert types.count("grant.exhausted") == 1
    grant = await service.get(gid)
    assert grant is not None
    assert grant.state(service.clock()) == "exhausted"


async def test_concurrent_calls_never_exceed_the_use_count(service: GrantService) -> None:
    """Twenty concurrent calls on a 5-use grant: exactly 5 get a use (compare-and-set)."""
    await issue(service, uses=5)
    results = await asyncio.gather(
        *(service.consume(ALICE, "bank", "pay", (), f"r{i}") for i in range(20))
    )
    assert sum(1 for r in results if r is not None) == 5


async def test_grant_matches_only_its_principal_agent_skill(service: GrantService) -> None:
    """Another principal, agent or skill finds nothing; the grant itself is untouched."""
    await issue(service, uses=2)
    assert await service.consume("https://idp.example|bob", "bank", "pay", (), "r") is None
    assert await service.consume(ALICE, "bank2", "pay", (), "r") is None
    assert await service.consume(ALICE, "bank", "refund", (), "r") is None
    used = await service.consume(ALICE, "bank", "pay", (), "r")
    assert used is not None
    assert used.uses_left == 1


async def test_task_scoped_grant_needs_its_task(service: GrantService) -> None:
    """A grant for task t-1 matches a call naming t-1, not t-2 and not a call naming no task."""
    await issue(service, task_id="t-1")
    assert await service.consume(ALICE, "bank", "pay", (), "r") is None
    assert await service.consume(ALICE, "bank", "pay", ("t-2",), "r") is None
    assert await service.consume(ALICE, "bank", "pay", ("x", "t-1"), "r") is not None


async def test_task_scoped_grant_is_preferred(service: GrantService) -> None:
    """With an any-task grant and a task grant, a call in that task spends the task grant."""
    await issue(service, uses=5)
    task_gid = await issue(service, task_id="t-1", uses=5)
    used = await service.consume(ALICE, "bank", "pay", ("t-1",), "r")
    assert used is not None
    assert used.id == task_gid


async def test_expired_grant_does_not_match(service: GrantService) -> None:
    """A grant stops matching at its expiry."""
    await issue(service, ttl_s=60)
    clock = service.clock
    assert isinstance(clock, Clock)
    clock.now += 59
    assert await service.consume(ALICE, "bank", "pay", (), "r") is not None
    clock.now += 2
    assert await service.consume(ALICE, "bank", "pay", (), "r") is None


async def test_revocation_happens_once_and_is_recorded(
    service: GrantService, tmp_path: Path
) -> None:
    """A revoked grant no longer matches; revoking again is a conflict, an unknown id 404."""
    gid = await issue(service)
    revoked = await service.revoke(gid, "avery", "done")
    assert revoked.revoked_by == "avery"
    assert await service.consume(ALICE, "bank", "pay", (), "r") is None
    with pytest.raises(Conflict):
        await service.revoke(gid, "avery")
    with pytest.raises(NotFound):
        await service.revoke("grant-nope", "avery")
    records = audit_records(tmp_path)
    assert [r["actor"] for r in records if r["type"] == "grant.revoked"] == ["avery"]


async def test_bounds_and_bad_fields_are_refused(service: GrantService) -> None:
    """ttl over the maximum, uses over the maximum, zero, booleans, control characters: 400."""
    for bad in (
        {"ttl_s": 10**9}, {"uses": 51}, {"uses": 0}, {"uses": True}, {"ttl_s": float("nan")},
        {"principal": "eve\x1b[2J"}, {"skill_id": ""}, {"task_id": 7},
    ):  # fmt: skip
        with pytest.raises(InvalidGrant):
            await issue(service, **bad)
    assert await service.list() == []


async def test_unrecorded_grant_is_not_usable(store_url: str, tmp_path: Path) -> None:
    """When the audit log cannot record an issue, the call fails (503) and the grant is dead."""
    dead_audit = AuditRecorder(AuditConfig(url=f"sqlite:///{tmp_path / 'a.db'}"))  # not started
    svc = GrantService(GrantsConfig(url=store_url), dead_audit)
    await svc.start()
    try:
        with pytest.raises(GrantsUnavailable):
            await issue(svc)
        assert await svc.consume(ALICE, "bank", "pay", (), "r") is None
    finally:
        await svc.close()


async def test_store_down_fails_closed(service: GrantService) -> None:
    """With the store closed every operation raises GrantsUnavailable (the guard answers 503)."""
    await issue(service)
    await service.close()
    with pytest.raises(GrantsUnavailable):
        await service.consume(ALICE, "bank", "pay", (), "r")
    with pytest.raises(GrantsUnavailable):
        await issue(service)


async def test_grants_survive_reopening_the_sqlite_file(tmp_path: Path) -> None:
    """A grant and its remaining uses are still there after the store is closed and reopened."""
    cfg = GrantsConfig(url=f"sqlite:///{tmp_path / 'g.db'}")
    first = GrantService(cfg)
    await first.start()
    await issue(first, uses=2)
    await first.consume(ALICE, "bank", "pay", (), "r")
    await first.close()
    second = GrantService(cfg)
    await second.start()
    try:
        used = await second.consume(ALICE, "bank", "pay", (), "r")
        assert used is not None
        assert used.uses_left == 0
        assert await second.consume(ALICE, "bank", "pay", (), "r") is None
    finally:
        await second.close()
