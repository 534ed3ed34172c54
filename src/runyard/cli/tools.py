"""``runyard deploy`` and ``runyard tools …``."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated

import typer

from runyard.sdk.models import Tool, ToolVersion

from ._context import client
from ._output import JSON_HELP, handle_errors, kv_table, outcome, print_json, spinner, stdout, table
from ._source import guess_entry

app = typer.Typer(help="Inspect and manage deployed tools.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


def render_tool(tool: Tool) -> None:
    pairs = [
        ("id", tool.id), ("name", tool.name), ("version", tool.version), ("visibility", tool.visibility),
        ("mode", tool.mode or "function"), ("entrypoint", tool.entrypoint),
        *([("output vars", ", ".join(tool.output_vars or []))] if tool.mode == "script" else []),
        ("description", tool.description or ""),
        ("requirements", ", ".join(tool.requirements or [])),
        ("required secrets", ", ".join(tool.required_secrets or [])),
        ("connections", ", ".join(tool.connections or [])),
        ("workspace files", ", ".join(tool.files or [])),
        ("timeout_s", tool.timeout_s), ("memory_mb", tool.memory_mb), ("retries", tool.retries),
        ("reuse_process", tool.reuse_process), ("retry_on", ", ".join(tool.retry_on or [])),
        ("retry_backoff_s", tool.retry_backoff_s), ("network", tool.network),
        ("created", tool.created_at), ("updated", tool.updated_at),
        ("input schema", tool.input_schema),
    ]
    stdout().print(kv_table(pairs))


@handle_errors
def deploy(
    path: Annotated[Path, typer.Argument(help="A .py file, a .zip, or a package directory.", exists=True)],
    name: Annotated[str | None, typer.Option("--name", "-n", help="Tool name (default: from the file name).")] = None,
    entrypoint: Annotated[str | None, typer.Option("--entrypoint", "-e", help="Function to call (default: main, or the file's only function).")] = None,
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    requirements: Annotated[
        Path | None, typer.Option("--requirements", "-r", help="A requirements.txt file.", exists=True, dir_okay=False)
    ] = None,
    secret: Annotated[list[str] | None, typer.Option("--secret", "-s", help="A secret the tool needs (repeatable).")] = None,
    connection: Annotated[list[str] | None, typer.Option(
        "--connection", help="A connection the tool's runs use, context.connection(name) (repeatable).")] = None,
    workspace_file: Annotated[list[str] | None, typer.Option(
        "--workspace-file", help="A workspace file the tool's runs read, context.files.open(name) (repeatable).",
    )] = None,
    public: Annotated[bool, typer.Option("--public", help="Make the tool public.")] = False,
    timeout_s: Annotated[float | None, typer.Option("--timeout-s", help="Run time limit in seconds.")] = None,
    memory_mb: Annotated[int | None, typer.Option("--memory-mb", help="Memory limit.")] = None,
    retries: Annotated[int | None, typer.Option(
        "--retries", help="Attempts after the first, for the failures --retry-on names (default: a lost worker).",
    )] = None,
    retry_on: Annotated[list[str] | None, typer.Option(
        "--retry-on", help="What --retries covers: error (the tool's own failure), worker_lost, timeout (repeatable).",
    )] = None,
    retry_backoff_s: Annotated[float | None, typer.Option(
        "--retry-backoff-s", help="Wait before attempt n+1: this times 2**(n-1) seconds, at most 3600 (default 0).",
    )] = None,
    reuse_process: Annotated[bool | None, typer.Option(
        "--reuse-process/--fresh-process",
        help="Let successive runs share a process (module state persists; default: a fresh process per run).",
    )] = None,
    network: Annotated[bool | None, typer.Option(
        "--network/--no-network", help="Whether the tool's runs may open sockets (default: yes).",
    )] = None,
    script: Annotated[bool, typer.Option(
        "--script", help="Script mode: no entry function; the inputs become module globals, the output is the "
                         "globals --output-var names.",
    )] = False,
    output_var: Annotated[list[str] | None, typer.Option(
        "--output-var", help="Script mode: a global returned in the output (repeatable).")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Deploy a tool (a new version when the name exists).

    For a .py file without --entrypoint the tool calls `main`, or the file's only public
    function; the entry function's docstring summary is the default description. With
    --script the file runs top to bottom instead (--entrypoint then names a zip's module).
    """
    if output_var and not script:
        raise typer.BadParameter("--output-var is for script-mode tools: add --script", param_hint="'--output-var'")
    if not script:
        guess = guess_entry(path, entrypoint)
        entrypoint, description = guess.entrypoint, description or guess.description
    with spinner(f"Deploying {path}…", enabled=not json_output):
        tool = client().tools.deploy(
            path,
            name=name,
            entrypoint=entrypoint,
            description=description,
            # requirements.txt text: the SDK drops comments and blank lines.
            requirements=requirements.read_text() if requirements else None,
            required_secrets=secret or None,
            connections=connection or None,
            files=workspace_file or None,
            visibility="public" if public else None,
            timeout_s=timeout_s,
            memory_mb=memory_mb,
            retries=retries,
            reuse_process=reuse_process,
            network=network,
            retry_on=retry_on or None,
            retry_backoff_s=retry_backoff_s,
            mode="script" if script else None,
            output_vars=output_var if script else None,
        )
    outcome(json_output, tool, f"Deployed [bold]{tool.name}[/bold] version {tool.version} ({tool.id}).")


@app.command("list")
@handle_errors
def list_tools(
    search: Annotated[str | None, typer.Option("--search", "-q", help="Filter by name/description.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-l", help="At most this many tools.", min=1)] = 50,
    json_output: JsonOpt = False,
) -> None:
    """List tools."""
    page = client().tools.list(search=search, limit=min(limit, 1000))
    tools = list(itertools.islice(page, limit))
    if json_output:
        print_json(tools)
        return
    rows = [[t.name, t.id, t.version, t.visibility, t.description or "", t.updated_at] for t in tools]
    stdout().print(table(["NAME", "ID", "VERSION", "VISIBILITY", "DESCRIPTION", "UPDATED"], rows))


@app.command("get")
@handle_errors
def get_tool(tool: Annotated[str, typer.Argument(help="Tool name or id.")], json_output: JsonOpt = False) -> None:
    """Show one tool."""
    t = client().tools.get(tool)
    if json_output:
        print_json(t)
    else:
        render_tool(t)


@app.command("versions")
@handle_errors
def versions(
    tool: Annotated[str, typer.Argument(help="Tool name or id.")],
    version: Annotated[int | None, typer.Option("--version", "-v", help="Show this one version in full.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """List a tool's versions (or show one with --version)."""
    c = client()
    if version is not None:
        v = c.tools.get_version(tool, version)
        if json_output:
            print_json(v)
        else:
            stdout().print(kv_table([(k, val) for k, val in v.to_dict(mode="python").items()]))
        return
    items: list[ToolVersion] = list(c.tools.versions(tool))
    if json_output:
        print_json(items)
        return
    rows = [[v.version, v.source_kind, (v.code_sha256 or "")[:12], v.entrypoint, v.created_at] for v in items]
    stdout().print(table(["VERSION", "SOURCE", "SHA256", "ENTRYPOINT", "CREATED"], rows))


@app.command("rename")
@handle_errors
def rename_tool(
    tool: Annotated[str, typer.Argument(help="Tool name or id.")],
    name: Annotated[str, typer.Argument(help="Its new name (the id stays; the old name is free at once).")],
    json_output: JsonOpt = False,
) -> None:
    """Rename a tool."""
    renamed = client().tools.rename(tool, name)
    outcome(json_output, renamed, f"Renamed {tool} to [bold]{renamed.name}[/bold] ({renamed.id}).")


@app.command("delete")
@handle_errors
def delete_tool(tool: Annotated[str, typer.Argument(help="Tool name or id.")], json_output: JsonOpt = False) -> None:
    """Delete a tool (soft: its runs stay readable)."""
    client().tools.delete(tool)
    outcome(json_output, {"deleted": tool}, f"Deleted tool [bold]{tool}[/bold].")
