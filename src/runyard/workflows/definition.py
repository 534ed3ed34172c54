"""Workflow definitions: parsing and validating the YAML/JSON format described in docs/workflows.md.

``validate(source)`` returns every problem found (each with a stable code, a path such as
``steps[2].with.n`` and, for text, the line and column); ``parse_definition(source)`` returns a
:class:`Definition` or raises :class:`WorkflowError` carrying the same list.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from jsonschema import Draft202012Validator

from runyard.workflows.expressions import (
    DEFAULT_LIMITS,
    ROOTS,
    EvaluationError,
    Expr,
    ExpressionError,
    Limits,
    Reference,
    Template,
    evaluate,
    parse,
    parse_template,
    render,
    truthy,
)
from runyard.workflows.graph import Graph, find_cycle, upstream
from runyard.workflows.source import Issue, Path, SourceMap, WorkflowError, format_path, iter_json, load_text

__all__ = [
    "ERROR_CODES", "Definition", "Issue", "Source", "Step", "ToolSchemaLookup", "Uses", "WorkflowError",
    "WorkflowResolver", "parse_definition", "parse_uses", "validate",
]

# Stable codes; clients may switch on them.
ERROR_CODES = {
    "invalid_yaml": "the text is not valid YAML/JSON",
    "invalid_workflow": "a value has the wrong type or shape, or a required key is missing",
    "unknown_key": "a key the format does not define",
    "duplicate_key": "a mapping key given twice",
    "duplicate_step": "two steps share an id",
    "unknown_step": "needs names a step that does not exist",
    "cycle": "steps (or nested workflows) depend on each other in a loop",
    "invalid_expression": "a ${{ }} expression does not parse",
    "undefined_reference": "an expression reads an undeclared input, a missing step or one not upstream",
    "unknown_tool": "uses names a tool that does not exist",
    "unknown_workflow": "uses names a block/workflow that does not exist",
    "schema_mismatch": "a step's with does not fit the called tool's or workflow's inputs",
    "nesting_too_deep": "nested workflows go deeper than the limit",
}

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # the same rule as tool names
STEP_ID_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,63}$")  # usable after "steps." in expressions
OUTPUT_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_USES_RE = re.compile(r"^(?:(tool|block|workflow):)?([a-z0-9][a-z0-9_-]{0,63})(?:@([A-Za-z0-9][A-Za-z0-9._-]{0,63}))?$")

TOP_KEYS = ("name", "kind", "description", "inputs", "steps", "outputs")
RUN_STEP_KEYS = ("id", "name", "kind", "uses", "with", "needs", "if", "for_each", "max_parallel", "retries",
                 "retry_backoff_s", "timeout", "continue_on_error")
WAIT_STEP_KEYS = ("id", "name", "kind", "with", "needs", "if", "timeout", "continue_on_error")
STEP_STATUSES = ("succeeded", "failed", "skipped")

MAX_STEPS = 1_000
MAX_RETRIES = 100
MAX_BACKOFF_S = 3_600.0
MAX_TIMEOUT_S = 30 * 24 * 3_600.0
MAX_PARALLEL = 10_000

Source = str | bytes | Mapping[str, Any]


@dataclass(frozen=True)
class Uses:
    """What a step calls: ``kind`` is tool, block or workflow; at most one of version/tag is set
    (neither: the latest published version)."""

    kind: Literal["tool", "block", "workflow"]
    name: str
    version: int | None = None
    tag: str | None = None

    @property
    def ref(self) -> int | str | None:
        return self.version if self.version is not None else self.tag

    def __str__(self) -> str:
        prefix = "" if self.kind == "tool" else f"{self.kind}:"
        suffix = "" if self.ref is None else f"@{self.ref}"
        return f"{prefix}{self.name}{suffix}"


def parse_uses(text: str) -> Uses:
    """``tool``, ``tool@3``, ``tool@stable``, ``block:name[@ref]``, ``workflow:name[@ref]``
    (``tool:name`` is also accepted). Raises ValueError."""
    match = _USES_RE.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"{text!r} is not NAME, NAME@VERSION, NAME@TAG, block:NAME[@…] or workflow:NAME[@…]")
    kind, name, ref = match.group(1) or "tool", match.group(2), match.group(3)
    if ref is None:
        return Uses(kind, name)  # type: ignore[arg-type]
    if ref.isdigit():
        if int(ref) < 1:
            raise ValueError("versions start at 1")
        return Uses(kind, name, version=int(ref))  # type: ignore[arg-type]
    return Uses(kind, name, tag=ref)  # type: ignore[arg-type]


_NO_ITEM = object()


@dataclass(frozen=True)
class Step:
    id: str
    index: int
    kind: Literal["run", "wait_for_input"] = "run"
    uses: Uses | None = None
    name: str | None = None
    with_: Mapping[str, Any] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    if_: str | bool | None = None
    for_each: str | list[Any] | None = None
    max_parallel: int | None = None
    retries: int = 0
    retry_backoff_s: float = 1.0
    timeout: float | None = None
    continue_on_error: bool = False
    # Parsed forms (built once at validation).
    condition: Expr | bool | None = field(default=None, repr=False, compare=False)
    items_expr: Expr | None = field(default=None, repr=False, compare=False)

    @property
    def reads_status(self) -> bool:
        """True when the step's ``if`` reads some ``steps.X.status``: such a step runs after a
        failed or skipped need and lets its ``if`` decide (cleanup, notification)."""
        if not isinstance(self.condition, Expr):
            return False
        return any(root == "steps" and len(path) >= 2 and path[1] == "status"
                   for root, path in self.condition.references())

    def should_run(self, context: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> bool:
        """Evaluate ``if`` (absent: true). Evaluated once per step, before any ``for_each``."""
        if self.condition is None or isinstance(self.condition, bool):
            return self.condition is not False
        return truthy(evaluate(self.condition, context, limits))

    def items(self, context: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> list[Any]:
        """The ``for_each`` list (at most ``limits.max_items`` items)."""
        if self.for_each is None:
            raise ValueError(f"step {self.id} has no for_each")
        value = render(self.for_each, context, limits) if self.items_expr is None \
            else evaluate(self.items_expr, context, limits)
        if not isinstance(value, list):
            raise EvaluationError(f"for_each of step {self.id} must give a list, not {type(value).__name__}")
        if len(value) > limits.max_items:
            raise EvaluationError(f"for_each of step {self.id} gives {len(value)} items, over the limit of "
                                  f"{limits.max_items}")
        return value

    def render_with(self, context: Mapping[str, Any], item: Any = _NO_ITEM,
                    limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
        """The step's inputs: ``with`` with every expression evaluated (``item`` for one for_each item)."""
        ctx = context if item is _NO_ITEM else {**context, "item": item}
        return render(dict(self.with_), ctx, limits)

    def retry_delay(self, attempt: int) -> float:
        """Seconds before retry number ``attempt`` (1-based): the backoff doubled each time, capped."""
        return min(self.retry_backoff_s * (2 ** max(0, min(attempt, 40) - 1)), MAX_BACKOFF_S)


@dataclass(frozen=True)
class Definition:
    name: str
    kind: Literal["workflow", "block"]
    description: str
    inputs: Mapping[str, Any]
    steps: tuple[Step, ...]
    outputs: Mapping[str, Any]
    data: Mapping[str, Any] = field(repr=False, compare=False)  # the definition as JSON values
    source_map: SourceMap | None = field(default=None, repr=False, compare=False)

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    @cached_property
    def graph(self) -> Graph:
        return Graph({s.id: s.needs for s in self.steps},
                     continue_on_error=[s.id for s in self.steps if s.continue_on_error],
                     decides_own_fate=[s.id for s in self.steps if s.reads_status])

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(self.inputs.get("properties", {}))

    @property
    def file_inputs(self) -> tuple[str, ...]:
        """Inputs that take files: ``format: file`` on a string, or on an array's items."""
        return tuple(name for name, schema in self.inputs.get("properties", {}).items() if _is_file_schema(schema))

    def input_errors(self, values: Mapping[str, Any]) -> list[str]:
        """Why ``values`` do not fit ``inputs`` (empty when they do)."""
        validator = Draft202012Validator(dict(self.inputs))
        return [f"{format_path(tuple(e.absolute_path)) or 'inputs'}: {e.message}"
                for e in sorted(validator.iter_errors(dict(values)), key=lambda e: list(map(str, e.absolute_path)))]

    def with_defaults(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` plus the ``default`` of each input not given."""
        out = dict(values)
        for name, schema in self.inputs.get("properties", {}).items():
            if name not in out and isinstance(schema, Mapping) and "default" in schema:
                out[name] = schema["default"]
        return out

    def render_outputs(self, context: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
        return render(dict(self.outputs), context, limits)

    def nested(self) -> list[tuple[Step, Uses]]:
        """Steps that call a block or another workflow."""
        return [(s, s.uses) for s in self.steps if s.uses is not None and s.uses.kind != "tool"]

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.data))


# Lookups the caller may supply so validation can see beyond the definition:
# tool_schema(uses) -> the tool's input JSON Schema ({} when it has none), or None if no such tool.
ToolSchemaLookup = Callable[[Uses], Mapping[str, Any] | None]
# resolve(name, version_or_tag_or_None) -> that block/workflow's Definition, or None.
WorkflowResolver = Callable[[str, int | str | None], "Definition | None"]


def _is_file_schema(schema: Any) -> bool:
    if not isinstance(schema, Mapping):
        return False
    if schema.get("format") == "file":
        return True
    items = schema.get("items")
    return schema.get("type") == "array" and isinstance(items, Mapping) and items.get("format") == "file"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Checker:
    """Collects issues while turning JSON values into a Definition."""

    def __init__(self, smap: SourceMap | None) -> None:
        self.smap = smap
        self.issues: list[Issue] = []

    def add(self, code: str, message: str, path: Path, *, key: bool = False, column: int | None = None) -> None:
        pos = None
        if self.smap is not None:
            pos = self.smap.locate_in_string(path, column) if column is not None else self.smap.locate(path, key=key)
        self.issues.append(Issue(code, message, format_path(path), pos.line if pos else None,
                                 pos.column if pos else None))

    def keys(self, value: Mapping[str, Any], allowed: tuple[str, ...], path: Path, what: str) -> None:
        for key in value:
            if key not in allowed:
                self.add("unknown_key", f"unknown key {key!r} in {what} (allowed: {', '.join(allowed)})",
                         (*path, key), key=True)

    def template(self, text: str, path: Path) -> Template | None:
        try:
            return parse_template(text)
        except ExpressionError as exc:
            self.add("invalid_expression", exc.reason, path, column=exc.column)
            return None

    def expression(self, value: Any, path: Path) -> Expr | bool | None:
        """``if``/``for_each`` take a bare expression or exactly one ``${{ }}``."""
        if isinstance(value, bool):
            return value
        if not isinstance(value, str):
            self.add("invalid_workflow", "must be an expression (a string)", path)
            return None
        if "${{" in value:
            template = self.template(value, path)
            if template is None:
                return None
            if template.raw is None:
                self.add("invalid_expression", "must be a single ${{ … }} expression (or a bare expression)", path)
                return None
            return template.raw
        try:
            return parse(value)
        except ExpressionError as exc:
            self.add("invalid_expression", exc.reason, path, column=exc.column)
            return None

    def templates_in(self, value: Any, path: Path) -> list[tuple[Path, set[Reference]]]:
        """Parse every template in a JSON value; the references each string makes, by path."""
        found = []
        for where, item in iter_json(value, path):
            if isinstance(item, str) and "${{" in item:
                template = self.template(item, where)
                if template is not None:
                    found.append((where, template.references()))
        return found


def _json_issues(value: Any, checker: _Checker) -> None:
    """Dict input: refuse what JSON cannot hold (YAML text is checked while loading)."""
    for count, (where, item) in enumerate(iter_json(value)):
        if count >= 200_000:
            checker.add("invalid_workflow", "definition too large", ())
            return
        if len(where) > 100:
            checker.add("invalid_workflow", "nested too deeply", where[:100])
            return
        if isinstance(item, dict):
            for key in item:
                if not isinstance(key, str):
                    checker.add("invalid_workflow", f"mapping keys must be strings, not {key!r}", where)
        elif isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                checker.add("invalid_workflow", "numbers must be finite", where)
        elif not (item is None or isinstance(item, str | int | list)):
            checker.add("invalid_workflow", f"not a JSON value: {type(item).__name__}", where)


def _load(source: Source) -> tuple[Any, SourceMap | None, list[Issue]]:
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, None, [Issue("invalid_yaml", f"not UTF-8: {exc}")]
    if isinstance(source, str):
        data, smap, issues = load_text(source)
        if data is None and issues and issues[0].code == "invalid_yaml" and source.lstrip().startswith("{"):
            # A few valid JSON documents are not YAML 1.1 (e.g. tabs); accept them without positions.
            try:
                return json.loads(source), None, []
            except ValueError:
                pass
        return data, smap, issues
    if isinstance(source, Mapping):
        data = json.loads(json.dumps(source, default=_not_json)) if _is_plain(source) else source
        checker = _Checker(None)
        _json_issues(data, checker)
        return (dict(data) if isinstance(data, Mapping) else data), None, checker.issues
    return None, None, [Issue("invalid_workflow", "a definition is YAML/JSON text or a mapping")]


def _is_plain(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
        return True
    except (TypeError, ValueError, RecursionError):
        return False


def _not_json(value: Any) -> Any:  # pragma: no cover - only reached for values _is_plain accepted
    raise TypeError(type(value).__name__)


def validate(source: Source, *, tool_schema: ToolSchemaLookup | None = None,
             resolve: WorkflowResolver | None = None, max_depth: int = 5) -> list[Issue]:
    """Every problem in a definition (empty list: valid).

    ``tool_schema`` and ``resolve`` let validation check called tools and nested workflows
    (existence, inputs, cycles, nesting depth); without them those checks are skipped.
    """
    _, issues = _build(source, tool_schema, resolve, max_depth)
    return issues


def parse_definition(source: Source, *, tool_schema: ToolSchemaLookup | None = None,
                     resolve: WorkflowResolver | None = None, max_depth: int = 5) -> Definition:
    """A validated :class:`Definition`; raises :class:`WorkflowError` listing every problem."""
    definition, issues = _build(source, tool_schema, resolve, max_depth)
    if issues or definition is None:
        raise WorkflowError(issues or [Issue("invalid_workflow", "invalid workflow")])
    return definition


def _build(source: Source, tool_schema: ToolSchemaLookup | None, resolve: WorkflowResolver | None,
           max_depth: int) -> tuple[Definition | None, list[Issue]]:
    data, smap, load_issues = _load(source)
    checker = _Checker(smap)
    checker.issues.extend(load_issues)
    if data is None:
        return None, checker.issues
    if not isinstance(data, Mapping):
        checker.add("invalid_workflow", "a definition is a mapping with name, steps, …", ())
        return None, checker.issues
    checker.keys(data, TOP_KEYS, (), "a workflow")

    name = data.get("name")
    if name is None:
        checker.add("invalid_workflow", "name is required", ())
    elif not isinstance(name, str) or not NAME_RE.match(name):
        checker.add("invalid_workflow", "name must be 1-64 of a-z 0-9 _ - starting with a letter or digit",
                    ("name",))
    kind = data.get("kind", "workflow")
    if kind not in ("workflow", "block"):
        checker.add("invalid_workflow", "kind must be workflow or block", ("kind",))
    description = data.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        checker.add("invalid_workflow", "description must be a string", ("description",))

    inputs, declared = _check_inputs(data.get("inputs"), checker)
    steps = _check_steps(data.get("steps"), checker, declared)
    outputs = _check_outputs(data.get("outputs"), checker, declared, {s.id for s in steps})

    if tool_schema is not None or resolve is not None:
        _check_calls(steps, inputs, checker, tool_schema, resolve)

    definition = None
    if not checker.issues:
        definition = Definition(name=name, kind=kind, description=description, inputs=inputs, steps=tuple(steps),
                                outputs=outputs, data=data, source_map=smap)
        if resolve is not None:
            from runyard.workflows.nesting import check_nesting  # nesting imports this module

            checker.issues.extend(check_nesting(definition, resolve, max_depth=max_depth))
    issues = sorted(checker.issues, key=lambda i: (i.line is None, i.line or 0, i.column or 0))
    return (definition if not issues else None), issues


def _check_inputs(value: Any, checker: _Checker) -> tuple[dict[str, Any], set[str] | None]:
    """The inputs schema and the declared input names (None: undeclared names can't be checked)."""
    path: Path = ("inputs",)
    if value is None:
        return {"type": "object", "properties": {}}, set()
    if not isinstance(value, Mapping):
        checker.add("invalid_workflow", "inputs must be a JSON Schema object (type: object, properties: …)", path)
        return {}, None
    meta = Draft202012Validator(Draft202012Validator.META_SCHEMA)
    bad = False
    for error in meta.iter_errors(value):
        bad = True
        checker.add("invalid_workflow", f"inputs is not a valid JSON Schema: {error.message}",
                    (*path, *error.absolute_path))
    if "type" in value and value["type"] != "object":
        checker.add("invalid_workflow", "inputs must have type: object", (*path, "type"))
        bad = True
    properties = value.get("properties", {})
    if not isinstance(properties, Mapping):
        return dict(value), None
    for prop, schema in properties.items():
        if isinstance(schema, Mapping) and schema.get("format") == "file" and schema.get("type", "string") != "string":
            checker.add("invalid_workflow", "a file input is {type: string, format: file}",
                        (*path, "properties", prop, "type"))
    return dict(value), (None if bad else set(properties))


def _check_steps(value: Any, checker: _Checker, declared: set[str] | None) -> list[Step]:
    if value is None:
        checker.add("invalid_workflow", "steps is required (a list of steps)", ())
        return []
    if not isinstance(value, list) or not value:
        checker.add("invalid_workflow", "steps must be a non-empty list", ("steps",))
        return []
    if len(value) > MAX_STEPS:
        checker.add("invalid_workflow", f"at most {MAX_STEPS} steps", ("steps",))
        return []

    steps: list[Step] = []
    index_of: dict[str, int] = {}
    raw_refs: list[tuple[int, list[tuple[Path, set[Reference], str]]]] = []
    for i, raw in enumerate(value):
        path: Path = ("steps", i)
        if not isinstance(raw, Mapping):
            checker.add("invalid_workflow", "a step is a mapping with id, uses, …", path)
            continue
        step, refs = _check_step(raw, path, checker)
        if step is None:
            continue
        if step.id in index_of:
            checker.add("duplicate_step", f"step id {step.id!r} is already used by steps[{index_of[step.id]}]",
                        (*path, "id"))
            continue
        index_of[step.id] = len(steps)
        steps.append(step)
        raw_refs.append((i, refs))

    ids = {s.id for s in steps}
    needs: dict[str, tuple[str, ...]] = {}
    for step in steps:
        i = step.index
        for j, need in enumerate(step.needs):
            if need not in ids:
                checker.add("unknown_step", f"needs {need!r}, which is not a step", ("steps", i, "needs", j))
        needs[step.id] = tuple(n for n in step.needs if n in ids)

    cycle = find_cycle(needs)
    if cycle:
        first = steps[index_of[cycle[0]]]
        checker.add("cycle", f"steps depend on each other in a loop: {' -> '.join(cycle)}",
                    ("steps", first.index, "needs"))

    for step, (_, refs) in zip(steps, raw_refs, strict=True):
        before = upstream(needs, step.id)
        for where, found, part in refs:
            for root, keys in sorted(found, key=repr):
                _check_reference(root, keys, where, checker, declared, ids, before,
                                 own=step.id, item_ok=(part == "with" and step.for_each is not None))
    return steps


def _check_step(raw: Mapping[str, Any], path: Path, checker: _Checker
                ) -> tuple[Step | None, list[tuple[Path, set[Reference], str]]]:
    refs: list[tuple[Path, set[Reference], str]] = []
    kind = raw.get("kind", "run")
    if kind not in ("run", "wait_for_input"):
        checker.add("invalid_workflow", "a step's kind is run (the default) or wait_for_input", (*path, "kind"))
        kind = "run"
    checker.keys(raw, RUN_STEP_KEYS if kind == "run" else WAIT_STEP_KEYS, path,
                 "a step" if kind == "run" else "a wait_for_input step")

    step_id = raw.get("id")
    ok = True
    if step_id is None:
        checker.add("invalid_workflow", "a step needs an id", path)
        ok = False
    elif not isinstance(step_id, str) or not STEP_ID_RE.match(step_id):
        checker.add("invalid_workflow", "a step id is 1-64 of a-z 0-9 _ - starting with a letter or _",
                    (*path, "id"))
        ok = False

    uses = None
    if kind == "run":
        if "uses" not in raw:
            checker.add("invalid_workflow", "a step needs uses (a tool, block:NAME or workflow:NAME)", path)
        else:
            try:
                uses = parse_uses(raw["uses"])
            except ValueError as exc:
                checker.add("invalid_workflow", f"uses: {exc}", (*path, "uses"))

    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        checker.add("invalid_workflow", "name must be a string", (*path, "name"))

    with_ = raw.get("with", {})
    if with_ is None:
        with_ = {}
    if not isinstance(with_, Mapping):
        checker.add("invalid_workflow", "with must be a mapping of input name to value", (*path, "with"))
        with_ = {}
    refs.extend((where, found, "with") for where, found in checker.templates_in(with_, (*path, "with")))

    needs_raw = raw.get("needs", [])
    if isinstance(needs_raw, str):
        needs_raw = [needs_raw]
    needs: list[str] = []
    if not isinstance(needs_raw, list):
        checker.add("invalid_workflow", "needs must be a step id or a list of step ids", (*path, "needs"))
    else:
        for j, need in enumerate(needs_raw):
            if not isinstance(need, str):
                checker.add("invalid_workflow", "needs lists step ids (strings)", (*path, "needs", j))
            elif need in needs:
                checker.add("invalid_workflow", f"{need!r} is listed twice", (*path, "needs", j))
            elif need == step_id:
                checker.add("cycle", "a step cannot need itself", (*path, "needs", j))
            else:
                needs.append(need)

    condition = None
    if "if" in raw:
        condition = checker.expression(raw["if"], (*path, "if"))
        if isinstance(condition, Expr):
            refs.append(((*path, "if"), condition.references(), "if"))

    for_each, items_expr = raw.get("for_each"), None
    if for_each is not None:
        if isinstance(for_each, list):
            refs.extend((where, found, "for_each")
                        for where, found in checker.templates_in(for_each, (*path, "for_each")))
        else:
            parsed = checker.expression(for_each, (*path, "for_each"))
            if isinstance(parsed, bool):
                checker.add("invalid_workflow", "for_each must be an expression giving a list, or a list",
                            (*path, "for_each"))
            elif isinstance(parsed, Expr):
                items_expr = parsed
                refs.append(((*path, "for_each"), parsed.references(), "for_each"))

    max_parallel = raw.get("max_parallel")
    if max_parallel is not None:
        if not _is_int(max_parallel) or not 1 <= max_parallel <= MAX_PARALLEL:
            checker.add("invalid_workflow", f"max_parallel must be an integer from 1 to {MAX_PARALLEL}",
                        (*path, "max_parallel"))
        elif for_each is None:
            checker.add("invalid_workflow", "max_parallel applies only with for_each", (*path, "max_parallel"))
    retries = raw.get("retries", 0)
    if not _is_int(retries) or not 0 <= retries <= MAX_RETRIES:
        checker.add("invalid_workflow", f"retries must be an integer from 0 to {MAX_RETRIES}", (*path, "retries"))
        retries = 0
    backoff = raw.get("retry_backoff_s", 1.0)
    if not _is_number(backoff) or not 0 <= backoff <= MAX_BACKOFF_S:
        checker.add("invalid_workflow", f"retry_backoff_s must be a number of seconds from 0 to {MAX_BACKOFF_S:g}",
                    (*path, "retry_backoff_s"))
        backoff = 1.0
    timeout = raw.get("timeout")
    if timeout is not None and (not _is_number(timeout) or not 0 < timeout <= MAX_TIMEOUT_S):
        checker.add("invalid_workflow", f"timeout must be a number of seconds above 0 (at most {MAX_TIMEOUT_S:g})",
                    (*path, "timeout"))
        timeout = None
    continue_on_error = raw.get("continue_on_error", False)
    if not isinstance(continue_on_error, bool):
        checker.add("invalid_workflow", "continue_on_error must be true or false", (*path, "continue_on_error"))
        continue_on_error = False

    if not ok:
        return None, refs
    step = Step(id=step_id, index=path[1], kind=kind, uses=uses, name=name, with_=dict(with_),  # type: ignore[arg-type]
                needs=tuple(needs), if_=raw.get("if"), for_each=for_each, max_parallel=max_parallel,
                retries=retries, retry_backoff_s=float(backoff), timeout=None if timeout is None else float(timeout),
                continue_on_error=continue_on_error, condition=condition, items_expr=items_expr)
    return step, refs


def _check_reference(root: str, keys: tuple[str | int, ...], where: Path, checker: _Checker,
                     declared: set[str] | None, ids: set[str], before: set[str] | None, *, own: str | None,
                     item_ok: bool) -> None:
    """Save-time check of one ``(root, path)`` read by an expression at ``where``."""
    shown = root + "".join(f".{k}" if isinstance(k, str) else f"[{k}]" for k in keys)
    if root not in ROOTS:
        checker.add("undefined_reference", f"{root!r} is not defined (expressions start with inputs, steps or item)",
                    where)
    elif root == "item":
        if not item_ok:
            checker.add("undefined_reference", "item is defined only in the with of a step with for_each", where)
    elif root == "inputs":
        if keys and declared is not None and (not isinstance(keys[0], str) or keys[0] not in declared):
            checker.add("undefined_reference", f"{shown}: input {keys[0]!r} is not declared in inputs", where)
    else:  # steps
        if not keys or not isinstance(keys[0], str):
            checker.add("undefined_reference", "steps must be followed by a step id, as in steps.ID.output", where)
            return
        target = keys[0]
        if target not in ids:
            checker.add("undefined_reference", f"{shown}: there is no step {target!r}", where)
        elif target == own:
            checker.add("undefined_reference", f"{shown}: a step cannot read its own output or status", where)
        elif before is not None and target not in before:
            checker.add("undefined_reference",
                        f"{shown}: step {target!r} is not upstream of {own!r} (add it to needs)", where)
        elif len(keys) >= 2 and keys[1] not in ("output", "status"):
            checker.add("undefined_reference", f"{shown}: a step has output and status only", where)
        elif len(keys) >= 3 and keys[1] == "status":
            checker.add("undefined_reference", f"{shown}: status is a string ({', '.join(STEP_STATUSES)})", where)


def _check_outputs(value: Any, checker: _Checker, declared: set[str] | None, ids: set[str]) -> dict[str, Any]:
    path: Path = ("outputs",)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        checker.add("invalid_workflow", "outputs must be a mapping of name to expression", path)
        return {}
    for name, expr in value.items():
        if not OUTPUT_NAME_RE.match(name):
            checker.add("invalid_workflow", "an output name is a letter or _ then letters, digits, _ or -",
                        (*path, name), key=True)
        if isinstance(expr, str) and "${{" not in expr and re.match(r"^\s*(inputs|steps)\.", expr):
            checker.add("invalid_expression", f"looks like an expression: write ${{{{ {expr.strip()} }}}}",
                        (*path, name))
        for where, found in checker.templates_in(expr, (*path, name)):
            for root, keys in sorted(found, key=repr):
                _check_reference(root, keys, where, checker, declared, ids, None, own=None, item_ok=False)
    return dict(value)


def _has_template(value: Any) -> bool:
    return any(isinstance(item, str) and "${{" in item for _, item in iter_json(value))


def _check_calls(steps: list[Step], inputs: Mapping[str, Any], checker: _Checker,
                 tool_schema: ToolSchemaLookup | None, resolve: WorkflowResolver | None) -> None:
    """Called tools/workflows exist and ``with`` fits their inputs where that can be known
    (keys, required inputs, literal values; values computed by expressions are checked at run time)."""
    for step in steps:
        if step.uses is None:
            continue
        path: Path = ("steps", step.index, "uses")
        schema: Mapping[str, Any] | None
        if step.uses.kind == "tool":
            if tool_schema is None:
                continue
            schema = tool_schema(step.uses)
            if schema is None:
                checker.add("unknown_tool", f"no tool {step.uses}", path)
                continue
        else:
            if resolve is None:
                continue
            target = resolve(step.uses.name, step.uses.ref)
            if target is None:
                checker.add("unknown_workflow", f"no {step.uses.kind} {step.uses}", path)
                continue
            if target.kind != step.uses.kind:
                checker.add("unknown_workflow", f"{step.uses.name} is a {target.kind}, not a {step.uses.kind}", path)
                continue
            schema = target.inputs
        _check_with_against(step, schema, checker)


def _check_with_against(step: Step, schema: Mapping[str, Any], checker: _Checker) -> None:
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return
    with_path: Path = ("steps", step.index, "with")
    closed = schema.get("additionalProperties") is False
    for key, value in step.with_.items():
        if key not in properties:
            if closed:
                checker.add("schema_mismatch", f"{step.uses} has no input {key!r} (inputs: "
                            f"{', '.join(properties) or 'none'})", (*with_path, key), key=True)
            continue
        if _has_template(value) or not isinstance(properties[key], Mapping):
            continue
        prop_schema = properties[key]
        try:
            errors = list(Draft202012Validator(dict(prop_schema)).iter_errors(value))
        except Exception:  # noqa: BLE001 - a tool's broken schema must not break validation
            continue
        for error in errors[:3]:
            checker.add("schema_mismatch", f"{step.uses} input {key!r}: {error.message}",
                        (*with_path, key, *error.absolute_path))
    required = schema.get("required", [])
    if isinstance(required, list):
        for name in required:
            prop = properties.get(name)
            has_default = isinstance(prop, Mapping) and "default" in prop
            if isinstance(name, str) and name not in step.with_ and not has_default:
                checker.add("schema_mismatch", f"{step.uses} requires input {name!r}", with_path)
