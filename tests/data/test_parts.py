"""Parquet parts, manifests, stats and compaction, on real files."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runyard.data.coerce import coerce_rows
from runyard.data.compaction import compact, plan_compaction
from runyard.data.manifest import Manifest, Part
from runyard.data.parts import PartWriter, connect, read_parts_sql, read_table, write_part
from runyard.data.stats import column_stats
from runyard.data.types import METADATA_COLUMNS, METADATA_FIELDS, Column, arrow_schema

AT = datetime(2024, 6, 1, 12, tzinfo=UTC)


def ints(start: int, n: int) -> pa.Table:
    return pa.table({"n": pa.array(range(start, start + n), pa.int64())})


def test_write_part_has_metadata_first_and_typed_columns(tmp_path: Path) -> None:
    cols = [Column("a", "int"), Column("g", "geo"), Column("t", "timestamp"), Column("later", "date")]
    out = coerce_rows([{"t": "2024-01-01T00:00:00Z", "a": 1, "g": "POINT(2 1)"}, {"a": 2}], cols[:3])
    path, part = write_part(
        out.table, tmp_path, first_id=41, ingestion_id="ing_1", ingested_at=AT, columns=cols
    )
    assert path.parent == tmp_path and path.suffix == ".parquet" and part.key == f"parts/{path.name}"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind
    assert (part.rows, part.min_id, part.max_id, part.ingestion_id) == (2, 41, 42, "ing_1")
    assert part.bytes == path.stat().st_size
    stored = pq.read_table(path)
    assert stored.schema.equals(arrow_schema(cols, metadata=True))
    assert stored.column_names[:3] == list(METADATA_COLUMNS)
    assert stored.column("_id").to_pylist() == [41, 42]
    assert stored.column("_ingested_at").to_pylist() == [AT, AT]
    assert stored.column("later").null_count == 2
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
    back = read_table([str(path)], cols, include_metadata=False)
    assert back.to_pylist() == [
        {"a": 1, "g": {"lat": 1.0, "lon": 2.0}, "t": datetime(2024, 1, 1, tzinfo=UTC), "later": None},
        {"a": 2, "g": None, "t": None, "later": None},
    ]
    with pytest.raises(ValueError, match="at least one row"):
        write_part(
            out.table.slice(0, 0), tmp_path, first_id=1, ingestion_id="x", ingested_at=AT, columns=cols
        )


def test_widened_and_added_columns_read_back_through_the_view(tmp_path: Path) -> None:
    first = coerce_rows([{"v": 1}, {"v": 2}], [])
    p1, _ = write_part(
        first.table, tmp_path, first_id=1, ingestion_id="i1", ingested_at=AT, columns=first.columns
    )
    second = coerce_rows([{"v": 2.5, "label": "x"}], first.columns)
    assert second.widened == ["v"]
    p2, _ = write_part(
        second.table, tmp_path, first_id=3, ingestion_id="i2", ingested_at=AT, columns=second.columns
    )
    assert pq.read_schema(p1).field("v").type == pa.int64()  # old parts keep their types
    cols = [*second.columns, Column("never_written", "json")]
    con = connect()
    con.execute(f"CREATE VIEW ds AS {read_parts_sql([str(p2), str(p1)], cols, include_metadata=True)}")
    assert con.sql("SELECT _id, v, label, never_written FROM ds ORDER BY _id").fetchall() == [
        (1, 1.0, None, None),
        (2, 2.0, None, None),
        (3, 2.5, "x", None),
    ]
    types = dict(con.sql("SELECT column_name, column_type FROM (DESCRIBE ds)").fetchall())
    assert types == {
        "_id": "BIGINT",
        "_ingestion_id": "VARCHAR",
        "_ingested_at": "TIMESTAMP WITH TIME ZONE",
        "_entity_id": "BIGINT",
        "v": "DOUBLE",
        "label": "VARCHAR",
        "never_written": "VARCHAR",
    }
    assert con.sql("SELECT sum(v) FROM ds WHERE v > 1.5").fetchall() == [(4.5,)]
    # No parts yet: an empty, typed relation.
    assert duckdb.sql(read_parts_sql([], cols, include_metadata=False)).fetchall() == []
    assert read_table([], cols, include_metadata=False).schema == arrow_schema(cols)


def test_paths_with_quotes_are_escaped(tmp_path: Path) -> None:
    d = tmp_path / "it's"
    path, _ = write_part(
        ints(0, 3), d, first_id=1, ingestion_id="i", ingested_at=AT, columns=[Column("n", "int")]
    )
    assert read_table([str(path)], [Column("n", "int")], False).column("n").to_pylist() == [0, 1, 2]


def test_part_writer_rolls_parts_and_row_groups(tmp_path: Path) -> None:
    cols = [Column("n", "int")]
    w = PartWriter(tmp_path, cols, "ing", AT, first_id=100, target_part_rows=250, row_group_rows=100)
    for start in range(0, 600, 70):  # 9 batches of 70 (the last cut to 40 by the range)
        w.write(ints(start, min(70, 600 - start)))
    assert w.rows == 600
    written = w.close()
    assert [p.rows for _, p in written] == [250, 250, 100]
    assert [(p.min_id, p.max_id) for _, p in written] == [(100, 349), (350, 599), (600, 699)]
    assert [pq.ParquetFile(path).metadata.num_row_groups for path, _ in written] == [3, 3, 1]
    assert not list(tmp_path.glob(".*"))  # temp files all renamed
    back = read_table([str(p) for p, _ in written], cols, include_metadata=True)
    assert back.column("_id").to_pylist() == list(range(100, 700))
    assert back.column("n").to_pylist() == list(range(600))
    assert set(back.column("_ingestion_id").to_pylist()) == {"ing"}


def test_part_writer_starts_a_new_part_when_the_schema_changes(tmp_path: Path) -> None:
    cols = [Column("n", "int")]
    w = PartWriter(tmp_path, cols, "ing", AT, first_id=1, target_part_rows=1000)
    w.write(ints(0, 10))
    w.write(pa.table({"n": [1.5, 2.5]}))  # widened, seen from the Arrow schema
    w.write(pa.table({"n": [3.5], "tag": ["x"]}))  # a new column
    evolved = coerce_rows([{"n": 4, "when": "2024-01-01T00:00:00Z"}], w.columns)
    w.write(evolved.table, evolved.columns)  # columns given by the caller
    written = w.close()
    assert [p.rows for _, p in written] == [10, 2, 1, 1]
    assert w.columns == [Column("n", "float"), Column("tag", "string"), Column("when", "timestamp")]
    schemas = [pq.read_schema(p) for p, _ in written]
    assert schemas[0].field("n").type == pa.int64() and schemas[1].field("n").type == pa.float64()
    assert "tag" not in schemas[1].names and "tag" in schemas[2].names and "when" in schemas[3].names
    back = read_table([str(p) for p, _ in written], w.columns, include_metadata=True)
    assert back.column("_id").to_pylist() == list(range(1, 15))
    assert back.column("n").to_pylist()[9:] == [9.0, 1.5, 2.5, 3.5, 4.0]
    assert back.column("tag").to_pylist()[-2:] == ["x", None]


def test_part_writer_abort_removes_everything(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError),
        PartWriter(tmp_path, [Column("n", "int")], "ing", AT, 1, 100, row_group_rows=10) as w,
    ):
        w.write(ints(0, 250))  # two whole parts and an open one
        assert len(list(tmp_path.iterdir())) == 3
        raise RuntimeError("client went away")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="columns the schema does not"):
        PartWriter(tmp_path, [Column("n", "int")], "i", AT, 1).write(
            pa.table({"n": [1], "x": [1]}), [Column("n", "int")]
        )
    with pytest.raises(ValueError, match="no column type stores"):
        PartWriter(tmp_path, [Column("n", "int")], "i", AT, 1).write(pa.table({"x": [{"a": 1}]}))


def make_part(key: str, rows: int, min_id: int, ingestion: str | None = "i") -> Part:
    return Part(
        key=key,
        rows=rows,
        bytes=10 * rows,
        min_id=min_id,
        max_id=min_id + rows - 1,
        ingestion_id=ingestion,
        created_at=AT.isoformat(),
    )


def test_manifest_versions_are_immutable_values() -> None:
    m0 = Manifest.empty([Column("a", "int")])
    assert (m0.version, m0.next_id, m0.rows, m0.parts) == (0, 1, 0, [])
    m1 = m0.with_appended([make_part("parts/a.parquet", 5, 1)], [Column("a", "float"), Column("b", "json")])
    assert (m1.version, m1.next_id, m1.rows, m1.bytes) == (1, 6, 5, 50)
    assert m0.parts == [] and m0.columns == [Column("a", "int")]  # the old version is untouched
    m2 = m1.with_appended(
        [make_part("parts/c.parquet", 3, 9), make_part("parts/b.parquet", 3, 6)], m1.columns
    )
    assert m2.part_keys() == ["parts/a.parquet", "parts/b.parquet", "parts/c.parquet"] and m2.next_id == 12
    again = Manifest.from_json(m2.to_json())
    assert again == m2
    with pytest.raises(ValueError, match="ids from 12"):
        m2.with_appended([make_part("parts/d.parquet", 2, 11)], m2.columns)  # built against an old version
    with pytest.raises(ValueError, match="keep every existing column"):
        m2.with_appended([make_part("parts/d.parquet", 2, 12)], [Column("a", "float")])
    cleared = m2.with_stats({"a": {"null_count": 0}}).cleared()
    assert (cleared.version, cleared.rows, cleared.next_id, cleared.column_stats) == (4, 0, 12, {})
    assert cleared.columns == m2.columns
    merged = make_part("parts/bc.parquet", 6, 6, None)
    m3 = m2.replaced(["parts/b.parquet", "parts/c.parquet"], merged)
    assert m3.part_keys() == ["parts/a.parquet", "parts/bc.parquet"] and m3.rows == 11 and m3.version == 3
    with pytest.raises(ValueError, match="not in manifest"):
        cleared.replaced(["parts/b.parquet", "parts/c.parquet"], merged)
    with pytest.raises(ValueError, match="rows"):
        m2.replaced(["parts/b.parquet"], merged)


def test_plan_compaction_groups_consecutive_small_parts() -> None:
    parts, next_id = [], 1
    for k, rows in enumerate([10] * 9 + [500] + [10] * 3 + [500] + [10] * 20):
        parts.append(make_part(f"parts/{k}.parquet", rows, next_id))
        next_id += rows
    m = Manifest.empty([Column("n", "int")]).with_appended(parts, [Column("n", "int")])
    groups = plan_compaction(m, small_part_rows=100, min_parts=8, max_rows=150)
    assert [[p.key for p in g] for g in groups] == [
        [f"parts/{k}.parquet" for k in range(9)],
        [f"parts/{k}.parquet" for k in range(14, 29)],  # 15 x 10 rows; the last 5 parts wait
    ]
    assert plan_compaction(m, small_part_rows=5) == []


def test_compact_keeps_ids_metadata_and_rows(tmp_path: Path) -> None:
    cols = [Column("n", "int")]
    paths, parts, next_id = [], [], 1
    for k in range(4):
        table = ints(k * 10, 10) if k < 3 else pa.table({"n": [0.5] * 10, "extra": ["e"] * 10})
        use = cols if k < 3 else [Column("n", "float"), Column("extra", "string")]
        path, part = write_part(
            table, tmp_path / "in", first_id=next_id, ingestion_id=f"ing{k}", ingested_at=AT, columns=use
        )
        paths.append(str(path))
        parts.append(part)
        next_id += 10
    current = [Column("n", "float"), Column("extra", "string")]
    path, merged = compact(list(reversed(paths)), current, tmp_path / "out")
    assert (merged.rows, merged.min_id, merged.max_id, merged.ingestion_id) == (40, 1, 40, None)
    stored = pq.read_table(path)
    assert stored.schema.equals(arrow_schema(current, metadata=True, entity=True))
    assert stored.column("_id").to_pylist() == list(range(1, 41))
    assert stored.column("_entity_id").to_pylist() == list(range(1, 41))  # each row its own entity
    assert stored.column("_ingestion_id").to_pylist() == [f"ing{k // 10}" for k in range(40)]
    assert (
        stored.column("n").to_pylist()[:3] == [0.0, 1.0, 2.0]
        and stored.column("extra").to_pylist()[-1] == "e"
    )
    m = Manifest.empty(cols).with_appended(parts, current)
    assert m.replaced([p.key for p in parts], merged).rows == 40
    one_path, one = compact(paths[:1], current, tmp_path / "out")
    assert one.ingestion_id == "ing0" and one.rows == 10
    assert METADATA_FIELDS[0].name == pq.read_schema(one_path).names[0]


def test_column_stats(tmp_path: Path) -> None:
    rows = [
        {
            "i": k,
            "f": k / 4,
            "s": f"v{k % 3}",
            "b": k % 2 == 0,
            "t": f"2024-01-{k + 1:02d}T00:00:00Z",
            "d": f"2024-02-{k + 1:02d}",
            "g": {"lat": k, "lon": -k},
            "j": {"k": k},
        }
        for k in range(10)
    ]
    rows.append({"i": None, "s": None})
    out = coerce_rows(rows, [Column("g", "geo")])
    p1, _ = write_part(
        out.table.slice(0, 6), tmp_path, first_id=1, ingestion_id="a", ingested_at=AT, columns=out.columns
    )
    p2, _ = write_part(
        out.table.slice(6), tmp_path, first_id=7, ingestion_id="b", ingested_at=AT, columns=out.columns
    )
    cols = [*out.columns, Column("empty", "int")]
    stats = column_stats([str(p1), str(p2)], cols)
    assert list(stats) == ["g", "i", "f", "s", "b", "t", "d", "j", "empty"]
    assert stats["i"] | {"samples": None} == {
        "null_count": 1,
        "distinct_approx": 10,
        "min": 0,
        "max": 9,
        "samples": None,
    }
    assert len(stats["i"]["samples"]) == 5 and set(stats["i"]["samples"]) <= set(range(10))
    assert stats["f"]["min"] == 0.0 and stats["f"]["max"] == 2.25
    assert sorted(stats["s"]["samples"]) == ["v0", "v1", "v2"] and stats["s"]["distinct_approx"] == 3
    assert stats["b"]["min"] is False and stats["b"]["max"] is True and stats["b"]["distinct_approx"] == 2
    assert (
        stats["t"]["min"] == "2024-01-01T00:00:00+00:00" and stats["t"]["max"] == "2024-01-10T00:00:00+00:00"
    )
    assert stats["d"]["min"] == date(2024, 2, 1).isoformat()
    assert stats["g"]["min"] is None and stats["g"]["max"] is None and stats["g"]["null_count"] == 1
    assert stats["g"]["samples"][0].keys() == {"lat", "lon"}
    assert stats["j"]["min"] is None and stats["j"]["samples"][0].startswith('{"k":')
    assert stats["empty"] == {"null_count": 11, "distinct_approx": 0, "min": None, "max": None, "samples": []}
    orjson.dumps(stats)  # JSON-safe
    assert column_stats([], cols)["i"]["null_count"] == 0
