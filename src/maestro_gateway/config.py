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

from maestro_gateway._quota_config import QuotaConfig
from maestro_gateway.breaker import BreakerConfig
from maestro_gateway.detect.config import DetectConfig
from maestro_gateway.grants.config import GrantsConfig
from maestro_gateway.guards.approval import ApprovalGuardConfig
from maestro_gateway.guards.authn import AuthnGuardConfig
from maestro_gateway.guards.authz import AuthzGuardConfig
from maestro_gateway.guards.dlp import DlpGuardConfig
from maestro_gateway.guards.firewall import FirewallGuardConfig
from maestro_gateway.guards.grants import GrantsGuardConfig
from maestro_gateway.guards.ratelimit import RateLimitGuardConfig
from maestro_gateway.guards.sanitize import SanitizeGuardConfig
from maestro_gateway.guards.waf import WafGuardConfig
from maestro_gateway.identity.config import IdentityConfig
from maestro_gateway.playbooks.model import PlaybooksConfig
from maestro_gateway.policy import PolicyConfig
from maestro_gateway.siem.config import SiemConfig
from maestro_gateway.spiffe.config import SpiffeConfig


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ListenConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)


class ServerConfig(_Model):
    """Limits of the client-facing HTTP server (T3: slowloris, header and connection floods).

    Enforced by ``maestro_gateway.server.GatewayHttpProtocol``; see docs/rate-limits.md.
    """

    header_timeout_s: float = Field(
        10.0, gt=0, description="A request's line and headers must arrive within this (408)."
    )
    body_timeout_s: float = Field(
        30.0, gt=0, description="A request body must arrive within this after its headers (408)."
    )
    keepalive_timeout_s: float = Field(5.0, gt=0, description="Idle keep-alive connections close.")
    max_header_bytes: int = Field(
        16 * 1024, ge=1024, description="Request line plus headers, bytes (431)."
    )
    max_headers: int = Field(100, ge=8, description="Header fields per request (431).")
    max_connections: int = Field(
        4096, gt=0, description="Open client connections per worker; beyond: 503 and close."
    )
    max_connections_per_source: int | None = Field(
        None, gt=0, description="Open connections per client address; None = no limit."
    )


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
    breaker: BreakerConfig = BreakerConfig()
    quotas: QuotaConfig = QuotaConfig()
    per_agent: dict[str, AgentUpstreamConfig] = Field(
        {}, description="Per-agent overrides of the timeouts, sizes, breaker and quotas."
    )

    def for_agent(self, agent_id: str) -> UpstreamConfig:
        """This configuration with ``per_agent[agent_id]`` applied (itself when none)."""
        override = self.per_agent.get(agent_id)
        if override is None:
            return self
        merged = self.model_dump(exclude={"per_agent"}) | override.model_dump(exclude_none=True)
        return UpstreamConfig.model_validate(merged)


class AgentUpstreamConfig(_Model):
    """Settings for one agent's calls; unset fields keep the ``upstream`` values."""

    connect_timeout_s: float | None = Field(None, gt=0)
    read_timeout_s: float | None = Field(None, gt=0)
    total_timeout_s: float | None = Field(None, gt=0)
    max_response_bytes: int | None = Field(None, gt=0)
    stream_idle_timeout_s: float | None = Field(None, gt=0)
    breaker: BreakerConfig | None = None
    quotas: QuotaConfig | None = None


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
    authn: AuthnGuardConfig = AuthnGuardConfig()
    validate_: ValidateGuardConfig = Field(ValidateGuardConfig(), alias="validate")
    ratelimit: RateLimitGuardConfig = RateLimitGuardConfig()
    authz: AuthzGuardConfig = AuthzGuardConfig()
    grants: GrantsGuardConfig = GrantsGuardConfig()
    waf: WafGuardConfig = WafGuardConfig()
    firewall: FirewallGuardConfig = FirewallGuardConfig()
    dlp: DlpGuardConfig = DlpGuardConfig()
    sanitize: SanitizeGuardConfig = SanitizeGuardConfig()
    approval: ApprovalGuardConfig = ApprovalGuardConfig()

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


class AuditExportConfig(_Model):
    """Copies of the latest signed checkpoint for an outside witness (docs/audit.md, Export)."""

    file: str | None = Field(None, description="Append each new checkpoint note here (fsync).")
    syslog: str | None = Field(
        None, description="tcp://host:port: RFC 5424 over TCP, octet-counting framing."
    )
    http_url: str | None = Field(None, description="POST each new checkpoint (text/plain).")
    interval_s: float = Field(10.0, gt=0, description="How often the latest checkpoint is sent.")
    timeout_s: float = Field(5.0, gt=0)


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
    export: AuditExportConfig = AuditExportConfig()


class DriftConfig(_Model):
    """C10 drift scanner: registry vs audit log, configuration, live agent cards (docs/drift.md)."""

    enabled: bool = Field(True, description="Scan periodically in the server.")
    interval_s: float = Field(300.0, gt=0, description="Seconds between scans (first after one).")
    suspend_on_card_change: bool = Field(
        False, description="Suspend an agent whose card at its origin changed since approval."
    )
    card_fetch_timeout_s: float = Field(5.0, gt=0)
    settle_s: float = Field(
        1.0, ge=0, description="Re-check registry findings after this, to skip in-flight changes."
    )
    ssrf: SsrfConfig = Field(
        SsrfConfig(allow_private=True),
        description="Which card origins the scanner may fetch (metadata/link-local never).",
    )


class ApprovalsConfig(_Model):
    """C3 held requests: where they are kept and how long they wait (docs/approvals.md)."""

    url: str = Field(
        "sqlite:///.demo/approvals.db",
        description="sqlite:///path, sqlite://:memory: or postgresql://…?schema=name",
    )
    hold_timeout_s: float = Field(
        3600.0, gt=0, description="A hold not decided within this is denied (expired)."
    )
    release_window_s: float = Field(
        3600.0, gt=0, description="An approval not continued within this expires."
    )
    sweep_interval_s: float = Field(30.0, gt=0, description="How often timed-out holds expire.")


class LoggingConfig(_Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "text"] = "json"
    access_log: bool = True


class GatewayConfig(_Model):
    """The whole gateway configuration."""

    listen: ListenConfig = ListenConfig()
    server: ServerConfig = ServerConfig()
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
    identity: IdentityConfig = IdentityConfig()
    policy: PolicyConfig = PolicyConfig()
    approvals: ApprovalsConfig = ApprovalsConfig()
    grants: GrantsConfig = GrantsConfig()
    drift: DriftConfig = DriftConfig()
    siem: SiemConfig = SiemConfig()
    detect: DetectConfig = DetectConfig()
    playbooks: PlaybooksConfig = PlaybooksConfig()
    spiffe: SpiffeConfig = SpiffeConfig()  # C12 mTLS with SPIFFE identities (docs/mtls.md)
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
