"""Entity resolution on ingest through the SDK (``entity_resolution=`` on ingest and
ingest_file, ``datasets.entities``) and the CLI (``runyard data ingest --entity-resolution``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runyard import Client
from tests.cli.conftest import cli, config_file  # noqa: F401 (fixtures)
from tests.support.cli import Invoke, as_json

EXACT = {"match_type": "ExactMatch", "columns": ["email"], "policy": "merge"}


@pytest.fixture
def ns(client: Client, unique: str) -> str:
    return client.namespaces.create(f"ersdk-{unique}").name


def test_ingest_in_batches_reports_entities_with_indexes_from_the_start(client: Client, ns: str) -> None:
    rows = [{"email": "a@x.org", "name": "Ann"}, {"email": "b@x.org"}, {"email": "A@X.org ", "phone": "1"},
            {"email": "c@x.org"}, {"email": "b@x.org", "name": "Bob"}]
    result = client.datasets.ingest(ns, "people", rows, create=True, batch_size=2, entity_resolution=EXACT)
    assert result.successful == 5 and result.failed == []
    entries = [e for b in result.batches for e in b.entity_resolution.entities]  # type: ignore[union-attr]
    assert [e.index for e in entries] == [0, 1, 2, 3, 4]
    assert [e.action for e in entries] == ["created", "created", "merged", "created", "merged"]
    assert entries[2].entity_id == entries[0].entity_id and entries[4].entity_id == entries[1].entity_id
    page = client.datasets.query(f'SELECT email, name, phone FROM "{ns}"."people" ORDER BY email')
    got = [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in page.rows]
    assert got == [("A@X.org ", "Ann", "1"), ("b@x.org", "Bob", None), ("c@x.org", None, None)]
    listed = list(client.datasets.entities(result.batches[1].ingestion_id, limit=1))  # type: ignore[arg-type]
    assert [(e.index, e.action) for e in listed] == [(0, "merged"), (1, "created")]  # per ingestion


def test_ingest_file_and_the_cli(client: Client, ns: str, tmp_path: Path, cli: Invoke) -> None:  # noqa: F811
    f = tmp_path / "people.csv"
    f.write_text("email,name\na@x.org,Ann\nA@x.org,Annie\n")
    done = client.datasets.ingest_file(f, ns, "file", entity_resolution={**EXACT, "policy": "keep_first"},
                                       wait=True)
    assert done.status == "succeeded", done.status_message
    report = done.attributes["entity_resolution"]
    assert [e["action"] for e in report["entities"]] == ["created", "kept_existing"]

    g = tmp_path / "more.csv"
    g.write_text("email,name\na@X.org,Ann B\nz@x.org,Zed\n")
    r = cli("data", "ingest", str(g), f"{ns}/file", "--entity-resolution",
            '{"match_type": "ExactMatch", "columns": ["email"], "policy": "overwrite"}', "--json")
    assert r.exit_code == 0, r.output
    counts = as_json(r)["attributes"]["entity_resolution"]["counts"]
    assert counts["overwritten"] == 1 and counts["created"] == 1
    r = cli("data", "ingest", str(g), f"{ns}/file", "--entity-resolution", '{"match_type": "ExactMatch", '
            '"columns": ["email"], "policy": "overwrite"}')
    assert r.exit_code == 0 and "2 overwritten" in r.stdout, r.output
    page = client.datasets.query(f'SELECT email, name FROM "{ns}"."file" ORDER BY email')
    assert [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in page.rows] == [
        ("a@X.org", "Ann B"), ("z@x.org", "Zed")]

    r = cli("data", "ingest", str(g), f"{ns}/file", "--entity-resolution", "{not json")
    assert r.exit_code != 0 and "not JSON" in r.output
    r = cli("data", "ingest", str(g), f"{ns}/file", "--entity-resolution", '{"match_type": "Nope"}', "--json")
    assert r.exit_code == 1 and as_json(r)["error"]["code"] == "invalid_entity_resolution"


def test_preview_with_entity_resolution(client: Client) -> None:
    found = client.datasets.preview(rows=[{"email": "a@x.org"}, {"email": "A@x.org"}], entity_resolution=EXACT)
    assert found.entity_resolution is not None
    assert [e.action for e in found.entity_resolution.entities] == ["created", "matched"]
