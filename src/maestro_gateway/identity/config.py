"""Configuration of authentication: trusted issuers, introspection, API keys, MFA requirements.

``IdentityConfig`` is the top-level ``identity:`` section (static: who can vouch for callers).
``MfaRequirement`` lives in ``guards.authn.mfa`` so that ``guard_overrides`` can require a
stronger authentication per agent and per skill.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ASYMMETRIC_ALGS",
    "SECOND_FACTORS",
    "ApiKeysConfig",
    "ExchangeConfig",
    "IdentityConfig",
    "IntrospectionConfig",
    "IssuerConfig",
    "MfaRequirement",
]

Alg = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
]
ASYMMETRIC_ALGS: frozenset[str] = frozenset(Alg.__args__)  # type: ignore[attr-defined]
"""The only algorithms an issuer may allow: ``none`` and HS* (a shared secret, which an
attacker holding the public key could otherwise forge with) are not representable."""

SECOND_FACTORS = ("mfa", "otp", "hwk", "swk", "sms", "tel", "sc", "mca")
"""RFC 8176 ``amr`` values that show a factor beyond a password: multiple factors, one-time
password, hardware/software-secured key, SMS or telephone confirmation, smart card,
multiple-channel authentication."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IntrospectionConfig(_Model):
    """RFC 7662 token introspection for opaque (non-JWT) access tokens."""

    endpoint: str | None = Field(
        None, description="Introspection URL; None = the issuer's discovery document."
    )
    client_id: str
    client_secret: str = Field(description="Sent with HTTP Basic (client_secret_basic).")
    cache_ttl_s: float = Field(
        60.0, gt=0, description="Cache an active answer this long (never past the token's exp)."
    )
    negative_cache_ttl_s: float = Field(10.0, ge=0, description="Cache an inactive answer.")
    timeout_s: float = Field(5.0, gt=0)
    require_audience: bool = Field(
        False, description="Refuse active tokens whose answer carries no 'aud'."
    )


class IssuerConfig(_Model):
    """One trusted OpenID Connect issuer whose JWT access tokens the gateway accepts."""

    issuer: str = Field(description="Exact 'iss' value (and discovery base URL).")
    audience: list[str] = Field(min_length=1, description="Accepted 'aud' values (any one).")
    algorithms: list[Alg] = Field(["RS256", "ES256", "PS256", "EdDSA"], min_length=1)
    clock_skew_s: float = Field(60.0, ge=0, le=600, description="Leeway for exp/nbf/iat.")
    typ: str | None = Field(
        None, description="Required JWT 'typ' header (e.g. 'at+jwt', RFC 9068); None = any."
    )
    discovery: bool = Field(True, description="Find jwks_uri in /.well-known/openid-configuration.")
    jwks_uri: str | None = Field(None, description="Explicit JWKS URL (skips discovery).")
    jwks_file: str | None = Field(None, description="A local JWKS file (development issuers).")
    jwks_cache_ttl_s: float = Field(300.0, gt=0, description="Re-fetch the JWKS after this.")
    jwks_min_refetch_s: float = Field(
        30.0, ge=0, description="An unknown 'kid' re-fetches the JWKS at most once per this."
    )
    jwks_max_stale_s: float = Field(
        86400.0, ge=0, description="Keep using cached keys this long while the issuer is down."
    )
    http_timeout_s: float = Field(5.0, gt=0)
    max_token_age_s: float | None = Field(None, gt=0, description="Refuse tokens older (iat).")
    require_jti: bool = Field(False, description="Refuse tokens without a 'jti'.")
    groups_claim: str = "groups"
    roles_claim: str = "roles"
    tenant_claim: str = "tenant"
    mfa_acr_values: list[str] = Field(
        [], description="'acr' values that count as multi-factor even without an 'amr'."
    )
    introspection: IntrospectionConfig | None = None

    @model_validator(mode="after")
    def _keys_source(self) -> IssuerConfig:
        if not (self.discovery or self.jwks_uri or self.jwks_file):
            raise ValueError("an issuer needs discovery, jwks_uri or jwks_file")
        return self


class ApiKeysConfig(_Model):
    """Service-account API keys (hashed with scrypt in a JSON file; see ``identity.apikeys``)."""

    path: str | None = Field(None, description="The key store file; None = API keys off.")
    header: str = Field("x-api-key", description="Header carrying a key (or Bearer mgk_…).")
    scrypt_n: int = Field(2**14, ge=2**10, le=2**20, description="scrypt cost (power of two).")
    verify_cache_s: float = Field(
        60.0, ge=0, description="Remember a verified key this long (scrypt is slow on purpose)."
    )
    reload_s: float = Field(1.0, ge=0, description="Check the file for changes this often.")


class ExchangeConfig(_Model):
    """C16 delegated identities: the RFC 8693 token exchange at ``POST /oauth2/token``.

    A supervisor agent (the actor) trades a user's token for a short-lived gateway-signed token
    for one child agent and a subset of skills (docs/delegation.md). Cedar decides
    ``Action::"delegate"`` for the actor; the default policy lets only actors whose roles hold
    ``delegator`` do it.
    """

    enabled: bool = Field(False, description="Serve the token exchange and trust its tokens.")
    issuer: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="'iss' of delegated tokens; None = the gateway's public_url.",
    )
    token_ttl_s: int = Field(300, ge=5, le=3600, description="Lifetime of a delegated token.")
    max_depth: int = Field(
        2, ge=1, le=8, description="Longest actor chain ('act' nesting) a token may carry."
    )
    clock_skew_s: float = Field(30.0, ge=0, le=300, description="Leeway for exp/nbf/iat.")
    workload_roles: dict[str, list[str]] = Field(
        {},
        description="Roles of actors that prove themselves with a client SVID (SPIFFE ID → "
        "roles), e.g. {'spiffe://td/supervisor': ['delegator']}.",
    )


class IdentityConfig(_Model):
    """Who can vouch for callers of the gateway (the data plane and the admin API)."""

    issuers: list[IssuerConfig] = []
    api_keys: ApiKeysConfig = ApiKeysConfig()
    revoked_jti_file: str | None = Field(
        None, description="JSON list of revoked 'jti' (or {jti: until}); re-read on change."
    )
    second_factors: list[str] = Field(list(SECOND_FACTORS), min_length=1)
    verified_token_cache_s: float = Field(
        60.0,
        ge=0,
        description="Remember a verified JWT this long (exp and revocation still checked on "
        "every use; dropped when the issuer's keys change); 0 = verify every time.",
    )
    admin_roles: list[str] = Field(
        ["registry-admin", "approver", "auditor"],
        description="A bearer JWT reaches the admin API only with one of these roles/groups "
        "(policy then decides each action); empty = any authenticated caller.",
    )
    realm: str = "maestro-gateway"
    exchange: ExchangeConfig = Field(
        ExchangeConfig(), description="C16: RFC 8693 token exchange for child agents."
    )

    @model_validator(mode="after")
    def _own_issuer(self) -> IdentityConfig:
        if self.exchange.issuer is not None and any(
            i.issuer == self.exchange.issuer for i in self.issuers
        ):
            raise ValueError("identity.exchange.issuer must differ from every trusted issuer")
        return self

    @property
    def configured(self) -> bool:
        return bool(self.issuers) or self.api_keys.path is not None


class MfaRequirement(_Model):
    """An authentication context an agent or skill requires (``guards.authn.mfa``).

    Each condition set must hold; a valid token that misses one gets the RFC 9470 step-up
    challenge (401 ``insufficient_user_authentication``).
    """

    second_factor: bool = Field(
        False, description="'amr' must hold a second factor (identity.second_factors)."
    )
    acr_values: list[str] = Field([], description="'acr' must be one of these; empty = any.")
    max_age_s: int | None = Field(
        None, gt=0, description="'auth_time' must be at most this many seconds ago."
    )
    allow_service_accounts: bool = Field(
        False,
        description="Let service accounts (API keys, client credentials) through; they cannot "
        "step up, so otherwise they are refused with 403.",
    )

    @property
    def active(self) -> bool:
        return self.second_factor or bool(self.acr_values) or self.max_age_s is not None
