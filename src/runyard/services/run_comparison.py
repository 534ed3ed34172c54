"""A run's output and artifacts against an expectation: its example's expected record,
another run, or a value given in the request.

The JSON comparison is ``services.comparison``'s. Each expected file is paired with the
artifact of the same path, else the first whose last path segment is the file's name;
then: equal SHA-256 → equal; a CSV or Parquet pair → a row-level diff in DuckDB, run in
the sandbox (the files are user bytes) with the record's ``key_columns`` for that file;
a text pair (UTF-8, at most :data:`MAX_TEXT_BYTES` each) → a unified diff; else binary,
different by hash.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runyard.services import comparison
from runyard.services.access import Principal
from runyard.services.errors import DomainError, NotFound
from runyard.services.expected import ExpectedService
from runyard.services.runs import RunService
from runyard.services.sandboxed import SandboxedJobs

MAX_TEXT_BYTES = 2 * 1024 * 1024
TABLE_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
TEXT_SUFFIXES = {".txt", ".json", ".jsonl", ".ndjson", ".md", ".yaml", ".yml", ".xml", ".html", ".log", ".tsv",
                 ".py", ".sql", ".ini", ".toml"}
DIFF_MEMORY_MB = 512
DIFF_TIMEOUT_S = 60.0
_SCORE_CACHE = 4096  # (run, expected record version) → score, for batch summaries
_UNSET: Any = object()


@dataclass(frozen=True)
class ExpectedFile:
    name: str
    sha256: str
    path: Path
    content_type: str | None = None


def _suffix(name: str) -> str:
    return Path(name).suffix.lower()


class RunComparison:
    def __init__(self, runs: RunService, expected: ExpectedService, jobs: SandboxedJobs) -> None:
        self.runs = runs
        self.expected = expected
        self.jobs = jobs
        self._scores: OrderedDict[tuple[str, str, str], float | None] = OrderedDict()
        self._lock = threading.Lock()

    def comparison(self, principal: Principal, run_id: str) -> dict[str, Any]:
        """The run against its example's expected record; 404 ``expected_not_found`` without one."""
        run = self.runs.visible_row(principal, run_id)
        record = self.expected.for_run(run)
        if record is None:
            example_id = run.example_id or run.id
            raise NotFound(f"run {run_id!r} has no expected output to compare with (example {example_id!r})",
                           code="expected_not_found", details={"run_id": run_id, "example_id": example_id})
        return self._of_record(run, record)

    def compare(self, principal: Principal, run_id: str, *, other_run_id: str | None = None,
                expected: Any = _UNSET, options: dict[str, Any] | None = None) -> dict[str, Any]:
        """The run against another run (its output and artifacts as the expectation) or
        against ``expected``, a JSON value; ``options`` as an expected record's."""
        run = self.runs.visible_row(principal, run_id)
        opts = comparison.Options.of(options)
        if other_run_id is not None:
            other = self.runs.visible_row(principal, other_run_id)
            files = [ExpectedFile(path, row.sha256, self.runs.files.blob(row.blob_key), row.content_type)
                     for path, row in self.runs.artifact_rows(other)]
            view = self.evaluate(run, other.output, files, opts)
            return {**view, "against": {"kind": "run", "run_id": other.id}}
        view = self.evaluate(run, expected, [], opts)
        return {**view, "against": {"kind": "value"}}

    def _of_record(self, run: Any, record: Any) -> dict[str, Any]:
        files = [ExpectedFile(f.filename, f.sha256, self.expected.blobs.path(f.blob_key), f.content_type)
                 for f in self.expected.files_of(record.id)]
        view = self.evaluate(run, record.output, files, comparison.Options.of(record.options),
                             has_output=record.has_output)
        return {**view, "against": {"kind": "expected", "expected_id": record.id, "example_id": record.example_id}}

    def score(self, run: Any) -> float | None:
        """The run's score against its example's expected record (None without one), cached
        per (run, record version): a finished run's output never changes."""
        record = self.expected.for_run(run)
        if record is None:
            return None
        key = (run.id, record.id, str(record.updated_at))
        with self._lock:
            if key in self._scores:
                self._scores.move_to_end(key)
                return self._scores[key]
        value = self._of_record(run, record)["score"]
        with self._lock:
            self._scores[key] = value
            while len(self._scores) > _SCORE_CACHE:
                self._scores.popitem(last=False)
        return value

    # -- the comparison ----------------------------------------------------------------------
    def evaluate(self, run: Any, expected: Any, files: list[ExpectedFile], options: comparison.Options, *,
                 has_output: bool = True) -> dict[str, Any]:
        tally = comparison.compare_outputs(expected, run.output, options, has_expected=has_output)
        artifacts = self.runs.artifact_rows(run)
        file_views = [self._file(f, artifacts, options) for f in files]
        score = comparison.score(tally, [v["score"] for v in file_views])
        return {"object": "comparison", "run_id": run.id, "run_status": run.status, "score": score,
                "rule": comparison.SCORE_RULE, "fields": tally.diffs, "fields_truncated": tally.dropped,
                "checks": {"fields": tally.checks, "fields_passed": tally.passed, "files": len(file_views),
                           "files_equal": sum(1 for v in file_views if v["kind"] == "equal")},
                "files": file_views}

    def _file(self, expected: ExpectedFile, artifacts: list[tuple[str, Any]],
              options: comparison.Options) -> dict[str, Any]:
        match = next((pair for pair in artifacts if pair[0] == expected.name), None) or next(
            (pair for pair in artifacts if pair[0].rsplit("/", 1)[-1] == expected.name), None)
        view: dict[str, Any] = {"filename": expected.name, "artifact_path": None, "expected_sha256": expected.sha256,
                                "actual_sha256": None}
        if match is None:
            return {**view, "kind": "missing", "score": 0.0}
        path, row = match
        view.update(artifact_path=path, actual_sha256=row.sha256)
        if row.sha256 == expected.sha256:
            return {**view, "kind": "equal", "score": 1.0}
        actual_path = self.runs.files.blob(row.blob_key)
        e_fmt, a_fmt = TABLE_FORMATS.get(_suffix(expected.name)), TABLE_FORMATS.get(_suffix(path))
        if e_fmt and a_fmt:
            return {**view, **self._table(expected, actual_path, e_fmt, a_fmt, options)}
        text = self._texts(expected, actual_path, path)
        if text is not None:
            ratio, diff, cut = comparison.text_diff(*text, expected.name)
            return {**view, "kind": "text", "score": round(ratio, 6), "diff": diff, "diff_truncated": cut}
        return {**view, "kind": "binary", "score": 0.0}

    def _texts(self, expected: ExpectedFile, actual_path: Path, artifact_path: str) -> tuple[str, str] | None:
        texty = _suffix(expected.name) in TEXT_SUFFIXES or (expected.content_type or "").startswith("text/")
        if not texty and _suffix(artifact_path) not in TEXT_SUFFIXES:
            return None
        try:
            if expected.path.stat().st_size > MAX_TEXT_BYTES or actual_path.stat().st_size > MAX_TEXT_BYTES:
                return None
            return expected.path.read_bytes().decode("utf-8"), actual_path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def _table(self, expected: ExpectedFile, actual_path: Path, e_fmt: str, a_fmt: str,
               options: comparison.Options) -> dict[str, Any]:
        keys = options.key_columns.get(expected.name)
        try:
            job = self.jobs.run("table_diff", {
                "expected": str(expected.path), "actual": str(actual_path), "expected_format": e_fmt,
                "actual_format": a_fmt, "key_columns": keys, "memory_limit_mb": DIFF_MEMORY_MB},
                read_paths=[str(expected.path), str(actual_path)], memory_mb=DIFF_MEMORY_MB + 256,
                timeout_s=DIFF_TIMEOUT_S)
        except DomainError as exc:
            return {"kind": "table", "score": 0.0, "error": exc.message}
        try:
            result = dict(job.value)
        finally:
            job.cleanup()
        if "error" in result:
            return {"kind": "table", "score": 0.0, "error": str(result["error"])}
        table_score = float(result.pop("score", 0.0))
        return {"kind": "table", "score": table_score, "table": result}
