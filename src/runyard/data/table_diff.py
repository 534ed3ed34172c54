"""Row-level difference of two tables (CSV or Parquet files) in DuckDB.

Run in the sandbox (``runyard.data.jobs.table_diff``): the files are user bytes. With key
columns, rows pair up by key and a pair whose other shared columns differ is ``changed``;
without, rows compare whole, as multisets. Values compare as text, so ``1`` in a CSV and
``1`` in a Parquet file are the same value whatever type each reader inferred.
"""

from __future__ import annotations

from typing import Any

import duckdb

#: Row examples kept per kind of difference.
MAX_EXAMPLES = 20


class TableDiffError(Exception):
    """A file that does not read as the table it says it is, or a key it lacks."""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _reader(path: str, fmt: str) -> str:
    literal = "'" + path.replace("'", "''") + "'"
    if fmt == "parquet":
        return f"read_parquet({literal})"
    return f"read_csv({literal}, auto_detect = true, all_varchar = true)"


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()]


def _rows(con: duckdb.DuckDBPyConnection, sql: str, columns: list[str]) -> list[dict[str, Any]]:
    return [dict(zip(columns, row, strict=False)) for row in con.execute(sql).fetchall()]


def diff_tables(*, expected: str, actual: str, expected_format: str, actual_format: str,
                key_columns: list[str] | None, memory_limit_mb: int = 512,
                temp_dir: str | None = None) -> dict[str, Any]:
    """``{rows_expected, rows_actual, matched, changed, missing, unexpected, key, columns_missing,
    columns_unexpected, examples: {changed, missing, unexpected}}``."""
    con = duckdb.connect(config={"memory_limit": f"{memory_limit_mb}MB", "threads": 2,
                                 **({"temp_directory": temp_dir} if temp_dir else {})})
    try:
        try:
            for name, path, fmt in (("e", expected, expected_format), ("a", actual, actual_format)):
                con.execute(f"CREATE TEMP TABLE {name}_raw AS SELECT * FROM {_reader(path, fmt)}")
        except duckdb.Error as exc:
            raise TableDiffError(f"could not read the file as {fmt}: {str(exc).splitlines()[0]}") from None
        e_cols, a_cols = _columns(con, "e_raw"), _columns(con, "a_raw")
        shared = [c for c in e_cols if c in a_cols]
        keys = list(key_columns or [])
        lacking = [k for k in keys if k not in shared]
        if lacking:
            raise TableDiffError(f"key column(s) not in both files: {', '.join(lacking)}")
        for name in ("e", "a"):  # every shared column as text: types inferred differently still compare
            cast = ", ".join(f"CAST({_quote(c)} AS VARCHAR) AS {_quote(c)}" for c in shared) or "1 AS _none"
            con.execute(f"CREATE TEMP TABLE {name} AS SELECT {cast} FROM {name}_raw")
        rows_e = con.execute("SELECT count(*) FROM e").fetchone()[0]  # type: ignore[index]
        rows_a = con.execute("SELECT count(*) FROM a").fetchone()[0]  # type: ignore[index]
        report: dict[str, Any] = {"rows_expected": rows_e, "rows_actual": rows_a, "key": keys,
                                  "columns_missing": [c for c in e_cols if c not in a_cols],
                                  "columns_unexpected": [c for c in a_cols if c not in e_cols]}
        listed = ", ".join(_quote(c) for c in shared) or "_none"
        if keys:
            on = " AND ".join(f"e.{_quote(k)} IS NOT DISTINCT FROM a.{_quote(k)}" for k in keys)
            others = [c for c in shared if c not in keys]
            differs = " OR ".join(f"e.{_quote(c)} IS DISTINCT FROM a.{_quote(c)}" for c in others) or "false"
            key_list = ", ".join(f"e.{_quote(k)}" for k in keys)
            pairs = f"FROM e JOIN a ON {on}"
            changed = con.execute(f"SELECT count(*) {pairs} WHERE {differs}").fetchone()[0]  # type: ignore[index]
            paired = con.execute(f"SELECT count(*) {pairs}").fetchone()[0]  # type: ignore[index]
            missing = con.execute(f"SELECT count(*) FROM e WHERE NOT EXISTS (SELECT 1 FROM a WHERE {on})"
                                  ).fetchone()[0]  # type: ignore[index]
            unexpected = con.execute(f"SELECT count(*) FROM a WHERE NOT EXISTS (SELECT 1 FROM e WHERE {on})"
                                     ).fetchone()[0]  # type: ignore[index]
            both = [f"e.{_quote(c)}" for c in others] + [f"a.{_quote(c)}" for c in others]
            raw = con.execute(f"SELECT {key_list}{', ' if both else ''}{', '.join(both)} {pairs} WHERE {differs} "
                              f"ORDER BY {key_list} LIMIT {MAX_EXAMPLES}").fetchall()
            examples_changed = []
            for row in raw:
                key = dict(zip(keys, row[:len(keys)], strict=True))
                olds, news = row[len(keys):len(keys) + len(others)], row[len(keys) + len(others):]
                examples_changed.append({"key": key, "columns": {
                    c: {"expected": o, "actual": n} for c, o, n in zip(others, olds, news, strict=True) if o != n}})
            report.update(matched=paired - changed, changed=changed, missing=missing, unexpected=unexpected)
            report["examples"] = {
                "changed": examples_changed,
                "missing": _rows(con, f"SELECT {listed} FROM e WHERE NOT EXISTS (SELECT 1 FROM a WHERE {on}) "
                                      f"LIMIT {MAX_EXAMPLES}", shared),
                "unexpected": _rows(con, f"SELECT {listed} FROM a WHERE NOT EXISTS (SELECT 1 FROM e WHERE {on}) "
                                         f"LIMIT {MAX_EXAMPLES}", shared)}
        else:
            missing = con.execute(f"SELECT count(*) FROM (SELECT {listed} FROM e EXCEPT ALL SELECT {listed} FROM a)"
                                  ).fetchone()[0]  # type: ignore[index]
            unexpected = con.execute(f"SELECT count(*) FROM (SELECT {listed} FROM a EXCEPT ALL "
                                     f"SELECT {listed} FROM e)").fetchone()[0]  # type: ignore[index]
            report.update(matched=rows_e - missing, changed=0, missing=missing, unexpected=unexpected)
            report["examples"] = {
                "changed": [],
                "missing": _rows(con, f"SELECT {listed} FROM e EXCEPT ALL SELECT {listed} FROM a "
                                      f"LIMIT {MAX_EXAMPLES}", shared),
                "unexpected": _rows(con, f"SELECT {listed} FROM a EXCEPT ALL SELECT {listed} FROM e "
                                         f"LIMIT {MAX_EXAMPLES}", shared)}
        checks = rows_e + report["unexpected"]
        report["score"] = 1.0 if checks == 0 and not report["columns_missing"] else (
            round(report["matched"] / checks, 6) if checks else 0.0)
        return report
    finally:
        con.close()
