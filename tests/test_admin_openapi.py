"""The admin API's OpenAPI document lists every admin route the gateway mounts."""

from __future__ import annotations

import re
from pathlib import Path

from maestro_gateway.admin.openapi import OPENAPI

ADMIN = Path(__file__).resolve().parents[1] / "src" / "maestro_gateway" / "admin"


def mounted_paths() -> set[str]:
    found: set[str] = set()
    for source in ADMIN.glob("*.py"):
        found |= set(re.findall(r'Route\(\s*"(/admin/v1/[^"]+)"', source.read_text()))
        found |= {
            f"/admin/v1/agents/{{agent_id}}/{a}"
            for a in ("activate", "suspend", "retire")
            if "/admin/v1/agents/{agent_id}/{action}" in found
        }
    found.discard("/admin/v1/agents/{agent_id}/{action}")
    found.discard("/admin/v1/openapi.json")
    return found


def test_every_admin_route_is_documented() -> None:
    """A route added without its OpenAPI entry fails here."""
    routes = mounted_paths()
    assert len(routes) > 10
    assert routes <= set(OPENAPI["paths"])
