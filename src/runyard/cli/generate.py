"""``runyard generate TEMPLATE``: stream generated rows to a file or stdout."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from ._context import client
from ._output import handle_errors, note

FORMATS = ("csv", "json", "ndjson", "sql", "xlsx", "parquet")


def parse_assignments(values: list[str]) -> dict[str, Any]:
    """``--set country=DE --set age=42`` → overrides; values are JSON when they parse as JSON."""
    overrides: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects FIELD=VALUE, got {item!r}")
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    return overrides


@handle_errors
def generate(
    template: Annotated[str, typer.Argument(help="Template id or name.")],
    count: Annotated[int, typer.Option("--count", "-n", help="Rows to generate.")] = 100,
    format: Annotated[str, typer.Option("--format", "-f", help="csv, json, ndjson, sql, xlsx or parquet.")] = "csv",
    seed: Annotated[str | None, typer.Option("--seed", help="Seed (same seed → same bytes).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a field: FIELD=VALUE (repeatable).")] = None,
    version: Annotated[int | None, typer.Option("--version", help="Template version (default latest).")] = None,
    dialect: Annotated[str | None, typer.Option("--dialect", help="sql: postgres, mysql or sqlite.")] = None,
    table_name: Annotated[str | None, typer.Option("--table", help="sql: table name.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default stdout).")] = None,
) -> None:
    """Generate rows from a template, streamed as they are made."""
    if format not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}")
    options = {k: v for k, v in (("dialect", dialect), ("table", table_name)) if v is not None}
    kwargs: dict[str, Any] = dict(count=count, format=format, seed=seed, overrides=parse_assignments(set_ or []),
                                  version=version, options=options or None)
    templates = client().templates
    if output is None:
        result = templates.generate(template, to=sys.stdout.buffer, **kwargs)
        sys.stdout.buffer.flush()
    elif sys.stderr.isatty():
        with Progress(TextColumn("[bold]generating"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                      transient=True) as bar:
            task = bar.add_task("generate", total=None)
            result = templates.generate(template, to=output, progress=lambda n: bar.update(task, completed=n),
                                        **kwargs)
    else:
        result = templates.generate(template, to=output, **kwargs)
    if output is not None:
        note(f"Wrote {count:,} rows ({result.bytes_written:,} bytes) to {output}; "
             f"seed {result.seed}, template version {result.version}.")
