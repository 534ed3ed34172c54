"""Cleaning tasks (issue 17): the model proposes a cleaning transform of a dataset as one SQL
statement; the transform runs as untrusted work in the sandbox and the trusted worker commits
its output as a new dataset, which must not exist yet.

A task is a durable record. ``submit`` authorizes (read the source, write in the output
namespace, the output name unused, a provider configured) and queues it (``pending``); a
data worker claims it under a lease and:

1. ``proposing``: asks the model, with the source's columns and a few sample rows read under
   the key's own grants, for ``{"sql", "explanation"}``: one SELECT over the table ``source``
   applying every prompt in order. The SQL must pass the read-only guard of ``POST /query``
   (``check_sql``) and read ``source`` alone.
2. ``running``: the SQL runs in the sandbox (``data.jobs.clean``) over the source's pinned
   snapshot: the child reads only those parts and writes result parts to its own dir. The
   worker checks every part, creates the output dataset (409 ``dataset_exists`` if it was made
   meanwhile: a race never overwrites) and commits the parts as its first snapshot, through
   the same path as an ingestion (statistics, catalog, link suggestions follow).
3. ``succeeded``, or ``failed`` with ``error {code, message}``; nothing is saved on failure.

The task acts as the key that asked (its grants, its user's role now); a key revoked meanwhile
fails the task. A worker that dies leaves its lease to run out: the upkeep sweep fails the task
as ``worker_lost``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from runyard.data.cleaning import SOURCE_NAMESPACE, SOURCE_TABLE
from runyard.data.sql import QueryRejected, check_sql, referenced_datasets
from runyard.ids import new_id
from runyard.llm.prompts import render_prompt
from runyard.services.access import Principal
from runyard.services.datasets import DatasetService, appended
from runyard.services.errors import Conflict, DomainError, NotFound, ValidationFailed
from runyard.services.ingestions import ID_BLOCK, IngestionService
from runyard.services.leases import claim_oldest_pending
from runyard.services.llm import LLMService
from runyard.services.namespaces import check_data_name, same_name
from runyard.services.sandboxed import SandboxedJobs
from runyard.services.tokens import TokenService
from runyard.services.usage import UsageRecorder
from runyard.store.db import Database
from runyard.store.tables import tokens
from runyard.store.tables_cleaning import cleaning_tasks
from runyard.store.tables_data import datasets, namespaces
from runyard.timeutil import as_utc, rfc3339, utcnow

log = logging.getLogger(__name__)
STATUSES = ("pending", "proposing", "running", "succeeded", "failed")
FINISHED = ("succeeded", "failed")
MAX_PROMPTS = 10
MAX_PROMPT_CHARS = 2_000
SAMPLE_ROWS = 5
MAX_CELL_CHARS = 200


class CleaningFailed(DomainError):
    """A task's step that failed: its code and message go into the task's ``error``."""

    status = 400
    code = "cleaning_failed"


def check_prompts(prompts: Any) -> list[str]:
    if not isinstance(prompts, list) or not 1 <= len(prompts) <= MAX_PROMPTS:
        raise ValidationFailed(f"prompts: 1 to {MAX_PROMPTS} cleaning steps, in order", code="invalid_prompts",
                               details={"field": "prompts"})
    out = []
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValidationFailed(f"prompts[{i}] is empty: each prompt describes one cleaning step",
                                   code="invalid_prompts", details={"field": f"prompts.{i}"})
        if len(prompt) > MAX_PROMPT_CHARS:
            raise ValidationFailed(f"prompts[{i}] is longer than {MAX_PROMPT_CHARS} characters",
                                   code="invalid_prompts", details={"field": f"prompts.{i}"})
        out.append(prompt.strip())
    return out


def checked_transform(sql: Any) -> str:
    """The model's SQL if it is one read-only SELECT over ``source`` alone, else CleaningFailed
    with the guard's code (``read_only_sql``, ``forbidden_function``, ``unknown_dataset``, …)."""
    if not isinstance(sql, str) or not sql.strip():
        raise CleaningFailed('the model\'s answer has no "sql" string', code="llm_invalid_response")
    try:
        checked = check_sql(sql)
        tables = referenced_datasets(checked, SOURCE_NAMESPACE)
    except QueryRejected as exc:
        raise CleaningFailed(f"the model's SQL was refused, nothing ran: {exc.message}", code=exc.code) from None
    others = [f"{ns}.{name}" for ns, name in tables
              if (ns.casefold(), name.casefold()) != (SOURCE_NAMESPACE, SOURCE_TABLE)]
    if others:
        raise CleaningFailed(f"the model's SQL reads {', '.join(others)}: a cleaning transform reads only "
                             f"the table {SOURCE_TABLE}", code="unknown_dataset")
    return checked


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
        return value[:MAX_CELL_CHARS] + "…"
    return value


class CleaningService:
    def __init__(self, db: Database, datasets_service: DatasetService, llm: LLMService, jobs: SandboxedJobs,
                 tokens_service: TokenService, usage: UsageRecorder, queries: Any, *, memory_mb: int = 2048,
                 timeout_s: float = 600.0, lease_s: float = 30.0, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.datasets = datasets_service
        self.namespaces = datasets_service.namespaces
        self.llm = llm
        self.jobs = jobs
        self.tokens = tokens_service
        self.usage = usage
        self.queries = queries  # services.queries.QueryService: the sample rows, under the key's grants
        self.memory_mb = memory_mb
        self.timeout_s = timeout_s
        self.lease_s = lease_s
        self.clock = clock
        self.wakeup = threading.Event()

    # -- views and access --------------------------------------------------------------------
    @staticmethod
    def _view(row: Any) -> dict[str, Any]:
        return {"id": row.id, "object": "cleaning_task", "status": row.status,
                "source": {"namespace": row.source_namespace, "dataset": row.source_dataset,
                           "snapshot": row.source_snapshot},
                "output": {"namespace": row.output_namespace, "dataset": row.output_dataset,
                           "dataset_id": row.output_dataset_id},
                "prompts": list(row.prompts or []), "sql": row.sql, "explanation": row.explanation,
                "error": row.error, "provider": row.provider, "model": row.model, "usage": row.usage or {},
                "input_rows": row.input_rows, "output_rows": row.output_rows, "user_id": row.user_id,
                "created_at": rfc3339(row.created_at), "started_at": rfc3339(row.started_at),
                "finished_at": rfc3339(row.finished_at)}

    def _source_names(self, conn: sa.Connection, dataset_id: str) -> Any:
        return conn.execute(sa.select(namespaces.c.name, datasets.c.name.label("dataset")).select_from(
            datasets.join(namespaces, namespaces.c.id == datasets.c.namespace_id)).where(
            datasets.c.id == dataset_id)).first()

    def _visible(self, conn: sa.Connection, principal: Principal, task_id: str) -> Any:
        """A task the principal may see: it can read the source dataset, or (the source gone)
        it asked for it or is an unrestricted admin. Any other is 404, as a missing one."""
        row = conn.execute(sa.select(cleaning_tasks).where(
            cleaning_tasks.c.id == task_id, cleaning_tasks.c.workspace_id == principal.workspace_id)).first()
        if row is not None:
            names = self._source_names(conn, row.source_dataset_id)
            try:
                if names is not None:
                    self.datasets.resolve(conn, principal, names.name, names.dataset, "read")
                    return row
                if row.user_id == principal.user_id or (principal.role == "admin" and not principal.grants):
                    return row
            except DomainError:
                pass
        raise NotFound(f"cleaning task {task_id!r} not found", code="cleaning_task_not_found")

    def get(self, principal: Principal, task_id: str) -> dict[str, Any]:
        with self.db.read() as conn:
            return self._view(self._visible(conn, principal, task_id))

    def wait(self, principal: Principal, task_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """The task once finished, or as it is when ``timeout_s`` (at most 300) has passed."""
        deadline = time.monotonic() + max(0.0, min(timeout_s, 300.0))
        delay = 0.05
        while True:
            view = self.get(principal, task_id)
            if view["status"] in FINISHED or time.monotonic() >= deadline:
                return view
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 1.5, 0.5)

    def _check_output_free(self, conn: sa.Connection, principal: Principal, namespace: str, name: str) -> None:
        ns = self.namespaces.require(conn, principal, namespace, "write")
        if conn.execute(sa.select(datasets.c.id).where(datasets.c.namespace_id == ns.row.id,
                                                       same_name(datasets.c.name, name))).first():
            raise Conflict(f"dataset {namespace}/{name} already exists: a cleaning task writes a new dataset",
                           code="dataset_exists", details={"namespace": namespace, "dataset": name})

    # -- submitting ----------------------------------------------------------------------------
    def submit(self, principal: Principal, namespace: str, dataset: str, *, prompts: list[str],
               output_namespace: str, output_dataset: str, provider: str | None = None,
               model: str | None = None) -> dict[str, Any]:
        """Queue a cleaning task (``pending``); refusals answer before anything is stored."""
        steps = check_prompts(prompts)
        check_data_name(output_dataset, "dataset")
        with self.db.read() as conn:
            _, source = self.datasets.resolve(conn, principal, namespace, dataset, "read")
            self._check_output_free(conn, principal, output_namespace, output_dataset)
        self.llm.resolve(principal, provider)  # 409 llm_not_configured, 404 for an unknown provider
        task_id = new_id("cln")
        now = self.clock()
        with self.db.write() as conn:
            conn.execute(cleaning_tasks.insert().values(
                id=task_id, workspace_id=principal.workspace_id, source_dataset_id=source.id,
                source_namespace=namespace, source_dataset=dataset, output_namespace=output_namespace,
                output_dataset=output_dataset, prompts=steps, status="pending", provider=provider,
                model=model, usage={}, user_id=principal.user_id, token_id=principal.token_id, created_at=now))
            row = conn.execute(sa.select(cleaning_tasks).where(cleaning_tasks.c.id == task_id)).one()
        self.wakeup.set()
        return self._view(row)

    # -- processing (workers) ------------------------------------------------------------------
    def claim(self, worker_id: str) -> Any:
        """The oldest pending task, now this worker's (None if there is none)."""
        return claim_oldest_pending(self.db, cleaning_tasks, status="proposing", worker_id=worker_id, now=self.clock(),
                                    lease_s=self.lease_s)

    def _update(self, task_id: str, worker_id: str, **values: Any) -> bool:
        """Change a task this worker still holds; False when it is no longer its own."""
        with self.db.write() as conn:
            return bool(conn.execute(cleaning_tasks.update().where(
                cleaning_tasks.c.id == task_id, cleaning_tasks.c.worker_id == worker_id,
                cleaning_tasks.c.status.in_(("proposing", "running"))).values(**values)).rowcount)

    def renew(self, task_id: str, worker_id: str) -> bool:
        return self._update(task_id, worker_id, lease_expires_at=self.clock() + timedelta(seconds=self.lease_s))

    def reap(self) -> int:
        """Tasks whose worker's lease ran out: failed as ``worker_lost`` (a model call and a
        transform are not retried behind the user's back; they can ask again)."""
        now = self.clock()
        with self.db.write() as conn:
            lost = conn.execute(cleaning_tasks.update().where(
                cleaning_tasks.c.status.in_(("proposing", "running")),
                cleaning_tasks.c.lease_expires_at < now).values(
                status="failed", finished_at=now, lease_expires_at=None,
                error={"code": "worker_lost", "message": "the worker processing the task was lost; nothing was "
                       "saved: ask again"})).rowcount
        return int(lost or 0)

    def acting_principal(self, row: Any) -> Principal:
        """The key that asked, as it is now (its grants, its user's current role)."""
        with self.db.read() as conn:
            token = conn.execute(sa.select(tokens).where(tokens.c.id == row.token_id)).first() \
                if row.token_id else None
            user = self.tokens.users.by_id(conn, row.workspace_id, row.user_id or "") if row.user_id else None
        if token is None or token.deleted_at is not None or user is None:
            raise CleaningFailed("the key that asked for this cleaning was revoked (or its user removed)",
                                 code="key_revoked")
        expires = as_utc(token.expires_at)
        if expires is not None and expires <= self.clock():
            raise CleaningFailed("the key that asked for this cleaning has expired", code="key_expired")
        return TokenService._principal(token, user)

    def process(self, row: Any, worker_id: str) -> None:
        """Propose, run, check and commit one claimed task; every outcome ends in its record."""
        stop = threading.Event()

        def keep_lease() -> None:
            while not stop.wait(max(0.5, self.lease_s / 3)):
                if not self.renew(row.id, worker_id):
                    return

        threading.Thread(target=keep_lease, name=f"lease-{row.id}", daemon=True).start()
        try:
            outcome = self._run(row, worker_id)
        except DomainError as exc:
            outcome = {"status": "failed", "error": {"code": exc.code, "message": exc.message}}
            details = exc.details or {}
            if isinstance(exc, CleaningFailed) and "sql" in details:  # a refused proposal, kept to show why
                outcome.update(sql=details["sql"], provider=details.get("provider"), model=details.get("model"),
                               usage=details.get("usage") or {})
        except Exception as exc:
            log.exception("cleaning task %s failed", row.id)
            outcome = {"status": "failed",
                       "error": {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"}}
        finally:
            stop.set()
        self._update(row.id, worker_id, finished_at=self.clock(), lease_expires_at=None, **outcome)

    def _run(self, row: Any, worker_id: str) -> dict[str, Any]:
        principal = self.acting_principal(row)
        with self.db.read() as conn:
            names = self._source_names(conn, row.source_dataset_id)
            if names is None:
                raise CleaningFailed("the source dataset was deleted", code="dataset_not_found")
            _, source = self.datasets.resolve(conn, principal, names.name, names.dataset, "read")
            self._check_output_free(conn, principal, row.output_namespace, row.output_dataset)
        snapshot = self.datasets.snapshot_of(source, names.name)
        sql, explanation, trace = self._propose(principal, row, names.name, names.dataset)
        usage = (trace.get("usage") or {}) if trace else {}
        if not self._update(row.id, worker_id, status="running", sql=sql, explanation=explanation,
                            provider=trace.get("provider"), model=trace.get("model"), usage=usage, source_snapshot=snapshot.version,
                            input_rows=snapshot.manifest.rows):
            raise CleaningFailed("the task was taken from this worker", code="worker_lost")
        return self._transform(principal, row, sql, snapshot)

    def _propose(self, principal: Principal, row: Any, namespace: str, dataset: str
                 ) -> tuple[str, str | None, dict[str, Any]]:
        chosen = self.llm.resolve(principal, row.provider)
        view = self.datasets.get(principal, namespace, dataset)
        columns = "\n".join(f"- {json.dumps(c['name'])}: {c['type']}" for c in view["columns"]) or "(no columns)"
        sample = self.queries.run(principal, query="*", namespace=namespace, dataset=dataset, limit=SAMPLE_ROWS)
        rows = [{k: _short(v) for k, v in r.items()} for r in sample.get("rows") or []]
        steps = "\n".join(f"{i}. {p}" for i, p in enumerate(row.prompts, 1))
        messages = [{"role": "system", "content": render_prompt("cleaning.system", table=SOURCE_TABLE)},
                    {"role": "user", "content": render_prompt(
                        "cleaning.user", table=SOURCE_TABLE, rows=view["rows"], columns=columns,
                        sample=json.dumps(rows, default=str, ensure_ascii=False) if rows else "(no rows)",
                        steps=steps)}]
        answer = self.llm.complete_json(principal, "cleaning", messages, provider=chosen, model=row.model)
        parsed = answer.parsed if isinstance(answer.parsed, dict) else {}
        explanation = parsed.get("explanation")
        try:
            sql = checked_transform(parsed.get("sql"))
        except CleaningFailed as exc:  # what the model proposed goes on the record, to show why
            raw = parsed.get("sql")
            exc.details = {**(exc.details or {}), "sql": raw if isinstance(raw, str) else None,
                           "provider": answer.trace.get("provider"), "model": answer.trace.get("model"), "usage": answer.trace.get("usage") or {}}
            raise
        return sql, explanation if isinstance(explanation, str) else None, answer.trace

    def _transform(self, principal: Principal, row: Any, sql: str, snapshot: Any) -> dict[str, Any]:
        job = self.jobs.run("clean", {
            "sql": sql, "source_paths": snapshot.paths, "columns": [c.to_dict() for c in snapshot.manifest.columns],
            "first_id": 1, "task_id": row.id, "cleaned_at": self.clock().isoformat(),
            "memory_limit_mb": self.memory_mb, "max_temp_mb": self.memory_mb, "timeout_s": self.timeout_s},
            read_paths=snapshot.paths, memory_mb=self.memory_mb + 512, timeout_s=self.timeout_s + 15)
        try:
            result = job.value
            if "error" in result:
                error = result["error"]
                raise CleaningFailed(f"the transform failed: {error.get('message')}",
                                     code=error.get("code") or "query_error")
            # The same checks as an ingestion's parts: each file is what the job says it is.
            parts, columns = IngestionService._checked_parts(job.output_dir, result, 1)
            return self._commit(principal, row, parts, columns)
        finally:
            job.cleanup()

    def _commit(self, principal: Principal, row: Any, parts: list[tuple[Path, Any]],
                columns: list[Any]) -> dict[str, Any]:
        # Created only now, so nothing is visible until the parts are in; create refuses a
        # dataset made meanwhile (409 dataset_exists) and re-checks write access.
        created = self.datasets.create(principal, row.output_namespace, name=row.output_dataset,
                                       description=f"cleaned from {row.source_namespace}/{row.source_dataset} "
                                                   f"by cleaning task {row.id}")
        dataset_id = created["id"]
        target = self.datasets.parts_dir(dataset_id)
        published = [p for _, p in parts]
        try:
            first = self.datasets.reserve_ids(dataset_id, ID_BLOCK)
            if first != 1:
                raise Conflict("the new dataset was written to before the cleaning output was committed",
                               code="dataset_exists")
            target.mkdir(parents=True, exist_ok=True)
            for path, _ in parts:
                os.replace(path, target / path.name)

            def build(current: Any) -> Any:
                if current.parts:
                    raise Conflict("the new dataset was written to before the cleaning output was committed",
                                   code="dataset_exists")
                return appended(current, published, columns)

            manifest = self.datasets.commit(dataset_id, build)
        except BaseException:
            for p in published:
                (target / Path(p.key).name).unlink(missing_ok=True)
            self._drop_if_empty(principal, row, dataset_id)
            raise
        rows = sum(p.rows for p in published)
        self.usage.record(row.workspace_id, "ingested_rows", rows, ref_id=row.id, user_id=row.user_id)
        self.datasets.on_ingested(row.workspace_id, dataset_id, row.user_id)  # statistics sketches, links
        log.info("cleaning task %s committed %s rows as %s (snapshot %s)", row.id, rows, dataset_id, manifest.version)
        return {"status": "succeeded", "error": None, "output_dataset_id": dataset_id, "output_rows": rows}

    def _drop_if_empty(self, principal: Principal, row: Any, dataset_id: str) -> None:
        """Remove the dataset this task created if it still holds nothing (a failed commit)."""
        with self.db.read() as conn:
            current = conn.execute(sa.select(datasets.c.manifest_version).where(datasets.c.id == dataset_id)).first()
        if current is not None and not current.manifest_version:
            try:
                self.datasets.delete(principal, row.output_namespace, row.output_dataset)
            except DomainError:
                log.warning("could not remove the empty dataset %s of cleaning task %s", dataset_id, row.id)
