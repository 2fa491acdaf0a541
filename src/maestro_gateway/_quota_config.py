"""Configuration of the per-agent quotas (C22); the enforcement is in ``quotas.py``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class QuotaConfig(BaseModel):
    """What one agent may consume per task. ``None`` = no quota."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_task_duration_s: float | None = Field(
        None, gt=0, description="A stream (task) is ended and cancelled upstream after this."
    )
    max_stream_bytes: int | None = Field(
        None, gt=0, description="Total bytes one stream may carry from the agent."
    )
    max_concurrent_tasks: int | None = Field(
        None, gt=0, description="SendMessage calls and streams in flight to the agent at once."
    )
    cancel_timeout_s: float = Field(
        5.0, gt=0, description="How long the CancelTask sent upstream may take."
    )
