"""The untrusted half of a cleaning task: the model's SQL over one dataset snapshot, its result
written as dataset parts. Runs in the run sandbox (``data.jobs.clean``): it can read only the
source snapshot's parts and write only its work dir and ``<output>/parts``; the trusted worker
checks the parts and commits them (services.cleaning).

The source is the view ``source`` (schema ``main``, so ``source`` and ``main.source`` both name
it); the SQL went through ``check_sql`` on the trusted side and goes through ``run_query``'s own
checks and locked-down DuckDB here, so it reads nothing but those parts."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from runyard.data.types import MAX_COLUMNS, Column, column_name_error

SOURCE_NAMESPACE = "main"
SOURCE_TABLE = "source"
PART_ROWS = 1_000_000
BATCH_ROWS = 65_536
STORED_TYPES = ("int", "float", "bool", "date", "timestamp", "string", "json", "geo")


def run_cleaning(*, sql: str, source_paths: list[str], columns: list[dict[str, Any]], first_id: int, task_id: str,
                 cleaned_at: str, output_dir: Path, work_dir: Path, memory_limit_mb: int = 1024,
                 max_temp_mb: int = 1024, timeout_s: float = 300.0) -> dict[str, Any]:
    """Run ``sql`` over the source and write its rows as parts (ids from ``first_id``) under
    ``output_dir/parts``. Returns the parts and columns, or ``{"error": {code, message}}``."""
    from runyard.data.parts import PartWriter
    from runyard.data.sql import DatasetSource, QueryError, run_query

    source = DatasetSource(namespace=SOURCE_NAMESPACE, name=SOURCE_TABLE, paths=list(source_paths),
                           columns=[Column.from_dict(c) for c in columns], snapshot=0)
    result = work_dir / "result.parquet"
    try:
        outcome = run_query(sql, [source], default_namespace=SOURCE_NAMESPACE, limit=None, format="parquet",
                            out=str(result), memory_limit_mb=memory_limit_mb,
                            threads=max(1, min(4, os.cpu_count() or 1)), temp_dir=str(work_dir),
                            max_temp_mb=max_temp_mb, timeout_s=timeout_s)
    except QueryError as exc:
        return {"error": exc.to_dict()}
    problems = [f"{c['name']!r}: {column_name_error(c['name'])}" for c in outcome.columns
                if column_name_error(c["name"])]
    if problems:
        return {"error": {"code": "invalid_output", "message": "the transform's result has columns a dataset "
                          "cannot hold (name them with AS): " + "; ".join(problems[:5])}}
    if len(outcome.columns) > MAX_COLUMNS:
        return {"error": {"code": "too_many_columns", "message": f"a dataset holds at most {MAX_COLUMNS} columns"}}
    # The result's SQL types, in the dataset vocabulary; anything else (intervals, lists,
    # structs: already written as text by the result writer) is kept as text.
    cols = [Column(c["name"], c["type"] if c["type"] in STORED_TYPES else "string")  # type: ignore[arg-type]
            for c in outcome.columns]
    writer = PartWriter(output_dir / "parts", cols, task_id, datetime.fromisoformat(cleaned_at), first_id, PART_ROWS)
    try:
        for batch in pq.ParquetFile(result).iter_batches(batch_size=BATCH_ROWS):
            if batch.num_rows:
                writer.write(pa.Table.from_batches([batch]), cols)
        parts = writer.close()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        writer.abort()
        return {"error": {"code": "invalid_output", "message": f"the transform's result cannot be stored: {exc}"}}
    except BaseException:
        writer.abort()
        raise
    finally:
        result.unlink(missing_ok=True)
    return {"parts": [{"file": path.name, **part.to_dict()} for path, part in parts],
            "columns": [c.to_dict() for c in cols], "rows": sum(p.rows for _, p in parts)}
