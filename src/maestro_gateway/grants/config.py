"""The ``grants:`` configuration section: where just-in-time grants live and how far a
policy-issued grant may reach (docs/grants.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["GrantsConfig"]


class GrantsConfig(BaseModel):
    """C17 just-in-time tool permissions: the grant store and the bounds of issued grants."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(
        "sqlite:///.demo/grants.db",
        description="sqlite:///path, sqlite://:memory: or postgresql://…?schema=name",
    )
    max_ttl_s: float = Field(
        86_400.0, gt=0, description="Longest lifetime of any grant (an approver's included)."
    )
    default_ttl_s: float = Field(3600.0, gt=0, description="Lifetime when none is asked for.")
    max_uses: int = Field(1000, gt=0, description="Largest use count of any grant.")
    request_max_ttl_s: float = Field(
        900.0, gt=0, description="Longest lifetime of a grant issued by policy (self-request)."
    )
    request_max_uses: int = Field(
        5, gt=0, description="Use count of a policy-issued grant (always bounded)."
    )
