"""Query results written out: Arrow record batches to JSON, NDJSON, CSV, Parquet or an Arrow IPC stream.

JSON and NDJSON hold only JSON-safe values: dates and timestamps as ISO 8601 text, whole decimals (a
HUGEINT ``sum``) as integers and other decimals as floats, bytes as base64, NaN and infinities as null,
intervals as ISO 8601 durations, and values of a JSON column as the JSON they hold rather than its text.
CSV and Parquet get the same treatment only for the types they cannot store (nested values become
JSON text in CSV; intervals and unions become text in both).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import io
import os
from collections.abc import Callable
from typing import IO, Any, Literal, get_args

import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq

ResultFormat = Literal["json", "ndjson", "csv", "parquet", "arrow"]
RESULT_FORMATS: tuple[str, ...] = get_args(ResultFormat)

Sink = str | os.PathLike[str] | IO[bytes]

_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


def column_type(duckdb_type: str) -> str:
    """A result column's type in the dataset vocabulary (int, float, ...) where it maps to one, else the
    DuckDB type in lower case (``interval``, ``integer[]``, ``struct(a integer)``)."""
    t = duckdb_type.upper()
    if t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
             "UBIGINT", "UHUGEINT"):
        return "int"
    if t in ("FLOAT", "DOUBLE") or t.startswith("DECIMAL"):
        return "float"
    if t == "BOOLEAN":
        return "bool"
    if t == "DATE":
        return "date"
    if t.startswith("TIMESTAMP"):
        return "timestamp"
    if t == "VARCHAR":
        return "string"
    if t == "JSON":
        return "json"
    if t == "STRUCT(LAT DOUBLE, LON DOUBLE)":
        return "geo"
    return duckdb_type.lower()


def _json_default(value: object) -> object:
    """What orjson cannot encode itself (it already writes datetimes as ISO text and NaN as null)."""
    if isinstance(value, decimal.Decimal):
        if value.is_finite() and value == value.to_integral_value():
            whole = int(value)
            # orjson refuses integers beyond 64 bits; those stay exact as text.
            return whole if _INT64_MIN <= whole <= _UINT64_MAX else str(whole)
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, pa.MonthDayNano):
        return _iso_duration(value.months, value.days, value.nanoseconds)
    if isinstance(value, dt.timedelta):
        return _iso_duration(0, value.days, (value.seconds * 1_000_000 + value.microseconds) * 1000)
    return str(value)


def _iso_duration(months: int, days: int, nanoseconds: int) -> str:
    seconds = decimal.Decimal(nanoseconds) / decimal.Decimal(1_000_000_000)
    out = "P"
    if months:
        out += f"{months}M"
    if days or not (months or nanoseconds):
        out += f"{days}D"
    if nanoseconds:
        out += f"T{seconds.normalize():f}S"
    return out


def _dumps(value: object) -> bytes:
    try:
        return orjson.dumps(value, default=_json_default)
    except orjson.JSONEncodeError:
        # A Python int beyond 64 bits inside the value: orjson refuses it before calling default.
        return orjson.dumps(_big_ints_as_text(value), default=_json_default)


def _big_ints_as_text(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if _INT64_MIN <= value <= _UINT64_MAX else str(value)
    if isinstance(value, dict):
        return {k: _big_ints_as_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_big_ints_as_text(v) for v in value]
    return value


def _parse_json_text(text: object) -> object:
    if not isinstance(text, str):
        return text
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text  # not JSON after all: keep the text rather than fail the whole result


def batch_rows(batch: pa.RecordBatch, json_columns: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """The rows of a batch as dicts of Python values, JSON columns decoded."""
    rows = batch.to_pylist()
    present = [name for name in batch.schema.names if name in json_columns]
    if present:
        for row in rows:
            for name in present:
                row[name] = _parse_json_text(row[name])
    return rows


def _text_column(array: pa.Array, encode: Callable[[object], str | None]) -> pa.Array:
    return pa.array([None if v is None else encode(v) for v in array.to_pylist()], type=pa.string())


def _json_text(value: object) -> str:
    return _dumps(value).decode()


def _bytes_text(value: object) -> str:
    return base64.b64encode(bytes(value)).decode("ascii")  # type: ignore[arg-type]


def _needs_text(t: pa.DataType, *, csv: bool) -> Callable[[object], str | None] | None:
    """How a column of type ``t`` is written as text in CSV or Parquet, or None if it is written as is."""
    if pa.types.is_interval(t) or pa.types.is_duration(t):
        return lambda v: _json_default(v)  # type: ignore[return-value]
    if pa.types.is_union(t):
        return _json_text
    if csv:
        if pa.types.is_nested(t):
            return _json_text
        if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
            return _bytes_text
    return None


def _textify(batch: pa.RecordBatch, *, csv: bool) -> pa.RecordBatch:
    arrays: list[pa.Array] = []
    changed = False
    for field, array in zip(batch.schema, batch.columns, strict=True):
        t = field.type
        if pa.types.is_dictionary(t):  # ENUM columns: their values, so every batch has one schema
            array = array.cast(t.value_type)
            t = t.value_type
            changed = True
        encode = _needs_text(t, csv=csv)
        if encode is not None:
            array = _text_column(array, encode)
            changed = True
        arrays.append(array)
    if not changed:
        return batch
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


class ResultWriter:
    """Writes record batches to a sink in one format; ``close`` finishes the document."""

    def __init__(self, fmt: str, out: Sink, columns: list[dict[str, str]], json_columns: frozenset[str]) -> None:
        if fmt not in RESULT_FORMATS:
            raise ValueError(f"unknown result format {fmt!r}; one of {', '.join(RESULT_FORMATS)}")
        self.format = fmt
        self.columns = columns
        self.json_columns = json_columns
        self._path: str | None = None
        if isinstance(out, str | os.PathLike):
            self._path = os.fspath(out)
            self._file: IO[bytes] = open(self._path, "wb")  # closed in close() or abort()
        else:
            self._file = out
        self._arrow_writer: Any = None
        self._first_row = True
        if fmt == "json":
            self._file.write(b'{"columns":' + orjson.dumps(columns) + b',"rows":[')

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0 and self.format in ("json", "ndjson"):
            return
        if self.format in ("json", "ndjson"):
            rows = batch_rows(batch, self.json_columns)
            if self.format == "json":
                body = b",".join(_dumps(row) for row in rows)
                self._file.write(body if self._first_row else b"," + body)
            else:
                self._file.write(b"".join(_dumps(row) + b"\n" for row in rows))
            self._first_row = False
            return
        batch = _textify(batch, csv=self.format == "csv")
        if self._arrow_writer is None:
            self._arrow_writer = self._open_arrow_writer(batch.schema)
        if self.format == "csv":
            self._arrow_writer.write(batch)
        else:
            self._arrow_writer.write_batch(batch)

    def _open_arrow_writer(self, schema: pa.Schema) -> Any:
        if self.format == "csv":
            return pa_csv.CSVWriter(self._file, schema)
        if self.format == "parquet":
            return pq.ParquetWriter(self._file, schema)
        return pa_ipc.new_stream(self._file, schema)

    def close(self, *, schema: pa.Schema, truncated: bool, last_id: int | None) -> None:
        """Finish the document; ``schema`` serves a result without rows (its header or Arrow schema)."""
        try:
            if self.format == "json":
                tail = {"truncated": truncated, "last_id": last_id}
                self._file.write(b"]," + orjson.dumps(tail)[1:])
            elif self.format != "ndjson":
                if self._arrow_writer is None:
                    empty = _textify(_empty_batch(schema), csv=self.format == "csv")
                    self._arrow_writer = self._open_arrow_writer(empty.schema)
                    if self.format == "csv":
                        self._arrow_writer.write(empty)
                self._arrow_writer.close()
            self._file.flush()
        finally:
            if self._path is not None:
                self._file.close()

    def abort(self) -> None:
        """Give up on a half-written result: a file this writer opened is removed."""
        if self._arrow_writer is not None:
            try:
                self._arrow_writer.close()
            except (OSError, pa.ArrowException):
                pass
        if self._path is not None:
            self._file.close()
            try:
                os.unlink(self._path)
            except OSError:
                pass


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in schema], schema=schema)


def read_result(fmt: str, data: bytes) -> pa.Table | list[dict[str, Any]] | dict[str, Any]:
    """Read a written result back (tests and tools): a JSON document, NDJSON rows or an Arrow table."""
    if fmt == "json":
        return orjson.loads(data)  # type: ignore[no-any-return]
    if fmt == "ndjson":
        return [orjson.loads(line) for line in data.splitlines() if line]
    if fmt == "csv":
        return pa_csv.read_csv(io.BytesIO(data))
    if fmt == "parquet":
        return pq.read_table(io.BytesIO(data))
    return pa_ipc.open_stream(io.BytesIO(data)).read_all()
