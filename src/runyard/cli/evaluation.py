"""``runyard batches …`` (evaluation batches) and the evaluation commands of ``runyard runs``:
``expected``, ``compare``, ``feedback``."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, Any

import typer

from runyard.sdk.models import Comparison, EvalBatch, Expected

from ._context import client
from ._output import JSON_HELP, handle_errors, kv_table, outcome, print_json, stdout, table
from .runs import _read_json_arg

app = typer.Typer(help="Evaluation batches: one run per example, scored against expected outputs.",
                  no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
BatchId = Annotated[str, typer.Argument(help="Batch id (bat_…).")]
RunId = Annotated[str, typer.Argument(help="Run id.")]


def render_batch(b: EvalBatch) -> None:
    pairs: list[tuple[str, Any]] = [
        ("id", b.id), ("target", f"{b.target.type} {b.target.name}"), ("version", b.version or "latest"),
        ("source", b.source), ("status", b.status), ("examples", b.example_count), ("runs", b.run_count),
        ("counts", ", ".join(f"{k} {v}" for k, v in sorted(b.counts.items())) or "-"),
        ("mean score", "-" if b.mean_score is None else f"{b.mean_score:.3f} ({b.scored} scored)"),
        ("previous batch", b.previous_batch_id or "-"), ("refused", len(b.errors)), ("created", b.created_at)]
    stdout().print(kv_table(pairs))
    if b.regressions:
        rows = [[g.example_id, g.run_id, g.status, g.score, g.previous_score, g.previous_status]
                for g in b.regressions]
        stdout().print(table(["EXAMPLE", "RUN", "STATUS", "SCORE", "BEFORE", "STATUS BEFORE"], rows,
                             title="Regressions"))


def render_comparison(c: Comparison) -> None:
    stdout().print(kv_table([("run", c.run_id), ("score", f"{c.score:.3f}"), ("against", c.against),
                             ("rule", c.rule)]))
    if c.fields:
        stdout().print(table(["PATH", "KIND", "EXPECTED", "ACTUAL"],
                             [[d.path, d.kind, d.expected, d.actual] for d in c.fields]))
    if c.files:
        stdout().print(table(["FILE", "KIND", "SCORE", "ARTIFACT"],
                             [[f.filename, f.kind, f"{f.score:.3f}", f.artifact_path or "-"] for f in c.files]))


def render_expected(e: Expected) -> None:
    stdout().print(kv_table([("id", e.id), ("target", e.target_name), ("example", e.example_id),
                             ("output", e.output if e.has_output else "-"), ("options", e.options or "-"),
                             ("files", ", ".join(f.filename for f in e.files) or "-")]))


# ------------------------------------------------------------------------------- batches


@app.command("create")
@handle_errors
def create(
    tool: Annotated[str | None, typer.Option("--tool", help="The tool to run per example.")] = None,
    workflow: Annotated[str | None, typer.Option("--workflow", help="The workflow to run per example.")] = None,
    version: Annotated[str | None, typer.Option("--version", help="Version (a workflow: number or tag).")] = None,
    examples: Annotated[str | None, typer.Option(
        "--examples", help='[{"example_id", "inputs"}] as JSON, @file or @- (stdin).')] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="ns/name: a dataset with example_id.")] = None,
    set_name: Annotated[str | None, typer.Option("--set", help="A saved set with an example_id column.")] = None,
    columns: Annotated[list[str] | None, typer.Option("--column", help="A column passed as an input.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for every run to end.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Start an evaluation batch: one run of --tool (or --workflow) per example."""
    ver: int | str | None = int(version) if version is not None and version.isdigit() else version
    batch = client().batches.create(
        tool=tool, workflow=workflow, version=ver,
        examples=_read_json_arg(examples, "--examples") if examples is not None else None,
        dataset=dataset, set=set_name, columns=columns)
    if wait:
        batch = client().batches.wait(batch)
    if json_output:
        print_json(batch)
    else:
        render_batch(batch)


@app.command("get")
@handle_errors
def get(batch_id: BatchId, json_output: JsonOpt = False) -> None:
    """Show a batch: counts by status, mean score, regressions against the previous batch."""
    batch = client().batches.get(batch_id)
    if json_output:
        print_json(batch)
    else:
        render_batch(batch)


@app.command("list")
@handle_errors
def list_batches(
    tool: Annotated[str | None, typer.Option("--tool", help="Only this tool's batches.")] = None,
    workflow: Annotated[str | None, typer.Option("--workflow", help="Only this workflow's batches.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-l", help="At most this many batches.", min=1)] = 50,
    json_output: JsonOpt = False,
) -> None:
    """List batches, newest first."""
    items = list(itertools.islice(client().batches.list(tool=tool, workflow=workflow, limit=min(limit, 1000)), limit))
    if json_output:
        print_json(items)
        return
    rows = [[b.id, b.target.name, b.status, b.run_count,
             ", ".join(f"{k} {v}" for k, v in sorted(b.counts.items())), b.created_at] for b in items]
    stdout().print(table(["ID", "TARGET", "STATUS", "RUNS", "COUNTS", "CREATED"], rows))


@app.command("cancel")
@handle_errors
def cancel(batch_id: BatchId, json_output: JsonOpt = False) -> None:
    """Cancel the batch's runs still going."""
    batch = client().batches.cancel(batch_id)
    outcome(json_output, batch, f"Cancelled batch [bold]{batch.id}[/bold].")


# ---------------------------------------------------------------------- runs subcommands


@handle_errors
def expected(
    run_id: RunId,
    copy_output: Annotated[bool, typer.Option("--copy-output", help="The run's output becomes the expected one.")]
    = False,
    artifacts: Annotated[list[str] | None, typer.Option("--artifact", help="Copy this artifact as expected.")] = None,
    files: Annotated[list[Path] | None, typer.Option("--file", help="Upload this file as expected.")] = None,
    options: Annotated[str | None, typer.Option(
        "--options", help="{numeric_tolerance, unordered_paths, key_columns} as JSON or @file.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Show the expected output of the run's example, or set it (--copy-output, --artifact, --file, --options)."""
    opts = _read_json_arg(options, "--options") if options is not None else None
    c = client()
    if copy_output:
        result = c.runs.expected.copy_output(run_id, artifacts=artifacts, options=opts)
        if files:
            result = c.runs.expected.set(run_id, files={Path(f).name: Path(f) for f in files})
    elif artifacts or files or opts is not None:
        result = c.runs.expected.set(run_id, artifacts=artifacts, options=opts,
                                     files={Path(f).name: Path(f) for f in files or []})
    else:
        result = c.runs.expected.get(run_id)
    if json_output:
        print_json(result)
    else:
        render_expected(result)


@handle_errors
def compare(
    run_id: RunId,
    against: Annotated[str | None, typer.Option("--against", help="Compare with this run instead.")] = None,
    expected_value: Annotated[str | None, typer.Option(
        "--expected", help="Compare with this value: JSON, @file or @- (stdin).")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Compare the run with its example's expected output (or --against a run, or --expected a value)."""
    c = client()
    if against is not None:
        result = c.runs.comparison.compare(run_id, other=against)
    elif expected_value is not None:
        result = c.runs.comparison.compare(run_id, expected=_read_json_arg(expected_value, "--expected"))
    else:
        result = c.runs.comparison.get(run_id)
    if json_output:
        print_json(result)
    else:
        render_comparison(result)


@handle_errors
def feedback(
    run_id: RunId,
    rating: Annotated[str | None, typer.Option("--rating", help="up or down.")] = None,
    score: Annotated[float | None, typer.Option("--score", help="0 to 1.")] = None,
    comment: Annotated[str | None, typer.Option("--comment", help="A comment.")] = None,
    labels: Annotated[list[str] | None, typer.Option("--label", help="A label (repeatable).")] = None,
    resolve: Annotated[bool, typer.Option("--resolve", help="Mark the feedback resolved.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Show the run's feedback, or give it (--rating, --score, --comment, --label) or --resolve it."""
    c = client()
    if any(v is not None for v in (rating, score, comment, labels)):
        result = c.runs.feedback.update(run_id, rating=rating, score=score, comment=comment, labels=labels)
    else:
        result = None
    if resolve:
        result = c.runs.feedback.resolve(run_id)
    if result is None:
        result = c.runs.feedback.get(run_id)
    if json_output:
        print_json(result)
    else:
        stdout().print(kv_table([("run", result.run_id), ("rating", result.rating or "-"),
                                 ("score", "-" if result.score is None else result.score),
                                 ("comment", result.comment or "-"), ("labels", ", ".join(result.labels) or "-"),
                                 ("resolved", result.resolved)]))


def register(runs_app: typer.Typer) -> None:
    """Add ``expected``, ``compare`` and ``feedback`` to ``runyard runs``."""
    runs_app.command("expected")(expected)
    runs_app.command("compare")(compare)
    runs_app.command("feedback")(feedback)
