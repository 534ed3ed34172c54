"""``runyard data …`` (namespaces, datasets, ingestion, SQL) and ``runyard users …``."""

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
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from runyard.sdk.errors import WaitTimeoutError
from runyard.sdk.models import CleaningTask, Dataset, Ingestion

from ._context import client
from ._output import (
    JSON_HELP,
    Exit,
    handle_errors,
    kv_table,
    note,
    outcome,
    print_json,
    spinner,
    stderr,
    stdout,
    table,
)
from .auto_ingest import auto_ingest
from .links import app as links_app

app = typer.Typer(help="Namespaces, datasets, ingestion and SQL queries.", no_args_is_help=True)
ns_app = typer.Typer(help="Namespaces: owned groups of datasets.", no_args_is_help=True)
users_app = typer.Typer(help="The workspace's users (admin).", no_args_is_help=True)
app.add_typer(ns_app, name="ns")
app.add_typer(links_app, name="links")
app.command("auto-ingest")(auto_ingest)

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
DatasetRef = Annotated[str, typer.Argument(help="NAMESPACE/DATASET.")]

#: Files above this size go by multipart upload (parallel, resumable, with a progress bar).
UPLOAD_THRESHOLD = 8 * 1024 * 1024

INGESTION_STYLE = {"succeeded": "green", "failed": "red", "cancelled": "yellow", "processing": "cyan",
                   "pending": "blue"}


def split_ref(ref: str) -> tuple[str, str]:
    """``NS/DS`` → (namespace, dataset)."""
    namespace, sep, dataset = ref.partition("/")
    if not sep or not namespace or not dataset or "/" in dataset:
        raise typer.BadParameter(f"expected NAMESPACE/DATASET, got {ref!r}")
    return namespace, dataset


def human_bytes(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


def _status(status: str | None) -> Text:
    return Text(str(status), style=INGESTION_STYLE.get(status or "", ""))


# ---------------------------------------------------------------------------- namespaces


@ns_app.command("create")
@handle_errors
def ns_create(
    name: Annotated[str, typer.Argument(help="Namespace name (unique in the workspace).")],
    public: Annotated[bool, typer.Option("--public", help="Readable by every user (default: private).")] = False,
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Create a namespace, owned by your user."""
    ns = client().namespaces.create(name, private=not public, description=description)
    outcome(json_output, ns, f"Created {'public' if public else 'private'} namespace [bold]{ns.name}[/bold].")


@ns_app.command("list")
@handle_errors
def ns_list(
    owner: Annotated[str | None, typer.Option("--owner", help="self, a username, or all (default).")] = None,
    json_output: JsonOpt = False,
) -> None:
    """List the namespaces you can see."""
    items = list(client().namespaces.list(owner=owner))
    if json_output:
        print_json(items)
        return
    rows = [[n.name, n.owner, "private" if n.private else "public", n.datasets, n.access, n.description]
            for n in items]
    stdout().print(table(["NAME", "OWNER", "VISIBILITY", "DATASETS", "ACCESS", "DESCRIPTION"], rows))


@ns_app.command("delete")
@handle_errors
def ns_delete(
    name: Annotated[str, typer.Argument()],
    force: Annotated[bool, typer.Option("--force", help="Also delete the datasets it holds.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Delete a namespace (one holding datasets needs --force)."""
    client().namespaces.delete(name, force=force)
    outcome(json_output, {"deleted": name}, f"Deleted namespace [bold]{name}[/bold].")


# ---------------------------------------------------------------------------- datasets


@app.command("list")
@handle_errors
def list_datasets(
    namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="Only this namespace.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """List the datasets you can see."""
    items = list(client().datasets.list(namespace=namespace))
    if json_output:
        print_json(items)
        return
    rows = [[d.namespace, d.name, d.rows, human_bytes(d.bytes), len(d.columns), d.updated_at] for d in items]
    stdout().print(table(["NAMESPACE", "NAME", "ROWS", "SIZE", "COLUMNS", "UPDATED"], rows))


def render_dataset(d: Dataset) -> None:
    last = d.last_ingestion or {}
    pairs: list[tuple[str, Any]] = [
        ("dataset", d.ref), ("id", d.id), ("rows", d.rows), ("size", human_bytes(d.bytes)), ("snapshot", d.snapshot),
        ("description", d.description or None), ("sort order", ", ".join(d.sort_order or []) or None),
        ("last ingestion", f"{last.get('id', '')} {last.get('status', '')}".strip() or None),
        ("created", d.created_at), ("updated", d.updated_at),
    ]
    if d.field_definitions:
        pairs.append(("field definitions", d.field_definitions))
    stdout().print(kv_table([(k, v) for k, v in pairs if v is not None]))
    rows = [[c.name, c.type, "yes" if c.nullable else "no", c.null_count, c.distinct_approx, c.min, c.max]
            for c in d.columns]
    stdout().print(table(["NAME", "TYPE", "NULLABLE", "NULLS", "DISTINCT", "MIN", "MAX"], rows, title="columns"))


@app.command("info")
@handle_errors
def info(ref: DatasetRef, json_output: JsonOpt = False) -> None:
    """A dataset's catalog: rows, size, and each column's type, nulls, distinct count, min and max."""
    d = client().datasets.get(*split_ref(ref))
    if json_output:
        print_json(d)
    else:
        render_dataset(d)


@app.command("delete")
@handle_errors
def delete_dataset(ref: DatasetRef, json_output: JsonOpt = False) -> None:
    """Delete a dataset (rows and catalog)."""
    namespace, dataset = split_ref(ref)
    client().datasets.delete(namespace, dataset)
    outcome(json_output, {"deleted": ref}, f"Deleted dataset [bold]{ref}[/bold].")


# ---------------------------------------------------------------------------- ingestion


def render_ingestion(ing: Ingestion) -> None:
    pairs: list[tuple[str, Any]] = [
        ("ingestion", ing.id), ("dataset", f"{ing.namespace}/{ing.dataset}"), ("kind", ing.kind),
        ("status", _status(ing.status)), ("message", ing.status_message), ("rows", ing.processed_rows),
        ("failed rows", ing.failed_rows), ("bytes", human_bytes(ing.processed_bytes)),
        ("created", ing.created_at), ("finished", ing.finished_at),
    ]
    resolved = (ing.attributes or {}).get("entity_resolution")
    if resolved:
        counts = ", ".join(f"{n} {action}" for action, n in (resolved.get("counts") or {}).items() if n)
        pairs.append(("entities", f"{counts or 'none'} ({resolved.get('policy')})"))
    stdout().print(kv_table([(k, v) for k, v in pairs if v is not None and v != ""]))


def _upload_with_bar(path: Path, namespace: str, dataset: str, show: bool, **kwargs: Any) -> Ingestion:
    datasets = client().datasets
    if not show:
        return datasets.upload(path, namespace, dataset, **kwargs)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=stderr(), transient=True) as bar:
        task = bar.add_task(f"uploading {path.name}", total=path.stat().st_size)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return datasets.upload(path, namespace, dataset, progress=progress, **kwargs)


#: On a terminal the wait is cut into long-polls this long, to refresh the progress bar.
PROGRESS_REFRESH_S = 1.0


def _wait_with_bar(ing: Ingestion, ref: str, timeout: float | None) -> Ingestion:
    """Wait (by server long-polls) while a bar on stderr shows the bytes the ingestion has read."""
    deadline = None if timeout is None else time.monotonic() + timeout
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    datasets = client().datasets
    with Progress(*columns, console=stderr(), transient=True) as bar:
        task = bar.add_task(f"ingesting into {ref}", total=ing.expected_total_bytes)
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            chunk = PROGRESS_REFRESH_S if left is None else max(0.0, min(PROGRESS_REFRESH_S, left))
            try:
                return datasets.wait(ing.id, timeout=chunk)
            except WaitTimeoutError:
                if left is not None and left <= chunk:
                    raise
            ing = datasets.ingestion(ing.id)
            bar.update(task, description=f"ingesting into {ref}: {ing.processed_rows or 0} rows",
                       completed=ing.processed_bytes or 0, total=ing.expected_total_bytes)


@app.command("ingest")
@handle_errors
def ingest(
    file: Annotated[Path, typer.Argument(help="CSV/TSV, JSON, NDJSON, Parquet or XLSX (gzip/zstd too).",
                                         exists=True, dir_okay=False, readable=True)],
    ref: DatasetRef,
    format: Annotated[str | None, typer.Option("--format", help="csv, tsv, json, ndjson, parquet or xlsx "
                                                                "(default: sniffed).")] = None,
    delimiter: Annotated[str | None, typer.Option("--delimiter", help="CSV field delimiter (default: sniffed).")] = None,
    create: Annotated[bool, typer.Option("--create/--no-create", help="Make the dataset if it is missing.")] = True,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the ingestion to end.")] = True,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Give up waiting after this many seconds.")] = None,
    entity_resolution: Annotated[str | None, typer.Option(
        "--entity-resolution", help='JSON, e.g. \'{"match_type": "ExactMatch", "columns": ["email"], '
        '"policy": "merge"}\': rows matching a stored entity get its _entity_id (docs/links.md).')] = None,
    json_output: JsonOpt = False,
) -> None:
    """Load a file into NS/DS; exit code 3 when the ingestion fails.

    Files over 8 MB go by multipart upload (parallel, resumable: run the same command
    again after an interruption and only the missing parts are sent)."""
    namespace, dataset = split_ref(ref)
    options: dict[str, Any] = {k: v for k, v in {"format": format, "delimiter": delimiter}.items() if v is not None}
    if entity_resolution is not None:
        try:
            options["entity_resolution"] = json.loads(entity_resolution)
        except ValueError as exc:
            raise typer.BadParameter(f"not JSON: {exc}", param_hint="--entity-resolution") from None
    show = not json_output and sys.stderr.isatty()
    if file.stat().st_size > UPLOAD_THRESHOLD:
        # Fail before sending gigabytes, not at the upload's completion.
        if create:
            client().namespaces.get(namespace)
        else:
            client().datasets.get(namespace, dataset)
        ing = _upload_with_bar(file, namespace, dataset, show, options=options or None, create=create)
    else:
        with spinner(f"Sending {file.name}…", enabled=not json_output):
            ing = client().datasets.ingest_file(file, namespace, dataset, options=options or None, create=create)
    if wait and not ing.is_finished:
        if not json_output:
            note(f"[dim]{ing.id} {ing.status}; waiting…[/dim]")
        try:
            if show:
                ing = _wait_with_bar(ing, ref, timeout)
            else:
                ing = client().datasets.wait(ing.id, timeout=timeout)
        except WaitTimeoutError:
            ing = client().datasets.ingestion(ing.id)
            if json_output:
                print_json(ing)
            stderr().print(f"[yellow]timeout:[/yellow] ingestion {ing.id} still {ing.status}", highlight=False)
            raise typer.Exit(int(Exit.RUN_UNFINISHED)) from None
    if json_output:
        print_json(ing)
    else:
        render_ingestion(ing)
    if ing.status in ("failed", "cancelled"):
        raise typer.Exit(int(Exit.RUN_FAILED))


@app.command("ingestions")
@handle_errors
def ingestions(
    ref: DatasetRef,
    limit: Annotated[int, typer.Option("--limit", "-l", min=1, max=100)] = 20,
    json_output: JsonOpt = False,
) -> None:
    """A dataset's latest ingestions, newest first."""
    items = client().datasets.ingestions(*split_ref(ref), limit=limit)
    if json_output:
        print_json(items)
        return
    rows = [[i.id, i.kind, _status(i.status), i.processed_rows, i.failed_rows, i.created_at, i.status_message]
            for i in items]
    stdout().print(table(["ID", "KIND", "STATUS", "ROWS", "FAILED", "CREATED", "MESSAGE"], rows))


# ---------------------------------------------------------------------------- query


@app.command("query")
@handle_errors
def query(
    sql: Annotated[str, typer.Argument(help='SQL (DuckDB dialect; datasets as "ns"."ds"), or "*" with --dataset.')],
    namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="Bare dataset names are in it.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help='The dataset of query "*".')] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table, csv or json.")] = "table",
    limit: Annotated[int | None, typer.Option("--limit", "-l", min=1, help="At most this many rows.")] = None,
    natural_language: Annotated[bool, typer.Option(
        "--natural-language", "--nl", help="The argument is a question: a language model writes the SQL.")] = False,
    provider: Annotated[str | None, typer.Option("--provider", help="With --nl: the model provider.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="With --nl: the model.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Run a read-only SQL query, or a question with --nl.

    table shows one page (up to the server's cap); csv and json give every row (csv streamed).
    With --nl the model's SQL is shown (on stderr) and then run like any query."""
    if format not in ("table", "csv", "json"):
        raise typer.BadParameter("must be table, csv or json", param_hint="--format")
    datasets = client().datasets
    if natural_language:
        with spinner("Asking the model…"):
            planned = datasets.query(sql, namespace=namespace, dataset=dataset, explain=True, natural_language=True,
                                     provider=provider, model=model)
        sql = planned.sql or sql
        note(f"[dim]SQL: {escape(sql)}[/dim]")
    elif provider or model:
        raise typer.BadParameter("--provider and --model go with --nl", param_hint="--provider")
    if format == "csv" and not json_output:
        sys.stdout.flush()
        datasets.query_to(sql, sys.stdout.buffer, format="csv", namespace=namespace, dataset=dataset, limit=limit)
        sys.stdout.buffer.flush()
        return
    if json_output or format == "json":
        if limit is None:
            result = datasets.query_all(sql, namespace=namespace, dataset=dataset)
        else:
            result = datasets.query(sql, namespace=namespace, dataset=dataset, limit=limit)
        print_json(result)
        return
    with spinner("Querying…"):
        result = datasets.query(sql, namespace=namespace, dataset=dataset, limit=limit)
    names = result.column_names or (list(result.rows[0]) if result.rows else [])
    stdout().print(table(names, [[row.get(n) for n in names] for row in result.rows]))
    more = " (more rows: --format csv gives them all)" if result.next_cursor or result.truncated else ""
    elapsed = f" in {result.elapsed_ms:.0f} ms" if result.elapsed_ms is not None else ""
    note(f"[dim]{result.row_count} row(s){elapsed}{more}[/dim]")


# ---------------------------------------------------------------------------- ask


def _ask_summary(step: Any) -> str:
    """One line for a step: its rows (or its error), short."""
    if step.error:
        return f"[red]{escape(str(step.error.get('code', 'error')))}:[/red] {escape(str(step.error.get('message', '')))}"
    count = step.row_count if step.row_count is not None else len(step.rows or [])
    first = (step.rows or [None])[0]
    shown = ", ".join(f"{k}={v}" for k, v in first.items()) if isinstance(first, dict) else ""
    if len(shown) > 120:
        shown = shown[:117] + "…"
    more = "+" if step.truncated else ""
    return f"{count}{more} row(s)" + (f": {escape(shown)}" + (" …" if count > 1 else "") if shown else "")


@app.command("ask")
@handle_errors
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    namespace: Annotated[str | None, typer.Option(
        "--namespace", "-n", help="The datasets the model may query (default: all this key can read).")] = None,
    helper_prompt: Annotated[str | None, typer.Option("--helper-prompt", help="Extra instructions.")] = None,
    provider: Annotated[str | None, typer.Option("--provider", help="The model provider.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="The model.")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, max=20,
                                                  help="At most this many queries (6).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON event per line, as they come.")] = False,
) -> None:
    """Answer a question by letting a language model run read-only queries.

    The plan and each query (its SQL and a summary of its rows) are shown on stderr as they
    happen, the answer on stdout. Exit 1 when the model call fails (an error event)."""
    events = client().llm.ask(question, namespace=namespace, helper_prompt=helper_prompt, provider=provider,
                              model=model, max_steps=max_steps)
    failed = False
    for event in events:
        failed = failed or event.event == "error"
        if json_output:
            sys.stdout.write(json.dumps(event.to_dict(), default=str) + "\n")
            sys.stdout.flush()
        elif event.event == "plan":
            names = ", ".join(event.datasets) or "none"
            note(f"[dim]Plan: up to {event.max_steps} queries over {escape(names)}"
                 f"{f' with {escape(event.provider)}' if event.provider else ''}[/dim]")
        elif event.event == "step":
            note(f"[bold]Step {event.index}[/bold] [dim]SQL: {escape(event.sql or '')}[/dim]")
            note(f"  {_ask_summary(event)}")
        elif event.event == "answer":
            sys.stdout.write(event.answer + "\n")
            sys.stdout.flush()
        elif event.event == "error":
            stderr().print(f"[red]error:[/red] {escape(event.code)}: {escape(event.message)}", highlight=False)
    if failed:
        raise typer.Exit(int(Exit.ERROR))


# ---------------------------------------------------------------------------- cleaning


def render_cleaning(task: CleaningTask) -> None:
    error = f"{task.error.get('code')}: {task.error.get('message')}" if task.error else None
    pairs: list[tuple[str, Any]] = [
        ("task", task.id), ("status", _status(task.status)),
        ("source", f"{task.source.get('namespace')}/{task.source.get('dataset')}"),
        ("output", f"{task.output.get('namespace')}/{task.output.get('dataset')}"),
        ("rows", f"{task.input_rows} -> {task.output_rows}" if task.output_rows is not None else None),
        ("model", f"{task.provider}/{task.model}" if task.model else None), ("error", error),
        ("created", task.created_at), ("finished", task.finished_at),
    ]
    stdout().print(kv_table([(k, v) for k, v in pairs if v is not None and v != ""]))
    if task.sql:
        stdout().print(Text(task.sql))


@app.command("clean")
@handle_errors
def clean(
    ref: DatasetRef,
    prompts: Annotated[list[str], typer.Option("--prompt", "-p", help="A cleaning step (repeat, in order; 1-10).")],
    output: Annotated[str, typer.Option("--output", "-o", help="The new dataset, NAMESPACE/DATASET (must not exist).")],
    provider: Annotated[str | None, typer.Option("--provider", help="The model provider.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="The model.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the task to finish (exit 1 if it failed).")] = False,
    timeout: Annotated[float | None, typer.Option("--timeout", help="With --wait: give up after this many "
                                                                     "seconds.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Clean a dataset into a new one: a language model turns the prompts into one SQL
    transform, run in the sandbox; its rows become the output dataset."""
    namespace, dataset = split_ref(ref)
    out_ns, out_ds = split_ref(output)
    datasets = client().datasets
    task = datasets.cleaning(namespace, dataset, prompts, output_namespace=out_ns, output_dataset=out_ds,
                             provider=provider, model=model)
    if wait:
        try:
            with spinner(f"Cleaning {ref} into {output}", enabled=not json_output):
                task = datasets.get_cleaning(namespace, dataset, task.id, wait=True if timeout is None else timeout)
        except WaitTimeoutError:
            task = datasets.get_cleaning(namespace, dataset, task.id)
    if json_output:
        print_json(task)
    else:
        render_cleaning(task)
        if not wait:
            note(f"[dim]Follow it with: runyard data cleaning {escape(ref)} {task.id} --wait[/dim]")
    if task.status == "failed":
        raise typer.Exit(int(Exit.ERROR))


@app.command("cleaning")
@handle_errors
def cleaning(
    ref: DatasetRef,
    task_id: Annotated[str, typer.Argument(help="The cleaning task's id (cln_…).")],
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the task to finish.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """A cleaning task of a dataset: its status, the model's SQL, the error."""
    namespace, dataset = split_ref(ref)
    task = client().datasets.get_cleaning(namespace, dataset, task_id, wait=wait)
    if json_output:
        print_json(task)
    else:
        render_cleaning(task)
    if task.status == "failed":
        raise typer.Exit(int(Exit.ERROR))


# ---------------------------------------------------------------------------- users


@users_app.command("create")
@handle_errors
def users_create(
    username: Annotated[str, typer.Argument()],
    role: Annotated[str, typer.Option("--role", "-r", help="admin, member or viewer.")] = "member",
    password: Annotated[bool, typer.Option("--password", help="Set a password (prompted, or a line of stdin).")] = False,
    display_name: Annotated[str | None, typer.Option("--display-name")] = None,
    email: Annotated[str | None, typer.Option("--email")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Create a user; with --password they can sign in."""
    if role not in ("admin", "member", "viewer"):
        raise typer.BadParameter("must be admin, member or viewer", param_hint="--role")
    secret = None
    if password:
        secret = (typer.prompt("Password", hide_input=True, confirmation_prompt=True) if sys.stdin.isatty()
                  else sys.stdin.readline().rstrip("\n"))
    u = client().users.create(username, role=role, password=secret, display_name=display_name,  # type: ignore[arg-type]
                              email=email)
    outcome(json_output, u, f"Created user [bold]{u.username}[/bold] ({u.role}).")


@users_app.command("list")
@handle_errors
def users_list(
    limit: Annotated[int, typer.Option("--limit", "-l", min=1)] = 100,
    json_output: JsonOpt = False,
) -> None:
    """List the workspace's users."""
    items = list(itertools.islice(client().users.list(limit=min(limit, 1000)), limit))
    if json_output:
        print_json(items)
        return
    rows = [[u.username, u.role, u.display_name, u.email, "yes" if u.has_password else "no", u.created_at]
            for u in items]
    stdout().print(table(["USERNAME", "ROLE", "DISPLAY NAME", "EMAIL", "PASSWORD", "CREATED"], rows))


@users_app.command("me")
@handle_errors
def users_me(json_output: JsonOpt = False) -> None:
    """Who your key is."""
    m = client().users.me()
    if json_output:
        print_json(m)
        return
    stdout().print(kv_table([("user", m.username), ("role", m.role), ("token", m.token_id),
                             ("token role", m.token_role), ("restricted", m.restricted)]))
