"""runyard.data.pipeline: each step, validation at submit, a failing row rejected."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from runyard.data.jobs import run_pipeline
from runyard.data.pipeline import MAX_REGEX_INPUT, Pipeline, PipelineError, StepError, validate


def run(steps, table):
    pipeline = Pipeline(steps)
    try:
        return pipeline.run(table)
    finally:
        pipeline.close()


def test_rename_and_drop():
    out = run([{"rename": {"a": "x"}}, {"drop": ["b", "missing"]}], pa.table({"a": [1], "b": [2], "c": [3]}))
    assert out.table.column_names == ["x", "c"] and out.rows == [0] and not out.failed


def test_cast_rejects_rows_that_do_not_convert():
    table = pa.table({"n": ["1", " 2 ", "x", None], "d": ["2024-01-02", "2024-01-03", "2024-01-04", "nope"],
                      "b": ["true", "no", "1", "F"]})
    out = run([{"cast": {"n": "int", "d": "date", "b": "bool"}}], table)
    assert out.table.column("n").to_pylist() == [1, 2]
    assert out.table.column("d").to_pylist() == [dt.date(2024, 1, 2), dt.date(2024, 1, 3)]
    assert out.table.column("b").to_pylist() == [True, False]
    assert out.rows == [0, 1]
    assert set(out.failed) == {2, 3}
    assert out.failed[2]["pipeline"].startswith("step 0 (cast): column 'n'")
    assert "'x' is not an integer" in out.failed[2]["pipeline"]


def test_cast_numbers_to_string_and_float():
    out = run([{"cast": {"n": "string", "f": "float"}}], pa.table({"n": [1, 2], "f": [1, 2]}))
    assert out.table.column("n").to_pylist() == ["1", "2"]
    assert out.table.column("f").type == pa.float64()


def test_trim_and_normalize():
    table = pa.table({"s": ["  a  b ", "ｆｕｌｌ\u3000width", None], "n": [1, 2, 3]})
    out = run([{"trim": ["s", "n"]}], table)
    assert out.table.column("s").to_pylist() == ["a  b", "ｆｕｌｌ\u3000width", None]
    out = run([{"normalize": {"columns": ["s"], "case": "upper"}}], table)
    assert out.table.column("s").to_pylist() == ["A B", "FULL WIDTH", None]
    out = run([{"normalize": {"columns": ["s"], "nfkc": False, "collapse_spaces": False, "strip": False}}], table)
    assert out.table.column("s").to_pylist() == table.column("s").to_pylist()


def test_split():
    out = run([{"split": {"column": "s", "separator": "-", "into": ["a", "b"]}}],
              pa.table({"s": ["x-y-z", "x", None]}))
    assert out.table.column("a").to_pylist() == ["x", "x", None]
    assert out.table.column("b").to_pylist() == ["y-z", None, None]


def test_regex_extract_and_its_length_cap():
    table = pa.table({"e": ["ann@example.com", "nobody", "b@" + "x" * MAX_REGEX_INPUT]})
    out = run([{"regex_extract": {"column": "e", "pattern": r"^(\w+)@(.+)$", "into": ["user", "host"]}}], table)
    assert out.table.column("user").to_pylist() == ["ann", None]
    assert out.table.column("host").to_pylist() == ["example.com", None]
    assert list(out.failed) == [2] and "longer than" in out.failed[2]["pipeline"]
    whole = run([{"regex_extract": {"column": "e", "pattern": r"\d+|ann", "into": ["m"]}}], table.slice(0, 2))
    assert whole.table.column("m").to_pylist() == ["ann", None]


def test_derive_with_duckdb_and_a_row_that_fails():
    table = pa.table({"a": [1, 2, 3], "s": ["4", "x", "6"]})
    out = run([{"derive": {"name": "b", "expression": "a * 10 + 1"}}], table)
    assert out.table.column("b").to_pylist() == [11, 21, 31]
    out = run([{"derive": {"name": "n", "expression": "CAST(s AS INTEGER) + a"}}], table)
    assert out.table.column("n").to_pylist() == [5, 9]
    assert out.rows == [0, 2]
    assert list(out.failed) == [1] and out.failed[1]["pipeline"].startswith("step 0 (derive): ")
    with pytest.raises(StepError, match="one value per row"):
        run([{"derive": {"name": "n", "expression": "sum(a)"}}], table)


def test_dedupe_within_the_ingestion():
    pipeline = Pipeline([{"dedupe": {"columns": ["k"]}}])
    first = pipeline.run(pa.table({"k": [1, 1, 2], "v": ["a", "b", "c"]}))
    assert first.table.column("v").to_pylist() == ["a", "c"] and first.rows == [0, 2]
    second = pipeline.run(pa.table({"k": [2, 3], "v": ["d", "e"]}))  # the next batch of the same ingestion
    assert second.table.column("v").to_pylist() == ["e"] and not second.failed
    whole = run([{"dedupe": {}}], pa.table({"k": [1, 1, 1], "v": ["a", "a", "b"]}))
    assert whole.rows == [0, 2]


def test_missing_column_fails_the_step():
    with pytest.raises(StepError, match="no column 'zz'"):
        run([{"cast": {"zz": "int"}}], pa.table({"a": [1]}))


def test_json_rows_keep_their_indexes_through_coercion_and_steps():
    rows = [{"a": "1"}, "not an object", {"a": "x"}, {"a": "3"}]
    pipeline = Pipeline([{"cast": {"a": "int"}}])
    table, failed, origin = run_pipeline(pipeline, rows=rows)
    assert table.column("a").to_pylist() == [1, 3] and origin == [0, 3]
    assert [(i, row) for i, _, row in failed] == [(1, "not an object"), (2, {"a": "x"})]


@pytest.mark.parametrize(("steps", "step", "fragment"), [
    ("not a list", None, "list of steps"),
    ([{"rename": {"a": "b"}}] * 51, None, "at most 50"),
    ([{"drop": ["a"]}, {"explode": {}}], 1, "unknown step"),
    ([{"drop": ["a"], "trim": ["b"]}], 0, "one key"),
    ([{"cast": {"a": "number"}}], 0, "unknown type"),
    ([{"rename": {"a": "_id"}}], 0, "reserved"),
    ([{"rename": {"a": "c", "b": "c"}}], 0, "same name"),
    ([{"split": {"column": "a", "separator": "", "into": ["b"]}}], 0, "separator"),
    ([{"split": {"column": "a", "separator": ",", "into": ["b"], "limit": 2}}], 0, "no option 'limit'"),
    ([{"regex_extract": {"column": "a", "pattern": "([", "into": ["b"]}}], 0, "not a valid regular expression"),
    ([{"regex_extract": {"column": "a", "pattern": "(a)(b)", "into": ["b"]}}], 0, "2 group(s)"),
    ([{"regex_extract": {"column": "a", "pattern": "a" * 1001, "into": ["b"]}}], 0, "at most 1000"),
    ([{"normalize": {"columns": ["a"], "case": "camel"}}], 0, "case"),
    ([{"derive": {"name": "x", "expression": "1; DROP TABLE t"}}], 0, "statement"),
    ([{"derive": {"name": "x", "expression": "(SELECT count(*) FROM read_csv('/etc/passwd'))"}}], 0, "read_csv"),
    ([{"derive": {"name": "x", "expression": "1) AS v FROM \"ns\".\"ds\" UNION SELECT (1"}}], 0, "no tables"),
    ([{"derive": {"name": "x", "expression": "getenv('HOME')"}}], 0, "getenv"),
    ([{"derive": {"name": "x", "expression": "a +"}}], 0, "invalid_sql"),
    ([{"dedupe": {"columns": []}}], 0, "non-empty"),
])
def test_validation(steps, step, fragment):
    with pytest.raises(PipelineError) as caught:
        validate(steps)
    assert caught.value.step == step
    assert fragment in str(caught.value)
    assert caught.value.to_dict()["code"] == "invalid_pipeline"


def test_a_valid_pipeline():
    steps = validate([{"trim": {"columns": ["a"]}}, {"dedupe": None}, {"derive": {"name": "b",
                                                                                    "expression": "upper(a)"}}])
    assert [s.kind for s in steps] == ["trim", "dedupe", "derive"]
    assert validate(None) == []
