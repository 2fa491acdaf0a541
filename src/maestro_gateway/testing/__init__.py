"""Test doubles shipped with the gateway (used by its tests and benchmarks).

``echo_app`` is imported lazily so ``python -m maestro_gateway.testing.echo_agent`` runs cleanly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from maestro_gateway.testing.echo_agent import echo_app

__all__ = ["echo_app"]


def __getattr__(name: str) -> Any:
    if name == "echo_app":
        from maestro_gateway.testing.echo_agent import echo_app

        return echo_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
