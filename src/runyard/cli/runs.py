"""``runyard run`` and ``runyard runs …``."""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text
from rich.tree import Tree

from runyard.sdk.errors import WaitTimeoutError
from runyard.sdk.models import Run, TraceStep

from ._context import client
from ._output import (
    JSON_HELP,
    STATUS_STYLE,
    Exit,
    handle_errors,
    kv_table,
    note,
    outcome,
    print_json,
    spinner,
    status_text,
    stderr,
    stdout,
    table,
)

app = typer.Typer(help="Inspect and control runs.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
RunId = Annotated[str, typer.Argument(help="Run id (run_…).")]


# ---------------------------------------------------------------------------- inputs


def _read_json_arg(value: str, param_hint: str = "--inputs") -> Any:
    """``JSON``, ``@file`` or ``@-`` (stdin)."""
    if value == "@-":
        text = sys.stdin.read()
    elif value.startswith("@"):
        text = Path(value[1:]).expanduser().read_text()
    else:
        text = value
    try:
        return json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not valid JSON: {exc}", param_hint=param_hint) from exc


def parse_inputs(inputs_json: str | None, pairs: list[str]) -> dict[str, Any]:
    """Merge ``--inputs`` with ``-i key=value`` pairs (pairs win). A value is JSON when it
    parses as JSON (numbers, booleans, lists…), else a plain string; ``key=@path``
    uploads that file as the input."""
    inputs: dict[str, Any] = {}
    if inputs_json:
        parsed = _read_json_arg(inputs_json)
        if not isinstance(parsed, dict):
            raise typer.BadParameter("must be a JSON object", param_hint="--inputs")
        inputs.update(parsed)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value, got {pair!r}", param_hint="-i")
        if raw.startswith("@") and len(raw) > 1:
            inputs[key] = Path(raw[1:]).expanduser()
            continue
        try:
            inputs[key] = json.loads(raw)
        except ValueError:
            inputs[key] = raw
    return inputs


def parse_tags(pairs: list[str]) -> dict[str, str]:
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value, got {pair!r}", param_hint="--tag")
        tags[key] = value
    return tags


# ---------------------------------------------------------------------------- rendering


def _duration(run: Run) -> str:
    if run.usage is not None and run.usage.wall_ms is not None:
        return f"{run.usage.wall_ms:.0f} ms"
    if run.started_at and run.finished_at:
        return f"{(run.finished_at - run.started_at).total_seconds() * 1000:.0f} ms"
    return ""


def render_run(run: Run) -> None:
    pairs: list[tuple[str, Any]] = [
        ("id", run.id), ("tool", f"{run.tool_name} v{run.tool_version}"), ("status", status_text(run.status)),
        ("trigger", run.trigger), ("attempt", run.attempt), ("created", run.created_at),
        ("started", run.started_at), ("finished", run.finished_at), ("duration", _duration(run)),
    ]
    if run.tags:
        pairs.append(("tags", {k: v for k, v in run.tags.items() if v is not None}))
    if run.parent_run_id:
        pairs.append(("parent run", run.parent_run_id))
    if run.inputs is not None:
        pairs.append(("inputs", run.inputs))
    if run.status == "succeeded":
        pairs.append(("output", json.dumps(run.output, indent=2, default=str)))
    if run.error is not None:
        pairs.append(("error", Text(f"{run.error.type}: {run.error.message}", style="red")))
    stdout().print(kv_table(pairs))
    if run.error is not None and run.error.traceback:
        _write_traceback(run.error.traceback)


def _write_traceback(tb: str) -> None:
    # Verbatim: no wrapping at the terminal width, no markup.
    sys.stderr.write(tb.rstrip("\n") + "\n")
    sys.stderr.flush()


def _print_output(run: Run) -> None:
    if isinstance(run.output, str):
        sys.stdout.write(run.output + ("" if run.output.endswith("\n") else "\n"))
    else:
        sys.stdout.write(json.dumps(run.output, indent=2, default=str) + "\n")
    sys.stdout.flush()


def finish(run: Run, *, json_output: bool, show_output: bool = True) -> None:
    """Print a finished run and exit with its code: 0 succeeded, 3 otherwise."""
    if json_output:
        print_json(run)
    elif run.status == "succeeded":
        if show_output:
            _print_output(run)
        note(f"[dim]{run.id} {run.status} in {_duration(run)}[/dim]")
    else:
        err = run.error
        detail = f": {err.type}: {err.message}" if err is not None else ""
        if err is not None and err.traceback:
            _write_traceback(err.traceback)
        stderr().print(f"[red]error:[/red] run {run.id} {run.status}{escape(detail)}", highlight=False)
    if run.status != "succeeded":
        raise typer.Exit(int(Exit.RUN_FAILED))


def _stream_logs(run_id: str, *, to_stderr: bool) -> None:
    out = sys.stderr if to_stderr else sys.stdout
    for line in client().runs.logs(run_id, follow=True):
        out.write(line + "\n")
        out.flush()


def _wait(run: Run, timeout: float | None, *, json_output: bool) -> Run:
    try:
        if json_output or not sys.stderr.isatty():
            return client().runs.wait(run.id, timeout=timeout)
        return _wait_with_progress(run, timeout)
    except WaitTimeoutError as exc:
        current = exc.runs[0] if exc.runs else run
        if json_output:
            print_json(current)
        stderr().print(f"[yellow]timeout:[/yellow] run {current.id} still {current.status}", highlight=False)
        raise typer.Exit(int(Exit.RUN_UNFINISHED)) from None


#: On a terminal the wait is cut into long-polls this long, to refresh the progress bar.
PROGRESS_REFRESH_S = 1.0


def _progress_of(run: Run) -> tuple[float | None, str]:
    """(fraction, message) from a run's ``progress`` (set by ``runyard.context.progress``)."""
    p = run.progress
    if not isinstance(p, dict):
        return None, ""
    fraction = p.get("fraction")
    return (float(fraction) if isinstance(fraction, int | float) else None), str(p.get("message") or "")


def _wait_with_progress(run: Run, timeout: float | None) -> Run:
    """Wait (still by server long-poll) while a progress bar on stderr shows the status
    and the progress the tool reports."""
    deadline = None if timeout is None else time.monotonic() + timeout
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=stderr(), transient=True) as bar:
        task = bar.add_task(f"{run.id} {run.status}", total=None)
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            chunk = PROGRESS_REFRESH_S if left is None else max(0.0, min(PROGRESS_REFRESH_S, left))
            try:
                return client().runs.wait(run.id, timeout=chunk)
            except WaitTimeoutError as exc:
                current = exc.runs[0] if exc.runs else run
                if left is not None and left <= chunk:
                    raise
            fraction, message = _progress_of(current)
            bar.update(task, description=f"{current.id} {current.status} {escape(message)}".rstrip(),
                       total=1.0 if fraction is not None else None, completed=fraction or 0.0)


# ---------------------------------------------------------------------------- commands


@handle_errors
def run(
    tool: Annotated[str, typer.Argument(help="Tool name or id.")],
    input_pairs: Annotated[
        list[str] | None, typer.Option("--input", "-i", help="key=value (JSON or string; key=@path uploads a file).")
    ] = None,
    inputs_json: Annotated[str | None, typer.Option("--inputs", help="Inputs as JSON, @file or @- (stdin).")] = None,
    version: Annotated[int | None, typer.Option("--version", "-v", help="Tool version (default latest).")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="key=value tag (session, batch_id…).")] = None,
    async_: Annotated[bool, typer.Option("--async", help="Print the queued run and return at once.")] = False,
    hold: Annotated[
        bool, typer.Option("--requires-confirmation", help="Hold the run until `runyard runs confirm` (implies --async).")
    ] = False,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream logs live, then print the output.")] = False,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Give up waiting after this many seconds.")] = None,
    timeout_s: Annotated[float | None, typer.Option(
        "--timeout-s", help="The run's own time limit in seconds (at most the tool's).")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Run a tool. Waits for the result unless --async; exit code 3 when the run fails."""
    inputs = parse_inputs(inputs_json, input_pairs or [])
    tags = parse_tags(tag or [])
    c = client()
    if async_ or follow or hold:
        with spinner(f"Submitting {tool}…", enabled=not json_output):
            created = c.runs.create(tool, inputs, version=version, tags=tags or None, requires_confirmation=hold or None,
                                    timeout_s=timeout_s)
        if async_ or hold:
            if json_output:
                print_json(created)
            else:
                stdout().print(created.id)
                follow_up = (f"`runyard runs confirm {created.id}` starts it" if hold else
                             f"`runyard runs wait {created.id}` waits for its output, "
                             f"`runyard runs logs -f {created.id}` follows its log")
                note(f"[dim]Run {created.id} is {created.status}; {follow_up}.[/dim]")
            return
        if not json_output:
            note(f"[dim]{created.id} {created.status}[/dim]")
        _stream_logs(created.id, to_stderr=json_output)
        finish(_wait(created, timeout, json_output=json_output), json_output=json_output)
        return
    wait = 600.0 if timeout is None else min(timeout, 600.0)
    if not json_output and sys.stderr.isatty():
        # On a terminal, hand over to the progress bar after a short first wait.
        wait = min(wait, 2.0)
    with spinner(f"Running {tool}…", enabled=not json_output):
        result = c.runs.create(tool, inputs, version=version, tags=tags or None, wait=wait, timeout_s=timeout_s)
    if not result.is_terminal:
        remaining = None if timeout is None else max(0.0, timeout - wait)
        result = _wait(result, remaining, json_output=json_output)
    finish(result, json_output=json_output)


@app.command("list")
@handle_errors
def list_runs(
    status: Annotated[list[str] | None, typer.Option("--status", "-s", help="Filter by status (repeatable).")] = None,
    tool: Annotated[list[str] | None, typer.Option("--tool", help="Filter by tool name or id (repeatable).")] = None,
    session: Annotated[str | None, typer.Option("--session")] = None,
    batch_id: Annotated[str | None, typer.Option("--batch-id")] = None,
    project: Annotated[str | None, typer.Option("--project")] = None,
    app_tag: Annotated[str | None, typer.Option("--app", help="The runs tagged with this app.")] = None,
    source_ref: Annotated[str | None, typer.Option("--source-ref")] = None,
    worker_id: Annotated[str | None, typer.Option("--worker", help="The runs a worker (wrk_…) ran.")] = None,
    example_contains: Annotated[str | None, typer.Option(
        "--example-contains", help="Example ids containing this text (case-sensitive).")] = None,
    run_type: Annotated[str | None, typer.Option("--type", help="tool or workflow.")] = None,
    trigger: Annotated[list[str] | None, typer.Option(
        "--trigger", help="What started it: api, cli, sdk, rerun, schedule, webhook… (repeatable).")] = None,
    triggered_by: Annotated[str | None, typer.Option(
        "--triggered-by", help="A user, schedule or webhook id.")] = None,
    parent: Annotated[str | None, typer.Option("--parent", help="Runs whose parent run is this one.")] = None,
    completed_after: Annotated[str | None, typer.Option("--completed-after", help="RFC 3339 time.")] = None,
    completed_before: Annotated[str | None, typer.Option("--completed-before", help="RFC 3339 time.")] = None,
    ids: Annotated[str | None, typer.Option("--ids", help="Comma-separated run ids.")] = None,
    sort: Annotated[str | None, typer.Option(
        "--sort", help="created_at (default), started_at, finished_at, queued_at, duration, or a column: "
                       "tool_name, status, project, session, example_id, …")] = None,
    order: Annotated[str | None, typer.Option("--order", help="asc or desc (default).")] = None,
    offset: Annotated[int | None, typer.Option("--offset", help="Skip this many runs first.", min=0)] = None,
    limit: Annotated[int, typer.Option("--limit", "-l", help="At most this many runs.", min=1)] = 20,
    page_number: Annotated[int | None, typer.Option(
        "--page", help="Show numbered page N (from 1) of --page-size runs instead.", min=1)] = None,
    page_size: Annotated[int | None, typer.Option("--page-size", help="Runs per numbered page (default 50).",
                                                  min=1, max=1000)] = None,
    json_output: JsonOpt = False,
) -> None:
    """List runs, newest first (or as --sort/--order say)."""
    numbered = page_number is not None or page_size is not None
    page = client().runs.list(
        status=status or None, tool=tool or None, session=session, batch_id=batch_id, type=run_type,  # type: ignore[arg-type]
        project=project, app=app_tag, source_ref=source_ref, worker_id=worker_id,
        example_id_contains=example_contains,
        trigger=trigger or None, triggered_by=triggered_by, parent_run_id=parent,
        completed_after=completed_after, completed_before=completed_before, ids=ids,
        sort=sort, order=order, offset=offset,  # type: ignore[arg-type]
        limit=None if numbered else min(limit, 1000), page=page_number, page_size=page_size,
    )
    runs = list(page.items) if numbered else list(itertools.islice(page, limit))
    if json_output:
        print_json(runs)
        return
    rows = [[r.id, r.tool_name, r.tool_version, status_text(r.status), r.trigger or "", r.created_at, _duration(r)]
            for r in runs]
    stdout().print(table(["ID", "TOOL", "VERSION", "STATUS", "TRIGGER", "CREATED", "DURATION"], rows))


SEARCH_OPS = ("eq", "neq", "in", "nin", "gt", "gte", "lt", "lte", "contains", "startswith", "exists")


def parse_where(text: str) -> dict[str, Any]:
    """``"FIELD OP VALUE"`` as a search prop: VALUE is JSON when it parses as JSON (a
    number, true, "quoted text"), else the text itself; for in/nin a comma-separated list."""
    parts = text.split(None, 2)
    if len(parts) < 2 or parts[1] not in SEARCH_OPS:
        raise typer.BadParameter(f"{text!r}: write FIELD OP VALUE with OP one of {', '.join(SEARCH_OPS)}",
                                 param_hint="--where")
    field, op = parts[0], parts[1]
    raw = parts[2] if len(parts) > 2 else None
    if raw is None:
        if op != "exists":
            raise typer.BadParameter(f"{text!r}: {op} needs a value", param_hint="--where")
        return {"field": field, "op": op, "value": True}
    if op in ("in", "nin"):
        return {"field": field, "op": op, "value": [_where_value(v.strip()) for v in raw.split(",")]}
    if op in ("contains", "startswith"):
        return {"field": field, "op": op, "value": raw}
    return {"field": field, "op": op, "value": _where_value(raw)}


def _where_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


@app.command("search")
@handle_errors
def search_runs(
    where: Annotated[list[str] | None, typer.Option(
        "--where", "-w", help="A condition FIELD OP VALUE, e.g. 'status eq failed', 'inputs.n gt 5', "
                              "'tool_name in a,b', 'tags.project exists' (repeatable; all must hold).")] = None,
    props_json: Annotated[str | None, typer.Option(
        "--props", help="The conditions as JSON: [{field, op, value}, …] (or @file.json).")] = None,
    select: Annotated[str | None, typer.Option(
        "--select", help="Comma-separated columns to show (default: id, tool_name, status, project, created_at; "
                         "with --json every column).")] = None,
    order: Annotated[str | None, typer.Option("--order", help="'<column> asc|desc', comma-separated.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-l", help="At most this many runs.", min=1, max=1000)] = 20,
    offset: Annotated[int, typer.Option("--offset", help="Skip this many runs first.", min=0)] = 0,
    total: Annotated[bool, typer.Option("--total", help="Count every matching run too.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Search runs by conditions on their columns and nested values (tags.*, inputs.*, usage.*)."""
    props = [parse_where(w) for w in where or []]
    if props_json is not None:
        given = _read_json_arg(props_json, "--props")
        if not isinstance(given, list):
            raise typer.BadParameter("give a JSON list of {field, op, value}", param_hint="--props")
        props.extend(given)
    columns = [c.strip() for c in select.split(",") if c.strip()] if select else None
    if columns is None and not json_output:
        columns = ["id", "tool_name", "status", "project", "created_at"]
    result = client().runs.search(props, select=columns, limit=limit, offset=offset, with_total_count=total,
                                  order=order)
    if json_output:
        print_json(result)
        return
    shown = columns or []
    rows = [[_cell(item.get(name)) for name in shown] for item in result.items]
    stdout().print(table([name.upper() for name in shown], rows))
    if result.total is not None:
        stdout().print(f"{result.total} matching run(s)")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


@app.command("get")
@handle_errors
def get_run(run_id: RunId, json_output: JsonOpt = False) -> None:
    """Show one run with its inputs, output and error."""
    r = client().runs.get(run_id, include_inputs=True)
    if json_output:
        print_json(r)
    else:
        render_run(r)


@app.command("wait")
@handle_errors
def wait_run(
    run_id: RunId,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Give up after this many seconds.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Wait for a run to end; exit code 3 when it did not succeed."""
    r = _wait(client().runs.get(run_id), timeout, json_output=json_output)
    finish(r, json_output=json_output)


@app.command("logs")
@handle_errors
def logs(
    run_id: RunId,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream live until the run ends.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Print a run's log (stdout and stderr of the tool)."""
    c = client()
    if json_output:
        # Lines as JSON: with --follow they are collected until the run ends.
        lines = list(c.runs.logs(run_id, follow=True)) if follow else c.runs.logs(run_id).splitlines()
        print_json({"run_id": run_id, "lines": lines})
    elif follow:
        _stream_logs(run_id, to_stderr=False)
    else:
        sys.stdout.write(c.runs.logs(run_id))
        sys.stdout.flush()


def _show_status(run: Any, json_output: bool) -> None:
    """A run after a state change: the whole run with --json, else its id and status."""
    outcome(json_output, run, f"{run.id} {run.status}")


@app.command("cancel")
@handle_errors
def cancel(run_id: RunId, json_output: JsonOpt = False) -> None:
    """Cancel a run (a finished run is left as it is)."""
    _show_status(client().runs.cancel(run_id), json_output)


@app.command("confirm")
@handle_errors
def confirm(run_id: RunId, json_output: JsonOpt = False) -> None:
    """Release a run that awaits confirmation."""
    _show_status(client().runs.confirm(run_id), json_output)


@app.command("rerun")
@handle_errors
def rerun(
    run_id: RunId,
    latest: Annotated[bool, typer.Option("--latest", help="Use the tool's latest version, not the original.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Start a new run with the same inputs."""
    r = client().runs.rerun(run_id, version="latest" if latest else "original")
    if json_output:
        print_json(r)
    else:
        stdout().print(r.id)
        note(f"[dim]rerun of {run_id}: {r.status}[/dim]")


@app.command("artifacts")
@handle_errors
def artifacts(
    run_id: RunId,
    download: Annotated[
        Path | None, typer.Option("--download", "-d", help="Download every artifact into this directory.")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """List (or download) the files a run wrote."""
    c = client()
    items = c.runs.artifacts.list(run_id)
    written: list[str] = []
    if download is not None:
        download.mkdir(parents=True, exist_ok=True)
        with spinner(f"Downloading {len(items)} artifact(s)…", enabled=not json_output):
            for a in items:
                written.append(str(c.runs.artifacts.download(run_id, a.path, download)))
    if json_output:
        body: dict[str, Any] = {"run_id": run_id, "items": [a.to_dict() for a in items]}
        if download is not None:
            body["downloaded"] = written
        print_json(body)
        return
    rows = [[a.path, a.size, a.content_type, (a.sha256 or "")[:12], a.created_at] for a in items]
    stdout().print(table(["PATH", "SIZE", "TYPE", "SHA256", "CREATED"], rows))
    if download is not None:
        note(f"Downloaded {len(written)} file(s) to {download}.")


# ---------------------------------------------------------------------------- workflow runs

#: Colours of the statuses a step may have beyond a run's own.
TREE_STYLE = {**STATUS_STYLE, "waiting_for_input": "magenta", "skipped": "dim", "pending": "dim"}
#: Nested workflow runs are expanded this deep at most.
TREE_MAX_DEPTH = 8


def _status(status: str | None) -> Text:
    return Text(str(status), style=TREE_STYLE.get(status or "", ""))


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.0f} ms"


def _step_json(c: Any, step: TraceStep, depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"step_id": step.step_id, "item_index": step.item_index, "run_id": step.run_id,
                            "type": step.type, "status": step.status, "attempt": step.attempt,
                            "duration_ms": step.duration_ms}
    if step.error:
        node["error"] = step.error
    if step.type == "workflow" and step.run_id and depth < TREE_MAX_DEPTH:
        node["steps"] = _steps_json(c, step.run_id, depth + 1)
    return node


def _steps_json(c: Any, run_id: str, depth: int) -> list[dict[str, Any]]:
    return [_step_json(c, t, depth) for t in c.runs.trace(run_id) if isinstance(t, TraceStep)]


def _step_label(step: TraceStep, name: str) -> Text:
    label = Text()
    label.append(name, style="bold")
    label.append("  ")
    label.append_text(_status(step.status))
    if step.type and step.type != "tool":
        label.append(f"  {step.type}", style="cyan")
    if step.attempt and step.attempt > 1:
        label.append(f"  attempt {step.attempt}", style="yellow")
    if step.duration_ms is not None:
        label.append(f"  {_ms(step.duration_ms)}", style="dim")
    if step.run_id:
        label.append(f"  {step.run_id}", style="dim")
    if step.error:
        label.append(f"  {step.error.get('type', 'error')}: {step.error.get('message', '')}", style="red")
    return label


def _summary(items: list[TraceStep]) -> Text:
    counts: dict[str, int] = {}
    for item in items:
        counts[item.status] = counts.get(item.status, 0) + 1
    out = Text()
    for i, (status, n) in enumerate(sorted(counts.items())):
        out.append(", " if i else "")
        out.append(f"{n} ", style="")
        out.append_text(_status(status))
    return out


def _add_steps(c: Any, node: Tree, run_id: str, depth: int) -> None:
    """The run's steps under ``node``: a step's for_each items grouped under it, nested
    workflow runs expanded (up to :data:`TREE_MAX_DEPTH`)."""
    groups: dict[str, list[TraceStep]] = {}
    for t in c.runs.trace(run_id):
        if isinstance(t, TraceStep):
            groups.setdefault(t.step_id, []).append(t)
    for step_id, entries in groups.items():
        items = sorted((e for e in entries if e.item_index is not None), key=lambda e: e.item_index or 0)
        for entry in (e for e in entries if e.item_index is None):
            _add_step(c, node, entry, step_id, depth)
        if items:
            label = Text()
            label.append(step_id, style="bold")
            label.append(f"  for_each: {len(items)} item{'s' if len(items) != 1 else ''}  ", style="cyan")
            label.append_text(_summary(items))
            group = node.add(label)
            for item in items:
                _add_step(c, group, item, f"[{item.item_index}]", depth)


def _add_step(c: Any, node: Tree, step: TraceStep, name: str, depth: int) -> None:
    child = node.add(_step_label(step, name))
    if step.type == "workflow" and step.run_id:
        if depth < TREE_MAX_DEPTH:
            _add_steps(c, child, step.run_id, depth + 1)
        else:
            child.add(Text("… (deeper runs not shown)", style="dim"))


@app.command("tree")
@handle_errors
def tree(run_id: RunId, json_output: JsonOpt = False) -> None:
    """Draw a workflow run's steps: each step's run and status, for_each items grouped
    under their step, nested workflow runs expanded."""
    c = client()
    r = c.runs.get(run_id)
    if json_output:
        body = r.to_dict()
        body["steps"] = _steps_json(c, r.id, 1) if r.type == "workflow" else []
        print_json(body)
        return
    label = Text()
    label.append(f"{r.tool_name}", style="bold")
    if r.tool_version is not None:
        label.append(f" v{r.tool_version}")
    label.append("  ")
    label.append_text(_status(r.status))
    label.append(f"  {r.id}", style="dim")
    duration = _duration(r)
    if duration:
        label.append(f"  {duration}", style="dim")
    if r.error is not None:
        label.append(f"  {r.error.type}: {r.error.message}", style="red")
    root = Tree(label)
    if r.type == "workflow":
        _add_steps(c, root, r.id, 1)
    stdout().print(root)


@app.command("input")
@handle_errors
def send_input(
    run_id: RunId,
    payload: Annotated[str, typer.Option("--payload", "-p", help="The step's output: JSON, @file or @- (stdin).")],
    step: Annotated[str | None, typer.Option("--step", help="Which waiting step, when several wait.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Answer a workflow's wait_for_input step: the payload becomes its output and the run goes on."""
    value = _read_json_arg(payload, param_hint="--payload")
    r = client().runs.send_input(run_id, value, step_id=step)
    outcome(json_output, r, f"Sent input to {r.id} ({r.status}).")
