"""``runyard webhooks …``: URLs that run a tool with the JSON (or form fields) posted to them."""

from __future__ import annotations

import itertools
import os
from typing import Annotated, Any

import typer

from runyard.sdk.models import Webhook

from ._context import client
from ._output import JSON_HELP, handle_errors, kv_table, note, outcome, print_json, stdout, table

app = typer.Typer(help="Manage webhooks: URLs that run tools.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
WebhookId = Annotated[str, typer.Argument(help="Webhook id (whk_…).")]

ToolOpt = Annotated[str | None, typer.Option("--tool", help="The tool to run (by name).")]
WorkflowOpt = Annotated[str | None, typer.Option("--workflow", help="The workflow to run (by name).")]
RateOpt = Annotated[float | None, typer.Option("--rate", help="Calls per second allowed (default 10).")]
BurstOpt = Annotated[int | None, typer.Option("--burst", help="Calls allowed at once (default 20).")]
SecretEnvOpt = Annotated[str | None, typer.Option(
    "--signature-secret-env", metavar="VAR",
    help="Check an HMAC of each body, with the secret read from this environment variable.")]
HeaderOpt = Annotated[str | None, typer.Option(
    "--signature-header", help="The header carrying the signature (default X-Hub-Signature-256).")]
AlgorithmOpt = Annotated[str | None, typer.Option("--signature-algorithm", help="sha256 (default) or sha1.")]
FormatOpt = Annotated[str | None, typer.Option(
    "--signature-format", help="prefixed (sha256=<hex>, default), hex or stripe.")]
TimestampOpt = Annotated[str | None, typer.Option(
    "--signature-timestamp-header", help="A header whose timestamp the HMAC covers too (replay window).")]
ToleranceOpt = Annotated[float | None, typer.Option(
    "--signature-tolerance", help="Seconds a signed timestamp may be off (default 300).")]


def _signature(secret_env: str | None, header: str | None, algorithm: str | None, fmt: str | None,
               timestamp_header: str | None, tolerance_s: float | None) -> dict[str, Any] | None:
    """The signature settings, the secret taken from the environment (never the command line)."""
    settings = {"header": header, "algorithm": algorithm, "format": fmt, "timestamp_header": timestamp_header,
                "tolerance_s": tolerance_s}
    if secret_env is None:
        if any(v is not None for v in settings.values()):
            raise typer.BadParameter("signature settings need the secret: give --signature-secret-env VAR",
                                     param_hint="--signature-secret-env")
        return None
    secret = os.environ.get(secret_env)
    if not secret:
        raise typer.BadParameter(f"the environment variable {secret_env} is not set or empty",
                                 param_hint="--signature-secret-env")
    return {"secret": secret, **{k: v for k, v in settings.items() if v is not None}}


def _signature_text(w: Webhook) -> str:
    s = w.signature
    if s is None:
        return "none"
    extra = f", timestamp in {s.timestamp_header} (±{s.tolerance_s:g}s)" if s.timestamp_header else ""
    return f"{s.header}: {s.algorithm} {s.format}{extra}"


def render_webhook(w: Webhook) -> None:
    pairs = [
        ("id", w.id), ("target", f"{w.target_kind} {w.target_name}"), ("enabled", w.enabled),
        ("disabled reason", w.disabled_reason), ("signature", _signature_text(w)),
        ("rate", f"{w.rate_per_s:g}/s, burst {w.burst}" if w.rate_per_s is not None else None),
        ("user", w.user_id), ("created", w.created_at), ("updated", w.updated_at), ("last used", w.last_used_at),
    ]
    stdout().print(kv_table(pairs))


@app.command("list")
@handle_errors
def list_webhooks(
    limit: Annotated[int, typer.Option("--limit", "-l", help="At most this many webhooks.", min=1)] = 50,
    json_output: JsonOpt = False,
) -> None:
    """List webhooks, newest first (never their URLs)."""
    items = list(itertools.islice(client().webhooks.list(limit=min(limit, 1000)), limit))
    if json_output:
        print_json(items)
        return
    rows = [[w.id, w.target_name, "yes" if w.enabled else "no", "yes" if w.signature else "no",
             f"{w.rate_per_s:g}/s" if w.rate_per_s is not None else "", w.last_used_at, w.disabled_reason or ""]
            for w in items]
    stdout().print(table(["ID", "TARGET", "ENABLED", "SIGNED", "RATE", "LAST USED", "DISABLED REASON"], rows))


@app.command("get")
@handle_errors
def get(webhook_id: WebhookId, json_output: JsonOpt = False) -> None:
    """Show one webhook (its URL was shown once, at creation)."""
    w = client().webhooks.get(webhook_id)
    if json_output:
        print_json(w)
    else:
        render_webhook(w)


@app.command("create")
@handle_errors
def create(
    tool: ToolOpt = None,
    workflow: WorkflowOpt = None,
    secret_env: SecretEnvOpt = None,
    header: HeaderOpt = None,
    algorithm: AlgorithmOpt = None,
    fmt: FormatOpt = None,
    timestamp_header: TimestampOpt = None,
    tolerance_s: ToleranceOpt = None,
    rate: RateOpt = None,
    burst: BurstOpt = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it switched off.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Create a webhook; its URL (the credential) is printed this once."""
    if tool is None and workflow is None:
        raise typer.BadParameter("give the --tool (or --workflow) to run", param_hint="--tool")
    signature = _signature(secret_env, header, algorithm, fmt, timestamp_header, tolerance_s)
    w = client().webhooks.create(tool, workflow=workflow, signature=signature, rate_per_s=rate, burst=burst,
                                 enabled=False if disabled else None)
    if json_output:
        print_json(w)
        return
    stdout().print(w.url or "", highlight=False, soft_wrap=True)
    signed = f"; requests must be signed ({_signature_text(w)})" if w.signature else ""
    note(f"Webhook [bold]{w.id}[/bold] runs {w.target_name}{signed}. "
         "Store the URL now: it is the credential and will not be shown again.")


@app.command("update")
@handle_errors
def update(
    webhook_id: WebhookId,
    tool: ToolOpt = None,
    workflow: WorkflowOpt = None,
    secret_env: SecretEnvOpt = None,
    header: HeaderOpt = None,
    algorithm: AlgorithmOpt = None,
    fmt: FormatOpt = None,
    timestamp_header: TimestampOpt = None,
    tolerance_s: ToleranceOpt = None,
    no_signature: Annotated[bool, typer.Option("--no-signature", help="Stop checking signatures.")] = False,
    rate: RateOpt = None,
    burst: BurstOpt = None,
    enabled: Annotated[bool | None, typer.Option("--enable/--disable", help="Switch it on or off.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Change a webhook: only what is given (its URL stays the same)."""
    signature = _signature(secret_env, header, algorithm, fmt, timestamp_header, tolerance_s)
    if no_signature and signature is not None:
        raise typer.BadParameter("give signature settings or --no-signature, not both", param_hint="--no-signature")
    w = client().webhooks.update(webhook_id, tool=tool, workflow=workflow, signature=signature,
                                 remove_signature=no_signature, rate_per_s=rate, burst=burst, enabled=enabled)
    outcome(json_output, w, f"Updated webhook [bold]{w.id}[/bold]: runs {w.target_name}, "
                            f"{'enabled' if w.enabled else 'disabled'}, signature {_signature_text(w)}.")


@app.command("delete")
@handle_errors
def delete(webhook_id: WebhookId, json_output: JsonOpt = False) -> None:
    """Delete a webhook: its URL answers 404 from then on."""
    client().webhooks.delete(webhook_id)
    outcome(json_output, {"deleted": webhook_id}, f"Deleted webhook [bold]{webhook_id}[/bold].")
