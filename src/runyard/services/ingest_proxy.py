"""The ingest proxy: auto-modelling pipeline runs (issue 17, the reference's ingestion proxy).

A proxy run is a run (``runs.type = 'ingest_proxy'``) with its own record in
``ingest_proxy_runs`` and an append-only stream of progress events. Its phases, in order:

- ``fetch``: the rows, given inline (stored when the run starts), or fetched by the worker
  from ``data_url`` under the outbound-host policy (size-capped, a JSON array of objects);
- ``model``: a schema proposed by the model from at most ``max_rows_for_modeling`` rows,
  evaluated by converting ``max_sample_rows`` rows and asked again with the evaluation's
  errors up to ``max_eval_retries`` times; ``predefined_schema`` skips the model, and with
  no model configured (or ``model: false``) the schema is inferred deterministically
  (``schema_source: "inferred_without_model"``);
- ``review`` (``enable_human_in_the_loop``): the run waits in ``waiting_for_input`` on a
  ``schema_review`` hook (and, before it, a ``clarification`` hook when the model asked);
- ``ingest``: the dataset made if needed (columns, field definitions, description) and the
  rows ingested through the dataset service, a normal ingestion with its record;
- ``ontology``: the ingestion's link suggestions, then the namespace's ontology curated.

Every phase acts under the starting key's grants (the key is re-read before each phase:
an expired or revoked key makes the run wait on a ``token_refresh`` hook). A phase done is
recorded with its results, so a run taken over after a node died resumes after it; the
ingestion carries an idempotency key, so a repeated ingest phase lands once.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, timedelta
from typing import Any

import httpx
import orjson
import sqlalchemy as sa

from runyard.data.coerce import coerce_rows
from runyard.data.infer import infer_schema
from runyard.data.types import COLUMN_TYPES, Column, column_name_error
from runyard.events import EventHub
from runyard.ids import new_id
from runyard.llm.prompts import render_prompt
from runyard.services.access import Permission, Principal
from runyard.services.datasets import DatasetService
from runyard.services.errors import (
    Conflict,
    DomainError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    ValidationFailed,
)
from runyard.services.ingestions import IngestionService
from runyard.services.llm import LLMService
from runyard.services.namespaces import NamespaceService, check_data_name
from runyard.services.outbound import OutboundPolicy
from runyard.services.runs import (
    CANCELLED,
    FAILED,
    RUNNING,
    SUCCEEDED,
    TERMINAL_STATUSES,
    WAITING,
    RunService,
    new_run_row,
)
from runyard.services.tokens import TokenService
from runyard.services.workspace_files import WorkspaceFileService
from runyard.store.blobs import BlobStore
from runyard.store.db import Database
from runyard.store.tables import runs, tokens
from runyard.store.tables_ingest_proxy import ingest_proxy_events, ingest_proxy_runs
from runyard.timeutil import rfc3339, utcnow

log = logging.getLogger("runyard.ingest_proxy")

START_PROXY_RUNS = Permission("member", "start ingest proxy runs")
ANSWER_HOOKS = Permission("member", "answer ingest proxy hooks")
RUN_TYPE = "ingest_proxy"
PHASES = ("fetch", "model", "review", "ingest", "ontology")
EVENT_TYPES = ("phase", "progress", "log", "hook", "complete", "error")
HOOK_KINDS = ("schema_review", "clarification", "token_refresh")
END_EVENTS = ("complete", "error")
MAX_ROWS = 100_000
MAX_DATA_BYTES = 32 * 1024 * 1024
MAX_FIELDS = 200
MAX_PROMPT_CHARS = 20_000  # a helper prompt or user prompt
MAX_TRACE_CHARS = 20_000  # a traced prompt or response is cut to this
MAX_CELL_CHARS = 200
MAX_RETRIES = 10
MAX_MODEL_ROWS = 500
MAX_RESUMES = 3  # a run taken over more often than this (it kills its node?) fails
FETCH_TIMEOUT_S = 30.0
MAX_REDIRECTS = 3
CURATION_WAIT_S = 120.0
SCHEMA_SOURCES = ("model", "predefined", "inferred_without_model", "reviewer")


class RunCancelled(Exception):
    """The run's cancel was asked for: the phase stops where it is."""


class WaitForHook(Exception):
    """The phase needs a person's answer: the run waits on ``hook``."""

    def __init__(self, hook: dict[str, Any]) -> None:
        super().__init__(hook["kind"])
        self.hook = hook


class Lost(Exception):
    """This driver no longer holds the run's lease: another node took it over."""


def _short(value: Any) -> Any:
    """A cell as the model is shown it: long text, and nested values long as JSON, cut."""
    if isinstance(value, (dict, list)):
        text = json.dumps(value, default=str, ensure_ascii=False)
        return value if len(text) <= MAX_CELL_CHARS else text[:MAX_CELL_CHARS] + "…"
    if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
        return value[:MAX_CELL_CHARS] + "…"
    return value


def _cut(text: str | None) -> str:
    text = text or ""
    return text if len(text) <= MAX_TRACE_CHARS else text[:MAX_TRACE_CHARS] + "…"


def normalise_schema(raw: Any, keys: list[str] | None = None, *, field: str = "schema") -> dict[str, Any]:
    """A schema as the proxy keeps it — ``{fields: [{name, type, description, source}],
    data_description, dataset_name?}`` — from the shapes callers send: that object, a list of
    fields, or a mapping of name to type (or to ``{type, description}``). 400 when it does not
    hold together (names, types, and each source among ``keys`` when they are known)."""
    data_description = ""
    dataset_name = None
    if isinstance(raw, dict) and "fields" in raw:
        data_description = str(raw.get("data_description") or raw.get("dataDescription") or "")
        dataset_name = raw.get("dataset_name") or raw.get("datasetName")
        fields_raw = raw["fields"]
    elif isinstance(raw, dict):
        fields_raw = [{"name": k, **(v if isinstance(v, dict) else {"type": v})} for k, v in raw.items()]
    else:
        fields_raw = raw
    if not isinstance(fields_raw, list) or not fields_raw:
        raise ValidationFailed(f"{field}: give at least one field", code="invalid_schema", details={"field": field})
    if len(fields_raw) > MAX_FIELDS:
        raise ValidationFailed(f"{field}: at most {MAX_FIELDS} fields", code="invalid_schema", details={"field": field})
    fields: list[dict[str, Any]] = []
    errors: list[str] = []
    for i, f in enumerate(fields_raw):
        if not isinstance(f, dict):
            errors.append(f"fields[{i}] is not an object")
            continue
        name = f.get("name")
        problem = column_name_error(name)
        if problem:
            errors.append(f"fields[{i}].name: {problem}")
            continue
        kind = f.get("type") or "string"
        if kind not in COLUMN_TYPES:
            errors.append(f"fields[{i}].type: {kind!r} is not one of {', '.join(COLUMN_TYPES)}")
        source = f.get("source") or name
        if not isinstance(source, str):
            errors.append(f"fields[{i}].source: not a string")
        elif keys is not None and source not in keys:
            errors.append(f"fields[{i}].source: {source!r} is not a key of the rows")
        fields.append({"name": name, "type": kind, "description": str(f.get("description") or "")[:2000],
                       "source": source})
    names = [f["name"].lower() for f in fields]
    if len(set(names)) != len(names):
        errors.append("field names must be unique (without case)")
    if errors:
        raise ValidationFailed(f"{field}: {'; '.join(errors[:5])}", code="invalid_schema",
                               details={"field": field, "errors": errors[:50]})
    out: dict[str, Any] = {"fields": fields, "data_description": data_description[:10_000]}
    if isinstance(dataset_name, str) and dataset_name:
        out["dataset_name"] = dataset_name
    return out


_TRUE = frozenset({"true", "yes", "y", "1"})
_FALSE = frozenset({"false", "no", "n", "0"})


def _cast(value: Any, kind: str) -> Any:
    """A text value read as the field's type when it reads as one (CSV-like sources give
    numbers as text); otherwise the value as it is, for the coercion to judge."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if kind == "int":
            return int(text) if text.lstrip("+-").isdigit() else value
        if kind == "float":
            return float(text.replace(",", "")) if text else None
        if kind == "bool":
            lowered = text.lower()
            return True if lowered in _TRUE else False if lowered in _FALSE else value
    except ValueError:
        return value
    return value


def convert(rows: list[dict[str, Any]], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows as the schema stores them: each field read from its source key, text read
    as the field's type where it can be."""
    fields = [(f["name"], f["source"], f["type"]) for f in schema["fields"]]
    return [{name: _cast(row.get(source), kind) for name, source, kind in fields} for row in rows]


def evaluate(rows: list[dict[str, Any]], schema: dict[str, Any]) -> list[str]:
    """What goes wrong converting ``rows`` to the schema's types (empty: nothing)."""
    columns = [Column(f["name"], f["type"]) for f in schema["fields"]]
    coerced = coerce_rows(convert(rows, schema), columns, on_error="skip", evolve=False)
    errors = []
    for failure in coerced.failed[:20]:
        errors.append(f"sample row {failure['index']}: {failure['errors']}")
    return errors


def inferred_schema(rows: list[dict[str, Any]]) -> dict[str, Any]:
    fields = []
    for column in infer_schema(rows):
        if column_name_error(column.name):
            continue  # a key that cannot be a column name (it is left out, not renamed)
        fields.append({"name": column.name, "type": column.type, "description": "", "source": column.name})
    if not fields:
        raise ValidationFailed("no key of the rows can be a column name", code="invalid_schema")
    return {"fields": fields, "data_description": ""}


def event_view(row: Any) -> dict[str, Any]:
    return {"index": row.idx, "type": row.type, "phase": row.phase, "message": row.message, "data": row.data,
            "at": rfc3339(row.at)}


def _rows_key(run_id: str) -> str:
    return f"ingest-proxy/{run_id}/rows.json"


def check_rows(data: Any, *, field: str = "data") -> list[dict[str, Any]]:
    if not isinstance(data, list) or not data:
        raise ValidationFailed(f"{field}: a non-empty JSON array of row objects", code="invalid_rows",
                               details={"field": field})
    if len(data) > MAX_ROWS:
        raise PayloadTooLarge(f"{field}: at most {MAX_ROWS} rows", details={"field": field, "max_rows": MAX_ROWS})
    bad = next((i for i, r in enumerate(data) if not isinstance(r, dict)), None)
    if bad is not None:
        raise ValidationFailed(f"{field}[{bad}] is not an object", code="invalid_rows", details={"field": field})
    return data


def parse_rows(body: bytes, name: str, *, field: str) -> list[dict[str, Any]]:
    """A file's rows: CSV or TSV by its name (values as text), else a JSON array or NDJSON."""
    if len(body) > MAX_DATA_BYTES:
        raise PayloadTooLarge(f"{field}: more than {MAX_DATA_BYTES} bytes",
                              details={"field": field, "max_bytes": MAX_DATA_BYTES})
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationFailed(f"{field}: not UTF-8 text", code="invalid_rows", details={"field": field}) from None
    lowered = name.lower()
    if lowered.endswith((".csv", ".tsv")):
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if lowered.endswith(".tsv") else ",")
        return check_rows([dict(r) for r in reader], field=field)
    try:
        if text.lstrip().startswith("["):
            rows = orjson.loads(text)
        else:
            rows = [orjson.loads(line) for line in text.splitlines() if line.strip()]
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(f"{field}: not a JSON array, NDJSON, CSV or TSV ({exc})", code="invalid_rows",
                               details={"field": field}) from None
    return check_rows(rows, field=field)


class IngestProxyService:
    def __init__(self, db: Database, blobs: BlobStore, hub: EventHub, runs_service: RunService,
                 datasets: DatasetService, ingestions: IngestionService, namespaces: NamespaceService,
                 llm: LLMService, tokens_service: TokenService, outbound: OutboundPolicy,
                 workspace_files: WorkspaceFileService | None = None) -> None:
        self.db = db
        self.blobs = blobs
        self.hub = hub
        self.runs = runs_service
        self.datasets = datasets
        self.ingestions = ingestions
        self.namespaces = namespaces
        self.llm = llm
        self.tokens = tokens_service
        self.outbound = outbound
        self.files = workspace_files
        self.clock = utcnow
        self.http_transport: httpx.BaseTransport | None = None  # tests may route fetches

    # -- starting ----------------------------------------------------------------------------
    def start(self, principal: Principal, *, namespace: str, dataset: str | None = None,
              data: list[Any] | None = None, data_url: str | None = None, workspace_file: str | None = None,
              user_prompt: str | None = None,
              model: bool = True, ingest: bool = True, ontology: bool = True, max_eval_retries: int = 3,
              max_rows_for_modeling: int = 20, max_sample_rows: int = 10, enable_human_in_the_loop: bool = False,
              predefined_schema: Any = None, explosion_helper_prompt: str | None = None,
              coalescence_helper_prompt: str | None = None, llm: dict[str, Any] | None = None,
              trigger: str = "api") -> dict[str, Any]:
        """Validate the request, store the inline rows, record the run and queue it for a driver.
        Nothing is fetched here: a ``data_url`` is only checked against the outbound policy."""
        START_PROXY_RUNS.check(principal)
        if principal.tools:
            raise PermissionDenied("a key restricted to some tools cannot start ingest proxy runs",
                                   code="restricted")
        check_data_name(namespace, "namespace")
        if dataset is not None:
            check_data_name(dataset, "dataset")
        given = [name for name, value in (("data", data), ("data_url", data_url), ("workspace_file", workspace_file))
                 if value is not None]
        if len(given) != 1:
            raise ValidationFailed("give exactly one of data, data_url or workspace_file" + (
                f" (given: {', '.join(given)})" if given else ""), code="invalid_data_source",
                details={"given": given})
        if not 0 <= max_eval_retries <= MAX_RETRIES:
            raise ValidationFailed(f"max_eval_retries is 0 to {MAX_RETRIES}", details={"field": "max_eval_retries"})
        for name, value in (("max_rows_for_modeling", max_rows_for_modeling), ("max_sample_rows", max_sample_rows)):
            if not 1 <= value <= MAX_MODEL_ROWS:
                raise ValidationFailed(f"{name} is 1 to {MAX_MODEL_ROWS}", details={"field": name})
        for name, text in (("user_prompt", user_prompt), ("explosion_helper_prompt", explosion_helper_prompt),
                           ("coalescence_helper_prompt", coalescence_helper_prompt)):
            if text is not None and len(text) > MAX_PROMPT_CHARS:
                raise ValidationFailed(f"{name} is at most {MAX_PROMPT_CHARS} characters", details={"field": name})
        llm = dict(llm or {})
        provider = llm.get("provider")
        if provider is not None and not isinstance(provider, str):
            raise ValidationFailed("llm.provider must be a provider's name", details={"field": "llm.provider"})
        schema = normalise_schema(predefined_schema, field="predefined_schema") if predefined_schema else None
        body = b""
        if data is not None:
            rows = check_rows(data)
            body = orjson.dumps(rows)
            if len(body) > MAX_DATA_BYTES:
                raise PayloadTooLarge(f"data: at most {MAX_DATA_BYTES} bytes of JSON",
                                      details={"field": "data", "max_bytes": MAX_DATA_BYTES})
        if data_url is not None:
            data_url = self.outbound.check(data_url, field="data_url")
        if workspace_file is not None:
            self._workspace_file(principal, workspace_file)  # readable by this key, not too large
        run_id = new_id("run")
        request = {"namespace": namespace, "dataset": dataset, "source": given[0], "data_url": data_url,
                   "workspace_file": workspace_file, "user_prompt": user_prompt, "model": model, "ingest": ingest,
                   "ontology": ontology, "max_eval_retries": max_eval_retries,
                   "max_rows_for_modeling": max_rows_for_modeling, "max_sample_rows": max_sample_rows,
                   "enable_human_in_the_loop": enable_human_in_the_loop, "predefined_schema": schema,
                   "explosion_helper_prompt": explosion_helper_prompt,
                   "coalescence_helper_prompt": coalescence_helper_prompt, "llm": llm}
        if body:
            self.blobs.put_bytes(_rows_key(run_id), body)
        now = self.clock()
        summary = {k: v for k, v in request.items() if k not in ("predefined_schema",)}
        run_row = new_run_row(
            id=run_id, workspace_id=principal.workspace_id, tool_id="", tool_name="ingest-proxy", tool_version=0,
            tool_version_id="", type=RUN_TYPE, status=RUNNING, inputs=summary, trigger=trigger,
            triggered_by=principal.user_id, token_id=principal.token_id, user_id=principal.user_id,
            created_at=now, queued_at=now, started_at=now)
        with self.db.write() as conn:
            conn.execute(runs.insert().values(**run_row))
            conn.execute(ingest_proxy_runs.insert().values(
                run_id=run_id, workspace_id=principal.workspace_id, user_id=principal.user_id or "",
                token_id=principal.token_id, namespace=namespace, dataset=dataset, request=request,
                state={"done": [], "answers": {}}, hook=None, trace={"model_calls": [], "steps": []}, phase=None,
                next_index=0, resumes=0, lease_owner=None, lease_expires_at=None, created_at=now, updated_at=now))
        self.append(run_id, "log", None, "run queued", {"source": request["source"]})
        self.hub.publish("ingest_proxy.resume", run_id)
        return self.get(principal, run_id)

    # -- reading -----------------------------------------------------------------------------
    def _rows(self, principal: Principal, run_id: str) -> tuple[Any, Any]:
        """(run row, proxy row) of a run of the caller's own: another user's is 404 as one that
        does not exist (its namespace may be one the caller cannot read)."""
        with self.db.read() as conn:
            found = conn.execute(sa.select(runs, ingest_proxy_runs.c.run_id.label("proxy_id"))
                                 .select_from(runs.join(ingest_proxy_runs, ingest_proxy_runs.c.run_id == runs.c.id))
                                 .where(runs.c.id == run_id, runs.c.workspace_id == principal.workspace_id)).first()
            proxy = conn.execute(sa.select(ingest_proxy_runs).where(ingest_proxy_runs.c.run_id == run_id)).first()
        if found is None or proxy is None or found.user_id != principal.user_id or principal.tools:
            raise NotFound(f"ingest proxy run {run_id!r} not found", code="run_not_found",
                           details={"run_id": run_id})
        return found, proxy

    def _view(self, run: Any, proxy: Any) -> dict[str, Any]:
        state = proxy.state or {}
        return {"object": "ingest_proxy_run", "id": run.id, "status": run.status, "phase": proxy.phase,
                "namespace": proxy.namespace, "dataset": state.get("dataset") or proxy.dataset,
                "phases_done": list(state.get("done") or []), "schema": state.get("schema"),
                "schema_source": state.get("schema_source"), "hook": proxy.hook, "events": proxy.next_index,
                "output": run.output, "error": run.error, "created_at": rfc3339(run.created_at),
                "finished_at": rfc3339(run.finished_at)}

    def get(self, principal: Principal, run_id: str) -> dict[str, Any]:
        return self._view(*self._rows(principal, run_id))

    def events(self, principal: Principal, run_id: str, start_index: int = 0, limit: int = 500
               ) -> tuple[list[dict[str, Any]], str]:
        """Events from ``start_index`` (at most ``limit``) and the run's status now."""
        run, _ = self._rows(principal, run_id)
        return self.events_of(run_id, start_index, limit), run.status

    def events_of(self, run_id: str, start_index: int, limit: int = 500) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            rows = conn.execute(sa.select(ingest_proxy_events).where(
                ingest_proxy_events.c.run_id == run_id, ingest_proxy_events.c.idx >= start_index)
                .order_by(ingest_proxy_events.c.idx).limit(limit)).all()
        return [event_view(r) for r in rows]

    def trace(self, principal: Principal, run_id: str) -> dict[str, Any]:
        """The model calls (prompt, response, tokens, ms), their tokens summed, and each phase's
        start and duration."""
        run, proxy = self._rows(principal, run_id)
        trace = proxy.trace or {}
        calls = list(trace.get("model_calls") or [])
        totals = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for call in calls:
            for key in totals:
                totals[key] += int((call.get("tokens") or {}).get(key) or 0)
        return {"object": "ingest_proxy_trace", "run_id": run.id, "status": run.status, "model_calls": calls,
                "tokens": totals, "steps": list(trace.get("steps") or [])}

    # -- events and the log ------------------------------------------------------------------
    def append(self, run_id: str, kind: str, phase: str | None, message: str,
               data: dict[str, Any] | None = None) -> int:
        """Append one event (the next index, taken in the same transaction) and log its line."""
        assert kind in EVENT_TYPES
        now = self.clock()
        with self.db.write() as conn:
            idx = conn.execute(ingest_proxy_runs.update().where(ingest_proxy_runs.c.run_id == run_id)
                               .values(next_index=ingest_proxy_runs.c.next_index + 1, updated_at=now)
                               .returning(ingest_proxy_runs.c.next_index)).scalar_one() - 1
            conn.execute(ingest_proxy_events.insert().values(run_id=run_id, idx=idx, type=kind, phase=phase,
                                                             message=message, data=data, at=now))
        self._log(run_id, f"{rfc3339(now)} [{phase or kind}] {message}\n")
        self.hub.publish(f"ingest_proxy.event:{run_id}", idx)
        return idx

    def _log(self, run_id: str, line: str) -> None:
        if not self.runs.append_log(run_id, line):
            log.error("ingest proxy run %s: its log could not be written", run_id)

    def ensure_end_event(self, run_id: str) -> None:
        """A run that ended without its last event (cancelled while it waited, failed by a sweep)
        gets one: followers of its stream stop on it."""
        with self.db.read() as conn:
            run = conn.execute(sa.select(runs.c.status, runs.c.error, runs.c.output).where(runs.c.id == run_id)).first()
            last = conn.execute(sa.select(ingest_proxy_events.c.type).where(ingest_proxy_events.c.run_id == run_id)
                                .order_by(ingest_proxy_events.c.idx.desc()).limit(1)).scalar()
        if run is None or run.status not in TERMINAL_STATUSES or last in END_EVENTS:
            return
        try:
            if run.status == SUCCEEDED:
                self.append(run_id, "complete", None, "the run succeeded", run.output or {})
            else:
                error = run.error or {}
                self.append(run_id, "error", None, error.get("message") or run.status,
                            {"code": error.get("type") or run.status, "status": run.status})
        except sa.exc.IntegrityError:
            pass  # another node appended it at the same index

    # -- hooks -------------------------------------------------------------------------------
    def answer_hook(self, principal: Principal, run_id: str, *, kind: str, hook_id: str | None = None,
                    approved: bool | None = None, schema: Any = None, answer: str | None = None,
                    token: str | None = None) -> dict[str, Any]:
        """Answer the hook the run waits on; 409 ``hook_not_waiting`` when it waits on none of
        that kind (or of that id). The run goes on (on a driver) once answered."""
        ANSWER_HOOKS.check(principal)
        if kind not in HOOK_KINDS:
            raise ValidationFailed(f"kind must be one of {', '.join(HOOK_KINDS)}", details={"field": "kind"})
        run, proxy = self._rows(principal, run_id)
        hook = proxy.hook
        if run.status != WAITING or hook is None or hook.get("kind") != kind or (
                hook_id is not None and hook_id != hook.get("id")):
            waiting = hook.get("kind") if hook and run.status == WAITING else None
            raise Conflict(f"the run does not wait for a {kind} answer" + (
                f" (it waits for a {waiting} answer, hook {hook.get('id')})" if waiting and hook else ""),
                code="hook_not_waiting", details={"status": run.status, "waiting_for": waiting})
        recorded: dict[str, Any] = {"kind": kind, "by": principal.user_id}
        new_token_id: str | None = None
        if kind == "schema_review":
            if approved is None and schema is None:
                raise ValidationFailed("a schema review answers approved (true or false) or a schema",
                                       details={"field": "approved"})
            recorded["approved"] = bool(approved) if approved is not None else True
            if schema is not None:
                keys = list((proxy.state or {}).get("keys") or []) or None
                checked = normalise_schema(schema, keys)
                errors = evaluate(self._load_rows(run_id)[: int(proxy.request["max_sample_rows"])], checked)
                if errors:
                    raise ValidationFailed(f"the schema does not fit the rows: {'; '.join(errors[:3])}",
                                           code="invalid_schema", details={"errors": errors})
                recorded["schema"] = checked
        elif kind == "clarification":
            if not isinstance(answer, str) or not answer.strip():
                raise ValidationFailed("a clarification answers with answer (text)", details={"field": "answer"})
            recorded["answer"] = answer.strip()[:MAX_PROMPT_CHARS]
        else:
            if not token:
                raise ValidationFailed("a token refresh hands a key in token", details={"field": "token"})
            try:
                fresh = self.tokens.authenticate(token)
            except DomainError as exc:
                raise ValidationFailed(f"the key handed in cannot be used: {exc.message}", code="invalid_refresh_token",
                                       details={"field": "token"}) from None
            if fresh.user_id != proxy.user_id or fresh.workspace_id != proxy.workspace_id:
                raise PermissionDenied("the key handed in belongs to another user than the one who started the run",
                                       code="token_user_mismatch")
            if fresh.tools:
                raise PermissionDenied("a key restricted to some tools cannot carry an ingest proxy run",
                                       code="restricted")
            new_token_id = fresh.token_id
            recorded["token_id"] = fresh.token_id
        state = dict(proxy.state or {})
        state["answers"] = {**(state.get("answers") or {}), hook["id"]: recorded}
        now = self.clock()
        with self.db.write() as conn:
            moved = conn.execute(runs.update().where(runs.c.id == run_id, runs.c.status == WAITING)
                                 .values(status=RUNNING)).rowcount
            if not moved:
                raise Conflict("the run no longer waits", code="hook_not_waiting", details={"status": run.status})
            values: dict[str, Any] = {"state": state, "hook": None, "updated_at": now}
            if new_token_id is not None:
                values["token_id"] = new_token_id
            conn.execute(ingest_proxy_runs.update().where(ingest_proxy_runs.c.run_id == run_id).values(**values))
        self.append(run_id, "log", hook.get("phase"), f"the {kind} hook {hook['id']} was answered",
                    {"hook_id": hook["id"], "kind": kind})
        self.hub.publish("ingest_proxy.resume", run_id)
        return self.get(principal, run_id)

    # -- the driver's side: leases -----------------------------------------------------------
    def claim(self, run_id: str, owner: str, lease_s: float) -> bool:
        """Take the run's lease (free, or expired: its holder died). A run taken over more than
        ``MAX_RESUMES`` times fails with a record instead."""
        now = self.clock()
        with self.db.write() as conn:
            taken = conn.execute(ingest_proxy_runs.update().where(
                ingest_proxy_runs.c.run_id == run_id,
                sa.or_(ingest_proxy_runs.c.lease_expires_at.is_(None), ingest_proxy_runs.c.lease_expires_at < now),
            ).values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_s),
                     resumes=ingest_proxy_runs.c.resumes + sa.case(
                         (ingest_proxy_runs.c.lease_owner.is_(None), 0), else_=1))
                .returning(ingest_proxy_runs.c.resumes)).first()
        if taken is None:
            return False
        if taken.resumes > MAX_RESUMES:
            self._end(run_id, FAILED, None, {"type": "worker_lost", "message": (
                f"the run was taken over {taken.resumes} times after its node stopped; given up"),
                "traceback": None})
            self.release(run_id, owner)
            self.ensure_end_event(run_id)
            return False
        if taken.resumes:
            self.append(run_id, "log", None, "resumed after the last completed phase (its node stopped)",
                        {"resumes": taken.resumes})
        return True

    def renew(self, run_ids: list[str], owner: str, lease_s: float) -> set[str]:
        """Extend the leases held; returns the ids still held."""
        if not run_ids:
            return set()
        with self.db.write() as conn:
            conn.execute(ingest_proxy_runs.update().where(ingest_proxy_runs.c.run_id.in_(run_ids),
                                                          ingest_proxy_runs.c.lease_owner == owner)
                         .values(lease_expires_at=self.clock() + timedelta(seconds=lease_s)))
            held = conn.execute(sa.select(ingest_proxy_runs.c.run_id).where(
                ingest_proxy_runs.c.run_id.in_(run_ids), ingest_proxy_runs.c.lease_owner == owner)).scalars().all()
        return set(held)

    def release(self, run_id: str, owner: str) -> None:
        with self.db.write() as conn:
            conn.execute(ingest_proxy_runs.update().where(ingest_proxy_runs.c.run_id == run_id,
                                                          ingest_proxy_runs.c.lease_owner == owner)
                         .values(lease_owner=None, lease_expires_at=None))

    def to_drive(self, limit: int = 100) -> list[str]:
        """Runs going with no live lease (new, answered, or whose node died); and ended runs
        missing their last event get it."""
        now = self.clock()
        with self.db.read() as conn:
            going = conn.execute(sa.select(runs.c.id).select_from(
                runs.join(ingest_proxy_runs, ingest_proxy_runs.c.run_id == runs.c.id)).where(
                runs.c.type == RUN_TYPE, runs.c.status == RUNNING,
                sa.or_(ingest_proxy_runs.c.lease_expires_at.is_(None), ingest_proxy_runs.c.lease_expires_at < now))
                .order_by(runs.c.id).limit(limit)).scalars().all()
            # Ended lately without their last event (cancelled while they waited, given up):
            # one query, not one per run.
            has_end = sa.exists().where(ingest_proxy_events.c.run_id == runs.c.id,
                                        ingest_proxy_events.c.type.in_(END_EVENTS))
            ended = conn.execute(sa.select(runs.c.id).where(
                runs.c.type == RUN_TYPE, runs.c.status.in_(TERMINAL_STATUSES),
                runs.c.finished_at > now - timedelta(hours=1), ~has_end)
                .order_by(runs.c.id.desc()).limit(limit)).scalars().all()
        for run_id in ended:
            self.ensure_end_event(run_id)
        return list(going)

    # -- the driver's side: executing --------------------------------------------------------
    def execute(self, run_id: str, owner: str, *, holds: Callable[[], bool] = lambda: True) -> str | None:
        """Run the phases not done yet, in order, until the run ends or waits. ``holds`` says
        whether this driver still holds the lease (checked between steps)."""
        with self.db.read() as conn:
            run = conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()
        if run is None or run.status in TERMINAL_STATUSES:
            self.ensure_end_event(run_id)
            return run.status if run is not None else None
        if run.status != RUNNING:
            return run.status
        try:
            for phase in PHASES:
                proxy = self._proxy(run_id)
                if phase in (proxy.state or {}).get("done", []):
                    continue
                self._checkpoint(run_id, holds)
                principal = self._acting(proxy)
                self._run_phase(phase, run_id, proxy, principal, holds)
            proxy = self._proxy(run_id)
            output = self._output(proxy)
            self.append(run_id, "complete", None, "the pipeline finished", output)
            return self._end(run_id, SUCCEEDED, output, None)
        except WaitForHook as wait:
            return self._wait(run_id, wait.hook)
        except RunCancelled:
            self._end(run_id, CANCELLED, None, {"type": "cancelled", "message": "cancelled by request",
                                                "traceback": None})
            self.ensure_end_event(run_id)
            return CANCELLED
        except Lost:
            return None
        except DomainError as exc:
            return self._fail(run_id, exc.code, exc.message, exc.details)
        except Exception as exc:  # a bug must not leave the run going forever
            log.exception("ingest proxy run %s failed", run_id)
            return self._fail(run_id, "internal_error", f"{type(exc).__name__}: {exc}", None)

    def _proxy(self, run_id: str) -> Any:
        with self.db.read() as conn:
            return conn.execute(sa.select(ingest_proxy_runs).where(ingest_proxy_runs.c.run_id == run_id)).one()

    def _checkpoint(self, run_id: str, holds: Callable[[], bool]) -> None:
        """Between steps: stop if the run's cancel was asked for, or another node holds it."""
        if not holds():
            raise Lost()
        with self.db.read() as conn:
            row = conn.execute(sa.select(runs.c.status, runs.c.cancel_requested).where(runs.c.id == run_id)).one()
        if row.cancel_requested or row.status == CANCELLED:
            raise RunCancelled()
        if row.status != RUNNING:
            raise Lost()

    def _acting(self, proxy: Any) -> Principal:
        """The starting key's principal as it is now; an expired or revoked key (or one of
        another user) makes the run wait for a fresh one."""
        with self.db.read() as conn:
            token = conn.execute(sa.select(tokens).where(tokens.c.id == proxy.token_id,
                                                         tokens.c.workspace_id == proxy.workspace_id)).first()
            user = self.tokens.users.by_id(conn, proxy.workspace_id, proxy.user_id) if token is not None else None
        reason = None
        if token is None or token.deleted_at is not None:
            reason = "the key that started the run was revoked"
        elif user is None:
            raise PermissionDenied("the user who started the run no longer exists", code="owner_revoked")
        elif token.expires_at is not None and _aware(token.expires_at) <= self.clock():
            reason = "the key that started the run has expired"
        if reason is not None:
            n = sum(1 for k in ((proxy.state or {}).get("answers") or {}) if k.startswith("token-")) + 1
            raise WaitForHook({"id": f"token-{n}", "kind": "token_refresh", "phase": proxy.phase,
                               "message": f"{reason}: hand a fresh key of the same user"})
        principal = TokenService._principal(token, user)
        if principal.tools:
            raise PermissionDenied("a key restricted to some tools cannot carry an ingest proxy run",
                                   code="restricted")
        return principal

    def _run_phase(self, phase: str, run_id: str, proxy: Any, principal: Principal,
                   holds: Callable[[], bool]) -> None:
        request = proxy.request
        if phase in ("ingest", "ontology") and not request["ingest"]:
            self._done(run_id, phase, {}, skipped=True)
            return
        if phase == "ontology" and not request["ontology"]:
            self._done(run_id, phase, {}, skipped=True)
            return
        if phase == "review" and not request["enable_human_in_the_loop"]:
            self._done(run_id, phase, {}, skipped=True)
            return
        started = self.clock()
        t0 = time.perf_counter()
        with self.db.write() as conn:
            conn.execute(ingest_proxy_runs.update().where(ingest_proxy_runs.c.run_id == run_id)
                         .values(phase=phase, updated_at=started))
        if proxy.phase != phase:  # not announced twice when a hook's answer resumes it
            self.append(run_id, "phase", phase, f"{phase} started")
        step = getattr(self, f"_phase_{phase}")
        changes = step(run_id, proxy, principal, holds)
        ms = round((time.perf_counter() - t0) * 1000, 3)
        self._done(run_id, phase, changes, step={"phase": phase, "started_at": rfc3339(started), "ms": ms})

    def _done(self, run_id: str, phase: str, changes: dict[str, Any], *, skipped: bool = False,
              step: dict[str, Any] | None = None) -> None:
        proxy = self._proxy(run_id)
        state = {**(proxy.state or {}), **changes}
        state["done"] = [*(proxy.state or {}).get("done", []), phase]
        values: dict[str, Any] = {"state": state, "updated_at": self.clock()}
        if step is not None:
            trace = dict(proxy.trace or {})
            trace["steps"] = [*(trace.get("steps") or []), step]
            values["trace"] = trace
        with self.db.write() as conn:
            conn.execute(ingest_proxy_runs.update().where(ingest_proxy_runs.c.run_id == run_id).values(**values))
        if not skipped:
            self.append(run_id, "progress", phase, f"{phase} done", {"phase": phase, "ms": (step or {}).get("ms")})

    def _wait(self, run_id: str, hook: dict[str, Any]) -> str:
        with self.db.write() as conn:
            moved = conn.execute(runs.update().where(runs.c.id == run_id, runs.c.status == RUNNING,
                                                     runs.c.cancel_requested.is_(False))
                                 .values(status=WAITING)).rowcount
            if moved:
                conn.execute(ingest_proxy_runs.update().where(ingest_proxy_runs.c.run_id == run_id)
                             .values(hook=hook, updated_at=self.clock()))
        if not moved:  # its cancel came meanwhile: end it as asked
            status = self._end(run_id, CANCELLED, None, {"type": "cancelled", "message": "cancelled by request",
                                                         "traceback": None})
            self.ensure_end_event(run_id)
            return status
        self.append(run_id, "hook", hook.get("phase"), hook.get("message") or f"waiting for a {hook['kind']} answer",
                    {"hook": hook})
        return WAITING

    def _fail(self, run_id: str, code: str, message: str, details: Any) -> str:
        data: dict[str, Any] = {"code": code}
        if details:
            data["details"] = details
        status = self._end(run_id, FAILED, None, {"type": code, "message": message, "traceback": None})
        if status == FAILED:
            self.append(run_id, "error", self._proxy(run_id).phase, message, data)
        else:
            self.ensure_end_event(run_id)
        return status

    def _end(self, run_id: str, status: str, output: Any, error: dict[str, Any] | None) -> str:
        with self.db.write() as conn:
            won = conn.execute(runs.update().where(runs.c.id == run_id, runs.c.status.in_([RUNNING, WAITING]))
                               .values(status=status, output=output, error=error, finished_at=self.clock(),
                                       lease_expires_at=None)).rowcount
            current = conn.execute(sa.select(runs.c.status).where(runs.c.id == run_id)).scalar_one()
        if won:
            self.hub.publish(f"run.done:{run_id}", status)
            self.blobs.delete_prefix(f"ingest-proxy/{run_id}/")
        return str(current)

    def _output(self, proxy: Any) -> dict[str, Any]:
        state = proxy.state or {}
        ingestion = state.get("ingestion") or {}
        return {"namespace": proxy.namespace, "dataset": state.get("dataset"), "schema": state.get("schema"),
                "schema_source": state.get("schema_source"), "rows": state.get("row_count"),
                "ingestion_id": ingestion.get("ingestion_id"), "ingested": ingestion.get("ingested"),
                "failed": ingestion.get("failed"), "curation": state.get("curation")}

    # -- phases ------------------------------------------------------------------------------
    def _load_rows(self, run_id: str) -> list[dict[str, Any]]:
        try:
            return orjson.loads(self.blobs.get_bytes(_rows_key(run_id)))
        except FileNotFoundError:
            return []

    def _phase_fetch(self, run_id: str, proxy: Any, principal: Principal, holds: Callable[[], bool]) -> dict:
        request = proxy.request
        if request["source"] == "data_url":
            rows = self._fetch(request["data_url"])
            self.blobs.put_bytes(_rows_key(run_id), orjson.dumps(rows))
            self.append(run_id, "progress", "fetch", f"fetched {len(rows)} rows from {request['data_url']}",
                        {"rows": len(rows)})
        elif request["source"] == "workspace_file":
            name = request["workspace_file"]
            path = self._workspace_file(principal, name)["path"]
            with open(path, "rb") as fh:
                rows = parse_rows(fh.read(MAX_DATA_BYTES + 1), name, field="workspace_file")
            self.blobs.put_bytes(_rows_key(run_id), orjson.dumps(rows))
            self.append(run_id, "progress", "fetch", f"read {len(rows)} rows from workspace file {name}",
                        {"rows": len(rows)})
        else:
            rows = self._load_rows(run_id)
            if not rows:
                raise ValidationFailed("the run's rows are no longer stored", code="data_missing")
        keys: list[str] = []
        seen: set[str] = set()
        for row in rows[:10_000]:
            for key in row:
                if key not in seen:
                    seen.add(key)
                    keys.append(key)
        return {"row_count": len(rows), "keys": keys}

    def _fetch(self, url: str) -> list[dict[str, Any]]:
        """GET a JSON array under the outbound policy: each hop checked (redirects followed by
        hand), the body capped."""
        current = url
        with httpx.Client(timeout=FETCH_TIMEOUT_S, follow_redirects=False, transport=self.http_transport) as client:
            for _ in range(MAX_REDIRECTS + 1):
                current = self.outbound.check(current, field="data_url")
                try:
                    with client.stream("GET", current, headers={"Accept": "application/json"}) as response:
                        if response.is_redirect:
                            location = response.headers.get("location")
                            if not location:
                                break
                            current = str(response.url.join(location))
                            continue
                        if response.status_code != 200:
                            raise ValidationFailed(f"data_url answered {response.status_code}",
                                                   code="data_fetch_failed", details={"status": response.status_code})
                        body = bytearray()
                        for chunk in response.iter_bytes():
                            body.extend(chunk)
                            if len(body) > MAX_DATA_BYTES:
                                raise PayloadTooLarge(f"data_url: more than {MAX_DATA_BYTES} bytes",
                                                      details={"field": "data_url", "max_bytes": MAX_DATA_BYTES})
                except httpx.HTTPError as exc:
                    raise ValidationFailed(f"data_url could not be fetched: {exc}", code="data_fetch_failed") from None
                try:
                    rows = orjson.loads(bytes(body))
                except orjson.JSONDecodeError as exc:
                    raise ValidationFailed(f"data_url did not answer JSON: {exc}", code="invalid_rows") from None
                return check_rows(rows, field="data_url")
        raise ValidationFailed(f"data_url redirected more than {MAX_REDIRECTS} times", code="data_fetch_failed")

    def _workspace_file(self, principal: Principal, name: str) -> dict[str, Any]:
        """The workspace file's record (read under ``principal``), at most MAX_DATA_BYTES."""
        if self.files is None:
            raise ValidationFailed("this server has no workspace files", code="invalid_data_source")
        record = self.files.get(principal, name)
        if int(record.get("size") or 0) > MAX_DATA_BYTES:
            raise PayloadTooLarge(f"workspace_file: more than {MAX_DATA_BYTES} bytes",
                                  details={"field": "workspace_file", "max_bytes": MAX_DATA_BYTES})
        return record

    def _phase_model(self, run_id: str, proxy: Any, principal: Principal, holds: Callable[[], bool]) -> dict:
        request, state = proxy.request, proxy.state or {}
        rows = self._load_rows(run_id)
        keys = list(state.get("keys") or [])
        sample_rows = rows[: int(request["max_sample_rows"])]
        if request.get("predefined_schema"):
            schema = normalise_schema(request["predefined_schema"], keys, field="predefined_schema")
            errors = evaluate(sample_rows, schema)
            if errors:
                raise ValidationFailed(f"the predefined schema does not fit the rows: {'; '.join(errors[:3])}",
                                       code="schema_evaluation_failed", details={"errors": errors})
            self.append(run_id, "progress", "model", "the predefined schema is used (no model call)",
                        {"schema": schema})
            return {"schema": schema, "schema_source": "predefined"}
        llm_settings = request.get("llm") or {}
        provider = llm_settings.get("provider")
        chosen = self.llm.resolve(principal, provider, required=provider is not None) if request["model"] else None
        if chosen is None:
            schema = inferred_schema(rows)
            reason = "the model phase is off" if not request["model"] else "no language model is configured"
            self.append(run_id, "progress", "model", f"{reason}: the schema was inferred from the values",
                        {"schema": schema, "schema_source": "inferred_without_model"})
            return {"schema": schema, "schema_source": "inferred_without_model"}
        answers = state.get("answers") or {}
        clarifications = [(a.get("question"), a["answer"]) for k, a in answers.items()
                          if k.startswith("clarify-") and "answer" in a]
        questions = (state.get("questions") or [])
        clarified = [{"question": q, "answer": a} for (q, a) in
                     zip(questions, [a for _, a in clarifications], strict=False)] if clarifications else []
        errors: list[str] = []
        attempts = int(request["max_eval_retries"]) + 1
        for attempt in range(1, attempts + 1):
            self._checkpoint(run_id, holds)
            proposal = self._propose(run_id, principal, chosen, llm_settings.get("model"), request, rows, keys,
                                     clarified, errors, attempt)
            asked = [str(q) for q in (proposal.get("questions") or []) if str(q).strip()][:5]
            if asked and request["enable_human_in_the_loop"] and not clarifications:
                with self.db.write() as conn:
                    conn.execute(ingest_proxy_runs.update().where(ingest_proxy_runs.c.run_id == run_id).values(
                        state={**state, "questions": asked}))
                raise WaitForHook({"id": "clarify-1", "kind": "clarification", "phase": "model",
                                   "questions": asked, "message": "the model asks: " + " / ".join(asked)})
            try:
                schema = normalise_schema(proposal, keys, field="proposal")
                errors = evaluate(sample_rows, schema)
            except ValidationFailed as exc:
                errors = list((exc.details or {}).get("errors") or [exc.message])
            if not errors:
                self.append(run_id, "progress", "model", f"the proposed schema fits {len(sample_rows)} sample rows "
                            f"(attempt {attempt})", {"schema": schema, "attempt": attempt})
                return {"schema": schema, "schema_source": "model"}
            self.append(run_id, "progress", "model", f"attempt {attempt}: the proposal does not fit: "
                        f"{'; '.join(errors[:3])}", {"attempt": attempt, "errors": errors[:20]})
        raise ValidationFailed(f"no proposed schema fit the sample rows after {attempts} attempts: "
                               f"{'; '.join(errors[:3])}", code="schema_evaluation_failed",
                               details={"errors": errors[:20]})

    def _propose(self, run_id: str, principal: Principal, provider: Any, model: str | None, request: dict[str, Any],
                 rows: list[dict[str, Any]], keys: list[str], clarified: list[dict[str, Any]], errors: list[str],
                 attempt: int) -> dict[str, Any]:
        sample = [{k: _short(v) for k, v in r.items()} for r in rows[: int(request["max_rows_for_modeling"])]]
        helpers = ""
        for label, key in (("How to split nested records into rows (explosion)", "explosion_helper_prompt"),
                           ("How to merge records into one (coalescence)", "coalescence_helper_prompt")):
            if request.get(key):
                helpers += f"\n{label}: {request[key]}\n"
        answers = "".join(f"\nThe person was asked: {c['question']}\nThey answered: {c['answer']}\n"
                          for c in clarified)
        error_text = ""
        if errors:
            error_text = ("\nYour previous proposal failed evaluation; fix these problems:\n- "
                          + "\n- ".join(errors[:20]) + "\n")
        messages = [
            {"role": "system", "content": render_prompt("ingest_proxy_model.system", types=", ".join(COLUMN_TYPES))},
            {"role": "user", "content": render_prompt(
                "ingest_proxy_model.user", namespace=request["namespace"],
                user_prompt=request.get("user_prompt") or "(none given: infer them from the data)",
                keys=json.dumps(keys), sample_count=len(sample), row_count=len(rows),
                sample=json.dumps(sample, default=str, ensure_ascii=False), helpers=helpers, answers=answers,
                errors=error_text)}]
        try:
            result = self.llm.chat(principal, "ingest_proxy.model", messages, provider=provider, model=model,
                                   json_answer=True, ref_id=run_id)
        except DomainError as exc:
            self._record_call(run_id, messages, None, None, attempt, error=exc.message)
            raise
        self._record_call(run_id, messages, result.trace, result.parsed, attempt)
        if not isinstance(result.parsed, dict):
            return {}
        return result.parsed

    def _record_call(self, run_id: str, messages: list[dict[str, Any]], trace: dict[str, Any] | None,
                     parsed: Any, attempt: int, *, error: str | None = None) -> None:
        prompt = "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)
        call = {"phase": "model", "attempt": attempt, "prompt": _cut(prompt),
                "response": _cut((trace or {}).get("response")), "tokens": (trace or {}).get("usage") or {},
                "ms": (trace or {}).get("ms"), "model": (trace or {}).get("model"),
                "provider": (trace or {}).get("provider")}
        if error is not None:
            call["error"] = error
        proxy = self._proxy(run_id)
        current = dict(proxy.trace or {})
        current["model_calls"] = [*(current.get("model_calls") or []), call]
        with self.db.write() as conn:
            conn.execute(ingest_proxy_runs.update().where(ingest_proxy_runs.c.run_id == run_id)
                         .values(trace=current))

    def _phase_review(self, run_id: str, proxy: Any, principal: Principal, holds: Callable[[], bool]) -> dict:
        state = proxy.state or {}
        answer = (state.get("answers") or {}).get("review-1")
        if answer is None:
            sample = convert(self._load_rows(run_id)[: int(proxy.request["max_sample_rows"])], state["schema"])
            raise WaitForHook({"id": "review-1", "kind": "schema_review", "phase": "review",
                               "schema": state["schema"], "schema_source": state.get("schema_source"),
                               "sample_rows": sample, "message": "review the proposed schema"})
        if not answer.get("approved") and answer.get("schema") is None:
            raise ValidationFailed("the reviewer rejected the proposed schema", code="schema_rejected")
        if answer.get("schema") is not None:
            schema = dict(answer["schema"])
            if not schema.get("dataset_name") and state["schema"].get("dataset_name"):
                schema["dataset_name"] = state["schema"]["dataset_name"]  # the proposal's name stands
            self.append(run_id, "progress", "review", "the reviewer's schema replaces the proposal",
                        {"schema": schema})
            return {"schema": schema, "schema_source": "reviewer"}
        self.append(run_id, "progress", "review", "the reviewer approved the schema")
        return {}

    def _phase_ingest(self, run_id: str, proxy: Any, principal: Principal, holds: Callable[[], bool]) -> dict:
        request, state = proxy.request, proxy.state or {}
        schema = state["schema"]
        namespace = proxy.namespace
        dataset = proxy.dataset or schema.get("dataset_name") or f"auto_{run_id[-10:].lower()}"
        try:
            check_data_name(dataset, "dataset")
        except ValidationFailed:
            dataset = f"auto_{run_id[-10:].lower()}"
        try:
            self.namespaces.get(principal, namespace)
        except NotFound:
            try:
                self.namespaces.create(principal, name=namespace, private=True)
                self.append(run_id, "progress", "ingest", f"namespace {namespace} created")
            except Conflict:
                pass  # made meanwhile
        columns = [{"name": f["name"], "type": f["type"]} for f in schema["fields"]]
        definitions = {f["name"]: f["description"] for f in schema["fields"] if f.get("description")}
        try:
            self.datasets.create(principal, namespace, name=dataset, description=schema.get("data_description") or "",
                                 field_definitions=definitions or None, columns=columns)
            self.append(run_id, "progress", "ingest", f"dataset {namespace}/{dataset} created",
                        {"dataset": dataset, "columns": columns})
        except Conflict:
            self.append(run_id, "progress", "ingest", f"dataset {namespace}/{dataset} exists: rows are appended",
                        {"dataset": dataset})
        with self.db.write() as conn:  # the name chosen, before anything lands: a resumed phase uses it
            conn.execute(ingest_proxy_runs.update().where(ingest_proxy_runs.c.run_id == run_id)
                         .values(dataset=dataset))
        self._checkpoint(run_id, holds)
        rows = convert(self._load_rows(run_id), schema)
        result = self.datasets.ingest_rows(principal, namespace, dataset, rows, create=False, on_error="skip",
                                           idempotency_key=f"ingest-proxy:{run_id}",
                                           curate=bool(request["ontology"]))
        failed = len(result.get("failed") or [])
        self.append(run_id, "progress", "ingest", f"ingested {result['ingested']} rows ({failed} failed)",
                    {"ingestion_id": result.get("ingestion_id"), "ingested": result["ingested"], "failed": failed})
        return {"dataset": dataset, "ingestion": {"ingestion_id": result.get("ingestion_id"),
                                                  "ingested": result["ingested"], "failed": failed}}

    def _phase_ontology(self, run_id: str, proxy: Any, principal: Principal, holds: Callable[[], bool]) -> dict:
        """The ingestion asked for curation: wait for its link suggestions and the curation
        that follows them, and report it."""
        ingestion = (proxy.state or {}).get("ingestion") or {}
        ingestion_id = ingestion.get("ingestion_id")
        if not ingestion_id or not ingestion.get("ingested"):
            self.append(run_id, "progress", "ontology", "nothing was ingested: no curation")
            return {"curation": {"status": "skipped"}}
        deadline = time.monotonic() + CURATION_WAIT_S
        curation: dict[str, Any] = {}
        while time.monotonic() < deadline:
            self._checkpoint(run_id, holds)
            view = self.ingestions.get(principal, ingestion_id)
            curation = (view.get("attributes") or {}).get("curation") or {}
            if curation.get("status") not in (None, "pending"):
                break
            time.sleep(0.25)
        else:
            curation = {"status": "pending", "message": f"not curated within {CURATION_WAIT_S:.0f} s; "
                                                        "it goes on after the run"}
        message = (f"ontology curated: {len(curation.get('activated') or [])} link(s) activated"
                   if curation.get("status") == "succeeded" else f"ontology curation {curation.get('status')}")
        self.append(run_id, "progress", "ontology", message, {"curation": curation})
        return {"curation": curation}


def _aware(value: Any) -> Any:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
