"""The comparison rules on their own: JSON leaves, tolerance, unordered lists, text and
table diffs, the score."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runyard.data.table_diff import TableDiffError, diff_tables
from runyard.services import comparison
from runyard.services.comparison import Options, compare_outputs, score
from runyard.services.errors import ValidationFailed
from runyard.services.expected import check_filename


def test_equal_outputs_score_one() -> None:
    value = {"a": 1, "b": [1, 2, {"c": "x"}], "d": None, "e": {}}
    tally = compare_outputs(value, value, Options())
    assert tally.diffs == [] and tally.checks == tally.passed == 6
    assert score(tally, []) == 1.0


def test_differences_have_paths_and_kinds() -> None:
    expected = {"a": 1, "b": {"c": [1, 2, 3]}, "gone": "x", "t": "1"}
    actual = {"a": 2, "b": {"c": [1, 2]}, "extra": True, "t": 1}
    tally = compare_outputs(expected, actual, Options())
    assert {(d["path"], d["kind"]) for d in tally.diffs} == {
        ("$.a", "changed"), ("$.b.c[2]", "missing"), ("$.gone", "missing"), ("$.extra", "unexpected"),
        ("$.t", "type_changed")}
    changed = next(d for d in tally.diffs if d["path"] == "$.a")
    assert changed["expected"] == 1 and changed["actual"] == 2
    # 6 expected leaves (2 pass) + 1 unexpected leaf
    assert (tally.checks, tally.passed) == (7, 2)
    assert score(tally, []) == round(2 / 7, 6)


def test_numeric_tolerance_is_absolute_and_booleans_are_not_numbers() -> None:
    assert compare_outputs({"x": 1.0}, {"x": 1.05}, Options(numeric_tolerance=0.1)).diffs == []
    assert compare_outputs({"x": 1.0}, {"x": 1.5}, Options(numeric_tolerance=0.1)).diffs[0]["kind"] == "changed"
    assert compare_outputs({"x": 1}, {"x": True}, Options(numeric_tolerance=1)).diffs[0]["kind"] == "type_changed"
    assert compare_outputs(3, 3.0, Options()).diffs == []


def test_unordered_paths_compare_lists_as_multisets() -> None:
    expected = {"tags": ["a", "b", "b"], "rows": [{"id": 1, "v": [3, 4]}, {"id": 2, "v": [5]}]}
    actual = {"tags": ["b", "a", "b"], "rows": [{"id": 2, "v": [5]}, {"id": 1, "v": [4, 3]}]}
    ordered = compare_outputs(expected, actual, Options())
    assert ordered.diffs
    opts = Options(unordered_paths=("$.tags", "$.rows", "$.rows[*].v"))
    assert compare_outputs(expected, actual, opts).diffs == []
    missing = compare_outputs({"tags": ["a", "c"]}, {"tags": ["a", "d", "e"]}, Options(unordered_paths=("$.tags",)))
    assert {(d["path"], d["kind"]) for d in missing.diffs} == {
        ("$.tags[1]", "missing"), ("$.tags[1]", "unexpected"), ("$.tags[2]", "unexpected")}


def test_file_scores_count_in_the_score() -> None:
    tally = compare_outputs({"a": 1}, {"a": 1}, Options())
    assert score(tally, [0.0]) == 0.5
    assert score(compare_outputs(None, None, Options(), has_expected=False), []) == 1.0


def test_text_diff() -> None:
    ratio, diff, cut = comparison.text_diff("a\nb\nc\n", "a\nB\nc\n", "f.txt")
    assert 0 < ratio < 1 and "-b" in diff and "+B" in diff and not cut


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../x", "a\\b", "x\x00y", "x\ny", " x", "x" * 256])
def test_bad_filenames_are_refused(name: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        check_filename(name)
    assert err.value.code == "invalid_filename"


def test_table_diff_by_key_and_whole_rows(tmp_path: Path) -> None:
    expected = tmp_path / "e.csv"
    expected.write_text("id,name,score\n1,ann,10\n2,bob,20\n3,cy,30\n")
    actual = tmp_path / "a.parquet"
    pq.write_table(pa.table({"id": [1, 2, 4], "name": ["ann", "bob", "dee"], "score": [10, 21, 40]}), actual)
    keyed = diff_tables(expected=str(expected), actual=str(actual), expected_format="csv",
                        actual_format="parquet", key_columns=["id"])
    assert (keyed["matched"], keyed["changed"], keyed["missing"], keyed["unexpected"]) == (1, 1, 1, 1)
    assert keyed["examples"]["changed"] == [{"key": {"id": "2"}, "columns": {"score": {"expected": "20",
                                                                                       "actual": "21"}}}]
    assert keyed["score"] == 0.25  # 1 matched of 3 expected + 1 unexpected
    whole = diff_tables(expected=str(expected), actual=str(actual), expected_format="csv",
                        actual_format="parquet", key_columns=None)
    assert (whole["matched"], whole["missing"], whole["unexpected"]) == (1, 2, 2)
    with pytest.raises(TableDiffError):
        diff_tables(expected=str(expected), actual=str(actual), expected_format="csv", actual_format="parquet",
                    key_columns=["nope"])
