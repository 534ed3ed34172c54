"""Schema inference: each column type and kind, confidence, Arrow input and file previews."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runyard.data.formats import ParseOptions
from runyard.data.infer import InferredColumn, classify, infer_from_file, infer_schema
from runyard.data.types import COLUMN_TYPES


def _by_name(cols: list[InferredColumn]) -> dict[str, InferredColumn]:
    return {c.name: c for c in cols}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("  ", None),
        (True, "bool"),
        ("false", "bool"),
        ("TRUE", "bool"),
        ("yes", "string"),  # only true/false spell a bool
        (7, "int"),
        ("-12", "int"),
        ("007", "string"),  # leading zeros: an identifier
        ("99999999999999999999", "string"),  # beyond int64
        (1.5, "float"),
        ("3.25e-2", "float"),
        ("2024-02-29", "date"),
        ("2023-02-29", "string"),
        ("31/12/2024", "date"),
        ("2024-02-03T10:00:00Z", "timestamp"),
        ("2024-02-03 10:00:00.123+02:00", "timestamp"),
        (dt.date(2024, 1, 1), "date"),
        (dt.datetime(2024, 1, 1, 1), "timestamp"),
        ({"lat": 48.8, "lon": 2.35}, "geo"),
        ({"latitude": 1, "longitude": 2}, "geo"),
        ({"lat": 100, "lng": 2}, "json"),
        ("POINT(2.35 48.85)", "geo"),
        ('{"lat": 1, "lng": 2}', "geo"),
        ('{"a": [1, 2]}', "json"),
        ([1, 2], "json"),
        ("[1, 2", "string"),
        ("hello", "string"),
    ],
)
def test_classify(value: object, expected: str | None) -> None:
    assert classify(value) == expected


def test_infer_each_type_from_rows() -> None:
    rows = [
        {
            "i": str(n),
            "f": f"{n}.5",
            "b": "true" if n % 2 else "false",
            "d": f"2024-01-{n % 28 + 1:02d}",
            "t": f"2024-01-01T00:00:{n % 60:02d}Z",
            "mixed_dt": "2024-01-01" if n % 2 else "2024-01-01 10:00",
            "j": {"k": n},
            "g": {"lat": 1.0, "lon": n % 180},
            "s": f"item {n}",
            "nums": n if n % 2 else n + 0.5,
        }
        for n in range(200)
    ]
    for r in rows[::10]:
        r["s"] = None
    cols = infer_schema(rows)
    types = {c.name: c.type for c in cols}
    assert types == {
        "i": "int",
        "f": "float",
        "b": "bool",
        "d": "date",
        "t": "timestamp",
        "mixed_dt": "timestamp",
        "j": "json",
        "g": "geo",
        "s": "string",
        "nums": "float",
    }
    assert all(c.type in COLUMN_TYPES for c in cols)
    s = _by_name(cols)["s"]
    assert s.nullable and s.null_count == 20
    assert not _by_name(cols)["i"].nullable


def test_missing_keys_are_nulls_and_order_is_first_seen() -> None:
    cols = infer_schema([{"a": 1}, {"b": "x", "a": 2}, {"c": True}])
    assert [c.name for c in cols] == ["a", "b", "c"]
    assert [c.null_count for c in cols] == [1, 2, 2]


def test_confidence_and_fallback_to_string() -> None:
    mostly = [{"v": str(i)} for i in range(98)] + [{"v": "n/a"}, {"v": "unknown"}]
    (col,) = infer_schema(mostly)
    assert col.type == "int" and col.confidence == pytest.approx(0.98)
    half = [{"v": str(i)} for i in range(50)] + [{"v": f"x{i}"} for i in range(50)]
    (col,) = infer_schema(half)
    assert col.type == "string" and col.confidence == 1.0


def test_sample_limits_what_is_read() -> None:
    rows = [{"v": "1"}] * 100 + [{"v": "text"}] * 1000
    (col,) = infer_schema(iter(rows), sample=100)
    assert col.type == "int"


def test_kinds() -> None:
    rows = [
        {
            "email": f"user{n}@example.com",
            "url": f"https://example.com/p/{n}",
            "uuid": str(uuid.uuid4()),
            "phone": f"+1 (555) 010-{n:04d}",
            "country": ["FR", "US", "DE", "JP"][n % 4],
            "country3": ["FRA", "USA", "DEU"][n % 3],
            "country_name": ["France", "united states", "Germany"][n % 3],
            "currency": ["EUR", "USD", "JPY"][n % 3],
            "plain": f"word{n}",
        }
        for n in range(60)
    ]
    cols = _by_name(infer_schema(rows))
    assert cols["email"].kinds == [{"kind": "email", "confidence": 1.0}]
    assert cols["url"].kinds == [{"kind": "url", "confidence": 1.0}]
    assert cols["uuid"].kinds == [{"kind": "uuid", "confidence": 1.0}]
    assert cols["phone"].kinds == [{"kind": "phone", "confidence": 1.0}]
    assert cols["country"].kinds == [{"kind": "country", "confidence": 1.0}]
    assert cols["country3"].kinds[0] == {"kind": "country", "confidence": 1.0}
    assert cols["country_name"].kinds == [{"kind": "country", "confidence": 1.0}]
    assert {"kind": "currency", "confidence": 1.0} in cols["currency"].kinds
    assert cols["plain"].kinds == []
    assert all(c.type == "string" for c in cols.values())


def test_kind_confidence_is_the_share_matching() -> None:
    rows = [{"e": f"u{n}@x.org"} for n in range(7)] + [{"e": "nope"} for _ in range(3)]
    (col,) = infer_schema(rows)
    assert col.kinds == [{"kind": "email", "confidence": 0.7}]


def test_arrow_table_types() -> None:
    table = pa.table(
        {
            "i": pa.array([1, None, 3], pa.int32()),
            "f": pa.array([1.0, 2.0, None]),
            "b": pa.array([True, False, True]),
            "d": pa.array([dt.date(2024, 1, 1)] * 3),
            "t": pa.array([dt.datetime(2024, 1, 1)] * 3, pa.timestamp("us")),
            "s": pa.array(["1", "2", "3"]),
            "g": pa.array([{"lat": 1.0, "lon": 2.0}] * 3),
            "l": pa.array([[1], [2], []]),
        }
    )
    cols = _by_name(infer_schema(table))
    assert {n: c.type for n, c in cols.items()} == {
        "i": "int",
        "f": "float",
        "b": "bool",
        "d": "date",
        "t": "timestamp",
        "s": "int",  # strings (as CSV gives them) are looked at
        "g": "geo",
        "l": "json",
    }
    assert cols["i"].null_count == 1 and cols["i"].nullable


def test_infer_from_csv_file(tmp_path: Path) -> None:
    p = tmp_path / "people.csv"
    lines = ["id;email;joined;score;country"]
    lines += [f"{i};p{i}@mail.org;2023-05-{i % 28 + 1:02d};{i / 3:.3f};{['FR', 'US'][i % 2]}" for i in range(30_000)]
    lines.insert(3, "broken;line")
    p.write_text("\n".join(lines) + "\n")
    cols, preview, rejects = infer_from_file(p, ParseOptions(), sample=1000)
    assert len(preview) == 1000
    assert preview[0] == {"id": "0", "email": "p0@mail.org", "joined": "2023-05-01", "score": "0.000", "country": "FR"}
    assert [(c.name, c.type) for c in cols] == [
        ("id", "int"),
        ("email", "string"),
        ("joined", "date"),
        ("score", "float"),
        ("country", "string"),
    ]
    assert _by_name(cols)["email"].kinds[0]["kind"] == "email"
    assert [r.line for r in rejects] == [4]


def test_infer_from_parquet_and_ndjson(tmp_path: Path) -> None:
    p = tmp_path / "d.parquet"
    pq.write_table(pa.table({"n": list(range(50_000)), "s": ["x"] * 50_000}), p, row_group_size=10_000)
    cols, preview, _ = infer_from_file(p, ParseOptions(), sample=100)
    assert [(c.name, c.type) for c in cols] == [("n", "int"), ("s", "string")]
    assert len(preview) == 100

    j = tmp_path / "d.ndjson"
    j.write_text("\n".join('{"at": "2024-01-01T00:00:00Z", "loc": {"lat": 1, "lng": 2}}' for _ in range(50)) + "\n")
    cols, preview, _ = infer_from_file(j, ParseOptions(), sample=10)
    assert [(c.name, c.type) for c in cols] == [("at", "timestamp"), ("loc", "geo")]
    assert len(preview) == 10
