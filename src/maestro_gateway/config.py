"""The typed configuration model: one YAML file, validated here.

The JSON Schema in ``schemas/config.schema.json`` is generated from these models
(``make schema``); a test fails when it is stale.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from maestro_gateway.guards.ratelimit import RateLimitGuardConfig
from maestro_gateway.guards.sanitize import SanitizeGuardConfig
from maestro_gateway.guards.waf import WafGuardConfig


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ListenConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)


class TrustedKey(_Model):
    """A public key trusted to sign agent cards (JWK, inline or in a file)."""

    kid: str
    jwk: dict[str, Any] | None = None
    jwk_file: str | None = None


class RegistryConfig(_Model):
    url: str = Field(
        "sqlite:///.demo/registry.db",
        description="sqlite:///path, sqlite://:memory: or postgresql://user@host/db",
    )
    trusted_keys: list[TrustedKey] = []
    require_signed_cards: bool = Field(
        False, description="Refuse cards that carry no signature from a trusted key."
    )
    max_card_bytes: int = Field(256 * 1024, gt=0)
    card_fetch_timeout_s: float = Field(5.0, gt=0)


class GatewayKeyConfig(_Model):
    path: str = Field(
        ".demo/gateway-signing-key.pem", description="PEM private key; created if absent."
    )
    alg: Literal["ES256", "EdDSA"] = "ES256"
    kid: str = "maestro-gateway-1"


class UpstreamConfig(_Model):
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(
        60.0, gt=0, description="Max silence between bytes from an agent."
    )
    total_timeout_s: float = Field(300.0, gt=0, description="Max duration of a unary call.")
    max_response_bytes: int = Field(8 * 1024 * 1024, gt=0)
    max_event_bytes: int = Field(1024 * 1024, gt=0, description="Max size of one SSE event.")
    stream_idle_timeout_s: float = Field(
        600.0, gt=0, description="Max silence on an open SSE stream from an agent."
    )
    pool_size_per_host: int = Field(64, gt=0, description="Max connections to one agent.")
    keepalive_s: float = Field(
        4.0, gt=0, description="Close idle agent connections after this (below the agent's own)."
    )


class SsrfConfig(_Model):
    allow_private: bool = Field(False, description="Allow RFC 1918 / unique-local targets.")
    allow_loopback: bool = False
    allow_hosts: list[str] = Field([], description="Host names always allowed.")
    allow_cidrs: list[str] = Field([], description="Networks always allowed.")
    resolve_timeout_s: float = Field(2.0, gt=0)


class ValidateGuardConfig(_Model):
    """C1 input validation."""

    enabled: bool = True
    fail_mode: Literal["fail_closed", "fail_open"] = "fail_closed"
    max_body_bytes: int = Field(1024 * 1024, gt=0)
    max_depth: int = Field(32, gt=0)
    max_elements: int = Field(10_000, gt=0)
    max_parts: int = Field(64, gt=0)
    max_part_bytes: int = Field(256 * 1024, gt=0)
    max_string_bytes: int = Field(512 * 1024, gt=0)
    normalize: Literal["NFC", "NFKC", "none"] = "NFC"
    reject_control_chars: bool = True
    reject_bidi_controls: bool = True
    reject_tag_chars: bool = True
    ssrf: SsrfConfig = SsrfConfig()


class GuardsConfig(_Model):
    validate_: ValidateGuardConfig = Field(ValidateGuardConfig(), alias="validate")
    ratelimit: RateLimitGuardConfig = RateLimitGuardConfig()
    waf: WafGuardConfig = WafGuardConfig()
    sanitize: SanitizeGuardConfig = SanitizeGuardConfig()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class GuardOverride(_Model):
    """Guard settings for some agents and/or skills; later entries win."""

    agents: list[str] = Field([], description="Agent ids; empty = any agent.")
    skills: list[str] = Field([], description="Skill ids; empty = any skill.")
    guards: dict[str, dict[str, Any]]


class RouteRule(_Model):
    """Skill routing rule for the virtual `router` agent: a regex over the message text."""

    pattern: str
    skill: str


class SeedAgent(_Model):
    """An agent registered (and optionally activated) at start-up."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    card_url: str
    activate: bool = True
    expected_spiffe_id: str | None = None


class AuditConfig(_Model):
    """C9 tamper-evident audit log (an RFC 6962 Merkle log with signed checkpoints)."""

    enabled: bool = True
    url: str = Field(
        "sqlite:///.demo/audit.db", description="sqlite:///path or postgresql://…?schema=name"
    )
    key_path: str = Field(
        ".demo/audit-signing-key.pem", description="Ed25519 checkpoint key; created if absent."
    )
    key_name: str = Field("maestro-gateway-audit", pattern=r"^[A-Za-z0-9._/-]{1,64}$")
    flush_ms: int = Field(50, gt=0, description="Batch interval for non-critical events.")
    max_batch: int = Field(1000, gt=0)
    state_file: str = Field(
        ".demo/audit-verified.checkpoint",
        description="Where `audit verify` keeps the last verified checkpoint (rollback check).",
    )


class LoggingConfig(_Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "text"] = "json"
    access_log: bool = True


class GatewayConfig(_Model):
    """The whole gateway configuration."""

    listen: ListenConfig = ListenConfig()
    public_url: str = Field("http://127.0.0.1:8080", description="Base URL clients use.")
    workers: int = Field(1, ge=1, le=64)
    registry: RegistryConfig = RegistryConfig()
    gateway_key: GatewayKeyConfig = GatewayKeyConfig()
    upstream: UpstreamConfig = UpstreamConfig()
    guards: GuardsConfig = GuardsConfig()
    guard_overrides: list[GuardOverride] = []
    routing: list[RouteRule] = []
    agents: list[SeedAgent] = []
    audit: AuditConfig = AuditConfig()
    logging: LoggingConfig = LoggingConfig()
    admin_token: str | None = Field(
        None, description="Bearer token for /admin/v1 (until OIDC lands); None = loopback only."
    )


class ConfigError(Exception):
    """A configuration file that cannot be used; the message names each bad field."""


def format_errors(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(root)"
        lines.append(f"{path}: {err['msg']}")
    return "\n".join(lines)


def parse_config(data: object) -> GatewayConfig:
    if data is None:
        data = {}
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc)) from None


def load_config(path: str | Path) -> GatewayConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    return parse_config(data)


def config_sha256(cfg: GatewayConfig) -> str:
    """A stable hash of the effective configuration."""
    canonical = json.dumps(cfg.model_dump(mode="json", by_alias=True), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def config_json_schema() -> dict[str, Any]:
    return GatewayConfig.model_json_schema(by_alias=True)
