"""Hot-path statements compiled once and run straight on the DB-API cursor.

SQLAlchemy compiles each statement here once, for the engine's dialect, and its own type
processors convert values both ways, so what is written or read is exactly what the
Core API would write or read. What is skipped is the per-execution machinery (cache key,
execution context, result objects), which on the hot path of a run (resolve the tool,
insert the run, record its end, read it back) costs several times the statement itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine

from runyard.store.rows import RowView

_Processor = Callable[[Any], Any] | None


class Prepared:
    """One compiled statement; ``result_columns`` name what a row holds (SELECT/RETURNING)."""

    def __init__(self, dialect: Dialect, statement: sa.Executable,
                 result_columns: Sequence[sa.Column] = ()) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self._dbapi_error: type[Exception] = dialect.dbapi.Error  # type: ignore[union-attr]
        # A lone statement on PostgreSQL runs in autocommit: a single statement is its own
        # transaction, so there is no BEGIN, COMMIT or reset-on-return ROLLBACK to send
        # (one round trip instead of two to four). SQLite connections are in autocommit
        # already (see store/db.py).
        self._autocommit = dialect.name == "postgresql"
        self._positional = bool(compiled.positional)
        defaults = {name: bind.effective_value for name, bind in compiled.binds.items()
                    if bind.callable is None and bind.value is not None}
        processors: dict[str, _Processor] = {
            name: _bind_shortcuts(bind.type.dialect_impl(dialect).bind_processor(dialect), bind.type)
            for name, bind in compiled.binds.items()}
        # (name, default, processor) in the order the driver takes them (qmark: positions).
        names = list(compiled.positiontup or []) if self._positional else list(compiled.binds)
        self._steps = [(name, defaults.get(name), processors[name]) for name in names]
        self._names = names
        self._keys = [c.key for c in result_columns]
        self._result: list[_Processor] = [
            _result_shortcuts(c.type.dialect_impl(dialect).result_processor(dialect, None), c.type)
            for c in result_columns]

    def params(self, values: Mapping[str, Any]) -> Any:
        # A value given (even None) wins over the statement's default; processors see
        # None too (JSON stores it as 'null').
        get = values.get
        converted = [proc(get(name, default)) if proc is not None else get(name, default)
                     for name, default, proc in self._steps]
        if self._positional:
            return converted
        return dict(zip(self._names, converted, strict=True))

    def row(self, raw: Sequence[Any]) -> RowView:
        return RowView({key: proc(value) if proc is not None else value
                        for key, proc, value in zip(self._keys, self._result, raw, strict=True)})

    # -- execution ---------------------------------------------------------------------------
    def execute(self, conn: Connection, values: Mapping[str, Any]) -> RowView | None:
        """Run inside ``conn``'s transaction; the first row (RETURNING/SELECT), if any."""
        rows = self._run(conn.connection.dbapi_connection, self.params(values), every=False)
        return rows[0] if rows else None

    def execute_all(self, conn: Connection, values: Mapping[str, Any]) -> list[RowView]:
        """Run inside ``conn``'s transaction; every row it returns."""
        return self._run(conn.connection.dbapi_connection, self.params(values), every=True)

    def execute_alone(self, engine: Engine, values: Mapping[str, Any]) -> RowView | None:
        """Run as its own transaction on a pooled connection; the first row, if any."""
        rows = self._alone(engine, self.params(values), every=False)
        return rows[0] if rows else None

    def execute_alone_all(self, engine: Engine, values: Mapping[str, Any]) -> list[RowView]:
        """Run as its own transaction on a pooled connection; every row it returns."""
        return self._alone(engine, self.params(values), every=True)

    def _alone(self, engine: Engine, params: Any, *, every: bool) -> list[RowView]:
        raw_conn = engine.raw_connection()
        dbapi_conn = raw_conn.dbapi_connection
        try:
            if not self._autocommit:
                return self._run(dbapi_conn, params, every=every)
            dbapi_conn.autocommit = True  # type: ignore[union-attr]
            try:
                return self._run(dbapi_conn, params, every=every)
            finally:
                try:
                    dbapi_conn.autocommit = False  # type: ignore[union-attr]
                except Exception:  # a broken connection: never hand it out in autocommit
                    raw_conn.invalidate()
        finally:
            raw_conn.close()

    def _run(self, dbapi_conn: Any, params: Any, *, every: bool) -> list[RowView]:
        """Execute; the rows it returns (only the first unless ``every``), none without result columns."""
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(self.sql, params)
            if not self._keys:
                return []
            raws = cursor.fetchall() if every else [cursor.fetchone()]
            return [self.row(raw) for raw in raws if raw is not None]
        except self._dbapi_error as exc:
            # The same exception types as through SQLAlchemy (IntegrityError, ...).
            raise sa.exc.DBAPIError.instance(self.sql, params, exc, self._dbapi_error) from exc
        finally:
            cursor.close()


def _bind_shortcuts(proc: _Processor, type_: Any) -> _Processor:
    """The processor, answering the values most runs carry (None; an empty JSON object)
    from what it gave for them once: a run's row has several JSON columns, most of them
    null or ``{}``, and each ``json.dumps`` costs more than the lookup."""
    if proc is None:
        return None
    none = proc(None)
    if not isinstance(type_, sa.JSON):
        return lambda value: none if value is None else proc(value)
    empty = proc({})
    return lambda value: none if value is None else (empty if type(value) is dict and not value else proc(value))


def _result_shortcuts(proc: _Processor, type_: Any) -> _Processor:
    """The result processor, with JSON ``null`` and ``{}`` answered without parsing (a new
    dict each time: callers may change it)."""
    if proc is None or not isinstance(type_, sa.JSON):
        return proc
    none = proc(None)
    return lambda value: none if value is None or value == "null" else ({} if value == "{}" else proc(value))


class PreparedCache:
    """Statements built on first use per key (e.g. the set of columns an UPDATE sets)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._cache: dict[Any, Prepared] = {}

    def get(self, key: Any, build: Callable[[], tuple[sa.Executable, Sequence[sa.Column]]]) -> Prepared:
        prepared = self._cache.get(key)
        if prepared is None:
            statement, columns = build()
            prepared = self._cache[key] = Prepared(self.dialect, statement, columns)
        return prepared
