"""Workspace plans: the limits API nodes count requests and generated rows against."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from runyard.schemas.common import Request

MAX_LIMIT = 10**12  # services.plans.MAX_LIMIT
PlanName = Literal["free", "pro", "enterprise", "custom", "unlimited"]


class PlanUpdate(Request):
    plan: PlanName = Field(description="free (60/min, 10,000 rows/h), pro (600/min, 1,000,000 rows/h), "
                                       "enterprise (unlimited unless numbers are given), custom (the numbers "
                                       "given) or unlimited")
    requests_per_minute: int | None = Field(default=None, ge=1, le=MAX_LIMIT,
                                            description="enterprise and custom only; null: unlimited")
    rows_per_hour: int | None = Field(default=None, ge=1, le=MAX_LIMIT,
                                      description="enterprise and custom only; null: unlimited")
    storage_bytes: int | None = Field(default=None, ge=1, le=MAX_LIMIT,
                                      description="bytes the workspace may keep (files, datasets, artifacts, "
                                                  "open uploads), with any plan; null: the node's "
                                                  "RUNYARD_STORAGE_QUOTA_BYTES")


class PlanView(BaseModel):
    object: Literal["plan"] = "plan"
    plan: str
    requests_per_minute: int | None = Field(description="API requests per minute; null: unlimited")
    rows_per_hour: int | None = Field(description="generated synthetic rows per hour; null: unlimited")
    storage_bytes: int | None = Field(default=None, description="the workspace's storage quota; null: the "
                                                                "node's RUNYARD_STORAGE_QUOTA_BYTES")
    source: Literal["plan", "default"] = Field(
        description="plan: set by the operator; default: the node's configuration (no plan set)")
    counted_by: str = Field(description="where every API node counts: redis or database")
    updated_at: str | None = None
    updated_by: str | None = Field(default=None, description="the user id that set the plan")
