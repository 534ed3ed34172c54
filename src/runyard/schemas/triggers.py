"""Schedules, webhooks and email triggers: each starts a tool or a workflow."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from runyard.schemas.common import Request

Overlap = Literal["skip", "queue", "cancel_previous"]


class ScheduleCreate(Request):
    tool: str | None = Field(default=None, description="the tool to run (by name)")
    workflow: str | None = Field(default=None, description="the workflow to run (by name), instead of a tool")
    inputs: dict[str, Any] | None = None
    cron: str | None = Field(default=None, description="5 fields, or @hourly/@daily/…; or give interval_s")
    timezone: str | None = Field(default=None, description="IANA name the cron reads the wall clock in (UTC)")
    interval_s: float | None = Field(default=None, description="seconds between runs (at least 1)")
    enabled: bool = True
    overlap: Overlap = "skip"
    max_catch_up: int = Field(default=1, ge=1, le=100)


class SchedulePatch(Request):
    tool: str | None = None
    workflow: str | None = None
    inputs: dict[str, Any] | None = None
    cron: str | None = None
    timezone: str | None = None
    interval_s: float | None = None
    enabled: bool | None = None
    overlap: Overlap | None = None
    max_catch_up: int | None = Field(default=None, ge=1, le=100)


class ScheduleView(BaseModel):
    object: Literal["schedule"] = "schedule"
    id: str
    target_kind: str
    target_name: str
    tool: str | None = None
    workflow: str | None = None
    user_id: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    cron: str | None = None
    timezone: str
    interval_s: float | None = None
    enabled: bool
    overlap: str
    max_catch_up: int
    next_fire_at: str | None = None
    last_fire_at: str | None = None
    last_run_id: str | None = None
    disabled_reason: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class ScheduleTimes(BaseModel):
    object: Literal["schedule_times"] = "schedule_times"
    schedule_id: str
    enabled: bool
    times: list[str]


class SignatureSettings(Request):
    secret: str = Field(min_length=1, max_length=1024, description="the shared HMAC secret (stored encrypted)")
    header: str | None = Field(default=None, description="default X-Hub-Signature-256")
    algorithm: Literal["sha256", "sha1"] | None = None
    format: Literal["prefixed", "hex", "stripe"] | None = None
    timestamp_header: str | None = None
    tolerance_s: float | None = Field(default=None, gt=0, le=86400)


_MAPPING_DESCRIPTION = (
    "a JSON object rendered into the run's inputs at each delivery: its strings may hold `${{ }}` expressions "
    "reading `inputs.body` (the JSON body or form fields), `inputs.headers` (lower-case names) and "
    "`inputs.query`; without one the body is the inputs")


class WebhookCreate(Request):
    tool: str | None = None
    workflow: str | None = Field(default=None, description="the workflow to run (by name), instead of a tool")
    signature: SignatureSettings | None = None
    mapping: dict[str, Any] | None = Field(default=None, description=_MAPPING_DESCRIPTION)
    rate_per_s: float = Field(default=10.0, gt=0, le=10_000)
    burst: int = Field(default=20, ge=1, le=100_000)
    enabled: bool = True


class WebhookPatch(Request):
    tool: str | None = None
    workflow: str | None = None
    signature: SignatureSettings | None = None
    mapping: dict[str, Any] | None = Field(default=None, description="`null` removes the mapping")
    rate_per_s: float | None = Field(default=None, gt=0, le=10_000)
    burst: int | None = Field(default=None, ge=1, le=100_000)
    enabled: bool | None = None


class SignatureView(BaseModel):
    header: str
    algorithm: str
    format: str
    timestamp_header: str | None = None
    tolerance_s: float


class WebhookView(BaseModel):
    object: Literal["webhook"] = "webhook"
    id: str
    target_kind: str
    target_name: str
    tool: str | None = None
    workflow: str | None = None
    user_id: str
    signature: SignatureView | None = None
    mapping: dict[str, Any] | None = None
    rate_per_s: float
    burst: int
    enabled: bool
    disabled_reason: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    last_used_at: str | None = None


class WebhookCreated(WebhookView):
    url: str = Field(description="`<base>/hooks/<token>`: shown this once, never again")


class HookDelivery(BaseModel):
    object: Literal["hook_delivery"] = "hook_delivery"
    run_id: str
    status: str
    run: dict[str, Any] | None = Field(default=None, description="the run, when `wait` was given")


class EmailTriggerCreate(Request):
    tool: str | None = Field(default=None, description="the tool to run (by name)")
    workflow: str | None = Field(default=None, description="the workflow to run (by name), instead of a tool")
    aliases: list[str] | None = Field(default=None, description="full addresses, `local@domain`, that take its mail")
    allowed_senders: list[str] | None = Field(
        default=None, description="`user@example.com`, `@example.com`, `@*.example.com`; empty allows everyone "
                                  "(filtering, not authentication)")
    max_message_bytes: int | None = Field(default=None, ge=1024, le=1024 ** 3,
                                          description="default: the node's limit (RUNYARD_SMTP_MAX_MESSAGE_MB)")
    enabled: bool = True


class EmailTriggerPatch(Request):
    tool: str | None = None
    workflow: str | None = None
    allowed_senders: list[str] | None = None
    max_message_bytes: int | None = Field(default=None, ge=1024, le=1024 ** 3)
    enabled: bool | None = None


class EmailTriggerView(BaseModel):
    object: Literal["email_trigger"] = "email_trigger"
    id: str
    target_kind: str
    target_name: str
    tool: str | None = None
    workflow: str | None = None
    user_id: str
    enabled: bool
    allowed_senders: list[str] = Field(default_factory=list)
    max_message_bytes: int
    aliases: list[str] = Field(default_factory=list)
    disabled_reason: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class EmailAliasCreate(Request):
    address: str = Field(min_length=3, max_length=320, description="a full address, `local@domain`")


class EmailAliasView(BaseModel):
    object: Literal["email_alias"] = "email_alias"
    id: str
    trigger_id: str
    address: str
    created_at: str | None = None


class EmailRecordView(BaseModel):
    object: Literal["email_record"] = "email_record"
    id: str
    trigger_id: str | None = None
    sender: str | None = None
    recipients: list[str] = Field(default_factory=list)
    size: int
    status: Literal["accepted", "rejected"]
    reason: str | None = None
    detail: str | None = None
    subject: str | None = None
    message_id: str | None = None
    run_id: str | None = None
    received_at: str | None = None
