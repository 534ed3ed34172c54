"""Evaluation contracts: expected outputs, comparisons, feedback, evaluation batches."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, StrictFloat, StrictInt

from runyard.schemas.common import Request

MAX_PATHS = 100


class ExpectedOptions(Request):
    """How a run is compared with an expected output."""

    numeric_tolerance: float = Field(0.0, ge=0, le=1e15, description="numbers match within this absolute difference")
    unordered_paths: list[str] = Field(default_factory=list, max_length=MAX_PATHS, description=(
        "JSON paths (`$.items`, `$.groups[*].members`) of lists compared regardless of order"))
    key_columns: dict[str, list[str]] = Field(default_factory=dict, max_length=MAX_PATHS, description=(
        "per expected CSV/Parquet file name, the columns that pair its rows with the actual file's"))


class ExpectedCreate(Request):
    """``POST /runs/{id}/expected`` as JSON (multipart: this object in the ``payload`` field, files beside)."""

    copy_output: bool = Field(False, description="the run's output becomes the expected output")
    output: Any = Field(None, description="an expected output given outright (instead of copy_output)")
    artifacts: list[str] | None = Field(None, max_length=MAX_PATHS, description=(
        "artifact paths of the run copied as expected files (named by their last path segment)"))
    options: ExpectedOptions | None = None


class ExpectedRename(Request):
    filename: str = Field(min_length=1, max_length=255, description="the file's new name")


class ExpectedFileView(BaseModel):
    filename: str
    size: int
    sha256: str
    content_type: str
    created_at: str


class ExpectedView(BaseModel):
    object: Literal["expected"] = "expected"
    id: str
    target_id: str = Field(description="the tool's or workflow's id the example belongs to")
    target_name: str
    example_id: str = Field(description="the runs' example_id (a run without one: its own id)")
    has_output: bool
    output: Any = None
    options: dict[str, Any]
    files: list[ExpectedFileView]
    source_run_id: str | None = None
    created_at: str
    updated_at: str


class FieldDifference(BaseModel):
    path: str = Field(description="JSON path, `$.a.b[0]`")
    expected: Any = None
    actual: Any = None
    kind: Literal["changed", "missing", "unexpected", "type_changed"]


class FileComparison(BaseModel):
    filename: str
    artifact_path: str | None = None
    kind: Literal["equal", "missing", "text", "table", "binary"]
    score: float
    expected_sha256: str
    actual_sha256: str | None = None
    diff: str | None = None
    diff_truncated: bool | None = None
    table: dict[str, Any] | None = Field(None, description=(
        "rows_expected, rows_actual, matched, changed, missing, unexpected, key, columns_missing, "
        "columns_unexpected, examples"))
    error: str | None = None


class ComparisonView(BaseModel):
    object: Literal["comparison"] = "comparison"
    run_id: str
    run_status: str
    score: float = Field(ge=0, le=1)
    rule: str = Field(description="how the score was computed")
    fields: list[FieldDifference]
    fields_truncated: int = Field(description="differences left out past the first 1,000")
    checks: dict[str, int]
    files: list[FileComparison]
    against: dict[str, Any] = Field(description="`{kind: expected|run|value, ...}`")


class CompareRequest(Request):
    """Compare the run with another run (``run_id``) or with a value (``expected``)."""

    run_id: str | None = Field(None, min_length=1, max_length=40)
    expected: Any = None
    options: ExpectedOptions | None = None


class FeedbackUpdate(Request):
    rating: Literal["up", "down"] | None = None
    score: StrictInt | StrictFloat | None = Field(None, ge=0, le=1, description="0 to 1 (a boolean is refused)")
    comment: str | None = Field(None, max_length=10_000)
    labels: list[str] | None = Field(None, max_length=50)
    corrected_output: Any = None


class FeedbackView(BaseModel):
    object: Literal["feedback"] = "feedback"
    id: str
    run_id: str
    rating: Literal["up", "down"] | None = None
    score: float | None = None
    comment: str | None = None
    labels: list[str]
    has_corrected_output: bool
    corrected_output: Any = None
    resolved: bool
    resolved_at: str | None = None
    resolved_by: str | None = None
    updated_by: str | None = None
    created_at: str
    updated_at: str


class BatchExample(Request):
    example_id: str | int
    inputs: dict[str, Any] = Field(default_factory=dict)


class BatchSource(Request):
    """Examples from a dataset (``ns/name``) or a saved set, each row with an ``example_id`` column."""

    dataset: str | None = None
    set: str | None = None
    columns: list[str] | None = Field(None, description="the columns passed as inputs (default: all but example_id)")


class BatchCreate(Request):
    tool: str | None = None
    workflow: str | None = None
    version: int | str | None = Field(None, description="a tool's version number, a workflow's number or tag")
    examples: list[BatchExample] | BatchSource = Field(description="at most 1,000 examples")


class BatchTarget(BaseModel):
    type: Literal["tool", "workflow"]
    id: str
    name: str


class Regression(BaseModel):
    example_id: str
    run_id: str
    status: str
    score: float | None = None
    previous_run_id: str
    previous_status: str
    previous_score: float | None = None


class BatchView(BaseModel):
    object: Literal["batch"] = "batch"
    id: str
    target: BatchTarget
    version: str | None = None
    source: dict[str, Any]
    example_count: int
    run_count: int
    status: Literal["running", "finished", "cancelled"]
    counts: dict[str, int] = Field(description="runs by status")
    errors: list[dict[str, Any]] = Field(description="examples whose run was refused: example_id, status, code, message")
    created_at: str
    cancelled_at: str | None = None
    scored: int | None = Field(None, description="finished runs whose example has an expected output (GET one)")
    mean_score: float | None = None
    previous_batch_id: str | None = None
    regressions: list[Regression] | None = None
