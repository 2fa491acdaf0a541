"""Maestro Gateway: a security gateway for multi-agent AI systems (A2A)."""

from maestro_gateway.types import (
    ALLOW,
    FailMode,
    Guard,
    Phase,
    Verdict,
    VerdictKind,
)

__all__ = ["ALLOW", "FailMode", "Guard", "Phase", "Verdict", "VerdictKind"]
__version__ = "0.1.0"
