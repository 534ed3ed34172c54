"""Evaluation batches: one run of a tool or workflow per example, tagged ``batch_id`` and
``example_id``, then summed up against the examples' expected outputs.

Examples come inline (``[{example_id, inputs}]``), from a dataset (``{"dataset":
"ns/name"}``) or from a saved set (``{"set": "name"}``); a dataset's or set's rows must
have an ``example_id`` column, and a row's inputs are its other columns (or only
``columns`` when given). A tool batch's runs are made as ``POST /runs/batch`` makes them
(``services.run_batches.create_many``: each example judged alone, a refused one recorded
in the batch's ``errors``); a workflow batch's through ``WorkflowRuns.start``.

A batch is seen by who sees its target's runs: a key restricted to some tools sees (and
runs) only batches of those tools. The summary compares each example's score with the
previous batch of the same target: an example scoring lower, or failing where it had
succeeded, is a regression.
"""

from __future__ import annotations

from typing import Any

import pyarrow.parquet as pq
import sqlalchemy as sa

from runyard.ids import new_id
from runyard.services import run_batches
from runyard.services.access import Permission, Principal
from runyard.services.datasets import DatasetService
from runyard.services.errors import DomainError, NotFound, ValidationFailed
from runyard.services.pagination import Page, paginate
from runyard.services.run_comparison import RunComparison
from runyard.services.runs import TERMINAL_STATUSES, RunService
from runyard.services.synth_sets import SetService
from runyard.services.workflow_runs import WorkflowRuns
from runyard.store.db import Database
from runyard.store.tables import runs
from runyard.store.tables_evaluation import eval_batches
from runyard.timeutil import rfc3339, utcnow

START_BATCHES = Permission("member", "start evaluation batches")
CANCEL_BATCHES = Permission("member", "cancel evaluation batches")
EXAMPLE_COLUMN = "example_id"
MAX_EXAMPLE_ID = 200
#: Regressions listed in a batch summary.
MAX_REGRESSIONS = 1000


def _target_of(row: Any) -> dict[str, Any]:
    return {"type": row.target_type, "id": row.target_id, "name": row.target_name}


class EvalBatchService:
    def __init__(self, db: Database, runs_service: RunService, workflow_runs: WorkflowRuns,
                 datasets: DatasetService, sets: SetService, comparison: RunComparison) -> None:
        self.db = db
        self.runs = runs_service
        self.workflow_runs = workflow_runs
        self.datasets = datasets
        self.sets = sets
        self.comparison = comparison

    # -- creating ----------------------------------------------------------------------------
    def create(self, principal: Principal, *, tool: str | None = None, workflow: str | None = None,
               version: int | str | None = None, examples: Any = None) -> dict[str, Any]:
        """Start one run per example; the batch as :meth:`get` shows it."""
        START_BATCHES.check(principal)
        if (tool is None) == (workflow is None):
            raise ValidationFailed("give either tool or workflow", details={"field": "tool"})
        target_type, target_id, target_name = self._target(principal, tool, workflow, version)
        items, source = self._examples(principal, examples)
        batch_id = new_id("bat")
        with self.db.write() as conn:
            conn.execute(eval_batches.insert().values(
                id=batch_id, workspace_id=principal.workspace_id, target_type=target_type, target_id=target_id,
                target_name=target_name, version=None if version is None else str(version), source=source,
                example_count=len(items), errors=[], created_by=principal.user_id, created_at=utcnow()))
        errors = self._start(principal, batch_id, target_type, target_id, version, items)
        if errors:
            with self.db.write() as conn:
                conn.execute(eval_batches.update().where(eval_batches.c.id == batch_id).values(errors=errors))
        return self.get(principal, batch_id)

    def _target(self, principal: Principal, tool: str | None, workflow: str | None,
                version: int | str | None) -> tuple[str, str, str]:
        if tool is not None:
            if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
                raise ValidationFailed("a tool's version is a positive integer", details={"field": "version"})
            tool_row, _ = self.runs.tools.resolve(principal.workspace_id, tool, version)
            if not principal.can_use_tool(tool_row.id):
                raise NotFound(f"tool {tool!r} not found", code="tool_not_found", details={"tool": tool})
            return "tool", tool_row.id, tool_row.name
        wf, _ = self.workflow_runs.workflows.resolve(principal, workflow or "", version)
        return "workflow", wf.id, wf.name

    def _examples(self, principal: Principal, examples: Any) -> tuple[list[tuple[str, dict[str, Any]]], dict]:
        """((example id, inputs) of each example, where they came from)."""
        if isinstance(examples, list):
            run_batches.check_size(len(examples), "examples")
            items = []
            for i, item in enumerate(examples):
                if not isinstance(item, dict) or set(item) - {"example_id", "inputs"}:
                    raise ValidationFailed("an example is {example_id, inputs}", details={"field": f"examples[{i}]"})
                inputs = item.get("inputs") or {}
                if not isinstance(inputs, dict):
                    raise ValidationFailed("an example's inputs must be an object",
                                           details={"field": f"examples[{i}].inputs"})
                items.append((self._example_id(item.get("example_id"), f"examples[{i}].example_id"), inputs))
            source: dict[str, Any] = {"kind": "inline"}
        elif isinstance(examples, dict) and ("dataset" in examples) != ("set" in examples):
            unknown = sorted(set(examples) - {"dataset", "set", "columns"})
            if unknown:
                raise ValidationFailed(f"unknown field(s): {', '.join(unknown)}",
                                       details={"field": "examples", "fields": unknown})
            columns = examples.get("columns")
            if columns is not None and (not isinstance(columns, list) or not all(isinstance(c, str) for c in columns)):
                raise ValidationFailed("examples.columns must be a list of column names",
                                       details={"field": "examples.columns"})
            if "dataset" in examples:
                name, rows = self._dataset_rows(principal, examples["dataset"])
                source = {"kind": "dataset", "name": name}
            else:
                name, rows = self._set_rows(principal, examples["set"])
                source = {"kind": "set", "name": name}
            items = self._from_rows(rows, columns, source)
        else:
            raise ValidationFailed('examples must be a list of {example_id, inputs}, {"dataset": "ns/name"} or '
                                   '{"set": "name"}', details={"field": "examples"})
        if not items:
            raise ValidationFailed("a batch needs at least one example", details={"field": "examples"})
        ids = [i for i, _ in items]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise ValidationFailed(f"example_id {dup!r} appears twice", code="duplicate_example_id",
                                   details={"field": "examples", "example_id": dup})
        return items, source

    @staticmethod
    def _example_id(value: Any, field: str) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not 0 < len(value) <= MAX_EXAMPLE_ID:
            raise ValidationFailed(f"example_id must be a string of 1-{MAX_EXAMPLE_ID} characters",
                                   details={"field": field})
        return value

    def _from_rows(self, rows: list[dict[str, Any]], columns: list[str] | None,
                   source: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        items = []
        for i, row in enumerate(rows):
            if columns is not None:
                lacking = [c for c in columns if c not in row]
                if lacking:
                    raise ValidationFailed(f"{source['kind']} {source['name']!r} has no column(s) "
                                           f"{', '.join(lacking)}", details={"field": "examples.columns"})
                inputs = {c: row[c] for c in columns if c != EXAMPLE_COLUMN}
            else:
                inputs = {k: v for k, v in row.items() if k != EXAMPLE_COLUMN}
            items.append((self._example_id(row.get(EXAMPLE_COLUMN), f"rows[{i}].{EXAMPLE_COLUMN}"), inputs))
        return items

    def _no_example_column(self, kind: str, name: str) -> ValidationFailed:
        return ValidationFailed(f"{kind} {name!r} has no {EXAMPLE_COLUMN} column: each row of a batch's examples "
                                "needs one", code="missing_example_id", details={"field": "examples", kind: name})

    def _dataset_rows(self, principal: Principal, ref: Any) -> tuple[str, list[dict[str, Any]]]:
        if not isinstance(ref, str) or ref.count("/") != 1 or not all(ref.split("/")):
            raise ValidationFailed('examples.dataset must be "namespace/name"', details={"field": "examples.dataset"})
        namespace, name = ref.split("/")
        with self.db.read() as conn:
            _, row = self.datasets.resolve(conn, principal, namespace, name, "read")
        snapshot = self.datasets.snapshot_of(row, namespace)
        if EXAMPLE_COLUMN not in [c.name for c in snapshot.manifest.columns]:
            raise self._no_example_column("dataset", ref)
        run_batches.check_size(snapshot.manifest.rows, "examples")
        names = [c.name for c in snapshot.manifest.columns]
        rows: list[dict[str, Any]] = []
        for path in snapshot.paths:  # parts runyard wrote itself
            rows.extend(pq.read_table(path, columns=names).to_pylist())
        return ref, rows

    def _set_rows(self, principal: Principal, name: Any) -> tuple[str, list[dict[str, Any]]]:
        if not isinstance(name, str) or not name:
            raise ValidationFailed("examples.set must be a set's name", details={"field": "examples.set"})
        described = self.sets.describe(principal.workspace_id, name)
        if EXAMPLE_COLUMN not in [c.get("name") if isinstance(c, dict) else c for c in described.get("columns", [])]:
            raise self._no_example_column("set", name)
        run_batches.check_size(int(described.get("row_count") or 0), "examples")
        loaded = self.sets.load(principal, name, limit=run_batches.MAX_BATCH)
        return name, loaded["rows"]

    def _start(self, principal: Principal, batch_id: str, target_type: str, target_id: str,
               version: int | str | None, items: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Create the runs; the examples refused, as ``{example_id, status, code, message}``."""
        errors: list[dict[str, Any]] = []
        if target_type == "tool":
            answers = run_batches.create_many(self.runs, principal, [
                {"tool": target_id, "version": version, "inputs": inputs,
                 "tags": {"batch_id": batch_id, "example_id": example_id}} for example_id, inputs in items])
            for (example_id, _), answer in zip(items, answers, strict=True):
                if "error" in answer:
                    errors.append({"example_id": example_id, "status": answer["status"], **answer["error"]})
            return errors
        for example_id, inputs in items:
            try:
                self.workflow_runs.start(principal, workflow=target_id, version=version, inputs=inputs,
                                         tags={"batch_id": batch_id, "example_id": example_id})
            except DomainError as exc:
                errors.append({"example_id": example_id, "status": exc.status, "code": exc.code,
                               "message": exc.message, "details": exc.details})
        return errors

    # -- reading -----------------------------------------------------------------------------
    def _row(self, principal: Principal, batch_id: str) -> Any:
        with self.db.read() as conn:
            row = conn.execute(sa.select(eval_batches).where(eval_batches.c.workspace_id == principal.workspace_id,
                                                             eval_batches.c.id == batch_id)).first()
        if row is None or not principal.can_use_tool(row.target_id):
            raise NotFound(f"batch {batch_id!r} not found", code="batch_not_found", details={"batch_id": batch_id})
        return row

    def _runs(self, row: Any) -> list[Any]:
        # (workspace, tool) leads an index of runs; the batch's runs are among its target's
        with self.db.read() as conn:
            return list(conn.execute(sa.select(runs).where(
                runs.c.workspace_id == row.workspace_id, runs.c.tool_id == row.target_id,
                runs.c.batch_id == row.id, runs.c.parent_run_id.is_(None)).order_by(runs.c.id)).all())

    def _counts(self, rows: list[Any]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.status] = counts.get(r.status, 0) + 1
        return counts

    def _status(self, row: Any, counts: dict[str, int]) -> str:
        if row.cancelled_at is not None:
            return "cancelled"
        return "finished" if all(s in TERMINAL_STATUSES for s in counts) else "running"

    def _summary(self, row: Any, run_rows: list[Any]) -> dict[str, Any]:
        counts = self._counts(run_rows)
        return {"object": "batch", "id": row.id, "target": _target_of(row), "version": row.version,
                "source": row.source, "example_count": row.example_count, "run_count": len(run_rows),
                "status": self._status(row, counts), "counts": counts, "errors": row.errors or [],
                "created_at": rfc3339(row.created_at), "cancelled_at": rfc3339(row.cancelled_at)}

    def _scores(self, run_rows: list[Any]) -> dict[str, tuple[Any, float | None]]:
        """{example id: (its run, score or None)} of a batch's runs (finished ones scored)."""
        scored: dict[str, tuple[Any, float | None]] = {}
        for r in run_rows:
            value = self.comparison.score(r) if r.status in TERMINAL_STATUSES else None
            scored[r.example_id or r.id] = (r, value)
        return scored

    def get(self, principal: Principal, batch_id: str) -> dict[str, Any]:
        """Counts by status, the mean score of the finished runs whose example has an expected
        output, and the examples that did worse than in the previous batch of the target."""
        row = self._row(principal, batch_id)
        run_rows = self._runs(row)
        view = self._summary(row, run_rows)
        scores = self._scores(run_rows)
        values = [s for _, s in scores.values() if s is not None]
        view["scored"] = len(values)
        view["mean_score"] = round(sum(values) / len(values), 6) if values else None
        previous = self._previous(row)
        view["previous_batch_id"] = previous.id if previous is not None else None
        view["regressions"] = self._regressions(scores, self._scores(self._runs(previous))) if previous else []
        return view

    def _previous(self, row: Any) -> Any:
        with self.db.read() as conn:
            return conn.execute(sa.select(eval_batches).where(
                eval_batches.c.workspace_id == row.workspace_id, eval_batches.c.target_id == row.target_id,
                eval_batches.c.id < row.id).order_by(eval_batches.c.id.desc()).limit(1)).first()

    @staticmethod
    def _regressions(now: dict[str, tuple[Any, float | None]],
                     before: dict[str, tuple[Any, float | None]]) -> list[dict[str, Any]]:
        found = []
        for example_id, (run, score) in now.items():
            if example_id not in before or run.status not in TERMINAL_STATUSES:
                continue
            old_run, old_score = before[example_id]
            worse_score = score is not None and old_score is not None and score < old_score
            newly_failed = old_run.status == "succeeded" and run.status != "succeeded"
            if worse_score or newly_failed:
                found.append({"example_id": example_id, "run_id": run.id, "status": run.status, "score": score,
                              "previous_run_id": old_run.id, "previous_status": old_run.status,
                              "previous_score": old_score})
        return found[:MAX_REGRESSIONS]

    def list(self, principal: Principal, *, tool: str | None = None, workflow: str | None = None,
             cursor: str | None = None, limit: int = 50, include_total: bool = False) -> Page:
        """The batches the key may see, newest first, with counts by status."""
        query = sa.select(eval_batches).where(eval_batches.c.workspace_id == principal.workspace_id)
        if principal.tools:
            query = query.where(eval_batches.c.target_id.in_(sorted(principal.tools)))
        for kind, ref in (("tool", tool), ("workflow", workflow)):
            if ref is not None:
                column = eval_batches.c.target_id if ref.startswith(("tool_", "wf_")) else eval_batches.c.target_name
                query = query.where(eval_batches.c.target_type == kind, column == ref)
        with self.db.read() as conn:
            rows, next_cursor, total = paginate(conn, query, sort_col=eval_batches.c.id, id_col=eval_batches.c.id,
                                                descending=True, cursor=cursor, limit=limit,
                                                include_total=include_total)
            ids = [r.id for r in rows]
            counted = conn.execute(sa.select(runs.c.batch_id, runs.c.status, sa.func.count()).where(
                runs.c.workspace_id == principal.workspace_id, runs.c.batch_id.in_(ids),
                runs.c.parent_run_id.is_(None)).group_by(runs.c.batch_id, runs.c.status)).all() if ids else []
        counts: dict[str, dict[str, int]] = {}
        for batch, status, n in counted:
            counts.setdefault(batch, {})[status] = n
        items = []
        for r in rows:
            mine = counts.get(r.id, {})
            view = self._summary(r, [])
            view.update(counts=mine, run_count=sum(mine.values()), status=self._status(r, mine))
            items.append(view)
        return Page(items, next_cursor, total)

    # -- cancelling --------------------------------------------------------------------------
    def cancel(self, principal: Principal, batch_id: str) -> dict[str, Any]:
        """Cancel every run of the batch still going; finished runs stay as they are."""
        CANCEL_BATCHES.check(principal)
        row = self._row(principal, batch_id)
        for r in self._runs(row):
            if r.status not in TERMINAL_STATUSES:
                try:
                    self.runs.cancel(principal, r.id)
                except NotFound:  # hidden from this key: not its to cancel
                    continue
        if row.cancelled_at is None:
            with self.db.write() as conn:
                conn.execute(eval_batches.update().where(eval_batches.c.id == row.id).values(cancelled_at=utcnow()))
        return self.get(principal, batch_id)
