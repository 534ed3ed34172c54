"""``runyard email-triggers …``: mail sent to an alias address runs a tool."""

from __future__ import annotations

import itertools
from typing import Annotated

import typer

from runyard.sdk.models import EmailRecord, EmailTrigger

from ._context import client
from ._output import JSON_HELP, handle_errors, kv_table, outcome, print_json, stdout, table

app = typer.Typer(help="Manage email triggers: mail to an alias runs a tool.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
TriggerId = Annotated[str, typer.Argument(help="Email trigger id (emt_…).")]

ToolOpt = Annotated[str | None, typer.Option("--tool", help="The tool to run (by name).")]
WorkflowOpt = Annotated[str | None, typer.Option("--workflow", help="The workflow to run (by name).")]
SendersOpt = Annotated[list[str] | None, typer.Option(
    "--allow-sender", help="user@example.com, @example.com or @*.example.com (repeatable; none: everyone). "
                           "Filtering, not authentication.")]
MaxBytesOpt = Annotated[int | None, typer.Option(
    "--max-message-bytes", help="Largest message taken (1 KiB - 1 GiB; default: the node's limit).")]


def render_trigger(t: EmailTrigger) -> None:
    pairs = [
        ("id", t.id), ("target", f"{t.target_kind} {t.target_name}"), ("aliases", "\n".join(t.aliases)),
        ("allowed senders", ", ".join(t.allowed_senders) or "everyone"), ("max message bytes", t.max_message_bytes),
        ("enabled", t.enabled), ("disabled reason", t.disabled_reason), ("user", t.user_id),
        ("created", t.created_at), ("updated", t.updated_at),
    ]
    stdout().print(kv_table(pairs))


@app.command("list")
@handle_errors
def list_triggers(
    limit: Annotated[int, typer.Option("--limit", "-l", help="At most this many triggers.", min=1)] = 50,
    json_output: JsonOpt = False,
) -> None:
    """List email triggers, newest first."""
    items = list(itertools.islice(client().email_triggers.list(limit=min(limit, 1000)), limit))
    if json_output:
        print_json(items)
        return
    rows = [[t.id, t.target_name, ", ".join(t.aliases), ", ".join(t.allowed_senders) or "everyone",
             "yes" if t.enabled else "no", t.disabled_reason or ""] for t in items]
    stdout().print(table(["ID", "TARGET", "ALIASES", "ALLOWED SENDERS", "ENABLED", "DISABLED REASON"], rows))


@app.command("get")
@handle_errors
def get(trigger_id: TriggerId, json_output: JsonOpt = False) -> None:
    """Show one email trigger."""
    t = client().email_triggers.get(trigger_id)
    if json_output:
        print_json(t)
    else:
        render_trigger(t)


@app.command("create")
@handle_errors
def create(
    tool: ToolOpt = None,
    workflow: WorkflowOpt = None,
    alias: Annotated[list[str] | None, typer.Option(
        "--alias", "-a", help="An address (local@domain) whose mail it takes (repeatable).")] = None,
    allow_sender: SendersOpt = None,
    max_message_bytes: MaxBytesOpt = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it switched off.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Create an email trigger."""
    if tool is None and workflow is None:
        raise typer.BadParameter("give the --tool (or --workflow) to run", param_hint="--tool")
    t = client().email_triggers.create(tool, workflow=workflow, aliases=alias or None,
                                       allowed_senders=allow_sender or None, max_message_bytes=max_message_bytes,
                                       enabled=False if disabled else None)
    outcome(json_output, t, f"Created email trigger [bold]{t.id}[/bold] of {t.target_name}"
                            f"{': mail to ' + ', '.join(t.aliases) if t.aliases else ' (no alias yet: add-alias)'}.")


@app.command("update")
@handle_errors
def update(
    trigger_id: TriggerId,
    tool: ToolOpt = None,
    workflow: WorkflowOpt = None,
    allow_sender: SendersOpt = None,
    allow_everyone: Annotated[bool, typer.Option("--allow-everyone", help="Clear the sender allow-list.")] = False,
    max_message_bytes: MaxBytesOpt = None,
    enabled: Annotated[bool | None, typer.Option("--enable/--disable", help="Switch it on or off.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Change an email trigger: only what is given (--allow-sender replaces the list)."""
    if allow_everyone and allow_sender:
        raise typer.BadParameter("give --allow-sender or --allow-everyone, not both", param_hint="--allow-everyone")
    senders = [] if allow_everyone else (allow_sender or None)
    t = client().email_triggers.update(trigger_id, tool=tool, workflow=workflow, allowed_senders=senders,
                                       max_message_bytes=max_message_bytes, enabled=enabled)
    outcome(json_output, t, f"Updated email trigger [bold]{t.id}[/bold]: runs {t.target_name}, "
                            f"{'enabled' if t.enabled else 'disabled'}.")


@app.command("delete")
@handle_errors
def delete(trigger_id: TriggerId, json_output: JsonOpt = False) -> None:
    """Delete an email trigger and its aliases."""
    client().email_triggers.delete(trigger_id)
    outcome(json_output, {"deleted": trigger_id}, f"Deleted email trigger [bold]{trigger_id}[/bold].")


@app.command("aliases")
@handle_errors
def aliases(trigger_id: TriggerId, json_output: JsonOpt = False) -> None:
    """List a trigger's aliases with their ids."""
    items = list(client().email_triggers.list_aliases(trigger_id))
    if json_output:
        print_json(items)
        return
    stdout().print(table(["ID", "ADDRESS", "CREATED"], [[a.id, a.address, a.created_at] for a in items]))


@app.command("add-alias")
@handle_errors
def add_alias(
    trigger_id: TriggerId,
    address: Annotated[str, typer.Argument(help="A full address, local@domain.")],
    json_output: JsonOpt = False,
) -> None:
    """Add an address whose mail the trigger takes."""
    a = client().email_triggers.create_alias(trigger_id, address)
    outcome(json_output, a, f"Added alias [bold]{a.address}[/bold] ({a.id}) to {trigger_id}.")


@app.command("remove-alias")
@handle_errors
def remove_alias(
    trigger_id: TriggerId,
    alias: Annotated[str, typer.Argument(help="The alias's id (ema_…) or its address.")],
    json_output: JsonOpt = False,
) -> None:
    """Remove an alias: mail to it is refused from then on."""
    c = client()
    alias_id = alias
    if "@" in alias:
        wanted = alias.strip().lower()
        match = next((a for a in c.email_triggers.list_aliases(trigger_id) if a.address == wanted), None)
        if match is None:
            raise ValueError(f"{trigger_id} has no alias {alias!r}")
        alias_id = match.id
    c.email_triggers.delete_alias(trigger_id, alias_id)
    outcome(json_output, {"deleted": alias_id, "trigger_id": trigger_id}, f"Removed alias {alias} from {trigger_id}.")


def _record_rows(items: list[EmailRecord], with_trigger: bool) -> list[list[object]]:
    return [[r.id, *([r.trigger_id or ""] if with_trigger else []), r.received_at, r.status,
             r.reason or "", r.sender or "", r.subject or "", r.run_id or ""] for r in items]


@app.command("records")
@handle_errors
def records(
    trigger_id: Annotated[str | None, typer.Argument(
        help="Email trigger id; without it, every record of the workspace (admin keys).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-l", help="At most this many records.", min=1)] = 50,
    json_output: JsonOpt = False,
) -> None:
    """What became of the mail sent to a trigger's aliases (accepted with a run, or why not), newest first."""
    c = client()
    page = (c.email_triggers.records(trigger_id, limit=min(limit, 1000)) if trigger_id
            else c.email_triggers.all_records(limit=min(limit, 1000)))
    items = list(itertools.islice(page, limit))
    if json_output:
        print_json(items)
        return
    columns = ["ID", *([] if trigger_id else ["TRIGGER"]), "RECEIVED", "STATUS", "REASON", "SENDER", "SUBJECT", "RUN"]
    stdout().print(table(columns, _record_rows(items, not trigger_id)))
