"""The untrusted half of a cleaning task (data.cleaning.run_cleaning, what ``data.jobs.clean``
runs in the sandbox): the transform reads the source's parts and nothing else, even when SQL
that slipped past the trusted side's check reaches it, and its rows become dataset parts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runyard.data.cleaning import run_cleaning
from runyard.data.parts import PartWriter
from runyard.data.types import Column

COLUMNS = [Column("name", "string"), Column("age", "int")]


@pytest.fixture
def source(tmp_path: Path) -> list[str]:
    writer = PartWriter(tmp_path / "source", COLUMNS, "ing_x", datetime.now(UTC), 1)
    writer.write(pa.table({"name": [" Ann ", "bob", None], "age": [31, None, 12]}), COLUMNS)
    return [str(path) for path, _ in writer.close()]


def _run(tmp_path: Path, source: list[str], sql: str) -> dict:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return run_cleaning(sql=sql, source_paths=source, columns=[c.to_dict() for c in COLUMNS], first_id=1,
                        task_id="cln_test", cleaned_at=datetime.now(UTC).isoformat(), output_dir=tmp_path / "out",
                        work_dir=work, timeout_s=30)


def test_the_result_becomes_parts_with_the_sqls_types(tmp_path: Path, source: list[str]) -> None:
    out = _run(tmp_path, source, "SELECT trim(name) AS name, age, age * 1.5 AS score, age > 20 AS adult, "
                                 "DATE '2024-01-02' AS day FROM source WHERE name IS NOT NULL")
    assert [(c["name"], c["type"]) for c in out["columns"]] == [
        ("name", "string"), ("age", "int"), ("score", "float"), ("adult", "bool"), ("day", "date")]
    [part] = out["parts"]
    assert out["rows"] == 2 and (part["min_id"], part["max_id"]) == (1, 2) and part["ingestion_id"] == "cln_test"
    table = pq.read_table(tmp_path / "out" / "parts" / part["file"])
    assert table.column("name").to_pylist() == ["Ann", "bob"] and table.column("_id").to_pylist() == [1, 2]
    assert not (tmp_path / "work" / "result.parquet").exists()  # the intermediate result is gone


@pytest.mark.parametrize("sql, code", [
    ("SELECT * FROM read_parquet('{other}')", "forbidden_function"),
    ("SELECT * FROM '{other}'", "forbidden_function"),
    ("SELECT * FROM read_text('/etc/hostname')", "forbidden_function"),
    ("SELECT * FROM other_ns.secrets", "unknown_dataset"),
    ("COPY (SELECT * FROM source) TO '{other}.csv'", "read_only_sql"),
    ("SELECT current_setting('allowed_paths') AS p", "forbidden_function"),
])
def test_nothing_outside_the_source_is_read_or_written(tmp_path: Path, source: list[str], sql: str,
                                                       code: str) -> None:
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"secret": ["s3cr3t"]}), other)
    out = _run(tmp_path, source, sql.format(other=other))
    assert out["error"]["code"] == code, out
    assert "s3cr3t" not in str(out)
    assert not Path(f"{other}.csv").exists()
    assert not (tmp_path / "out" / "parts").exists() or not list((tmp_path / "out" / "parts").iterdir())


def test_columns_a_dataset_cannot_hold_are_refused(tmp_path: Path, source: list[str]) -> None:
    out = _run(tmp_path, source, "SELECT age AS _id FROM source")
    assert out["error"]["code"] == "invalid_output" and "_id" in out["error"]["message"]
