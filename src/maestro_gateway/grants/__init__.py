"""C17 just-in-time tool permission: task-scoped grants, their store and their service.

The guard is :mod:`maestro_gateway.guards.grants`; approvers issue and revoke grants through the
admin API (:mod:`maestro_gateway.admin.grants`) and the CLI; a principal may request one for
itself, issued only when policy permits. See docs/grants.md. The service
(:mod:`maestro_gateway.grants.service`) and stores (:mod:`maestro_gateway.grants.store`) are
imported from their modules (this package is imported by the configuration model).
"""

from maestro_gateway.grants.config import GrantsConfig
from maestro_gateway.grants.models import (
    GRANT_PREFIX,
    Conflict,
    Forbidden,
    Grant,
    GrantError,
    GrantsUnavailable,
    InvalidGrant,
    NotFound,
    new_grant_id,
)

__all__ = [
    "GRANT_PREFIX",
    "Conflict",
    "Forbidden",
    "Grant",
    "GrantError",
    "GrantsConfig",
    "GrantsUnavailable",
    "InvalidGrant",
    "NotFound",
    "new_grant_id",
]
