"""Runs: what a run is and how it changes state.

States: awaiting_confirmation → queued → running → succeeded | failed | cancelled | timed_out.
Every transition is one conditional UPDATE, so concurrent actors (API, workers, the
reaper) can never move a run out of a terminal state or run it twice.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import sqlalchemy as sa
from jsonschema import Draft202012Validator

from runyard.events import Deferred, EventHub
from runyard.ids import new_id
from runyard.services.access import Permission, Principal
from runyard.services.errors import Conflict, DomainError, NotFound, ValidationFailed
from runyard.services.pagination import MAX_LIMIT, MAX_OFFSET, Page, paginate
from runyard.services.run_files import RunFiles
from runyard.services.run_visibility import sees_run, visibility_clause
from runyard.services.secrets import SecretService
from runyard.services.text_match import text_match
from runyard.services.tools import (
    DEFAULT_RETRY_ON,
    MAX_RETRY_BACKOFF_S,
    ToolService,
    check_script_inputs,
    retry_policy,
    sees,
)
from runyard.store.blobs import BlobStore
from runyard.store.db import Database
from runyard.store.group_commit import GroupCommitter
from runyard.store.rows import RowView
from runyard.store.tables import run_artifacts, runs, tool_versions, tools, usage_events, workers
from runyard.timeutil import parse_rfc3339, rfc3339, utcnow

AWAITING = "awaiting_confirmation"
QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
TIMED_OUT = "timed_out"
# A workflow step waiting for a person (and its workflow run): it holds no worker slot;
# POST /runs/{id}/input ends the wait.
WAITING = "waiting_for_input"
TERMINAL_STATUSES: frozenset[str] = frozenset({SUCCEEDED, FAILED, CANCELLED, TIMED_OUT})
ALL_STATUSES: tuple[str, ...] = (AWAITING, QUEUED, RUNNING, WAITING, SUCCEEDED, FAILED, CANCELLED, TIMED_OUT)
# What started a run: the HTTP API (the default), the Python SDK, the CLI or an MCP client
# (each declared by the X-Runyard-Trigger header or the SDK's User-Agent; `runyard mcp`
# declares mcp), or POST /runs/{id}/rerun.
CALLER_TRIGGERS = ("api", "sdk", "cli", "mcp")
# Runs the platform starts on a user's behalf: a schedule's tick, a request to a webhook's URL, mail
# to an email trigger's alias (``source``: the schedule's, hook's or email trigger's id). A client can claim
# none of these.
SOURCE_TRIGGERS = ("schedule", "webhook", "email", "workflow")
# Every trigger a run may record (one list): ``workflow`` is a workflow's step (``source``:
# the workflow run); ``ui`` is the web UI's runs, ``mcp`` also the /mcp endpoint's.
TRIGGERS = (*CALLER_TRIGGERS, "rerun", *SOURCE_TRIGGERS, "ui")
# What a run runs: a tool, a workflow (its steps are child runs), or a workflow step that
# waits for a person's input.
RUN_TYPES = ("tool", "workflow", "input", "ingest_proxy", "mcp_tool")
# What GET /runs sorts by: the times, the duration, and the columns it filters on.
LIST_TEXT_SORTS = ("id", "tool_name", "status", "type", "trigger", "session", "batch_id", "example_id", "project",
                   "app", "source_ref", "worker_id")
LIST_SORTS = ("created_at", "started_at", "finished_at", "queued_at", "duration", "tool_version", "attempt",
              *LIST_TEXT_SORTS)
MAX_LIST_IDS = 1000
# A run's tags; each is also a column of its own (searchable, indexed: services.run_search).
TAG_KEYS = ("session", "batch_id", "example_id", "project", "app", "source_ref")
MAX_FILE_BYTES = 512 * 1024 * 1024
# Error types of an attempt the platform lost rather than the tool failed: its worker
# vanished or was stopped, or the engine lost its process (e.g. its fork server died).
# ``retry_on: [worker_lost]`` (the default) covers them.
LOST_ERROR_TYPES = frozenset({"worker_lost", "worker_shutdown", "executor_error"})
# Reading runs takes any key of the workspace (a restricted one sees only its tools' runs).
CREATE_RUNS = Permission("member", "create runs")
CONFIRM_RUNS = Permission("member", "confirm runs")
CANCEL_RUNS = Permission("member", "cancel runs")
UPLOAD_RUN_FILES = Permission("member", "upload run files")


def retry_cause(status: str, error: dict[str, Any] | None) -> str | None:
    """The ``retry_on`` entry covering an attempt that ended so; None: never retried."""
    if status == TIMED_OUT:
        return "timeout"
    if status != FAILED:
        return None
    kind = (error or {}).get("type")
    if kind == "cancelled":
        return None
    return "worker_lost" if kind in LOST_ERROR_TYPES else "error"


def will_retry(run: Any, status: str, error: dict[str, Any] | None, retry_on: Collection[str]) -> bool:
    """Whether an attempt that ended so goes back to the queue."""
    cause = retry_cause(status, error)
    return cause is not None and cause in retry_on and run.attempt < run.max_attempts


def step_policy(run: Any, policy: dict[str, Any]) -> dict[str, Any]:
    """A run's retry policy: its tool version's (``policy``), unless it is a workflow step
    with ``retries`` of its own."""
    override = run.run_policy or {}
    if "retry_on" in override:
        return {"retry_on": list(override["retry_on"]), "retry_backoff_s": float(override.get("retry_backoff_s", 0))}
    return policy


def retry_delay_s(backoff_s: float, attempt: int) -> float:
    """The wait before the attempt after ``attempt``: ``backoff_s * 2**(attempt - 1)``, capped."""
    if backoff_s <= 0:
        return 0.0
    return min(MAX_RETRY_BACKOFF_S, backoff_s * 2.0 ** min(attempt - 1, 30))


def remove_run_dirs(work_root: Path, run_id: str) -> None:
    """Remove a run's work dir and output dir (``<work root>/<run>``, ``<run>.out``, or in
    the dir of a reused tool version's runs, ``<work root>/reuse-<version>/``)."""
    parents = [work_root, *work_root.glob("reuse-*/")]
    for parent in parents:
        for path in (parent / run_id, parent / f"{run_id}.out"):
            shutil.rmtree(path, ignore_errors=True)


def run_view(row: Any, *, expand_inputs: bool = False) -> dict[str, Any]:
    m = row._mapping
    view = {
        "id": m["id"], "object": "run", "tool_id": m["tool_id"], "tool_name": m["tool_name"],
        "tool_version": m["tool_version"], "status": m["status"], "output": m["output"], "error": m["error"],
        "type": m["type"], "tags": m["tags"] or {}, "trigger": m["trigger"], "triggered_by": m["triggered_by"],
        "parent_run_id": m["parent_run_id"], "step_id": m["step_id"], "item_index": m["item_index"],
        "attempt": m["attempt"], "max_attempts": m["max_attempts"], "worker_id": m["worker_id"],
        "progress": m["progress"], "usage": m["usage"], "requires_confirmation": m["requires_confirmation"],
        "input_files": sorted((m["input_files"] or {}).keys()),
        "timeout_s": (m["run_policy"] or {}).get("timeout_s"),
        "created_at": rfc3339(m["created_at"]), "queued_at": rfc3339(m["queued_at"]),
        "started_at": rfc3339(m["started_at"]), "finished_at": rfc3339(m["finished_at"]),
        "log_bytes": m["log_bytes"], "log_truncated": m["log_truncated"],
    }
    if expand_inputs:
        view["inputs"] = m["inputs"]
    return view


@dataclass(frozen=True)
class StepPlacement:
    """Where a run sits in its workflow run: the step, its key among the workflow run's
    children (unique: a step is started once), the for_each item, the step's policy
    overrides ({max_attempts, retry_on, retry_backoff_s, timeout_s}) and the workflow's
    input files it receives (stored once, under the workflow run)."""

    step_id: str
    step_key: str
    item_index: int | None = None
    policy: dict[str, Any] | None = None
    files: dict[str, Any] = field(default_factory=dict)


_ROW_DEFAULTS: dict[str, Any] = {
    "input_files": {}, "output": None, "error": None, "tags": {}, "session": None, "batch_id": None,
    "example_id": None, "project": None, "app": None, "source_ref": None, "type": "tool", "trigger": "api",
    "triggered_by": None, "parent_run_id": None,
    "step_id": None, "step_key": None, "item_index": None, "user_id": None, "run_policy": None,
    "idempotency_key": None, "request_hash": None, "token_id": None, "attempt": 1, "max_attempts": 1,
    "worker_id": None, "lease_expires_at": None, "cancel_requested": False, "progress": None, "usage": None,
    "requires_confirmation": False, "log_bytes": 0, "log_truncated": False, "queued_at": None,
    "not_before": None, "started_at": None, "finished_at": None,
}


def new_run_row(**values: Any) -> dict[str, Any]:
    """Every column of a new run: ``values`` over the defaults (the tags' own columns from ``tags``)."""
    row = {**_ROW_DEFAULTS, **values}
    tags = row["tags"] or {}
    for key in TAG_KEYS:
        row[key] = row[key] or tags.get(key)
    return row


def artifact_view(path: str, row: Any) -> dict[str, Any]:
    return {"path": path, "size": row.size, "sha256": row.sha256, "content_type": row.content_type,
            "created_at": rfc3339(row.created_at)}


def _field_errors(validator: Draft202012Validator, instance: dict[str, Any],
                  *, ignore_required: bool = False) -> list[dict[str, str]]:
    errors = []
    for err in sorted(validator.iter_errors(instance), key=lambda e: list(e.path)):
        path = ".".join(str(p) for p in err.absolute_path)
        if err.validator == "required":
            if ignore_required:
                continue
            for name in err.validator_value:
                if isinstance(err.instance, dict) and name not in err.instance:
                    field = f"{path}.{name}" if path else name
                    errors.append({"field": field, "message": f"'{name}' is required"})
            continue
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            known = set((err.schema or {}).get("properties", {}))
            patterns = (err.schema or {}).get("patternProperties", {})
            for name in err.instance:
                if name not in known and not patterns:
                    field = f"{path}.{name}" if path else name
                    errors.append({"field": field, "message": f"unexpected input '{name}'"})
            continue
        errors.append({"field": path or "inputs", "message": err.message})
    return errors


class LocalWorker(Protocol):
    """A worker in this process: a run created here may go straight to it (the fast path)."""

    def try_reserve(self) -> bool: ...

    def release_reservation(self) -> None: ...

    def launch_reserved(self, row: Any) -> None: ...


class RunService:
    def __init__(self, db: Database, blobs: BlobStore, tools: ToolService, secrets: SecretService,
                 hub: EventHub, *, work_root: Path | None = None) -> None:
        self.db = db
        self.work_root = work_root  # where runs' work dirs are, when on this node's filesystem
        self.blobs = blobs
        self.files = RunFiles(blobs)
        self.tools = tools
        self.secrets = secrets
        self.hub = hub
        self._validators: dict[str, Draft202012Validator] = {}
        self._validators_lock = threading.Lock()
        self.local_worker: LocalWorker | None = None  # set when this process runs a worker
        self.workflow_runs: Any = None  # the WorkflowRuns service (it registers itself)
        self.commits = GroupCommitter(db)

    # -- creation --------------------------------------------------------------------------
    def _validator(self, version: Any) -> Draft202012Validator:
        with self._validators_lock:
            validator = self._validators.get(version.id)
            if validator is None:
                validator = Draft202012Validator(version.input_schema)
                if len(self._validators) > 4096:
                    self._validators.clear()
                self._validators[version.id] = validator
            return validator

    def validate_inputs(self, version: Any, inputs: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
        if not isinstance(inputs, dict):
            raise ValidationFailed("inputs must be an object", code="invalid_inputs", details={"field": "inputs"})
        merged = {**(version.default_inputs or {}), **inputs}
        errors = _field_errors(self._validator(version), merged, ignore_required=partial)
        if version.mode == "script":
            check_script_inputs(merged)
        if errors:
            summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
            raise ValidationFailed(f"inputs do not match the tool's input schema: {summary}",
                                   code="invalid_inputs", details={"errors": errors})
        return merged

    def create(self, principal: Principal, *, tool: str, inputs: dict[str, Any] | None = None,
               version: int | None = None, tags: dict[str, Any] | None = None,
               requires_confirmation: bool = False, idempotency_key: str | None = None,
               trigger: str = "api", parent_run_id: str | None = None,
               files: dict[str, tuple[str, BinaryIO]] | None = None,
               source: str | None = None, step: StepPlacement | None = None,
               by: str | None = None, timeout_s: float | None = None) -> tuple[dict[str, Any], bool]:
        """Validate and enqueue. Returns (run, created); created is False for an idempotent replay.
        ``source``: the schedule, webhook, email trigger or workflow run starting it (required
        with those triggers); it becomes the run's ``triggered_by`` (else the principal's user).
        ``step``: where the run sits in its workflow run (``parent_run_id``); a step created
        twice is created once (the second call returns the first run, created False). ``by``:
        the run's ``triggered_by`` instead of ``source`` (an email's sender). ``timeout_s``:
        the run's own time limit, at most its tool version's."""
        CREATE_RUNS.check(principal)
        ws = principal.workspace_id
        if not isinstance(tool, str) or not tool:
            raise ValidationFailed("tool is required", details={"field": "tool"})
        if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
            raise ValidationFailed("version must be a positive integer", details={"field": "version"})
        if trigger not in TRIGGERS or (trigger == "rerun" and parent_run_id is None) \
                or (trigger in SOURCE_TRIGGERS and source is None):
            raise ValidationFailed(f"trigger must be one of {', '.join(CALLER_TRIGGERS)} (a rerun is made by "
                                   "POST /runs/{id}/rerun)", details={"field": "trigger", "value": trigger,
                                                                    "allowed": list(CALLER_TRIGGERS)})
        tags = self.check_tags(tags)
        inputs = {} if inputs is None else inputs
        if timeout_s is not None and (isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float)
                                      or not 0 < timeout_s <= 86400):
            raise ValidationFailed("timeout_s must be a number of seconds, more than 0 and at most 86400",
                                   details={"field": "timeout_s"})
        request_hash = None
        if idempotency_key is not None:
            request_hash = hashlib.sha256(json.dumps(
            # (timeout_s joins the hashed request only when given: keys used before it existed still replay)
                [tool, version, inputs, tags, requires_confirmation, sorted(files or {}),
                 *([float(timeout_s)] if timeout_s is not None else [])],
                sort_keys=True, default=str).encode()).hexdigest()
            if not 1 <= len(idempotency_key) <= 200:
                raise ValidationFailed("Idempotency-Key must be 1-200 characters", code="invalid_idempotency_key")
            replay = self.replay(ws, idempotency_key, request_hash)
            if replay is not None:
                return replay, False
        # The tool as this process read it lately (no round trip): the INSERT below writes
        # the run only if the tool is still so, else we read it afresh and start again.
        # Uploaded files cannot be read twice: that request reads the tool afresh at once.
        for attempt in range(1, _CREATE_ATTEMPTS + 1):
            fresh = bool(files) or attempt > 1
            try:
                tool_row, version_row = (self.tools.resolve(ws, tool, version) if fresh
                                         else self.tools.resolve_recent(ws, tool, version))
                outcome = self._insert_run(principal, tool_row, version_row, inputs=inputs, tags=tags,
                                           requires_confirmation=requires_confirmation,
                                           idempotency_key=idempotency_key, request_hash=request_hash,
                                           trigger=trigger, parent_run_id=parent_run_id, files=files,
                                           source=source, step=step, by=by, timeout_s=timeout_s)
            except DomainError:
                if fresh:
                    raise
                outcome = None  # judged on a row that may be stale: judge again on a fresh one
            if outcome is not None:
                return outcome
            self.tools.forget(ws, tool)
            if files:
                break
        raise Conflict(f"tool {tool!r} changed while the run was being created; send the request again",
                       code="tool_changed")

    def _insert_run(self, principal: Principal, tool_row: Any, version_row: Any, *, inputs: dict[str, Any],
                    tags: dict[str, str], requires_confirmation: bool, idempotency_key: str | None,
                    request_hash: str | None, trigger: str, parent_run_id: str | None,
                    files: dict[str, tuple[str, BinaryIO]] | None,
                    source: str | None = None, step: StepPlacement | None = None, by: str | None = None,
                    timeout_s: float | None = None) -> tuple[dict[str, Any], bool] | None:
        """Validate against ``version_row`` and insert; None (nothing written) when the tool
        is no longer as ``tool_row`` says (deleted, renamed, its visibility or latest
        version changed)."""
        ws = principal.workspace_id
        if not sees(principal, tool_row):  # hidden from this key: as if absent
            raise NotFound(f"tool {tool_row.name!r} not found", code="tool_not_found",
                           details={"tool": tool_row.name})
        file_keys = set(files or {}) | set(step.files if step else {})
        policy = step.policy if step else None
        if timeout_s is not None:
            if timeout_s > version_row.timeout_s:
                raise ValidationFailed(
                    f"timeout_s {timeout_s:g} is more than the tool version's timeout of {version_row.timeout_s:g} s",
                    code="timeout_too_large", details={"field": "timeout_s", "max": version_row.timeout_s})
            policy = {**(policy or {}), "timeout_s": float(timeout_s)}
        # File inputs arrive as local paths in the child; validate them as strings.
        probe = {**inputs, **{k: f"/inputs/{k}" for k in file_keys}}
        merged = self.validate_inputs(version_row, probe, partial=requires_confirmation)
        for key in file_keys:
            merged.pop(key, None)  # the worker puts the local path in at run time
        present = self.secrets.existing_names(ws, version_row.required_secrets)
        missing = [s for s in version_row.required_secrets if s not in present]
        if missing:
            raise ValidationFailed(f"tool {tool_row.name!r} needs secret(s) that are not set: {', '.join(missing)}",
                                   code="missing_secret", details={"secrets": missing})
        run_id = new_id("run")
        input_files = {**(step.files if step else {}), **self.store_files(run_id, files or {})}
        now = utcnow()
        # Fast path: a worker in this process with a free slot takes the run as it is
        # created — one INSERT instead of INSERT + claim, and no wake-up hop.
        local = self.local_worker
        reserved = bool(local is not None and not requires_confirmation and local.try_reserve())
        row = new_run_row(
            id=run_id, workspace_id=ws, tool_id=tool_row.id, tool_name=tool_row.name,
            tool_version=version_row.version, tool_version_id=version_row.id,
            status=AWAITING if requires_confirmation else QUEUED, inputs=merged, input_files=input_files,
            tags=tags, trigger=trigger, parent_run_id=parent_run_id, idempotency_key=idempotency_key,
            request_hash=request_hash,
            triggered_by=(by or source) if trigger in SOURCE_TRIGGERS else principal.user_id,
            # A triggered run has no creating token (its principal stands for the trigger).
            token_id=None if trigger in SOURCE_TRIGGERS else principal.token_id,
            max_attempts=version_row.retries + 1, requires_confirmation=requires_confirmation, created_at=now,
            queued_at=None if requires_confirmation else now, user_id=principal.user_id,
            step_id=step.step_id if step else None, step_key=step.step_key if step else None,
            item_index=step.item_index if step else None, run_policy=policy)
        if step is not None and step.policy and step.policy.get("max_attempts"):
            row["max_attempts"] = step.policy["max_attempts"]
        if reserved:
            row.update(status=RUNNING, worker_id=local.id, started_at=now,
                       lease_expires_at=now + timedelta(seconds=local.settings.lease_s))
        insert = self.db.prepared.get("run_insert", _insert_statement)
        try:
            inserted = self.commits.run_statement(insert, {
                **row, "seen_tool_id": tool_row.id, "seen_latest": tool_row.latest_version,
                "seen_name": tool_row.name, "seen_visibility": tool_row.visibility})
        except BaseException as exc:
            if reserved:
                local.release_reservation()
            if step is not None and isinstance(exc, sa.exc.IntegrityError):
                existing = self.step_run(parent_run_id or "", step.step_key)
                if existing is None:
                    raise
                return run_view(existing), False
            if idempotency_key is None or not isinstance(exc, sa.exc.IntegrityError):
                raise
            self.files.delete(run_id)
            replay = self.replay(ws, idempotency_key, request_hash)
            if replay is None:
                raise
            return replay, False
        if inserted is None:
            if reserved:
                local.release_reservation()
            if input_files:
                self.files.delete(run_id)
            return None
        if reserved:
            local.launch_reserved(RowView(row))
        elif not requires_confirmation:
            self.hub.publish("run.queued", run_id)
        return run_view(RowView(row)), True

    def check_tags(self, tags: dict[str, Any] | None) -> dict[str, str]:
        tags = tags or {}
        if not isinstance(tags, dict):
            raise ValidationFailed("tags must be an object", details={"field": "tags"})
        unknown = set(tags) - set(TAG_KEYS)
        if unknown:
            raise ValidationFailed(f"unknown tag(s): {', '.join(sorted(unknown))}; allowed: {', '.join(TAG_KEYS)}",
                                   details={"field": "tags"})
        for key, value in tags.items():
            if value is not None and (not isinstance(value, str) or len(value) > 200):
                raise ValidationFailed(f"tags.{key} must be a string of at most 200 characters",
                                       details={"field": f"tags.{key}"})
        return {k: v for k, v in tags.items() if v is not None}

    def replay(self, ws: str, key: str, request_hash: str) -> dict[str, Any] | None:
        with self.db.read() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.workspace_id == ws, runs.c.idempotency_key == key)).first()
        if row is None:
            return None
        if row.request_hash != request_hash:
            raise Conflict("Idempotency-Key was already used for a different request",
                           code="idempotency_key_reused", details={"run_id": row.id})
        return run_view(row)

    def store_files(self, run_id: str, files: dict[str, tuple[str, BinaryIO]]) -> dict[str, Any]:
        stored: dict[str, Any] = {}
        for key, (filename, stream) in files.items():
            if not key.isidentifier():
                raise ValidationFailed(f"file field {key!r} is not a valid input name", details={"field": key})
            safe_name = _safe_filename(filename) or key
            blob_key = self.files.input_key(run_id, key, safe_name)
            try:
                size, sha = self.blobs.put_stream(blob_key, stream, max_bytes=MAX_FILE_BYTES)
            except ValueError as exc:
                self.files.delete_inputs(run_id)
                raise ValidationFailed(str(exc), code="file_too_large", details={"field": key}) from exc
            stored[key] = {"filename": safe_name, "blob": blob_key, "size": size, "sha256": sha}
        return stored

    # -- reading ---------------------------------------------------------------------------
    def step_run(self, parent_run_id: str, step_key: str) -> Any:
        """A workflow run's child for ``step_key``, or None."""
        with self.db.read() as conn:
            return conn.execute(sa.select(runs).where(runs.c.parent_run_id == parent_run_id,
                                                      runs.c.step_key == step_key)).first()

    def row(self, ws: str, run_id: str) -> Any:
        by_id = self.db.prepared.get("run_by_id", lambda: (sa.select(runs).where(
            runs.c.id == sa.bindparam("id"), runs.c.workspace_id == sa.bindparam("ws")), list(runs.c)))
        row = by_id.execute_alone(self.db.engine, {"id": run_id, "ws": ws})
        if row is None:
            raise NotFound(f"run {run_id!r} not found", code="run_not_found", details={"run_id": run_id})
        return row

    def visible_row(self, principal: Principal, run_id: str) -> Any:
        """The run as ``principal`` may see it: a run of a tool outside a restricted token's
        tools is hidden, 404 ``run_not_found`` exactly as a run that does not exist, for
        every verb (read, wait, logs, artifacts, confirm, cancel, rerun, files)."""
        row = self.row(principal.workspace_id, run_id)
        if not sees_run(self.db, principal, row):
            raise NotFound(f"run {run_id!r} not found", code="run_not_found", details={"run_id": run_id})
        return row

    def get(self, principal: Principal, run_id: str, *, expand_inputs: bool = False) -> dict[str, Any]:
        return run_view(self.visible_row(principal, run_id), expand_inputs=expand_inputs)

    def list(self, principal: Principal, *, tool: str | list[str] | None = None, statuses: list[str] | None = None,
             session: str | None = None, batch_id: str | None = None, example_id: str | None = None,
             created_after: datetime | None = None, created_before: datetime | None = None,
             run_type: str | None = None, triggers: list[str] | None = None, triggered_by: str | None = None,
             source: str | None = None, parent_run_id: str | None = None,
             completed_after: datetime | None = None, completed_before: datetime | None = None,
             ids: list[str] | None = None, sort: str = "created_at", order: str = "desc",
             cursor: str | None = None, offset: int | None = None, limit: int | None = None,
             include_total: bool = False, project: str | None = None, app: str | None = None,
             source_ref: str | None = None, worker_id: str | None = None, example_id_contains: str | None = None,
             page: int | None = None, page_size: int | None = None) -> Page:
        """Runs matching every filter given, in ``sort`` order (a time, ``duration`` or a
        column of LIST_SORTS; runs without that value come last in either order), a page
        after ``cursor`` or ``offset`` runs, or numbered page ``page`` (from 1) of
        ``page_size`` runs. ``tool``: names or ids, any of them."""
        offset, limit = numbered_page(page, page_size, cursor=cursor, offset=offset, limit=limit)
        if sort not in LIST_SORTS:
            raise ValidationFailed(f"sort must be one of {', '.join(LIST_SORTS)}", details={"field": "sort"})
        if order not in ("asc", "desc"):
            raise ValidationFailed("order must be asc or desc", details={"field": "order"})
        query = sa.select(runs).where(runs.c.workspace_id == principal.workspace_id)
        tool_refs = [tool] if isinstance(tool, str) else list(tool or [])
        if tool_refs:
            query = query.where(sa.or_(runs.c.tool_id.in_([t for t in tool_refs if t.startswith("tool_")]),
                                       runs.c.tool_name.in_([t for t in tool_refs if not t.startswith("tool_")])))
        if principal.tools:
            query = query.where(runs.c.tool_id.in_(sorted(principal.tools)))
        if statuses:
            bad = [s for s in statuses if s not in ALL_STATUSES]
            if bad:
                raise ValidationFailed(f"unknown status(es): {', '.join(bad)}", details={"field": "status"})
            query = query.where(runs.c.status.in_(statuses))
        if run_type is not None:
            if run_type not in RUN_TYPES:
                raise ValidationFailed(f"type must be one of {', '.join(RUN_TYPES)}", details={"field": "type"})
            query = query.where(runs.c.type == run_type)
        if triggers:
            bad = [t for t in triggers if t not in TRIGGERS]
            if bad:
                raise ValidationFailed(f"unknown trigger(s): {', '.join(bad)}; known: {', '.join(TRIGGERS)}",
                                       details={"field": "trigger"})
            query = query.where(runs.c.trigger.in_(triggers))
        if ids is not None:
            if len(ids) > MAX_LIST_IDS:
                raise ValidationFailed(f"ids takes at most {MAX_LIST_IDS} run ids", details={"field": "ids"})
            query = query.where(runs.c.id.in_(sorted(set(ids))))
        for col, value in ((runs.c.session, session), (runs.c.batch_id, batch_id), (runs.c.example_id, example_id),
                           (runs.c.triggered_by, triggered_by), (runs.c.tool_name, source),
                           (runs.c.parent_run_id, parent_run_id), (runs.c.project, project), (runs.c.app, app),
                           (runs.c.source_ref, source_ref), (runs.c.worker_id, worker_id)):
            if value is not None:
                query = query.where(col == value)
        if example_id_contains:
            query = query.where(text_match(runs.c.example_id, "contains", example_id_contains, self.db.is_postgres))
        for col, after, before in ((runs.c.created_at, created_after, created_before),
                                   (runs.c.finished_at, completed_after, completed_before)):
            if after is not None:
                query = query.where(col > after)
            if before is not None:
                query = query.where(col < before)
        # Ids sort by creation time: created_at pages on the id alone (the indexes' order).
        sort_col: Any = runs.c.id
        cursor_value: Callable[[Any], Any] | None = None
        if sort in ("started_at", "finished_at", "queued_at"):
            sort_col, cursor_value = runs.c[sort], parse_rfc3339
        elif sort in LIST_TEXT_SORTS:
            sort_col, cursor_value = runs.c[sort], _cursor_text
        elif sort in ("tool_version", "attempt"):
            sort_col, cursor_value = runs.c[sort], _cursor_int
        elif sort == "duration":
            sort_col, cursor_value = self._duration_ms().label("duration_ms"), _cursor_float
            query = query.add_columns(sort_col)
        with self.db.read() as conn:
            hiding = visibility_clause(conn, principal)
            if hiding is not None:
                query = query.where(hiding)
            rows, nxt, total = paginate(conn, query, sort_col=sort_col, id_col=runs.c.id,
                                        descending=order == "desc", cursor=cursor, limit=limit,
                                        include_total=include_total, cursor_value=cursor_value,
                                        nulls_last=sort != "created_at", offset=offset)
        return Page([run_view(r) for r in rows], nxt, total)

    def _duration_ms(self) -> Any:
        """A run's duration in milliseconds (start to end; NULL until it ended, or when it
        never started), as a float on either database."""
        if self.db.is_postgres:
            seconds = sa.extract("epoch", runs.c.finished_at - runs.c.started_at)
            return sa.cast(seconds * 1000, sa.Float)
        return (sa.func.julianday(runs.c.finished_at) - sa.func.julianday(runs.c.started_at)) * 86_400_000.0

    def artifacts(self, principal: Principal, run_id: str) -> list[dict[str, Any]]:
        """A run's artifacts; a workflow run's are its steps', under ``output/<step_id>/``
        (``output/<step_id>/<item>/`` for a for_each item)."""
        return [artifact_view(path, r) for path, r in self.artifact_rows(self.visible_row(principal, run_id))]

    def artifact_rows(self, run: Any, depth: int = 0) -> list[tuple[str, Any]]:
        """(path, artifact row) of a run, its workflow steps' included, by path."""
        with self.db.read() as conn:
            rows = conn.execute(sa.select(run_artifacts).where(run_artifacts.c.run_id == run.id)).all()
            children = [] if run.type != "workflow" or depth > 8 else conn.execute(
                sa.select(runs).where(runs.c.parent_run_id == run.id, runs.c.step_id.is_not(None))).all()
        found = [(r.path, r) for r in rows]
        for child in children:
            prefix = f"output/{child.step_id}/" + ("" if child.item_index is None else f"{child.item_index}/")
            found.extend((prefix + path, r) for path, r in self.artifact_rows(child, depth + 1))
        return sorted(found, key=lambda pair: pair[0])

    def artifact(self, principal: Principal, run_id: str, path: str) -> Any:
        row = self.visible_row(principal, run_id)
        if row.type == "workflow":
            for found, artifact in self.artifact_rows(row):
                if found == path:
                    return artifact
        else:
            with self.db.read() as conn:
                artifact = conn.execute(sa.select(run_artifacts).where(
                    run_artifacts.c.run_id == run_id, run_artifacts.c.path == path)).first()
            if artifact is not None:
                return artifact
        raise NotFound(f"artifact {path!r} not found", code="artifact_not_found")

    # -- user transitions ------------------------------------------------------------------
    def confirm(self, principal: Principal, run_id: str) -> dict[str, Any]:
        CONFIRM_RUNS.check(principal)
        row = self.visible_row(principal, run_id)
        if row.status != AWAITING:
            raise Conflict(f"run is {row.status}, not awaiting confirmation", code="invalid_state",
                           details={"status": row.status})
        version = self.tools.version_by_id(row.tool_version_id)
        probe = {**row.inputs, **{k: f"/inputs/{k}" for k in (row.input_files or {})}}
        self.validate_inputs(version, probe)
        with self.db.write() as conn:
            done = conn.execute(runs.update().where(runs.c.id == run_id, runs.c.status == AWAITING)
                                .values(status=QUEUED, queued_at=utcnow())).rowcount
        if not done:
            raise Conflict("run changed state concurrently", code="invalid_state")
        self.hub.publish("run.queued", run_id)
        return self.get(principal, run_id)

    def add_files(self, principal: Principal, run_id: str, files: dict[str, tuple[str, BinaryIO]]) -> dict[str, Any]:
        UPLOAD_RUN_FILES.check(principal)
        row = self.visible_row(principal, run_id)
        if row.status != AWAITING:
            raise Conflict("files can be added only while the run awaits confirmation", code="invalid_state",
                           details={"status": row.status})
        if not files:
            raise ValidationFailed("no files in the upload", details={"field": "files"})
        stored = self.store_files(run_id, files)
        with self.db.write() as conn:
            current = conn.execute(sa.select(runs.c.input_files).where(runs.c.id == run_id)).scalar_one() or {}
            conn.execute(runs.update().where(runs.c.id == run_id).values(input_files={**current, **stored}))
        return self.get(principal, run_id)

    def cancel(self, principal: Principal, run_id: str) -> dict[str, Any]:
        """Cancel a run; a workflow run's cancel reaches every step still going."""
        CANCEL_RUNS.check(principal)
        row = self.visible_row(principal, run_id)
        if row.status in TERMINAL_STATUSES:
            return run_view(row)
        if row.type == "workflow" and self.workflow_runs is not None:
            self.workflow_runs.cancel(row)
        else:
            self.cancel_row(row)
        return run_view(self.row(principal.workspace_id, run_id))

    def cancel_row(self, row: Any) -> None:
        """Cancel one run (not a workflow run): outright if it has not started, else ask its worker."""
        run_id = row.id
        now = utcnow()
        error = {"type": "cancelled", "message": "cancelled by request", "traceback": None}
        with self.db.write() as conn:
            # Not started yet: cancel outright. Running: ask the worker holding it.
            done = conn.execute(runs.update().where(runs.c.id == run_id,
                                                    runs.c.status.in_([AWAITING, QUEUED, WAITING]))
                                .values(status=CANCELLED, finished_at=now, error=error,
                                        lease_expires_at=None)).rowcount
            if not done:
                conn.execute(runs.update().where(runs.c.id == run_id, runs.c.status == RUNNING)
                             .values(cancel_requested=True))
        if done:
            self.hub.publish(f"run.done:{run_id}", CANCELLED)
            self._step_ended(row)
        else:
            self.hub.publish(f"run.cancel:{run_id}", row.worker_id)

    def _step_ended(self, run: Any) -> None:
        """A workflow step's run ended: its workflow run may move on."""
        if run.step_id is not None and run.parent_run_id is not None:
            self.hub.publish("workflow.advance", run.parent_run_id)

    def rerun(self, principal: Principal, run_id: str, *, version: str = "original",
              idempotency_key: str | None = None) -> dict[str, Any]:
        CREATE_RUNS.check(principal)
        if version not in ("original", "latest"):
            raise ValidationFailed("version must be original or latest", details={"field": "version"})
        row = self.visible_row(principal, run_id)
        tool_version = row.tool_version if version == "original" else None
        inputs = dict(row.inputs)
        files = {}
        handles = []
        try:
            for key, meta in (row.input_files or {}).items():
                fh = self.blobs.open(meta["blob"])
                handles.append(fh)
                files[key] = (meta["filename"], fh)
            run, _ = self.create(principal, tool=row.tool_id, version=tool_version, inputs=inputs, tags=row.tags,
                                 trigger="rerun", parent_run_id=row.id, files=files,
                                 idempotency_key=idempotency_key)
        finally:
            for fh in handles:
                fh.close()
        return run

    # -- worker side -----------------------------------------------------------------------
    def claim(self, worker_id: str, limit: int, lease_s: float) -> list[Any]:
        """Atomically take up to ``limit`` queued runs, oldest first."""
        now = utcnow()
        claim = self.db.prepared.get("run_claim", self._claim_statement)
        params = {"lim": limit, "worker": worker_id, "now": now, "lease_until": now + timedelta(seconds=lease_s)}
        if self.db.is_postgres:  # one statement, its own transaction: one round trip
            return claim.execute_alone_all(self.db.engine, params)
        # SQLite: in the group commit, with the inserts and ends queued beside it (one
        # commit instead of one more per claim; the writer lock serialises claims).
        return self.commits.run(lambda conn: claim.execute_all(conn, params))

    def _claim_statement(self) -> tuple[Any, Any]:
        now = sa.bindparam("now", type_=runs.c.started_at.type)
        pick = (sa.select(runs.c.id).where(runs.c.status == QUEUED,
                                           sa.or_(runs.c.not_before.is_(None), runs.c.not_before <= now))
                .order_by(runs.c.queued_at, runs.c.id).limit(sa.bindparam("lim", type_=sa.Integer)))
        if self.db.is_postgres:
            # The pick is a MATERIALIZED CTE joined by key: evaluated once, so the UPDATE
            # takes at most ``lim`` runs. Inside ``WHERE id IN (…)`` PostgreSQL planned it
            # as a semi-join and could run the LIMITed, SKIP LOCKED pick again for each
            # outer row, each time locking other runs (an 8-slot claim took 92 and 192).
            # It re-checks the status of the rows it locked.
            picked = pick.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
            statement = runs.update().where(runs.c.id == picked.c.id, runs.c.status == QUEUED)
        else:
            # SQLite evaluates the uncorrelated ``IN (…)`` list once; its writer lock makes
            # the pick final, and a status test there would have it walk every queued row
            # (through the status index) instead of fetching the picked ids by key.
            statement = runs.update().where(runs.c.id.in_(pick.scalar_subquery()))
        statement = (statement
                     .values(status=RUNNING, worker_id=sa.bindparam("worker", type_=runs.c.worker_id.type),
                             started_at=now, not_before=None,
                             lease_expires_at=sa.bindparam("lease_until", type_=runs.c.lease_expires_at.type))
                     .returning(*runs.c))
        return statement, runs.c

    def record_progress(self, run_id: str, progress: dict[str, Any]) -> None:
        with self.db.write() as conn:
            conn.execute(runs.update().where(runs.c.id == run_id, runs.c.status == RUNNING).values(progress=progress))

    def record_log_size(self, run_id: str, size: int, truncated: bool) -> None:
        with self.db.write() as conn:
            conn.execute(runs.update().where(runs.c.id == run_id).values(log_bytes=size, log_truncated=truncated))

    def append_log(self, run_id: str, line: str) -> bool:
        """Grow the log ``GET /runs/{id}/logs`` reads by ``line``, for runs the trusted side
        carries out itself (ingest proxy, MCP tool calls); False when it could not be written."""
        path = self.files.log(run_id)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("ab") as fh:
                fh.write(line.encode())
                size = fh.tell()
        except OSError:
            return False
        self.record_log_size(run_id, size, False)
        self.hub.publish(f"run.log:{run_id}", None)
        return True

    def finish(self, run: Any, *, worker_id: str, status: str, output: Any, error: dict[str, Any] | None,
               usage: dict[str, Any] | None, log_bytes: int, log_truncated: bool,
               artifacts: list[dict[str, Any]] | None = None, progress: dict[str, Any] | None = None,
               retry_on: Collection[str] = DEFAULT_RETRY_ON, retry_backoff_s: float = 0.0) -> str:
        """Record the end of an attempt; one its tool's ``retry_on`` covers, with attempts
        left, goes back to the queue (not claimed before its backoff has passed).

        Returns the status the run now has (``queued`` when it will be retried).
        """
        now = utcnow()
        retry = will_retry(run, status, error, retry_on)
        values: dict[str, Any] = {"usage": usage, "log_bytes": log_bytes, "log_truncated": log_truncated,
                                  "lease_expires_at": None}
        if progress is not None:
            values["progress"] = progress
        if retry:
            delay = retry_delay_s(retry_backoff_s, run.attempt)
            values.update(status=QUEUED, attempt=run.attempt + 1, queued_at=now, worker_id=None, error=error,
                          started_at=None, not_before=now + timedelta(seconds=delay) if delay else None)
        else:
            values.update(status=status, output=output, error=error, finished_at=now)
        params = {**values, "b_id": run.id, "b_worker": worker_id}
        if usage:
            params.update(u_workspace_id=run.workspace_id, u_kind="run_seconds",
                          u_quantity=usage.get("wall_ms", 0) / 1000, u_created_at=now)
        ended = self._record_end(values, params, with_usage=bool(usage),
                                 artifacts=[{**a, "run_id": run.id, "workspace_id": run.workspace_id, "created_at": now}
                                            for a in artifacts or ()])
        if ended is None:
            return "lost"  # the reaper or a cancel got there first; the run is theirs now
        # The run as it now is: what this attempt started with, what it just wrote, and the
        # one column others change while it runs (read back, not the whole row decoded).
        final = RowView({**dict(run._mapping), **values, "cancel_requested": ended.cancel_requested})
        if retry:
            self.hub.publish("run.queued", run.id)
            return QUEUED
        # Waiters on this node get the finished run itself and need not read it back.
        self.hub.publish(f"run.done:{run.id}",
                         Deferred(lambda: {"status": status, "run": run_view(final, expand_inputs=True)}),
                         remote_payload={"status": status})
        self._step_ended(run)
        return status

    def _record_end(self, values: dict[str, Any], params: dict[str, Any], *, with_usage: bool,
                    artifacts: list[dict[str, Any]]) -> Any:
        """Write the end of an attempt (and its usage, artifacts); a row with
        its ``cancel_requested``, or None when it was no longer running on this worker."""
        record_usage = None
        if self.db.is_postgres:  # the run's end and its usage row are one statement (one round trip)
            update = self.db.prepared.get(("run_finish", frozenset(values), with_usage),
                                          lambda: (_finish_statement_pg(values, with_usage), _END_COLUMNS))
            if not artifacts:
                return self.commits.run_statement(update, params)
        else:
            update = self.db.prepared.get(("run_finish", frozenset(values)),
                                          lambda: (_finish_statement(values), _END_COLUMNS))
            if with_usage:
                record_usage = self.db.prepared.get("usage_insert", lambda: (usage_events.insert().values(
                    {c.key: sa.bindparam("u_" + c.key, type_=c.type) for c in usage_events.c if c.key != "id"}), ()))

        def write(conn: sa.Connection) -> Any:
            final = update.execute(conn, params)
            if final is not None and artifacts:
                conn.execute(run_artifacts.insert(), artifacts)
            if final is not None and record_usage is not None:
                record_usage.execute(conn, {**params, "u_ref_id": params["b_id"]})
            return final

        return self.commits.run(write)

    def heartbeat(self, worker_id: str, run_ids: list[str], lease_s: float) -> set[str]:
        """Extend leases; returns the ids whose cancellation was requested."""
        if not run_ids:
            return set()
        with self.db.write() as conn:
            conn.execute(runs.update().where(runs.c.id.in_(run_ids), runs.c.worker_id == worker_id,
                                             runs.c.status == RUNNING)
                         .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s)))
            rows = conn.execute(sa.select(runs.c.id).where(runs.c.id.in_(run_ids),
                                                           runs.c.cancel_requested.is_(True))).all()
        return {r.id for r in rows}

    def reap_lost(self, *, stale_after_s: float, own_worker_id: str | None = None,
                  on_lost: Callable[[str, str], None] | None = None) -> int:
        """Runs whose worker stopped heartbeating: retry them or fail them as ``worker_lost``.

        A run is lost when its lease expired *and* its worker is gone: no heartbeat for
        ``stale_after_s``, stopped, or unknown. A live worker that is merely slow to renew
        leases (an overloaded node) keeps its runs. ``own_worker_id``: the calling worker,
        which has just renewed the leases of every run it holds — an expired one of its own
        is a run it lost track of.
        """
        now = utcnow()
        stale = now - timedelta(seconds=stale_after_s)
        worker_gone = sa.or_(workers.c.id.is_(None), workers.c.heartbeat_at < stale,
                             workers.c.stopped_at.is_not(None))
        if own_worker_id is not None:
            worker_gone = sa.or_(worker_gone, runs.c.worker_id == own_worker_id)
        with self.db.read() as conn:
            expired = conn.execute(
                sa.select(runs, tool_versions.c.retry_on, tool_versions.c.retry_backoff_s)
                .select_from(runs.outerjoin(workers, workers.c.id == runs.c.worker_id)
                             .outerjoin(tool_versions, tool_versions.c.id == runs.c.tool_version_id))
                # ``mcp_tool`` runs are the MCP driver's to sweep (services.mcp_client): never retried.
                .where(runs.c.status == RUNNING, runs.c.lease_expires_at < now, worker_gone,
                       runs.c.type != "mcp_tool")).all()
        count = 0
        for run in expired:
            error = {"type": "worker_lost",
                     "message": f"worker {run.worker_id} stopped responding while running attempt {run.attempt}",
                     "traceback": None}
            if run.cancel_requested:
                values: dict[str, Any] = {"status": CANCELLED, "finished_at": now,
                                          "error": {"type": "cancelled", "message": "cancelled by request",
                                                    "traceback": None}}
            else:
                policy = step_policy(run, retry_policy(run._mapping))
                if will_retry(run, FAILED, error, policy["retry_on"]):
                    delay = retry_delay_s(policy["retry_backoff_s"], run.attempt)
                    values = {"status": QUEUED, "attempt": run.attempt + 1, "queued_at": now, "worker_id": None,
                              "started_at": None, "error": error,
                              "not_before": now + timedelta(seconds=delay) if delay else None}
                else:
                    values = {"status": FAILED, "finished_at": now, "error": error}
            with self.db.write() as conn:
                updated = conn.execute(runs.update().where(
                    runs.c.id == run.id, runs.c.status == RUNNING, runs.c.lease_expires_at < now,
                ).values(lease_expires_at=None, **values)).rowcount
                if updated and self.work_root is not None:
                    # The lost attempt's dirs (its worker left them), removed before the
                    # commit: until then the run is not claimable, so a next attempt's
                    # dirs (the same paths) cannot be made yet.
                    remove_run_dirs(self.work_root, run.id)
            if updated:
                count += 1
                if values["status"] == QUEUED:
                    self.hub.publish("run.queued", run.id)
                else:
                    self.hub.publish(f"run.done:{run.id}", values["status"])
                    self._step_ended(run)
                if on_lost:
                    on_lost(run.id, values["status"])
        return count


_CREATE_ATTEMPTS = 3
_END_COLUMNS = (runs.c.id, runs.c.cancel_requested)  # what recording a run's end reads back


def _insert_statement() -> tuple[Any, Any]:
    """INSERT of a run, on condition that its tool is still as the creator read it (live,
    same latest version, same name, same visibility), RETURNING its id: no row means
    nothing was written. The name is checked because the creator may have found the tool by
    a name cached on this node, which a rename on any node frees (the old name answers 404)."""
    still = sa.exists().where(tools.c.id == sa.bindparam("seen_tool_id", type_=tools.c.id.type),
                              tools.c.latest_version == sa.bindparam("seen_latest", type_=tools.c.latest_version.type),
                              tools.c.name == sa.bindparam("seen_name", type_=tools.c.name.type),
                              tools.c.visibility == sa.bindparam("seen_visibility", type_=tools.c.visibility.type),
                              tools.c.deleted_at.is_(None))
    values = sa.select(*[sa.bindparam(c.key, type_=c.type) for c in runs.c]).where(still)
    return runs.insert().from_select([c.key for c in runs.c], values).returning(runs.c.id), [runs.c.id]


def _finish_statement(values: dict[str, Any]) -> Any:
    """UPDATE of the given columns of a run still running on the given worker, RETURNING
    its id and ``cancel_requested`` (the rest of the row the caller knows)."""
    return (runs.update()
            .where(runs.c.id == sa.bindparam("b_id"), runs.c.status == RUNNING,
                   runs.c.worker_id == sa.bindparam("b_worker"))
            .values({key: sa.bindparam(key, type_=runs.c[key].type) for key in values})
            .returning(*_END_COLUMNS))


def _finish_statement_pg(values: dict[str, Any], with_usage: bool) -> Any:
    """PostgreSQL: the run's end and its usage row in one statement (a data-modifying
    CTE), written only when the run was still running on this worker."""
    done = _finish_statement(values).cte("done")
    statement = sa.select(*[done.c[c.key] for c in _END_COLUMNS])
    if with_usage:
        columns = [c for c in usage_events.c if c.key != "id"]
        statement = statement.add_cte(usage_events.insert().from_select(
            [c.key for c in columns],
            sa.select(*[done.c.id if c.key == "ref_id" else sa.bindparam("u_" + c.key, type_=c.type)
                        for c in columns])).cte("usage_row"))
    return statement


def _safe_filename(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c for c in base if c.isalnum() or c in "._- ")[:200].strip(" .")


def _cursor_text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def _cursor_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("not an integer")
    return value


def numbered_page(page: int | None, page_size: int | None, *, cursor: str | None, offset: int | None,
                  limit: int | None) -> tuple[int | None, int]:
    """(offset, limit) of a list request: numbered page ``page`` (from 1) of ``page_size``
    rows, or the cursor/offset/limit given (limit 50 by default); never both kinds."""
    if page is None and page_size is None:
        return offset, 50 if limit is None else limit
    if cursor is not None or offset is not None or limit is not None:
        raise ValidationFailed("page and page_size cannot be combined with cursor, offset or limit: page with "
                               "one or the other", details={"field": "page"})
    page = 1 if page is None else page
    page_size = 50 if page_size is None else page_size
    if not 1 <= page_size <= MAX_LIMIT:
        raise ValidationFailed(f"page_size must be between 1 and {MAX_LIMIT}", code="invalid_limit",
                               details={"field": "page_size"})
    if not 1 <= page <= MAX_OFFSET // page_size:
        raise ValidationFailed(f"page must be between 1 and {MAX_OFFSET // page_size} (pages of {page_size})",
                               details={"field": "page"})
    return (page - 1) * page_size, page_size


def _cursor_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("not a number")
    return float(value)


def parse_time(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        raise ValidationFailed(f"{field} must be an RFC 3339 timestamp", details={"field": field}) from exc
