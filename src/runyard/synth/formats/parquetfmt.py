"""Parquet, streamed: one row group per generation block, bytes drained as they are written."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..seeding import BLOCK_ROWS
from .base import Encoder

COMPRESSIONS = ("snappy", "zstd", "gzip", "none")


class _DrainSink:
    """A write-only file object whose bytes are taken away after each write."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        piece = bytes(data)
        self.pieces.append(piece)
        self.position += len(piece)
        return len(piece)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def drain(self) -> bytes:
        out = b"".join(self.pieces)
        self.pieces.clear()
        return out


class ParquetEncoder(Encoder):
    name = "parquet"
    media_type = "application/vnd.apache.parquet"
    extension = "parquet"
    parallel = False
    option_names = frozenset({"compression"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        compression = self.options.get("compression", "snappy")
        if compression not in COMPRESSIONS:
            raise self.option_error("compression", f"must be one of {', '.join(COMPRESSIONS)}")
        self.sink = _DrainSink()
        self.writer = pq.ParquetWriter(self.sink, self.schema, compression=compression)
        self.pending: list[pa.RecordBatch] = []

    def encode(self, batch: pa.RecordBatch, row_start: int) -> bytes:
        self.pending.append(batch)
        end = row_start + batch.num_rows
        # Row groups always end on block boundaries, so the file does not depend on
        # the chunk size used to feed it.
        if end % BLOCK_ROWS == 0 or end == self.count:
            self._flush()
        return self.sink.drain()

    def _flush(self) -> None:
        if self.pending:
            self.writer.write_table(pa.Table.from_batches(self.pending, schema=self.schema), row_group_size=BLOCK_ROWS)
            self.pending.clear()

    def finish(self) -> Iterator[bytes]:
        self._flush()
        self.writer.close()
        yield self.sink.drain()

    def close(self) -> None:
        if not self.sink.closed:
            try:
                self.writer.close()
            except Exception:  # noqa: BLE001 - closing a half-written stream on abort
                pass
