"""Configuration of behavioural detection (the ``detect:`` section)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateDetectConfig(_Model):
    """Request-rate baselines per principal and per agent: EWMA of counts per bucket."""

    enabled: bool = True
    bucket_s: float = Field(60.0, gt=0, description="Width of one counting bucket.")
    alpha: float = Field(0.1, gt=0, le=1, description="EWMA weight of the newest bucket.")
    z_threshold: float = Field(4.0, gt=0, description="Finding when the bucket's z reaches it.")
    min_buckets: int = Field(10, ge=1, description="Closed buckets before a baseline is used.")
    min_std: float = Field(1.0, gt=0, description="Floor of the standard deviation (counts).")
    min_count: int = Field(20, ge=1, description="Never flag a bucket below this many requests.")


class DenialBurstConfig(_Model):
    """Bursts of denials (WAF, firewall, any guard) from one principal in a sliding window."""

    enabled: bool = True
    window_s: float = Field(60.0, gt=0)
    threshold: int = Field(5, ge=1, description="Denials in the window that raise a finding.")


class FirstAccessConfig(_Model):
    """First access by an established principal to an agent or a skill it never used."""

    enabled: bool = True
    warmup_s: float = Field(
        3600.0, ge=0, description="No findings until the detector has run this long."
    )
    min_history: int = Field(
        20, ge=1, description="Requests a principal must have made before it counts as known."
    )
    max_targets: int = Field(512, ge=1, description="Agents+skills remembered per principal.")


class OffHoursConfig(_Model):
    """Access at an hour of the week the principal (almost) never uses."""

    enabled: bool = True
    timezone: str = Field("UTC", description="IANA zone of the hour-of-week histogram.")
    min_events: int = Field(200, ge=1, description="Requests before the histogram is used.")
    min_span_s: float = Field(7 * 86400.0, ge=0, description="History span before it is used.")
    max_probability: float = Field(
        0.005, gt=0, lt=1, description="Finding when the hour's smoothed share is below this."
    )
    max_active_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Only principals active in at most this share of the week's hours have "
        "usual hours (a caller active around the clock has no off-hours).",
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class DistinctAgentsConfig(_Model):
    """Many distinct agents (including missing ones) called by one principal in a window."""

    enabled: bool = True
    window_s: float = Field(60.0, gt=0)
    threshold: int = Field(8, ge=2, description="Distinct agents in the window for a finding.")


class TokenReuseConfig(_Model):
    """One token (``jti`` or bearer hash) used from a source address it was not seen from."""

    enabled: bool = True
    ttl_s: float = Field(86400.0, gt=0, description="Forget a token's sources after this idle.")
    max_sources: int = Field(8, ge=1, description="Sources remembered per token.")


class DetectConfig(_Model):
    """C5/C15 behavioural detection (threats T2, T7). Off the request path: the data plane
    only appends an observation to a bounded queue; a background task runs the detectors."""

    enabled: bool = True
    queue_size: int = Field(
        10_000, ge=1, description="Observations waiting for the detectors; overflow is counted."
    )
    max_principals: int = Field(50_000, ge=1, description="Principals tracked (LRU beyond).")
    max_agents: int = Field(10_000, ge=1, description="Agents tracked (LRU beyond).")
    max_tokens: int = Field(100_000, ge=1, description="Token ids tracked (LRU beyond).")
    idle_ttl_s: float = Field(
        7 * 86400.0, gt=0, description="Forget a principal, agent or token idle this long."
    )
    cooldown_s: float = Field(
        60.0, ge=0, description="Minimum time between two findings of one type for one subject."
    )
    recent_findings: int = Field(1000, ge=0, description="Findings kept for the admin API.")
    rate: RateDetectConfig = RateDetectConfig()
    denials: DenialBurstConfig = DenialBurstConfig()
    first_access: FirstAccessConfig = FirstAccessConfig()
    off_hours: OffHoursConfig = OffHoursConfig()
    distinct_agents: DistinctAgentsConfig = DistinctAgentsConfig()
    token_reuse: TokenReuseConfig = TokenReuseConfig()
