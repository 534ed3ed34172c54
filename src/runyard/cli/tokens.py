"""``runyard tokens …``: API keys (admin)."""

from __future__ import annotations

from typing import Annotated

import typer

from runyard.sdk.models import Token
from runyard.sdk.resources.tokens import parse_grant

from ._context import client
from ._output import JSON_HELP, handle_errors, note, outcome, print_json, stdout, table

app = typer.Typer(help="Manage API tokens.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


@app.command("create")
@handle_errors
def create(
    name: Annotated[str, typer.Argument(help="A label for the token.")],
    role: Annotated[str, typer.Option("--role", "-r", help="admin, member or viewer.")] = "member",
    expires_at: Annotated[
        str | None, typer.Option("--expires-at", help="RFC 3339 time, e.g. 2030-01-01T00:00:00Z.")
    ] = None,
    tool: Annotated[list[str] | None, typer.Option("--tool", help="Restrict to this tool (repeatable).")] = None,
    grant: Annotated[
        list[str] | None,
        typer.Option("--grant", help="Restrict its data to NS[/DS][:read|write] (repeatable; read by default)."),
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="Whose key it is (admins; default: yours).")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Create a token; its key is printed this once."""
    if role not in ("admin", "member", "viewer"):
        raise typer.BadParameter("must be admin, member or viewer", param_hint="--role")
    grants = []
    for text in grant or []:
        try:
            grants.append(parse_grant(text))
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--grant") from None
    t = client().tokens.create(
        name, role=role, expires_at=expires_at, tools=tool or None, grants=grants or None, user=user  # type: ignore[arg-type]
    )
    if json_output:
        print_json(t)
        return
    stdout().print(t.key or "")
    note(f"Token [bold]{t.name}[/bold] ({t.id}, {t.role}). Store the key now: it will not be shown again.")


@app.command("list")
@handle_errors
def list_tokens(json_output: JsonOpt = False) -> None:
    """List tokens (never their keys)."""
    items = list(client().tokens.list())
    if json_output:
        print_json(items)
        return
    rows = [[t.id, t.name, t.role, t.prefix, _restrictions(t), t.expires_at, t.last_used_at] for t in items]
    stdout().print(table(["ID", "NAME", "ROLE", "PREFIX", "RESTRICTIONS", "EXPIRES", "LAST USED"], rows))


def _restrictions(t: Token) -> str:
    """``tools: a, b; data: ns/ds (write), ns2 (read)``: what narrows the key, if anything."""
    r = t.restrictions
    if r is None:
        return ""
    parts = []
    if r.tools:
        parts.append("tools: " + ", ".join(r.tools))
    if r.grants:
        parts.append("data: " + ", ".join(
            f"{g.namespace}{'/' + g.dataset if g.dataset else ''} ({g.access})" for g in r.grants))
    return "; ".join(parts)


@app.command("get")
@handle_errors
def get(token_id: Annotated[str, typer.Argument()], json_output: JsonOpt = False) -> None:
    """Show one token."""
    t = client().tokens.get(token_id)
    if json_output:
        print_json(t)
        return
    stdout().print(table(["ID", "NAME", "ROLE", "PREFIX", "USER", "RESTRICTIONS", "EXPIRES", "LAST USED"],
                         [[t.id, t.name, t.role, t.prefix, t.user_id, _restrictions(t), t.expires_at,
                           t.last_used_at]]))


@app.command("permissions")
@handle_errors
def permissions(token_id: Annotated[str, typer.Argument()], json_output: JsonOpt = False) -> None:
    """What a token may do: its role, tools and access to each namespace it reaches."""
    p = client().tokens.permissions(token_id)
    if json_output:
        print_json(p)
        return
    note(f"Token {p.token_id} of user [bold]{p.user or '?'}[/bold], role {p.role}; "
         f"tools: {', '.join(p.tools) if p.tools is not None else 'all'}")
    rows = []
    for ns in p.namespaces:
        rows.append([ns.namespace, "", ns.access or ""])
        rows.extend([ns.namespace, ds, access] for ds, access in sorted(ns.datasets.items()))
    stdout().print(table(["NAMESPACE", "DATASET", "ACCESS"], rows))


@app.command("delete")
@handle_errors
def delete(token_id: Annotated[str, typer.Argument()], json_output: JsonOpt = False) -> None:
    """Revoke a token."""
    client().tokens.delete(token_id)
    outcome(json_output, {"deleted": token_id}, f"Deleted token [bold]{token_id}[/bold].")
