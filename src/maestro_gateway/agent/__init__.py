"""The agent-side guard (T6 gateway-bypass proof): an agent wraps itself in
:class:`GatewayOnly` so that only requests that came through the gateway reach it.

    from maestro_gateway.agent import GatewayOnly, AssertionVerifier
    app = GatewayOnly(a2a_app, gateway_spiffe_id="spiffe://corp.example/gateway",
                      verifier=AssertionVerifier(keys, issuer=..., audience="echo"))

Serve it with TLS that requires client certificates and exposes them to the application
(``maestro_gateway.agent.serve`` does both, on the gateway's hardened uvicorn protocol).
"""

from __future__ import annotations

from maestro_gateway.agent.guard import GatewayOnly
from maestro_gateway.assertion import AssertionRefused, AssertionVerifier

__all__ = ["AssertionRefused", "AssertionVerifier", "GatewayOnly"]
