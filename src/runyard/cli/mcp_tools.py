"""``runyard mcp-tools …``: the tools of the workspace's verified MCP connections, by alias,
and runs of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ._context import client
from ._output import JSON_HELP, handle_errors, print_json, stdout, table

app = typer.Typer(help="List and execute MCP servers' tools (mcp connections) by alias.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


def _params(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    loaded = json.loads(Path(text[1:]).read_text() if text.startswith("@") else text)
    if not isinstance(loaded, dict):
        raise ValueError("--params must be a JSON object")
    return loaded


@app.command("ls")
@handle_errors
def list_mcp_tools(json_output: JsonOpt = False) -> None:
    """List the tools verified MCP connections offer (alias, server, description)."""
    items = client().mcp_tools.list()
    if json_output:
        print_json(items)
        return
    rows = [[t.alias, t.server, t.server_status, t.description] for t in items]
    stdout().print(table(["ALIAS", "SERVER", "STATUS", "DESCRIPTION"], rows))


@app.command("exec")
@handle_errors
def execute_mcp_tool(
    alias: Annotated[str, typer.Argument(help="mcp_<server>_<tool>, as `runyard mcp-tools ls` lists it.")],
    params: Annotated[str | None, typer.Option("--params", help="The tool's arguments as a JSON object, or @file.")]
    = None,
    json_output: JsonOpt = False,
) -> None:
    """Execute a tool (a run of type mcp_tool) and wait for it: its output, or its error (exit 1)."""
    run = client().mcp_tools.execute(alias, _params(params))
    if json_output:
        print_json(run)
    elif run.status == "succeeded":
        out = run.output
        stdout().print(out if isinstance(out, str) else json.dumps(out, indent=2), markup=False)
    else:
        error = run.error
        reason = f"{error.type}: {error.message}" if error is not None else "no error recorded"
        typer.echo(f"run {run.id} {run.status}: {reason}", err=True)
    if run.status != "succeeded":
        raise typer.Exit(1)
