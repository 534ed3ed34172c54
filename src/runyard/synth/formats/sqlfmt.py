"""SQL INSERT statements for PostgreSQL, MySQL or SQLite, with an optional CREATE TABLE."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..generators.strings import concat_bytes
from .base import Encoder
from .literals import sql_literals

DIALECTS = ("postgres", "mysql", "sqlite")
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def column_type(dtype: pa.DataType, dialect: str) -> str:
    if pa.types.is_integer(dtype):
        return "BIGINT" if dialect != "sqlite" else "INTEGER"
    if pa.types.is_floating(dtype):
        return {"postgres": "DOUBLE PRECISION", "mysql": "DOUBLE", "sqlite": "REAL"}[dialect]
    if pa.types.is_boolean(dtype):
        return "BOOLEAN"
    if pa.types.is_date(dtype):
        return "DATE"
    if pa.types.is_timestamp(dtype):
        return "DATETIME" if dialect == "mysql" else "TIMESTAMP"
    if pa.types.is_time(dtype):
        return "TIME"
    return "TEXT"


class SqlEncoder(Encoder):
    name = "sql"
    media_type = "application/sql; charset=utf-8"
    extension = "sql"
    option_names = frozenset({"dialect", "table", "rows_per_statement", "create_table"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dialect = self.options.get("dialect", "postgres")
        if self.dialect not in DIALECTS:
            raise self.option_error("dialect", f"must be one of {', '.join(DIALECTS)}")
        default_table = re.sub(r"[^A-Za-z0-9_]", "_", self.table_name).strip("_") or "generated"
        if default_table[0].isdigit():
            default_table = "t_" + default_table
        self.table = self.options.get("table", default_table)
        if not isinstance(self.table, str) or not _TABLE_NAME.match(self.table):
            raise self.option_error("table", "must be an identifier (letters, digits, _)")
        rows = self.options.get("rows_per_statement", 500)
        if isinstance(rows, bool) or not isinstance(rows, int) or not 1 <= rows <= 100_000:
            raise self.option_error("rows_per_statement", "must be an integer from 1 to 100000")
        self.rows_per_statement = rows
        create = self.options.get("create_table", True)
        if not isinstance(create, bool):
            raise self.option_error("create_table", "must be true or false")
        self.create_table = create
        quote = "`" if self.dialect == "mysql" else '"'
        self.quote = lambda name: f"{quote}{name}{quote}"
        columns = ", ".join(self.quote(f.name) for f in self.schema)
        self.insert = f"INSERT INTO {self.quote(self.table)} ({columns}) VALUES\n"

    def header(self) -> bytes:
        if not self.create_table:
            return b""
        columns = ",\n".join(f"  {self.quote(f.name)} {column_type(f.type, self.dialect)}" for f in self.schema)
        return f"CREATE TABLE {self.quote(self.table)} (\n{columns}\n);\n".encode()

    def encode(self, batch: pa.RecordBatch, row_start: int) -> bytes:
        n = batch.num_rows
        if n == 0:
            return b""
        parts: list[Any] = ["("]
        for i, column in enumerate(batch.columns):
            if i:
                parts.append(", ")
            parts.append(sql_literals(column, backslash_escapes=self.dialect == "mysql"))
        parts.append(")")
        rows = pc.binary_join_element_wise(*parts, "")
        # Statement boundaries follow the global row number, not the chunk.
        position = (np.arange(row_start, row_start + n) % self.rows_per_statement)
        global_rows = np.arange(row_start, row_start + n)
        last = (position == self.rows_per_statement - 1) | (global_rows == self.count - 1)
        lead = np.where(position == 0, self.insert, "")
        tail = np.where(last, ";\n", ",\n")
        framed = pc.binary_join_element_wise(pa.array(lead, pa.string()), rows, pa.array(tail, pa.string()), "")
        return concat_bytes(framed)
