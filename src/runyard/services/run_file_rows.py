"""A run's files as rows: the input files it was given and the artifacts it wrote.

A workflow run's rows include its steps' artifacts (and any input file a step got that
is not the workflow run's own), each with the ``step`` it belongs to. Ids are derived
from the run, the direction, the step run and the name, so they are stable between
listings, and an id is only ever looked up among the rows of the run in the path: an id
of another run's file names nothing here.
"""

from __future__ import annotations

import hashlib
import mimetypes
from typing import Any

import sqlalchemy as sa

from runyard.services.access import Permission, Principal
from runyard.services.errors import Conflict, NotFound
from runyard.services.runs import AWAITING, QUEUED, RunService
from runyard.store.tables import run_artifacts, runs
from runyard.timeutil import rfc3339

DELETE_RUN_FILES = Permission("member", "delete run files")
# A run has not started while it waits for confirmation or in the queue: its inputs are
# not yet copied into a work dir.
NOT_STARTED = (AWAITING, QUEUED)
MAX_STEP_DEPTH = 8  # nested workflow runs, as services.runs.artifact_rows walks them


def run_file_id(run_id: str, direction: str, name: str) -> str:
    """A file's id: opaque, stable, and meaningful only beside ``run_id`` (the run holding it)."""
    digest = hashlib.sha256(f"{run_id}\0{direction}\0{name}".encode()).hexdigest()[:24]
    return f"{'in' if direction == 'input' else 'out'}_{digest}"


def _content_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


class RunFileRows:
    def __init__(self, runs_service: RunService) -> None:
        self.runs = runs_service

    def list(self, principal: Principal, run_id: str) -> list[dict[str, Any]]:
        """The run's input files (by input name) then its output files (by path)."""
        return self._rows(self.runs.visible_row(principal, run_id))

    def delete(self, principal: Principal, run_id: str, file_id: str) -> None:
        """Remove an input file of a run that has not started (awaiting confirmation or
        queued). A queued tool run keeps only what still satisfies its input schema: a
        required file input is refused (``invalid_inputs``)."""
        DELETE_RUN_FILES.check(principal)
        row = self.runs.visible_row(principal, run_id)
        found = next((f for f in self._rows(row) if f["id"] == file_id), None)
        if found is None:
            raise NotFound(f"file {file_id!r} not found in run {run_id!r}", code="run_file_not_found",
                           details={"run_id": run_id, "file_id": file_id})
        if row.status not in NOT_STARTED:
            raise Conflict(f"run is {row.status}: files can be deleted only before it starts",
                           code="run_already_started", details={"status": row.status})
        if found["direction"] != "input" or found["run_id"] != row.id:
            # (a run that has not started has no outputs, nor step runs)
            raise Conflict("only the run's own input files can be deleted", code="run_file_not_deletable")
        field = found["input"]
        remaining = {k: v for k, v in (row.input_files or {}).items() if k != field}
        if row.status == QUEUED and row.type == "tool":
            version = self.runs.tools.version_by_id(row.tool_version_id)
            self.runs.validate_inputs(version, {**row.inputs, **{k: f"/inputs/{k}" for k in remaining}})
        with self.runs.db.write() as conn:
            done = conn.execute(runs.update().where(runs.c.id == row.id, runs.c.status.in_(NOT_STARTED))
                                .values(input_files=remaining)).rowcount
        if not done:
            raise Conflict("the run started while its file was being deleted", code="run_already_started")
        blob = str(row.input_files[field].get("blob") or "")
        own = self.runs.files.inputs_prefix(row.id)
        if blob.startswith(own):  # a step's file may be its workflow run's: never removed from here
            self.runs.blobs.delete_prefix(f"{own}{field}")

    # -- rows ------------------------------------------------------------------------------
    def _rows(self, run: Any) -> list[dict[str, Any]]:
        items = self._inputs(run, step=None, skip_blobs=frozenset())
        own_blobs = frozenset(str(meta.get("blob")) for meta in (run.input_files or {}).values())
        items += self._outputs(run, run.id, step=None, item_index=None, prefix="")
        if run.type == "workflow":
            for child in self._children(run):
                items += self._step_rows(child, run.id, depth=1, skip_blobs=own_blobs,
                                         step=child.step_id, item_index=child.item_index)
        inputs = [i for i in items if i["direction"] == "input"]
        outputs = sorted((i for i in items if i["direction"] == "output"), key=lambda i: i["name"])
        return inputs + outputs

    def _step_rows(self, child: Any, top_id: str, *, depth: int, skip_blobs: frozenset[str], step: str,
                   item_index: int | None, base: str = "") -> list[dict[str, Any]]:
        """A step run's files, listed under the workflow run (``top_id``) with its step; its
        outputs under the paths ``GET /runs/{id}/artifacts`` of the workflow run gives them."""
        prefix = base + f"output/{child.step_id}/" + ("" if child.item_index is None else f"{child.item_index}/")
        rows = self._inputs(child, step=step, skip_blobs=skip_blobs, item_index=item_index)
        rows += self._outputs(child, top_id, step=step, item_index=item_index, prefix=prefix)
        if child.type == "workflow" and depth < MAX_STEP_DEPTH:
            for grandchild in self._children(child):
                rows += self._step_rows(grandchild, top_id, depth=depth + 1, skip_blobs=skip_blobs, step=step,
                                        item_index=item_index, base=prefix)
        return rows

    def _children(self, run: Any) -> list[Any]:
        with self.runs.db.read() as conn:
            return list(conn.execute(sa.select(runs).where(runs.c.parent_run_id == run.id,
                                                           runs.c.step_id.is_not(None))
                                     .order_by(runs.c.created_at, runs.c.id)).all())

    @staticmethod
    def _inputs(run: Any, *, step: str | None, skip_blobs: frozenset[str],
                item_index: int | None = None) -> list[dict[str, Any]]:
        rows = []
        for field, meta in sorted((run.input_files or {}).items()):
            if str(meta.get("blob")) in skip_blobs:
                continue  # the workflow run's own file, passed on to its step: listed once
            name = str(meta.get("filename") or field)
            rows.append({"id": run_file_id(run.id, "input", field), "object": "run_file", "run_id": run.id,
                         "direction": "input", "name": name, "input": field, "size": meta.get("size"),
                         "content_type": _content_type(name), "sha256": meta.get("sha256"), "step": step,
                         "item_index": item_index, "created_at": rfc3339(run.created_at)})
        return rows

    def _outputs(self, run: Any, top_id: str, *, step: str | None, item_index: int | None,
                 prefix: str) -> list[dict[str, Any]]:
        with self.runs.db.read() as conn:
            artifacts = conn.execute(sa.select(run_artifacts).where(run_artifacts.c.run_id == run.id)
                                     .order_by(run_artifacts.c.path)).all()
        return [{"id": run_file_id(top_id, "output", prefix + a.path), "object": "run_file", "run_id": run.id,
                 "direction": "output", "name": prefix + a.path, "input": None, "size": a.size,
                 "content_type": a.content_type, "sha256": a.sha256, "step": step, "item_index": item_index,
                 "created_at": rfc3339(a.created_at)} for a in artifacts]
