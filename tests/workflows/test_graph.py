"""The step graph: cycles, parallel layers and the scheduler's ready/skip rules."""

from __future__ import annotations

import pytest

from runyard.workflows import Graph, find_cycle, layers, parse_definition
from runyard.workflows.graph import upstream

DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": []}


def test_layers_group_independent_steps() -> None:
    assert layers(DIAMOND) == [["a", "e"], ["b", "c"], ["d"]]
    assert layers({}) == []
    chain = {f"s{i}": ([f"s{i - 1}"] if i else []) for i in range(5_000)}
    assert len(layers(chain)) == 5_000  # long chains need no recursion


def test_find_cycle() -> None:
    assert find_cycle(DIAMOND) is None
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": [], "a": ["a"]}) == ["a", "a"]
    assert find_cycle({"a": ["ghost"]}) is None  # unknown needs are another error
    chain = {f"s{i}": [f"s{i + 1}"] for i in range(10_000)} | {"s10000": ["s0"]}
    cycle = find_cycle(chain)
    assert cycle is not None and len(cycle) == 10_002
    with pytest.raises(ValueError, match="cycle: a -> b -> a"):
        Graph({"a": ["b"], "b": ["a"]})
    with pytest.raises(ValueError, match="unknown steps"):
        Graph({"a": ["zz"]})


def test_upstream_and_downstream() -> None:
    assert upstream(DIAMOND, "d") == {"a", "b", "c"}
    assert upstream(DIAMOND, "a") == set()
    g = Graph(DIAMOND)
    assert g.downstream("a") == {"b", "c", "d"}
    assert g.roots() == ["a", "e"]
    assert g.order == ["a", "e", "b", "c", "d"]


def test_ready_runs_roots_then_dependants() -> None:
    g = Graph(DIAMOND)
    assert g.ready(set(), set(), set()).run == ["a", "e"]
    assert g.ready(set(), set(), set(), running={"a"}).run == ["e"]
    assert g.ready({"a"}, set(), set(), running={"e"}).run == ["b", "c"]
    assert g.ready({"a", "b", "e"}, set(), set(), running={"c"}).run == []  # d waits for c
    assert g.ready({"a", "b", "c", "e"}, set(), set()).run == ["d"]
    assert g.ready({"a", "b", "c", "d", "e"}, set(), set()).run == []


def test_failure_skips_dependants_transitively() -> None:
    g = Graph(DIAMOND)
    ready = g.ready({"a", "e"}, {"b"}, set(), running={"c"})
    assert ready.run == [] and ready.skip == {}  # d still waits for c
    ready = g.ready({"a", "e", "c"}, {"b"}, set())
    assert ready.skip == {"d": "b failed"}
    ready = g.ready({"e"}, {"a"}, set())
    assert ready.run == []
    assert ready.skip == {"b": "a failed", "c": "a failed", "d": "b was skipped; c was skipped"}
    assert g.outcome({"e"}, {"a"}, set(ready.skip)) == "failed"


def test_skip_by_if_propagates() -> None:
    g = Graph(DIAMOND)
    ready = g.ready({"a", "e", "c"}, set(), {"b"})
    assert ready.skip == {"d": "b was skipped"}
    assert g.outcome({"a", "e", "c"}, set(), {"b", "d"}) == "succeeded"


def test_continue_on_error_lets_dependants_run() -> None:
    g = Graph(DIAMOND, continue_on_error={"b"})
    ready = g.ready({"a", "c", "e"}, {"b"}, set())
    assert ready.run == ["d"] and ready.skip == {}
    assert g.outcome({"a", "c", "d", "e"}, {"b"}, set()) == "succeeded"
    assert g.outcome({"a"}, {"b"}, set()) == "running"


def test_a_step_reading_status_decides_for_itself() -> None:
    d = parse_definition("""
name: w
steps:
  - {id: build, uses: t}
  - {id: deploy, uses: t, needs: build}
  - {id: notify, uses: t, needs: build, if: "steps.build.status == 'failed'"}
  - {id: always, uses: t, needs: [build, deploy], if: "steps.deploy.status != 'running'"}
  - {id: plain, uses: t, needs: build, if: "true"}
""")
    g = d.graph
    assert g.decides_own_fate == {"notify", "always"}
    ready = g.ready(set(), {"build"}, set())
    # deploy and plain are skipped; notify and always (whose needs are now all settled) let their if decide.
    assert ready.run == ["notify", "always"]
    assert ready.skip == {"deploy": "build failed", "plain": "build failed"}
    # notify's own if decides: it runs because build failed.
    ctx = {"steps": {"build": {"output": None, "status": "failed"}}}
    assert d.step("notify").should_run(ctx) is True
    assert d.step("plain").reads_status is False


def test_definition_graph_matches_needs() -> None:
    d = parse_definition("""
name: w
steps:
  - {id: fetch, uses: t}
  - {id: left, uses: t, needs: fetch}
  - {id: right, uses: t, needs: fetch}
  - {id: join, uses: t, needs: [left, right]}
""")
    assert d.graph.layers == [["fetch"], ["left", "right"], ["join"]]
    assert d.graph.finished({"fetch", "left", "right"}, set(), set()) is False
    assert d.graph.finished({"fetch", "left", "right", "join"}, set(), set()) is True
