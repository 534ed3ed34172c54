"""``runyard files put|get|ls|rm``: the workspace's files, with a progress bar for large ones."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ._context import client
from ._output import JSON_HELP, handle_errors, outcome, print_json, stderr, stdout, table

app = typer.Typer(help="Manage the workspace's files (tools read those they declare in runs).",
                  no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
#: Files at least this large get a progress bar on a terminal.
BAR_FROM_BYTES = 8 * 1024 * 1024


@contextmanager
def _bar(label: str, total: int | None, show: bool) -> Iterator[Callable[[int, int | None], None] | None]:
    """A progress callback drawing a bar on stderr (None when no bar is wanted)."""
    if not show:
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=stderr(), transient=True) as bar:
        task = bar.add_task(label, total=total)

        def progress(done: int, size: int | None) -> None:
            bar.update(task, completed=done, total=size if size is not None else total)

        yield progress


def _wants_bar(size: int | None, quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty() and (size is None or size >= BAR_FROM_BYTES)


@app.command("put")
@handle_errors
def put(
    path: Annotated[Path, typer.Argument(help="The local file to upload.", exists=True, dir_okay=False)],
    name: Annotated[str | None, typer.Argument(help="Its name in the workspace (default: the file's name).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a file of that name.")] = False,
    content_type: Annotated[str | None, typer.Option("--content-type", help="Default: guessed from the name.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Upload a file (streamed: any size)."""
    size = path.stat().st_size
    with _bar(f"uploading {path.name}", size, _wants_bar(size, quiet)) as progress:
        stored = client().files.upload(path, name, overwrite=overwrite, content_type=content_type,
                                       progress=progress)
    outcome(json_output, stored, f"Stored [bold]{stored.name}[/bold] ({stored.size:,} bytes, sha256 "
                                 f"{stored.sha256[:12]}…).")


@app.command("get")
@handle_errors
def get(
    name: Annotated[str, typer.Argument(help="The workspace file.")],
    dest: Annotated[Path | None, typer.Argument(help="Where to write it: a file or a directory "
                                                     "(default: ./NAME; '-' for stdout).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Download a file (streamed to disk as it arrives)."""
    files = client().files
    if dest is not None and str(dest) == "-":
        files.download(name, sys.stdout.buffer)  # streamed, never whole in memory
        sys.stdout.buffer.flush()
        return
    target = dest if dest is not None else Path.cwd()
    with _bar(f"downloading {name}", None, _wants_bar(None, quiet)) as progress:
        written = files.download(name, target, progress=progress)
    outcome(json_output, {"name": name, "path": str(written)}, f"Wrote [bold]{written}[/bold].")


@app.command("ls")
@handle_errors
def ls(
    prefix: Annotated[str | None, typer.Argument(help="Only names starting with this.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """List the workspace's files."""
    items = list(client().files.list(prefix=prefix))
    if json_output:
        print_json(items)
        return
    rows = [[f.name, f"{f.size:,}", f.content_type, f.sha256[:12], f.updated_at] for f in items]
    stdout().print(table(["NAME", "BYTES", "TYPE", "SHA256", "UPDATED"], rows))


@app.command("rm")
@handle_errors
def rm(name: Annotated[str, typer.Argument(help="The workspace file.")], json_output: JsonOpt = False) -> None:
    """Delete a file."""
    client().files.delete(name)
    outcome(json_output, {"deleted": name}, f"Deleted [bold]{name}[/bold].")
