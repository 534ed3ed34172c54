"""``runyard templates …``: synthetic data templates from JSON or YAML files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from ._context import client
from ._output import JSON_HELP, handle_errors, note, outcome, print_json, stdout, table

app = typer.Typer(help="Manage synthetic data templates.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


def read_document(path: Path) -> dict[str, Any]:
    """A template document from a .json or .yaml file (JSON is tried first)."""
    text = path.read_text()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        raise ValueError(f"{path} does not hold a template object")
    return doc


@app.command("create")
@handle_errors
def create(
    file: Annotated[Path, typer.Argument(help="Template file (.json or .yaml).", exists=True, dir_okay=False)],
    json_output: JsonOpt = False,
) -> None:
    """Create a template from a file."""
    t = client().templates.create(read_document(file))
    outcome(json_output, t, f"Created template [bold]{t.name}[/bold] ({t.id}), version {t.version}.")


@app.command("update")
@handle_errors
def update(
    template: Annotated[str, typer.Argument(help="Template id or name.")],
    file: Annotated[Path, typer.Argument(help="New template file (.json or .yaml).", exists=True, dir_okay=False)],
    json_output: JsonOpt = False,
) -> None:
    """Replace a template's document; stores a new version."""
    doc = read_document(file)
    templates = client().templates
    before = templates.get(template).version
    t = templates.update(template, **{k: v for k, v in doc.items()
                                      if k in ("name", "description", "locale", "fields")})
    if json_output:
        print_json(t)
    elif t.version == before:
        note(f"[bold]{t.name}[/bold] unchanged: still version {t.version} (no new version).")
    else:
        note(f"Updated [bold]{t.name}[/bold]: now version {t.version}.")


@app.command("list")
@handle_errors
def list_templates(json_output: JsonOpt = False) -> None:
    """List templates."""
    items = list(client().templates.list())
    if json_output:
        print_json(items)
        return
    rows = [[t.id, t.name, t.latest_version, len(t.fields), t.locale] for t in items]
    stdout().print(table(["ID", "NAME", "VERSION", "FIELDS", "LOCALE"], rows))


@app.command("get")
@handle_errors
def get(
    template: Annotated[str, typer.Argument(help="Template id or name (optionally id@vN).")],
    version: Annotated[int | None, typer.Option("--version", help="A specific version.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Show a template (its latest version unless --version)."""
    t = client().templates.get(template, version=version)
    if json_output:
        print_json(t)
        return
    note(f"[bold]{t.name}[/bold] ({t.id}) version {t.version}/{t.latest_version}, locale {t.locale}")
    rows = [[f.get("name"), f.get("generator"),
             ", ".join(f"{k}={v}" for k, v in f.items() if k not in ("name", "generator"))] for f in t.fields]
    stdout().print(table(["FIELD", "GENERATOR", "OPTIONS"], rows))


@app.command("versions")
@handle_errors
def versions(template: Annotated[str, typer.Argument(help="Template id or name.")], json_output: JsonOpt = False) -> None:
    """List a template's versions, newest first."""
    items = list(client().templates.versions(template))
    if json_output:
        print_json(items)
        return
    stdout().print(table(["VERSION", "NAME", "FIELDS", "CREATED"],
                         [[t.version, t.name, len(t.fields), getattr(t, "version_created_at", "")] for t in items]))


@app.command("delete")
@handle_errors
def delete(template: Annotated[str, typer.Argument(help="Template id or name.")], json_output: JsonOpt = False) -> None:
    """Delete a template (soft: its versions stay readable by nobody, its name is freed)."""
    client().templates.delete(template)
    outcome(json_output, {"deleted": template}, f"Deleted template {template}.")


@app.command("preview")
@handle_errors
def preview(
    template: Annotated[str, typer.Argument(help="Template id or name.")],
    seed: Annotated[str | None, typer.Option("--seed", help="Seed (drawn and shown when absent).")] = None,
    version: Annotated[int | None, typer.Option("--version", help="Template version (default latest).")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Show the first 3 rows for a seed (a table; the whole preview as JSON with --json)."""
    p = client().templates.preview(template, seed=seed, version=version)
    if json_output:
        print_json(p)
        return
    note(f"seed {p['seed']}, template version {p['version']}")
    rows = p.get("rows") or []
    columns = list(rows[0]) if rows else []
    stdout().print(table([c.upper() for c in columns], [[r.get(c) for c in columns] for r in rows]))
