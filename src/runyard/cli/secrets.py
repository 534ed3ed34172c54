"""``runyard secrets …``: values go in (flag, prompt or stdin), only masks come out."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from runyard.sdk.errors import ConflictError

from ._context import client
from ._output import JSON_HELP, fail, handle_errors, outcome, print_json, stdout, table

app = typer.Typer(help="Manage secrets available to tools.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


@app.command("set")
@handle_errors
def set_secret(
    name: Annotated[str, typer.Argument(help="Secret name (the env var the tool sees).")],
    value: Annotated[
        str | None, typer.Option("--value", help="The value (prefer stdin or the prompt: flags end up in shell history).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing secret.")] = False,
    display_name: Annotated[str | None, typer.Option("--display-name")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    category: Annotated[str | None, typer.Option("--category")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Store a secret; the value comes from --value, else a hidden prompt, else stdin."""
    if value is None:
        if sys.stdin.isatty():
            value = typer.prompt(f"Value of {name}", hide_input=True)
        else:
            # Only the final newline is the shell's; the rest belongs to the value.
            value = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    if not value:
        raise ValueError("empty secret value")
    try:
        s = client().secrets.set(
            name, value, display_name=display_name, description=description, category=category, force=force
        )
    except ConflictError as exc:
        if force:
            raise
        # The API speaks of its body field; on the command line it is a flag.
        rid = f", request_id: {exc.request_id}" if exc.request_id else ""
        raise fail(f"secret {name!r} already exists; add --force to overwrite it ({exc.code}{rid})",
                   json_mode=json_output, body=exc.body if isinstance(exc.body, dict) else None) from None
    outcome(json_output, s, f"Stored secret [bold]{s.name}[/bold] ({s.masked_value}).")


@app.command("list")
@handle_errors
def list_secrets(json_output: JsonOpt = False) -> None:
    """List secrets (masked)."""
    items = list(client().secrets.list())
    if json_output:
        print_json(items)
        return
    rows = [[s.name, s.masked_value, s.category, s.description, s.updated_at] for s in items]
    stdout().print(table(["NAME", "VALUE", "CATEGORY", "DESCRIPTION", "UPDATED"], rows))


@app.command("delete")
@handle_errors
def delete_secret(name: Annotated[str, typer.Argument()], json_output: JsonOpt = False) -> None:
    """Delete a secret."""
    client().secrets.delete(name)
    outcome(json_output, {"deleted": name}, f"Deleted secret [bold]{name}[/bold].")
