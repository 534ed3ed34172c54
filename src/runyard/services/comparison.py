"""Comparing a run's output with an expected one: pure functions, no database, no I/O.

JSON values are compared leaf by leaf. A leaf is a scalar, an empty list or an empty
object; its path is written ``$.a.b[0]``. A number matches another within
``numeric_tolerance`` (absolute; booleans are not numbers). A list whose path matches one
of ``unordered_paths`` (``[*]`` stands for any index) is compared as a multiset: each
expected item takes the first equal, unused actual item. Files are compared by the
caller (``services.expected``), which hands this module each file's score.

The score is the fraction of checks that passed: every expected leaf, every leaf only
the actual output has (an extra leaf is a failed check), and every expected file (a
file scores 1 when equal, a table the fraction of its rows that match, a text file the
similarity of its lines, anything else 0). No checks at all scores 1.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from typing import Any

#: Differences listed in one comparison (the counts stay exact past it).
MAX_FIELD_DIFFS = 1000
#: Lines of a text file's unified diff kept in the answer.
MAX_DIFF_LINES = 400
SCORE_RULE = ("fraction of passed checks: each expected JSON leaf (numbers within numeric_tolerance, "
              "unordered_paths as multisets), each unexpected leaf counted as a failure, and each expected "
              "file (1 when equal; tables: the fraction of rows matching by key; text: line similarity; "
              "other files: equal by SHA-256 or 0)")


@dataclass(frozen=True)
class Options:
    """What an expected record declares about how to compare it."""

    numeric_tolerance: float = 0.0
    unordered_paths: tuple[str, ...] = ()
    key_columns: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, raw: dict[str, Any] | None) -> Options:
        raw = raw or {}
        return cls(numeric_tolerance=float(raw.get("numeric_tolerance") or 0.0),
                   unordered_paths=tuple(raw.get("unordered_paths") or ()),
                   key_columns=dict(raw.get("key_columns") or {}))

    def unordered(self, path: str) -> bool:
        return any(_pattern(p).fullmatch(path) for p in self.unordered_paths)


def _pattern(declared: str) -> re.Pattern[str]:
    return re.compile(re.escape(declared).replace(re.escape("[*]"), r"\[\d+\]"))


@dataclass
class FieldTally:
    diffs: list[dict[str, Any]] = field(default_factory=list)
    checks: int = 0
    passed: int = 0
    dropped: int = 0

    def ok(self) -> None:
        self.checks += 1
        self.passed += 1

    def differ(self, path: str, expected: Any, actual: Any, kind: str, *, checks: int = 1) -> None:
        self.checks += checks
        if len(self.diffs) < MAX_FIELD_DIFFS:
            self.diffs.append({"path": path, "expected": expected, "actual": actual, "kind": kind})
        else:
            self.dropped += 1


def leaves(value: Any) -> int:
    """How many leaves ``value`` has (a scalar, an empty list or object count one)."""
    if isinstance(value, dict) and value:
        return sum(leaves(v) for v in value.values())
    if isinstance(value, list) and value:
        return sum(leaves(v) for v in value)
    return 1


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def scalars_match(expected: Any, actual: Any, tolerance: float) -> bool:
    if _is_number(expected) and _is_number(actual):
        if isinstance(expected, float) and isinstance(actual, float) and math.isnan(expected) and math.isnan(actual):
            return True
        return abs(expected - actual) <= tolerance
    return type(expected) is type(actual) and expected == actual


def equal(expected: Any, actual: Any, options: Options, path: str = "$") -> bool:
    """Whether the two values match entirely under ``options``."""
    tally = FieldTally()
    compare_values(expected, actual, options, tally, path)
    return tally.passed == tally.checks


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "scalar"


def compare_values(expected: Any, actual: Any, options: Options, tally: FieldTally, path: str = "$") -> None:
    """Walk both values, recording each check in ``tally``."""
    if isinstance(expected, dict) and isinstance(actual, dict) and (expected or actual):
        for key in expected:
            child = f"{path}.{key}"
            if key in actual:
                compare_values(expected[key], actual[key], options, tally, child)
            else:
                tally.differ(child, expected[key], None, "missing", checks=leaves(expected[key]))
        for key in actual:
            if key not in expected:
                tally.differ(f"{path}.{key}", None, actual[key], "unexpected", checks=leaves(actual[key]))
        return
    if isinstance(expected, list) and isinstance(actual, list) and (expected or actual):
        if options.unordered(path):
            _compare_unordered(expected, actual, options, tally, path)
            return
        for i, item in enumerate(expected):
            if i < len(actual):
                compare_values(item, actual[i], options, tally, f"{path}[{i}]")
            else:
                tally.differ(f"{path}[{i}]", item, None, "missing", checks=leaves(item))
        for i in range(len(expected), len(actual)):
            tally.differ(f"{path}[{i}]", None, actual[i], "unexpected", checks=leaves(actual[i]))
        return
    if _kind(expected) != _kind(actual) or (_kind(expected) == "scalar" and not _same_scalar_type(expected, actual)):
        tally.differ(path, expected, actual, "type_changed", checks=leaves(expected))
    elif scalars_match(expected, actual, options.numeric_tolerance):
        tally.ok()
    else:
        tally.differ(path, expected, actual, "changed")


def _same_scalar_type(expected: Any, actual: Any) -> bool:
    if expected is None or actual is None:
        return expected is actual
    if _is_number(expected) and _is_number(actual):
        return True
    return type(expected) is type(actual)


def _compare_unordered(expected: list[Any], actual: list[Any], options: Options, tally: FieldTally,
                       path: str) -> None:
    unused = list(range(len(actual)))
    for i, item in enumerate(expected):
        match = next((j for j in unused if equal(item, actual[j], options, f"{path}[{j}]")), None)
        if match is None:
            tally.differ(f"{path}[{i}]", item, None, "missing", checks=leaves(item))
        else:
            unused.remove(match)
            for _ in range(leaves(item)):
                tally.ok()
    for j in unused:
        tally.differ(f"{path}[{j}]", None, actual[j], "unexpected", checks=leaves(actual[j]))


def compare_outputs(expected: Any, actual: Any, options: Options, *, has_expected: bool = True) -> FieldTally:
    """The field differences of ``actual`` against ``expected`` (no checks when the expected
    record holds no output: only its files are compared)."""
    tally = FieldTally()
    if has_expected:
        compare_values(expected, actual, options, tally)
    return tally


def text_diff(expected: str, actual: str, filename: str) -> tuple[float, str, bool]:
    """(line similarity in [0, 1], a unified diff, whether the diff was cut)."""
    old, new = expected.splitlines(keepends=True), actual.splitlines(keepends=True)
    ratio = difflib.SequenceMatcher(a=old, b=new, autojunk=False).ratio() if (old or new) else 1.0
    lines = list(difflib.unified_diff(old, new, fromfile=f"expected/{filename}", tofile=f"actual/{filename}"))
    cut = len(lines) > MAX_DIFF_LINES
    return ratio, "".join(lines[:MAX_DIFF_LINES]), cut


def score(tally: FieldTally, file_scores: list[float]) -> float:
    checks = tally.checks + len(file_scores)
    if checks == 0:
        return 1.0
    return round((tally.passed + sum(file_scores)) / checks, 6)
