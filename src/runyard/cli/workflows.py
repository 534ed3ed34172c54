"""``runyard workflows …`` (deploy, list, get, versions, publish, delete, run) and
``runyard folders …``."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.text import Text

from runyard.sdk.errors import ValidationError, WaitTimeoutError
from runyard.sdk.models import Folder, Workflow, WorkflowVersion

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
from .runs import finish, parse_inputs, parse_tags

app = typer.Typer(help="Deploy, version and run workflows (YAML definitions of steps).", no_args_is_help=True)
folders_app = typer.Typer(help="Folders to file workflows in.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
WorkflowArg = Annotated[str, typer.Argument(help="Workflow name or id.")]
FolderId = Annotated[str, typer.Argument(help="Folder id (fld_…).")]


# ---------------------------------------------------------------------------- rendering


def _version_label(w: Workflow) -> str:
    if w.latest_version is None:
        return "draft only"
    return f"v{w.latest_version}" + (f" ({w.tag})" if w.tag else "")


def render_workflow(w: Workflow, *, show_source: bool) -> None:
    pairs: list[tuple[str, Any]] = [
        ("id", w.id), ("name", w.name), ("kind", w.kind), ("description", w.description or ""),
        ("latest version", _version_label(w)), ("draft", "yes" if w.has_draft else "no"),
        ("folder", w.folder_id or ""), ("created", w.created_at), ("updated", w.updated_at),
    ]
    definition = w.definition or {}
    steps = definition.get("steps") if isinstance(definition, dict) else None
    if isinstance(steps, list):
        pairs.append(("steps", ", ".join(str(s.get("id")) for s in steps if isinstance(s, dict))))
    if isinstance(definition, dict) and definition.get("inputs"):
        pairs.append(("inputs", definition["inputs"]))
    stdout().print(kv_table(pairs))
    if show_source and w.source:
        sys.stdout.write("\n" + w.source.rstrip("\n") + "\n")
        sys.stdout.flush()


def _source_lines(path: Path | None) -> list[str]:
    if path is None:
        return []
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []


def issue_lines(issues: list[dict[str, Any]], path: Path | None = None) -> Text:
    """One block per issue: ``file:line:column  path  message [code]``, then the line of the
    file it points at with a caret under the column."""
    lines = _source_lines(path)
    where_name = str(path) if path is not None else "<definition>"
    out = Text()
    for issue in issues:
        line, column = issue.get("line"), issue.get("column")
        where = where_name + (f":{line}" if line else "") + (f":{column}" if line and column else "")
        out.append(f"  {where}", style="bold")
        if issue.get("path"):
            out.append(f"  {issue['path']}", style="cyan")
        out.append(f"  {issue.get('message', '')}")
        if issue.get("code"):
            out.append(f" [{issue['code']}]", style="dim")
        out.append("\n")
        if isinstance(line, int) and 1 <= line <= len(lines):
            gutter = f"{line:>6} | "
            out.append(gutter, style="dim")
            out.append(lines[line - 1] + "\n")
            if isinstance(column, int) and column >= 1:
                out.append(" " * (len(gutter) - 2) + "| ", style="dim")
                out.append(" " * (column - 1) + "^\n", style="red bold")
    out.rstrip()
    return out


# ---------------------------------------------------------------------------- workflows


@app.command("deploy")
@handle_errors
def deploy(
    path: Annotated[Path, typer.Argument(help="The definition: a .yaml/.yml/.json file.", exists=True,
                                         dir_okay=False)],
    draft: Annotated[bool, typer.Option("--draft", help="Save as the workflow's draft (publish it later).")] = False,
    tag: Annotated[str | None, typer.Option("--tag", "-t", help="Tag the published version (e.g. stable).")] = None,
    folder: Annotated[str | None, typer.Option("--folder", help="File it in this folder (id).")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Deploy a workflow: a new workflow, or the next version of the one of that name.

    An invalid definition prints every problem with its line and column; exit code 1.
    """
    try:
        with spinner(f"Deploying {path}…", enabled=not json_output):
            w = client().workflows.create(path, draft=draft, tag=tag, folder_id=folder)
    except ValidationError as exc:
        if not exc.issues:
            raise
        if json_output:
            print_json(exc.body if isinstance(exc.body, dict) else {"error": {"code": exc.code, "issues": exc.issues}})
        count = len(exc.issues)
        stderr().print(f"[red]error:[/red] {escape(str(path))} is not a valid workflow "
                       f"({count} problem{'s' if count != 1 else ''}):", highlight=False)
        stderr().print(issue_lines(exc.issues, path), highlight=False, soft_wrap=True)
        raise typer.Exit(int(Exit.ERROR)) from None
    what = "a draft of" if draft else f"version {w.latest_version}{f' ({w.tag})' if w.tag else ''} of"
    outcome(json_output, w, f"Deployed {what} [bold]{escape(w.name)}[/bold] ({w.id}).")


@app.command("list")
@handle_errors
def list_workflows(
    search: Annotated[str | None, typer.Option("--search", "-q", help="Filter by name/description.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="workflow or block.")] = None,
    folder: Annotated[str | None, typer.Option("--folder", help="Only those in this folder (id).")] = None,
    sort: Annotated[str | None, typer.Option("--sort", help="name, created_at (default) or updated_at.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-l", help="At most this many workflows.", min=1)] = 50,
    json_output: JsonOpt = False,
) -> None:
    """List workflows and blocks."""
    if kind is not None and kind not in ("workflow", "block"):
        raise typer.BadParameter("must be workflow or block", param_hint="--kind")
    if sort is not None and sort not in ("name", "created_at", "updated_at"):
        raise typer.BadParameter("must be name, created_at or updated_at", param_hint="--sort")
    page = client().workflows.list(search=search, kind=kind, folder_id=folder, sort=sort,  # type: ignore[arg-type]
                                   order="asc" if sort == "name" else None, limit=min(limit, 1000))
    items = list(itertools.islice(page, limit))
    if json_output:
        print_json(items)
        return
    rows = [[w.name, w.id, w.kind, _version_label(w), "yes" if w.has_draft else "", w.folder_id or "",
             w.description or "", w.updated_at] for w in items]
    stdout().print(table(["NAME", "ID", "KIND", "VERSION", "DRAFT", "FOLDER", "DESCRIPTION", "UPDATED"], rows))


@app.command("get")
@handle_errors
def get(
    workflow: WorkflowArg,
    source: Annotated[bool, typer.Option("--source", "-s", help="Print the definition's text too.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Show one workflow (its latest version)."""
    w = client().workflows.get(workflow)
    if json_output:
        print_json(w)
    else:
        render_workflow(w, show_source=source)


def _ref(value: str) -> int | str:
    return int(value) if value.isdigit() else value


@app.command("versions")
@handle_errors
def versions(
    workflow: WorkflowArg,
    version: Annotated[str | None, typer.Option(
        "--version", "-v", help="Print this version's text (a number or a tag).")] = None,
    json_output: JsonOpt = False,
) -> None:
    """List a workflow's versions and its draft (or print one version with --version)."""
    c = client()
    if version is not None:
        v = c.workflows.version(workflow, _ref(version))
        if json_output:
            print_json(v)
        else:
            note(f"[dim]version {v.version}{f' ({escape(v.tag)})' if v.tag else ''}, "
                 f"published {v.published_at or ''}[/dim]")
            sys.stdout.write((v.source or "").rstrip("\n") + "\n")
            sys.stdout.flush()
        return
    items: list[WorkflowVersion] = list(c.workflows.versions(workflow))
    if json_output:
        print_json(items)
        return
    rows = [["draft" if v.version is None else v.version, v.status, v.tag or "", v.created_at, v.published_at]
            for v in items]
    stdout().print(table(["VERSION", "STATUS", "TAG", "CREATED", "PUBLISHED"], rows))


@app.command("publish")
@handle_errors
def publish(
    workflow: WorkflowArg,
    tag: Annotated[str | None, typer.Option("--tag", "-t", help="Tag the published version.")] = None,
    version: Annotated[int | None, typer.Option(
        "--version", "-v", help="Instead of publishing the draft, move --tag onto this version.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Publish the workflow's draft as its next version (or move a tag with --version)."""
    if version is not None and tag is None:
        raise typer.BadParameter("--version moves a tag: give --tag too", param_hint="--tag")
    v = client().workflows.publish(workflow, tag=tag, version=version)
    tagged = f" ({escape(v.tag)})" if v.tag else ""
    verb = "Tagged" if version is not None else "Published"
    outcome(json_output, v, f"{verb} version {v.version}{tagged} of [bold]{escape(workflow)}[/bold].")


@app.command("delete")
@handle_errors
def delete(workflow: WorkflowArg, json_output: JsonOpt = False) -> None:
    """Delete a workflow with every version (its runs stay)."""
    client().workflows.delete(workflow)
    outcome(json_output, {"deleted": workflow}, f"Deleted workflow [bold]{escape(workflow)}[/bold].")


@app.command("run")
@handle_errors
def run(
    workflow: WorkflowArg,
    input_pairs: Annotated[list[str] | None, typer.Option(
        "--input", "-i", help="key=value (JSON or string; key=@path uploads a file).")] = None,
    inputs_json: Annotated[str | None, typer.Option("--inputs", help="Inputs as JSON, @file or @- (stdin).")] = None,
    version: Annotated[str | None, typer.Option(
        "--version", "-v", help="A version number or a tag (default: the latest).")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="key=value tag of the run.")] = None,
    wait: Annotated[bool, typer.Option(
        "--wait", "-w", help="Wait for the run to end (or to wait for input) and print its output.")] = False,
    timeout: Annotated[float | None, typer.Option("--timeout", help="With --wait: give up after this many "
                                                                      "seconds (exit code 4).")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Run a workflow. Without --wait, print the run's id and return at once.

    With --wait: exit code 0 when it succeeded, 3 when it failed, 4 when it is still going
    after --timeout or waits at a wait_for_input step (answer with `runyard runs input`).
    """
    inputs = parse_inputs(inputs_json, input_pairs or [])
    tags = parse_tags(tag or [])
    ref = _ref(version) if version is not None else None
    c = client()
    if not wait:
        with spinner(f"Starting {workflow}…", enabled=not json_output):
            started = c.workflows.run(workflow, inputs, version=ref, tags=tags or None)
        if json_output:
            print_json(started)
        else:
            stdout().print(started.id)
            note(f"[dim]Run {started.id} is {started.status}; `runyard runs tree {started.id}` shows its steps, "
                 f"`runyard runs wait {started.id}` waits for its output.[/dim]")
        return
    try:
        with spinner(f"Running {workflow}…", enabled=not json_output):
            result = c.workflows.run_and_wait(workflow, inputs, version=ref, tags=tags or None, timeout=timeout)
    except WaitTimeoutError as exc:
        current = exc.runs[0] if exc.runs else None
        if json_output and current is not None:
            print_json(current)
        stderr().print(f"[yellow]timeout:[/yellow] run {current.id if current else ''} still "
                       f"{current.status if current else 'going'}", highlight=False)
        raise typer.Exit(int(Exit.RUN_UNFINISHED)) from None
    if result.status == "waiting_for_input":
        if json_output:
            print_json(result)
        steps = [s.step_id for s in c.runs.steps(result.id) if s.status == "waiting_for_input"]
        at = f" at step {', '.join(str(s) for s in steps)}" if steps else ""
        stderr().print(f"[magenta]waiting:[/magenta] run {result.id} waits for input{escape(at)}; answer with "
                       f"`runyard runs input {result.id} --payload '{{…}}'`", highlight=False)
        raise typer.Exit(int(Exit.RUN_UNFINISHED))
    finish(result, json_output=json_output)


# ---------------------------------------------------------------------------- folders


def _folder_rows(items: list[Folder]) -> list[list[Any]]:
    return [[f.name, f.id, f.description or "", f.created_at] for f in items]


@folders_app.command("list")
@handle_errors
def list_folders(json_output: JsonOpt = False) -> None:
    """List folders."""
    items = list(client().folders.list())
    if json_output:
        print_json(items)
        return
    stdout().print(table(["NAME", "ID", "DESCRIPTION", "CREATED"], _folder_rows(items)))


@folders_app.command("create")
@handle_errors
def create_folder(
    name: Annotated[str, typer.Argument(help="The folder's name.")],
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Create a folder."""
    f = client().folders.create(name, description=description)
    outcome(json_output, f, f"Created folder [bold]{escape(f.name)}[/bold] ({f.id}).")


@folders_app.command("get")
@handle_errors
def get_folder(folder_id: FolderId, json_output: JsonOpt = False) -> None:
    """Show one folder."""
    f = client().folders.get(folder_id)
    if json_output:
        print_json(f)
    else:
        stdout().print(kv_table([("id", f.id), ("name", f.name), ("description", f.description or ""),
                                 ("created", f.created_at), ("updated", f.updated_at)]))


@folders_app.command("update")
@handle_errors
def update_folder(
    folder_id: FolderId,
    name: Annotated[str | None, typer.Option("--name", "-n")] = None,
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Rename a folder or change its description."""
    f = client().folders.update(folder_id, name=name, description=description)
    outcome(json_output, f, f"Updated folder [bold]{escape(f.name)}[/bold] ({f.id}).")


@folders_app.command("delete")
@handle_errors
def delete_folder(folder_id: FolderId, json_output: JsonOpt = False) -> None:
    """Delete an empty folder."""
    client().folders.delete(folder_id)
    outcome(json_output, {"deleted": folder_id}, f"Deleted folder [bold]{escape(folder_id)}[/bold].")
