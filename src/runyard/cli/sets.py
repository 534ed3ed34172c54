"""``runyard sets …``: saved sets of rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ._context import client
from ._output import JSON_HELP, handle_errors, note, outcome, print_json, stdout, table

app = typer.Typer(help="Manage saved sets (named, versioned rows).", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


@app.command("save")
@handle_errors
def save(
    name: Annotated[str, typer.Argument(help="Set name; an existing name gets a new version.")],
    file: Annotated[Path, typer.Argument(help="JSON file: a list of row objects.", exists=True, dir_okay=False)],
    json_output: JsonOpt = False,
) -> None:
    """Save rows from a JSON file."""
    s = client().sets.save(name, json.loads(file.read_text()))
    outcome(json_output, s, f"Saved set [bold]{s.name}[/bold] version {s.version} ({s.row_count:,} rows).")


@app.command("list")
@handle_errors
def list_sets(json_output: JsonOpt = False) -> None:
    """List saved sets."""
    items = list(client().sets.list())
    if json_output:
        print_json(items)
        return
    rows = [[s.name, s.latest_version, s.row_count, ", ".join(c["name"] for c in s.columns)] for s in items]
    stdout().print(table(["NAME", "VERSION", "ROWS", "COLUMNS"], rows))


@app.command("get")
@handle_errors
def get(
    name: Annotated[str, typer.Argument(help="Set name.")],
    version: Annotated[int | None, typer.Option("--version")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Rows to fetch (server default 10,000).")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Show a set: its rows as a table (the whole set as JSON with --json)."""
    s = client().sets.get(name, version=version, limit=limit)
    if json_output:
        print_json(s)
        return
    note(f"[bold]{s.name}[/bold] version {s.version}/{s.latest_version}, {s.row_count:,} rows")
    columns = [c["name"] for c in s.columns]
    stdout().print(table([c.upper() for c in columns], [[r.get(c) for c in columns] for r in s.rows or []]))


@app.command("delete")
@handle_errors
def delete(name: Annotated[str, typer.Argument(help="Set name.")], json_output: JsonOpt = False) -> None:
    """Delete a set and all its versions."""
    client().sets.delete(name)
    outcome(json_output, {"deleted": name}, f"Deleted set {name}.")
