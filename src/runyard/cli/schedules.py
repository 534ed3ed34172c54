"""``runyard schedules …``: run a tool on a cron expression or every N seconds."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, Any

import typer

from runyard.sdk.models import Schedule

from ._context import client
from ._output import JSON_HELP, handle_errors, kv_table, note, outcome, print_json, stdout, table
from .runs import parse_inputs

app = typer.Typer(help="Run tools on a cron expression or an interval.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
ScheduleId = Annotated[str, typer.Argument(help="Schedule id (sch_…).")]
OVERLAPS = ("skip", "queue", "cancel_previous")

ToolOpt = Annotated[str | None, typer.Option("--tool", help="The tool to run (by name).")]
WorkflowOpt = Annotated[str | None, typer.Option("--workflow", help="The workflow to run (by name).")]
CronOpt = Annotated[str | None, typer.Option("--cron", help='5 fields ("*/5 * * * *") or @hourly, @daily…')]
TimezoneOpt = Annotated[str | None, typer.Option("--timezone", "--tz", help="IANA zone the cron reads (UTC).")]
IntervalOpt = Annotated[float | None, typer.Option("--interval", help="Seconds between runs (at least 1).")]
InputOpt = Annotated[list[str] | None, typer.Option("--input", "-i", help="key=value (JSON or string).")]
InputsOpt = Annotated[str | None, typer.Option("--inputs", help="Inputs as JSON, @file or @- (stdin).")]
OverlapOpt = Annotated[str | None, typer.Option(
    "--overlap", help="A tick while the previous run goes on: skip (default), queue or cancel_previous.")]
CatchUpOpt = Annotated[int | None, typer.Option(
    "--max-catch-up", help="At most this many missed ticks fire after downtime (1-100, default 1).")]


def timing(s: Schedule) -> str:
    if s.cron:
        return f"{s.cron} ({s.timezone or 'UTC'})"
    return f"every {s.interval_s:g}s" if s.interval_s is not None else ""


def render_schedule(s: Schedule) -> None:
    pairs = [
        ("id", s.id), ("target", f"{s.target_kind} {s.target_name}"), ("timing", timing(s)),
        ("inputs", s.inputs or {}), ("enabled", s.enabled), ("disabled reason", s.disabled_reason),
        ("overlap", s.overlap), ("max catch-up", s.max_catch_up), ("next fire", s.next_fire_at),
        ("last fire", s.last_fire_at), ("last run", s.last_run_id), ("user", s.user_id),
        ("created", s.created_at), ("updated", s.updated_at),
    ]
    stdout().print(kv_table(pairs))


def _inputs(inputs_json: str | None, pairs: list[str] | None) -> dict[str, Any] | None:
    if inputs_json is None and not pairs:
        return None
    inputs = parse_inputs(inputs_json, pairs or [])
    for key, value in inputs.items():
        if isinstance(value, Path):
            raise typer.BadParameter(f"{key}: a schedule's inputs are values, not files", param_hint="-i")
    return inputs


def _overlap(overlap: str | None) -> str | None:
    if overlap is not None and overlap not in OVERLAPS:
        raise typer.BadParameter("must be skip, queue or cancel_previous", param_hint="--overlap")
    return overlap


@app.command("list")
@handle_errors
def list_schedules(
    limit: Annotated[int, typer.Option("--limit", "-l", help="At most this many schedules.", min=1)] = 50,
    json_output: JsonOpt = False,
) -> None:
    """List schedules, newest first."""
    items = list(itertools.islice(client().schedules.list(limit=min(limit, 1000)), limit))
    if json_output:
        print_json(items)
        return
    rows = [[s.id, s.target_name, timing(s), "yes" if s.enabled else "no", s.overlap, s.next_fire_at,
             s.last_run_id or "", s.disabled_reason or ""] for s in items]
    stdout().print(table(["ID", "TARGET", "TIMING", "ENABLED", "OVERLAP", "NEXT", "LAST RUN", "DISABLED REASON"],
                         rows))


@app.command("get")
@handle_errors
def get(schedule_id: ScheduleId, json_output: JsonOpt = False) -> None:
    """Show one schedule."""
    s = client().schedules.get(schedule_id)
    if json_output:
        print_json(s)
    else:
        render_schedule(s)


@app.command("create")
@handle_errors
def create(
    tool: ToolOpt = None,
    workflow: WorkflowOpt = None,
    cron: CronOpt = None,
    timezone: TimezoneOpt = None,
    interval: IntervalOpt = None,
    input_pairs: InputOpt = None,
    inputs_json: InputsOpt = None,
    overlap: OverlapOpt = None,
    max_catch_up: CatchUpOpt = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it switched off.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Create a schedule: --tool with --cron (and --timezone) or --interval."""
    if tool is None and workflow is None:
        raise typer.BadParameter("give the --tool (or --workflow) to run", param_hint="--tool")
    s = client().schedules.create(
        tool, workflow=workflow, inputs=_inputs(inputs_json, input_pairs), cron=cron, timezone=timezone,
        interval_s=interval, enabled=False if disabled else None, overlap=_overlap(overlap),  # type: ignore[arg-type]
        max_catch_up=max_catch_up,
    )
    outcome(json_output, s, f"Created schedule [bold]{s.id}[/bold] of {s.target_name}: {timing(s)}"
                            f"{'' if s.enabled else ' (disabled)'}; next run {s.next_fire_at or '-'}.")


@app.command("update")
@handle_errors
def update(
    schedule_id: ScheduleId,
    tool: ToolOpt = None,
    workflow: WorkflowOpt = None,
    cron: CronOpt = None,
    timezone: TimezoneOpt = None,
    interval: IntervalOpt = None,
    input_pairs: InputOpt = None,
    inputs_json: InputsOpt = None,
    overlap: OverlapOpt = None,
    max_catch_up: CatchUpOpt = None,
    enabled: Annotated[bool | None, typer.Option("--enable/--disable", help="Switch it on or off.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Change a schedule: only what is given (a new timing, or --enable, starts afresh from now)."""
    s = client().schedules.update(
        schedule_id, tool=tool, workflow=workflow, inputs=_inputs(inputs_json, input_pairs), cron=cron,
        timezone=timezone, interval_s=interval, enabled=enabled, overlap=_overlap(overlap),  # type: ignore[arg-type]
        max_catch_up=max_catch_up,
    )
    outcome(json_output, s, f"Updated schedule [bold]{s.id}[/bold]: {timing(s)}, "
                            f"{'enabled' if s.enabled else 'disabled'}.")


@app.command("delete")
@handle_errors
def delete(schedule_id: ScheduleId, json_output: JsonOpt = False) -> None:
    """Delete a schedule (its runs stay)."""
    client().schedules.delete(schedule_id)
    outcome(json_output, {"deleted": schedule_id}, f"Deleted schedule [bold]{schedule_id}[/bold].")


@app.command("next")
@handle_errors
def next_times(
    schedule_id: ScheduleId,
    count: Annotated[int, typer.Option("--count", "-n", help="How many times (1-100).", min=1, max=100)] = 5,
    json_output: JsonOpt = False,
) -> None:
    """The next times a schedule fires, UTC (one per line)."""
    t = client().schedules.next_times(schedule_id, count)
    if json_output:
        print_json(t)
        return
    out = stdout()
    for when in t.times:
        out.print(when.isoformat().replace("+00:00", "Z"), highlight=False)
    if not t.enabled:
        note("[dim]The schedule is disabled: these are the times it would fire.[/dim]")
