"""Where and how a run executed: ``GET /runs/{id}?expand=execution,debug``.

The worker records each attempt as it starts (``record_attempt``): the worker and host,
the environment, the sandbox and the limits the engine was asked to apply, one JSON line
per attempt in the run's ``execution.jsonl`` beside its log and trace (so every node
reads it from the blob store, and it goes with the run's other files). This module reads
it back beside the run row's timings.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from runyard.services.access import SEE_NODE_PROTECTIONS, Principal
from runyard.services.errors import ValidationFailed
from runyard.services.run_files import RunFiles
from runyard.services.runs import RunService, run_view
from runyard.store.tables import workers
from runyard.timeutil import as_utc, rfc3339

# What ``GET /runs/{id}?expand=`` may add. ``usage`` is always in the run (accepted so a
# caller asking for it, as the reference SDKs do, is not refused).
RUN_EXPANDS = ("inputs", "usage", "execution", "debug")
MAX_RECORDED_ATTEMPTS = 100  # read back at most this many attempt lines (retries are capped far lower)


def record_attempt(files: RunFiles, run_id: str, record: dict[str, Any]) -> None:
    """Append an attempt's start (written by the worker that runs it)."""
    path = files.execution(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(record, default=str, sort_keys=True) + "\n")


def read_attempts(files: RunFiles, run_id: str) -> list[dict[str, Any]]:
    try:
        text = files.execution(run_id).read_text(errors="replace")
    except FileNotFoundError:
        return []
    attempts = []
    for line in text.splitlines()[-MAX_RECORDED_ATTEMPTS:]:
        try:
            value = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash mid-write
        if isinstance(value, dict):
            attempts.append(value)
    return attempts


def _ms_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((as_utc(end) - as_utc(start)).total_seconds() * 1000, 3)  # type: ignore[operator]


def parse_expand(value: str | None) -> frozenset[str]:
    """``expand``'s comma-separated parts; an unknown one is refused, naming those allowed."""
    parts = frozenset(p.strip() for p in (value or "").split(",") if p.strip())
    unknown = sorted(parts - set(RUN_EXPANDS))
    if unknown:
        raise ValidationFailed(f"unknown expand value(s): {', '.join(unknown)}; allowed: {', '.join(RUN_EXPANDS)}",
                               details={"field": "expand", "allowed": list(RUN_EXPANDS)})
    return parts


class RunExecution:
    def __init__(self, runs_service: RunService) -> None:
        self.runs = runs_service
        self.db = runs_service.db
        self.files: RunFiles = runs_service.files

    def get(self, principal: Principal, run_id: str, expand: frozenset[str]) -> dict[str, Any]:
        """The run as ``GET /runs/{id}`` shows it, with the parts ``expand`` names."""
        row = self.runs.visible_row(principal, run_id)
        view = run_view(row, expand_inputs="inputs" in expand)
        if expand & {"execution", "debug"}:
            attempts = read_attempts(self.files, row.id)
            if "execution" in expand:
                view["execution"] = self.execution(row, attempts)
            if "debug" in expand:
                view["debug"] = self.debug(principal, row, attempts)
        return view

    def execution(self, row: Any, attempts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Worker (id, host, pid), attempts, environment and timings of a run row the caller
        may see."""
        attempts = read_attempts(self.files, row.id) if attempts is None else attempts
        worker = None
        if row.worker_id is not None:
            with self.db.read() as conn:
                found = conn.execute(sa.select(workers).where(workers.c.id == row.worker_id)).first()
            worker = {"id": row.worker_id, "host": found.hostname if found else None,
                      "pid": found.pid if found else None}
        last = attempts[-1] if attempts else {}
        return {
            "worker": worker,
            "attempt": row.attempt, "max_attempts": row.max_attempts,
            "attempts": [{"attempt": a.get("attempt"), "worker_id": a.get("worker_id"), "host": a.get("host"),
                          "started_at": a.get("started_at")} for a in attempts],
            "environment": last.get("environment"),
            "timings": {
                "created_at": rfc3339(row.created_at), "queued_at": rfc3339(row.queued_at),
                "started_at": rfc3339(row.started_at), "finished_at": rfc3339(row.finished_at),
                "queue_wait_ms": _ms_between(row.queued_at, row.started_at),
                "duration_ms": _ms_between(row.started_at, row.finished_at),
            },
        }

    def debug(self, principal: Principal, row: Any, attempts: list[dict[str, Any]] | None = None
              ) -> dict[str, Any]:
        """The sandbox and limits the run's latest attempt ran under. Which protections
        the host enforced maps the node's attack surface: only an unrestricted admin key
        sees them (as ``/readyz`` shows them)."""
        attempts = read_attempts(self.files, row.id) if attempts is None else attempts
        last = attempts[-1] if attempts else {}
        sandbox = dict(last.get("sandbox") or {}) or None
        if sandbox is not None and not SEE_NODE_PROTECTIONS.allows(principal):
            sandbox.pop("protections", None)
        return {"recorded": bool(last), "attempt": last.get("attempt"), "sandbox": sandbox,
                "limits": last.get("limits"), "network": last.get("network"),
                "reuse_process": last.get("reuse_process")}
