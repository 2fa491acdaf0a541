"""A development OpenID issuer embedded in the demo: no Node, no network, one command.

It signs RFC 9068 access tokens (``typ: at+jwt``, ES256) with a key kept in the demo's state
directory and publishes its public key as a JWKS file that the gateway trusts through
``identity.issuers[].jwks_file``. It is for ``maestro-gateway demo`` and local trials only:
whoever can read the key file can mint any identity. Production gateways trust a real issuer
(see docs/identity.md).
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey

from maestro_gateway.keyfiles import create_private_file

__all__ = ["DEMO_ACCOUNTS", "DEV_AUDIENCE", "DEV_ISSUER", "DevIssuer"]

DEV_ISSUER = "urn:maestro:dev-issuer"
DEV_AUDIENCE = "urn:maestro:gateway"
MFA_ACR = "urn:maestro:loa:2"

DEMO_ACCOUNTS: dict[str, dict[str, Any]] = {
    "admin": {"sub": "ada-admin", "roles": ["registry-admin"], "amr": ["pwd", "otp"]},
    "approver": {"sub": "avery-approver", "roles": ["approver"], "amr": ["pwd", "otp"]},
    "user": {"sub": "uma-user", "roles": ["user"], "amr": ["pwd", "otp"]},
    "user_no_mfa": {"sub": "nico-nomfa", "roles": ["user"], "amr": ["pwd"]},
}
"""The demo's credentials (``.demo/credentials.json`` keys): all with MFA but the last."""


class DevIssuer:
    """The development issuer: a key file, a JWKS file, and tokens."""

    def __init__(self, state_dir: Path, issuer: str = DEV_ISSUER) -> None:
        self.issuer = issuer
        self.key_path = state_dir / "dev-issuer-key.pem"
        self.jwks_path = state_dir / "dev-issuer-jwks.json"
        if not self.key_path.exists():
            pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            create_private_file(self.key_path, pem)
        self._key = ECKey.import_key(self.key_path.read_bytes())
        self.kid = self._key.thumbprint()[:16]
        public = {**self._key.as_dict(private=False), "kid": self.kid, "alg": "ES256", "use": "sig"}
        self.jwks_path.write_bytes(orjson.dumps({"keys": [public]}))

    def issuer_config(self, audience: str = DEV_AUDIENCE) -> dict[str, Any]:
        """The ``identity.issuers[]`` entry that trusts this issuer."""
        return {
            "issuer": self.issuer,
            "audience": [audience],
            "algorithms": ["ES256"],
            "typ": "at+jwt",
            "discovery": False,
            "jwks_file": str(self.jwks_path),
        }

    def mint(
        self,
        sub: str,
        *,
        roles: list[str] | None = None,
        amr: list[str] | None = None,
        acr: str | None = None,
        ttl_s: int = 12 * 3600,
        audience: str = DEV_AUDIENCE,
        auth_time: int | None = None,
        tenant: str | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": audience,
            "iat": now,
            "exp": now + ttl_s,
            "jti": secrets.token_urlsafe(16),
            "client_id": "maestro-demo",
            "auth_time": now if auth_time is None else auth_time,
            "amr": amr or ["pwd"],
            "roles": roles or [],
        }
        if acr:
            claims["acr"] = acr
        if tenant:
            claims["tenant"] = tenant
        header = {"alg": "ES256", "typ": "at+jwt", "kid": self.kid}
        return jwt.encode(header, claims, self._key, algorithms=["ES256"])

    def write_credentials(self, path: Path, ttl_s: int = 12 * 3600) -> dict[str, Any]:
        """Fresh tokens for the demo accounts, written to ``path`` (mode 0600)."""
        out: dict[str, Any] = {"issuer": self.issuer, "audience": DEV_AUDIENCE, "accounts": {}}
        for name, acct in DEMO_ACCOUNTS.items():
            mfa = "otp" in acct["amr"]
            token = self.mint(
                acct["sub"],
                roles=acct["roles"],
                amr=acct["amr"],
                acr=MFA_ACR if mfa else "urn:maestro:loa:1",
                ttl_s=ttl_s,
            )
            out["accounts"][name] = {
                "token": token,
                "sub": acct["sub"],
                "roles": acct["roles"],
                "amr": acct["amr"],
                "mfa": mfa,
                "expires_in_s": ttl_s,
            }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        create_private_file(path, orjson.dumps(out, option=orjson.OPT_INDENT_2))
        return out
