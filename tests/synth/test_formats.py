from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import sqlite3

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runyard import synth
from runyard.synth import GenerationError
from runyard.synth.formats.jsonfmt import json_ready
from tests.support.synth import render

COUNT = 2500
TRICKY = {"name": "tricky", "fields": [
    {"name": "id", "generator": "sequence"},
    {"name": "s", "generator": "choice", "values": ["it's", 'say "hi"', "back\\slash", "new\nline", "tab\t",
                                                      "ünï 漢字", "=1+2", "a,b;c", ""]},
    {"name": "ok", "generator": "boolean", "null_rate": 0.2},
    {"name": "when", "generator": "datetime"},
    {"name": "day", "generator": "date"},
    {"name": "at", "generator": "time"},
    {"name": "x", "generator": "float", "min": -1e6, "max": 1e6, "null_rate": 0.1},
    {"name": "n", "generator": "integer", "min": -(2**40), "max": 2**40},
]}


@pytest.fixture(scope="module")
def tricky() -> synth.Template:
    return synth.parse_template(TRICKY)


@pytest.fixture(scope="module")
def expected(tricky) -> list[dict]:
    return [{k: json_ready(v) for k, v in row.items()} for row in
            synth.generate_table(tricky, COUNT, seed=7).to_pylist()]


def test_json_and_ndjson_parse_back(tricky, expected):
    assert json.loads(render(tricky, "json", COUNT)) == expected
    lines = render(tricky, "ndjson", COUNT).decode().splitlines()
    assert [json.loads(line) for line in lines] == expected
    assert json.loads(render(tricky, "json", 0)) == []


def test_csv_parses_back(tricky, expected):
    reader = csv.DictReader(io.StringIO(render(tricky, "csv", COUNT).decode(), newline=""))
    rows = list(reader)
    assert reader.fieldnames == [f["name"] for f in TRICKY["fields"]]
    assert len(rows) == COUNT
    for got, want in zip(rows, expected, strict=True):
        assert got["s"] == want["s"]
        assert int(got["n"]) == want["n"]
        assert got["when"] == want["when"] and got["day"] == want["day"] and got["at"] == want["at"]
        assert (got["x"] == "" and want["x"] is None) or float(got["x"]) == want["x"]
        assert got["ok"] == ("" if want["ok"] is None else str(want["ok"]).lower())


def test_csv_options(tricky):
    text = render(tricky, "csv", 3, options={"delimiter": ";", "header": False}).decode()
    assert len(text.splitlines()) >= 3 and not text.startswith('"id"')
    with pytest.raises(GenerationError) as info:
        render(tricky, "csv", 3, options={"delimiter": "ab"})
    assert info.value.code == "invalid_format_option"


def test_parquet_reads_back(tricky):
    data = render(tricky, "parquet", 70_000)
    table = pq.read_table(io.BytesIO(data))
    want = synth.generate_table(tricky, 70_000, seed=7)
    # Parquet has no second resolution: times come back in milliseconds, same instants.
    assert table.cast(want.schema).equals(want)
    assert pq.ParquetFile(io.BytesIO(data)).metadata.num_row_groups == 2


def test_xlsx_reads_back_with_openpyxl(tricky, expected):
    data = render(tricky, "xlsx", 400)
    sheet = openpyxl.load_workbook(io.BytesIO(data), read_only=True).active
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == [f["name"] for f in TRICKY["fields"]]
    for got, want in zip(rows[1:], expected[:400], strict=True):
        assert got[0] == want["id"] and (got[1] or "") == want["s"] and got[7] == want["n"]
        assert got[2] == want["ok"]
        assert got[3] == dt.datetime.fromisoformat(want["when"])
        assert got[4].date().isoformat() == want["day"]


def test_xlsx_refuses_more_rows_than_a_sheet_holds(tricky):
    plan = synth.plan_generation(tricky, count=1_048_576, seed=1)
    with pytest.raises(GenerationError) as info:
        synth.make_encoder(plan, "xlsx")
    assert info.value.code == "count_too_large"


def _sqlite_rows(sql: str) -> list[tuple]:
    con = sqlite3.connect(":memory:")
    con.executescript(sql)
    return con.execute('SELECT id, s, ok, x, n, day FROM "tricky" ORDER BY id').fetchall()


@pytest.mark.parametrize("rows_per_statement", [1, 7, 500])
def test_sql_executes_in_sqlite(tricky, expected, rows_per_statement):
    sql = render(tricky, "sql", COUNT, options={"dialect": "sqlite", "rows_per_statement": rows_per_statement},
                 chunk_rows=333).decode()
    assert sql.count("INSERT INTO") == -(-COUNT // rows_per_statement)
    got = _sqlite_rows(sql)
    assert len(got) == COUNT
    for row, want in zip(got, expected, strict=True):
        assert row[0] == want["id"] and row[1] == want["s"] and row[4] == want["n"] and row[5] == want["day"]
        assert row[2] == (None if want["ok"] is None else int(want["ok"]))
        assert row[3] == want["x"]


def test_sql_table_name_and_mysql_escaping(tricky):
    sql = render(tricky, "sql", 50, options={"dialect": "mysql", "table": "people", "create_table": False}).decode()
    assert sql.startswith("INSERT INTO `people`")
    assert "back\\\\slash" in sql
    with pytest.raises(GenerationError):
        render(tricky, "sql", 5, options={"table": "x; drop"})


# PostgreSQL runs where configured (.ci/run always sets it); the SQLite test above always runs.
@pytest.mark.skipif(not os.environ.get("RUNYARD_TEST_DATABASE_URL"), reason="needs PostgreSQL: set RUNYARD_TEST_DATABASE_URL (.ci/run sets it to the local server)")
def test_sql_executes_in_postgres(tricky, expected):
    import uuid

    import psycopg

    table = f"synth_{uuid.uuid4().hex[:10]}"
    sql = render(tricky, "sql", COUNT, options={"dialect": "postgres", "table": table, "rows_per_statement": 300})
    with psycopg.connect(os.environ["RUNYARD_TEST_DATABASE_URL"], autocommit=True) as conn:
        try:
            conn.execute(sql.decode())
            rows = conn.execute(f'SELECT id, s, ok, x, n, day, "when" FROM "{table}" ORDER BY id').fetchall()
        finally:
            conn.execute(f'DROP TABLE IF EXISTS "{table}"')
    assert len(rows) == COUNT
    for row, want in zip(rows, expected, strict=True):
        assert row[0] == want["id"] and row[1] == want["s"] and row[2] == want["ok"] and row[3] == want["x"]
        assert row[4] == want["n"] and row[5].isoformat() == want["day"]
        assert row[6] == dt.datetime.fromisoformat(want["when"])


def test_unknown_format_refused(tricky):
    plan = synth.plan_generation(tricky, count=1, seed=1)
    with pytest.raises(GenerationError) as info:
        synth.make_encoder(plan, "yaml")
    assert info.value.code == "invalid_format"


def test_empty_generation_is_valid_in_every_format(tricky):
    assert pq.read_table(io.BytesIO(render(tricky, "parquet", 0))).num_rows == 0
    assert render(tricky, "ndjson", 0) == b""
    assert _sqlite_rows(render(tricky, "sql", 0, options={"dialect": "sqlite"}).decode()) == []
    assert isinstance(pa.table({"a": [1]}), pa.Table)
