"""The encoder contract shared by all output formats."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import pyarrow as pa

from ..errors import GenerationError


class Encoder(ABC):
    """Turns record batches into bytes of one format.

    ``parallel`` encoders are pure functions of (batch, first row number): they run on
    the generation threads and their pieces are concatenated in order. The others
    (Parquet, XLSX) keep state and are fed batches in order on one thread; those with
    ``block_stage`` set instead get ``stage_block(batch, row_start)`` run on the
    generation threads for every whole block (pure work, e.g. rendering XML), and
    ``encode_staged(staged, row_start)`` in order on one thread.
    """

    name: ClassVar[str]
    media_type: ClassVar[str]
    extension: ClassVar[str]
    parallel: ClassVar[bool] = True
    block_stage: ClassVar[bool] = False
    option_names: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, schema: pa.Schema, count: int, options: Mapping[str, Any], *, table_name: str) -> None:
        unknown = sorted(set(options) - self.option_names)
        if unknown:
            raise GenerationError(
                f"format '{self.name}' has no option '{unknown[0]}'"
                + (f"; options: {', '.join(sorted(self.option_names))}" if self.option_names else ""),
                code="invalid_format_option", option=unknown[0],
            )
        self.schema = schema
        self.count = count
        self.options = dict(options)
        self.table_name = table_name

    def header(self) -> bytes:
        return b""

    @abstractmethod
    def encode(self, batch: pa.RecordBatch, row_start: int) -> bytes: ...

    def stage_block(self, batch: pa.RecordBatch, row_start: int) -> Any:
        """Pure per-block work done on a generation thread (``block_stage`` encoders)."""
        raise NotImplementedError

    def encode_staged(self, staged: Any, row_start: int) -> bytes:
        """Consume one staged block, in order (``block_stage`` encoders)."""
        raise NotImplementedError

    def finish(self) -> Iterator[bytes]:
        yield from ()

    def close(self) -> None:  # noqa: B027 - optional hook, most encoders hold nothing
        """Release resources when the stream stops early."""

    def option_error(self, option: str, message: str) -> GenerationError:
        return GenerationError(f"format '{self.name}' option '{option}' {message}", code="invalid_format_option",
                               option=option)
