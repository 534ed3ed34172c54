"""Artifact previews, read on the server: the first rows of a CSV or Parquet file as a table,
the start of a text file, or an image shown from its own URL. HTML and SVG are never shown in
the page (they could run script here): they are offered as downloads."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PREVIEW_ROWS = 100
PREVIEW_TEXT_BYTES = 64 * 1024
MAX_CELL = 500  # characters of a cell shown
TEXT_TYPES = ("text/plain", "application/json", "text/markdown", "application/x-ndjson", "text/x-python",
              "application/yaml", "text/yaml")
SCRIPTABLE = ("text/html", "image/svg+xml", "application/xhtml+xml", "application/xml", "text/xml")


@dataclass
class Preview:
    kind: str  # table | text | image | download
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    text: str = ""
    truncated: bool = False
    note: str = ""


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= MAX_CELL else text[:MAX_CELL] + "…"


def preview_of(blob: Path, path: str, media: str, *, image: bool) -> Preview:
    name = path.lower()
    if image:
        return Preview("image")
    if media in SCRIPTABLE or name.endswith((".html", ".htm", ".svg", ".xhtml")):
        return Preview("download", note="HTML and SVG files could run script, so they are only offered as downloads.")
    if name.endswith(".parquet"):
        return _parquet(blob)
    if name.endswith((".csv", ".tsv")) or media in ("text/csv", "text/tab-separated-values"):
        return _csv(blob, delimiter="\t" if name.endswith(".tsv") else ",")
    if media.startswith("text/") or media in TEXT_TYPES or name.endswith((".txt", ".log", ".json", ".md", ".yaml",
                                                                           ".yml", ".py", ".ndjson")):
        with open(blob, "rb") as fh:
            data = fh.read(PREVIEW_TEXT_BYTES + 1)
        return Preview("text", text=data[:PREVIEW_TEXT_BYTES].decode("utf-8", errors="replace"),
                       truncated=len(data) > PREVIEW_TEXT_BYTES)
    return Preview("download", note="No preview for this kind of file.")


def _csv(blob: Path, *, delimiter: str) -> Preview:
    with open(blob, "rb") as fh:
        head = fh.read(4 * 1024 * 1024)
    reader = csv.reader(io.StringIO(head.decode("utf-8", errors="replace")), delimiter=delimiter)
    rows = []
    try:
        for row in reader:
            rows.append([_cell(v) for v in row])
            if len(rows) > PREVIEW_ROWS:
                break
    except csv.Error as exc:
        return Preview("download", note=f"This file is not readable as CSV ({exc}).")
    if not rows:
        return Preview("text", text="")
    return Preview("table", columns=rows[0], rows=rows[1:PREVIEW_ROWS + 1], truncated=len(rows) > PREVIEW_ROWS)


def _parquet(blob: Path) -> Preview:
    import pyarrow.parquet as pq
    try:
        file = pq.ParquetFile(blob)
        batch = next(file.iter_batches(batch_size=PREVIEW_ROWS), None)
    except Exception as exc:  # a damaged or foreign file: say so, do not fail the page
        return Preview("download", note=f"This file is not readable as Parquet ({type(exc).__name__}).")
    if batch is None:
        return Preview("table", columns=list(file.schema_arrow.names))
    columns = batch.schema.names
    data = batch.to_pydict()
    rows = [[_cell(data[c][i]) for c in columns] for i in range(batch.num_rows)]
    return Preview("table", columns=columns, rows=rows, truncated=file.metadata.num_rows > len(rows))
