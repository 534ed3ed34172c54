"""``runyard data links``: links between datasets (docs/links.md)."""

from __future__ import annotations

import itertools
from typing import Annotated, Any

import typer

from runyard.sdk.resources.links import Link

from ._context import client
from ._output import JSON_HELP, handle_errors, outcome, print_json, stdout, table

app = typer.Typer(help="Links between datasets: active and suggested, their pairs, linked rows.",
                  no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
EndArg = Annotated[str, typer.Argument(help="NAMESPACE/DATASET.COLUMN (GeoMatch: NAMESPACE/DATASET.LAT,LON).")]


def _end(e: Any) -> str:
    cols = e.column + (f",{e.lon_column}" if e.lon_column else "")
    return f"{e.namespace}/{e.dataset}.{cols}"


def _rows(items: list[Link]) -> list[list[Any]]:
    return [[x.id, x.status, x.match_type, _end(x.from_), _end(x.to),
             "" if x.score is None else f"{x.score:.3f}", "" if x.pair_count is None else x.pair_count,
             ", ".join(str(s) for s in (x.evidence.get("samples") or [])[:3])] for x in items]


COLUMNS = ["ID", "STATUS", "MATCH", "FROM", "TO", "SCORE", "PAIRS", "SAMPLES"]


@app.command("list")
@handle_errors
def list_links(
    namespace: Annotated[str, typer.Argument(help="The namespace whose datasets' links to list.")],
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Only this dataset's.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="active or suggested.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """List active and suggested links, with scores and sample matching values."""
    items = list(client().links.list(namespace, dataset=dataset, status=status))
    if json_output:
        print_json(items)
        return
    stdout().print(table(COLUMNS, _rows(items)))


@app.command("create")
@handle_errors
def create(
    from_: EndArg,
    to: EndArg,
    geo: Annotated[bool, typer.Option("--geo", help="GeoMatch (default: ExactMatch).")] = False,
    distance: Annotated[float | None, typer.Option("--distance", help="GeoMatch: the distance (default 1).")] = None,
    unit: Annotated[str | None, typer.Option("--unit", help="GeoMatch: km, m or mi (default km).")] = None,
    min_distinct: Annotated[int | None, typer.Option("--min-distinct", help="ExactMatch (default 10).")] = None,
    min_variation: Annotated[float | None, typer.Option("--min-variation", help="ExactMatch (default 0).")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Make a link (or accept a suggestion); its pairs are computed before it returns."""
    if geo:
        options = {k: v for k, v in (("distance", distance), ("unit", unit)) if v is not None}
    else:
        options = {k: v for k, v in (("min_distinct", min_distinct), ("min_variation", min_variation))
                   if v is not None}
    link = client().links.create(from_, to, match_type="GeoMatch" if geo else "ExactMatch", options=options)
    verb = "Created" if link.created else "Exists:"
    outcome(json_output, link, f"{verb} link [bold]{link.id}[/bold] {_end(link.from_)} → {_end(link.to)}, "
                               f"{link.pair_count} pairs.")


@app.command("pairs")
@handle_errors
def pairs(
    link_id: Annotated[str, typer.Argument()],
    limit: Annotated[int, typer.Option("--limit", "-l", help="At most this many pairs.")] = 100,
    json_output: JsonOpt = False,
) -> None:
    """The matched row pairs of a link (the rows' _id)."""
    items = list(itertools.islice(client().links.pairs(link_id, limit=min(limit, 1000)), limit))
    if json_output:
        print_json(items)
        return
    stdout().print(table(["FROM _ID", "TO _ID"], [[p.from_id, p.to_id] for p in items]))


@app.command("linked")
@handle_errors
def linked(
    ref: Annotated[str, typer.Argument(help="NAMESPACE/DATASET.")],
    row_id: Annotated[int, typer.Argument(help="The row's _id.")],
    json_output: JsonOpt = False,
) -> None:
    """The rows of other datasets that active links match with one row."""
    namespace, _, dataset = ref.partition("/")
    if not namespace or not dataset:
        raise typer.BadParameter(f"expected NAMESPACE/DATASET, got {ref!r}")
    items = list(client().links.linked(namespace, dataset, row_id))
    if json_output:
        print_json(items)
        return
    stdout().print(table(["LINK", "DATASET", "ROW"], [[i.link_id, f"{i.namespace}/{i.dataset}", i.row]
                                                      for i in items]))


@app.command("recalculate")
@handle_errors
def recalculate(
    namespace: Annotated[str, typer.Argument()],
    dataset: Annotated[str | None, typer.Option("--dataset", "-d")] = None,
    link_id: Annotated[str | None, typer.Option("--link", help="Only this link.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Recompute the active links' pairs and the suggestions."""
    done = client().links.recalculate(namespace, dataset=dataset, link_id=link_id)
    outcome(json_output, done, f"Recalculated {len(done['recalculated'])} links; {done['suggested']} suggestions.")


@app.command("delete")
@handle_errors
def delete(link_id: Annotated[str, typer.Argument()], json_output: JsonOpt = False) -> None:
    """Delete a link."""
    client().links.delete(link_id)
    outcome(json_output, {"deleted": link_id}, f"Deleted link [bold]{link_id}[/bold].")


def _end_d(e: dict[str, Any]) -> str:
    cols = e["column"] + (f",{e['lon_column']}" if e.get("lon_column") else "")
    return f"{e['namespace']}/{e['dataset']}.{cols}"


@app.command("ontology")
@handle_errors
def ontology(namespace: Annotated[str, typer.Argument()], json_output: JsonOpt = False) -> None:
    """The namespace's ontology: its active links (edges) between datasets (nodes)."""
    onto = client().links.ontology(namespace)
    if json_output:
        print_json(onto)
        return
    stdout().print(table(["ID", "MATCH", "FROM", "TO", "SCORE", "PAIRS"], [
        [e["id"], e["match_type"], _end_d(e["from"]), _end_d(e["to"]),
         "" if e["score"] is None else f"{e['score']:.3f}", "" if e["pair_count"] is None else e["pair_count"]]
        for e in onto["edges"]]))


@app.command("curate")
@handle_errors
def curate(
    namespace: Annotated[str, typer.Argument()],
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Only this dataset's links.")] = None,
    activate: Annotated[bool, typer.Option("--activate", help="Activate the selected links.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Curate the namespace's ontology: a decision, with its reason, for each link."""
    out = client().links.curate(namespace, dataset=dataset, activate=activate)
    if json_output:
        print_json(out)
        return
    stdout().print(table(["ID", "DECISION", "FROM", "TO", "SCORE", "REASON"], [
        [c["link"]["id"], c["decision"], _end_d(c["link"]["from"]), _end_d(c["link"]["to"]),
         "" if c["link"]["score"] is None else f"{c['link']['score']:.3f}", c["reason"]]
        for c in out["curated_links"]]))
    verb = "activated" if activate else "selected"
    stdout().print(f"{out['total_selected']} links {verb} over {out['datasets_processed']} datasets.")
