"""Who is calling: people (OpenID Connect with enforced MFA) and service accounts (API keys).

Public surface; the modules hold the details:

- :mod:`.model` — :class:`Identity` and the error hierarchy;
- :mod:`.config` — issuers, introspection, API keys, MFA requirements;
- :mod:`.jwks` — discovery and the JWKS cache; :mod:`.oidc` — JWT validation;
- :mod:`.introspect` — RFC 7662; :mod:`.apikeys` — hashed, scoped, expiring keys;
- :mod:`.mfa` — requirement evaluation and the RFC 9470 step-up challenge;
- :mod:`.revocation` — the runtime ``jti`` deny list; :mod:`.devissuer` — the demo's issuer.
"""

from maestro_gateway.identity.apikeys import ApiKeyRecord, ApiKeyStore
from maestro_gateway.identity.authenticator import Authenticator, bearer_token
from maestro_gateway.identity.config import (
    ApiKeysConfig,
    IdentityConfig,
    IntrospectionConfig,
    IssuerConfig,
    MfaRequirement,
)
from maestro_gateway.identity.model import (
    AuthError,
    Identity,
    IdentityUnavailable,
    InvalidToken,
)

__all__ = [
    "ApiKeyRecord",
    "ApiKeyStore",
    "ApiKeysConfig",
    "AuthError",
    "Authenticator",
    "Identity",
    "IdentityConfig",
    "IdentityUnavailable",
    "IntrospectionConfig",
    "InvalidToken",
    "IssuerConfig",
    "MfaRequirement",
    "bearer_token",
]
