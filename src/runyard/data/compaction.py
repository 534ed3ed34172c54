"""Merging runs of small parts into one, so many small appends do not make every query open
hundreds of files. A merged part keeps every row's ``_id``, ``_ingestion_id``,
``_ingested_at`` and ``_entity_id``; the services swap it in with ``Manifest.replaced`` under compare-and-set.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from runyard.data.manifest import Manifest, Part
from runyard.data.parts import (
    COMPRESSION,
    ROW_GROUP_ROWS,
    TARGET_PART_ROWS,
    connect,
    new_part_paths,
    publish_part,
    quote_ident,
    read_parts_sql,
)
from runyard.data.types import ROW_ID, Column, arrow_schema


def plan_compaction(
    manifest: Manifest,
    *,
    small_part_rows: int = 100_000,
    min_parts: int = 8,
    max_rows: int = TARGET_PART_ROWS,
) -> list[list[Part]]:
    """Groups of consecutive small parts worth merging: each has at least ``min_parts`` parts
    and at most ``max_rows`` rows. Only neighbours merge, so parts stay in ``_id`` order."""
    groups: list[list[Part]] = []
    run: list[Part] = []
    run_rows = 0

    def close_run() -> None:
        nonlocal run, run_rows
        if len(run) >= min_parts:
            groups.append(run)
        run, run_rows = [], 0

    for part in manifest.parts:
        if part.rows >= small_part_rows:
            close_run()
            continue
        if run and run_rows + part.rows > max_rows:
            close_run()
        run.append(part)
        run_rows += part.rows
    close_run()
    return groups


def compact(paths: list[str], columns: list[Column], directory: Path) -> tuple[Path, Part]:
    """Merge the parts at ``paths`` into one part in ``directory``, rows in ``_id`` order and
    typed by the current ``columns``. Its ingestion_id is the rows' one if they share it."""
    if not paths:
        raise ValueError("nothing to compact")
    sql = read_parts_sql(paths, columns, True) + f" ORDER BY {quote_ident(ROW_ID)}"
    schema = arrow_schema(columns, metadata=True, entity=True)  # keeps every row's _entity_id
    directory.mkdir(parents=True, exist_ok=True)
    tmp, final = new_part_paths(directory)
    con = connect()
    rows = 0
    min_id: int | None = None
    max_id: int | None = None
    ingestions: set[str] = set()
    try:
        reader = con.sql(sql).to_arrow_reader(ROW_GROUP_ROWS)
        with pq.ParquetWriter(tmp, schema, compression=COMPRESSION) as writer:
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                table = pa.Table.from_batches([batch]).cast(schema)
                if min_id is None:
                    min_id = table.column(0)[0].as_py()
                max_id = table.column(0)[-1].as_py()
                if len(ingestions) < 2:
                    ingestions.update(table.column(1).unique().to_pylist())
                writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
                rows += table.num_rows
        if min_id is None:
            raise ValueError("the parts hold no rows")
        part = publish_part(
            tmp,
            final,
            rows=rows,
            min_id=min_id,
            max_id=max_id,
            ingestion_id=next(iter(ingestions)) if len(ingestions) == 1 else None,
        )
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    finally:
        con.close()
    return final, part
