"""MFA is enforced, not assumed: does an identity meet an agent's or skill's requirement?

A requirement (``guards.authn.mfa``, overridable per agent and skill) may ask for a second
factor in ``amr`` (RFC 8176), an ``acr`` from a list, and a recent ``auth_time``. A person whose
valid token misses any of them is answered with the RFC 9470 step-up challenge::

    401  WWW-Authenticate: Bearer error="insufficient_user_authentication",
         error_description="…", acr_values="…", max_age=…

so the client can send the user back to the issuer for a stronger or fresher login. A service
account cannot step up: it is refused (403) unless the requirement lets service accounts in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from maestro_gateway.identity.config import MfaRequirement
from maestro_gateway.identity.model import Identity

__all__ = ["Shortfall", "bearer_challenge", "evaluate", "step_up_challenge"]


@dataclass(frozen=True, slots=True)
class Shortfall:
    """Why an identity is too weak, and whether stepping up can help."""

    reason: str
    can_step_up: bool


def evaluate(
    req: MfaRequirement, ident: Identity, second_factors: Iterable[str], now: float
) -> Shortfall | None:
    """None when ``ident`` meets ``req``; else what is missing."""
    if not req.active:
        return None
    if ident.kind == "service":
        if req.allow_service_accounts:
            return None
        return Shortfall("this agent or skill requires a person's multi-factor login", False)
    if req.second_factor and not set(ident.amr) & set(second_factors):
        return Shortfall("a second authentication factor is required (amr)", True)
    if req.acr_values and ident.acr not in req.acr_values:
        return Shortfall("a stronger authentication context is required (acr)", True)
    if req.max_age_s is not None:
        if ident.auth_time is None:
            return Shortfall("the authentication time is unknown (auth_time)", True)
        if now - ident.auth_time > req.max_age_s:
            return Shortfall("the authentication is too old (auth_time)", True)
    return None


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bearer_challenge(realm: str, error: str | None = None, description: str = "") -> str:
    """An RFC 6750 ``WWW-Authenticate: Bearer`` value."""
    parts = [f"realm={_quote(realm)}"]
    if error:
        parts.append(f"error={_quote(error)}")
    if description:
        parts.append(f"error_description={_quote(description)}")
    return "Bearer " + ", ".join(parts)


def step_up_challenge(req: MfaRequirement, realm: str, description: str) -> str:
    """The RFC 9470 challenge for ``req``."""
    value = bearer_challenge(realm, "insufficient_user_authentication", description)
    if req.acr_values:
        value += f", acr_values={_quote(' '.join(req.acr_values))}"
    if req.max_age_s is not None:
        value += f", max_age={req.max_age_s}"
    return value
