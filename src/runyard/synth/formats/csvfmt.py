"""CSV (RFC 4180) via Arrow's C++ writer, one call per chunk."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .base import Encoder


class CsvEncoder(Encoder):
    name = "csv"
    media_type = "text/csv; charset=utf-8"
    extension = "csv"
    option_names = frozenset({"delimiter", "header"})

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        delimiter = self.options.get("delimiter", ",")
        if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\"\r\n":
            raise self.option_error("delimiter", "must be one character other than a quote or newline")
        include_header = self.options.get("header", True)
        if not isinstance(include_header, bool):
            raise self.option_error("header", "must be true or false")
        self.include_header = include_header
        self.write_options = pacsv.WriteOptions(include_header=False, delimiter=delimiter)
        self.header_options = pacsv.WriteOptions(include_header=True, delimiter=delimiter)
        # Timestamps in ISO 8601 with a 'T', like the JSON output.
        self.iso_columns = [i for i, f in enumerate(self.schema) if pa.types.is_timestamp(f.type)]

    def _prepare(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if not self.iso_columns:
            return batch
        arrays = list(batch.columns)
        for i in self.iso_columns:
            arrays[i] = pc.strftime(arrays[i], "%Y-%m-%dT%H:%M:%S")
        return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)

    def header(self) -> bytes:
        if not self.include_header:
            return b""
        empty = self._prepare(pa.RecordBatch.from_pylist([], schema=self.schema))
        sink = io.BytesIO()
        pacsv.write_csv(empty, sink, self.header_options)
        return sink.getvalue()

    def encode(self, batch: pa.RecordBatch, row_start: int) -> bytes:
        sink = io.BytesIO()
        pacsv.write_csv(self._prepare(batch), sink, self.write_options)
        return sink.getvalue()
