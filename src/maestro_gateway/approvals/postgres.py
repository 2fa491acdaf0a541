"""Held requests in PostgreSQL, through an asyncpg pool.

Tables live in ``schema`` (the ``search_path`` of every pooled connection; created on init).
Each operation is one transaction; a compare-and-set is one ``UPDATE … RETURNING`` statement,
which PostgreSQL makes atomic against concurrent ones (the loser sees the new state and
matches no row).
"""

from __future__ import annotations

from maestro_gateway._sqlstore import PostgresStore
from maestro_gateway.approvals._sql import SqlApprovalStore, schema

__all__ = ["PostgresApprovalStore"]


class PostgresApprovalStore(PostgresStore, SqlApprovalStore):
    """``dsn`` is a ``postgresql://`` URL; ``schema`` a lowercase identifier."""

    name = "approvals"
    ddl = tuple(schema("DOUBLE PRECISION"))
