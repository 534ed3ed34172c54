"""The untrusted work on data, as entrypoints the engine runs in the run sandbox.

Each is called in a child process that can read only the files it is given (an upload, a
snapshot's parts) and write only its own work and output dirs. It writes what it made
(Parquet parts, a query result, rejects) to the output dir and returns a JSON summary; the
trusted side checks that and commits. Nothing here touches the catalog.
"""

from __future__ import annotations

import os
import queue
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from runyard.data.coerce import RowsRejected, TooManyColumns, coerce_rows
from runyard.data.formats import ParseError, ParseOptions, Reject, detect_format, parse_file
from runyard.data.pipeline import Pipeline, PipelineError, StepError
from runyard.data.types import ARROW_TYPES, MAX_COLUMNS, Column, column_name_error

PART_ROWS = 1_000_000
_OPTION_FIELDS = ("format", "delimiter", "quote", "header", "encoding", "sheet", "skip_rows", "compression")


def _output_dir() -> Path:
    return Path(os.environ.get("RUNYARD_OUTPUT_DIR") or ".")


def _progress(fraction: float, message: str) -> None:
    try:
        from runyard import context
    except ImportError:  # run outside the platform (tests of this module)
        return
    context.progress(max(0.0, min(1.0, fraction)), message)


def run_pipeline(pipeline: Pipeline, *, table: pa.Table | None = None, rows: list[Any] | None = None
                 ) -> tuple[pa.Table, list[tuple[int, dict[str, str], Any]], list[int]]:
    """A batch (an Arrow table, or JSON rows first typed as new columns would be) through the
    pipeline: the table that came out, the rows that failed (index in the batch, errors, the row
    when it was JSON) and, for each row of the table, its index in the batch."""
    failed: list[tuple[int, dict[str, str], Any]] = []
    if table is None:
        source = rows or []
        coerced = coerce_rows(source, [], on_error="skip")
        failed = [(f["index"], f["errors"], f["row"]) for f in coerced.failed]
        dropped = {f["index"] for f in coerced.failed}
        kept = [i for i in range(len(source)) if i not in dropped]
        table = coerced.table
        if table.num_rows != len(kept):  # no columns at all: nothing to carry on
            kept, table = [], pa.table({})
    else:
        kept = list(range(table.num_rows))
    outcome = pipeline.run(table)
    for pos, errors in outcome.failed.items():
        index = kept[pos]
        failed.append((index, errors, rows[index] if rows is not None else None))
    failed.sort(key=lambda f: f[0])
    return outcome.table, failed, [kept[p] for p in outcome.rows]


def parse_options(options: dict[str, Any] | None, *, memory_limit_mb: int, temp_dir: str | None,
                  max_decompressed_bytes: int, source: str | None = None, filename: str | None = None) -> ParseOptions:
    given = {k: v for k, v in (options or {}).items() if k in _OPTION_FIELDS and v is not None}
    if "format" not in given and source is not None:
        # The stored file has no name of its own: the format comes from its bytes, then the
        # name it was uploaded under.
        with open(source, "rb") as fh:
            given["format"] = detect_format(filename, fh.read(64 * 1024))
    return ParseOptions(**given, memory_limit_mb=max(64, memory_limit_mb // 2), threads=2, temp_dir=temp_dir,
                        max_decompressed_bytes=max_decompressed_bytes)


def _arrow_kind(t: pa.DataType) -> str | None:
    if pa.types.is_null(t):
        return None
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    return "json"


def conform(table: pa.Table, columns: list[Column]) -> tuple[pa.Table, list[Column], dict[int, dict[str, str]]]:
    """A typed batch (CSV, Parquet) fitted to the dataset's columns without leaving Arrow where
    the types agree: new fields add columns, int widens to float, anything stored as text where
    the column is text. A value its column cannot hold fails its row: (row index → errors)."""
    out = list(columns)
    index = {c.name: i for i, c in enumerate(out)}
    arrays: dict[str, pa.Array] = {}
    failed: dict[int, dict[str, str]] = {}
    for name, chunked in zip(table.column_names, table.columns, strict=True):
        problem = column_name_error(name)
        if problem:
            raise ParseError("invalid_column", f"column {name!r}: {problem}")
        array = chunked.combine_chunks() if chunked.num_chunks != 1 else chunked.chunk(0)
        kind = _arrow_kind(array.type)
        if kind is None:
            if name in index:
                continue  # all null: the column stays as it is, NULL for these rows
            continue  # no type to give a new column yet (a later batch may have one)
        if kind == "json":
            array = pa.array([None if v is None else orjson.dumps(v).decode() for v in array.to_pylist()],
                             pa.string())
        if kind == "string" and (name not in index or out[index[name]].type != "string"):
            # Text (every CSV field): typed by the column, or for a new column by what all its
            # values parse as.
            if name in index:
                target = out[index[name]]
                typed, bad = cast_text(array, target.type)
                for i in bad:
                    failed.setdefault(i, {})[name] = f"{array[i].as_py()!r} is not a valid {target.type}"
                arrays[name] = typed
                continue
            if len(out) >= MAX_COLUMNS:
                raise TooManyColumns(f"a dataset holds at most {MAX_COLUMNS} columns")
            new_kind, typed = infer_text(array)
            if new_kind is None:
                continue
            index[name] = len(out)
            out.append(Column(name, new_kind))  # type: ignore[arg-type]
            arrays[name] = typed
            continue
        if name not in index:
            if len(out) >= MAX_COLUMNS:
                raise TooManyColumns(f"a dataset holds at most {MAX_COLUMNS} columns")
            index[name] = len(out)
            out.append(Column(name, kind))  # type: ignore[arg-type]
            arrays[name] = array
            continue
        target = out[index[name]]
        if target.type == kind or (target.type == "float" and kind == "int") or (
                target.type == "json" and kind != "json"):
            arrays[name] = array
        elif target.type == "int" and kind == "float":
            out[index[name]] = Column(name, "float", target.nullable)
            arrays[name] = array
        elif target.type == "string":
            arrays[name] = pc.cast(array, pa.string())
        else:  # e.g. text into an int column: row by row, through the JSON-row rules
            values = array.to_pylist()
            coerced = coerce_rows([{name: v} for v in values], [target], evolve=False)
            for fail in coerced.failed:
                failed.setdefault(fail["index"], {}).update(fail["errors"])
            good = iter(coerced.table.column(0).to_pylist())
            bad = {f["index"] for f in coerced.failed}
            arrays[name] = pa.array([None if i in bad else next(good) for i in range(len(values))],
                                    type=_storage_type(target))
    keep = [c for c in out if c.name in arrays]
    fitted = pa.table({c.name: arrays[c.name] for c in keep})
    if failed:
        mask = pa.array([i not in failed for i in range(fitted.num_rows)])
        fitted = fitted.filter(mask)
    return fitted, out, failed


_TEXT_KINDS = ("int", "float", "date", "timestamp")


def _cast_text(array: pa.Array, kind: str) -> pa.Array:
    """``array`` (text) as ``kind``; raises if any non-null value does not parse."""
    if kind == "timestamp":
        try:
            return pc.cast(array, ARROW_TYPES["timestamp"])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return pc.assume_timezone(pc.cast(array, pa.timestamp("us")), "UTC")
    if kind == "bool":
        lowered = pc.utf8_lower(array)
        present = lowered.drop_null()
        if len(present) and pc.all(pc.is_in(present, value_set=pa.array(["true", "false"]))).as_py():
            return pc.equal(lowered, "true")
        raise pa.ArrowInvalid("not a boolean")
    return pc.cast(array, ARROW_TYPES[kind])


def infer_text(array: pa.Array) -> tuple[str | None, pa.Array]:
    """The type every non-null value of a text column parses as (int, float, date, timestamp,
    bool; else string), and the column in it. None when every value is null."""
    if array.null_count == len(array):
        return None, array
    sample = array.drop_null().slice(0, 64)
    for kind in (*_TEXT_KINDS, "bool"):
        try:
            # A failed cast is slow (tens of ms per 100k values): try a few values first.
            _cast_text(sample, kind)
            return kind, _cast_text(array, kind)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
            continue
    return "string", array


def cast_text(array: pa.Array, kind: str) -> tuple[pa.Array, list[int]]:
    """Text as ``kind``: in one cast when every value parses, else value by value, with the
    indexes of those that do not (they become null, and their rows fail)."""
    if kind in ("string", "json"):
        return array, []
    try:
        return _cast_text(array, kind), []
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        pass
    values: list[Any] = []
    bad: list[int] = []
    storage = ARROW_TYPES[kind]
    for i, text in enumerate(array.to_pylist()):
        if text is None:
            values.append(None)
            continue
        try:
            values.append(_cast_text(pa.array([text]), kind)[0].as_py())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
            values.append(None)
            bad.append(i)
    return pa.array(values, type=storage), bad


def _storage_type(column: Column) -> pa.DataType:
    return ARROW_TYPES[column.type]


def ingest_file(*, source: str, filename: str, options: dict[str, Any] | None, columns: list[dict[str, Any]],
                first_id: int, ingestion_id: str, ingested_at: str, on_error: str = "skip",
                memory_limit_mb: int = 1024, max_decompressed_bytes: int = 20 << 30,
                batch_rows: int = 100_000, emit_rows: bool = False) -> dict[str, Any]:
    """Parse ``source`` into Parquet parts (ids from ``first_id``) under ``<output>/parts``;
    rejected lines go to ``<output>/rejects.ndjson``. Returns what was made. ``emit_rows``: no
    parts; the parsed rows (after the pipeline given, the steps before a model step) go to
    ``<output>/rows.ndjson`` as ``{"line", "row"}`` for the trusted side to carry on with."""
    from runyard.data.parts import PartWriter

    out = _output_dir()
    total = max(1, os.path.getsize(source))
    cols = [Column.from_dict(c) for c in columns]
    try:
        opts = parse_options(options, memory_limit_mb=memory_limit_mb, temp_dir=os.environ.get("TMPDIR"),
                             max_decompressed_bytes=max_decompressed_bytes, source=source, filename=filename)
        pipeline = Pipeline((options or {}).get("pipeline"))
    except ParseError as exc:
        return {"error": {"code": exc.code, "message": str(exc)}}
    except PipelineError as exc:
        return {"error": exc.to_dict()}
    writer = _WriterThread(PartWriter(out / "parts", cols, ingestion_id, datetime.fromisoformat(ingested_at),
                                      first_id, PART_ROWS))
    rejects = 0
    failed_rows = 0
    row_number = 0  # data rows seen so far (JSON rows, spreadsheet rows)
    stored = 0
    bytes_read = 0
    try:
        with open(out / "rejects.ndjson", "wb") as rejected:
            def reject(item: Reject | dict[str, Any]) -> None:
                nonlocal rejects
                rejects += 1
                entry = item.to_dict() if isinstance(item, Reject) else item
                rejected.write(orjson.dumps(entry) + b"\n")

            emitted = open(out / "rows.ndjson", "wb") if emit_rows else None
            batches = parse_file(Path(source), opts, batch_rows=batch_rows)
            for batch in batches:
                for r in batch.rejects:
                    reject(r)
                failed: list[tuple[int, dict[str, str], Any]] = []
                if emitted is not None:
                    source_rows = list(batch.rows or []) if batch.table is None else None
                    if pipeline:
                        table, failed, origin = run_pipeline(pipeline, table=batch.table, rows=source_rows)
                        found = table.to_pylist()
                    else:
                        found = source_rows if source_rows is not None else batch.table.to_pylist()  # type: ignore[union-attr]
                        origin = list(range(len(found)))
                    for i, item in zip(origin, found, strict=True):
                        emitted.write(orjson.dumps({"line": row_number + i + 1, "row": item}, default=str) + b"\n")
                    table = pa.table({})
                    stored += len(found)
                elif pipeline:
                    table, failed, origin = run_pipeline(pipeline, table=batch.table, rows=None if batch.table
                                                         is not None else list(batch.rows or []))
                    table, cols, bad = conform(table, cols)
                    failed += [(origin[i], errs, batch.rows[origin[i]] if batch.table is None and batch.rows
                                else None) for i, errs in bad.items()]
                    failed.sort(key=lambda f: f[0])
                elif batch.table is not None:
                    table, cols, bad = conform(batch.table, cols)
                    failed = [(i, errs, None) for i, errs in bad.items()]
                else:
                    try:
                        coerced = coerce_rows(batch.rows or [], cols, on_error=on_error)  # type: ignore[arg-type]
                    except RowsRejected as exc:
                        raise ParseError("rows_rejected", str(exc)) from exc
                    table, cols = coerced.table, coerced.columns
                    failed = [(f["index"], f["errors"], f["row"]) for f in coerced.failed]
                if failed and on_error == "abort":
                    i, errs, _ = failed[0]
                    raise ParseError("rows_rejected", f"row {row_number + i + 1}: " +
                                     "; ".join(f"{k}: {v}" for k, v in errs.items()))
                for i, errs, row in failed:
                    failed_rows += 1
                    text = orjson.dumps(row).decode()[:1024] if row is not None else ""
                    reject({"line": row_number + i + 1, "reason": "; ".join(f"{k}: {v}" for k, v in errs.items()),
                            "text": text})
                row_number += batch.num_rows
                if table.num_rows and emitted is None:
                    writer.put(table, list(cols))
                    stored += table.num_rows
                bytes_read = batch.bytes_read
                _progress(bytes_read / total, f"{stored} rows")
            if emitted is not None:
                emitted.close()
        parts = writer.close(cols)
    except TooManyColumns as exc:
        writer.abort()
        return {"error": {"code": "too_many_columns", "message": str(exc)}}
    except ParseError as exc:
        writer.abort()
        return {"error": {"code": exc.code, "message": str(exc)}}
    except StepError as exc:
        writer.abort()
        return {"error": {"code": "pipeline_failed", "message": str(exc), "step": exc.step}}
    except BaseException:
        writer.abort()
        raise
    finally:
        pipeline.close()
    if emit_rows:
        return {"parts": [], "rows_file": "rows.ndjson", "emitted_rows": stored, "columns": [c.to_dict() for c in cols],
                "rows": 0, "failed_rows": failed_rows, "rejects": rejects, "bytes_read": bytes_read or total}
    return {
        "parts": [{"file": path.name, **part.to_dict()} for path, part in parts],
        "columns": [c.to_dict() for c in cols],
        "rows": sum(p.rows for _, p in parts),
        "failed_rows": failed_rows,
        "rejects": rejects,
        "bytes_read": bytes_read or total,
    }


class _WriterThread:
    """Writes Parquet on a thread of its own while the next batch is parsed: encoding and
    compressing a part takes as long as parsing it, and both release the GIL. At most two
    batches wait, so memory stays bounded."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer
        self.queue: queue.Queue[tuple[pa.Table, list[Column]] | None] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="part-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.writer.write(*item)
                except BaseException as exc:  # raised in the parsing thread at its next put/close
                    self.error = exc

    def put(self, table: pa.Table, columns: list[Column]) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((table, columns))

    def close(self, columns: list[Column]) -> list[Any]:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error
        self.writer.columns = list(columns)
        return self.writer.close()

    def abort(self) -> None:
        self.error = self.error or RuntimeError("aborted")
        self.queue.put(None)
        self.thread.join()
        self.writer.abort()


def preview(*, source: str | None = None, rows: list[Any] | None = None, options: dict[str, Any] | None = None,
            limit: int = 100, sample: int = 10_000, memory_limit_mb: int = 512,
            max_decompressed_bytes: int = 1 << 30) -> dict[str, Any]:
    """Parsed rows and the inferred schema of a file (or JSON rows), nothing saved."""
    from runyard.data.infer import infer_from_file, infer_schema

    try:
        if source is not None:
            opts = parse_options(options, memory_limit_mb=memory_limit_mb, temp_dir=os.environ.get("TMPDIR"),
                                 max_decompressed_bytes=max_decompressed_bytes)
            inferred, parsed, rejects = infer_from_file(Path(source), opts, sample=max(sample, limit))
            reject_list = [r.to_dict() for r in rejects[:100]]
        else:
            parsed = [r for r in rows or [] if isinstance(r, dict)]
            inferred, reject_list = infer_schema(parsed, sample=sample), []
        pipeline = Pipeline((options or {}).get("pipeline"))
    except ParseError as exc:
        return {"error": {"code": exc.code, "message": str(exc)}}
    except PipelineError as exc:
        return {"error": exc.to_dict()}
    if pipeline:
        try:
            table, failed, _ = run_pipeline(pipeline, rows=parsed)
        except StepError as exc:
            return {"error": {"code": "pipeline_failed", "message": str(exc), "step": exc.step}}
        finally:
            pipeline.close()
        reject_list += [{"line": i + 1, "reason": "; ".join(f"{k}: {v}" for k, v in errs.items()),
                         "text": orjson.dumps(row, default=str).decode()[:1024]} for i, errs, row in failed][:100]
        parsed = table.to_pylist()
        inferred = infer_schema(parsed, sample=sample)
    columns = [_inferred(c) for c in inferred]
    shown = [{k: _jsonable(v) for k, v in r.items()} for r in parsed[:limit]]
    return {"columns": columns, "rows": shown, "rejects": reject_list}


def pipeline_rows(*, rows: list[Any], pipeline: list[Any], first_index: int = 0) -> dict[str, Any]:
    """JSON rows through a pipeline, as ``<output>/batch.arrow`` (an Arrow IPC file) with the
    row's index in ``rows`` in the column ``_row``; the rows that failed are listed.
    ``first_index``: the index of the first step in the whole pipeline (this is a segment)."""
    try:
        steps = Pipeline(pipeline, first_index=first_index)
    except PipelineError as exc:
        return {"error": exc.to_dict()}
    try:
        table, failed, origin = run_pipeline(steps, rows=rows)
    except StepError as exc:
        return {"error": {"code": "pipeline_failed", "message": str(exc), "step": exc.step}}
    finally:
        steps.close()
    table = table.append_column("_row", pa.array(origin, pa.int64()))
    with pa.OSFile(str(_output_dir() / "batch.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
        out.write_table(table)
    return {"rows": table.num_rows, "failed": [{"index": i, "errors": errs} for i, errs, _ in failed]}


def _inferred(c: Any) -> dict[str, Any]:
    if hasattr(c, "to_dict"):
        return c.to_dict()
    return {k: getattr(c, k) for k in ("name", "type", "nullable", "null_count", "kinds", "confidence")}


def _jsonable(v: Any) -> Any:
    return orjson.loads(orjson.dumps(v, default=str))


def query(*, query: str | None, sources: list[dict[str, Any]], select_all: str | None = None,
          default_namespace: str | None = None, include_metadata: bool = False, limit: int | None = None,
          offset_id: int | None = None, memory_limit_mb: int = 1024, max_temp_mb: int = 1024,
          timeout_s: float = 30.0, explain: bool = False, format: str = "json") -> dict[str, Any]:
    """Run a read-only query over the given snapshots; the result goes to ``<output>/result``."""
    from runyard.data.sql import DatasetSource, QueryError, run_query

    datasets = [DatasetSource(namespace=s["namespace"], name=s["name"], paths=list(s["paths"]),
                              columns=[Column.from_dict(c) for c in s["columns"]], snapshot=int(s["snapshot"]))
                for s in sources]
    chosen = None
    if select_all is not None:
        chosen = next(d for d in datasets if f"{d.namespace}.{d.name}" == select_all)
    target = _output_dir() / "result"
    try:
        outcome = run_query(query, datasets, select_all=chosen, default_namespace=default_namespace,
                            include_metadata=include_metadata, limit=limit, offset_id=offset_id,
                            memory_limit_mb=memory_limit_mb, threads=max(1, min(4, os.cpu_count() or 1)),
                            temp_dir=os.environ.get("TMPDIR"), max_temp_mb=max_temp_mb, timeout_s=timeout_s,
                            explain=explain, out=None if explain else str(target), format=format)  # type: ignore[arg-type]
    except QueryError as exc:
        return {"error": exc.to_dict()}
    return {**outcome.to_dict(), "file": None if explain else "result"}


def clean(*, sql: str, source_paths: list[str], columns: list[dict[str, Any]], first_id: int, task_id: str,
          cleaned_at: str, memory_limit_mb: int = 1024, max_temp_mb: int = 1024,
          timeout_s: float = 300.0) -> dict[str, Any]:
    """A cleaning task's transform (data.cleaning): its result as parts under ``<output>/parts``."""
    from runyard.data.cleaning import run_cleaning

    return run_cleaning(sql=sql, source_paths=source_paths, columns=columns, first_id=first_id, task_id=task_id,
                        cleaned_at=cleaned_at, output_dir=_output_dir(), work_dir=Path(os.environ.get("TMPDIR") or "."),
                        memory_limit_mb=memory_limit_mb, max_temp_mb=max_temp_mb, timeout_s=timeout_s)


def table_diff(*, expected: str, actual: str, expected_format: str, actual_format: str,
               key_columns: list[str] | None = None, memory_limit_mb: int = 512) -> dict[str, Any]:
    """Row-level difference of an expected and an actual table file (``runyard.data.table_diff``)."""
    from runyard.data.table_diff import TableDiffError, diff_tables

    try:
        return diff_tables(expected=expected, actual=actual, expected_format=expected_format,
                           actual_format=actual_format, key_columns=key_columns, memory_limit_mb=memory_limit_mb,
                           temp_dir=os.environ.get("TMPDIR"))
    except TableDiffError as exc:
        return {"error": str(exc)}
