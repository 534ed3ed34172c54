"""``runyard generate TEMPLATE``: stream generated rows to a file or stdout."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ._context import client
from ._output import JSON_HELP, handle_errors, note, print_json, stderr

FORMATS = ("csv", "json", "ndjson", "sql", "xlsx", "parquet")
#: Formats with one line per row, where the rows written can be counted from the bytes.
LINE_FORMATS = ("csv", "json", "ndjson", "sql")


def parse_assignments(values: list[str]) -> dict[str, Any]:
    """``--set country=DE --set age=42`` → overrides; values are JSON when they parse as JSON."""
    overrides: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expects FIELD=VALUE, got {item!r}", param_hint="'--set'")
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    return overrides


class RowCounter:
    """A binary sink that passes bytes on and counts the rows of a line format."""

    def __init__(self, sink: IO[bytes], fmt: str, count: int, on_rows: Any) -> None:
        self.sink = sink
        self.count = count
        self.on_rows = on_rows
        # Lines that are not rows: the CSV header (JSON's closing lines come after the last row).
        self.skip = 1 if fmt == "csv" else 0
        self.lines = 0

    def write(self, data: bytes) -> int:
        written = self.sink.write(data)
        self.lines += data.count(b"\n")
        self.on_rows(max(0, min(self.count, self.lines - self.skip)))
        return written if written is not None else len(data)

    def flush(self) -> None:
        self.sink.flush()


def _progress(fmt: str, count: int) -> Progress:
    if fmt in LINE_FORMATS:
        return Progress(TextColumn("[bold]generating"), BarColumn(), TaskProgressColumn(),
                        TextColumn("{task.completed:,}/{task.total:,} rows"), TimeRemainingColumn(),
                        console=stderr(), transient=True)
    # A binary format's size is not known in advance: rows asked for, bytes so far.
    return Progress(TextColumn(f"[bold]generating {count:,} rows"), BarColumn(),
                    TextColumn("{task.fields[size]}"), TransferSpeedColumn(), console=stderr(), transient=True)


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:,.1f} {unit}" if unit != "B" else f"{n} B"
        size /= 1000
    return f"{n} B"


@handle_errors
def generate(
    template: Annotated[str, typer.Argument(help="Template id or name.")],
    count: Annotated[int, typer.Option("--count", "-n", help="Rows to generate.", min=0)] = 100,
    format: Annotated[str, typer.Option("--format", "-f", help="csv, json, ndjson, sql, xlsx or parquet.")] = "csv",
    seed: Annotated[str | None, typer.Option("--seed", help="Seed (same seed → same bytes); drawn when absent.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a field: FIELD=VALUE (repeatable).")] = None,
    version: Annotated[int | None, typer.Option("--version", help="Template version (default latest).")] = None,
    dialect: Annotated[str | None, typer.Option("--dialect", help="sql: postgres, mysql or sqlite.")] = None,
    table_name: Annotated[str | None, typer.Option("--table", help="sql: table name.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default stdout).")] = None,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", help="Give up when no bytes arrive for this many seconds (default 60).", min=0.001)] = None,
    json_output: Annotated[bool, typer.Option("--json", help=JSON_HELP + " Needs --output.")] = False,
) -> None:
    """Generate rows from a template, streamed as they are made.

    The seed is printed on stderr (pass it back with --seed for the same bytes).
    """
    if format not in FORMATS:
        raise typer.BadParameter(f"{format!r} is not one of {', '.join(FORMATS)}", param_hint="'--format'")
    if json_output and output is None:
        raise typer.BadParameter("--json prints a summary, so the rows need a file: add -o FILE",
                                 param_hint="'--json'")
    options = {k: v for k, v in (("dialect", dialect), ("table", table_name)) if v is not None}
    kwargs: dict[str, Any] = dict(count=count, format=format, seed=seed, overrides=parse_assignments(set_ or []),
                                  version=version, options=options or None, timeout=timeout)

    def started(seed_drawn: int, template_version: int) -> None:
        # Before the first byte, so even an interrupted or piped-to-head stream tells it.
        note(f"seed {seed_drawn}, template version {template_version}"
             + ("" if seed is not None else f" (--seed {seed_drawn} reproduces these rows)"))

    templates = client().templates
    if output is None:
        templates.generate(template, to=sys.stdout.buffer, on_start=started, **kwargs)
        sys.stdout.buffer.flush()
        return
    if sys.stderr.isatty() and not json_output:
        with _progress(format, count) as bar, output.open("wb") as fh:
            task = bar.add_task("generate", total=count if format in LINE_FORMATS else None, size="")
            sink: Any = fh
            if format in LINE_FORMATS:
                sink = RowCounter(fh, format, count, lambda rows: bar.update(task, completed=rows))
                on_bytes = None
            else:
                def on_bytes(n: int) -> None:
                    bar.update(task, completed=n, size=_human_bytes(n))
            result = templates.generate(template, to=sink, progress=on_bytes, on_start=started, **kwargs)
    else:
        result = templates.generate(template, to=output, on_start=None if json_output else started, **kwargs)
    if json_output:
        print_json({"path": str(output), "format": format, "rows": count, "bytes": result.bytes_written,
                    "seed": result.seed, "template_version": result.version})
        return
    note(f"Wrote {count:,} rows ({result.bytes_written:,} bytes) to {output}; "
         f"seed {result.seed}, template version {result.version}.")
