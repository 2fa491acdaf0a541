"""Grants over SQL, shared by the SQLite and PostgreSQL stores.

A use is one compare-and-set statement (``UPDATE … SET uses_left = uses_left - 1 WHERE id = ?
AND uses_left > 0 … RETURNING *``): of N concurrent calls on a grant with one use left, exactly
one gets it, in either backend. A revocation is ``… WHERE revoked_at IS NULL``, so it happens
once. Statements use ``?`` placeholders; backends translate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from maestro_gateway._sqlstore import SqlStore
from maestro_gateway.grants.models import Grant

TABLE = "jit_grants"
_COLUMNS = (
    "id", "principal", "agent_id", "skill_id", "task_id", "expires_at", "uses_left", "max_uses",
    "issued_at", "issued_by", "source", "reason", "decision_id", "revoked_at", "revoked_by",
    "revoke_reason",
)  # fmt: skip
_LIVE = "revoked_at IS NULL AND expires_at > ? AND (uses_left IS NULL OR uses_left > 0)"


def schema(real: str) -> list[str]:
    """DDL, idempotent; ``real`` is the backend's floating-point column type."""
    return [
        f"""CREATE TABLE IF NOT EXISTS {TABLE} (
            id TEXT PRIMARY KEY,
            principal TEXT NOT NULL,
            agent_id TEXT NOT NULL,
            skill_id TEXT NOT NULL,
            task_id TEXT,
            expires_at {real} NOT NULL,
            uses_left INTEGER,
            max_uses INTEGER,
            issued_at {real} NOT NULL,
            issued_by TEXT NOT NULL,
            source TEXT NOT NULL,
            reason TEXT NOT NULL,
            decision_id TEXT,
            revoked_at {real},
            revoked_by TEXT,
            revoke_reason TEXT)""",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_lookup ON {TABLE} (principal, agent_id, skill_id)",
    ]


class SqlGrantStore(SqlStore):
    """The GrantStore behaviour; subclasses provide connections and transactions."""

    async def insert(self, grant: Grant) -> None:
        marks = ", ".join("?" for _ in _COLUMNS)
        async with self._tx() as tx:
            await tx.run(
                f"INSERT INTO {TABLE} ({', '.join(_COLUMNS)}) VALUES ({marks})",
                *(getattr(grant, c) for c in _COLUMNS),
            )

    async def get(self, grant_id: str) -> Grant | None:
        async with self._tx() as tx:
            row = await tx.one(f"SELECT * FROM {TABLE} WHERE id = ?", grant_id)
        return _grant(row) if row else None

    async def list_grants(
        self,
        *,
        principal: str | None = None,
        agent_id: str | None = None,
        live_at: float | None = None,
        limit: int = 100,
    ) -> list[Grant]:
        where, args = ["1 = 1"], []  # type: list[str], list[Any]
        if principal is not None:
            where.append("principal = ?")
            args.append(principal)
        if agent_id is not None:
            where.append("agent_id = ?")
            args.append(agent_id)
        if live_at is not None:
            where.append(_LIVE)
            args.append(live_at)
        sql = f"SELECT * FROM {TABLE} WHERE {' AND '.join(where)} ORDER BY issued_at DESC LIMIT ?"
        async with self._tx() as tx:
            rows = await tx.all(sql, *args, limit)
        return [_grant(r) for r in rows]

    async def consume(
        self, principal: str, agent_id: str, skill_id: str, task_ids: Sequence[str], now: float
    ) -> Grant | None:
        """Spend one use of a live grant for exactly this principal, agent and skill (and, for a
        task-scoped grant, one of ``task_ids``); task-scoped grants first, then the soonest to
        expire. Returns the grant as it is after the use, or None when none matches. A grant
        without a use count is only read (no write, no commit to wait for)."""
        task_sql = "task_id IS NULL"
        if task_ids:
            task_sql = f"(task_id IS NULL OR task_id IN ({', '.join('?' for _ in task_ids)}))"
        async with self._tx() as tx:
            rows = await tx.all(
                f"SELECT * FROM {TABLE} WHERE principal = ? AND agent_id = ? AND skill_id = ? "
                f"AND {task_sql} AND {_LIVE} "
                "ORDER BY (task_id IS NULL), expires_at LIMIT 8",
                principal, agent_id, skill_id, *task_ids, now,
            )  # fmt: skip
        for row in rows:  # each candidate is a compare-and-set; a lost race tries the next
            if row["uses_left"] is None:  # no count: live when read, nothing to spend
                return _grant(row)
            async with self._tx() as tx:
                used = await tx.one(
                    f"UPDATE {TABLE} SET uses_left = uses_left - 1 WHERE id = ? AND {_LIVE} "
                    "RETURNING *",
                    row["id"], now,
                )  # fmt: skip
            if used is not None:
                return _grant(used)
        return None

    async def revoke(self, grant_id: str, actor: str, reason: str, now: float) -> Grant | None:
        """Revoke once: None when the grant is unknown or already revoked."""
        async with self._tx() as tx:
            row = await tx.one(
                f"UPDATE {TABLE} SET revoked_at = ?, revoked_by = ?, revoke_reason = ? "
                "WHERE id = ? AND revoked_at IS NULL RETURNING *",
                now, actor, reason, grant_id,
            )  # fmt: skip
        return _grant(row) if row else None


def _grant(row: Mapping[str, Any]) -> Grant:
    data = {c: row[c] for c in _COLUMNS}
    for key in ("expires_at", "issued_at"):
        data[key] = float(data[key])
    return Grant(**data)
