"""``runyard data auto-ingest FILE``: an ingest proxy run over a file's rows, its events
streamed as they come (docs/ingest-proxy.md)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from ._context import client
from ._output import Exit, handle_errors, note, stderr

PHASE_STYLE = {"phase": "bold", "progress": "", "log": "dim", "hook": "yellow", "complete": "green", "error": "red"}


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The file's rows: a JSON array of objects, NDJSON, or CSV/TSV (by extension; values as text)."""
    text = path.read_text(encoding="utf-8-sig")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return list(csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ","))
    stripped = text.lstrip()
    if stripped.startswith("["):
        rows = json.loads(text)
    else:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise typer.BadParameter("the file must hold JSON objects (an array, or one per line)", param_hint="FILE")
    return rows


def _review(run_id: str, hook: dict[str, Any]) -> None:
    schema = hook.get("schema") or {}
    note("[bold]Proposed schema[/bold]" + (f" ({escape(str(hook.get('schema_source')))})" if hook.get("schema_source")
                                           else ""))
    for field in schema.get("fields") or []:
        note(f"  {escape(field['name'])}: {escape(field['type'])}  [dim]← {escape(field.get('source') or '')}"
             f"{'  ' + escape(field['description']) if field.get('description') else ''}[/dim]")
    approved = typer.confirm("Approve this schema?", default=True, err=True)
    client().ingest_proxy.hook(run_id, kind="schema_review", hook_id=hook.get("id"), approved=approved)


def _clarify(run_id: str, hook: dict[str, Any]) -> None:
    for question in hook.get("questions") or []:
        note(f"[yellow]?[/yellow] {escape(str(question))}")
    answer = typer.prompt("Your answer", err=True)
    client().ingest_proxy.hook(run_id, kind="clarification", hook_id=hook.get("id"), answer=answer)


@handle_errors
def auto_ingest(
    file: Annotated[Path, typer.Argument(help="JSON array, NDJSON, CSV or TSV.", exists=True, dir_okay=False,
                                         readable=True)],
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="Where the dataset goes.")],
    dataset: Annotated[str | None, typer.Option("--dataset", help="The dataset (default: the model's name).")] = None,
    review: Annotated[bool, typer.Option("--review", help="Stop for the model's questions and a schema review.")] = False,
    use_model: Annotated[bool, typer.Option("--model/--no-model", help="Propose the schema with the model "
                                                                       "(else infer it from the values).")] = True,
    ontology: Annotated[bool, typer.Option("--ontology/--no-ontology", help="Curate the ontology after.")] = True,
    prompt: Annotated[str | None, typer.Option("--prompt", help="The goals of the ingestion, for the model.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON event per line, as they come.")] = False,
) -> None:
    """Let a language model propose a schema for FILE's rows, then ingest them.

    Events are shown as they come (stderr; the run's output on stdout at the end). Exit 1
    when the run ends in an error."""
    rows = read_rows(file)
    proxy = client().ingest_proxy
    run = proxy.start(namespace, data=rows, dataset=dataset, enable_human_in_the_loop=review, model=use_model,
                      ontology=ontology, user_prompt=prompt)
    note(f"[dim]run {run.id}[/dim]")
    index = 0
    failed = False
    while True:
        hook: dict[str, Any] | None = None
        for event in proxy.stream(run.id, start_index=index, until_hook=True):
            index = event.index + 1
            if json_output:
                sys.stdout.write(json.dumps(event.to_dict(), default=str) + "\n")
                sys.stdout.flush()
            elif event.type == "error":
                stderr().print(f"[red]error:[/red] {escape(str((event.data or {}).get('code')))}: "
                               f"{escape(event.message)}", highlight=False)
            elif event.type != "complete":
                style = PHASE_STYLE.get(event.type, "")
                label = f"[{event.phase}]" if event.phase else ""
                text = f"{escape(label)} {escape(event.message)}"
                note(f"[{style}]{text}[/{style}]" if style else text)
            if event.type == "hook":
                hook = (event.data or {}).get("hook")
            failed = failed or event.type == "error"
            if event.type == "complete" and not json_output:
                sys.stdout.write(json.dumps(event.data, indent=2, default=str) + "\n")
        if hook is None:
            break
        if hook.get("kind") == "schema_review":
            _review(run.id, hook)
        elif hook.get("kind") == "clarification":
            _clarify(run.id, hook)
        else:
            stderr().print(f"[red]the run waits for a fresh key ({escape(str(hook.get('message')))}); answer it "
                           f"with POST /ingest-proxy/runs/{run.id}/hook[/red]", highlight=False)
            raise typer.Exit(int(Exit.ERROR))
    if failed:
        raise typer.Exit(int(Exit.ERROR))
