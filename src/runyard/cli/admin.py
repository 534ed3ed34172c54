"""``runyard admin …``: what the operator of a deployment sets (the workspace's plan)."""

from __future__ import annotations

from typing import Annotated

import typer

from runyard.sdk.models import WorkspacePlan

from ._context import client
from ._output import JSON_HELP, handle_errors, kv_table, print_json, stdout

app = typer.Typer(help="Operator settings (the bootstrap admin key).", no_args_is_help=True)
plan_app = typer.Typer(help="The workspace's plan: requests per minute, generated rows per hour.",
                       no_args_is_help=True)
app.add_typer(plan_app, name="plan")

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
PLANS = ("free", "pro", "enterprise", "custom", "unlimited")


def _show(plan: WorkspacePlan, json_output: bool) -> None:
    if json_output:
        print_json(plan)
        return

    def limit(value: int | None) -> str:
        return "unlimited" if value is None else f"{value:,}"

    stdout().print(kv_table([("plan", plan.plan), ("requests/min", limit(plan.requests_per_minute)),
                             ("rows/hour", limit(plan.rows_per_hour)),
                             ("storage bytes", "server default" if plan.storage_bytes is None
                              else f"{plan.storage_bytes:,}"), ("source", plan.source),
                             ("counted by", plan.counted_by), ("updated", plan.updated_at)]))


@plan_app.command("get")
@handle_errors
def get(json_output: JsonOpt = False) -> None:
    """Show the workspace's plan and limits."""
    _show(client().plans.get(), json_output)


@plan_app.command("set")
@handle_errors
def set_plan(
    plan: Annotated[str, typer.Argument(help="free, pro, enterprise, custom or unlimited.")],
    requests_per_minute: Annotated[
        int | None, typer.Option("--requests-per-minute", help="custom/enterprise: API requests per minute.")
    ] = None,
    rows_per_hour: Annotated[
        int | None, typer.Option("--rows-per-hour", help="custom/enterprise: generated rows per hour.")
    ] = None,
    storage_bytes: Annotated[
        int | None, typer.Option("--storage-bytes", help="Any plan: the workspace's storage quota in bytes.")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Set the workspace's plan (the operator's key only; every API node applies it within seconds)."""
    if plan not in PLANS:
        raise typer.BadParameter(f"must be one of {', '.join(PLANS)}", param_hint="PLAN")
    _show(client().plans.set(plan, requests_per_minute=requests_per_minute,  # type: ignore[arg-type]
                             rows_per_hour=rows_per_hour, storage_bytes=storage_bytes), json_output)
