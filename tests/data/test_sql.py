"""The SQL layer over datasets: real DuckDB over real Parquet parts in tmp_path."""

from __future__ import annotations

import base64
import datetime as dt
import io
import time
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runyard.data.results import read_result
from runyard.data.sql import (
    DatasetSource,
    QueryError,
    QueryFailed,
    QueryRejected,
    QueryTimeout,
    check_sql,
    open_locked,
    referenced_datasets,
    run_query,
)
from runyard.data.types import METADATA_FIELDS, Column

UTC = dt.UTC
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def write_part(path: Path, first_id: int, columns: dict[str, pa.Array]) -> str:
    """A part as the dataset layer writes it: hidden metadata columns first, then user columns."""
    n = len(next(iter(columns.values())))
    meta = {
        "_id": pa.array(range(first_id, first_id + n), pa.int64()),
        "_ingestion_id": pa.array(["ing-1"] * n, pa.string()),
        "_ingested_at": pa.array([T0] * n, pa.timestamp("us", tz="UTC")),
    }
    fields = [*METADATA_FIELDS, *(pa.field(k, v.type) for k, v in columns.items())]
    table = pa.Table.from_arrays([*meta.values(), *columns.values()], schema=pa.schema(fields))
    pq.write_table(table, path)
    return str(path)


@pytest.fixture
def sales(tmp_path: Path) -> DatasetSource:
    p1 = write_part(tmp_path / "sales-1.parquet", 1, {
        "city": pa.array(["Oslo", "Rome", "Oslo"]),
        "amount": pa.array([10.0, 20.0, 30.0]),
    })
    p2 = write_part(tmp_path / "sales-2.parquet", 4, {
        "city": pa.array(["Rome", "Lima"]),
        "amount": pa.array([5.0, 7.5]),
    })
    return DatasetSource("shop", "sales", [p1, p2], [Column("city", "string"), Column("amount", "float")], 7)


@pytest.fixture
def cities(tmp_path: Path) -> DatasetSource:
    p = write_part(tmp_path / "cities.parquet", 1, {
        "city": pa.array(["Oslo", "Rome", "Lima"]),
        "country": pa.array(["NO", "IT", "PE"]),
    })
    return DatasetSource("geo", "cities", [p], [Column("city", "string"), Column("country", "string")], 2)


def run_json(query: str | None, sources: list[DatasetSource], **kw: Any) -> tuple[dict[str, Any], Any]:
    buf = io.BytesIO()
    outcome = run_query(query, sources, out=buf, **kw)
    return orjson.loads(buf.getvalue()), outcome


# --- running ----------------------------------------------------------------------------------------------


def test_select_across_two_namespaces(sales: DatasetSource, cities: DatasetSource) -> None:
    doc, outcome = run_json(
        'SELECT c.country, sum(s.amount) AS total FROM "shop"."sales" s JOIN geo.cities c USING (city) '
        "GROUP BY c.country ORDER BY c.country",
        [sales, cities],
    )
    assert doc["rows"] == [{"country": "IT", "total": 25.0}, {"country": "NO", "total": 40.0},
                           {"country": "PE", "total": 7.5}]
    assert outcome.columns == [{"name": "country", "type": "string"}, {"name": "total", "type": "float"}]
    assert outcome.rows_written == 3 and not outcome.truncated


def test_bare_names_resolve_in_the_default_namespace(sales: DatasetSource) -> None:
    assert referenced_datasets("SELECT * FROM sales", "shop") == [("shop", "sales")]
    doc, _ = run_json("SELECT count(*) AS n FROM sales", [sales], default_namespace="shop")
    assert doc["rows"] == [{"n": 5}]
    with pytest.raises(QueryRejected) as exc:
        referenced_datasets("SELECT * FROM sales", None)
    assert exc.value.code == "unknown_dataset"


def test_ctes_are_not_datasets(sales: DatasetSource) -> None:
    query = (
        "WITH big AS (SELECT * FROM shop.sales WHERE amount > 8), "
        "sales AS (SELECT city FROM big) SELECT count(*) AS n FROM sales"
    )
    assert referenced_datasets(query, "shop") == [("shop", "sales")]  # only the qualified one
    doc, _ = run_json(query, [sales], default_namespace="shop")
    assert doc["rows"] == [{"n": 3}]
    recursive = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 4) SELECT sum(n) AS s FROM r"
    assert referenced_datasets(recursive, "shop") == []
    doc, _ = run_json(recursive, [])
    assert doc["rows"] == [{"s": 10}]


def test_referenced_datasets_sees_subqueries_and_describe() -> None:
    q = ('SELECT (SELECT max(a) FROM "n1"."x") FROM y WHERE EXISTS (FROM n2.z) '
         "UNION ALL SELECT 1 FROM (DESCRIBE w)")
    assert referenced_datasets(q, "d") == [("n1", "x"), ("d", "y"), ("n2", "z"), ("d", "w")]


def test_unknown_dataset_is_refused_before_running(sales: DatasetSource) -> None:
    with pytest.raises(QueryRejected) as exc:
        run_json("SELECT * FROM shop.sales, shop.secret", [sales])
    assert exc.value.code == "unknown_dataset"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("COPY (SELECT 1) TO '/tmp/x.csv'", "read_only_sql"),
        ("ATTACH '/tmp/x.db' AS x", "read_only_sql"),
        ("INSTALL httpfs", "read_only_sql"),
        ("LOAD httpfs", "read_only_sql"),
        ("SET threads = 8", "read_only_sql"),
        ("RESET memory_limit", "read_only_sql"),
        ("PRAGMA version", "read_only_sql"),
        ("CREATE SECRET (TYPE s3, KEY_ID 'x', SECRET 'y')", "read_only_sql"),
        ("INSERT INTO t VALUES (1)", "read_only_sql"),
        ("CREATE TABLE t AS SELECT 1", "read_only_sql"),
        ("EXPLAIN SELECT 1", "read_only_sql"),
        ("USE other", "read_only_sql"),
        ("CALL pragma_version()", "read_only_sql"),
        ("SELECT 1; SELECT 2", "multiple_statements"),
        ("SELECT 1; COPY (SELECT 1) TO '/tmp/x'", "multiple_statements"),
        ("SELEC 1", "invalid_sql"),
        ("", "invalid_sql"),
        ("SELECT * FROM read_csv('/etc/passwd')", "forbidden_function"),
        ("SELECT * FROM read_csv_auto('/etc/passwd')", "forbidden_function"),
        ("SELECT * FROM sniff_csv('/etc/passwd')", "forbidden_function"),
        ("SELECT * FROM read_text('/etc/passwd')", "forbidden_function"),
        ("SELECT * FROM read_blob('/etc/passwd')", "forbidden_function"),
        ("SELECT * FROM read_json_auto('/etc/x.json')", "forbidden_function"),
        ("SELECT * FROM glob('/etc/*')", "forbidden_function"),
        ("SELECT * FROM '/etc/passwd'", "forbidden_function"),
        ("SELECT * FROM 'https://example.com/x.parquet'", "forbidden_function"),
        ("SELECT * FROM read_parquet('/some/other/file.parquet')", "forbidden_function"),
        ("SELECT * FROM parquet_metadata('/x.parquet')", "forbidden_function"),
        ("SELECT * FROM duckdb_settings()", "forbidden_function"),
        ("SELECT * FROM duckdb_secrets()", "forbidden_function"),
        ("SELECT * FROM query('SELECT 1')", "forbidden_function"),
        ("SELECT * FROM histogram('shop.sales', amount)", "forbidden_function"),
        ("SELECT * FROM iceberg_scan('/x')", "forbidden_function"),
        ("SELECT getenv('HOME')", "forbidden_function"),
        ("SELECT 'HOME'.getenv()", "forbidden_function"),
        ('SELECT "current_setting"(\'memory_limit\')', "forbidden_function"),
        ("SELECT current_setting('memory_limit')", "forbidden_function"),
        ("SELECT a FROM (SELECT current_setting('allowed_paths') AS a)", "forbidden_function"),
        ("SELECT E'\\'', getenv('HOME') --'", "forbidden_function"),
        ("SELECT * FROM information_schema.tables", "forbidden_table"),
        ("SELECT * FROM memory.shop.sales", "forbidden_table"),
        ("SHOW TABLES", "forbidden_table"),
    ],
)
def test_forbidden_sql_is_refused_before_running(query: str, code: str) -> None:
    with pytest.raises(QueryRejected) as exc:
        check_sql(query)
    assert exc.value.code == code, exc.value.message


def test_allowed_table_functions_and_functions_in_strings() -> None:
    # Forbidden names inside string literals and comments are text, not calls.
    assert check_sql("SELECT 'read_csv(x)' AS a, range FROM range(3) -- getenv('x')\n").startswith("SELECT")
    doc, _ = run_json("SELECT count(*) AS n FROM generate_series(1, 10), unnest([1, 2])", [])
    assert doc["rows"] == [{"n": 20}]


# --- the connection's own lockdown, with the check bypassed ----------------------------------------------------


def test_lockdown_refuses_files_outside_the_parts(tmp_path: Path, sales: DatasetSource) -> None:
    other = write_part(tmp_path / "other.parquet", 1, {"secret": pa.array(["s"])})
    (tmp_path / "plain.csv").write_text("a\n1\n")
    with open_locked([sales]) as conn:
        assert conn.sql("SELECT count(*) FROM shop.sales").fetchall() == [(5,)]
        for sql in [
            "SELECT * FROM read_csv('/etc/passwd')",
            f"SELECT * FROM read_parquet('{other}')",
            f"SELECT * FROM read_csv('{tmp_path / 'plain.csv'}')",
            f"SELECT * FROM glob('{tmp_path}/*')",
            f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'",
            f"ATTACH '{tmp_path / 'x.db'}'",
        ]:
            with pytest.raises(duckdb.PermissionException):
                conn.sql(sql)
        with pytest.raises(duckdb.Error):  # the replacement scan is off and the file unreachable
            conn.sql("SELECT * FROM '/etc/passwd'")
        with pytest.raises(duckdb.Error):
            conn.sql("LOAD httpfs")
    assert not (tmp_path / "out.csv").exists()


def test_lockdown_refuses_set(sales: DatasetSource) -> None:
    with open_locked([sales], memory_limit_mb=256) as conn:
        for sql in [
            "SET threads = 8",
            "SET memory_limit = '10GB'",
            "SET enable_external_access = true",
            "SET allowed_paths = ['/etc/passwd']",
            "SET allowed_directories = ['/']",
            "SET lock_configuration = false",
            "RESET enable_external_access",
            "SET autoload_known_extensions = true",
        ]:
            with pytest.raises(duckdb.InvalidInputException, match="locked"):
                conn.execute(sql)
        rows = conn.sql("SELECT current_setting('memory_limit'), current_setting('enable_external_access')").fetchall()
        assert rows[0][1] is False and rows[0][0].startswith("2")


# --- limits ------------------------------------------------------------------------------------------------


def test_a_query_that_never_ends_times_out() -> None:
    start = time.monotonic()
    with pytest.raises(QueryTimeout) as exc:
        # The small side is built in memory, the large one streams: it runs for hours in a few MB
        # (a cross join of two large ranges can run out of memory before the timeout instead).
        run_json("SELECT count(*) FROM range(1000000000000) a, range(1000) b WHERE (a.range + b.range) % 7 = 3", [],
                 timeout_s=1.0, threads=2)
    assert exc.value.code == "query_timeout"
    assert time.monotonic() - start < 5


def test_a_streaming_query_is_stopped_by_the_timeout_too() -> None:
    with pytest.raises(QueryTimeout):
        run_query("SELECT x, repeat('x', 100) FROM range(10000000000) t(x)", [], out=io.BytesIO(),
                  format="ndjson", timeout_s=1.0)


def test_memory_limit_exceeded_is_a_clear_failure() -> None:
    with pytest.raises(QueryFailed) as exc:
        run_json("SELECT x % 3000000 AS k, list(x) AS l FROM range(6000000) t(x) GROUP BY k ORDER BY k LIMIT 1",
                 [], memory_limit_mb=32)
    assert exc.value.code == "query_memory_limit", exc.value.message


def test_query_errors_are_query_error(sales: DatasetSource) -> None:
    with pytest.raises(QueryFailed) as exc:
        run_json("SELECT no_such_column FROM shop.sales", [sales])
    assert exc.value.code == "query_error"


# --- schema evolution, names, formats -----------------------------------------------------------------------


def test_widened_and_added_columns_read_as_the_current_schema(tmp_path: Path) -> None:
    old = write_part(tmp_path / "old.parquet", 1, {"n": pa.array([1, 2], pa.int64())})
    new = write_part(tmp_path / "new.parquet", 3, {
        "n": pa.array([2.5], pa.float64()), "note": pa.array(["hi"]),
    })
    source = DatasetSource("ns", "evolved", [old, new],
                           [Column("n", "float"), Column("note", "string"), Column("later", "int")], 3)
    doc, outcome = run_json("SELECT * FROM ns.evolved ORDER BY n", [source])
    assert doc["rows"] == [
        {"n": 1.0, "note": None, "later": None},
        {"n": 2.0, "note": None, "later": None},
        {"n": 2.5, "note": "hi", "later": None},
    ]
    assert [c["type"] for c in outcome.columns] == ["float", "string", "int"]


def test_a_dataset_without_parts_is_an_empty_view() -> None:
    source = DatasetSource("ns", "empty", [], [Column("a", "int"), Column("t", "timestamp")], 0)
    doc, outcome = run_json("SELECT * FROM ns.empty", [source])
    assert doc["rows"] == [] and outcome.columns == [{"name": "a", "type": "int"}, {"name": "t", "type": "timestamp"}]
    doc, outcome = run_json(None, [], select_all=source, include_metadata=True)
    assert [c["name"] for c in outcome.columns] == ["_id", "_ingestion_id", "_ingested_at", "_entity_id", "a", "t"]


def test_names_with_quotes_and_dots(tmp_path: Path) -> None:
    p = write_part(tmp_path / "q.parquet", 1, {'a "b".c': pa.array([1, 2], pa.int64())})
    source = DatasetSource('we"ird.ns', "da.ta'set", [p], [Column('a "b".c', "int")], 1)
    query = 'SELECT sum("a ""b"".c") AS s FROM "we""ird.ns"."da.ta\'set"'
    assert referenced_datasets(query, None) == [('we"ird.ns', "da.ta'set")]
    doc, _ = run_json(query, [source])
    assert doc["rows"] == [{"s": 3}]
    doc, _ = run_json("SELECT count(*) AS n FROM \"da.ta'set\"", [source], default_namespace='we"ird.ns')
    assert doc["rows"] == [{"n": 2}]


def test_metadata_columns_only_when_asked(sales: DatasetSource) -> None:
    with pytest.raises(QueryFailed):
        run_json("SELECT _id FROM shop.sales", [sales])
    doc, outcome = run_json("SELECT _id, city FROM shop.sales ORDER BY _id DESC LIMIT 1", [sales],
                            include_metadata=True)
    assert doc["rows"] == [{"_id": 5, "city": "Lima"}] and outcome.last_id == 5


def test_select_all_pages_by_id(sales: DatasetSource) -> None:
    doc, outcome = run_json(None, [], select_all=sales, limit=2)
    assert doc["rows"] == [{"city": "Oslo", "amount": 10.0}, {"city": "Rome", "amount": 20.0}]
    assert outcome.truncated and outcome.last_id == 2 and doc["truncated"] and doc["last_id"] == 2
    assert outcome.columns == [{"name": "city", "type": "string"}, {"name": "amount", "type": "float"}]
    seen = doc["rows"]
    while outcome.truncated:
        doc, outcome = run_json(None, [], select_all=sales, limit=2, offset_id=outcome.last_id)
        seen += doc["rows"]
    assert [r["city"] for r in seen] == ["Oslo", "Rome", "Oslo", "Rome", "Lima"] and outcome.last_id == 5
    doc, _ = run_json(None, [], select_all=sales, include_metadata=True, limit=1)
    assert doc["rows"][0]["_id"] == 1 and doc["rows"][0]["_ingested_at"] == "2024-05-01T12:00:00+00:00"


def test_json_limit_truncates(sales: DatasetSource) -> None:
    doc, outcome = run_json("SELECT * FROM shop.sales", [sales], limit=3)
    assert len(doc["rows"]) == 3 and outcome.truncated and outcome.rows_written == 3
    doc, outcome = run_json("SELECT * FROM shop.sales", [sales], limit=5)
    assert len(doc["rows"]) == 5 and not outcome.truncated


@pytest.fixture
def typed(tmp_path: Path) -> DatasetSource:
    geo = pa.array([{"lat": 59.9, "lon": 10.7}, None], pa.struct([("lat", pa.float64()), ("lon", pa.float64())]))
    p = write_part(tmp_path / "typed.parquet", 1, {
        "i": pa.array([1, None], pa.int64()),
        "f": pa.array([1.5, float("nan")], pa.float64()),
        "b": pa.array([True, False]),
        "d": pa.array([dt.date(2024, 2, 29), None], pa.date32()),
        "t": pa.array([T0, None], pa.timestamp("us", tz="UTC")),
        "s": pa.array(["x", "é,\"q\"\n"]),
        "j": pa.array(['{"a": [1, 2]}', None]),
        "g": geo,
    })
    cols = [Column("i", "int"), Column("f", "float"), Column("b", "bool"), Column("d", "date"),
            Column("t", "timestamp"), Column("s", "string"), Column("j", "json"), Column("g", "geo")]
    return DatasetSource("ns", "typed", [p], cols, 1)


def test_json_values_are_json_safe(typed: DatasetSource) -> None:
    doc, outcome = run_json(
        "SELECT *, 1.25::DECIMAL(10, 2) AS dec, sum(i) OVER () AS total, 'ab'::BLOB AS raw, "
        "INTERVAL 36 HOUR AS span FROM ns.typed ORDER BY _id",
        [typed], include_metadata=True,
    )
    first, second = doc["rows"]
    assert first["t"] == "2024-05-01T12:00:00+00:00" and first["d"] == "2024-02-29"
    assert first["j"] == {"a": [1, 2]} and first["g"] == {"lat": 59.9, "lon": 10.7}
    assert first["dec"] == 1.25 and first["total"] == 1 and base64.b64decode(first["raw"]) == b"ab"
    assert first["span"] == "PT129600S"
    assert second["f"] is None and second["i"] is None and second["j"] is None
    types = {c["name"]: c["type"] for c in outcome.columns}
    assert types["j"] == "json" and types["g"] == "geo" and types["t"] == "timestamp" and types["total"] == "int"


@pytest.mark.parametrize("fmt", ["json", "ndjson", "csv", "parquet", "arrow"])
def test_each_format_round_trips(typed: DatasetSource, fmt: str, tmp_path: Path) -> None:
    path = tmp_path / f"out.{fmt}"
    outcome = run_query("SELECT i, b, d, t, s, g FROM ns.typed ORDER BY i NULLS LAST", [typed], out=str(path),
                        format=fmt)  # type: ignore[arg-type]
    assert outcome.rows_written == 2
    back = read_result(fmt, path.read_bytes())
    if fmt in ("json", "ndjson"):
        rows = back["rows"] if fmt == "json" else back
        assert rows[0] == {"i": 1, "b": True, "d": "2024-02-29", "t": "2024-05-01T12:00:00+00:00", "s": "x",
                           "g": {"lat": 59.9, "lon": 10.7}}
        assert rows[1]["s"] == "é,\"q\"\n" and rows[1]["g"] is None
        return
    assert isinstance(back, pa.Table)
    rows = back.to_pylist()
    assert rows[0]["i"] == 1 and rows[0]["b"] is True and rows[1]["s"] == "é,\"q\"\n"
    if fmt == "csv":
        assert orjson.loads(rows[0]["g"]) == {"lat": 59.9, "lon": 10.7}
        assert rows[0]["t"] == T0
    else:
        assert rows[0]["g"] == {"lat": 59.9, "lon": 10.7} and rows[0]["t"] == T0 and rows[0]["d"] == dt.date(2024, 2, 29)


@pytest.mark.parametrize("fmt", ["json", "ndjson", "csv", "parquet", "arrow"])
def test_an_empty_result_is_a_valid_document(sales: DatasetSource, fmt: str) -> None:
    buf = io.BytesIO()
    run_query("SELECT city FROM shop.sales WHERE false", [sales], out=buf, format=fmt)  # type: ignore[arg-type]
    back = read_result(fmt, buf.getvalue())
    if fmt == "json":
        assert back == {"columns": [{"name": "city", "type": "string"}], "rows": [], "truncated": False,
                        "last_id": None}
    elif fmt == "ndjson":
        assert back == []
    else:
        assert isinstance(back, pa.Table) and back.num_rows == 0 and back.column_names == ["city"]


def test_explain_plans_without_running(sales: DatasetSource) -> None:
    outcome = run_query("SELECT city, count(*) FROM shop.sales GROUP BY city", [sales], explain=True)
    assert outcome.rows_written == 0 and outcome.explain is not None
    assert outcome.explain["snapshots"] == {"shop.sales": 7}
    assert outcome.explain["sql"].startswith("SELECT city")
    assert "READ_PARQUET" in outcome.explain["plan"].upper()
    assert str(sales.paths[0]) not in outcome.explain["plan"]
    assert outcome.columns[0] == {"name": "city", "type": "string"}


def test_cte_and_alias_names_that_look_like_calls_are_not_calls(sales: DatasetSource) -> None:
    query = "WITH summary(n) AS (SELECT 1) SELECT count(*) AS c FROM summary, shop.sales AS query(a, b)"
    assert referenced_datasets(query, None) == [("shop", "sales")]
    doc, _ = run_json(query, [sales])
    assert doc["rows"] == [{"c": 5}]


def test_duplicate_result_names_stay_apart(sales: DatasetSource) -> None:
    doc, outcome = run_json("SELECT 1 AS a, 2 AS a FROM shop.sales LIMIT 1", [sales])
    assert doc["rows"] == [{"a": 1, "a_1": 2}] and [c["name"] for c in outcome.columns] == ["a", "a_1"]


def test_errors_do_not_name_the_parts_paths(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet" * 10)
    source = DatasetSource("ns", "bad", [str(bad)], [Column("a", "int")], 1)
    with pytest.raises(QueryError) as exc:
        run_json("SELECT * FROM ns.bad", [source])
    assert str(tmp_path) not in exc.value.message and "<ns.bad part 1>" in exc.value.message


def test_a_failed_result_file_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "out.ndjson"
    with pytest.raises(QueryTimeout):
        run_query("SELECT x FROM range(10000000000) t(x)", [], out=str(path), format="ndjson", timeout_s=0.5)
    assert not path.exists()
