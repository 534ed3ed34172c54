"""Ingestions of files: durable records, processed in the background by workers.

A file (a small multipart upload or a completed multipart upload) becomes a ``pending``
record; a worker claims it under a lease, parses it in the sandbox (``data.jobs``), checks
the parts that came out and commits them as one new snapshot. A worker that dies leaves
the dataset at its previous snapshot; its lease runs out and the ingestion is retried, or
failed with the reason once its attempts are spent.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from runyard.data.manifest import Part
from runyard.data.types import METADATA_COLUMNS, Column
from runyard.ids import new_id
from runyard.services.access import Principal
from runyard.services.datasets import DatasetService, SchemaConflict, appended
from runyard.services.entities import check_config, entities_key, report, resolve_and_commit
from runyard.services.errors import Conflict, DomainError, NotFound, ValidationFailed
from runyard.services.leases import claim_oldest_pending
from runyard.services.pagination import Page, check_limit, decode_cursor, encode_cursor
from runyard.services.sandboxed import JobFailed, SandboxedJobs
from runyard.services.storage import StorageQuotaExceeded
from runyard.services.usage import UsageRecorder
from runyard.store.blobs import BlobStore
from runyard.store.db import Database
from runyard.store.tables_data import datasets, ingestions, namespaces
from runyard.timeutil import rfc3339, utcnow

log = logging.getLogger(__name__)
FINISHED = ("succeeded", "failed", "cancelled")
ID_BLOCK = 1 << 36  # row ids reserved for one file ingestion (ids need not be dense)
MAX_ATTEMPTS = 3
MODEL_CHUNK_ROWS = 2000  # rows of a file taken through model steps at a time
FILE_FORMATS = ("csv", "tsv", "json", "ndjson", "parquet", "xlsx")


def check_pipeline(options: dict[str, Any] | None) -> None:
    """Refuse an invalid ``options.pipeline`` before anything is stored (400 ``invalid_pipeline``
    with the step's index). Only checked here; the steps run in the sandbox."""
    from runyard.data.pipeline import PipelineError, validate

    raw = (options or {}).get("pipeline")
    if raw is None:
        return
    try:
        validate(raw)
    except PipelineError as exc:
        raise ValidationFailed(str(exc), code="invalid_pipeline",
                               details={"field": "options.pipeline", "step": exc.step}) from None


def has_model_steps(pipeline: Any) -> bool:
    """Whether a pipeline holds a model step (False for an invalid one: ``check_pipeline`` says why)."""
    from runyard.data.pipeline import PipelineError
    from runyard.data.pipeline import has_model_steps as found

    try:
        return bool(pipeline) and found(pipeline)
    except PipelineError:
        return False


def sandboxed_options(options: dict[str, Any]) -> dict[str, Any]:
    """A file ingestion's options for the sandbox: a pipeline with model steps is cut before
    the first (the rest runs on the trusted side, ``IngestionService._ingest_modelled``)."""
    from runyard.data.pipeline import validate

    raw = options.get("pipeline")
    if not has_model_steps(raw):
        return options
    first = next(s.index for s in validate(raw) if s.model)
    return {**options, "pipeline": list(raw[:first]) or None}


def source_key(ingestion_id: str) -> str:
    return f"ingestions/{ingestion_id}/source"


def rejects_key(ingestion_id: str) -> str:
    return f"ingestions/{ingestion_id}/rejects.ndjson"


class IngestionService:
    def __init__(self, db: Database, blobs: BlobStore, datasets_service: DatasetService, jobs: SandboxedJobs,
                 usage: UsageRecorder, *, memory_mb: int = 2048, timeout_s: float = 3600.0,
                 lease_s: float = 30.0, max_decompressed_bytes: int = 20 << 30,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.blobs = blobs
        self.datasets = datasets_service
        self.jobs = jobs
        self.usage = usage
        self.memory_mb = memory_mb
        self.timeout_s = timeout_s
        self.lease_s = lease_s
        self.max_decompressed_bytes = max_decompressed_bytes
        self.clock = clock
        self.wakeup = threading.Event()  # set when there is new work for this node's workers

    # -- views and access ------------------------------------------------------------------
    def _view(self, conn: sa.Connection, row: Any) -> dict[str, Any]:
        names = conn.execute(sa.select(namespaces.c.name, datasets.c.name.label("dataset")).select_from(
            datasets.join(namespaces, namespaces.c.id == datasets.c.namespace_id)).where(
            datasets.c.id == row.dataset_id)).first()
        return {"id": row.id, "object": "ingestion", "namespace": names.name if names else None,
                "dataset": names.dataset if names else None, "kind": row.kind, "status": row.status,
                "status_message": row.status_message, "processed_bytes": row.processed_bytes,
                "expected_total_bytes": row.expected_total_bytes, "processed_rows": row.processed_rows,
                "failed_rows": row.failed_rows, "attributes": row.attributes or {}, "seen": row.seen,
                "attempt": row.attempt, "snapshot": row.snapshot, "created_at": rfc3339(row.created_at),
                "started_at": rfc3339(row.started_at), "finished_at": rfc3339(row.finished_at)}

    def _visible(self, conn: sa.Connection, principal: Principal, ingestion_id: str, wanted: str = "read") -> Any:
        """An ingestion the principal may see: it can read its dataset (``wanted``: write to
        retry or cancel), or, once the dataset is gone, it started it (or is an admin)."""
        row = conn.execute(sa.select(ingestions).where(ingestions.c.id == ingestion_id,
                                                       ingestions.c.workspace_id == principal.workspace_id)).first()
        if row is not None:
            names = conn.execute(sa.select(namespaces.c.name, datasets.c.name.label("dataset")).select_from(
                datasets.join(namespaces, namespaces.c.id == datasets.c.namespace_id)).where(
                datasets.c.id == row.dataset_id)).first()
            try:
                if names is not None:
                    self.datasets.resolve(conn, principal, names.name, names.dataset, wanted)
                    return row
                if row.user_id == principal.user_id or (principal.role == "admin" and not principal.grants):
                    return row
            except NotFound:
                pass
        raise NotFound(f"ingestion {ingestion_id!r} not found", code="ingestion_not_found")

    def get(self, principal: Principal, ingestion_id: str) -> dict[str, Any]:
        with self.db.read() as conn:
            return self._view(conn, self._visible(conn, principal, ingestion_id))

    def list(self, principal: Principal, namespace: str, name: str, *, limit: int = 20) -> list[dict[str, Any]]:
        if not 1 <= limit <= 100:
            raise ValidationFailed("limit must be 1-100", details={"field": "limit"})
        with self.db.read() as conn:
            _, row = self.datasets.resolve(conn, principal, namespace, name, "read")
            rows = conn.execute(sa.select(ingestions).where(ingestions.c.dataset_id == row.id)
                                .order_by(ingestions.c.id.desc()).limit(limit)).all()
            return [self._view(conn, r) for r in rows]

    def wait(self, principal: Principal, ingestion_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """The ingestion once finished, or as it is when ``timeout_s`` has passed."""
        deadline = time.monotonic() + max(0.0, min(timeout_s, 300.0))
        delay = 0.05
        while True:
            view = self.get(principal, ingestion_id)
            if view["status"] in FINISHED or time.monotonic() >= deadline:
                return view
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 1.5, 0.5)

    def seen(self, principal: Principal, ingestion_id: str) -> dict[str, Any]:
        with self.db.write() as conn:
            row = self._visible(conn, principal, ingestion_id)
            conn.execute(ingestions.update().where(ingestions.c.id == row.id).values(seen=True))
        return self.get(principal, ingestion_id)

    def cancel(self, principal: Principal, ingestion_id: str) -> dict[str, Any]:
        """A pending ingestion is cancelled at once; one being processed stops at its next check."""
        with self.db.write() as conn:
            row = self._visible(conn, principal, ingestion_id, "write")
            if row.status == "pending":
                conn.execute(ingestions.update().where(ingestions.c.id == row.id, ingestions.c.status == "pending")
                             .values(status="cancelled", status_message="cancelled before it started",
                                     finished_at=self.clock()))
            elif row.status == "processing":
                conn.execute(ingestions.update().where(ingestions.c.id == row.id).values(cancel_requested=True))
            else:
                raise Conflict(f"the ingestion has already {row.status}", code="ingestion_finished")
        return self.get(principal, ingestion_id)

    def retry(self, principal: Principal, ingestion_id: str) -> dict[str, Any]:
        """Run a failed or cancelled file ingestion again (its file is kept until it succeeds)."""
        with self.db.write() as conn:
            row = self._visible(conn, principal, ingestion_id, "write")
            if row.status not in ("failed", "cancelled"):
                raise Conflict(f"only a failed or cancelled ingestion can be retried (this one is {row.status})",
                               code="ingestion_not_retryable")
            if row.kind == "rows" or not self.blobs.exists(source_key(row.id)):
                raise Conflict("this ingestion's data is not kept: send it again", code="ingestion_not_retryable")
            conn.execute(ingestions.update().where(ingestions.c.id == row.id).values(
                status="pending", status_message=None, attempt=row.attempt + 1,
                max_attempts=row.attempt + MAX_ATTEMPTS, cancel_requested=False, worker_id=None,
                lease_expires_at=None, started_at=None, finished_at=None, processed_rows=0, failed_rows=0,
                processed_bytes=0, **({"attributes": {**(row.attributes or {}), "curation": {"status": "pending"}}}
                                      if ((row.source or {}).get("options") or {}).get("curate") else {})))
        self.wakeup.set()
        return self.get(principal, ingestion_id)

    def rejects(self, principal: Principal, ingestion_id: str, *, cursor: str | None = None,
                limit: int = 100) -> Page:
        """Rejected lines (line number, reason, text), in file order."""
        check_limit(limit)
        with self.db.read() as conn:
            row = self._visible(conn, principal, ingestion_id)
        return self._lines(rejects_key(row.id), cursor, limit)

    def entities(self, principal: Principal, ingestion_id: str, *, cursor: str | None = None,
                 limit: int = 100) -> Page:
        """The entity resolution report, one entry per ingested row ({index, entity_id, action}),
        in row order; empty for an ingestion without entity resolution."""
        check_limit(limit)
        with self.db.read() as conn:
            row = self._visible(conn, principal, ingestion_id)
        return self._lines(entities_key(row.id), cursor, limit)

    def _lines(self, key: str, cursor: str | None, limit: int) -> Page:
        """A page of an NDJSON blob's entries, the cursor being the next line's number."""
        start = 0
        if cursor:
            values = decode_cursor(cursor)
            if len(values) != 1 or not isinstance(values[0], int) or values[0] < 0:
                raise ValidationFailed("cursor is malformed", code="invalid_cursor")
            start = values[0]
        if not self.blobs.exists(key):
            return Page([], None, 0)
        items: list[dict[str, Any]] = []
        more = False
        with self.blobs.open(key) as fh:
            for number, line in enumerate(fh):
                if number < start:
                    continue
                if len(items) == limit:
                    more = True
                    break
                items.append(orjson.loads(line))
        return Page(items, encode_cursor([start + limit]) if more else None, None)

    # -- preview ---------------------------------------------------------------------------
    def preview(self, *, source: Path | None, rows: list[Any] | None, options: dict[str, Any] | None,
                limit: int, sample: int, principal: Principal | None = None, guidance: Any = None) -> dict[str, Any]:
        """Rows and inferred columns of a file (parsed in the sandbox) or of JSON rows (through
        the sandbox too when a pipeline is given: its steps are the user's code). A pipeline
        with model steps runs them on the previewed rows (at most ``limit``) under
        ``principal``, their calls in the answer's ``trace``."""
        from runyard.data.pipeline import has_model_steps

        check_pipeline(options)
        raw = (options or {}).get("pipeline")
        if raw and has_model_steps(raw):
            if principal is None:
                raise ValidationFailed("model steps need the caller's key", code="invalid_pipeline")
            return self._model_preview(principal, source=source, rows=rows, options=options or {}, limit=limit,
                                       sample=sample, guidance=guidance)
        if source is None and not (options or {}).get("pipeline"):
            from runyard.data.jobs import preview
            found = preview(rows=rows or [], limit=limit, sample=sample)
        else:
            inputs: dict[str, Any] = {"options": options or {}, "limit": limit, "sample": sample,
                                      "memory_limit_mb": min(self.memory_mb, 1024),
                                      "max_decompressed_bytes": self.max_decompressed_bytes}
            if source is None:
                inputs["rows"] = rows or []
            else:
                inputs["source"] = str(source)
            job = self.jobs.run("preview", inputs, read_paths=[str(source)] if source is not None else [],
                                memory_mb=min(self.memory_mb, 1024) + 512, timeout_s=120)
            found = job.value
            job.cleanup()
        if "error" in found:
            raise ValidationFailed(found["error"].get("message") or "the file cannot be parsed",
                                   code=found["error"].get("code") or "invalid_file",
                                   details={"step": found["error"]["step"]} if "step" in found["error"] else None)
        return found

    def _model_preview(self, principal: Principal, *, source: Path | None, rows: list[Any] | None,
                       options: dict[str, Any], limit: int, sample: int, guidance: Any) -> dict[str, Any]:
        """A preview through a pipeline with model steps: a file is parsed (and its steps before
        the first model step run) in the sandbox; the previewed rows then go through the rest
        (model steps here, deterministic ones in the sandbox). Rejects of the later steps are
        numbered by previewed row."""
        from runyard.data.infer import infer_schema
        from runyard.data.jobs import _inferred, _jsonable
        from runyard.data.pipeline import validate
        from runyard.services.model_steps import Trace

        raw = list(options["pipeline"])
        self.datasets.model_steps.check(principal, raw, guidance)
        rejects: list[dict[str, Any]] = []
        first = 0
        if source is not None:
            first = next(s.index for s in validate(raw) if s.model)
            parsed = self.preview(source=source, rows=None, options={**options, "pipeline": raw[:first] or None},
                                  limit=limit, sample=sample)
            base, rejects = list(parsed["rows"]), list(parsed.get("rejects") or [])
        else:
            base = [r for r in rows or [] if isinstance(r, dict)][:limit]
        trace = Trace()
        table, _, failed = self.datasets.run_pipeline(principal, base, raw[first:], guidance=guidance, trace=trace,
                                                      first_index=first)
        rejects += [{"line": f["index"] + 1, "reason": "; ".join(f"{k}: {v}" for k, v in f["errors"].items()),
                     "text": orjson.dumps(f["row"], default=str).decode()[:1024]} for f in failed]
        out = [{k: _jsonable(v) for k, v in r.items()} for r in table.to_pylist()]
        return {"columns": [_inferred(c) for c in infer_schema(out, sample=sample)], "rows": out[:limit],
                "rejects": rejects[:100], "trace": trace.to_dict()}

    # -- submitting ------------------------------------------------------------------------
    def submit_file(self, principal: Principal, namespace: str, name: str, *, source: Path, filename: str,
                    options: dict[str, Any] | None = None, create: bool = True, kind: str = "file",
                    label: str | None = None, move: bool = True) -> dict[str, Any]:
        """Queue ``source`` (moved into the blob store) for ingestion into the dataset."""
        fmt = (options or {}).get("format")
        if fmt is not None and fmt not in FILE_FORMATS:
            raise ValidationFailed(f"format must be one of {', '.join(FILE_FORMATS)}", code="unsupported_format",
                                   details={"field": "options.format"})
        if has_model_steps((options or {}).get("pipeline")):  # 409 llm_not_configured before anything is kept
            check_pipeline(options)
            if (options or {}).get("entity_resolution"):
                raise ValidationFailed("a file ingestion with model steps does not resolve entities too: ingest "
                                       "first, then resolve with a second ingestion", code="invalid_pipeline",
                                       details={"field": "options.entity_resolution"})
            self.datasets.model_steps.check(principal, (options or {})["pipeline"])
        check_pipeline(options)
        check_config((options or {}).get("entity_resolution"), "options.entity_resolution")
        size = source.stat().st_size
        if size == 0:
            raise ValidationFailed("the file is empty (0 bytes): nothing to ingest", code="empty_file")
        row, _ = self.datasets.ensure(principal, namespace, name, create=create)
        self.datasets.check_quota(principal.workspace_id, size)
        ingestion_id = new_id("ing")
        self.blobs.put_file(source_key(ingestion_id), source, move=move)
        now = self.clock()
        with self.db.write() as conn:
            conn.execute(ingestions.insert().values(
                id=ingestion_id, workspace_id=principal.workspace_id, dataset_id=row.id,
                namespace_id=row.namespace_id, user_id=principal.user_id, token_id=principal.token_id, kind=kind,
                status="pending", source={"filename": filename, "options": options or {}, "size": size},
                processed_bytes=0, expected_total_bytes=size, processed_rows=0, failed_rows=0,
                attributes={"filename": filename, **({"name": label} if label else {}),
                            **({"curation": {"status": "pending"}} if (options or {}).get("curate") else {})},
                seen=False,
                attempt=1, max_attempts=MAX_ATTEMPTS, cancel_requested=False, created_at=now))
            conn.execute(datasets.update().where(datasets.c.id == row.id).values(last_ingestion_id=ingestion_id))
            view = self._view(conn, conn.execute(sa.select(ingestions).where(ingestions.c.id == ingestion_id)).one())
        self.wakeup.set()
        return view

    # -- processing (workers) --------------------------------------------------------------
    def claim(self, worker_id: str) -> Any:
        """The oldest pending ingestion, now this worker's (None if there is none)."""
        return claim_oldest_pending(self.db, ingestions, status="processing", worker_id=worker_id, now=self.clock(),
                                    lease_s=self.lease_s)

    def renew(self, ingestion_id: str, worker_id: str, processed_bytes: int | None = None) -> bool:
        """Extend the lease; False when the ingestion was cancelled (or taken from us)."""
        values: dict[str, Any] = {"lease_expires_at": self.clock() + timedelta(seconds=self.lease_s)}
        if processed_bytes is not None:
            values["processed_bytes"] = processed_bytes
        with self.db.write() as conn:
            conn.execute(ingestions.update().where(ingestions.c.id == ingestion_id,
                                                   ingestions.c.worker_id == worker_id,
                                                   ingestions.c.status == "processing").values(**values))
            row = conn.execute(sa.select(ingestions.c.cancel_requested, ingestions.c.status,
                                         ingestions.c.worker_id).where(ingestions.c.id == ingestion_id)).first()
        return row is not None and row.status == "processing" and row.worker_id == worker_id \
            and not row.cancel_requested

    def reap(self) -> int:
        """Ingestions whose worker's lease ran out: retried, or failed once out of attempts."""
        now = self.clock()
        with self.db.write() as conn:
            lost = conn.execute(sa.select(ingestions).where(ingestions.c.status == "processing",
                                                            ingestions.c.lease_expires_at < now)).all()
            for row in lost:
                if row.cancel_requested:
                    values = {"status": "cancelled", "status_message": "cancelled", "finished_at": now}
                elif row.attempt < row.max_attempts:
                    values = {"status": "pending", "attempt": row.attempt + 1, "worker_id": None,
                              "status_message": f"attempt {row.attempt} lost its worker; retrying"}
                else:
                    values = {"status": "failed", "finished_at": now,
                              "status_message": f"the worker processing it was lost ({row.attempt} attempts)"}
                conn.execute(ingestions.update().where(ingestions.c.id == row.id,
                                                       ingestions.c.status == "processing").values(**values))
        if lost:
            self.wakeup.set()
        return len(lost)

    def _finish(self, ingestion_id: str, worker_id: str, **values: Any) -> None:
        with self.db.write() as conn:
            conn.execute(ingestions.update().where(ingestions.c.id == ingestion_id,
                                                   ingestions.c.worker_id == worker_id).values(
                finished_at=self.clock(), lease_expires_at=None, **values))

    def process(self, row: Any, worker_id: str) -> None:
        """Parse, check and commit one claimed ingestion; every outcome ends in its record."""
        stop = threading.Event()
        progress = {"bytes": 0}

        def keep_lease() -> None:
            while not stop.wait(max(1.0, self.lease_s / 3)):
                if not self.renew(row.id, worker_id, progress["bytes"] or None):
                    cancelled.set()
                    return

        cancelled = threading.Event()
        renewer = threading.Thread(target=keep_lease, name=f"lease-{row.id}", daemon=True)
        renewer.start()
        try:
            outcome = self._ingest(row, worker_id, cancelled, progress)
        except JobFailed as exc:
            if cancelled.is_set():
                outcome = {"status": "cancelled", "status_message": "cancelled"}
            else:
                outcome = {"status": "failed", "status_message": exc.message}
        except DomainError as exc:
            outcome = {"status": "failed", "status_message": exc.message}
        except Exception as exc:
            log.exception("ingestion %s failed", row.id)
            outcome = {"status": "failed", "status_message": f"internal error: {type(exc).__name__}: {exc}"}
        finally:
            stop.set()
        curate = bool(((row.source or {}).get("options") or {}).get("curate"))
        if curate and outcome["status"] != "succeeded":
            outcome["attributes"] = {**(outcome.get("attributes") or row.attributes or {}),
                                     "curation": {"status": "skipped", "reason": f"the ingestion {outcome['status']}"}}
        self._finish(row.id, worker_id, **outcome)
        if outcome["status"] == "succeeded":
            self.blobs.path(source_key(row.id)).unlink(missing_ok=True)  # kept for retries until then
            self.datasets.on_ingested(row.workspace_id, row.dataset_id, row.user_id,  # links: services.links
                                      curate_ingestion=row.id if curate else None)

    def _ingest(self, row: Any, worker_id: str, cancelled: threading.Event,
                progress: dict[str, int]) -> dict[str, Any]:
        with self.db.read() as conn:
            dataset = conn.execute(sa.select(datasets).where(datasets.c.id == row.dataset_id)).first()
        if dataset is None:
            return {"status": "cancelled", "status_message": "the dataset was deleted"}
        source = self.blobs.path(source_key(row.id))
        if not source.exists():
            return {"status": "failed", "status_message": "the uploaded file is gone"}
        first_id = self.datasets.reserve_ids(dataset.id, ID_BLOCK)
        size = int(row.expected_total_bytes or source.stat().st_size)

        def on_event(event: dict[str, Any]) -> None:
            if event.get("type") == "progress":
                progress["bytes"] = int(float(event.get("fraction") or event.get("value") or 0) * size)

        options = dict((row.source or {}).get("options") or {})
        on_error = options.pop("on_error", "skip")
        resolution = check_config(options.pop("entity_resolution", None))  # resolved here, not in the sandbox
        job = self.jobs.run("ingest_file", {
            "source": str(source), "filename": (row.source or {}).get("filename") or "upload",
            "options": sandboxed_options(options), "columns": dataset.columns or [], "first_id": first_id,
            "ingestion_id": row.id, "ingested_at": self.clock().isoformat(), "on_error": on_error,
            "memory_limit_mb": self.memory_mb, "max_decompressed_bytes": self.max_decompressed_bytes,
            "emit_rows": has_model_steps(options.get("pipeline"))},
            read_paths=[str(source)], memory_mb=self.memory_mb,
            timeout_s=self.timeout_s, on_event=on_event, cancelled=cancelled)
        try:
            result = job.value
            if "error" in result:
                error = result["error"]
                return {"status": "failed", "status_message": f"{error.get('code')}: {error.get('message')}",
                        "attributes": {**(row.attributes or {}), "error_code": error.get("code")}}
            if has_model_steps(options.get("pipeline")):
                return self._ingest_modelled(row, dataset, job.output_dir, result, options, on_error, first_id,
                                             cancelled, size)
            parts, columns = self._checked_parts(job.output_dir, result, first_id)
            rejects = job.output_dir / "rejects.ndjson"
            if rejects.exists() and rejects.stat().st_size:
                self.blobs.put_file(rejects_key(row.id), rejects, move=True)
            if cancelled.is_set():
                return {"status": "cancelled", "status_message": "cancelled"}
            try:  # the parts' own size, known now (the file's was checked when it was queued)
                self.datasets.check_quota(row.workspace_id, sum(path.stat().st_size for path, _ in parts))
            except StorageQuotaExceeded as exc:  # nothing committed; the job's dir goes with its parts
                return {"status": "failed", "status_message": f"{exc.code}: {exc.message}",
                        "attributes": {**(row.attributes or {}), "error_code": exc.code}}
            target = self.datasets.parts_dir(dataset.id)
            target.mkdir(parents=True, exist_ok=True)
            for path, _ in parts:
                os.replace(path, target / path.name)
            published = [p for _, p in parts]
            resolved: dict[str, Any] = {}
            try:
                if resolution is not None:
                    raw = [(target / Path(p.key).name, p) for p in published]
                    published = []  # resolve_and_commit removes the raw parts whatever happens
                    manifest, outcome = resolve_and_commit(self.datasets, dataset.id, row.id, raw, columns, resolution,
                                                           memory_mb=min(self.memory_mb, 2048),
                                                           values=lambda m: {"last_ingestion_id": row.id})
                    resolved = {"entity_resolution": report(resolution, outcome)}
                else:
                    manifest = self.datasets.commit(dataset.id,
                                                    lambda current: appended(current, published, columns),
                                                    values=lambda m: {"last_ingestion_id": row.id})
            except ValidationFailed as exc:  # a key column the file does not have
                return {"status": "failed", "status_message": f"{exc.code}: {exc.message}",
                        "attributes": {**(row.attributes or {}), "error_code": exc.code}}
            except (SchemaConflict, NotFound) as exc:
                for p in published:
                    (target / Path(p.key).name).unlink(missing_ok=True)
                if isinstance(exc, SchemaConflict):
                    return {"status": "failed", "status_message": f"column {exc} was given another type by a "
                            "concurrent ingestion; retry this one"}
                return {"status": "cancelled", "status_message": "the dataset was deleted"}
            rows = sum(p.rows for _, p in parts)
            self.usage.record(row.workspace_id, "ingested_rows", rows, ref_id=row.id, user_id=row.user_id)
            self.usage.record(row.workspace_id, "ingested_bytes", size, ref_id=row.id, user_id=row.user_id)
            return {"status": "succeeded", "status_message": None, "processed_rows": rows,
                    "failed_rows": int(result.get("rejects") or 0), "processed_bytes": size,
                    "snapshot": manifest.version,
                    "attributes": {**(row.attributes or {}), "rejects": int(result.get("rejects") or 0), **resolved}}
        finally:
            job.cleanup()

    def _ingest_modelled(self, row: Any, dataset: Any, output_dir: Path, result: dict[str, Any],
                         options: dict[str, Any], on_error: str, first_id: int, cancelled: threading.Event,
                         size: int) -> dict[str, Any]:
        """The rest of a file ingestion whose pipeline has model steps. The sandbox parsed the
        file and ran the steps before the first model step, writing the rows it kept; here
        they go, ``MODEL_CHUNK_ROWS`` at a time, through the rest of the pipeline (model steps
        in this process, deterministic ones in the sandbox), are fitted to the dataset's
        columns, written as parts and committed as one snapshot. The model calls are the
        ingestion's ``attributes.trace``; every call of a step failing fails the ingestion."""
        from runyard.data.jobs import conform
        from runyard.data.parts import write_part
        from runyard.data.pipeline import validate
        from runyard.services.llm import ModelCallFailed
        from runyard.services.model_steps import Guidance, Trace

        raw = list(options["pipeline"])
        first = next(s.index for s in validate(raw) if s.model)
        # The ingesting user in its workspace: model steps only resolve its providers and meter its tokens.
        principal = Principal(token_id=row.token_id or "", workspace_id=row.workspace_id, role="member",
                              user_id=row.user_id)
        guidance = Guidance(data_description=dataset.description or None,
                            field_definitions={str(k): str(v or "") for k, v in
                                               dict(dataset.field_definitions or {}).items()} or None)
        trace = Trace()
        rows_path = (output_dir / str(result.get("rows_file") or "")).resolve()
        if rows_path.parent != output_dir.resolve() or not rows_path.is_file() or rows_path.is_symlink():
            raise DomainError("the parser did not write its rows", code="invalid_job_output")
        target = self.datasets.parts_dir(dataset.id)
        target.mkdir(parents=True, exist_ok=True)
        columns = [Column.from_dict(c) for c in dataset.columns or []]
        written: list[Part] = []
        rejected = int(result.get("rejects") or 0)
        next_id = first_id
        ingested_at = self.clock()

        def undo() -> None:
            for part in written:
                (target / Path(part.key).name).unlink(missing_ok=True)

        def failed(message: str, code: str) -> dict[str, Any]:
            undo()
            return {"status": "failed", "status_message": f"{code}: {message}",
                    "attributes": {**(row.attributes or {}), "error_code": code, "trace": trace.to_dict()}}

        try:
            with open(rows_path, "rb") as fh, open(output_dir / "rejects.ndjson", "ab") as rejects:
                while chunk := [orjson.loads(line) for _, line in zip(range(MODEL_CHUNK_ROWS), fh, strict=False)]:
                    if cancelled.is_set():
                        undo()
                        return {"status": "cancelled", "status_message": "cancelled"}
                    lines = [int(c["line"]) for c in chunk]
                    rows = [c["row"] for c in chunk]
                    table, origin, bad = self.datasets.run_pipeline(principal, rows, raw[first:], guidance=guidance,
                                                                    trace=trace, ref_id=row.id, first_index=first)
                    fitted, columns, unfit = conform(table, columns)
                    bad = sorted(bad + [{"index": origin[i], "row": rows[origin[i]], "errors": errs}
                                        for i, errs in unfit.items()], key=lambda f: f["index"])
                    if bad and on_error == "abort":
                        first_bad = bad[0]
                        return failed(f"row {lines[first_bad['index']]}: " + "; ".join(
                            f"{k}: {v}" for k, v in first_bad["errors"].items()), "rows_rejected")
                    for f in bad:
                        rejected += 1
                        rejects.write(orjson.dumps({
                            "line": lines[f["index"]], "reason": "; ".join(f"{k}: {v}" for k, v in f["errors"].items()),
                            "text": orjson.dumps(f["row"], default=str).decode()[:1024]}) + b"\n")
                    if fitted.num_rows:
                        if next_id + fitted.num_rows > first_id + ID_BLOCK:
                            return failed("the file holds more rows than one ingestion takes", "too_many_rows")
                        _, part = write_part(fitted, target, first_id=next_id, ingestion_id=row.id,
                                             ingested_at=ingested_at, columns=columns)
                        written.append(part)
                        next_id += fitted.num_rows
        except ModelCallFailed as exc:
            return failed(exc.message, exc.code)
        except (ValidationFailed, DomainError) as exc:
            return failed(exc.message, exc.code)
        except BaseException:
            undo()
            raise
        rejects_file = output_dir / "rejects.ndjson"
        if rejects_file.exists() and rejects_file.stat().st_size:
            self.blobs.put_file(rejects_key(row.id), rejects_file, move=True)
        try:
            manifest = self.datasets.commit(dataset.id, lambda current: appended(current, written, columns),
                                            values=lambda m: {"last_ingestion_id": row.id})
        except (SchemaConflict, NotFound) as exc:
            undo()
            if isinstance(exc, SchemaConflict):
                return {"status": "failed", "status_message": f"column {exc} was given another type by a "
                        "concurrent ingestion; retry this one", "attributes": {**(row.attributes or {}),
                                                                                "trace": trace.to_dict()}}
            return {"status": "cancelled", "status_message": "the dataset was deleted"}
        stored = sum(p.rows for p in written)
        self.usage.record(row.workspace_id, "ingested_rows", stored, ref_id=row.id, user_id=row.user_id)
        self.usage.record(row.workspace_id, "ingested_bytes", size, ref_id=row.id, user_id=row.user_id)
        return {"status": "succeeded", "status_message": None, "processed_rows": stored, "failed_rows": rejected,
                "processed_bytes": size, "snapshot": manifest.version,
                "attributes": {**(row.attributes or {}), "rejects": rejected, "trace": trace.to_dict()}}

    @staticmethod
    def _checked_parts(output_dir: Path, result: dict[str, Any],
                       first_id: int) -> tuple[list[tuple[Path, Part]], list[Column]]:
        """The parts a job reports, each checked against the file itself: it exists in the
        job's output, its row count and id range are what it says and within the block the
        job was given, and its columns are the metadata ones plus declared columns."""
        columns = [Column.from_dict(c) for c in result.get("columns") or []]
        declared = {c.name for c in columns}
        out: list[tuple[Path, Part]] = []
        parts_dir = (output_dir / "parts").resolve()
        for raw in result.get("parts") or []:
            path = (parts_dir / str(raw.get("file", ""))).resolve()
            if path.parent != parts_dir or not path.is_file() or path.is_symlink():
                raise DomainError("the parser reported a part it did not write", code="invalid_job_output")
            meta = pq.read_metadata(path)
            names = set(meta.schema.names)
            part = Part.from_dict({k: v for k, v in raw.items() if k != "file"})
            if meta.num_rows != part.rows or not set(METADATA_COLUMNS) <= names or not names - set(
                    METADATA_COLUMNS) <= declared or not (first_id <= part.min_id <= part.max_id < first_id + ID_BLOCK):
                raise DomainError("a part the parser wrote does not match its report", code="invalid_job_output")
            ids = pq.read_table(path, columns=["_id"]).column(0)
            bounds = pc.min_max(ids).as_py()
            if bounds["min"] != part.min_id or bounds["max"] != part.max_id:
                raise DomainError("a part's row ids are not what the parser reported", code="invalid_job_output")
            out.append((path, Part(key=f"parts/{path.name}", rows=part.rows, bytes=path.stat().st_size,
                                   min_id=part.min_id, max_id=part.max_id, ingestion_id=part.ingestion_id,
                                   created_at=part.created_at)))
        return out, columns
