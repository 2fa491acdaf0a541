"""Held requests over SQL, shared by the SQLite and PostgreSQL stores.

Every state change is one compare-and-set statement (``UPDATE … WHERE id = ? AND state IN (…)
RETURNING *``): of two concurrent approvals, releases or expiries of one hold, exactly one
wins, in either backend. Statements use ``?`` placeholders; backends translate.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from maestro_gateway._sqlstore import SqlStore
from maestro_gateway.approvals.models import Hold, HoldState

TABLE = "approval_holds"
_COLUMNS = (
    "id", "agent_id", "method", "params", "skill_id", "client_version", "binding", "requester",
    "findings", "reason", "request_sha256", "state", "created_at", "expires_at", "decided_at",
    "decided_by", "decision_reason", "released_at", "upstream_task_id",
)  # fmt: skip
_SETTABLE = frozenset({"expires_at", "decided_at", "decided_by", "decision_reason", "released_at"})


def schema(real: str) -> list[str]:
    """DDL, idempotent; ``real`` is the backend's floating-point column type."""
    return [
        f"""CREATE TABLE IF NOT EXISTS {TABLE} (
            id TEXT PRIMARY KEY,
            agent_id TEXT NOT NULL,
            method TEXT NOT NULL,
            params TEXT NOT NULL,
            skill_id TEXT,
            client_version TEXT NOT NULL,
            binding TEXT NOT NULL,
            requester TEXT NOT NULL,
            findings TEXT NOT NULL,
            reason TEXT NOT NULL,
            request_sha256 TEXT NOT NULL,
            state TEXT NOT NULL,
            created_at {real} NOT NULL,
            expires_at {real} NOT NULL,
            decided_at {real},
            decided_by TEXT,
            decision_reason TEXT,
            released_at {real},
            upstream_task_id TEXT)""",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_by_state ON {TABLE} (state, expires_at)",
    ]


class SqlApprovalStore(SqlStore):
    """The ApprovalStore behaviour; subclasses provide connections and transactions."""

    async def insert(self, hold: Hold) -> None:
        row = _row(hold)
        marks = ", ".join("?" for _ in _COLUMNS)
        async with self._tx() as tx:
            await tx.run(
                f"INSERT INTO {TABLE} ({', '.join(_COLUMNS)}) VALUES ({marks})",
                *(row[c] for c in _COLUMNS),
            )

    async def get(self, hold_id: str) -> Hold | None:
        async with self._tx() as tx:
            row = await tx.one(f"SELECT * FROM {TABLE} WHERE id = ?", hold_id)
        return _hold(row) if row else None

    async def list_holds(self, state: HoldState | None = None, limit: int = 100) -> list[Hold]:
        async with self._tx() as tx:
            if state is None:
                rows = await tx.all(
                    f"SELECT * FROM {TABLE} ORDER BY created_at DESC LIMIT ?", limit
                )
            else:
                rows = await tx.all(
                    f"SELECT * FROM {TABLE} WHERE state = ? ORDER BY created_at DESC LIMIT ?",
                    HoldState(state).value, limit,
                )  # fmt: skip
        return [_hold(r) for r in rows]

    async def transition(
        self,
        hold_id: str,
        before: Iterable[HoldState],
        after: HoldState,
        *,
        live_at: float | None = None,
        **fields: Any,
    ) -> Hold | None:
        """Compare-and-set: move the hold from one of ``before`` to ``after`` and set
        ``fields``, only if it is in such a state (and, with ``live_at``, not yet expired at
        that time). Returns the updated hold, or None when the condition did not hold."""
        unknown = set(fields) - _SETTABLE
        if unknown:
            raise ValueError(f"cannot set {sorted(unknown)}")
        states = [HoldState(s).value for s in before]
        sets = ", ".join(["state = ?", *(f"{name} = ?" for name in fields)])
        where = f"id = ? AND state IN ({', '.join('?' for _ in states)})"
        args: list[Any] = [after.value, *fields.values(), hold_id, *states]
        if live_at is not None:
            where += " AND expires_at > ?"
            args.append(live_at)
        async with self._tx() as tx:
            row = await tx.one(f"UPDATE {TABLE} SET {sets} WHERE {where} RETURNING *", *args)
        return _hold(row) if row else None

    async def expire_due(self, now: float) -> list[Hold]:
        """Move every pending or approved hold whose time is up to ``expired``; return them."""
        async with self._tx() as tx:
            rows = await tx.all(
                f"UPDATE {TABLE} SET state = 'expired', decided_at = ?, "
                "decision_reason = 'timed out' "
                "WHERE state IN ('pending', 'approved') AND expires_at <= ? RETURNING *",
                now, now,
            )  # fmt: skip
        return [_hold(r) for r in rows]

    async def set_upstream_task(self, hold_id: str, task_id: str) -> None:
        async with self._tx() as tx:
            await tx.run(
                f"UPDATE {TABLE} SET upstream_task_id = ? "
                "WHERE id = ? AND state = 'released' AND upstream_task_id IS NULL",
                task_id, hold_id,
            )  # fmt: skip


def _row(hold: Hold) -> dict[str, Any]:
    return {
        **{c: getattr(hold, c) for c in _COLUMNS},
        "params": json.dumps(hold.params, ensure_ascii=False, sort_keys=True),
        "findings": json.dumps(hold.findings, ensure_ascii=False),
        "state": hold.state.value,
    }


def _hold(row: Mapping[str, Any]) -> Hold:
    data = {c: row[c] for c in _COLUMNS}
    data["params"] = json.loads(row["params"])
    data["findings"] = json.loads(row["findings"])
    data["state"] = HoldState(row["state"])
    return Hold(**data)
