"""SPIFFE workload identity (C12): SPIFFE IDs, X.509 SVIDs, the development CA, TLS contexts."""

from __future__ import annotations

from maestro_gateway.spiffe.ca import CaError, Issued, init_ca, issue_svid, rotate_svid
from maestro_gateway.spiffe.ids import (
    InvalidSpiffeId,
    parse_spiffe_id,
    peer_spiffe_id,
    spiffe_id_of_cert,
    spiffe_id_of_pem,
)
from maestro_gateway.spiffe.tls import PeerRefused, SvidContexts, SvidPaths, check_peer

__all__ = [
    "CaError",
    "InvalidSpiffeId",
    "Issued",
    "PeerRefused",
    "SvidContexts",
    "SvidPaths",
    "check_peer",
    "init_ca",
    "issue_svid",
    "parse_spiffe_id",
    "peer_spiffe_id",
    "rotate_svid",
    "spiffe_id_of_cert",
    "spiffe_id_of_pem",
]
