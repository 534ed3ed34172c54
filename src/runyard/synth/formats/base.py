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
    (Parquet, XLSX) keep state and are fed batches in order on one thread.
    """

    name: ClassVar[str]
    media_type: ClassVar[str]
    extension: ClassVar[str]
    parallel: ClassVar[bool] = True
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

    def finish(self) -> Iterator[bytes]:
        yield from ()

    def close(self) -> None:  # noqa: B027 - optional hook, most encoders hold nothing
        """Release resources when the stream stops early."""

    def option_error(self, option: str, message: str) -> GenerationError:
        return GenerationError(f"format '{self.name}' option '{option}' {message}", code="invalid_format_option",
                               option=option)
