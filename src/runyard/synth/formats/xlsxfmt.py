"""XLSX through xlsxwriter in constant-memory mode.

A ZIP container can only be finished at the end, so rows go to a temporary file and
the finished workbook is then streamed in pieces; memory stays bounded either way.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import xlsxwriter

from ..errors import GenerationError
from .base import Encoder

MAX_XLSX_ROWS = 1_048_575  # Excel's sheet limit minus the header row
READ_PIECE = 1 << 20
# Fixed document dates make the workbook bytes reproducible.
FIXED_CREATED = dt.datetime(2000, 1, 1)


class XlsxEncoder(Encoder):
    name = "xlsx"
    media_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    extension = "xlsx"
    parallel = False
    option_names = frozenset({"sheet"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.count > MAX_XLSX_ROWS:
            raise GenerationError(f"xlsx holds at most {MAX_XLSX_ROWS:,} rows; {self.count:,} requested",
                                  code="count_too_large", available=MAX_XLSX_ROWS, requested=self.count)
        sheet = self.options.get("sheet", "data")
        if not isinstance(sheet, str) or not 1 <= len(sheet) <= 31 or any(c in sheet for c in "[]:*?/\\"):
            raise self.option_error("sheet", "must be 1-31 characters without []:*?/\\")
        fd, self.path = tempfile.mkstemp(prefix="runyard-synth-", suffix=".xlsx")
        os.close(fd)
        self.workbook = xlsxwriter.Workbook(self.path, {
            "constant_memory": True,
            # Generated text is data: never turn it into formulas, numbers or links.
            "strings_to_formulas": False, "strings_to_numbers": False, "strings_to_urls": False,
        })
        self.workbook.set_properties({"created": FIXED_CREATED})
        self.sheet = self.workbook.add_worksheet(sheet)
        self.writers = [self._writer(f.type) for f in self.schema]
        self.sheet.write_row(0, 0, self.schema.names)

    def _writer(self, dtype: pa.DataType) -> Callable[[int, int, Any], Any]:
        sheet = self.sheet
        fmt = None
        if pa.types.is_date(dtype):
            fmt = self.workbook.add_format({"num_format": "yyyy-mm-dd"})
        elif pa.types.is_timestamp(dtype):
            fmt = self.workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        elif pa.types.is_time(dtype):
            fmt = self.workbook.add_format({"num_format": "hh:mm:ss"})
        if fmt is not None:
            return lambda row, col, value: sheet.write_datetime(row, col, value, fmt)
        if pa.types.is_string(dtype):
            return sheet.write_string
        if pa.types.is_boolean(dtype):
            return sheet.write_boolean
        return sheet.write_number

    def encode(self, batch: pa.RecordBatch, row_start: int) -> bytes:
        columns = [column.to_pylist() for column in batch.columns]
        writers = self.writers
        for offset in range(batch.num_rows):
            row = row_start + offset + 1
            for col, values in enumerate(columns):
                value = values[offset]
                if value is not None and not (isinstance(value, float) and value != value):
                    writers[col](row, col, value)
        return b""

    def finish(self) -> Iterator[bytes]:
        try:
            self.workbook.close()
            with open(self.path, "rb") as fh:
                while piece := fh.read(READ_PIECE):
                    yield piece
        finally:
            self.close()

    def close(self) -> None:
        if os.path.exists(self.path):
            try:
                if not getattr(self.workbook, "fileclosed", False):
                    self.workbook.close()
            except Exception:  # noqa: BLE001 - best effort on an aborted stream
                pass
            os.unlink(self.path)
