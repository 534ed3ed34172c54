"""Nested workflows: cycles across definitions (a uses b uses a) and the depth limit."""

from __future__ import annotations

from dataclasses import dataclass

from runyard.workflows.definition import Definition, WorkflowResolver
from runyard.workflows.source import Issue, format_path

__all__ = ["DEFAULT_MAX_DEPTH", "check_nesting"]

DEFAULT_MAX_DEPTH = 5
MAX_RESOLVES = 10_000  # a bound on lookups, whatever the shape of the graph of workflows


@dataclass
class _Found:
    height: int  # nesting levels below this workflow (0: it calls none)
    chain: tuple[str, ...]  # the deepest chain of names below it


def check_nesting(definition: Definition, resolve: WorkflowResolver,
                  max_depth: int = DEFAULT_MAX_DEPTH) -> list[Issue]:
    """Problems with the blocks/workflows ``definition`` calls, directly or through others.

    ``resolve(name, version_or_tag_or_None)`` returns the called definition or None. Depth counts
    levels of nesting: a workflow calling a block that calls a block has depth 2; more than
    ``max_depth`` is ``nesting_too_deep``. Cycles are found by name (so a workflow may not call
    any version of itself, even indirectly). Issues point at the root definition's step whose
    ``uses`` leads to the problem.
    """
    issues: list[Issue] = []
    seen_messages: set[tuple[str, str, str]] = set()
    cache: dict[tuple[str, int | str | None], Definition | None] = {}
    memo: dict[tuple[str, int | str | None], _Found] = {}
    budget = [MAX_RESOLVES]

    def lookup(name: str, ref: int | str | None) -> Definition | None:
        key = (name, ref)
        if key not in cache:
            budget[0] -= 1
            cache[key] = resolve(name, ref) if budget[0] >= 0 else None
        return cache[key]

    def report(code: str, message: str, step_index: int) -> None:
        path = ("steps", step_index, "uses")
        key = (code, message, format_path(path))
        if key in seen_messages:
            return
        seen_messages.add(key)
        pos = definition.source_map.locate(path) if definition.source_map else None
        issues.append(Issue(code, message, format_path(path), pos.line if pos else None, pos.column if pos else None))

    def explore(current: Definition, chain: tuple[str, ...], root_step: int | None) -> _Found:
        """Height below ``current`` (whose name ends ``chain``); stops past the limit or on a cycle."""
        best = _Found(0, ())
        for step, uses in current.nested():
            entry = step.index if root_step is None else root_step
            if uses.name in chain:
                loop = (*chain[chain.index(uses.name):], uses.name)
                report("cycle", f"nested workflows call each other in a loop: {' -> '.join(loop)}", entry)
                continue
            if len(chain) > max_depth:
                # Already past the limit: no need to resolve deeper to know it is too deep.
                return _Found(1, (uses.name,))
            key = (uses.name, uses.ref)
            found = memo.get(key)
            if found is None:
                child = lookup(uses.name, uses.ref)
                if child is None:
                    via = f" (via {' -> '.join(chain)})" if len(chain) > 1 else ""
                    if budget[0] < 0:
                        report("nesting_too_deep", "too many nested workflow references to check", entry)
                    else:
                        report("unknown_workflow", f"no {uses.kind} {uses}{via}", entry)
                    continue
                found = explore(child, (*chain, uses.name), entry)
                if len(chain) + 1 + found.height <= max_depth + 1:
                    memo[key] = found  # complete (not cut short by the limit)
            candidate = _Found(found.height + 1, (uses.name, *found.chain))
            if candidate.height > best.height:
                best = candidate
            if root_step is None and candidate.height > max_depth:
                report("nesting_too_deep", f"more than {max_depth} levels of nested workflows: "
                       f"{' -> '.join((definition.name, *candidate.chain))}", entry)
        return best

    explore(definition, (definition.name,), None)
    return issues
