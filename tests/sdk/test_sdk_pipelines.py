"""Ingestion pipelines through the SDK: ``pipeline=`` on ingest, ingest_file, upload and preview."""

from __future__ import annotations

from pathlib import Path

import pytest

from runyard import Client, ValidationError

PIPELINE = [{"rename": {"Name": "name"}}, {"normalize": {"columns": ["name"], "case": "lower"}},
            {"cast": {"n": "int"}}, {"derive": {"name": "double", "expression": "n * 2"}}]


@pytest.fixture
def ns(client: Client, unique: str) -> str:
    return client.namespaces.create(f"pipes-{unique}").name


def test_ingest_with_a_pipeline(client: Client, ns: str) -> None:
    rows = [{"Name": " ANN ", "n": "1"}, {"Name": "Bob", "n": "x"}, {"Name": "Cid", "n": "3"}]
    result = client.datasets.ingest(ns, "people", rows, create=True, batch_size=2, pipeline=PIPELINE)
    assert result.successful == 2
    assert [f.index for f in result.failed] == [1] and "step 2 (cast)" in result.failed[0].errors["pipeline"]
    page = client.datasets.query(f'SELECT name, n, double FROM "{ns}"."people" ORDER BY n')
    assert [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in page.rows] == [("ann", 1, 2), ("cid", 3, 6)]
    # A refused batch is reported, not raised (as any batch the server refuses as a whole).
    refused = client.datasets.ingest(ns, "people", rows, pipeline=[{"explode": {}}])
    assert refused.successful == 0 and len(refused.failed) == 3
    assert "unknown step" in (refused.batches[0].error or "")
    with pytest.raises(ValidationError) as caught:
        client.datasets.preview(rows=rows, pipeline=[{"explode": {}}])
    assert caught.value.code == "invalid_pipeline"


def test_ingest_file_upload_and_preview_with_a_pipeline(client: Client, ns: str, tmp_path: Path) -> None:
    f = tmp_path / "people.csv"
    f.write_text("Name,n\nANN,1\nBob,x\nCid,3\n")
    done = client.datasets.ingest_file(f, ns, "file", pipeline=PIPELINE, wait=True)
    assert done.status == "succeeded" and done.processed_rows == 2 and done.failed_rows == 1
    up = client.datasets.upload(f, ns, "upload", pipeline=PIPELINE, options={"format": "csv"}, wait=True)
    assert up.status == "succeeded" and up.processed_rows == 2
    assert [c.name for c in client.datasets.get(ns, "upload").columns] == ["name", "n", "double"]
    preview = client.datasets.preview(rows=[{"Name": "ANN", "n": "4"}], pipeline=PIPELINE)
    assert preview.rows == [{"name": "ann", "n": 4, "double": 8}]
