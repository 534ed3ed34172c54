"""The expression language: grammar, operators, functions, templates and abuse limits."""

from __future__ import annotations

from typing import Any

import pytest

from runyard.workflows.expressions import (
    EvaluationError,
    ExpressionError,
    Limits,
    UndefinedReferenceError,
    compile_value,
    evaluate,
    parse,
    parse_template,
    render,
)

CTX: dict[str, Any] = {
    "inputs": {"n": 3, "x": 2.5, "s": "ab", "flag": False, "none": None,
               "rows": [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}], "obj": {"k": "v", "a-b": 1}},
    "steps": {"fetch-data": {"output": {"items": [10, 20], "meta": {"n": 2}}, "status": "succeeded"},
              "b": {"output": 7, "status": "failed"}},
}


@pytest.mark.parametrize(("text", "expected"), [
    ("1", 1), ("1.5", 1.5), ("2e3", 2000.0), ("'s'", "s"), ('"d"', "d"), ("'it\\'s'", "it's"),
    ("true", True), ("false", False), ("null", None),
    ("1 + 2", 3), ("5 - 7", -2), ("3 * 4", 12), ("7 / 2", 3.5), ("6 / 3", 2), ("7 % 3", 1), ("-inputs.n", -3),
    ("'a' + 'b'", "ab"), ("inputs.s + '!'", "ab!"),
    ("1 == 1", True), ("1 == 1.0", True), ("1 != 2", True), ("'a' == 'a'", True), ("1 == true", False),
    ("null == null", True), ("inputs.rows[0] == inputs.rows[0]", True),
    ("1 < 2", True), ("2 <= 2", True), ("3 > 2", True), ("2 >= 3", False), ("'a' < 'b'", True),
    ("true && false", False), ("true || false", True), ("!true", False), ("!0", True), ("!''", True),
    ("null || 'fallback'", "fallback"), ("inputs.s && 'yes'", "yes"), ("inputs.flag && 1 / 0", False),
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("10 - 4 - 3", 3), ("2 * 3 % 4", 2), ("1 < 2 == true", True),
    ("!false && false", False), ("true || true && false", True), ("-2 * -3", 6),
    ("1 + 2 > 2 && 'a' != 'b'", True),
])
def test_operators_and_precedence(text: str, expected: Any) -> None:
    assert evaluate(text, CTX) == expected
    assert type(evaluate(text, CTX)) is type(expected)


@pytest.mark.parametrize(("text", "expected"), [
    ("inputs.n", 3), ("inputs.rows[1].v", "b"), ("inputs.rows[-1]['id']", 2), ("inputs.obj['a-b']", 1),
    ("inputs.obj.a-b", 1),  # hyphens after a dot are part of the name, as in GitHub Actions
    ("inputs.n - 1", 2), ("inputs.n -1", 2),
    ("steps.fetch-data.output.items[0]", 10), ("steps.fetch-data.output.meta.n", 2),
    ("steps['fetch-data'].output.items[inputs.rows[0].id]", 20), ("steps.b.status", "failed"),
    ("steps.b.output", 7), ("inputs.none", None),
])
def test_references_and_index_access(text: str, expected: Any) -> None:
    assert evaluate(text, CTX) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("len('abc')", 3), ("len(inputs.rows)", 2), ("len(inputs.obj)", 2),
    ("join(steps.fetch-data.output.items, ', ')", "10, 20"), ("join(steps.fetch-data.output.items)", "10,20"), ("join(fromJSON('[true, null, \"x\"]'), '|')", "true||x"),
    ("contains('hello', 'ell')", True), ("contains(steps.fetch-data.output.items, 20)", True),
    ("contains(inputs.obj, 'k')", True), ("contains(steps.fetch-data.output.items, '20')", False),
    ("startsWith('report.pdf', 'rep')", True), ("endsWith('report.pdf', '.pdf')", True),
    ("format('{0}-{1}-{0}', inputs.s, inputs.n)", "ab-3-ab"), ("format('{{literal}} {0}', 1)", "{literal} 1"),
    ("toJSON(inputs.rows[0])", '{"id":1,"v":"a"}'), ("fromJSON('{\"a\": [1, 2]}').a[1]", 2),
    ("default(inputs.missing, 5)", 5), ("default(inputs.none, 'd')", "d"), ("default(inputs.n, 5)", 3),
    ("default(steps.fetch-data.output.nope.deeper, 0)", 0),
])
def test_functions(text: str, expected: Any) -> None:
    assert evaluate(text, CTX) == expected


def test_item_inside_for_each() -> None:
    ctx = {**CTX, "item": {"id": 9, "tags": ["x", "y"]}}
    assert evaluate("item.id", ctx) == 9
    assert evaluate("item.tags[1]", ctx) == "y"
    assert render({"row": "${{ item }}", "label": "n${{ item.id }}"}, ctx) == {"row": ctx["item"], "label": "n9"}
    with pytest.raises(UndefinedReferenceError, match="item is not defined"):
        evaluate("item.id", CTX)


def test_raw_value_versus_interpolation() -> None:
    assert parse_template("${{ inputs.n }}").render(CTX) == 3
    assert parse_template("  ${{ inputs.rows }}\n").render(CTX) == CTX["inputs"]["rows"]  # whitespace ignored
    assert parse_template("n=${{ inputs.n }}").render(CTX) == "n=3"
    assert parse_template("${{ inputs.n }}${{ inputs.s }}").render(CTX) == "3ab"
    assert parse_template("${{ inputs.flag }}/${{ inputs.none }}/${{ inputs.obj }}").render(CTX) == \
        'false//{"k":"v","a-b":1}'
    assert parse_template("no expressions").render(CTX) == "no expressions"
    # "}}" inside a quoted string does not close the expression.
    assert parse_template("${{ format('{{x}}{0}', 1) }}").render(CTX) == "{x}1"


def test_render_walks_nested_values() -> None:
    value = {"a": ["${{ inputs.n }}", {"b": "x${{ inputs.s }}"}], "c": 1, "d": None, "e": "plain"}
    assert render(value, CTX) == {"a": [3, {"b": "xab"}], "c": 1, "d": None, "e": "plain"}
    assert render(compile_value(value), CTX) == render(value, CTX)


def test_references() -> None:
    refs = parse("steps.a.output[inputs.i].x + item.y + len(steps['b-c'].status) + default(inputs.z, 1)").references()
    assert refs == {("steps", ("a", "output")), ("inputs", ("i",)), ("item", ("y",)), ("steps", ("b-c", "status")),
                    ("inputs", ("z",))}
    assert parse("1 + 2").references() == set()
    assert parse("fromJSON(inputs.j).a").references() == {("inputs", ("j",))}
    assert parse_template("a ${{ inputs.p }} b ${{ steps.s.output }}").references() == {
        ("inputs", ("p",)), ("steps", ("s", "output"))}


@pytest.mark.parametrize(("text", "column", "message"), [
    ("1 +", 4, "unexpected end"),
    ("(1 + 2", 7, "expected ')'"),
    ("inputs.", 8, "expected a name"),
    ("'open", 1, "unterminated string"),
    ("1 $ 2", 3, "unexpected character"),
    ("nope(1)", 1, "unknown function"),
    ("len()", 1, "takes 1 arguments"),
    ("format()", 1, "takes 1+ arguments"),
    ("1 2", 3, "unexpected '2'"),
    ("", 1, "empty expression"),
    ("12abc", 1, "malformed number"),
    ("'\\q'", 2, "unknown escape"),
    ("a = 1", 3, "unexpected character"),
])
def test_parse_errors_carry_the_column(text: str, column: int, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse(text)
    assert info.value.column == column
    assert message in str(info.value)


def test_template_errors_are_columns_in_the_string() -> None:
    with pytest.raises(ExpressionError) as info:
        parse_template("abc ${{ 1 + }}")
    assert info.value.column == 13  # the "}}" where the operand was expected
    with pytest.raises(ExpressionError, match="without a closing"):
        parse_template("x ${{ inputs.n ")


@pytest.mark.parametrize(("text", "error", "message"), [
    ("inputs.missing", UndefinedReferenceError, "inputs.missing is not defined"),
    ("steps.nope.output", UndefinedReferenceError, "steps.nope is not defined"),
    ("inputs.n-1", UndefinedReferenceError, "write a - b with spaces"),
    ("inputs.rows[5]", UndefinedReferenceError, "out of range"),
    ("other.x", UndefinedReferenceError, "unknown name 'other'"),
    ("inputs.n.x", EvaluationError, "a number has no fields"),
    ("inputs.rows['a']", EvaluationError, "list indexes are integers"),
    ("inputs.obj[0]", EvaluationError, "object keys are strings"),
    ("1 / 0", EvaluationError, "division by zero"),
    ("5 % 0", EvaluationError, "division by zero"),
    ("1 + 'a'", EvaluationError, "cannot apply +"),
    ("'a' * 3", EvaluationError, "cannot apply *"),
    ("1 < 'a'", EvaluationError, "cannot compare"),
    ("-'a'", EvaluationError, "cannot negate"),
    ("len(1)", EvaluationError, "len() of a number"),
    ("fromJSON('{bad')", EvaluationError, "invalid JSON"),
    ("fromJSON('NaN')", EvaluationError, "invalid JSON"),
    ("format('{0}')", EvaluationError, "no argument {0}"),
    ("startsWith(1, 'a')", EvaluationError, "two strings"),
])
def test_runtime_errors_are_clear(text: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        evaluate(text, CTX)
    assert message in str(info.value)


def test_no_python_attribute_access() -> None:
    # Member access is a dict-key lookup on JSON values: Python attributes are unreachable.
    for text in ("inputs.__class__", "inputs.s.__class__", "inputs.__dict__", "steps.__class__.__mro__",
                 "inputs['__class__']", "len.__globals__"):
        with pytest.raises(ExpressionError):
            evaluate(text, CTX)
    # str.format attribute syntax is not ours: {0.__class__} is a bad placeholder.
    with pytest.raises(EvaluationError, match="bad placeholder"):
        evaluate("format('{0.__class__}', 1)", CTX)
    with pytest.raises(EvaluationError, match="bad placeholder"):
        evaluate("format('{0[0]}', inputs.rows)", CTX)
    # A context holding a Python object still exposes no attributes.
    with pytest.raises(EvaluationError, match="has no fields"):
        evaluate("inputs.obj.real", {"inputs": {"obj": 1}})


def test_deep_nesting_is_a_clean_error() -> None:
    for text in ("(" * 10_000 + "1" + ")" * 10_000, "!" * 10_000 + "true", "-" * 10_000 + "1",
                 "len(" * 5_000 + "'a'" + ")" * 5_000, "inputs" + ".a" * 10_000, "inputs" + "[0]" * 10_000,
                 " + ".join(["1"] * 5_000), "1" + " || 1" * 5_000):
        with pytest.raises(ExpressionError) as info:
            parse(text)
        assert not isinstance(info.value, RecursionError)
        assert "nested" in str(info.value) or "longer than" in str(info.value)
    with pytest.raises(ExpressionError, match="longer than"):
        parse("1" + " " * 100_000)
    # Deep JSON from fromJSON does not blow the stack either.
    with pytest.raises(EvaluationError):
        evaluate("fromJSON(inputs.j)", {"inputs": {"j": "[" * 100_000 + "]" * 100_000}})


def test_moderate_nesting_is_fine() -> None:
    assert evaluate("(" * 50 + "1" + ")" * 50, {}) == 1
    assert evaluate(" + ".join(["1"] * 100), {}) == 100


def test_huge_strings_are_capped() -> None:
    limits = Limits(max_string=1_000)
    ctx = {"inputs": {"s": "x" * 600, "l": ["y" * 100] * 20}}
    with pytest.raises(EvaluationError, match="longer than 1000"):
        evaluate("inputs.s + inputs.s", ctx, limits)
    with pytest.raises(EvaluationError, match="longer than 1000"):
        evaluate("join(inputs.l, '')", ctx, limits)
    with pytest.raises(EvaluationError, match="longer than 1000"):
        evaluate("format('{0}{0}', inputs.s)", ctx, limits)
    with pytest.raises(EvaluationError, match="longer than 1000"):
        evaluate("toJSON(inputs.l)", ctx, limits)
    with pytest.raises(EvaluationError, match="longer than 1000"):
        parse_template("${{ inputs.s }}${{ inputs.s }}").render(ctx, limits)
    # Doubling a string repeatedly hits the default 1 MB cap long before memory trouble.
    text = "inputs.s"
    for _ in range(12):
        text = f"({text} + {text})"
    with pytest.raises(EvaluationError, match="longer than 1000000"):
        evaluate(text, ctx)


def test_numbers_and_lists_are_bounded() -> None:
    with pytest.raises(EvaluationError, match="out of range"):
        evaluate(" * ".join(["9999999999"] * 10), {})
    with pytest.raises(EvaluationError, match="out of range"):
        evaluate("1e308 * 10", {})
    limits = Limits(max_items=10)
    with pytest.raises(EvaluationError, match="list result longer than 10"):
        evaluate("fromJSON(inputs.j)", {"inputs": {"j": "[" + ",".join(["1"] * 11) + "]"}}, limits)
    with pytest.raises(EvaluationError, match="too much work"):
        evaluate(" + ".join(["1"] * 100), {}, Limits(max_nodes=50))


def test_strict_json_equality_and_truthiness() -> None:
    assert evaluate("fromJSON('[1, true]') == fromJSON('[1, true]')", {}) is True
    assert evaluate("fromJSON('[1]') == fromJSON('[true]')", {}) is False
    assert evaluate("fromJSON('{\"a\": 1}') != fromJSON('{\"a\": 2}')", {}) is True
    assert evaluate("!fromJSON('[]')", {}) is False  # empty list is truthy (as in GitHub Actions)
