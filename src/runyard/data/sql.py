"""Read-only SQL over datasets, run by DuckDB over the datasets' Parquet parts.

Three layers keep a query to the datasets it names, each enough on its own for what it covers:

1. ``check_sql`` parses the query with DuckDB's own parser (``extract_statements`` and
   ``json_serialize_sql``): exactly one SELECT; no table function but a few generators; no function
   that reads files, the network, settings or variables; no file path in FROM (DuckDB would read it
   through a hidden ``read_csv``); no catalog-qualified or system tables.
2. The connection ``run_query`` opens allows file access to exactly the given part files
   (``allowed_paths`` with ``enable_external_access=false``), loads and installs no extension, and locks
   its configuration before any view exists, so no SQL can lift a limit or read another file.
   Note that ``allowed_paths`` lets DuckDB *write* those files too (``COPY ... (use_tmp_file false)``
   would): that is why layer 1 refuses every statement but SELECT, and layer 3 makes the parts read-only.
3. The run sandbox around the child process (Landlock: read the parts, write the output directory).

Datasets are views ``"namespace"."dataset"`` over ``read_parquet([...], union_by_name=true)``; each
column is cast to its current type, so parts written before a column was added or widened read as
the dataset reads now. Building a view reads only the parts' footers (no statistics scan), so a query
costs what the same query over the Parquet files would.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from runyard.data.results import ResultFormat, ResultWriter, Sink, column_type
from runyard.data.types import ENTITY_ID, HIDDEN_COLUMNS, INGESTED_AT, INGESTION_ID, ROW_ID, Column

MAX_QUERY_CHARS = 100_000
DEFAULT_JSON_LIMIT = 10_000  # rows in a JSON result when the caller gives no limit
BATCH_ROWS = 65_536

# The only table functions a query may call: generators that read nothing outside the query.
ALLOWED_TABLE_FUNCTIONS = frozenset(
    {"range", "generate_series", "unnest", "json_each", "json_tree", "repeat", "repeat_row"}
)
# Functions refused wherever they are called (also as a scalar or a method: ``'HOME'.getenv()``):
# they read files, the network, settings, variables, view definitions (which hold the parts' paths),
# or run SQL text the check never saw.
FORBIDDEN_FUNCTIONS = frozenset(
    {
        "getenv", "current_setting", "getvariable", "pg_get_viewdef", "write_log", "glob",
        "sniff_csv", "query", "query_table", "json_execute_serialized_sql", "which_secret",
        "enable_logging", "disable_logging", "truncate_duckdb_logs", "checkpoint", "force_checkpoint",
        "enable_profiling", "disable_profiling", "histogram", "histogram_values", "summary",
        "delta_scan", "arrow_scan", "arrow_scan_dumb", "pandas_scan", "python_map_function",
        "python_arrow_scan", "seq_scan", "icu_calendar_names", "pg_timezone_names",
        "test_all_types", "test_vector_types", "add_grammar_extension", "remove_grammar_extension",
        "create_external_resource", "register_external_resource", "register_external_resource_type",
        "destroy_external_resource", "deregister_external_resource", "sql_auto_complete",
        "load_aws_credentials", "postgres_query", "mysql_query", "sqlite_scan",
    }
)
FORBIDDEN_PREFIXES = (
    "read_", "duckdb_", "pragma_", "parquet_", "iceberg_", "delta_", "ducklake_", "postgres_", "mysql_",
    "sqlite_", "excel_", "spatial_", "st_read", "httpfs_", "s3_", "azure_", "gcs_",
)
SYSTEM_SCHEMAS = frozenset({"information_schema", "pg_catalog"})
# DuckDB reads ``system.x`` / ``temp.x`` / ``memory.x`` as a catalog, so a namespace with one of these
# names cannot be told apart in SQL; the dataset layer should refuse such namespace names.
RESERVED_NAMESPACES = frozenset({"system", "temp", "memory", *SYSTEM_SCHEMAS})

_DUCKDB_TYPES: dict[str, str] = {
    "int": "BIGINT",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMPTZ",
    "string": "VARCHAR",
    "json": "JSON",
    "geo": "STRUCT(lat DOUBLE, lon DOUBLE)",
}
_METADATA_TYPES: dict[str, str] = {ROW_ID: "BIGINT", INGESTION_ID: "VARCHAR", INGESTED_AT: "TIMESTAMPTZ",
                                   ENTITY_ID: "BIGINT"}

# Settings no query needs changed. Extensions: none loaded or installed behind the query's back;
# Python replacement scans off, so no name in a query reads a Python object of this process.
_BASE_CONFIG: dict[str, Any] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "python_enable_replacements": False,
}


class QueryError(Exception):
    """A query that cannot run or did not finish; ``code`` is stable for the API."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class QueryRejected(QueryError):
    """Refused before it ran: not read-only SQL, a forbidden function or table, an unknown dataset."""


class QueryFailed(QueryError):
    """Ran and failed: ``query_error`` (binder, conversion, ...), ``query_memory_limit``."""


class QueryTimeout(QueryFailed):
    def __init__(self, timeout_s: float) -> None:
        super().__init__("query_timeout", f"the query ran longer than {timeout_s:g} s and was stopped")


@dataclass
class DatasetSource:
    """One dataset snapshot a query may read: its parts (absolute paths) and current columns."""

    namespace: str
    name: str
    paths: list[str]
    columns: list[Column]
    snapshot: int


@dataclass
class QueryOutcome:
    columns: list[dict[str, str]]
    rows_written: int
    truncated: bool
    last_id: int | None  # ``_id`` of the last row written, when the result has an int ``_id`` column
    elapsed_ms: int
    explain: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "rows_written": self.rows_written,
            "truncated": self.truncated,
            "last_id": self.last_id,
            "elapsed_ms": self.elapsed_ms,
            "explain": self.explain,
        }


@dataclass(frozen=True)
class _Checked:
    sql: str  # the one statement, without a trailing semicolon
    tables: tuple[tuple[str | None, str], ...]  # (schema or None, name) of every table it reads


# --- checking ---------------------------------------------------------------------------------------------

_parser_lock = threading.Lock()
_parser_conn: tuple[int, duckdb.DuckDBPyConnection] | None = None


def _parser() -> duckdb.DuckDBPyConnection:
    """A connection that only parses: no file access, configuration locked (it never sees a dataset).
    One per process: a connection made before a fork is not used after it."""
    global _parser_conn
    if _parser_conn is None or _parser_conn[0] != os.getpid():
        conn = duckdb.connect(":memory:", config={**_BASE_CONFIG, "threads": 1, "memory_limit": "256MB"})
        conn.execute("SET enable_external_access = false")
        conn.execute("SET lock_configuration = true")
        _parser_conn = (os.getpid(), conn)
    return _parser_conn[1]


def check_sql(query: str) -> str:
    """The query's one SELECT statement, or QueryRejected (``invalid_sql``, ``multiple_statements``,
    ``read_only_sql``, ``forbidden_function``, ``forbidden_table``, ``unsupported_sql``, ``query_too_long``)."""
    return _check(query).sql


def referenced_datasets(query: str, default_namespace: str | None) -> list[tuple[str, str]]:
    """The ``(namespace, dataset)`` pairs the query reads, in order of first mention, CTE names left
    out; a bare name is a dataset of ``default_namespace`` (QueryRejected ``unknown_dataset`` if None).
    Names are as written: DuckDB matches identifiers case-insensitively."""
    return _resolve(_check(query).tables, default_namespace)


def _resolve(tables: tuple[tuple[str | None, str], ...], default_namespace: str | None) -> list[tuple[str, str]]:
    out: dict[tuple[str, str], None] = {}
    for schema, name in tables:
        if schema is None:
            if default_namespace is None:
                raise QueryRejected(
                    "unknown_dataset", f'"{name}" has no namespace: write it as "namespace"."{name}"'
                )
            schema = default_namespace
        out[(schema, name)] = None
    return list(out)


def _check(query: str) -> _Checked:
    if not isinstance(query, str) or not query.strip():
        raise QueryRejected("invalid_sql", "the query is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise QueryRejected("query_too_long", f"a query is at most {MAX_QUERY_CHARS} characters")
    if "\x00" in query:
        raise QueryRejected("invalid_sql", "the query holds a NUL character")
    with _parser_lock:
        conn = _parser()
        try:
            statements = conn.extract_statements(query)
        except duckdb.Error as exc:
            raise QueryRejected("invalid_sql", _error_text(exc)) from None
        if not statements:
            raise QueryRejected("invalid_sql", "the query holds no statement")
        if len(statements) > 1:
            raise QueryRejected("multiple_statements", "a query is one SELECT statement")
        statement = statements[0]
        if statement.type != duckdb.StatementType.SELECT:
            kind = statement.type.name
            hint = " (ask for the plan with the explain flag)" if kind == "EXPLAIN" else ""
            raise QueryRejected("read_only_sql", f"only SELECT queries run here, not {kind}{hint}")
        sql = statement.query.strip().rstrip(";").rstrip()
        serialized = conn.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0]
    tree = orjson.loads(serialized)
    if tree.get("error"):
        if tree.get("error_type") == "parser":
            raise QueryRejected("invalid_sql", str(tree.get("error_message")))
        # DuckDB cannot describe this SELECT (a PIVOT inside it): refuse what cannot be checked.
        raise QueryRejected("unsupported_sql", f"this query cannot be checked: {tree.get('error_message')}")
    walker = _Walker(sql.encode())
    walker.walk(tree["statements"], frozenset())
    # The parser tree is the check; scanning the text for calls too guards against a node kind the
    # walk does not know carrying a call somewhere. ``WITH summary(n) AS`` and ``AS query(a, b)`` look
    # like calls to the scan: names the tree declares as a CTE or an alias are not.
    for name in _called_names(sql):
        if name.casefold() not in walker.declared:
            _check_function(name)
    return _Checked(sql=sql, tables=tuple(dict.fromkeys(walker.tables)))


def _check_function(name: str) -> None:
    low = name.lower()
    if low in FORBIDDEN_FUNCTIONS or low.startswith(FORBIDDEN_PREFIXES):
        raise QueryRejected(
            "forbidden_function", f"{name}() is not available in dataset queries (it reads outside the datasets)"
        )


class _Walker:
    """Walks DuckDB's JSON parse tree: function calls, table functions and table references."""

    def __init__(self, sql_bytes: bytes) -> None:
        self.sql_bytes = sql_bytes
        self.tables: list[tuple[str | None, str]] = []
        self.declared: set[str] = set()  # CTE names and aliases (casefolded)

    def walk(self, node: object, ctes: frozenset[str]) -> None:
        if isinstance(node, list):
            for item in node:
                self.walk(item, ctes)
            return
        if not isinstance(node, dict):
            return
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict) and cte_map.get("map"):
            # A WITH's names are visible in the node that holds it: its body, its other CTEs (and a
            # recursive CTE itself). DuckDB matches them case-insensitively, before any table.
            ctes = ctes | {str(entry["key"]).casefold() for entry in cte_map["map"]}
            self.declared |= ctes
        alias = node.get("alias")
        if isinstance(alias, str) and alias:
            self.declared.add(alias.casefold())
        kind = node.get("type")
        if node.get("class") == "FUNCTION":
            _check_function(str(node.get("function_name", "")))
        if kind == "TABLE_FUNCTION":
            name = str((node.get("function") or {}).get("function_name", "")).lower()
            if name not in ALLOWED_TABLE_FUNCTIONS:
                _check_function(name)
                raise QueryRejected(
                    "forbidden_function",
                    f"{name}() is not available in dataset queries; table functions allowed: "
                    + ", ".join(sorted(ALLOWED_TABLE_FUNCTIONS)),
                )
        elif kind == "BASE_TABLE":
            self._table(node, ctes)
        elif kind == "SHOW_REF":
            if node.get("show_type") == "SHOW_SPECIAL":
                raise QueryRejected("forbidden_table", "SHOW of the catalog is not available; list datasets instead")
            if node.get("query") is None and node.get("table_name"):
                self._table(node, ctes)
        for value in node.values():
            if isinstance(value, dict | list):
                self.walk(value, ctes)

    def _table(self, node: dict[str, Any], ctes: frozenset[str]) -> None:
        catalog = str(node.get("catalog_name") or "")
        schema = str(node.get("schema_name") or "")
        name = str(node.get("table_name") or "")
        path = (node.get("qualified_name") or {}).get("path") or []
        location = node.get("query_location")
        if isinstance(location, int) and 0 <= location < len(self.sql_bytes) and self.sql_bytes[location] == 39:
            # FROM 'some/file.csv': DuckDB would read the file (a replacement scan).
            raise QueryRejected("forbidden_function", "reading files is not available; query datasets by name")
        if catalog or len(path) > 2:
            raise QueryRejected("forbidden_table", f"name datasets as \"namespace\".\"dataset\", not {'.'.join(path)}")
        if schema.casefold() in SYSTEM_SCHEMAS:
            raise QueryRejected("forbidden_table", f"the {schema} catalog tables are not available")
        if not schema and name.casefold() in ctes:
            return
        if not name:
            raise QueryRejected("invalid_sql", "a table reference without a name")
        self.tables.append((schema or None, name))


def _called_names(sql: str) -> list[str]:
    """Every identifier (bare or quoted) directly followed by ``(``, skipping string literals
    ('...', E'...', $tag$...$tag$) and comments."""
    out: list[str] = []
    i, n = 0, len(sql)
    last_ident: str | None = None
    while i < n:
        c = sql[i]
        if c.isspace():
            i += 1
            continue
        if sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
            continue
        if c == "'" or (c in "eE" and i + 1 < n and sql[i + 1] == "'" and not _ident_char_before(sql, i)):
            backslash = c != "'"
            i = _string_end(sql, i + (1 if backslash else 0), backslash=backslash)
            last_ident = None
            continue
        if c == "$":
            j = i + 1
            while j < n and (sql[j].isalnum() or sql[j] == "_") and not sql[i + 1].isdigit():
                j += 1
            if j < n and sql[j] == "$":
                tag = sql[i : j + 1]
                k = sql.find(tag, j + 1)
                i = n if k < 0 else k + len(tag)
                last_ident = None
                continue
            i = max(j, i + 1)  # a parameter ($1, $name)
            last_ident = None
            continue
        if c == '"':
            j, parts = i + 1, []
            while j < n:
                if sql[j] == '"':
                    if j + 1 < n and sql[j + 1] == '"':
                        parts.append('"')
                        j += 2
                        continue
                    break
                parts.append(sql[j])
                j += 1
            last_ident = "".join(parts)
            i = j + 1
            continue
        if c.isalpha() or c == "_":
            j = i + 1
            while j < n and (sql[j].isalnum() or sql[j] in "_$"):
                j += 1
            last_ident = sql[i:j]
            i = j
            continue
        if c == "(" and last_ident is not None:
            out.append(last_ident)
        last_ident = None
        i += 1
    return out


def _ident_char_before(sql: str, i: int) -> bool:
    return i > 0 and (sql[i - 1].isalnum() or sql[i - 1] in "_$")


def _string_end(sql: str, start: int, *, backslash: bool) -> int:
    """The index after the string literal whose opening quote is at ``start``."""
    i, n = start + 1, len(sql)
    while i < n:
        c = sql[i]
        if backslash and c == "\\":
            i += 2
            continue
        if c == "'":
            if i + 1 < n and sql[i + 1] == "'":
                i += 2
                continue
            return i + 1
        i += 1
    return n


def _error_text(exc: BaseException) -> str:
    return str(exc).strip()


# --- running ---------------------------------------------------------------------------------------------


def quote_ident(name: str) -> str:
    if "\x00" in name:
        raise QueryRejected("invalid_sql", "a name holds a NUL character")
    return '"' + name.replace('"', '""') + '"'


def _quote_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _key(namespace: str, name: str) -> tuple[str, str]:
    return namespace.casefold(), name.casefold()


@dataclass
class _Limits:
    memory_limit_mb: int = 1024
    threads: int = 1
    temp_dir: str | None = None
    max_temp_mb: int = 1024


def _connect(sources: list[DatasetSource], limits: _Limits) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB locked down before any view exists: file access only to the parts of
    ``sources``, no extensions, configuration locked."""
    paths: list[str] = []
    for source in sources:
        if source.namespace.casefold() in RESERVED_NAMESPACES:
            raise QueryRejected(
                "unsupported_namespace", f'namespace "{source.namespace}" cannot be named in SQL (DuckDB reserves it)'
            )
        for path in source.paths:
            if not os.path.isabs(path):
                raise ValueError(f"a part path must be absolute: {path!r}")
            paths.append(path)
    config: dict[str, Any] = {
        **_BASE_CONFIG,
        "memory_limit": f"{int(limits.memory_limit_mb)}MB",
        "threads": max(1, int(limits.threads)),
        # No temp directory: nothing spills, a query that outgrows memory_limit fails.
        "temp_directory": limits.temp_dir or "",
        "max_temp_directory_size": f"{int(limits.max_temp_mb)}MB" if limits.temp_dir else "0MB",
    }
    conn = duckdb.connect(":memory:", config=config)
    try:
        conn.execute("SET TimeZone = 'UTC'")  # TIMESTAMPTZ values print and export as UTC
        if paths:
            # allowed_paths can only be set while external access is on; then it is the only way in.
            conn.execute(f"SET allowed_paths = [{', '.join(_quote_str(p) for p in dict.fromkeys(paths))}]")
        conn.execute("SET enable_external_access = false")
        conn.execute("SET lock_configuration = true")
    except BaseException:
        conn.close()
        raise
    return conn


def _create_views(conn: duckdb.DuckDBPyConnection, sources: list[DatasetSource], *, metadata: bool,
                  default_namespace: str | None) -> None:
    """One schema per namespace, one view per dataset; bare names then resolve in ``default_namespace``."""
    namespaces = dict.fromkeys(s.namespace for s in sources)
    if default_namespace is not None:
        namespaces[default_namespace] = None
    for namespace in namespaces:
        if namespace != "main":  # the in-memory database's own schema already exists
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(namespace)}")
    for source in sources:
        conn.execute(_view_sql(conn, source, metadata=metadata))
    if default_namespace is not None:
        conn.execute(f"USE memory.{quote_ident(default_namespace)}")


def _view_sql(conn: duckdb.DuckDBPyConnection, source: DatasetSource, *, metadata: bool) -> str:
    wanted: list[tuple[str, str]] = [(c, _METADATA_TYPES[c]) for c in HIDDEN_COLUMNS] if metadata else []
    wanted += [(c.name, _DUCKDB_TYPES[c.type]) for c in source.columns]
    target = f"{quote_ident(source.namespace)}.{quote_ident(source.name)}"
    if not source.paths:
        nulls = ", ".join(f"CAST(NULL AS {t}) AS {quote_ident(n)}" for n, t in wanted) or "NULL AS _empty"
        return f"CREATE VIEW {target} AS SELECT {nulls} WHERE false"
    files = ", ".join(_quote_str(p) for p in source.paths)
    # hive_partitioning off: a "key=value" directory in a part's path must not become a column.
    scan = f"read_parquet([{files}], union_by_name = true, hive_partitioning = false)"
    # Binding (not running) the scan gives the parts' union of columns from their footers alone.
    physical = conn.sql(f"SELECT * FROM {scan}").columns
    exact = set(physical)
    folded = {p.casefold(): p for p in physical}
    select = []
    for name, sql_type in wanted:
        found = name if name in exact else folded.get(name.casefold())
        expr = quote_ident(found) if found is not None else "NULL"
        if name == ENTITY_ID:  # a row no entity resolution wrote is its own entity
            expr = f"COALESCE({expr}, {quote_ident(ROW_ID)})"
        select.append(f"CAST({expr} AS {sql_type}) AS {quote_ident(name)}")
    if not select:
        select = ["NULL AS _empty"]
    return f"CREATE VIEW {target} AS SELECT {', '.join(select)} FROM {scan}"


class _Watchdog:
    """Interrupts the connection's running statement once ``timeout_s`` has passed, and again every
    100 ms after that (an interrupt between two statements would be lost)."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, timeout_s: float) -> None:
        self.conn = conn
        self.timeout_s = timeout_s
        self.fired = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sql-watchdog", daemon=True)

    def _run(self) -> None:
        if self._stop.wait(self.timeout_s):
            return
        self.fired.set()
        while not self._stop.is_set():
            self.conn.interrupt()
            self._stop.wait(0.1)

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _failure(exc: BaseException, timed_out: bool, timeout_s: float, sources: list[DatasetSource]) -> QueryError:
    if timed_out:
        return QueryTimeout(timeout_s)
    text = _error_text(exc)
    for source in sources:  # where the data dir keeps the parts is not the caller's business
        for number, path in enumerate(source.paths, 1):
            text = text.replace(path, f"<{source.namespace}.{source.name} part {number}>")
    if isinstance(exc, duckdb.OutOfMemoryException) or "Out of Memory Error" in text:
        return QueryFailed("query_memory_limit", f"the query needs more memory than it may use: {text}")
    if isinstance(exc, duckdb.InterruptException) or "INTERRUPT Error" in text:
        return QueryFailed("query_interrupted", "the query was interrupted")
    if isinstance(exc, duckdb.PermissionException) or "Permission Error" in text:
        return QueryRejected("forbidden_function", f"the query reached outside its datasets: {text}")
    return QueryFailed("query_error", text)


def run_query(
    query: str | None,
    sources: list[DatasetSource],
    *,
    select_all: DatasetSource | None = None,
    default_namespace: str | None = None,
    include_metadata: bool = False,
    limit: int | None = None,
    offset_id: int | None = None,
    memory_limit_mb: int = 1024,
    threads: int = 1,
    temp_dir: str | None = None,
    max_temp_mb: int = 1024,
    timeout_s: float = 30.0,
    explain: bool = False,
    out: Sink | None = None,
    format: ResultFormat = "json",
) -> QueryOutcome:
    """Run ``query`` over ``sources`` (or, with ``select_all``, every row of that dataset with
    ``_id > offset_id`` in ``_id`` order) and write the result to ``out`` in ``format``.

    ``limit`` caps the rows written (JSON: 10,000 when None); ``truncated`` says more rows existed and
    ``last_id`` is the ``_id`` to pass as the next ``offset_id``. With ``explain`` nothing runs or is
    written: the outcome's ``explain`` holds the SQL, the snapshots read and DuckDB's plan.
    Raises QueryRejected before running, QueryFailed/QueryTimeout after."""
    started = time.monotonic()
    if (query is None) == (select_all is None):
        raise ValueError("give either a query or select_all")
    if format == "json" and limit is None:
        limit = DEFAULT_JSON_LIMIT
    if limit is not None and limit < 0:
        raise ValueError("limit must be >= 0")
    hidden: frozenset[str] = frozenset()
    if query is not None:
        checked = _check(query)
        by_key = {_key(s.namespace, s.name): s for s in sources}
        used: list[DatasetSource] = []
        for namespace, name in _resolve(checked.tables, default_namespace):
            source = by_key.get(_key(namespace, name))
            if source is None:
                raise QueryRejected("unknown_dataset", f'dataset "{namespace}"."{name}" is not available to this query')
            if source not in used:
                used.append(source)
        sql = checked.sql
        metadata = include_metadata
    else:
        assert select_all is not None
        used = [select_all]
        sql, hidden = _select_all_sql(select_all, include_metadata=include_metadata, offset_id=offset_id, limit=limit)
        metadata = True  # the cursor reads _id whether or not it is shown
    limits = _Limits(memory_limit_mb=memory_limit_mb, threads=threads, temp_dir=temp_dir, max_temp_mb=max_temp_mb)
    snapshots = {f"{s.namespace}.{s.name}": s.snapshot for s in used}
    conn = _connect(used, limits)
    try:
        with _Watchdog(conn, timeout_s) as dog:
            try:
                _create_views(conn, used, metadata=metadata, default_namespace=default_namespace)
                if explain:
                    return _explain(conn, sql, snapshots, hidden, started)
                if out is None:
                    raise ValueError("out is required unless explain")
                columns, written, truncated, last_id = _execute(conn, sql, fmt=format, out=out, limit=limit,
                                                                hidden=hidden)
            except QueryError:
                raise
            except (duckdb.Error, pa.ArrowException, OSError) as exc:
                raise _failure(exc, dog.fired.is_set(), timeout_s, used) from None
    finally:
        conn.close()
    return QueryOutcome(columns=columns, rows_written=written, truncated=truncated, last_id=last_id,
                        elapsed_ms=int((time.monotonic() - started) * 1000))


def _select_all_sql(source: DatasetSource, *, include_metadata: bool, offset_id: int | None,
                    limit: int | None) -> tuple[str, frozenset[str]]:
    names = [c.name for c in source.columns]
    if include_metadata:
        names = [*HIDDEN_COLUMNS, *names]
        hidden: frozenset[str] = frozenset()
    else:
        names = [ROW_ID, *names]
        hidden = frozenset({ROW_ID})  # read for the cursor, not written
    sql = f"SELECT {', '.join(quote_ident(n) for n in names)} FROM {quote_ident(source.namespace)}.{quote_ident(source.name)}"
    if offset_id is not None:
        sql += f" WHERE {quote_ident(ROW_ID)} > {int(offset_id)}"
    sql += f" ORDER BY {quote_ident(ROW_ID)}"
    if limit is not None:
        sql += f" LIMIT {int(limit) + 1}"  # one more row than written says whether the result is truncated
    return sql, hidden


@dataclass(frozen=True)
class _Shape:
    """The written columns of a result: which of DuckDB's it keeps and their (unique) names and types."""

    keep: list[int]
    names: list[str]
    columns: list[dict[str, str]]
    json_columns: frozenset[str]


def _shape(rel: duckdb.DuckDBPyRelation, hidden: frozenset[str]) -> _Shape:
    keep, names, columns, json_columns = [], [], [], set()
    taken: set[str] = set()
    for index, (name, sql_type) in enumerate(zip(rel.columns, [str(t) for t in rel.types], strict=True)):
        if name in hidden:
            continue
        unique, n = name, 0
        while unique in taken:  # SELECT a, a: JSON rows are objects, so the second becomes a_1
            n += 1
            unique = f"{name}_{n}"
        taken.add(unique)
        keep.append(index)
        names.append(unique)
        columns.append({"name": unique, "type": column_type(sql_type)})
        if sql_type.upper() == "JSON":
            json_columns.add(unique)
    return _Shape(keep, names, columns, frozenset(json_columns))


def _execute(conn: duckdb.DuckDBPyConnection, sql: str, *, fmt: str, out: Sink, limit: int | None,
             hidden: frozenset[str]) -> tuple[list[dict[str, str]], int, bool, int | None]:
    """Run ``sql`` (already checked) on a locked-down connection and stream its rows to ``out``."""
    rel = conn.sql(sql)
    if rel is None:
        raise QueryFailed("query_error", "the statement returned no rows")
    shape = _shape(rel, hidden)
    reader = rel.to_arrow_reader(BATCH_ROWS)
    schema: pa.Schema = reader.schema
    id_index = schema.get_field_index(ROW_ID)
    if id_index >= 0 and not pa.types.is_integer(schema.field(id_index).type):
        id_index = -1
    out_schema = pa.schema([schema.field(i).with_name(n) for i, n in zip(shape.keep, shape.names, strict=True)])
    reshape = shape.keep != list(range(len(schema))) or shape.names != schema.names
    written, truncated, last_id = 0, False, None
    writer = ResultWriter(fmt, out, shape.columns, shape.json_columns)
    try:
        for batch in reader:
            if batch.num_rows == 0:
                continue
            if limit is not None:
                room = limit - written
                if room <= 0:
                    truncated = True
                    break
                if batch.num_rows > room:
                    batch = batch.slice(0, room)
                    truncated = True
            if id_index >= 0:
                last_id = batch.column(id_index)[batch.num_rows - 1].as_py()
            if reshape:
                batch = pa.RecordBatch.from_arrays([batch.column(i) for i in shape.keep], schema=out_schema)
            writer.write(batch)
            written += batch.num_rows
            if truncated:
                break
        reader.close()  # stops the query when the limit cut it short
        writer.close(schema=out_schema, truncated=truncated, last_id=last_id)
    except BaseException:
        writer.abort()
        reader.close()
        raise
    return shape.columns, written, truncated, last_id


def _explain(conn: duckdb.DuckDBPyConnection, sql: str, snapshots: dict[str, int], hidden: frozenset[str],
             started: float) -> QueryOutcome:
    rel = conn.sql(sql)  # binds without running: the result's columns
    columns = _shape(rel, hidden).columns if rel is not None else []
    plan_rel = conn.sql(f"EXPLAIN {sql}")
    rows = plan_rel.fetchall() if plan_rel is not None else []
    plan = "\n".join(str(row[-1]) for row in rows)
    return QueryOutcome(
        columns=columns, rows_written=0, truncated=False, last_id=None,
        elapsed_ms=int((time.monotonic() - started) * 1000),
        explain={"sql": sql, "snapshots": snapshots, "plan": plan},
    )


@contextmanager
def open_locked(sources: list[DatasetSource], *, include_metadata: bool = False, default_namespace: str | None = None,
                memory_limit_mb: int = 1024, threads: int = 1, temp_dir: str | None = None,
                max_temp_mb: int = 1024) -> Iterator[duckdb.DuckDBPyConnection]:
    """The locked-down connection ``run_query`` uses, for tests that run SQL past ``check_sql``."""
    limits = _Limits(memory_limit_mb=memory_limit_mb, threads=threads, temp_dir=temp_dir, max_temp_mb=max_temp_mb)
    conn = _connect(sources, limits)
    try:
        _create_views(conn, sources, metadata=include_metadata, default_namespace=default_namespace)
        yield conn
    finally:
        conn.close()


__all__ = [
    "ALLOWED_TABLE_FUNCTIONS",
    "DEFAULT_JSON_LIMIT",
    "DatasetSource",
    "QueryError",
    "QueryFailed",
    "QueryOutcome",
    "QueryRejected",
    "QueryTimeout",
    "check_sql",
    "open_locked",
    "quote_ident",
    "referenced_datasets",
    "run_query",
]
