"""``runyard connections …``: external systems' settings (admins), checks and metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ._context import client
from ._output import JSON_HELP, fmt_time, handle_errors, kv_table, outcome, print_json, stdout, table

app = typer.Typer(help="Manage connections to databases, APIs, buckets and MCP servers (admins).",
                  no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


def _config(config: str | None, settings: list[str] | None) -> dict[str, Any] | None:
    """``--config`` (JSON, or @file) with ``--set path=value`` applied over it (dotted paths
    nest: ``auth.type=bearer``; a value that parses as JSON is taken as such: ports, booleans)."""
    out: dict[str, Any] | None = None
    if config is not None:
        text = Path(config[1:]).read_text() if config.startswith("@") else config
        loaded = json.loads(text)
        if not isinstance(loaded, dict):
            raise ValueError("--config must be a JSON object")
        out = loaded
    for item in settings or []:
        path, sep, raw = item.partition("=")
        if not sep or not path:
            raise ValueError(f"--set takes path=value, not {item!r}")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        out = out if out is not None else {}
        node = out
        *parents, last = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return out


def _status(c: Any) -> str:
    s = c.status
    if s.state == "ok":
        return f"ok ({s.latency_ms} ms, {fmt_time(s.checked_at)})"
    if s.state == "failed":
        return f"failed: {s.error} ({fmt_time(s.checked_at)})"
    return "unknown (not checked)"


@app.command("ls")
@handle_errors
def list_connections(
    type: Annotated[str | None, typer.Option("--type", help="Only connections of this type.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """List connections (secret parts as references only)."""
    items = list(client().connections.list(type=type))
    if json_output:
        print_json(items)
        return
    rows = [[c.name, c.type, c.status.state, c.status.error or "", c.status.checked_at] for c in items]
    stdout().print(table(["NAME", "TYPE", "STATUS", "ERROR", "CHECKED"], rows))


@app.command("add")
@handle_errors
def add_connection(
    name: Annotated[str, typer.Argument(help="Connection name (a lower-case slug).")],
    type: Annotated[str, typer.Option("--type", help="postgres, mysql, http, openapi, odata, s3 or mcp.")],
    config: Annotated[str | None, typer.Option("--config", help="Settings as JSON, or @file.json.")] = None,
    settings: Annotated[list[str] | None, typer.Option(
        "--set", help='path=value, repeatable (auth.token={"secret": "NAME"} references a secret).')] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Check it right away.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Add a connection. Secret parts given as values are stored as secrets; prefer
    `runyard secrets set` and a reference ({"secret": "NAME"}) to keep them out of shell history."""
    made = client().connections.create(name, type, _config(config, settings) or {})
    if verify:
        made = client().connections.verify(made.id)
    outcome(json_output, made, f"Added connection [bold]{made.name}[/bold] ({made.type}): {_status(made)}.")


@app.command("set")
@handle_errors
def update_connection(
    name: Annotated[str, typer.Argument()],
    config: Annotated[str | None, typer.Option("--config", help="Settings to merge, as JSON or @file.json.")] = None,
    settings: Annotated[list[str] | None, typer.Option("--set", help="path=value, repeatable.")] = None,
    rename: Annotated[str | None, typer.Option("--rename", help="A new name.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Change a connection's settings (merged key by key) or name."""
    changed = client().connections.update(name, name=rename, config=_config(config, settings))
    outcome(json_output, changed, f"Updated connection [bold]{changed.name}[/bold].")


@app.command("show")
@handle_errors
def show_connection(name: Annotated[str, typer.Argument()], json_output: JsonOpt = False) -> None:
    """A connection's settings (secret parts as references) and last check."""
    c = client().connections.get(name)
    if json_output:
        print_json(c)
        return
    stdout().print(kv_table([("name", c.name), ("id", c.id), ("type", c.type), ("status", _status(c)),
                             ("config", json.dumps(c.config, indent=2)), ("updated", c.updated_at)]))


@app.command("verify")
@handle_errors
def verify_connection(name: Annotated[str, typer.Argument()], json_output: JsonOpt = False) -> None:
    """Check a connection for real; exits 1 when the check failed."""
    c = client().connections.verify(name)
    outcome(json_output, c, f"[bold]{c.name}[/bold]: {_status(c)}")
    if c.status.state != "ok":
        raise typer.Exit(1)


@app.command("metadata")
@handle_errors
def connection_metadata(name: Annotated[str, typer.Argument()], json_output: JsonOpt = False) -> None:
    """What the system holds: tables and columns, operations, entity sets, objects."""
    found = client().connections.metadata(name)
    meta = found.metadata
    if json_output:
        print_json(found)
        return
    if "schemas" in meta and isinstance(meta["schemas"], list) and meta["schemas"] and isinstance(
            meta["schemas"][0], dict):
        rows = [[s["name"], t["name"], ", ".join(f"{c['name']} {c['type']}" for c in t["columns"])]
                for s in meta["schemas"] for t in s["tables"]]
        stdout().print(table(["SCHEMA", "TABLE", "COLUMNS"], rows))
    elif "operations" in meta:
        rows = [[o["method"], o["path"], o.get("operation_id") or "", o.get("summary") or ""]
                for o in meta["operations"]]
        stdout().print(table(["METHOD", "PATH", "OPERATION", "SUMMARY"], rows))
    elif "entity_sets" in meta:
        rows = [[e["name"], e["entity_type"]] for e in meta["entity_sets"]]
        stdout().print(table(["ENTITY SET", "TYPE"], rows))
    elif "objects" in meta:
        rows = [[p, "prefix"] for p in meta["prefixes"]] + [[o["key"], o["size"]] for o in meta["objects"]]
        stdout().print(table(["KEY", "SIZE"], rows))
    else:
        print_json(meta)
    if meta.get("truncated"):
        stdout().print("(capped: more exists)")


@app.command("rm")
@handle_errors
def delete_connection(name: Annotated[str, typer.Argument()], json_output: JsonOpt = False) -> None:
    """Delete a connection and the secrets it created."""
    client().connections.delete(name)
    outcome(json_output, {"deleted": name}, f"Deleted connection [bold]{name}[/bold].")
