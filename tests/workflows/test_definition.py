"""Workflow definitions: parsing YAML/JSON/dicts, and every error code at its exact line."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest

from runyard.workflows import (
    ERROR_CODES,
    Definition,
    EvaluationError,
    Issue,
    Uses,
    WorkflowError,
    parse_definition,
    parse_uses,
    validate,
)

ETL = textwrap.dedent("""\
    name: etl
    kind: workflow
    description: Extract, enrich each row, wait for approval, load.
    inputs:
      type: object
      properties:
        files: {type: array, items: {type: string, format: file}}
        contract: {type: string, format: file}
        limit: {type: integer, default: 10}
      required: [files]
    steps:
      - id: extract
        uses: extract@3
        with:
          files: ${{ inputs.files }}
          limit: ${{ inputs.limit }}
      - id: enrich
        uses: block:enrich
        needs: [extract]
        for_each: ${{ steps.extract.output.rows }}
        max_parallel: 4
        retries: 2
        retry_backoff_s: 0.5
        timeout: 60
        with:
          row: ${{ item }}
          label: "row ${{ item.id }}"
      - id: audit
        uses: tool:audit@stable
        needs: extract
        continue_on_error: true
      - id: approve
        kind: wait_for_input
        needs: [enrich, audit]
        timeout: 86400
        with:
          prompt: Load ${{ len(steps.enrich.output) }} rows?
      - id: load
        uses: workflow:loader
        needs: [approve]
        if: steps.approve.output.ok == true
        with:
          rows: ${{ steps.enrich.output }}
    outputs:
      loaded: ${{ steps.load.output.count }}
      summary: "${{ len(steps.enrich.output) }} rows"
    """)


def issues_of(text: str, **kwargs: Any) -> list[Issue]:
    return validate(textwrap.dedent(text), **kwargs)


def only(text: str, **kwargs: Any) -> Issue:
    found = issues_of(text, **kwargs)
    assert len(found) == 1, found
    return found[0]


def test_parses_a_full_definition() -> None:
    d = parse_definition(ETL)
    assert (d.name, d.kind) == ("etl", "workflow")
    assert d.description.startswith("Extract")
    assert [s.id for s in d.steps] == ["extract", "enrich", "audit", "approve", "load"]
    assert d.input_names == ("files", "contract", "limit")
    assert d.file_inputs == ("files", "contract")
    extract, enrich, audit, approve, load = d.steps
    assert extract.uses == Uses("tool", "extract", version=3)
    assert enrich.uses == Uses("block", "enrich")
    assert (enrich.max_parallel, enrich.retries, enrich.retry_backoff_s, enrich.timeout) == (4, 2, 0.5, 60.0)
    assert audit.uses == Uses("tool", "audit", tag="stable") and audit.continue_on_error
    assert audit.needs == ("extract",)
    assert approve.kind == "wait_for_input" and approve.uses is None and approve.timeout == 86400
    assert load.uses == Uses("workflow", "loader")
    assert d.graph.layers == [["extract"], ["enrich", "audit"], ["approve"], ["load"]]


def test_steps_render_their_inputs() -> None:
    d = parse_definition(ETL)
    ctx = {"inputs": {"files": ["a.csv"], "limit": 5},
           "steps": {"extract": {"output": {"rows": [{"id": 1}, {"id": 2}]}, "status": "succeeded"}}}
    extract, enrich, _, approve, load = d.steps
    assert extract.render_with(ctx) == {"files": ["a.csv"], "limit": 5}
    items = enrich.items(ctx)
    assert items == [{"id": 1}, {"id": 2}]
    assert enrich.render_with(ctx, item=items[1]) == {"row": {"id": 2}, "label": "row 2"}
    ctx["steps"]["enrich"] = {"output": [{"x": 1}, {"x": 2}], "status": "succeeded"}
    assert approve.render_with(ctx) == {"prompt": "Load 2 rows?"}
    ctx["steps"]["approve"] = {"output": {"ok": True}, "status": "succeeded"}
    assert load.should_run(ctx) is True
    ctx["steps"]["approve"] = {"output": {"ok": False}, "status": "succeeded"}
    assert load.should_run(ctx) is False
    assert extract.should_run(ctx) is True  # no if
    ctx["steps"]["load"] = {"output": {"count": 2}, "status": "succeeded"}
    assert d.render_outputs(ctx) == {"loaded": 2, "summary": "2 rows"}
    assert [enrich.retry_delay(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]


def test_for_each_must_give_a_bounded_list() -> None:
    d = parse_definition({"name": "w", "inputs": {"type": "object", "properties": {"xs": {}}},
                          "steps": [{"id": "a", "uses": "t", "for_each": "inputs.xs", "with": {"x": "${{ item }}"}}]})
    step = d.steps[0]
    assert step.items({"inputs": {"xs": [1, 2]}}) == [1, 2]
    with pytest.raises(EvaluationError, match="must give a list"):
        step.items({"inputs": {"xs": "abc"}})
    from runyard.workflows import Limits
    with pytest.raises(EvaluationError, match="longer than 3|over the limit of 3"):
        step.items({"inputs": {"xs": [1, 2, 3, 4]}}, Limits(max_items=3))
    literal = parse_definition({"name": "w", "steps": [{"id": "a", "uses": "t", "for_each": [1, "${{ 1 + 1 }}"]}]})
    assert literal.steps[0].items({}) == [1, 2]


def test_dict_and_json_inputs_give_the_same_definition() -> None:
    from_yaml = parse_definition(ETL)
    as_dict = from_yaml.to_dict()
    from_dict = parse_definition(as_dict)
    from_json = parse_definition(json.dumps(as_dict))
    from_bytes = parse_definition(ETL.encode())
    assert from_dict.steps == from_yaml.steps == from_json.steps == from_bytes.steps
    assert from_dict.outputs == from_yaml.outputs
    assert isinstance(from_dict, Definition)


def test_minimal_definition_and_defaults() -> None:
    d = parse_definition("name: one\nsteps:\n  - id: a\n    uses: noop\n")
    assert d.kind == "workflow" and d.description == "" and d.outputs == {}
    step = d.steps[0]
    assert (step.kind, step.retries, step.timeout, step.max_parallel, step.continue_on_error, step.needs) == \
        ("run", 0, None, None, False, ())
    assert d.inputs == {"type": "object", "properties": {}}


def test_yaml_12_scalars() -> None:
    # Dates stay strings and yes/no/on/off are strings, not booleans (YAML 1.1 surprises).
    d = parse_definition("name: d\nsteps:\n  - id: a\n    uses: t\n    with: {day: 2024-01-02, answer: no, on: yes}\n")
    assert d.steps[0].with_ == {"day": "2024-01-02", "answer": "no", "on": "yes"}


def test_input_helpers() -> None:
    d = parse_definition(ETL)
    assert d.input_errors({"files": ["a"]}) == []
    assert any("files" in e for e in d.input_errors({}))
    assert any("limit" in e for e in d.input_errors({"files": [], "limit": "x"}))
    assert d.with_defaults({"files": []}) == {"files": [], "limit": 10}


@pytest.mark.parametrize(("text", "expected"), [
    ("extract", Uses("tool", "extract")),
    ("extract@3", Uses("tool", "extract", version=3)),
    ("extract@v2-beta", Uses("tool", "extract", tag="v2-beta")),
    ("tool:extract@stable", Uses("tool", "extract", tag="stable")),
    ("block:enrich", Uses("block", "enrich")),
    ("block:enrich@4", Uses("block", "enrich", version=4)),
    ("workflow:nightly@prod", Uses("workflow", "nightly", tag="prod")),
])
def test_uses_syntax(text: str, expected: Uses) -> None:
    assert parse_uses(text) == expected
    assert str(parse_uses(text)) == text.removeprefix("tool:")


@pytest.mark.parametrize("text", ["", "Extract", "a b", "x@", "x@0", "job:x", "block:", "@3", "x@@1", "x@-a"])
def test_bad_uses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_uses(text)


# --- every error code, at its line ---------------------------------------------------------------

def test_invalid_yaml_points_at_the_line() -> None:
    issue = only("""\
        name: w
        steps:
          - id: a
            uses: [unclosed
        """)
    assert issue.code == "invalid_yaml"
    assert issue.line == 5


def test_empty_and_non_mapping_documents() -> None:
    assert only("").code == "invalid_workflow"
    issue = only("- just\n- a list\n")
    assert (issue.code, issue.line) == ("invalid_workflow", 1)


def test_unknown_keys_at_their_line() -> None:
    found = issues_of("""\
        name: w
        author: me
        steps:
          - id: a
            uses: t
            retry: 3
          - id: b
            kind: wait_for_input
            uses: t
        """)
    assert [(i.code, i.path, i.line, i.column) for i in found] == [
        ("unknown_key", "author", 2, 1),
        ("unknown_key", "steps[0].retry", 6, 5),
        ("unknown_key", "steps[1].uses", 9, 5),  # a wait_for_input step calls nothing
    ]


def test_duplicate_key() -> None:
    issue = only("""\
        name: w
        steps:
          - id: a
            uses: t
            with:
              n: 1
              n: 2
        """)
    assert (issue.code, issue.path, issue.line) == ("duplicate_key", "steps[0].with.n", 7)


def test_duplicate_step() -> None:
    issue = only("""\
        name: w
        steps:
          - id: a
            uses: t
          - id: a
            uses: u
        """)
    assert (issue.code, issue.path, issue.line, issue.column) == ("duplicate_step", "steps[1].id", 5, 9)
    assert "steps[0]" in issue.message


def test_unknown_step_in_needs() -> None:
    issue = only("""\
        name: w
        steps:
          - id: a
            uses: t
          - id: b
            uses: t
            needs:
              - a
              - ghost
        """)
    assert (issue.code, issue.path, issue.line) == ("unknown_step", "steps[1].needs[1]", 9)


def test_cycle_names_its_steps() -> None:
    issue = only("""\
        name: w
        steps:
          - id: a
            uses: t
            needs: [c]
          - id: b
            uses: t
            needs: [a]
          - id: c
            uses: t
            needs: [b]
          - id: d
            uses: t
        """)
    assert (issue.code, issue.path, issue.line) == ("cycle", "steps[0].needs", 5)
    assert "a -> c -> b -> a" in issue.message


def test_self_need_is_a_cycle() -> None:
    issue = only("name: w\nsteps:\n  - id: a\n    uses: t\n    needs: [a]\n")
    assert (issue.code, issue.line) == ("cycle", 5)


def test_invalid_expression_points_at_line_and_column() -> None:
    issue = only("""\
        name: w
        steps:
          - id: a
            uses: t
            with:
              n: ${{ 1 + }}
        """)
    assert (issue.code, issue.path, issue.line) == ("invalid_expression", "steps[0].with.n", 6)
    assert issue.column == 18  # the "}}" where an operand was expected
    quoted = only("name: w\nsteps:\n  - id: a\n    uses: t\n    if: \"inputs.x ==\"\n")
    assert (quoted.code, quoted.line, quoted.column) == ("invalid_expression", 5, 21)  # just after "=="


def test_bad_expressions_everywhere_they_may_appear() -> None:
    found = issues_of("""\
        name: w
        steps:
          - id: a
            uses: t
            if: "${{ nope( }}"
            for_each: "((("
            with:
              deep:
                list: ["ok", "${{ 'unterminated }}"]
        outputs:
          out: ${{ steps.a.output[ }}
          plain: steps.a.output
        """)
    assert [(i.code, i.line) for i in found] == [("invalid_expression", n) for n in (5, 6, 9, 11, 12)]
    assert "write ${{ steps.a.output }}" in found[-1].message


def test_if_with_text_around_the_expression_is_refused() -> None:
    issue = only("name: w\nsteps:\n  - id: a\n    uses: t\n    if: 'x ${{ true }}'\n")
    assert (issue.code, issue.line) == ("invalid_expression", 5)


def test_undefined_references() -> None:
    found = issues_of("""\
        name: w
        inputs:
          type: object
          properties:
            n: {type: integer}
        steps:
          - id: a
            uses: t
            with:
              ok: ${{ inputs.n }}
              bad_input: ${{ inputs.m }}
              no_step: ${{ steps.ghost.output }}
              later: ${{ steps.b.output }}
              own: ${{ steps.a.output }}
              root: ${{ env.HOME }}
              item: ${{ item }}
          - id: b
            uses: t
            needs: [a]
            if: steps.a.outputs.x
            with:
              bad_field: ${{ steps.a.status.x }}
              whole: ${{ steps.a }}
        outputs:
          r: ${{ steps.b.output }}
          i: ${{ item }}
        """)
    assert [(i.path, i.line) for i in found] == [
        ("steps[0].with.bad_input", 11), ("steps[0].with.no_step", 12), ("steps[0].with.later", 13),
        ("steps[0].with.own", 14), ("steps[0].with.root", 15), ("steps[0].with.item", 16),
        ("steps[1].if", 20), ("steps[1].with.bad_field", 22), ("outputs.i", 26),
    ]
    assert {i.code for i in found} == {"undefined_reference"}
    messages = " | ".join(i.message for i in found)
    assert "not upstream of 'a' (add it to needs)" in messages
    assert "input 'm' is not declared" in messages
    assert "there is no step 'ghost'" in messages


def test_transitive_needs_are_upstream() -> None:
    assert validate("""
name: w
steps:
  - {id: a, uses: t}
  - {id: b, uses: t, needs: a}
  - {id: c, uses: t, needs: b, with: {x: "${{ steps.a.output }}"}}
  - {id: d, uses: t, with: {x: "${{ steps.c.output }}"}}
""")[0].message == "steps.c.output: step 'c' is not upstream of 'd' (add it to needs)"


def test_invalid_workflow_shapes() -> None:
    found = issues_of("""\
        name: Bad Name
        kind: flow
        description: 3
        inputs:
          type: array
        steps:
          - id: 1st
            uses: t
          - id: ok
            kind: sleep
            uses: t
            needs: {a: 1}
            with: [1]
            max_parallel: 0
            retries: -1
            retry_backoff_s: fast
            timeout: 0
            continue_on_error: "yes"
          - "not a mapping"
          - id: nouses
          - id: mp
            uses: t
            max_parallel: 2
        """)
    assert [(i.path, i.line) for i in found] == [
        ("name", 1), ("kind", 2), ("description", 3), ("inputs.type", 5), ("steps[0].id", 7),
        ("steps[1].kind", 10), ("steps[1].needs", 12), ("steps[1].with", 13), ("steps[1].max_parallel", 14),
        ("steps[1].retries", 15), ("steps[1].retry_backoff_s", 16), ("steps[1].timeout", 17),
        ("steps[1].continue_on_error", 18), ("steps[2]", 19), ("steps[3]", 20), ("steps[4].max_parallel", 23),
    ]
    assert {i.code for i in found} == {"invalid_workflow"}


def test_missing_name_and_steps() -> None:
    found = issues_of("description: nothing\n")
    assert [(i.code, i.message, i.line) for i in found] == [
        ("invalid_workflow", "name is required", 1), ("invalid_workflow", "steps is required (a list of steps)", 1)]


def test_invalid_inputs_schema() -> None:
    issue = only("""\
        name: w
        inputs:
          type: object
          properties:
            n: {type: integr}
        steps:
          - {id: a, uses: t}
        """)
    assert (issue.code, issue.path, issue.line) == ("invalid_workflow", "inputs.properties.n.type", 5)
    file_issue = only("name: w\ninputs:\n  properties:\n    f: {type: integer, format: file}\nsteps: [{id: a, uses: t}]\n")
    assert (file_issue.path, file_issue.line) == ("inputs.properties.f.type", 4)


def test_yaml_tricks_are_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8))
    assert "expands to more than" in only(bomb).message
    assert "unsupported YAML tag" in issues_of("name: w\nsteps: !!python/object:os.system {}\n")[0].message
    assert "recursive" in issues_of("name: w\nsteps: &s [*s]\n")[0].message
    assert "merge keys" in issues_of("name: w\nbase: &b {uses: t}\nsteps:\n  - <<: *b\n    id: a\n")[1].message
    assert only("name: w\nsteps: [{id: a, uses: t, with: {1: x}}]\n").message == "mapping keys must be strings"
    assert only("[" * 5000 + "]" * 5000).code in ("invalid_yaml", "invalid_workflow")


def test_dict_input_errors_have_paths_but_no_lines() -> None:
    found = validate({"name": "w", "steps": [{"id": "a", "uses": "t", "with": {"n": "${{ inputs.n }}"}}]})
    assert [(i.code, i.path, i.line) for i in found] == [("undefined_reference", "steps[0].with.n", None)]
    assert validate({"name": "w", "steps": [{"id": "a", "uses": "t", "with": {"x": object()}}]})[0].code == \
        "invalid_workflow"


def test_parse_definition_raises_with_every_issue() -> None:
    with pytest.raises(WorkflowError) as info:
        parse_definition("name: w\nsteps:\n  - {id: a, uses: t, needs: [x]}\n  - {id: a, uses: t}\n")
    assert [i.code for i in info.value.issues] == ["unknown_step", "duplicate_step"]
    assert "and 1 more" in str(info.value)
    assert info.value.issues[0].to_dict() == {"code": "unknown_step", "message": "needs 'x', which is not a step",
                                              "path": "steps[0].needs[0]", "line": 3, "column": 30}


# --- checks against called tools and workflows -------------------------------------------------

TOOLS = {
    "resize": {"type": "object", "properties": {"width": {"type": "integer"}, "image": {"type": "string"}},
               "required": ["image"], "additionalProperties": False},
    "free": {},
}


def tool_schema(uses: Uses) -> dict[str, Any] | None:
    return TOOLS.get(uses.name)


def test_unknown_tool_and_schema_mismatch() -> None:
    found = issues_of("""\
        name: w
        inputs: {properties: {img: {type: string}}}
        steps:
          - id: a
            uses: resize@2
            with:
              image: ${{ inputs.img }}
              width: wide
              height: 3
          - id: b
            uses: ghost
          - id: c
            uses: resize
            with: {width: 3}
          - id: d
            uses: free
            with: {anything: 1}
        """, tool_schema=tool_schema)
    assert [(i.code, i.path, i.line) for i in found] == [
        ("schema_mismatch", "steps[0].with.width", 8), ("schema_mismatch", "steps[0].with.height", 9),
        ("unknown_tool", "steps[1].uses", 11), ("schema_mismatch", "steps[2].with", 14),
    ]
    assert "requires input 'image'" in found[-1].message


def test_sub_workflow_inputs_are_checked() -> None:
    block = parse_definition("name: enrich\nkind: block\ninputs: {properties: {row: {}}, required: [row], "
                             "additionalProperties: false}\nsteps: [{id: a, uses: t}]\n")

    def resolve(name: str, ref: int | str | None) -> Definition | None:
        return block if name == "enrich" else None

    found = issues_of("""\
        name: w
        steps:
          - {id: a, uses: "block:enrich", with: {row: 1}}
          - {id: b, uses: "block:enrich", with: {col: 1}}
          - {id: c, uses: "workflow:enrich"}
          - {id: d, uses: "block:missing"}
        """, resolve=resolve)
    assert [(i.code, i.line) for i in found] == [
        ("schema_mismatch", 4), ("schema_mismatch", 4), ("unknown_workflow", 5), ("unknown_workflow", 6)]


def test_error_codes_are_documented() -> None:
    assert set(ERROR_CODES) >= {"invalid_yaml", "invalid_workflow", "unknown_key", "duplicate_key", "duplicate_step",
                                "unknown_step", "cycle", "invalid_expression", "undefined_reference", "unknown_tool",
                                "unknown_workflow", "schema_mismatch", "nesting_too_deep"}


def test_the_documented_example_is_valid() -> None:
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "workflows.md").read_text()
    example = re.search(r"```yaml\n(name: invoices.*?)```", doc, re.S)
    assert example is not None
    d = parse_definition(example.group(1))
    assert d.graph.layers == [["extract"], ["enrich", "audit"], ["approve"], ["load"], ["alert"]]
    assert d.graph.decides_own_fate == {"alert"}
