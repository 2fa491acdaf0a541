"""Workload identity for records (C20) and the assertion's ``act`` claim, from one request."""

from __future__ import annotations

from typing import Any

from maestro_gateway.context import RequestContext

__all__ = ["act_claim", "workload_record"]


def workload_record(
    ctx: RequestContext, agent_spiffe_id: str | None, gateway_id: str | None
) -> dict[str, str] | None:
    """The workload identities involved in a request (None when there are none): the client
    certificate's SPIFFE ID and SHA-256 fingerprint (inbound mTLS), the SPIFFE ID the agent
    must present, and the gateway's own identity."""
    fields = {
        "client_spiffe_id": ctx.extra.get("client_spiffe_id"),
        "client_cert_sha256": ctx.extra.get("client_cert_sha256"),
        "agent_spiffe_id": agent_spiffe_id,
        "gateway_id": gateway_id,
    }
    out = {k: v for k, v in fields.items() if isinstance(v, str) and v}
    return out or None


def act_claim(identity: Any) -> dict[str, Any] | None:
    """RFC 8693 ``act`` from a delegated identity's chain (``Identity.delegation``, current
    actor first): the current actor outermost, each earlier one nested inside."""
    act: dict[str, Any] | None = None
    for actor in reversed(getattr(identity, "delegation", ()) or ()):
        act = {"sub": actor, **({"act": act} if act else {})}
    return act
