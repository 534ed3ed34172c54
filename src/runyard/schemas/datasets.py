"""Datasets, ingestions, uploads, queries and usage: the data workspace's contracts."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, StrictBool

from runyard.schemas.common import Request
from runyard.schemas.users import DATA_NAME_PATTERN

ColumnType = Literal["int", "float", "bool", "date", "timestamp", "string", "json", "geo"]
IngestionStatus = Literal["pending", "processing", "succeeded", "failed", "cancelled"]
FileFormat = Literal["csv", "tsv", "json", "ndjson", "parquet", "xlsx"]
QueryFormat = Literal["json", "ndjson", "csv", "parquet", "arrow"]


class ColumnSpec(Request):
    name: str = Field(min_length=1, max_length=255)
    type: ColumnType


class DatasetCreate(Request):
    name: str = Field(min_length=1, max_length=64, pattern=DATA_NAME_PATTERN)
    description: str = Field(default="", max_length=10_000)
    field_definitions: dict[str, str] | None = None
    columns: list[ColumnSpec] | None = None


class DatasetUpdate(Request):
    name: str | None = Field(default=None, min_length=1, max_length=64, pattern=DATA_NAME_PATTERN,
                             description="a new name (renames)")
    description: str | None = Field(default=None, max_length=10_000)
    field_definitions: dict[str, str] | None = None
    sort_order: list[str] | None = Field(default=None, description="every column, in display order")


class ColumnView(BaseModel):
    name: str
    type: ColumnType
    nullable: bool = True
    null_count: int | None = None
    distinct_approx: int | None = None
    min: Any = None
    max: Any = None
    samples: list[Any] = Field(default_factory=list)


class DatasetView(BaseModel):
    id: str
    object: Literal["dataset"] = "dataset"
    namespace: str
    name: str
    description: str = ""
    field_definitions: dict[str, str] = Field(default_factory=dict)
    rows: int = 0
    bytes: int = 0
    columns: list[ColumnView] = Field(default_factory=list)
    sort_order: list[str] | None = None
    snapshot: int = Field(0, description="the manifest version readers see now")
    last_ingestion: dict[str, Any] | None = None
    created_at: str | None = None
    updated_at: str | None = None


class SchemaDataset(BaseModel):
    namespace: str
    name: str
    columns: list[ColumnView]


class SchemaView(BaseModel):
    object: Literal["schema"] = "schema"
    datasets: list[SchemaDataset]


class RowFailure(BaseModel):
    index: int
    row: Any = None
    errors: dict[str, str]


class EntityEntry(BaseModel):
    index: int = Field(description="the row's position among the rows the ingestion accepted")
    entity_id: int
    action: Literal["created", "matched", "kept_existing", "overwritten", "merged"]


class EntityReport(BaseModel):
    match_type: str
    columns: list[str]
    policy: str
    counts: dict[str, int]
    stored_rows: int = Field(description="rows this ingestion stored (new or replacing an entity's row)")
    excluded: str | None = Field(default=None, description="why no row was matched (a key column varies too little)")
    entities: list[EntityEntry] = Field(description="the first 1000 rows' entries")
    entities_total: int
    entities_truncated: bool = Field(description="true when GET /ingestions/{id}/entities holds more entries")


class RowsIngested(BaseModel):
    object: Literal["ingestion_result"] = "ingestion_result"
    ingestion_id: str
    ingested: int
    failed: list[RowFailure] = Field(default_factory=list)
    snapshot: int
    curation: dict[str, Any] | None = Field(default=None, description=(
        "with curate: `{status: pending}` (the curation runs once the link suggestions are computed; "
        "its outcome is the ingestion's `attributes.curation`), or `skipped` when no rows were stored"))
    entity_resolution: EntityReport | None = Field(default=None, description=(
        "with entity_resolution: each row's entity and action (also the ingestion's `attributes.entity_resolution`)"))
    model_calls: dict[str, Any] | None = Field(default=None, description=(
        "with model steps in the pipeline: how many model calls were made (and failed), their tokens and time; "
        "each call is in the ingestion's `attributes.trace`"))


class IngestionView(BaseModel):
    id: str
    object: Literal["ingestion"] = "ingestion"
    namespace: str | None = None
    dataset: str | None = None
    kind: Literal["rows", "file", "upload"]
    status: IngestionStatus
    status_message: str | None = None
    processed_bytes: int = 0
    expected_total_bytes: int | None = None
    processed_rows: int = 0
    failed_rows: int = 0
    attributes: dict[str, Any] = Field(default_factory=dict)
    seen: bool = False
    attempt: int = 1
    snapshot: int | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None


class RejectView(BaseModel):
    line: int
    reason: str
    text: str = ""


class FileOptions(Request):
    format: FileFormat | None = None
    delimiter: str | None = Field(default=None, max_length=4)
    quote: str | None = Field(default=None, max_length=1)
    header: StrictBool | None = None
    encoding: str | None = Field(default=None, max_length=40)
    sheet: str | None = Field(default=None, max_length=200)
    skip_rows: int = Field(default=0, ge=0)
    on_error: Literal["skip", "abort"] = "skip"
    pipeline: list[Any] | None = Field(
        default=None, description="steps applied to every batch before it is stored (docs/data.md, Pipelines)")
    curate: StrictBool | None = Field(default=None, description=(
        "after the ingestion commits and its link suggestions are computed, curate the namespace's ontology "
        "with activate, as the ingesting user; the outcome in the ingestion's `attributes.curation`"))
    entity_resolution: dict[str, Any] | None = Field(default=None, description=(
        "`{match_type: ExactMatch|GeoMatch, columns, options?, policy?: keep_first|overwrite|merge}`: match each "
        "row against the dataset's entities (docs/links.md); the report in `attributes.entity_resolution`"))


class UploadCreate(Request):
    filename: str = Field(min_length=1, max_length=255)
    size: int = Field(ge=1, description="the file's exact size in bytes")
    part_size: int | None = Field(default=None, ge=5 * 1024 * 1024, description="default: chosen by the server")


class UploadPartURL(BaseModel):
    part_number: int
    url: str
    size: int


class UploadedPart(BaseModel):
    part_number: int
    etag: str
    size: int


class UploadURLs(Request):
    key: str = Field(min_length=1, max_length=200)


class UploadView(BaseModel):
    id: str
    object: Literal["upload"] = "upload"
    key: str | None = Field(default=None, description="proves the upload is yours: in the creation answer only")
    filename: str
    size: int
    part_size: int
    part_count: int
    status: Literal["open", "completed", "aborted", "expired"]
    parts: list[UploadPartURL] = Field(default_factory=list, description=(
        "signed URLs of the parts not uploaded yet: in the answers to POST /uploads and /uploads/{id}/urls"))
    uploaded: list[UploadedPart] = Field(default_factory=list, description="parts received so far")
    expires_at: str | None = None
    ingestion_id: str | None = None


class CompletedPart(Request):
    part_number: int = Field(ge=1)
    etag: str = Field(min_length=1, max_length=64)


class UploadComplete(Request):
    key: str = Field(min_length=1, max_length=200)
    parts: list[CompletedPart]
    namespace: str = Field(min_length=1, max_length=64)
    dataset: str = Field(min_length=1, max_length=64)
    name: str | None = Field(default=None, max_length=255, description="a label for the ingestion")
    create: StrictBool = True
    options: FileOptions | None = None


class Preview(Request):
    rows: list[Any] | None = None
    upload_id: str | None = None
    key: str | None = None
    options: FileOptions | None = None
    limit: int = Field(default=100, ge=1, le=10_000)


class PreviewView(BaseModel):
    object: Literal["preview"] = "preview"
    columns: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    rejects: list[RejectView] = Field(default_factory=list)
    entity_resolution: EntityReport | None = Field(default=None, description=(
        "with options.entity_resolution: the previewed rows resolved among themselves (created, matched)"))
    trace: dict[str, Any] | None = Field(default=None, description="the model steps' calls (pipelines with "
                                         "model steps only)")


class InferSchema(Request):
    rows: list[Any] | None = None
    upload_id: str | None = None
    key: str | None = None
    options: FileOptions | None = None
    sample: int = Field(default=10_000, ge=1, le=1_000_000)


class QueryRequest(Request):
    query: str = Field(min_length=1, max_length=1_000_000, description='"*" (all rows of `dataset`) or SQL')
    namespace: str | None = None
    dataset: str | None = None
    include_metadata: StrictBool = False
    explain: StrictBool = False
    format: QueryFormat = "json"
    limit: int | None = Field(default=None, ge=1, le=1_000_000)
    cursor: str | None = None
    timeout_s: float | None = Field(default=None, gt=0, le=3600)
    is_natural_language: StrictBool = Field(default=False, description="`query` is a question: a language model "
                                            "writes the SQL (from the schemas of the datasets this key can read), "
                                            "which the read-only guard checks; the answer carries it in `sql`")
    provider: str | None = Field(default=None, min_length=1, max_length=64, description="with is_natural_language: the provider "
                                 "(name or id; default: the workspace's)")
    model: str | None = Field(default=None, min_length=1, max_length=200,
                              description="with is_natural_language: the model")


class QueryResult(BaseModel):
    object: Literal["query_result"] = "query_result"
    columns: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    row_count: int
    truncated: bool = False
    next_cursor: str | None = None
    elapsed_ms: float | None = None
    explain: dict[str, Any] | None = None
    links: list[dict[str, Any]] | None = Field(default=None, description=(
        "explain: the active links between the datasets the query reads (this key reads both ends): "
        "`{id, match_type, options, from: {namespace, dataset, columns, table}, to: {…}, score, pair_count, "
        "join_condition, note}`; `join_condition` is DuckDB SQL naming the tables as the query does"))
    sql: str | None = Field(default=None, description="is_natural_language: the SQL the model wrote (and that ran); "
                            "page on with it as `query`")
    trace: list[dict[str, Any]] | None = Field(default=None, description="is_natural_language: the model calls")


class UsageEvent(BaseModel):
    object: Literal["usage_event"] = "usage_event"
    id: int
    kind: str
    quantity: float
    ref_id: str | None = None
    user_id: str | None = None
    created_at: str


class UsageDay(BaseModel):
    day: str
    kind: str
    quantity: float
