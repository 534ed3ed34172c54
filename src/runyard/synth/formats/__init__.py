"""Output formats and the streaming writer that drives an encoder over a generation."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa

from ..errors import GenerationError
from ..pipeline import Plan, iter_blocks, split
from ..seeding import BLOCK_ROWS
from .base import Encoder
from .csvfmt import CsvEncoder
from .jsonfmt import JsonEncoder, NdjsonEncoder
from .parquetfmt import ParquetEncoder
from .sqlfmt import SqlEncoder
from .xlsxfmt import XlsxEncoder

ENCODERS: dict[str, type[Encoder]] = {
    cls.name: cls for cls in (JsonEncoder, NdjsonEncoder, CsvEncoder, SqlEncoder, XlsxEncoder, ParquetEncoder)
}
FORMATS = tuple(ENCODERS)


def make_encoder(plan: Plan, fmt: str, options: Mapping[str, Any] | None = None) -> Encoder:
    cls = ENCODERS.get(fmt)
    if cls is None:
        raise GenerationError(f"unknown format '{fmt}'; formats: {', '.join(FORMATS)}", code="invalid_format")
    return cls(plan.schema, plan.count, options or {}, table_name=plan.template.name)


def stream(plan: Plan, fmt: str, options: Mapping[str, Any] | None = None, *, workers: int = 1,
           chunk_rows: int = BLOCK_ROWS, encoder: Encoder | None = None) -> Iterator[bytes]:
    """The whole output as a sequence of byte pieces (one or more per block).

    Build the encoder first (``make_encoder``) to surface option errors before the
    caller commits to a response; pass it in as ``encoder``.
    """
    if chunk_rows < 1:
        raise GenerationError("chunk_rows must be positive", code="invalid_chunk_rows")
    enc = encoder or make_encoder(plan, fmt, options)
    try:
        head = enc.header()
        if head:
            yield head
        if enc.parallel:
            def encode_block(batch: pa.RecordBatch, row_start: int) -> list[bytes]:
                pieces, offset = [], 0
                for chunk in split(batch, chunk_rows):
                    pieces.append(enc.encode(chunk, row_start + offset))
                    offset += chunk.num_rows
                return pieces

            for pieces in iter_blocks(plan, workers=workers, transform=encode_block):
                yield from (p for p in pieces if p)
        elif enc.block_stage:
            # Whole blocks: the bytes cannot depend on chunk_rows.
            for block, staged in enumerate(iter_blocks(plan, workers=workers, transform=enc.stage_block)):
                piece = enc.encode_staged(staged, block * BLOCK_ROWS)
                if piece:
                    yield piece
        else:
            for block, batch in enumerate(iter_blocks(plan, workers=workers)):
                offset = block * BLOCK_ROWS
                for chunk in split(batch, chunk_rows):
                    piece = enc.encode(chunk, offset)
                    offset += chunk.num_rows
                    if piece:
                        yield piece
        yield from (p for p in enc.finish() if p)
    finally:
        enc.close()


def write(plan: Plan, fmt: str, destination: Any, options: Mapping[str, Any] | None = None, **kwargs: Any) -> int:
    """Stream a generation into a binary file object or a path; return bytes written."""
    total = 0
    if isinstance(destination, str | bytes) or hasattr(destination, "__fspath__"):
        with open(destination, "wb") as fh:
            return write(plan, fmt, fh, options, **kwargs)
    for piece in stream(plan, fmt, options, **kwargs):
        destination.write(piece)
        total += len(piece)
    return total


__all__ = ["ENCODERS", "FORMATS", "Encoder", "make_encoder", "stream", "write"]
