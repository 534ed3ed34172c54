"""formula: a DuckDB SQL expression over earlier fields of the same row.

Validation runs the expression over an empty table typed like the earlier fields, so
an unknown or later field is reported at parse time and the result type is known before
any row is generated. The DuckDB connection has no file system or network access:
a formula can only read the row it belongs to.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from ..options import Options
from .base import BlockContext, FieldGenerator

if TYPE_CHECKING:
    from ..template import Field

ROWS_VIEW = "__runyard_rows"
_MISSING_COLUMN = re.compile(r'Referenced column "([^"]+)" not found')
# Functions whose value changes between runs would break byte-identical output.
_NON_DETERMINISTIC = re.compile(
    r"\b(random|uuid|gen_random_uuid|uuidv4|uuidv7|setseed|now|today|current_timestamp|current_date|"
    r"current_time|get_current_time|get_current_timestamp|transaction_timestamp|nextval|currval)\b",
    re.IGNORECASE,
)
_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")


def connect() -> duckdb.DuckDBPyConnection:
    return duckdb.connect(":memory:", config={"enable_external_access": False, "threads": 1})


def normalize_type(dtype: pa.DataType) -> pa.DataType | None:
    """The column type the writers handle for a DuckDB result type, or None if unsupported."""
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        return pa.string()
    if pa.types.is_decimal(dtype) or pa.types.is_floating(dtype):
        return pa.float64()
    if pa.types.is_integer(dtype):
        return pa.int64()
    if pa.types.is_boolean(dtype) or pa.types.is_null(dtype):
        return dtype
    if pa.types.is_date(dtype):
        return pa.date32()
    if pa.types.is_timestamp(dtype):
        return pa.timestamp("s") if dtype.unit == "s" and dtype.tz is None else pa.timestamp("us")
    if pa.types.is_time(dtype):
        return pa.time64("us") if pa.types.is_time64(dtype) else pa.time32("s")
    return None


class Formula(FieldGenerator):
    name = "formula"

    def configure(self, opts: Options) -> None:
        self.expression = opts.str("expression").strip()
        if not self.expression:
            raise opts.error("expression", "must not be empty")
        unquoted = _STRING_LITERAL.sub("''", self.expression)
        found = _NON_DETERMINISTIC.search(unquoted)
        if found:
            raise opts.error("expression", f"uses {found.group(1)}(), which would make the output non-reproducible")
        self.sql = f"SELECT ({self.expression}) AS v FROM {ROWS_VIEW}"
        try:
            statements = duckdb.extract_statements(self.sql)
        except duckdb.Error as exc:
            raise opts.error("expression", f"is not valid SQL: {_first_line(exc)}") from None
        if len(statements) != 1:
            raise opts.error("expression", "must be a single expression")
        self.result_type: pa.DataType = pa.null()

    @property
    def arrow_type(self) -> pa.DataType:
        return self.result_type

    def generate(self, ctx: BlockContext) -> pa.Array:
        assert ctx.formula_runner is not None
        values = ctx.formula_runner(self.sql, ctx.columns, ctx.n)
        dtype = ctx.plan.shared.get(("formula-type", self.field), self.result_type)
        return values.cast(dtype) if values.type != dtype else values


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def check_expression(con: duckdb.DuckDBPyConnection, formula: Formula, earlier: dict[str, pa.DataType],
                     later: Sequence[str]) -> pa.DataType:
    """Bind the expression against typed empty columns; return its (normalised) type."""
    empty = pa.table({name: pa.array([], dtype) for name, dtype in earlier.items()}) if earlier else None
    if empty is None:
        empty = pa.table({"__runyard_none": pa.array([], pa.null())})
    con.register(ROWS_VIEW, empty)
    try:
        result = con.sql(formula.sql).to_arrow_table()
    except duckdb.BinderException as exc:
        missing = _MISSING_COLUMN.search(str(exc))
        if missing:
            name = missing.group(1)
            if name in later:
                raise formula.error(f"formula references field '{name}', which is defined after it; "
                                    "a formula can only use earlier fields", "expression") from None
            raise formula.error(f"formula references unknown field '{name}'", "expression") from None
        raise formula.error(f"invalid formula: {_first_line(exc)}", "expression") from None
    except duckdb.Error as exc:
        raise formula.error(f"invalid formula: {_first_line(exc)}", "expression") from None
    finally:
        con.unregister(ROWS_VIEW)
    dtype = normalize_type(result.schema.field(0).type)
    if dtype is None:
        raise formula.error(f"formula must produce a scalar value, not {result.schema.field(0).type}", "expression")
    return dtype


def validate_formulas(fields: Sequence[Field], types: dict[str, pa.DataType] | None = None) -> dict[str, pa.DataType]:
    """Check every formula against the fields before it; return each formula's type.

    ``types`` overrides the parse-time type of fields whose type is only known at plan
    time (references). At parse time the result is also stored on the generator.
    """
    resolved: dict[str, pa.DataType] = {}
    if not any(isinstance(f.generator, Formula) for f in fields):
        return resolved
    con = connect()
    try:
        earlier: dict[str, pa.DataType] = {}
        names = [f.name for f in fields]
        for i, f in enumerate(fields):
            gen = f.generator
            if isinstance(gen, Formula):
                dtype = check_expression(con, gen, earlier, names[i + 1 :])
                resolved[f.name] = dtype
                if types is None:
                    gen.result_type = dtype
                earlier[f.name] = dtype
            else:
                earlier[f.name] = (types or {}).get(f.name, gen.arrow_type)
    finally:
        con.close()
    return resolved


class FormulaRunner:
    """Evaluates formulas over block columns; one DuckDB cursor per thread."""

    def __init__(self) -> None:
        self._con = connect()
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._lock = threading.Lock()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            with self._lock:
                cur = self._con.cursor()
                self._cursors.append(cur)
            self._local.cursor = cur
        return cur

    def __call__(self, sql: str, columns: dict[str, pa.Array], n: int) -> pa.Array:
        cur = self._cursor()
        table = pa.table(columns) if columns else pa.table({"__runyard_none": pa.nulls(n)})
        cur.register(ROWS_VIEW, table)
        try:
            result = cur.sql(sql).to_arrow_table().column(0)
        finally:
            cur.unregister(ROWS_VIEW)
        return result.combine_chunks() if isinstance(result, pa.ChunkedArray) else result

    def close(self) -> None:
        with self._lock:
            for cur in self._cursors:
                cur.close()
            self._cursors.clear()
        self._con.close()
