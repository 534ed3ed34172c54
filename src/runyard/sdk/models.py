"""Typed response models.

Every model allows extra fields, so a server that grows a new field never breaks an
older client: unknown fields stay reachable as attributes and in :meth:`to_dict`.
Almost every field has a default for the same reason — the server owns the schema.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "RunyardModel",
    "RunSearchResult",
    "LLMProvider",
    "InferredDescription",
    "AskPlan",
    "AskStep",
    "AskAnswer",
    "AskError",
    "AskEvent",
    "IngestProxyRun",
    "IngestProxyEvent",
    "IngestProxyModelCall",
    "IngestProxyStep",
    "IngestProxyTrace",
    "Token",
    "Tool",
    "ToolVersion",
    "Run",
    "RunBatchItem",
    "BatchItemError",
    "RunError",
    "RunUsage",
    "Artifact",
    "RunFile",
    "RunExecution",
    "RunDebug",
    "RunConnection",
    "Secret",
    "Grant",
    "TokenRestrictions",
    "TokenPermissions",
    "NamespacePermission",
    "User",
    "Me",
    "Namespace",
    "NamespaceMember",
    "Column",
    "Dataset",
    "SchemaDataset",
    "Schema",
    "RowFailure",
    "RowsIngested",
    "EntityEntry",
    "EntityReport",
    "IngestedBatch",
    "IngestionResult",
    "Ingestion",
    "CleaningTask",
    "Reject",
    "UploadPart",
    "UploadedPart",
    "Upload",
    "Preview",
    "InferredKind",
    "InferredColumn",
    "InferredSchema",
    "QueryResult",
    "WorkspaceFile",
    "StorageUsage",
    "Connection",
    "ConnectionStatus",
    "ConnectionMetadata",
    "McpTool",
    "UsageEvent",
    "UsageDay",
    "WorkspacePlan",
    "Schedule",
    "ScheduleTimes",
    "WebhookSignature",
    "Webhook",
    "EmailTrigger",
    "EmailAlias",
    "EmailRecord",
    "Folder",
    "WorkflowVersion",
    "Workflow",
    "RunDefinition",
    "TraceStep",
    "INGESTION_FINISHED",
    "RunStatus",
    "TERMINAL_STATUSES",
    "ACTIVE_STATUSES",
]

RunStatus = Literal[
    "awaiting_confirmation", "queued", "running", "waiting_for_input", "succeeded", "failed", "cancelled",
    "timed_out"
]
#: Statuses a run never leaves.
TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled", "timed_out"})
ACTIVE_STATUSES: frozenset[str] = frozenset({"awaiting_confirmation", "queued", "running", "waiting_for_input"})


class RunyardModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())

    def to_dict(self, *, mode: Literal["json", "python"] = "json", exclude_unset: bool = False) -> dict[str, Any]:
        """A plain dict of the model. ``mode="json"`` (default) gives JSON-safe values
        (timestamps as RFC 3339 strings), ready for ``json.dumps``."""
        return self.model_dump(mode=mode, exclude_unset=exclude_unset)

    def to_json(self, *, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)


class Grant(RunyardModel):
    """Data a restricted key may reach: a namespace, or one dataset of it, to read or write."""

    namespace: str
    dataset: str | None = None
    access: str = "read"


class TokenRestrictions(RunyardModel):
    """What narrows a key below its user's rights: tool names and data grants (empty: no narrowing)."""

    tools: list[str] | None = None
    grants: list[Grant] | None = None


class Token(RunyardModel):
    id: str
    name: str | None = None
    role: str | None = None
    prefix: str | None = None
    #: The user the key belongs to.
    user_id: str | None = None
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
    #: Workspace files the tool's runs may read (``context.files.open(name)``).
    files: list[str] | None = None
    #: Connections the tool's runs may read, with their secret values (``context.connection(name)``).
    connections: list[str] | None = None
    #: The mcp connections whose tools it uses, and the aliases it expects them to list.
    mcp_server_names: list[str] | None = None
    expected_tools: list[str] | None = None
    #: ``function`` (the entrypoint is called) or ``script`` (the module runs with the
    #: inputs as globals; the output is the globals ``output_vars`` names).
    mode: str | None = None
    output_vars: list[str] | None = None
    created_at: datetime | None = None


class Tool(_ToolConfig):
    id: str
    name: str
    #: ``private`` (its owner's and the admins') or ``public`` (every user's of the workspace).
    visibility: str | None = None
    #: The id of the user who deployed it (None: deployed before owners were recorded).
    owner_id: str | None = None
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
    #: A workflow run's: the step that failed it, and that step's own error.
    step_id: str | None = None
    step_error: dict[str, Any] | None = None


class RunUsage(RunyardModel):
    wall_ms: float | None = None
    cpu_s: float | None = None
    peak_rss_mb: float | None = None


class RunFile(RunyardModel):
    """A file of a run (``client.runs.files.list``): one it was given (``direction ==
    "input"``, ``input`` its input's name) or one it wrote (``"output"``, ``name`` its
    artifact path); a workflow run's steps' files carry their ``step``."""

    id: str
    run_id: str | None = None
    direction: str
    name: str
    input: str | None = None
    size: int | None = None
    content_type: str | None = None
    sha256: str | None = None
    step: str | None = None
    item_index: int | None = None
    created_at: datetime | None = None


class ExecutionWorker(RunyardModel):
    id: str
    host: str | None = None
    pid: int | None = None


class ExecutionAttempt(RunyardModel):
    attempt: int | None = None
    worker_id: str | None = None
    host: str | None = None
    started_at: datetime | None = None


class ExecutionTimings(RunyardModel):
    created_at: datetime | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    queue_wait_ms: float | None = None
    duration_ms: float | None = None


class RunExecution(RunyardModel):
    """Where and when a run executed (``runs.get(id, expand=["execution"])``)."""

    worker: ExecutionWorker | None = None
    attempt: int | None = None
    max_attempts: int | None = None
    attempts: list[ExecutionAttempt] = []
    environment: dict[str, Any] | None = None
    timings: ExecutionTimings | None = None


class RunDebug(RunyardModel):
    """The sandbox and limits a run's latest attempt ran under (``expand=["debug"]``);
    ``sandbox["protections"]`` for unrestricted admin keys only."""

    recorded: bool = False
    attempt: int | None = None
    sandbox: dict[str, Any] | None = None
    limits: dict[str, Any] | None = None
    network: bool | None = None
    reuse_process: bool | None = None


class RunConnection(RunyardModel):
    """A signed WebSocket URL of a run's live stream (``client.runs.connect``), good until ``expires_at``."""

    run_id: str
    url: str
    expires_at: datetime


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
    #: What the run runs: ``tool`` (``workflow`` and later kinds too).
    type: str | None = None
    trigger: str | None = None
    #: Who or what started it: the user's id (api, cli, sdk, rerun), the schedule's,
    #: webhook's or email trigger's id.
    triggered_by: str | None = None
    parent_run_id: str | None = None
    #: A workflow step's run: its step id and for_each item.
    step_id: str | None = None
    item_index: int | None = None
    attempt: int | None = None
    max_attempts: int | None = None
    worker_id: str | None = None
    progress: Any = None
    usage: RunUsage | None = None
    requires_confirmation: bool | None = None
    #: The run's own time limit in seconds, when it was given one (else its tool version's).
    timeout_s: float | None = None
    #: Names of the inputs that were uploaded as files.
    input_files: list[str] | None = None
    created_at: datetime | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    log_bytes: int | None = None
    log_truncated: bool | None = None
    #: With ``expand=["execution"]``: worker, attempts, environment, timings.
    execution: RunExecution | None = None
    #: With ``expand=["debug"]``: the sandbox and limits it ran under.
    debug: RunDebug | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


class RunSearchResult(RunyardModel):
    """A page of ``client.runs.search``: each item a dict of the selected columns."""

    items: list[dict[str, Any]] = []
    #: Every matching run, when ``with_total_count`` was asked.
    total: int | None = None
    limit: int | None = None
    offset: int | None = None
    #: The ``offset`` of the next page; None on the last.
    next_offset: int | None = None


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


# ---- users, namespaces and permissions ---------------------------------------------------


class NamespacePermission(RunyardModel):
    namespace: str
    #: On the namespace as a whole (read, write, owner; None: only the datasets below).
    access: str | None = None
    #: Datasets reachable beyond the namespace-wide access (by grant), name → access.
    datasets: dict[str, str] = {}


class TokenPermissions(RunyardModel):
    """What a token may do (``tokens.permissions``): its role, tools and data."""

    token_id: str
    user: str | None = None
    role: str | None = None
    #: The tools it may use; None: all.
    tools: list[str] | None = None
    namespaces: list[NamespacePermission] = []


class User(RunyardModel):
    id: str
    username: str
    role: str | None = None
    display_name: str | None = None
    email: str | None = None
    has_password: bool | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Me(RunyardModel):
    """Who the calling key is (``users.me()``)."""

    id: str | None = None
    username: str | None = None
    #: The user's role.
    role: str | None = None
    token_id: str | None = None
    #: What this key acts with: its role capped by its user's.
    token_role: str | None = None
    restricted: bool | None = None
    display_name: str | None = None
    email: str | None = None


class Namespace(RunyardModel):
    id: str
    name: str
    owner: str | None = None
    private: bool | None = None
    description: str | None = None
    field_definitions: dict[str, str] | None = None
    #: How many datasets it holds.
    datasets: int | None = None
    #: What the calling key may do with it: read, write or owner.
    access: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class NamespaceMember(RunyardModel):
    username: str
    access: str | None = None
    created_at: datetime | None = None


# ---- datasets ------------------------------------------------------------------------------


class Column(RunyardModel):
    """A dataset column with its catalog statistics."""

    name: str
    type: str | None = None
    nullable: bool | None = None
    null_count: int | None = None
    distinct_approx: int | None = None
    min: Any = None
    max: Any = None
    samples: list[Any] | None = None


class Dataset(RunyardModel):
    """A dataset's catalog entry: size, columns and their statistics, last ingestion."""

    id: str
    namespace: str
    name: str
    description: str | None = None
    field_definitions: dict[str, str] | None = None
    rows: int | None = None
    bytes: int | None = None
    columns: list[Column] = []
    sort_order: list[str] | None = None
    #: The manifest version readers see now.
    snapshot: int | None = None
    last_ingestion: dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def ref(self) -> str:
        """``namespace/dataset``."""
        return f"{self.namespace}/{self.name}"


class SchemaDataset(RunyardModel):
    namespace: str
    name: str
    columns: list[Column] = []


class Schema(RunyardModel):
    """Every visible dataset with its columns (``datasets.schema()``)."""

    datasets: list[SchemaDataset] = []


# ---- ingestion -------------------------------------------------------------------------------

#: Ingestion statuses that never change again.
INGESTION_FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class RowFailure(RunyardModel):
    """A row that did not land: its index (in the whole input given to ``ingest``), the
    row, and what was wrong, field → message."""

    index: int
    row: Any = None
    errors: dict[str, str] = {}


class EntityEntry(RunyardModel):
    """Entity resolution on ingest: one row's entity and what happened to it (``created``,
    ``kept_existing``, ``overwritten``, ``merged``; ``matched`` in a preview). ``index``: the
    row's position among the rows its ingestion (one batch) accepted."""

    index: int
    entity_id: int
    action: str


class EntityReport(RunyardModel):
    """An ingestion's entity resolution: counts per action, the first 1000 rows' entries
    (``entities_truncated``: :meth:`~runyard.sdk.resources.datasets.DatasetsAPI.entities` has them all)."""

    match_type: str
    columns: list[str] = []
    policy: str
    counts: dict[str, int] = {}
    stored_rows: int = 0
    excluded: str | None = None
    entities: list[EntityEntry] = []
    entities_total: int = 0
    entities_truncated: bool = False


class RowsIngested(RunyardModel):
    """The answer to one ``POST …/rows`` (one batch)."""

    ingestion_id: str
    ingested: int = 0
    failed: list[RowFailure] = []
    snapshot: int | None = None
    #: With ``curate=True``: ``{"status": "pending"}`` (the outcome: the ingestion's
    #: ``attributes["curation"]``), or ``skipped`` when no rows were stored.
    curation: dict[str, Any] | None = None
    #: With ``entity_resolution``: each row's entity and action.
    entity_resolution: EntityReport | None = None
    #: With model steps in the pipeline: the calls made (and failed), their tokens and time
    #: (each call in the ingestion's ``attributes["trace"]``).
    model_calls: dict[str, Any] | None = None


class IngestedBatch(RunyardModel):
    """One batch of ``datasets.ingest``: where it starts in the input and how it went."""

    start: int
    size: int
    ingested: int = 0
    ingestion_id: str | None = None
    snapshot: int | None = None
    attempts: int = 1
    #: Why the whole batch failed (after its last attempt), else None.
    error: str | None = None
    #: With ``entity_resolution``: the batch's report (entry indexes count from ``start``).
    entity_resolution: EntityReport | None = None


class IngestionResult(RunyardModel):
    """What ``datasets.ingest`` did: ``successful`` rows landed, ``failed`` did not (their
    indexes count from the start of the whole input), ``batches`` batch by batch."""

    successful: int = 0
    failed: list[RowFailure] = []
    batches: list[IngestedBatch] = []

    @property
    def ok(self) -> bool:
        return not self.failed


class Ingestion(RunyardModel):
    """A background ingestion (a file, an upload, or a batch of rows)."""

    id: str
    namespace: str | None = None
    dataset: str | None = None
    #: rows, file or upload.
    kind: str | None = None
    #: pending, processing, succeeded, failed or cancelled.
    status: str
    status_message: str | None = None
    processed_bytes: int | None = None
    expected_total_bytes: int | None = None
    processed_rows: int | None = None
    failed_rows: int | None = None
    attributes: dict[str, Any] | None = None
    seen: bool | None = None
    attempt: int | None = None
    snapshot: int | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def is_finished(self) -> bool:
        return self.status in INGESTION_FINISHED

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


class Reject(RunyardModel):
    """An input line an ingestion could not read: its number, why, and its text."""

    line: int
    reason: str | None = None
    text: str | None = None


class UploadPart(RunyardModel):
    """A part still to send: PUT its bytes to ``url`` (signed; no API key needed)."""

    part_number: int
    url: str
    size: int


class UploadedPart(RunyardModel):
    part_number: int
    etag: str
    size: int | None = None


class Upload(RunyardModel):
    """A multipart upload. ``key`` (in the creation answer only) proves it is yours."""

    id: str
    key: str | None = None
    filename: str | None = None
    size: int | None = None
    part_size: int | None = None
    part_count: int | None = None
    #: open, completed, aborted or expired.
    status: str | None = None
    parts: list[UploadPart] = []
    uploaded: list[UploadedPart] = []
    expires_at: datetime | None = None
    ingestion_id: str | None = None


class Preview(RunyardModel):
    """Parsed rows and columns of some input, not saved (``datasets.preview``)."""

    columns: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    rejects: list[Reject] = []
    #: With ``entity_resolution``: the previewed rows resolved among themselves.
    entity_resolution: EntityReport | None = None
    #: With model steps in the pipeline: their calls (prompt, answer, tokens, time).
    trace: dict[str, Any] | None = None


class InferredKind(RunyardModel):
    kind: str
    confidence: float | None = None


class InferredColumn(RunyardModel):
    name: str
    type: str | None = None
    nullable: bool | None = None
    null_count: int | None = None
    kinds: list[InferredKind] = []
    confidence: float | None = None


class InferredSchema(RunyardModel):
    """Per-column type, nullability and detected kinds (``datasets.infer_schema``)."""

    columns: list[InferredColumn] = []


# ---- query and usage -------------------------------------------------------------------------


class QueryResult(RunyardModel):
    """One page of a JSON query result; ``next_cursor`` fetches the rest."""

    columns: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    row_count: int = 0
    #: More rows exist beyond this page (follow ``next_cursor``).
    truncated: bool | None = None
    next_cursor: str | None = None
    elapsed_ms: float | None = None
    #: With ``explain=True``: the resolved SQL, the snapshots read and DuckDB's plan.
    explain: dict[str, Any] | None = None
    #: With ``explain=True``: the active links between the datasets read, each with a
    #: ``join_condition`` (DuckDB SQL) and a ``note``.
    links: list[dict[str, Any]] | None = None
    #: With ``is_natural_language=True``: the SQL the model wrote (page on with it as the query).
    sql: str | None = None
    #: With ``is_natural_language=True``: the model calls (messages, answer, tokens, ms).
    trace: list[dict[str, Any]] | None = None

    @property
    def column_names(self) -> list[str]:
        return [str(c.get("name")) for c in self.columns]


class UsageEvent(RunyardModel):
    id: int
    kind: str
    quantity: float
    ref_id: str | None = None
    user_id: str | None = None
    created_at: datetime | None = None


class UsageDay(RunyardModel):
    day: str
    kind: str
    quantity: float


class WorkspacePlan(RunyardModel):
    """The workspace's plan: its limits (None: unlimited), counted across every API node."""

    #: free, pro, enterprise, custom or unlimited.
    plan: str
    requests_per_minute: int | None = None
    rows_per_hour: int | None = None
    #: The workspace's storage quota in bytes (None: the server's ``RUNYARD_STORAGE_QUOTA_BYTES``).
    storage_bytes: int | None = None
    #: ``plan`` (set by the operator) or ``default`` (the server's configuration).
    source: str | None = None
    #: Where the nodes count: ``redis`` or ``database``.
    counted_by: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None


# ---- triggers: schedules, webhooks, email ----------------------------------------------------


class Schedule(RunyardModel):
    """A schedule: runs its target on a cron expression (in ``timezone``) or every ``interval_s``."""

    id: str
    #: ``tool`` or ``workflow``; ``target_name`` is its name.
    target_kind: str | None = None
    target_name: str | None = None
    #: The tool's name when the target is a tool.
    tool: str | None = None
    #: The workflow's name when the target is a workflow.
    workflow: str | None = None
    #: The user it runs as.
    user_id: str | None = None
    inputs: dict[str, Any] | None = None
    cron: str | None = None
    timezone: str | None = None
    interval_s: float | None = None
    enabled: bool | None = None
    #: What a tick does while the previous run goes on: ``skip``, ``queue`` or ``cancel_previous``.
    overlap: str | None = None
    max_catch_up: int | None = None
    #: None while disabled.
    next_fire_at: datetime | None = None
    last_fire_at: datetime | None = None
    last_run_id: str | None = None
    #: Why the platform disabled it (its tool or owner gone); None when turned off by hand.
    disabled_reason: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class ScheduleTimes(RunyardModel):
    """The next times a schedule fires (``schedules.next_times``), UTC."""

    schedule_id: str
    enabled: bool | None = None
    times: list[datetime] = []


class WebhookSignature(RunyardModel):
    """How a webhook checks the HMAC of a request's body (the secret is never returned)."""

    header: str | None = None
    algorithm: str | None = None
    format: str | None = None
    timestamp_header: str | None = None
    tolerance_s: float | None = None


class Webhook(RunyardModel):
    id: str
    target_kind: str | None = None
    target_name: str | None = None
    tool: str | None = None
    workflow: str | None = None
    user_id: str | None = None
    #: None: requests are not signed.
    signature: WebhookSignature | None = None
    #: None: the request's body is the run's inputs; else a JSON object with ``${{ }}``
    #: expressions over ``inputs.body`` / ``inputs.headers`` / ``inputs.query``.
    mapping: dict[str, Any] | None = None
    rate_per_s: float | None = None
    burst: int | None = None
    enabled: bool | None = None
    disabled_reason: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_used_at: datetime | None = None
    #: ``<base>/hooks/<token>``: present only in the response to ``webhooks.create`` — the one
    #: time it is shown.
    url: str | None = None


class EmailTrigger(RunyardModel):
    id: str
    target_kind: str | None = None
    target_name: str | None = None
    tool: str | None = None
    workflow: str | None = None
    user_id: str | None = None
    enabled: bool | None = None
    #: ``user@example.com``, ``@example.com``, ``@*.example.com``; empty allows everyone.
    allowed_senders: list[str] = []
    max_message_bytes: int | None = None
    #: The addresses that take its mail.
    aliases: list[str] = []
    disabled_reason: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class EmailAlias(RunyardModel):
    id: str
    trigger_id: str | None = None
    address: str
    created_at: datetime | None = None


class EmailRecord(RunyardModel):
    """What became of one message for one trigger (None: mail to no alias)."""

    id: str
    trigger_id: str | None = None
    #: The envelope sender.
    sender: str | None = None
    recipients: list[str] = []
    size: int | None = None
    #: ``accepted`` (with ``run_id``) or ``rejected`` (with ``reason``).
    status: str
    reason: str | None = None
    detail: str | None = None
    subject: str | None = None
    message_id: str | None = None
    run_id: str | None = None
    received_at: datetime | None = None


# ---- workflows -------------------------------------------------------------------------------


class Folder(RunyardModel):
    """A folder to file workflows in."""

    id: str
    name: str
    description: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class WorkflowVersion(RunyardModel):
    """One version of a workflow: published (``version`` a number) or the draft (``version`` None)."""

    id: str
    workflow_id: str | None = None
    #: None while a draft.
    version: int | None = None
    #: ``draft`` or ``published``.
    status: str | None = None
    tag: str | None = None
    created_at: datetime | None = None
    published_at: datetime | None = None
    #: The definition's text as saved, and as parsed (only when one version is fetched).
    source: str | None = None
    definition: dict[str, Any] | None = None


class Workflow(RunyardModel):
    """A workflow (or block): a name with published versions, a tag per version and at most one draft."""

    id: str
    name: str
    #: ``workflow`` or ``block``.
    kind: str | None = None
    description: str | None = None
    folder_id: str | None = None
    #: The newest published version (None: only a draft).
    latest_version: int | None = None
    #: The latest version's tag.
    tag: str | None = None
    has_draft: bool | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    #: The latest version's text (the draft's if none is published) and its parsed form.
    source: str | None = None
    definition: dict[str, Any] | None = None
    draft: WorkflowVersion | None = None


class RunDefinition(RunyardModel):
    """The exact workflow definition a workflow run used (``runs.definition``)."""

    run_id: str
    workflow_id: str | None = None
    workflow_name: str | None = None
    version: int | None = None
    source: str | None = None
    definition: dict[str, Any] | None = None


class TraceStep(RunyardModel):
    """One line of a workflow run's step timeline (``runs.trace``): a step run (one per
    ``for_each`` item), or a step with no run yet (``pending``) or ever (``skipped``)."""

    step_id: str
    item_index: int | None = None
    #: The step's run (None: skipped or pending).
    run_id: str | None = None
    #: The step run's type: ``tool``, ``workflow`` or ``input``.
    type: str | None = None
    status: str
    attempt: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: float | None = None
    input_digest: str | None = None
    output_digest: str | None = None
    error: dict[str, Any] | None = None


# ---- language models ------------------------------------------------------------------------


class LLMProvider(RunyardModel):
    """An OpenAI-compatible model provider; the API key is never returned, only a hint."""

    id: str
    name: str
    kind: str = "openai-compatible"
    base_url: str = ""
    has_api_key: bool = False
    masked_api_key: str | None = None
    default_model: str = ""
    timeout_s: float | None = None
    max_retries: int | None = None
    #: The workspace default (used when a call names no provider).
    default: bool = False
    #: ``api`` (made with the API) or ``environment`` (``RUNYARD_LLM_BASE_URL``).
    source: str = "api"
    created_at: datetime | None = None
    updated_at: datetime | None = None


#: Cleaning task statuses that never change again.
CLEANING_FINISHED: frozenset[str] = frozenset({"succeeded", "failed"})


class CleaningTask(RunyardModel):
    """A cleaning task: the model's SQL transform of ``source`` committed as the ``output``
    dataset (``client.datasets.cleaning``)."""

    id: str
    #: pending, proposing, running, succeeded or failed.
    status: str
    #: ``namespace``, ``dataset`` and the ``snapshot`` the transform read.
    source: dict[str, Any] = {}
    #: ``namespace``, ``dataset`` and, once committed, ``dataset_id``.
    output: dict[str, Any] = {}
    prompts: list[str] = []
    #: The model's transform: one SELECT over the table ``source``.
    sql: str | None = None
    explanation: str | None = None
    #: ``code`` and ``message`` when failed.
    error: dict[str, Any] | None = None
    provider: str | None = None
    model: str | None = None
    usage: dict[str, Any] = {}
    input_rows: int | None = None
    output_rows: int | None = None
    user_id: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def is_finished(self) -> bool:
        return self.status in CLEANING_FINISHED


class InferredDescription(RunyardModel):
    """A dataset description and field definitions (nothing saved)."""

    data_description: str = ""
    field_definitions: dict[str, str] = {}
    #: ``model``, or ``statistics`` when no provider is configured (deterministic fallback).
    source: str = "model"
    provider: str | None = None
    model: str | None = None
    #: The model calls: messages, answer, tokens, ms.
    trace: list[dict[str, Any]] = []


class AskPlan(RunyardModel):
    """The first event of ``client.llm.ask``: what the model may query."""

    event: Literal["plan"] = "plan"
    question: str = ""
    provider: str | None = None
    max_steps: int | None = None
    #: ``ns.ds`` of every dataset the model is shown.
    datasets: list[str] = []


class AskStep(RunyardModel):
    """One query the model ran: its rows (at most 50), or the ``error`` given back to it."""

    event: Literal["step"] = "step"
    index: int = 0
    sql: str | None = None
    columns: list[str] | None = None
    rows: list[dict[str, Any]] | None = None
    row_count: int | None = None
    truncated: bool | None = None
    #: ``{code, message}`` when the query was refused or failed (nothing ran).
    error: dict[str, Any] | None = None


class AskAnswer(RunyardModel):
    """The model's answer (the last event of ``ask``; what ``autorag`` returns)."""

    event: Literal["answer"] = "answer"
    answer: str = ""
    steps: list[AskStep] = []
    #: The model calls: messages, answer, tokens, ms.
    trace: list[dict[str, Any]] = []


class AskError(RunyardModel):
    """The last event of ``ask`` when it failed after the stream started
    (``llm_error``, ``llm_timeout``, ``llm_invalid_response``, ``llm_too_many_steps``)."""

    event: Literal["error"] = "error"
    code: str = ""
    message: str = ""
    status: int | None = None


#: An event of ``client.llm.ask``.
AskEvent = AskPlan | AskStep | AskAnswer | AskError


class WorkspaceFile(RunyardModel):
    """A file the workspace keeps (``client.files``)."""

    id: str
    name: str
    #: Bytes.
    size: int
    content_type: str | None = None
    #: Hex SHA-256 of the bytes (the download's ETag).
    sha256: str
    created_by: str | None = None
    updated_by: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class StorageUsage(RunyardModel):
    """What the workspace keeps, in bytes, and its storage quota (None: unlimited)."""

    used_bytes: int
    quota_bytes: int | None = None
    #: ``files``, ``datasets``, ``artifacts``, ``uploads`` (bytes of multipart uploads still open).
    by_kind: dict[str, int] = {}


class ConnectionStatus(RunyardModel):
    """The last check of a connection: ``ok``, ``failed`` or ``unknown`` (never checked)."""

    state: str
    checked_at: datetime | None = None
    #: The last successful check's duration (None after a failure).
    latency_ms: float | None = None
    error: str | None = None


class Connection(RunyardModel):
    """An external system's settings (``client.connections``); secret parts appear as
    ``{"secret": "NAME", "set": True}``, never as values."""

    id: str
    name: str
    #: postgres, mysql, http, openapi, odata, s3 or mcp.
    type: str
    config: dict[str, Any] = {}
    status: ConnectionStatus
    created_by: str | None = None
    updated_by: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class ConnectionMetadata(RunyardModel):
    """What a connected system holds (capped; ``metadata["truncated"]`` when cut)."""

    #: The connection's id.
    connection: str
    name: str
    type: str
    #: By type: ``schemas`` (databases), ``operations``/``schemas`` (openapi),
    #: ``entity_sets``/``entity_types`` (odata), ``objects``/``prefixes`` (s3).
    metadata: dict[str, Any] = {}


class McpTool(RunyardModel):
    """A tool of a verified ``mcp`` connection (``client.mcp_tools``), callable by its alias
    ``mcp_<server>_<tool>``."""

    alias: str
    #: The mcp connection's name.
    server: str
    connection_id: str
    #: The tool's name on the MCP server.
    name: str
    description: str = ""
    input_schema: dict[str, Any] = {}
    #: The connection's status: a failed call marks it ``failed``.
    server_status: str


class IngestProxyRun(RunyardModel):
    """An auto-modelling pipeline run (``client.ingest_proxy``): its phase, the schema it
    settled on, the hook it waits on, and its output or error once it ended."""

    id: str
    #: A run status: running, waiting_for_input (see ``hook``), succeeded, failed, cancelled.
    status: str
    phase: str | None = None
    namespace: str = ""
    dataset: str | None = None
    phases_done: list[str] = []
    #: ``{fields: [{name, type, description, source}], data_description, dataset_name?}``.
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    #: model, predefined, inferred_without_model or reviewer.
    schema_source: str | None = None
    #: ``{id, kind, phase, message, …}`` while the run waits for an answer.
    hook: dict[str, Any] | None = None
    #: Events so far: the stream's next ``start_index``.
    events: int = 0
    output: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None


class IngestProxyEvent(RunyardModel):
    """One progress event of a proxy run's stream."""

    index: int
    #: phase, progress, log, hook, complete or error.
    type: str
    phase: str | None = None
    message: str = ""
    data: dict[str, Any] | None = None
    at: datetime | None = None


class IngestProxyModelCall(RunyardModel):
    phase: str
    attempt: int | None = None
    prompt: str = ""
    response: str = ""
    tokens: dict[str, int] = {}
    ms: float | None = None
    model: str | None = None
    provider: str | None = None
    error: str | None = None


class IngestProxyStep(RunyardModel):
    phase: str
    started_at: datetime | None = None
    ms: float = 0.0


class IngestProxyTrace(RunyardModel):
    """A proxy run's model calls, their tokens summed, and each phase's duration."""

    run_id: str
    status: str
    model_calls: list[IngestProxyModelCall] = []
    tokens: dict[str, int] = {}
    steps: list[IngestProxyStep] = []


# ---- evaluation: expected outputs, comparisons, feedback, evaluation batches


class ExpectedFile(RunyardModel):
    filename: str
    size: int | None = None
    sha256: str | None = None
    content_type: str | None = None
    created_at: datetime | None = None


class Expected(RunyardModel):
    """The expected output of a (tool or workflow, example) pair: every run of the example
    is compared with it (``client.runs.comparison.get``)."""

    id: str
    target_id: str | None = None
    target_name: str | None = None
    example_id: str | None = None
    has_output: bool = False
    output: Any = None
    options: dict[str, Any] = Field(default_factory=dict)
    files: list[ExpectedFile] = Field(default_factory=list)
    source_run_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class FieldDifference(RunyardModel):
    path: str
    expected: Any = None
    actual: Any = None
    kind: str


class FileComparison(RunyardModel):
    filename: str
    artifact_path: str | None = None
    kind: str
    score: float = 0.0
    expected_sha256: str | None = None
    actual_sha256: str | None = None
    diff: str | None = None
    diff_truncated: bool | None = None
    table: dict[str, Any] | None = None
    error: str | None = None


class Comparison(RunyardModel):
    """A run against an expectation: the differences and a score in [0, 1] with its rule."""

    run_id: str
    run_status: str | None = None
    score: float
    rule: str | None = None
    fields: list[FieldDifference] = Field(default_factory=list)
    fields_truncated: int = 0
    checks: dict[str, int] = Field(default_factory=dict)
    files: list[FileComparison] = Field(default_factory=list)
    against: dict[str, Any] = Field(default_factory=dict)


class Feedback(RunyardModel):
    id: str
    run_id: str
    rating: str | None = None
    score: float | None = None
    comment: str | None = None
    labels: list[str] = Field(default_factory=list)
    has_corrected_output: bool = False
    corrected_output: Any = None
    resolved: bool = False
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    updated_by: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class BatchTarget(RunyardModel):
    type: str
    id: str
    name: str


class Regression(RunyardModel):
    example_id: str
    run_id: str
    status: str | None = None
    score: float | None = None
    previous_run_id: str | None = None
    previous_status: str | None = None
    previous_score: float | None = None


class EvalBatch(RunyardModel):
    """An evaluation batch: one run per example; ``mean_score`` and ``regressions`` on ``get``."""

    id: str
    target: BatchTarget
    version: str | None = None
    source: dict[str, Any] = Field(default_factory=dict)
    example_count: int = 0
    run_count: int = 0
    status: str
    counts: dict[str, int] = Field(default_factory=dict)
    errors: list[dict[str, Any]] = Field(default_factory=list)
    created_at: datetime | None = None
    cancelled_at: datetime | None = None
    scored: int | None = None
    mean_score: float | None = None
    previous_batch_id: str | None = None
    regressions: list[Regression] | None = None
