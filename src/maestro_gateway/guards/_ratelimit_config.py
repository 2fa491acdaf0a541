"""The C6 rate-limit configuration: limits, costs, the backend (``guards.ratelimit``)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from maestro_gateway.a2a.methods import A2AMethod

__all__ = [
    "ConcurrencyLimitRule",
    "KeyField",
    "LimitCost",
    "RateLimitBackendConfig",
    "RateLimitGuardConfig",
    "RateLimitRule",
    "RateSpec",
    "parse_rate",
]

KeyField = Literal["principal", "tenant", "agent", "skill", "source", "route", "method"]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_UNITS = {"s": 1, "sec": 1, "second": 1, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
_UNITS |= {"d": 86400, "day": 86400}
_RATE_TEXT = r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|min|minute|h|hour|d|day)s?\s*$"
_RATE = re.compile(_RATE_TEXT)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateSpec(_Model):
    requests: float = Field(gt=0, description="Cost units (requests) allowed per period.")
    per_seconds: float = Field(gt=0)


def parse_rate(text: str) -> RateSpec:
    """``"100/s"``, ``"6000/min"``, ``"10/hour"``, ``"1000/day"`` → RateSpec."""
    m = _RATE.match(text)
    unit = _UNITS.get(m.group(2)) if m else None
    if m is None or unit is None or float(m.group(1)) <= 0:
        raise ValueError(f"rate {text!r}: expected like '100/s', '6000/min', '10/h' or '5/day'")
    return RateSpec(requests=float(m.group(1)), per_seconds=unit)


class LimitCost(_Model):
    """What one request costs: a flat part plus a part per KiB of request body, plus the units
    the agent reports in a response header (charged after the response)."""

    per_request: float = Field(1.0, ge=0)
    per_body_kb: float = Field(0.0, ge=0)
    response_header: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$",
        description="e.g. X-Maestro-Cost: the agent's reported units, charged after the call.",
    )
    max_response_units: float = Field(
        1000.0, gt=0, description="Cap on the units one response may charge."
    )


class RateLimitRule(_Model):
    """A GCRA rate limit: ``rate`` sustained, up to ``burst`` cost units at once."""

    name: str = Field(pattern=_NAME)
    key: list[KeyField] = Field(min_length=1)
    rate: RateSpec | Annotated[str, Field(pattern=_RATE_TEXT)] = Field(
        description="'100/s', '6000/min', '10/h', '5/day' or {requests, per_seconds}."
    )
    burst: float | None = Field(None, gt=0, description="Default: the rate's requests.")
    cost: LimitCost = LimitCost()
    methods: list[A2AMethod] = Field([], description="A2A 1.0 methods it applies to; empty = all.")

    @field_validator("rate")
    @classmethod
    def _check_rate(cls, value: RateSpec | str) -> RateSpec | str:
        if isinstance(value, str):
            parse_rate(value)
        return value

    def spec(self) -> RateSpec:
        return parse_rate(self.rate) if isinstance(self.rate, str) else self.rate


class ConcurrencyLimitRule(_Model):
    """At most ``max_in_flight`` requests (streams count until they end) per key."""

    name: str = Field(pattern=_NAME)
    key: list[KeyField] = Field(min_length=1)
    max_in_flight: int = Field(gt=0)
    methods: list[A2AMethod] = Field([], description="A2A 1.0 methods it applies to; empty = all.")


class RateLimitBackendConfig(_Model):
    """Where limit state lives. Read from the base ``guards.ratelimit`` only, not overrides."""

    kind: Literal["memory", "redis"] = "memory"
    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "maestro:rl:"
    on_failure: Literal["deny", "local"] = Field(
        "deny", description="Redis unreachable: refuse (503), or decide in this process alone."
    )
    timeout_s: float = Field(0.25, gt=0, description="Redis connect/read timeout.")
    retry_interval_s: float = Field(1.0, ge=0, description="After a failure, skip Redis this long.")
    pool_size: int = Field(32, gt=0)
    lease_s: float = Field(900.0, gt=0, description="A Redis concurrency slot's lease.")
    max_keys: int = Field(100_000, gt=0, description="In-memory keys per limit (LRU beyond).")


class RateLimitGuardConfig(_Model):
    """C6 rate and concurrency limits."""

    enabled: bool = True
    fail_mode: Literal["fail_closed", "fail_open"] = "fail_closed"
    limits: list[RateLimitRule] = []
    concurrency: list[ConcurrencyLimitRule] = []
    backend: RateLimitBackendConfig = RateLimitBackendConfig()

    @model_validator(mode="after")
    def _unique_names(self) -> RateLimitGuardConfig:
        names = [r.name for r in self.limits] + [c.name for c in self.concurrency]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"limit names must be unique: {', '.join(dupes)}")
        return self

    @property
    def active(self) -> bool:
        return self.enabled and bool(self.limits or self.concurrency)
