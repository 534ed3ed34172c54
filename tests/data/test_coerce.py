"""Coercion of JSON rows to a dataset's column types: the fast path, every rejection, evolution."""

from __future__ import annotations

from datetime import UTC, date, datetime

import orjson
import pyarrow as pa
import pytest

from runyard.data.coerce import RowsRejected, TooManyColumns, coerce_rows
from runyard.data.types import MAX_COLUMNS, Column, arrow_schema

SIX = [
    Column("i", "int"),
    Column("f", "float"),
    Column("s", "string"),
    Column("b", "bool"),
    Column("t", "timestamp"),
    Column("d", "date"),
]


def good_rows(n: int = 50) -> list[dict]:
    return [
        {"i": k, "f": k / 2, "s": f"s{k}", "b": k % 2 == 0, "t": "2024-05-01T10:00:00Z", "d": "2024-05-01"}
        for k in range(n)
    ]


def test_clean_batch_keeps_column_order_and_arrow_types() -> None:
    rows = good_rows()
    rows[3] = {"d": "2024-01-02", "i": 7}  # key order and missing fields do not matter
    out = coerce_rows(rows, SIX)
    assert out.failed == [] and out.widened == []
    assert out.columns == SIX
    assert out.table.schema == arrow_schema(SIX)
    assert out.table.num_rows == 50
    assert out.table.slice(3, 1).to_pylist()[0] == {
        "i": 7,
        "f": None,
        "s": None,
        "b": None,
        "t": None,
        "d": date(2024, 1, 2),
    }
    assert out.table.column("t")[0].as_py() == datetime(2024, 5, 1, 10, tzinfo=UTC)


def test_new_fields_are_inferred_in_first_seen_order() -> None:
    rows = [
        {"n": 1, "x": 1.5, "ok": True, "name": "a"},
        {"n": 2, "x": 2, "when": "2024-01-01T00:00:00+02:00", "day": "2024-01-01", "meta": {"k": [1]}},
        {"nothing": None, "mixed": 1, "tags": ["a"]},
        {"mixed": "one", "when": "2024-01-02 03:04:05", "day": "2024-02-29"},
    ]
    out = coerce_rows(rows, [])
    assert [(c.name, c.type) for c in out.columns] == [
        ("n", "int"),
        ("x", "float"),
        ("ok", "bool"),
        ("name", "string"),
        ("when", "timestamp"),
        ("day", "date"),
        ("meta", "json"),
        ("mixed", "string"),
        ("tags", "json"),
    ]  # "nothing" (only nulls) waits for a batch that says what it holds
    assert all(c.nullable for c in out.columns)
    got = out.table.to_pylist()
    assert got[1]["when"] == datetime(2023, 12, 31, 22, tzinfo=UTC)  # normalised to UTC
    assert got[3]["when"] == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)  # naive means UTC
    assert got[1]["meta"] == '{"k":[1]}' and got[2]["tags"] == '["a"]'
    assert got[2]["mixed"] == "1" and got[3]["mixed"] == "one"


def test_strings_become_dates_or_timestamps_only_when_all_parse() -> None:
    out = coerce_rows(
        [{"d": "2024-01-01"}, {"d": "not a date"}, {"t": "2024-01-01T00:00:00Z"}, {"t": "soon"}], []
    )
    assert {c.name: c.type for c in out.columns} == {"d": "string", "t": "string"}
    out = coerce_rows(
        [{"t": "2024-01-01T00:00:00Z"}, {"t": "2024-01-01T05:00:00"}], []
    )  # zoned and naive mixed
    assert out.columns == [Column("t", "timestamp")]
    assert out.table.column("t").to_pylist()[1] == datetime(2024, 1, 1, 5, tzinfo=UTC)


def test_int_widens_to_float() -> None:
    cols = [Column("v", "int"), Column("w", "int", nullable=True)]
    out = coerce_rows([{"v": 1, "w": 1}, {"v": 2.5, "w": 2}], cols)
    assert out.widened == ["v"]
    assert out.columns == [Column("v", "float"), Column("w", "int")]
    assert out.table.schema.field("v").type == pa.float64()
    assert out.table.column("v").to_pylist() == [1.0, 2.5]
    # An int (even a huge one) is fine in a float column.
    out = coerce_rows([{"v": 3}, {"v": 2**70}], [Column("v", "float")])
    assert out.failed == [] and out.table.column("v").to_pylist() == [3.0, float(2**70)]


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (Column("v", "int"), "abc", "expected an integer, got the string 'abc'"),
        (Column("v", "int"), True, "expected an integer, got a boolean"),
        (Column("v", "int"), 2**63, "integer out of range"),
        (Column("v", "int"), {"a": 1}, "expected an integer, got an object"),
        (Column("v", "float"), "1.5", "expected a number"),
        (Column("v", "float"), False, "expected a number, got a boolean"),
        (Column("v", "bool"), 1, "expected a boolean, got an integer"),
        (Column("v", "bool"), "true", "expected a boolean"),
        (Column("v", "string"), [1], "expected a string, got an array"),
        (Column("v", "timestamp"), "yesterday", "expected an ISO-8601 timestamp"),
        (Column("v", "timestamp"), 1700000000, "expected an ISO-8601 timestamp string, got an integer"),
        (Column("v", "date"), "2024-02-30", "expected an ISO-8601 date"),
        (Column("v", "date"), "2024-01-01T10:00:00Z", "expected an ISO-8601 date"),
        (Column("v", "geo"), [1.0, 2.0], "expected a point"),
        (Column("v", "geo"), {"lat": 91, "lon": 0}, "latitude 91.0 is outside"),
        (Column("v", "geo"), "POINT(200 1)", "longitude 200.0 is outside"),
        (Column("v", "geo"), {"lat": "1", "lon": 2}, "expected a point"),
        (Column("v", "json"), 2**70, "not a JSON value"),
        (Column("v", "int", nullable=False), None, "a value is required"),
    ],
)
def test_a_value_that_does_not_fit_fails_only_its_row(column: Column, value: object, message: str) -> None:
    good = {
        "int": 5,
        "float": 1.5,
        "bool": True,
        "string": "x",
        "timestamp": "2024-01-01T00:00:00Z",
        "date": "2024-01-01",
        "geo": {"lat": 1, "lon": 2},
        "json": {"a": 1},
    }[column.type]
    rows = [{"v": good}, {"v": value}, {"v": good}]
    out = coerce_rows(rows, [column])
    assert out.table.num_rows == 2
    assert len(out.failed) == 1
    failure = out.failed[0]
    assert failure["index"] == 1 and failure["row"] == {"v": value}
    assert list(failure["errors"]) == ["v"] and message in failure["errors"]["v"], failure
    assert out.columns == [column]  # a failure never changes the schema


def test_accepted_conversions() -> None:
    cols = [
        Column("s", "string"),
        Column("j", "json"),
        Column("g", "geo"),
        Column("t", "timestamp"),
        Column("d", "date"),
    ]
    rows = [
        {
            "s": 12345,
            "j": "text",
            "g": {"lat": 52.5, "lon": 13.4},
            "t": "2024-01-01T12:00:00.123456789+01:00",
            "d": date(2024, 3, 1),
        },
        {
            "s": True,
            "j": [1, {"a": None}],
            "g": "POINT(13.4 52.5)",
            "t": datetime(2024, 1, 1, 12),
            "d": "2024-03-02",
        },
        {"s": 1.5, "j": None, "g": " point ( -1e2 -45 ) ", "t": "2024-01-01", "d": None},
    ]
    out = coerce_rows(rows, cols)
    assert out.failed == []
    got = out.table.to_pylist()
    assert [r["s"] for r in got] == ["12345", "true", "1.5"]
    assert [r["j"] for r in got] == ['"text"', '[1,{"a":null}]', None]
    assert [r["g"] for r in got] == [
        {"lat": 52.5, "lon": 13.4},
        {"lat": 52.5, "lon": 13.4},
        {"lat": -45.0, "lon": -100.0},
    ]
    assert [r["t"] for r in got] == [
        datetime(2024, 1, 1, 11, 0, 0, 123456, tzinfo=UTC),
        datetime(2024, 1, 1, 12, tzinfo=UTC),
        datetime(2024, 1, 1, tzinfo=UTC),
    ]
    assert [r["d"] for r in got] == [date(2024, 3, 1), date(2024, 3, 2), None]


def test_rows_that_are_not_objects_and_bad_names_fail() -> None:
    rows = [{"a": 1}, [1, 2], "x", None, {"a": 2, "_hidden": 1}, {"a": 3, "": 5}, {"a": 4, "b\n": 1}]
    out = coerce_rows(rows, [])
    assert out.columns == [Column("a", "int")]
    assert out.table.column("a").to_pylist() == [1]
    by_index = {f["index"]: f["errors"] for f in out.failed}
    assert by_index[1] == by_index[2] == by_index[3] == {"": "a row must be an object"}
    assert "reserved" in by_index[4]["_hidden"]
    assert "non-empty" in by_index[5][""]
    assert "control characters" in by_index[6]["b\n"]
    assert out.failed[0]["row"] == [1, 2]


def test_several_errors_in_one_row_are_all_reported() -> None:
    out = coerce_rows(
        [{"i": "x", "b": 3, "s": "fine"}], [Column("i", "int"), Column("b", "bool"), Column("s", "string")]
    )
    assert out.table.num_rows == 0
    assert set(out.failed[0]["errors"]) == {"i", "b"}


def test_fixed_schema_refuses_unknown_fields_and_widening() -> None:
    cols = [Column("a", "int")]
    out = coerce_rows([{"a": 1}, {"a": 2, "extra": 1}, {"a": 2.5}, {"a": 3.0}], cols, evolve=False)
    assert out.columns == cols and out.widened == []
    assert out.table.column("a").to_pylist() == [1, 3]
    assert [f["index"] for f in out.failed] == [1, 2]
    assert "unknown column" in out.failed[0]["errors"]["extra"]
    assert "expected an integer" in out.failed[1]["errors"]["a"]


def test_abort_raises_on_the_first_bad_row() -> None:
    rows = good_rows(10)
    rows[4]["i"] = "four"
    rows[7]["b"] = "yes"
    with pytest.raises(RowsRejected) as caught:
        coerce_rows(rows, SIX, on_error="abort")
    assert caught.value.failed == [
        {"index": 4, "row": rows[4], "errors": {"i": "expected an integer, got the string 'four'"}}
    ]
    assert "row 4" in str(caught.value)
    assert coerce_rows(good_rows(10), SIX, on_error="abort").table.num_rows == 10


def test_too_many_columns() -> None:
    cols = [Column(f"c{k}", "int") for k in range(MAX_COLUMNS - 1)]
    assert len(coerce_rows([{"new": 1}], cols).columns) == MAX_COLUMNS
    with pytest.raises(TooManyColumns, match=str(MAX_COLUMNS)):
        coerce_rows([{"new": 1, "other": 2}], cols)


def test_bad_rows_in_a_big_batch_are_pinpointed() -> None:
    rows = orjson.loads(orjson.dumps(good_rows(5000)))
    rows[10]["t"] = "2024-13-01T00:00:00Z"
    rows[4000]["i"] = 2**64
    rows[4999]["d"] = ""
    out = coerce_rows(rows, SIX)
    assert [f["index"] for f in out.failed] == [10, 4000, 4999]
    assert out.table.num_rows == 4997
    ids = out.table.column("i").to_pylist()
    assert 10 not in ids and 4000 not in ids and ids[:3] == [0, 1, 2]


def test_empty_batch() -> None:
    out = coerce_rows([], SIX)
    assert out.table.num_rows == 0 and out.table.schema == arrow_schema(SIX) and out.failed == []
