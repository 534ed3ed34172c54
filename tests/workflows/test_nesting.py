"""Nested workflows: cycles across definitions and the depth limit."""

from __future__ import annotations

from runyard.workflows import Definition, check_nesting, parse_definition, validate


def flow(name: str, *calls: str, kind: str = "workflow") -> Definition:
    steps = "".join(f"  - {{id: s{i}, uses: '{call}'}}\n" for i, call in enumerate(calls)) or "  - {id: s, uses: t}\n"
    return parse_definition(f"name: {name}\nkind: {kind}\nsteps:\n{steps}")


def registry(*defs: Definition):  # noqa: ANN201 - a small test helper
    by_name = {d.name: d for d in defs}
    calls: list[tuple[str, int | str | None]] = []

    def resolve(name: str, ref: int | str | None) -> Definition | None:
        calls.append((name, ref))
        return by_name.get(name)

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def test_no_nesting_is_fine() -> None:
    assert check_nesting(flow("a", "tool-x"), registry()) == []


def test_direct_and_indirect_cycles() -> None:
    a = flow("a", "workflow:b")
    b = flow("b", "block:c", kind="workflow")
    c = flow("c", "workflow:a", kind="block")
    issues = check_nesting(a, registry(a, b, c))
    assert [(i.code, i.path) for i in issues] == [("cycle", "steps[0].uses")]
    assert "a -> b -> c -> a" in issues[0].message
    selfish = flow("me", "workflow:me@2")
    assert "me -> me" in check_nesting(selfish, registry(selfish))[0].message


def test_cycle_not_through_the_root() -> None:
    root = flow("root", "workflow:x")
    x = flow("x", "workflow:y")
    y = flow("y", "workflow:x")
    issues = check_nesting(root, registry(root, x, y))
    assert [i.code for i in issues] == ["cycle"] and "x -> y -> x" in issues[0].message


def test_depth_limit() -> None:
    chain = [flow(f"w{i}", f"workflow:w{i + 1}") for i in range(7)] + [flow("w7", "tool")]
    resolve = registry(*chain)
    # w0 -> w1 -> … -> w5: five levels of nesting is the limit.
    assert check_nesting(flow("top", "workflow:w3"), resolve) == []  # top -> w3 … w7: 5 levels
    issues = check_nesting(flow("top", "tool-a", "workflow:w2"), resolve)  # 6 levels
    assert [(i.code, i.path) for i in issues] == [("nesting_too_deep", "steps[1].uses")]
    assert "top -> w2 -> w3 -> w4 -> w5 -> w6" in issues[0].message
    assert check_nesting(flow("top", "workflow:w6"), resolve, max_depth=1) != []
    assert check_nesting(flow("top", "workflow:w6"), resolve, max_depth=2) == []


def test_missing_nested_workflow_and_versions_are_passed() -> None:
    a = flow("a", "block:b@3", "workflow:c@prod")
    b = flow("b", "workflow:gone", kind="block")
    resolve = registry(a, b)
    issues = check_nesting(a, resolve)
    assert [(i.code, i.path) for i in issues] == [("unknown_workflow", "steps[0].uses"), ("unknown_workflow", "steps[1].uses")]
    assert "via a -> b" in issues[0].message
    assert ("b", 3) in resolve.calls and ("c", "prod") in resolve.calls  # type: ignore[attr-defined]


def test_wide_fan_out_resolves_each_definition_once() -> None:
    leaves = [flow(f"leaf{i}", "tool") for i in range(20)]
    mid = [flow(f"mid{i}", *(f"workflow:leaf{j}" for j in range(20))) for i in range(20)]
    top = flow("top", *(f"workflow:mid{i}" for i in range(20)))
    resolve = registry(*leaves, *mid, top)
    assert check_nesting(top, resolve) == []
    assert len(resolve.calls) == 40  # type: ignore[attr-defined]


def test_validate_runs_the_nesting_check_with_lines() -> None:
    b = flow("b", "workflow:a")
    issues = validate("name: a\nsteps:\n  - id: first\n    uses: t\n  - id: call\n    uses: workflow:b\n",
                      resolve=registry(b))
    assert [(i.code, i.line) for i in issues] == [("cycle", 6)]
