"""The step graph: cycles, parallel layers, and which steps a scheduler may start next.

Pure functions over ``{step_id: needs}``; nothing here evaluates expressions. The scheduler
combines :meth:`Graph.ready` with each step's own ``if`` (see ``Step.should_run``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["Graph", "Ready", "find_cycle", "layers", "upstream"]


def find_cycle(needs: Mapping[str, Sequence[str]]) -> list[str] | None:
    """One cycle as its step ids in order, first id repeated at the end (``[a, b, a]``), or None.

    Needs naming unknown steps are ignored (they are reported as ``unknown_step`` elsewhere).
    """
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(needs, white)
    for root in needs:
        if colour[root] != white:
            continue
        # Iterative DFS: a 10,000-step chain must not hit the recursion limit.
        path: list[str] = [root]
        iters = [iter(needs[root])]
        colour[root] = grey
        while path:
            for nxt in iters[-1]:
                if nxt not in colour:
                    continue
                if colour[nxt] == grey:
                    return [*path[path.index(nxt):], nxt]
                if colour[nxt] == white:
                    colour[nxt] = grey
                    path.append(nxt)
                    iters.append(iter(needs[nxt]))
                    break
            else:
                colour[path.pop()] = black
                iters.pop()
    return None


def layers(needs: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Steps grouped so each layer depends only on earlier ones; a layer's steps may run in parallel.

    Order within a layer follows ``needs``' order (the definition's). Raises ValueError on a cycle.
    """
    remaining = {step: {n for n in deps if n in needs} for step, deps in needs.items()}
    out: list[list[str]] = []
    done: set[str] = set()
    while remaining:
        layer = [step for step, deps in remaining.items() if deps <= done]
        if not layer:
            cycle = find_cycle(needs) or sorted(remaining)
            raise ValueError(f"cycle: {' -> '.join(cycle)}")
        out.append(layer)
        done.update(layer)
        for step in layer:
            del remaining[step]
    return out


def upstream(needs: Mapping[str, Sequence[str]], step: str) -> set[str]:
    """Every step ``step`` transitively needs (not including itself unless there is a cycle)."""
    seen: set[str] = set()
    stack = list(needs.get(step, ()))
    while stack:
        current = stack.pop()
        if current in seen or current not in needs:
            continue
        seen.add(current)
        stack.extend(needs[current])
    return seen


@dataclass(frozen=True)
class Ready:
    """What a scheduler should do next.

    ``run``: steps whose needs are all settled and allowed; evaluate each one's ``if`` (false →
    mark it skipped) and start the rest. ``skip``: steps that must be marked skipped because a
    step they need failed (without ``continue_on_error``) or was skipped — already closed over,
    so dependants of skipped steps are in it too.
    """

    run: list[str] = field(default_factory=list)
    skip: dict[str, str] = field(default_factory=dict)  # step id -> reason


class Graph:
    """A validated DAG of steps.

    ``continue_on_error``: steps whose failure does not stop their dependants.
    ``decides_own_fate``: steps that run once their needs are settled whatever happened to them,
    leaving the decision to their ``if`` (a step whose ``if`` reads some ``steps.X.status``).
    """

    def __init__(self, needs: Mapping[str, Sequence[str]], *, continue_on_error: Iterable[str] = (),
                 decides_own_fate: Iterable[str] = ()) -> None:
        unknown = {n for deps in needs.values() for n in deps if n not in needs}
        if unknown:
            raise ValueError(f"unknown steps in needs: {', '.join(sorted(unknown))}")
        cycle = find_cycle(needs)
        if cycle:
            raise ValueError(f"cycle: {' -> '.join(cycle)}")
        self.needs: dict[str, tuple[str, ...]] = {step: tuple(deps) for step, deps in needs.items()}
        self.continue_on_error = frozenset(continue_on_error)
        self.decides_own_fate = frozenset(decides_own_fate)
        self.layers = layers(self.needs)
        self.order = [step for layer in self.layers for step in layer]
        self.dependants: dict[str, list[str]] = {step: [] for step in self.needs}
        for step, deps in self.needs.items():
            for dep in deps:
                self.dependants[dep].append(step)

    def upstream(self, step: str) -> set[str]:
        return upstream(self.needs, step)

    def downstream(self, step: str) -> set[str]:
        seen: set[str] = set()
        stack = list(self.dependants.get(step, ()))
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(self.dependants[current])
        return seen

    def roots(self) -> list[str]:
        return list(self.layers[0]) if self.layers else []

    def ready(self, completed: Collection[str], failed: Collection[str], skipped: Collection[str],
              running: Collection[str] = ()) -> Ready:
        """The next steps given the steps that succeeded (``completed``), ``failed``, were
        ``skipped`` and are ``running``.

        Rules: a step is due once every step it needs is settled. It is skipped if one of them
        failed (and that one has no ``continue_on_error``) or was skipped — unless it decides
        its own fate, in which case its ``if`` alone decides. Otherwise it is ready to run.
        """
        settled_ok = set(completed) | (set(failed) & self.continue_on_error)
        blocked = (set(failed) - self.continue_on_error) | set(skipped)
        busy = set(completed) | set(failed) | set(skipped) | set(running)
        run: list[str] = []
        skip: dict[str, str] = {}
        # Topological order, so a skip found here cascades to dependants within the same call.
        for step in self.order:
            if step in busy:
                continue
            deps = self.needs[step]
            if not all(d in settled_ok or d in blocked or d in skip for d in deps):
                continue
            bad = [d for d in deps if d in blocked or d in skip]
            if bad and step not in self.decides_own_fate:
                reasons = [f"{d} failed" if d in failed else f"{d} was skipped" for d in bad]
                skip[step] = "; ".join(reasons)
                continue
            run.append(step)
        return Ready(run=run, skip=skip)

    def finished(self, completed: Collection[str], failed: Collection[str], skipped: Collection[str]) -> bool:
        settled = set(completed) | set(failed) | set(skipped)
        return all(step in settled for step in self.needs)

    def outcome(self, completed: Collection[str], failed: Collection[str], skipped: Collection[str]) -> str:
        """``running`` until every step settled, then ``failed`` if a step without
        ``continue_on_error`` failed, else ``succeeded``."""
        if not self.finished(completed, failed, skipped):
            return "running"
        return "failed" if set(failed) - self.continue_on_error else "succeeded"
