"""JSON (one array) and NDJSON, built column-wise: each row is a concatenation of literals."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..generators.strings import concat_bytes
from .base import Encoder
from .literals import json_literals


def json_ready(value: Any) -> Any:
    """A Python value as the JSON writers render it (ISO dates, no NaN)."""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


class _JsonRows(Encoder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # '{"id":' , ',"name":' , … — keys are escaped once, up front.
        self.keys = [("{" if i == 0 else ",") + json.dumps(f.name, ensure_ascii=False) + ":"
                     for i, f in enumerate(self.schema)]

    def objects(self, batch: pa.RecordBatch) -> pa.Array:
        parts: list[Any] = []
        for key, column in zip(self.keys, batch.columns, strict=True):
            parts.append(key)
            parts.append(json_literals(column))
        parts.append("}")
        if batch.num_rows == 0:
            return pa.array([], pa.string())
        return pc.binary_join_element_wise(*parts, "")

    def encode(self, batch: pa.RecordBatch, row_start: int) -> bytes:
        objects = self.objects(batch)
        return concat_bytes(self.framed(objects, row_start))

    def framed(self, objects: pa.Array, row_start: int) -> pa.Array:
        raise NotImplementedError


class NdjsonEncoder(_JsonRows):
    name = "ndjson"
    media_type = "application/x-ndjson"
    extension = "ndjson"

    def framed(self, objects: pa.Array, row_start: int) -> pa.Array:
        return pc.binary_join_element_wise(objects, "\n", "")


class JsonEncoder(_JsonRows):
    name = "json"
    media_type = "application/json"
    extension = "json"

    def header(self) -> bytes:
        return b"["

    def framed(self, objects: pa.Array, row_start: int) -> pa.Array:
        # Row 0 of the whole output opens the array; every later row follows a comma,
        # decided by the global row number so chunking never changes the bytes.
        n = len(objects)
        lead = np.full(n, ",\n", dtype=object)
        if row_start == 0 and n:
            lead[0] = "\n"
        return pc.binary_join_element_wise(pa.array(lead, pa.string()), objects, "")

    def finish(self) -> Any:
        yield b"\n]\n" if self.count else b"]\n"
