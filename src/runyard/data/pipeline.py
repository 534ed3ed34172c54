"""Deterministic ingestion pipelines: ordered steps applied to every batch before it is stored.

A pipeline is a JSON list of steps, each an object with one key (the step's kind) and its
argument::

    [{"rename": {"Full Name": "name"}},
     {"trim": ["name", "city"]},
     {"normalize": {"columns": ["city"], "case": "lower", "nfkc": true, "collapse_spaces": true}},
     {"split": {"column": "name", "separator": " ", "into": ["first", "last"]}},
     {"regex_extract": {"column": "email", "pattern": "@(.+)$", "into": ["domain"]}},
     {"cast": {"age": "int"}},
     {"derive": {"name": "age_months", "expression": "age * 12"}},
     {"drop": ["email"]},
     {"dedupe": {"columns": ["name"]}}]

Model steps (``extract``, ``classify``, ``validate``, and ``normalize`` given a ``target`` or
``instructions``) are validated here too, but never run here: they call a language model, so
they run on the trusted side (``services.model_steps``), which cuts a pipeline into ``segments`` — runs of
deterministic steps for the sandbox, and model steps — applied in order::

    [{"extract": {"from": ["notes"], "fields": {"city": "the city named"}, "instructions": "..."}},
     {"classify": {"column": "notes", "into": "topic", "labels": ["billing", "support"]}},
     {"normalize": {"columns": ["country"], "target": {"France": "", "Germany": ""}}},
     {"validate": {"columns": ["city"], "instructions": "a real city name"}}]

``validate`` checks a pipeline when it is submitted (``PipelineError``: the step's index and
what is wrong); ``Pipeline.run`` applies it to one Arrow table. A step that fails on a row
rejects that row (its error names the step) and the rest go on. ``dedupe`` remembers the keys
it has seen across the batches of one ingestion. ``derive`` is a DuckDB expression evaluated
over the batch in a locked-down in-memory DuckDB (no file access, no extensions); it is
checked like a query (one SELECT, no file or table functions). Pipelines run in the ingest
sandbox (``data.jobs``), never in the server.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from runyard.data.types import ARROW_TYPES, COLUMN_TYPES, column_name_error

MAX_STEPS = 50
MAX_PATTERN = 1000  # characters of a regex_extract pattern
MAX_REGEX_INPUT = 10_000  # characters of a value regex_extract reads; a longer value rejects its row
MAX_EXPRESSION = 4000  # characters of a derive expression
MAX_INTO = 100
BATCH_TABLE = "batch"
CASES = ("lower", "upper", "title")

_STEP_OPTIONS: dict[str, frozenset[str]] = {
    "normalize": frozenset({"columns", "strip", "case", "nfkc", "collapse_spaces"}),
    "split": frozenset({"column", "separator", "into"}),
    "regex_extract": frozenset({"column", "pattern", "into"}),
    "derive": frozenset({"name", "expression"}),
    "dedupe": frozenset({"columns"}),
}
MODEL_STEP_OPTIONS: dict[str, frozenset[str]] = {
    "extract": frozenset({"from", "fields", "replace", "instructions", "provider", "model", "batch_size"}),
    "classify": frozenset({"column", "into", "labels", "instructions", "provider", "model", "batch_size"}),
    "normalize": frozenset({"columns", "target", "instructions", "provider", "model", "batch_size"}),
    "validate": frozenset({"columns", "instructions", "provider", "model", "batch_size"}),
}
# What makes a normalize step a model step: the deterministic one takes none of these.
MODEL_NORMALIZE_MARKERS = frozenset({"target", "instructions", "provider", "model", "batch_size"})
MAX_MODEL_BATCH = 200  # rows per model call
DEFAULT_MODEL_BATCH = 20
MAX_INSTRUCTIONS = 20_000  # characters
MAX_LABELS = 200
MAX_FIELDS = 200
STEP_KINDS = ("rename", "cast", "trim", "normalize", "split", "regex_extract", "derive", "drop", "dedupe",
              "extract", "classify", "validate")
_SPACES = re.compile(r"\s+")


class PipelineError(ValueError):
    """The pipeline is not valid: ``step`` is the index of the first bad step (None: the list)."""

    code = "invalid_pipeline"

    def __init__(self, step: int | None, message: str) -> None:
        super().__init__(f"step {step}: {message}" if step is not None else message)
        self.step = step
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": str(self), "step": self.step}


class StepFailed(Exception):
    """Raised by a step on one row's value: that row is rejected with this message."""


@dataclass
class Step:
    index: int
    kind: str
    args: Any
    compiled: Any = None
    model: bool = False  # a model step: run by the trusted side, never in the sandbox


@dataclass
class Outcome:
    table: pa.Table  # the rows that went through, in order
    rows: list[int]  # for each output row, its position in the input table
    failed: dict[int, dict[str, str]] = field(default_factory=dict)  # input position -> errors


# -- validation ---------------------------------------------------------------------------------
def _name(step: int, value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise PipelineError(step, f"{what} must be a column name (a string)")
    reason = column_name_error(value)
    if reason is not None:
        raise PipelineError(step, f"{what} {value!r}: {reason}")
    return value


def _names(step: int, value: Any, what: str, *, allow_empty: bool = False) -> list[str]:
    if not isinstance(value, list) or (not value and not allow_empty):
        raise PipelineError(step, f"{what} must be a non-empty list of column names")
    if len(value) > 1000:
        raise PipelineError(step, f"{what} lists at most 1000 columns")
    names = [_name(step, v, what) for v in value]
    if len(set(names)) != len(names):
        raise PipelineError(step, f"{what} names a column twice")
    return names


def _options(step: int, kind: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PipelineError(step, f"{kind} takes an object")
    unknown = sorted(set(value) - _STEP_OPTIONS[kind])
    if unknown:
        raise PipelineError(step, f"{kind} has no option {unknown[0]!r} (it takes {', '.join(sorted(_STEP_OPTIONS[kind]))})")
    return value


def _mapping(step: int, kind: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not value:
        raise PipelineError(step, f"{kind} takes a non-empty object of column: value")
    for key in value:
        _name(step, key, "a column")
    return value


def check_expression(expression: str) -> None:
    """Refuse a derive expression that is not one read-only expression over the batch."""
    from runyard.data.sql import QueryRejected, check_sql, referenced_datasets

    if "\x00" in expression or ";" in expression.replace("';'", ""):
        raise ValueError("an expression is not a statement (no ';')")
    sql = f"SELECT ({expression}) AS derived FROM {BATCH_TABLE}"
    try:
        check_sql(sql)
        tables = referenced_datasets(sql, "batch_ns")
    except QueryRejected as exc:
        raise ValueError(f"{exc.code}: {exc}") from None
    if any(name.casefold() != BATCH_TABLE for _, name in tables) or any(
            ns != "batch_ns" for ns, _ in tables):
        raise ValueError("an expression reads only the batch's own columns (no tables)")


def validate(raw: Any, *, first_index: int = 0) -> list[Step]:
    """The steps of ``raw``, or PipelineError (the step's index and what is wrong).
    ``first_index``: the index of ``raw``'s first step in the whole pipeline (a segment's)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise PipelineError(None, "a pipeline is a list of steps")
    if len(raw) > MAX_STEPS:
        raise PipelineError(None, f"a pipeline has at most {MAX_STEPS} steps (this one has {len(raw)})")
    steps: list[Step] = []
    for i, item in enumerate(raw, start=first_index):
        if not isinstance(item, dict) or len(item) != 1:
            raise PipelineError(i, "a step is an object with one key, its kind "
                                f"({', '.join(STEP_KINDS)})")
        kind, value = next(iter(item.items()))
        if kind not in STEP_KINDS:
            raise PipelineError(i, f"unknown step {kind!r} (known: {', '.join(STEP_KINDS)})")
        steps.append(_validate_step(i, kind, value))
    return steps


def segments(raw: Any, *, first_index: int = 0) -> list[tuple[bool, int, list[Any]]]:
    """A valid pipeline cut into runs: (is a model step, index of the first step, its raw
    steps). A model step is a run of its own; consecutive deterministic steps share one."""
    out: list[tuple[bool, int, list[Any]]] = []
    for step, item in zip(validate(raw, first_index=first_index), raw or [], strict=True):
        if not step.model and out and not out[-1][0]:
            out[-1][2].append(item)
        else:
            out.append((step.model, step.index, [item]))
    return out


def has_model_steps(raw: Any) -> bool:
    return any(step.model for step in validate(raw))


def _text(step: int, value: Any, what: str, *, limit: int = MAX_INSTRUCTIONS) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise PipelineError(step, f"{what} is a string of at most {limit} characters")
    return value


def _descriptions(step: int, value: Any, what: str) -> dict[str, str] | None:
    """``{name: description}`` (a list of names is read as names without descriptions)."""
    if value is None:
        return None
    if isinstance(value, list):
        value = dict.fromkeys(value, "")
    if not isinstance(value, dict) or not value or len(value) > MAX_FIELDS:
        raise PipelineError(step, f"{what} is a non-empty object of name: description (at most {MAX_FIELDS})")
    out: dict[str, str] = {}
    for name, description in value.items():
        _name(step, name, f"{what}'s name")
        if description is not None and (not isinstance(description, str) or len(description) > 2000):
            raise PipelineError(step, f"{what} {name!r}: a description is a string of at most 2000 characters")
        out[name] = description or ""
    return out


def _validate_model_step(i: int, kind: str, value: Any) -> Step:
    if not isinstance(value, dict):
        raise PipelineError(i, f"{kind} takes an object")
    allowed = MODEL_STEP_OPTIONS[kind]
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise PipelineError(i, f"{kind} has no option {unknown[0]!r} (it takes {', '.join(sorted(allowed))})")
    common: dict[str, Any] = {
        "instructions": _text(i, value.get("instructions"), f"{kind}'s instructions"),
        "provider": _text(i, value.get("provider"), f"{kind}'s provider", limit=200),
        "model": _text(i, value.get("model"), f"{kind}'s model", limit=200),
    }
    batch = value.get("batch_size", DEFAULT_MODEL_BATCH)
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_MODEL_BATCH:
        raise PipelineError(i, f"{kind}'s batch_size is a whole number of rows per model call, 1-{MAX_MODEL_BATCH}")
    common["batch_size"] = batch
    if kind == "extract":
        sources = None if value.get("from") is None else _names(i, value.get("from"), "extract's from")
        fields = _descriptions(i, value.get("fields"), "extract's fields")
        replace = value.get("replace", False)
        if not isinstance(replace, bool):
            raise PipelineError(i, "extract's replace is true or false")
        return Step(i, kind, {"from": sources, "fields": fields, "replace": replace, **common}, model=True)
    if kind == "classify":
        column = _name(i, value.get("column"), "classify's column")
        into = _name(i, value.get("into"), "classify's into")
        labels = value.get("labels")
        if not isinstance(labels, list) or len(labels) < 2 or len(labels) > MAX_LABELS or not all(
                isinstance(x, str) and x and len(x) <= 200 for x in labels):
            raise PipelineError(i, f"classify's labels are 2-{MAX_LABELS} non-empty strings (at most 200 characters)")
        if len(set(labels)) != len(labels):
            raise PipelineError(i, "classify's labels name a label twice")
        return Step(i, kind, {"column": column, "into": into, "labels": list(labels), **common}, model=True)
    if kind == "validate":
        columns = None if value.get("columns") is None else _names(i, value.get("columns"), "validate's columns")
        if not common["instructions"]:
            raise PipelineError(i, "validate needs instructions (what makes a row valid)")
        return Step(i, kind, {"columns": columns, **common}, model=True)
    columns = _names(i, value.get("columns"), "normalize's columns")
    target = _descriptions(i, value.get("target"), "normalize's target") if value.get("target") is not None \
        else None
    if target is None and not common["instructions"]:
        raise PipelineError(i, "a model normalize needs a target (the canonical values) or instructions")
    return Step(i, kind, {"columns": columns, "target": target, **common}, model=True)


def _validate_step(i: int, kind: str, value: Any) -> Step:
    if kind in ("extract", "classify", "validate") or (
            kind == "normalize" and isinstance(value, dict) and MODEL_NORMALIZE_MARKERS & set(value)):
        deterministic = set(value) & (_STEP_OPTIONS["normalize"] - {"columns"}) if kind == "normalize" else set()
        if deterministic:
            raise PipelineError(i, f"normalize with a target or instructions is a model step: it takes no "
                                f"{sorted(deterministic)[0]!r} (use a separate deterministic normalize)")
        return _validate_model_step(i, kind, value)
    if kind == "rename":
        mapping = _mapping(i, kind, value)
        targets = [_name(i, v, "a new name") for v in mapping.values()]
        if len(set(targets)) != len(targets):
            raise PipelineError(i, "rename gives two columns the same name")
        return Step(i, kind, dict(mapping))
    if kind == "cast":
        mapping = _mapping(i, kind, value)
        for column, target in mapping.items():
            if target not in COLUMN_TYPES:
                raise PipelineError(i, f"cast {column!r}: unknown type {target!r} (types: {', '.join(COLUMN_TYPES)})")
        return Step(i, kind, dict(mapping))
    if kind in ("trim", "drop"):
        if kind == "trim" and isinstance(value, dict):
            value = _options(i, "normalize", value).get("columns")
        return Step(i, kind, _names(i, value, f"{kind}'s columns"))
    if kind == "normalize":
        opts = _options(i, kind, value)
        columns = _names(i, opts.get("columns"), "normalize's columns")
        for flag in ("strip", "nfkc", "collapse_spaces"):
            if not isinstance(opts.get(flag, True), bool):
                raise PipelineError(i, f"normalize's {flag} is true or false")
        case = opts.get("case")
        if case is not None and case not in CASES:
            raise PipelineError(i, f"normalize's case is one of {', '.join(CASES)}")
        return Step(i, kind, {"columns": columns, "strip": opts.get("strip", True), "case": case,
                              "nfkc": opts.get("nfkc", True), "collapse_spaces": opts.get("collapse_spaces", True)})
    if kind == "split":
        opts = _options(i, kind, value)
        column = _name(i, opts.get("column"), "split's column")
        separator = opts.get("separator")
        if not isinstance(separator, str) or not separator or len(separator) > 100:
            raise PipelineError(i, "split's separator is a non-empty string (at most 100 characters)")
        into = _names(i, opts.get("into"), "split's into")
        if len(into) > MAX_INTO:
            raise PipelineError(i, f"split's into lists at most {MAX_INTO} columns")
        return Step(i, kind, {"column": column, "separator": separator, "into": into})
    if kind == "regex_extract":
        opts = _options(i, kind, value)
        column = _name(i, opts.get("column"), "regex_extract's column")
        pattern = opts.get("pattern")
        if not isinstance(pattern, str) or not pattern or len(pattern) > MAX_PATTERN:
            raise PipelineError(i, f"regex_extract's pattern is a non-empty string of at most {MAX_PATTERN} characters")
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise PipelineError(i, f"regex_extract's pattern is not a valid regular expression: {exc}") from None
        into = _names(i, opts.get("into"), "regex_extract's into")
        groups = compiled.groups or 1
        if len(into) != groups:
            raise PipelineError(i, f"regex_extract's pattern has {compiled.groups} group(s) but into names "
                                f"{len(into)} column(s)")
        return Step(i, kind, {"column": column, "pattern": pattern, "into": into}, compiled)
    if kind == "derive":
        opts = _options(i, kind, value)
        name = _name(i, opts.get("name"), "derive's name")
        expression = opts.get("expression")
        if not isinstance(expression, str) or not expression.strip() or len(expression) > MAX_EXPRESSION:
            raise PipelineError(i, f"derive's expression is a non-empty string of at most {MAX_EXPRESSION} characters")
        try:
            check_expression(expression)
        except ValueError as exc:
            raise PipelineError(i, f"derive's expression: {exc}") from None
        return Step(i, kind, {"name": name, "expression": expression})
    # dedupe
    if value is None or value == {}:
        return Step(i, kind, {"columns": None})
    opts = _options(i, kind, value)
    columns = opts.get("columns")
    return Step(i, kind, {"columns": None if columns is None else _names(i, columns, "dedupe's columns")})


# -- running ------------------------------------------------------------------------------------
class Pipeline:
    """Validated steps, applied batch after batch (``dedupe`` remembers keys across batches)."""

    def __init__(self, raw: Any, *, first_index: int = 0) -> None:
        self.steps = validate(raw, first_index=first_index)
        for step in self.steps:
            if step.model:
                raise PipelineError(step.index, f"{step.kind} is a model step: it runs on the trusted side "
                                    "(services.model_steps), not in the sandbox")
        self._seen: set[bytes] = set()
        self._duckdb: Any = None

    def __bool__(self) -> bool:
        return bool(self.steps)

    def run(self, table: pa.Table | pa.RecordBatch) -> Outcome:
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        rows = list(range(table.num_rows))
        failed: dict[int, dict[str, str]] = {}
        for step in self.steps:
            table, bad, keep = getattr(self, f"_{step.kind}")(step, table)
            if bad:
                for pos, message in bad.items():
                    failed[rows[pos]] = {"pipeline": f"step {step.index} ({step.kind}): {message}"}
                if keep is None:
                    keep = [p not in bad for p in range(table.num_rows)]
                else:
                    keep = [k and p not in bad for p, k in enumerate(keep)]
            if keep is not None:
                table = table.filter(pa.array(keep, pa.bool_()))
                rows = [r for r, k in zip(rows, keep, strict=True) if k]
        return Outcome(table, rows, failed)

    def close(self) -> None:
        if self._duckdb is not None:
            self._duckdb.close()
            self._duckdb = None

    # Each step: (table, {position: message} of rows it fails, keep mask or None).
    @staticmethod
    def _column(step: Step, table: pa.Table, name: str) -> pa.ChunkedArray:
        if name not in table.column_names:
            raise _missing(step, name, table)
        return table.column(name)

    def _rename(self, step: Step, table: pa.Table) -> tuple[pa.Table, dict[int, str], None]:
        for old in step.args:
            self._column(step, table, old)
        names = [step.args.get(n, n) for n in table.column_names]
        if len(set(names)) != len(names):
            raise StepError(step, "rename would give two columns the same name")
        return table.rename_columns(names), {}, None

    def _drop(self, step: Step, table: pa.Table) -> tuple[pa.Table, dict[int, str], None]:
        return table.drop_columns([c for c in step.args if c in table.column_names]), {}, None

    def _cast(self, step: Step, table: pa.Table) -> tuple[pa.Table, dict[int, str], None]:
        bad: dict[int, str] = {}
        for column, kind in step.args.items():
            array, errors = cast_array(self._column(step, table, column).combine_chunks(), kind)
            for pos, message in errors.items():
                bad.setdefault(pos, f"column {column!r}: {message}")
            table = _set(table, column, array)
        return table, bad, None

    def _trim(self, step: Step, table: pa.Table) -> tuple[pa.Table, dict[int, str], None]:
        for column in step.args:
            array = self._column(step, table, column)
            if _is_text(array.type):
                table = _set(table, column, pc.utf8_trim_whitespace(array))
        return table, {}, None

    def _normalize(self, step: Step, table: pa.Table) -> tuple[pa.Table, dict[int, str], None]:
        opts = step.args
        for column in opts["columns"]:
            array = self._column(step, table, column)
            if not _is_text(array.type):
                continue
            if opts["nfkc"]:
                array = pa.array([None if v is None else unicodedata.normalize("NFKC", v)
                                  for v in array.to_pylist()], pa.string())
            if opts["collapse_spaces"]:
                array = pc.replace_substring_regex(array, r"\s+", " ")
            if opts["strip"]:
                array = pc.utf8_trim_whitespace(array)
            if opts["case"] == "lower":
                array = pc.utf8_lower(array)
            elif opts["case"] == "upper":
                array = pc.utf8_upper(array)
            elif opts["case"] == "title":
                array = pc.utf8_title(array)
            table = _set(table, column, array)
        return table, {}, None

    def _split(self, step: Step, table: pa.Table) -> tuple[pa.Table, dict[int, str], None]:
        opts = step.args
        array = self._column(step, table, opts["column"])
        into: list[str] = opts["into"]
        out: list[list[Any]] = [[] for _ in into]
        bad: dict[int, str] = {}
        for pos, value in enumerate(array.to_pylist()):
            if value is not None and not isinstance(value, str):
                bad[pos] = f"column {opts['column']!r} holds {type(value).__name__}, not text"
                value = None
            pieces = value.split(opts["separator"], len(into) - 1) if value is not None else []
            for k in range(len(into)):
                out[k].append(pieces[k] if k < len(pieces) else None)
        for name, values in zip(into, out, strict=True):
            table = _set(table, name, pa.array(values, pa.string()))
        return table, bad, None

    def _regex_extract(self, step: Step, table: pa.Table) -> tuple[pa.Table, dict[int, str], None]:
        opts = step.args
        array = self._column(step, table, opts["column"])
        compiled: re.Pattern[str] = step.compiled
        into: list[str] = opts["into"]
        out: list[list[Any]] = [[] for _ in into]
        bad: dict[int, str] = {}
        for pos, value in enumerate(array.to_pylist()):
            groups: tuple[Any, ...] = ()
            if value is not None:
                if not isinstance(value, str):
                    bad[pos] = f"column {opts['column']!r} holds {type(value).__name__}, not text"
                elif len(value) > MAX_REGEX_INPUT:
                    bad[pos] = f"the value is longer than {MAX_REGEX_INPUT} characters"
                else:
                    match = compiled.search(value)
                    if match is not None:
                        groups = match.groups() if compiled.groups else (match.group(0),)
            for k in range(len(into)):
                out[k].append(groups[k] if k < len(groups) else None)
        for name, values in zip(into, out, strict=True):
            table = _set(table, name, pa.array(values, pa.string()))
        return table, bad, None

    def _derive(self, step: Step, table: pa.Table) -> tuple[pa.Table, dict[int, str], None]:
        import duckdb

        sql = f"SELECT ({step.args['expression']}) AS derived FROM {BATCH_TABLE}"
        conn = self._connection()
        bad: dict[int, str] = {}

        def evaluate(part: pa.Table) -> pa.ChunkedArray:
            conn.register(BATCH_TABLE, part)
            try:
                result = conn.sql(sql).to_arrow_table()
            finally:
                conn.unregister(BATCH_TABLE)
            if result.num_rows != part.num_rows:
                raise StepError(step, "the expression must give one value per row (no aggregates)")
            return result.column(0)

        try:
            values = evaluate(table)
        except duckdb.Error as first:
            if not table.num_rows:
                raise StepError(step, _duck_message(first)) from None
            # Find the rows it fails on, one by one; the rest get their values.
            pieces: list[pa.Array] = []
            kind: pa.DataType | None = None
            for pos in range(table.num_rows):
                try:
                    piece = evaluate(table.slice(pos, 1)).combine_chunks()
                    kind = kind or (piece.type if not pa.types.is_null(piece.type) else None)
                    pieces.append(piece)
                except duckdb.Error as exc:
                    bad[pos] = _duck_message(exc)
                    pieces.append(None)  # type: ignore[arg-type]
            kind = kind or pa.null()
            values = pa.chunked_array([pa.nulls(1, kind) if p is None else p.cast(kind) for p in pieces], type=kind)
        return _set(table, step.args["name"], values), bad, None

    def _dedupe(self, step: Step, table: pa.Table) -> tuple[pa.Table, dict[int, str], list[bool]]:
        columns = step.args["columns"] or list(table.column_names)
        for c in columns:
            self._column(step, table, c)
        keys = table.select(columns).to_pylist()
        keep: list[bool] = []
        for row in keys:
            digest = hashlib.blake2b(orjson.dumps([row[c] for c in columns], default=str,
                                                  option=orjson.OPT_NON_STR_KEYS),
                                     digest_size=16, person=f"s{step.index}".encode()).digest()
            if digest in self._seen:
                keep.append(False)
            else:
                self._seen.add(digest)
                keep.append(True)
        return table, {}, keep

    def _connection(self) -> Any:
        if self._duckdb is None:
            import duckdb

            conn = duckdb.connect(":memory:", config={"autoload_known_extensions": False,
                                                      "autoinstall_known_extensions": False, "threads": 1})
            conn.execute("SET TimeZone = 'UTC'")
            conn.execute("SET enable_external_access = false")
            conn.execute("SET lock_configuration = true")
            self._duckdb = conn
        return self._duckdb


class StepError(Exception):
    """A step cannot run on the batch at all (a column it names is missing): the ingestion fails."""

    def __init__(self, step: Step, message: str) -> None:
        super().__init__(f"pipeline step {step.index} ({step.kind}): {message}")
        self.step = step.index


def _missing(step: Step, name: str, table: pa.Table) -> StepError:
    shown = ", ".join(table.column_names[:20])
    return StepError(step, f"no column {name!r} (the batch has: {shown})")


def _duck_message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:500]


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _set(table: pa.Table, name: str, values: pa.Array | pa.ChunkedArray) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, values)
    return table.append_column(name, values)


# -- cast ---------------------------------------------------------------------------------------
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


def _from_text(text: str, kind: str) -> Any:
    from runyard.data import coerce

    value = text.strip()
    if kind == "int":
        try:
            return coerce._to_int(int(value))
        except ValueError:
            raise ValueError(f"{_show(text)} is not an integer") from None
    if kind == "float":
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{_show(text)} is not a number") from None
    if kind == "bool":
        low = value.lower()
        if low in _TRUE or low in _FALSE:
            return low in _TRUE
        raise ValueError(f"{_show(text)} is not a boolean")
    if kind == "string":
        return text
    if kind == "json":
        return orjson.dumps(text).decode()
    return coerce._ONE[kind](text)  # date, timestamp, geo: coerce's own parsers


def _show(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def cast_array(array: pa.Array, kind: str) -> tuple[pa.Array, dict[int, str]]:
    """``array`` as runyard type ``kind``: the values, and a message for each that does not convert."""
    from runyard.data import coerce

    target = ARROW_TYPES[kind]
    if array.type == target and kind != "json":
        return array, {}
    if kind != "json" and not (kind == "string" and pa.types.is_floating(array.type)):
        try:
            if _is_text(array.type) and kind in ("int", "float"):
                return pc.cast(pc.utf8_trim_whitespace(array), target), {}
            if not _is_text(array.type) or kind in ("string",):
                return pc.cast(array, target), {}
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            pass
    out: list[Any] = []
    bad: dict[int, str] = {}
    one = coerce._ONE[kind]
    for pos, value in enumerate(array.to_pylist()):
        try:
            if value is None:
                out.append(None)
            elif isinstance(value, str):
                out.append(_from_text(value, kind))
            elif kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
                out.append(float(value))
            elif kind == "int" and isinstance(value, float) and value.is_integer():
                out.append(int(value))
            elif kind == "timestamp" and isinstance(value, date) and not isinstance(value, datetime):
                out.append(datetime(value.year, value.month, value.day))
            else:
                out.append(one(value))
        except (ValueError, TypeError, OverflowError) as exc:
            out.append(None)
            bad[pos] = str(exc)
    try:
        return pa.array(out, target), bad
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        return pa.nulls(len(out), target), dict.fromkeys(range(len(out)), f"cannot hold the values: {exc}")
