"""Typed response models.

Every model allows extra fields, so a server that grows a new field never breaks an
older client: unknown fields stay reachable as attributes and in :meth:`to_dict`.
Almost every field has a default for the same reason — the server owns the schema.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "RunyardModel",
    "Token",
    "Tool",
    "ToolVersion",
    "Run",
    "RunBatchItem",
    "BatchItemError",
    "RunError",
    "RunUsage",
    "Artifact",
    "Secret",
    "RunStatus",
    "TERMINAL_STATUSES",
    "ACTIVE_STATUSES",
]

RunStatus = Literal[
    "awaiting_confirmation", "queued", "running", "succeeded", "failed", "cancelled", "timed_out"
]
#: Statuses a run never leaves.
TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled", "timed_out"})
ACTIVE_STATUSES: frozenset[str] = frozenset({"awaiting_confirmation", "queued", "running"})


class RunyardModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())

    def to_dict(self, *, mode: Literal["json", "python"] = "json", exclude_unset: bool = False) -> dict[str, Any]:
        """A plain dict of the model. ``mode="json"`` (default) gives JSON-safe values
        (timestamps as RFC 3339 strings), ready for ``json.dumps``."""
        return self.model_dump(mode=mode, exclude_unset=exclude_unset)

    def to_json(self, *, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)


class TokenRestrictions(RunyardModel):
    tools: list[str] | None = None
    namespaces: list[str] | None = None


class Token(RunyardModel):
    id: str
    name: str | None = None
    role: str | None = None
    prefix: str | None = None
    expires_at: datetime | None = None
    restrictions: TokenRestrictions | None = None
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    #: The secret key: present only in the response to ``tokens.create``.
    key: str | None = None


class _ToolConfig(RunyardModel):
    description: str | None = None
    entrypoint: str | None = None
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    requirements: list[str] | None = None
    required_secrets: list[str] | None = None
    default_inputs: dict[str, Any] | None = None
    timeout_s: float | None = None
    memory_mb: int | None = None
    retries: int | None = None
    #: Successive runs may share a process (module state persists between them).
    reuse_process: bool | None = None
    #: What ``retries`` covers: ``error`` (the tool's own failure), ``worker_lost``, ``timeout``.
    retry_on: list[str] | None = None
    #: Delay before attempt n+1: ``retry_backoff_s * 2**(n-1)`` seconds (at most 3600).
    retry_backoff_s: float | None = None
    #: False: the tool's runs cannot open any socket.
    network: bool | None = None
    created_at: datetime | None = None


class Tool(_ToolConfig):
    id: str
    name: str
    #: ``private`` or ``public``.
    visibility: str | None = None
    #: Latest version number.
    version: int | None = None
    updated_at: datetime | None = None


class ToolVersion(_ToolConfig):
    id: str | None = None
    tool_id: str | None = None
    version: int
    code_sha256: str | None = None
    #: ``code``, ``file`` or ``zip``.
    source_kind: str | None = None
    source_name: str | None = None


class RunError(RunyardModel):
    type: str | None = None
    message: str | None = None
    traceback: str | None = None


class RunUsage(RunyardModel):
    wall_ms: float | None = None
    cpu_s: float | None = None
    peak_rss_mb: float | None = None


class Run(RunyardModel):
    id: str
    tool_id: str | None = None
    tool_name: str | None = None
    tool_version: int | None = None
    status: str
    inputs: dict[str, Any] | None = None
    output: Any = None
    error: RunError | None = None
    tags: dict[str, Any] | None = None
    trigger: str | None = None
    parent_run_id: str | None = None
    attempt: int | None = None
    max_attempts: int | None = None
    worker_id: str | None = None
    progress: Any = None
    usage: RunUsage | None = None
    requires_confirmation: bool | None = None
    #: Names of the inputs that were uploaded as files.
    input_files: list[str] | None = None
    created_at: datetime | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    log_bytes: int | None = None
    log_truncated: bool | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


class BatchItemError(RunyardModel):
    """Why one item of a batch was refused: the error envelope's fields."""

    code: str
    message: str | None = None
    details: dict[str, Any] | None = None


class RunBatchItem(RunyardModel):
    """One item's outcome in ``runs.create_many``: ``run`` or ``error``, never both."""

    #: The item's position in the list given to ``create_many``.
    index: int
    #: The HTTP status this item alone would have had: 201 created, 200 an idempotent
    #: replay, 4xx refused.
    status: int
    run: Run | None = None
    error: BatchItemError | None = None

    @property
    def ok(self) -> bool:
        return self.run is not None


class Artifact(RunyardModel):
    path: str
    size: int | None = None
    sha256: str | None = None
    content_type: str | None = None
    created_at: datetime | None = None


class Secret(RunyardModel):
    name: str
    display_name: str | None = None
    description: str | None = None
    category: str | None = None
    masked_value: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
