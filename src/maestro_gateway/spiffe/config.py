"""The ``spiffe:`` configuration section: the gateway's workload identity and where mTLS applies.

Off by default (plain HTTP everywhere, as before). A typical setting with the development CA
(``maestro-gateway pki``)::

    spiffe:
      trust_domain: corp.example
      dir: /etc/maestro/pki          # bundle.pem, gateway.pem, gateway.key
      name: gateway
      gateway_id: spiffe://corp.example/gateway
      upstream_mtls: true            # https:// agents: gateway SVID, peer SPIFFE ID checked
      inbound: {tls: true, require_client_cert: false}
      assertions: {enabled: true, ttl_s: 30}

``svid_cert``/``svid_key``/``bundle`` name the files one by one instead of ``dir`` + ``name``.
Without either, the SVID comes from the SPIFFE Workload API when ``workload_api.socket`` or the
``SPIFFE_ENDPOINT_SOCKET`` environment variable names its socket (``spiffe/_workload_api.py``).
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, model_validator

from maestro_gateway.spiffe.ids import InvalidSpiffeId, parse_spiffe_id, trust_domain_of
from maestro_gateway.spiffe.tls import SvidPaths

__all__ = ["SpiffeAssertions", "SpiffeConfig", "SpiffeInbound", "SpiffeWorkloadApi"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SpiffeInbound(_Model):
    """The client-facing listener."""

    tls: bool = Field(False, description="Terminate TLS with the gateway's SVID.")
    require_client_cert: bool = Field(
        False,
        description="Refuse clients without an X.509 SVID of the trust bundle (handshake fails); "
        "a presented SVID is always verified and handed to the pipeline.",
    )


class SpiffeAssertions(_Model):
    """Gateway-signed request assertions (``Maestro-Assertion``) on every upstream request."""

    enabled: bool = False
    ttl_s: int = Field(30, gt=0, le=300, description="Lifetime of one assertion (seconds).")


class SpiffeWorkloadApi(_Model):
    """Where the SVID comes from when no files are configured."""

    socket: str | None = Field(
        None, description="unix:///path of the Workload API; default: $SPIFFE_ENDPOINT_SOCKET."
    )
    spiffe_id: str | None = Field(
        None, description="Which of the offered SVIDs to use (default: the first)."
    )
    dir: str | None = Field(
        None, description="Private directory the fetched SVID is kept in (default: a temp dir)."
    )
    timeout_s: float = Field(10.0, gt=0, description="Wait at start-up for the first SVID.")

    def endpoint(self) -> str | None:
        return self.socket or os.environ.get("SPIFFE_ENDPOINT_SOCKET") or None


class SpiffeConfig(_Model):
    """C12 workload identity (docs/mtls.md)."""

    trust_domain: str | None = Field(None, description="e.g. corp.example")
    dir: str | None = Field(
        None, description="A directory with bundle.pem and <name>.pem/<name>.key (dev CA layout)."
    )
    name: str = Field("gateway", description="The gateway's SVID file name in `dir`.")
    svid_cert: str | None = Field(None, description="The gateway's X.509 SVID (PEM).")
    svid_key: str | None = Field(None, description="Its private key (PEM).")
    bundle: str | None = Field(None, description="The trust bundle (PEM CA certificates).")
    gateway_id: str | None = Field(
        None, description="The gateway's SPIFFE ID; assertions' issuer (else public_url)."
    )
    upstream_mtls: bool = Field(
        False,
        description="Call https:// agents with the gateway's SVID and require the agent's "
        "registered SPIFFE ID (or, when none is registered, any ID of the trust domain).",
    )
    upstream_require_tls: bool = Field(
        False,
        description="Refuse to call agents over plain http:// (fail closed; with upstream_mtls, "
        "every agent is then reached over mTLS). An agent registered with a SPIFFE ID is never "
        "called over plain HTTP while upstream_mtls is on.",
    )
    inbound: SpiffeInbound = SpiffeInbound()
    workload_api: SpiffeWorkloadApi = SpiffeWorkloadApi()
    assertions: SpiffeAssertions = SpiffeAssertions()
    refresh_s: float = Field(
        2.0, gt=0, description="How often the SVID files are checked for rotation."
    )

    @property
    def uses_svid(self) -> bool:
        return self.upstream_mtls or self.inbound.tls

    def paths(self) -> SvidPaths | None:
        """The SVID files, or None when no SVID is configured."""
        if self.svid_cert and self.svid_key and self.bundle:
            return SvidPaths(self.svid_cert, self.svid_key, self.bundle)
        if self.dir:
            p = SvidPaths.in_dir(self.dir, self.name)
            cert, key = self.svid_cert or p.cert, self.svid_key or p.key
            return SvidPaths(cert, key, self.bundle or p.bundle)
        return None

    def resolve_paths(self) -> SvidPaths | None:
        """The SVID files: configured ones, else those kept current from the Workload API
        (started on first use; raises WorkloadApiError when no SVID comes in time)."""
        paths = self.paths()
        if paths is not None:
            return paths
        socket = self.workload_api.endpoint()
        if socket is None:
            return None
        from maestro_gateway.spiffe._workload_api import workload_api_paths

        api = self.workload_api
        return workload_api_paths(socket, api.dir, api.spiffe_id, api.timeout_s)

    @model_validator(mode="after")
    def _check(self) -> SpiffeConfig:
        if self.trust_domain is not None:
            try:
                parse_spiffe_id(f"spiffe://{self.trust_domain}")
            except InvalidSpiffeId as exc:
                raise ValueError(f"trust_domain: {exc}") from None
        if self.gateway_id is not None:
            try:
                parse_spiffe_id(self.gateway_id)
            except InvalidSpiffeId as exc:
                raise ValueError(f"gateway_id: {exc}") from None
            if self.trust_domain and trust_domain_of(self.gateway_id) != self.trust_domain:
                raise ValueError("gateway_id is outside trust_domain")
        if self.uses_svid:
            if self.paths() is None and self.workload_api.endpoint() is None:
                raise ValueError("upstream_mtls/inbound.tls need SVID files or a Workload API")
            if self.trust_domain is None:
                raise ValueError("upstream_mtls/inbound.tls need `trust_domain`")
        if self.upstream_require_tls and not self.upstream_mtls:
            raise ValueError("upstream_require_tls needs upstream_mtls")
        if self.inbound.require_client_cert and not self.inbound.tls:
            raise ValueError("inbound.require_client_cert needs inbound.tls")
        return self
