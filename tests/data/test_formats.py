"""Parsing real generated files: every format, compression, sniffing, rejects and the caps."""

from __future__ import annotations

import gzip
import resource
import zipfile
import zlib
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runyard.data.formats import (
    ParsedBatch,
    ParseError,
    ParseOptions,
    Reject,
    detect_format,
    parse_file,
)


def _parse(path: Path, **opts: Any) -> tuple[list[dict[str, Any]], list[Reject], list[ParsedBatch]]:
    batch_rows = opts.pop("batch_rows", 100_000)
    batches = list(parse_file(path, ParseOptions(**opts), batch_rows=batch_rows))
    rows: list[dict[str, Any]] = []
    rejects: list[Reject] = []
    for b in batches:
        rows.extend(b.table.to_pylist() if b.table is not None else b.rows or [])
        rejects.extend(b.rejects)
    return rows, rejects, batches


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- detection


def test_detect_format_by_magic_and_content() -> None:
    assert detect_format("x.bin", b"PAR1\x00\x00") == "parquet"
    assert detect_format(None, b"PK\x03\x04....xl/workbook.xml") == "xlsx"
    assert detect_format(None, b'[{"a": 1}]') == "json"
    assert detect_format(None, b'{"a": 1}\n{"a": 2}\n') == "ndjson"
    assert detect_format(None, b'{\n  "a": 1\n}\n') == "json"
    assert detect_format(None, b"a;b;c\n1;2;3\n") == "csv"
    assert detect_format(None, b"a\tb\tc\n1\t2\t3\n") == "tsv"
    assert detect_format("data.csv.gz", gzip.compress(b'{"a": 1}\n{"a": 2}\n')) == "ndjson"
    zstd = pa.compress(b"a\tb\n1\t2\n", codec="zstd", asbytes=True)
    assert detect_format(None, zstd) == "tsv"
    with pytest.raises(ParseError) as err:
        detect_format("x.zip", b"PK\x03\x04 something else")
    assert err.value.code == "unsupported_format"


# --------------------------------------------------------------------------- CSV


def test_csv_header_and_values(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_text('id,name,note\n1,alice,"hello, world"\n2,bob,"say ""hi"""\n3,,x\n')
    rows, rejects, batches = _parse(p)
    assert rows == [
        {"id": "1", "name": "alice", "note": "hello, world"},
        {"id": "2", "name": "bob", "note": 'say "hi"'},
        {"id": "3", "name": None, "note": "x"},
    ]
    assert rejects == []
    assert isinstance(batches[-1].table, pa.Table)
    assert batches[-1].bytes_read == p.stat().st_size


def test_csv_sniffs_semicolon_tab_and_no_header(tmp_path: Path) -> None:
    semi = tmp_path / "semi.csv"
    semi.write_text("city;population;country\nParis;2100000;FR\nLyon;500000;FR\n")
    rows, _, _ = _parse(semi)
    assert rows[0] == {"city": "Paris", "population": "2100000", "country": "FR"}

    tsv = tmp_path / "t.txt"
    tsv.write_text("a\tb\n1\t2\n3\t4\n")
    rows, _, _ = _parse(tsv)
    assert rows == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]

    nohead = tmp_path / "n.csv"
    nohead.write_text("1,2.5,2024-01-01\n2,3.5,2024-01-02\n")
    rows, _, _ = _parse(nohead)
    assert rows[0] == {"column_1": "1", "column_2": "2.5", "column_3": "2024-01-01"}
    assert len(rows) == 2

    forced = tmp_path / "f.csv"
    forced.write_text("x|y\n1|2\n")
    rows, _, _ = _parse(forced, delimiter="|", header=False)
    assert rows == [{"column_1": "x", "column_2": "y"}, {"column_1": "1", "column_2": "2"}]


def test_csv_encodings(tmp_path: Path) -> None:
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffname,v\ncafé,1\n".encode())
    rows, _, _ = _parse(bom)
    assert rows == [{"name": "café", "v": "1"}]

    u16 = tmp_path / "u16.csv"
    u16.write_bytes("name,v\nnaïve,2\n".encode("utf-16"))
    rows, _, _ = _parse(u16)
    assert rows == [{"name": "naïve", "v": "2"}]

    latin = tmp_path / "latin.csv"
    latin.write_bytes("name,v\nGérard,3\nZoë,4\n".encode("latin-1"))
    rows, rejects, _ = _parse(latin)
    assert rows == [{"name": "Gérard", "v": "3"}, {"name": "Zoë", "v": "4"}]
    assert rejects == []


def test_csv_invalid_utf8_line_is_a_reject(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_bytes("name,v\ncafé,1\n".encode() + b"bad\xff\xfe,2\n" + "crème,3\n".encode())
    rows, rejects, _ = _parse(p)
    assert rows == [{"name": "café", "v": "1"}, {"name": "crème", "v": "3"}]
    assert [r.line for r in rejects] == [3]
    assert "UTF-8" in rejects[0].reason
    # Told it is UTF-8, an ASCII file with one bad byte keeps UTF-8 too.
    q = tmp_path / "ascii.csv"
    q.write_bytes(b"a,b\n1,2\nx\xffy,3\n4,5\n")
    rows, rejects, _ = _parse(q, encoding="utf-8")
    assert rows == [{"a": "1", "b": "2"}, {"a": "4", "b": "5"}]
    assert [r.line for r in rejects] == [3]


def test_csv_malformed_lines_are_rejects_with_line_numbers(tmp_path: Path) -> None:
    p = tmp_path / "m.csv"
    p.write_text('a,b,c\n1,2,3\n4,5\n6,7,8,9\n"x,9,10\n11,12,13\n14,15,"16\n17,18,19\n')
    rows, rejects, _ = _parse(p)
    assert rows == [
        {"a": "1", "b": "2", "c": "3"},
        {"a": "11", "b": "12", "c": "13"},
        {"a": "17", "b": "18", "c": "19"},
    ]
    assert [(r.line, r.text) for r in rejects] == [(3, "4,5"), (4, "6,7,8,9"), (5, '"x,9,10'), (7, '14,15,"16')]
    assert rejects[0].reason == "too few fields"
    assert rejects[1].reason == "too many fields"
    assert rejects[2].reason == "unterminated quote"


def test_csv_quoted_newlines_still_work(tmp_path: Path) -> None:
    p = tmp_path / "ml.csv"
    p.write_text('a,b\n"line one\nline two",1\n2,3\n')
    rows, rejects, _ = _parse(p)
    assert rows == [{"a": "line one\nline two", "b": "1"}, {"a": "2", "b": "3"}]
    assert rejects == []


def test_csv_unterminated_quote_in_a_big_file_loses_no_other_row(tmp_path: Path) -> None:
    # DuckDB's parallel scan would read on to the next quote and drop a whole chunk of rows.
    p = tmp_path / "big.csv"
    lines = ["id,name,score"] + [f"{i},n{i},{i * 0.5}" for i in range(200_000)]
    lines.insert(4, '"oops,1,2')
    p.write_text("\n".join(lines) + "\n")
    rows, rejects, batches = _parse(p, batch_rows=50_000)
    assert len(rows) == 200_000
    assert [r.line for r in rejects] == [5]
    assert len(batches) >= 4
    progress = [b.bytes_read for b in batches]
    assert progress == sorted(progress) and progress[-1] == p.stat().st_size


def test_csv_skip_rows(tmp_path: Path) -> None:
    p = tmp_path / "s.csv"
    p.write_text("exported by tool\n\na,b\n1,2\n3\n")
    rows, rejects, _ = _parse(p, skip_rows=2)
    assert rows == [{"a": "1", "b": "2"}]
    assert [r.line for r in rejects] == [5]


def test_csv_gzip_and_zstd(tmp_path: Path) -> None:
    body = b"a,b\n" + b"".join(b"%d,x%d\n" % (i, i) for i in range(1000))
    gz = tmp_path / "d.csv.gz"
    gz.write_bytes(gzip.compress(body))
    rows, _, batches = _parse(gz)
    assert len(rows) == 1000 and rows[999] == {"a": "999", "b": "x999"}
    assert batches[-1].bytes_read == gz.stat().st_size
    zs = tmp_path / "d.csv.zst"
    with pa.CompressedOutputStream(str(zs), "zstd") as out:
        out.write(body)
    rows, _, _ = _parse(zs)
    assert len(rows) == 1000


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "e.csv"
    p.write_bytes(b"")
    with pytest.raises(ParseError) as err:
        _parse(p)
    assert err.value.code == "empty_file"


def test_gzip_bomb_fails_fast_with_low_memory(tmp_path: Path) -> None:
    p = tmp_path / "bomb.csv.gz"
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = b"0" * (16 << 20)
    with open(p, "wb") as f:
        f.write(comp.compress(b"a,b\n"))
        for _ in range(64):  # 1 GiB decompressed, ~1 MB on disk
            f.write(comp.compress(zeros))
        f.write(comp.flush())
    assert p.stat().st_size < 5 << 20
    before = _peak_rss_mb()
    for fmt in ("csv", "ndjson", "parquet", None):
        with pytest.raises(ParseError) as err:
            _parse(p, format=fmt, max_decompressed_bytes=4 << 20)
        assert err.value.code == "decompression_limit"
    assert _peak_rss_mb() - before < 200


def test_too_many_columns(tmp_path: Path) -> None:
    p = tmp_path / "wide.csv"
    p.write_text(",".join(f"c{i}" for i in range(10_000)) + "\n" + ",".join("1" for _ in range(10_000)) + "\n")
    with pytest.raises(ParseError) as err:
        _parse(p)
    assert err.value.code == "too_many_columns"
    j = tmp_path / "wide.ndjson"
    j.write_bytes(orjson.dumps({f"c{i}": i for i in range(10_000)}) + b"\n")
    with pytest.raises(ParseError) as err:
        _parse(j)
    assert err.value.code == "too_many_columns"


# --------------------------------------------------------------------------- JSON


def test_ndjson_with_bad_lines(tmp_path: Path) -> None:
    p = tmp_path / "d.ndjson"
    p.write_text('{"a": 1, "b": "x"}\n\n{"a": 2, "c": [1, 2]}\n{"a": 3,\n[1, 2]\n{"a": 4}\n')
    rows, rejects, _ = _parse(p)
    assert rows == [{"a": 1, "b": "x"}, {"a": 2, "c": [1, 2]}, {"a": 4}]
    assert [(r.line, r.text) for r in rejects] == [(4, '{"a": 3,'), (5, "[1, 2]")]
    assert rejects[1].reason == "not a JSON object"


def test_json_array_streams_elements(tmp_path: Path) -> None:
    p = tmp_path / "d.json"
    data = [{"i": i, "s": "a},{b" if i % 3 == 0 else "x", "nested": {"k": [{"z": 1}, {"z": 2}]}} for i in range(2500)]
    p.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    rows, rejects, batches = _parse(p, batch_rows=1000)
    assert rows == data
    assert rejects == []
    assert [b.num_rows for b in batches] == [1000, 1000, 500]


def test_json_array_bad_element_is_a_reject(tmp_path: Path) -> None:
    p = tmp_path / "d.json"
    p.write_text('[\n{"a": 1},\n{"a": tru},\n5,\n{"a": 2}\n]\n')
    rows, rejects, _ = _parse(p)
    assert rows == [{"a": 1}, {"a": 2}]
    assert [r.line for r in rejects] == [3, 4]


def test_json_single_object(tmp_path: Path) -> None:
    p = tmp_path / "o.json"
    p.write_text('{\n  "a": 1,\n  "b": {"lat": 1, "lon": 2}\n}\n')
    rows, _, _ = _parse(p)
    assert rows == [{"a": 1, "b": {"lat": 1, "lon": 2}}]


def test_row_too_large(tmp_path: Path) -> None:
    big = "x" * (50 << 20)
    nd = tmp_path / "big.ndjson"
    nd.write_text('{"a": 1}\n{"s": "' + big + '"}\n')
    with pytest.raises(ParseError) as err:
        _parse(nd, max_row_bytes=1 << 20)
    assert err.value.code == "row_too_large"
    arr = tmp_path / "big.json"
    arr.write_text('[{"a": 1}, {"s": "' + big + '"}]')
    with pytest.raises(ParseError) as err:
        _parse(arr, max_row_bytes=1 << 20)
    assert err.value.code == "row_too_large"
    # Under the cap the same row parses.
    rows, _, _ = _parse(arr, max_row_bytes=64 << 20)
    assert len(rows[1]["s"]) == 50 << 20


# --------------------------------------------------------------------------- Parquet


def test_parquet_streams_row_groups(tmp_path: Path) -> None:
    p = tmp_path / "d.parquet"
    table = pa.table({"i": list(range(10_000)), "s": [f"v{i}" for i in range(10_000)]})
    pq.write_table(table, p, row_group_size=3000)
    rows, _, batches = _parse(p, batch_rows=4000)
    assert len(rows) == 10_000 and rows[-1] == {"i": 9999, "s": "v9999"}
    assert all(b.table is not None and b.table.num_rows <= 4000 for b in batches)
    assert batches[0].table.schema.field("i").type == pa.int64()


def test_corrupt_parquet(tmp_path: Path) -> None:
    p = tmp_path / "bad.parquet"
    p.write_bytes(b"PAR1" + b"\x00garbage" * 100 + b"PAR1")
    with pytest.raises(ParseError) as err:
        _parse(p)
    assert err.value.code == "invalid_file"


# --------------------------------------------------------------------------- XLSX


def test_xlsx_values_dates_and_sheets(tmp_path: Path) -> None:
    import datetime as dt

    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "First"
    ws.append(["name", "n", "x", "ok", "day", "at"])
    ws.append(["alice", 3, 1.5, True, dt.date(2024, 3, 1), dt.datetime(2024, 3, 1, 12, 30)])
    ws.append(["bob", -2, 0.25, False, dt.date(1999, 12, 31), dt.datetime(2000, 1, 1, 0, 0, 1)])
    other = wb.create_sheet("Other")
    other.append(["k"])
    other.append(["v"])
    p = tmp_path / "w.xlsx"
    wb.save(p)
    rows, _, _ = _parse(p)
    assert rows == [
        {"name": "alice", "n": 3, "x": 1.5, "ok": True, "day": "2024-03-01", "at": "2024-03-01T12:30:00"},
        {"name": "bob", "n": -2, "x": 0.25, "ok": False, "day": "1999-12-31", "at": "2000-01-01T00:00:01"},
    ]
    rows, _, _ = _parse(p, sheet="Other")
    assert rows == [{"k": "v"}]
    with pytest.raises(ParseError) as err:
        _parse(p, sheet="Missing")
    assert err.value.code == "invalid_file"


def _handmade_xlsx(path: Path, sheet_xml: str) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>',
        )
        z.writestr(
            "xl/workbook.xml",
            '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
            'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
            '<sheets><sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>',
        )
        z.writestr(
            "xl/_rels/workbook.xml.rels",
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Target="worksheets/sheet1.xml" Type="worksheet"/></Relationships>',
        )
        z.writestr(
            "xl/sharedStrings.xml",
            '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            "<si><t>head</t></si><si><r><t>rich </t></r><r><t>text</t></r></si></sst>",
        )
        z.writestr("xl/worksheets/sheet1.xml", sheet_xml)


def test_xlsx_forged_dimension_streams_real_rows(tmp_path: Path) -> None:
    p = tmp_path / "forged.xlsx"
    _handmade_xlsx(
        p,
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<dimension ref="A1:Z1000000000"/><sheetData>'
        '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="C1" t="inlineStr"><is><t>other</t></is></c></row>'
        '<row r="2"><c r="A2" t="s"><v>1</v></c><c r="C2"><v>42</v></c></row>'
        '<row r="1000000000"><c r="A1000000000" t="b"><v>1</v></c></row>'
        "</sheetData></worksheet>",
    )
    before = _peak_rss_mb()
    rows, _, _ = _parse(p)
    assert rows == [
        {"head": "rich text", "column_2": None, "other": 42},
        {"head": True, "column_2": None, "other": None},
    ]
    assert _peak_rss_mb() - before < 100


def test_xlsx_too_many_columns_and_corrupt(tmp_path: Path) -> None:
    p = tmp_path / "wide.xlsx"
    _handmade_xlsx(
        p,
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
        '<row r="1"><c r="ZZZ1"><v>1</v></c></row></sheetData></worksheet>',
    )
    with pytest.raises(ParseError) as err:
        _parse(p)
    assert err.value.code == "too_many_columns"
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 200)
    with pytest.raises(ParseError) as err:
        _parse(bad)
    assert err.value.code == "invalid_file"


def test_csv_line_over_the_row_cap_is_a_reject(tmp_path: Path) -> None:
    p = tmp_path / "long.csv"
    p.write_text("a,b\n1,x\n2," + "y" * (3 << 20) + "\n3,z\n")
    rows, rejects, _ = _parse(p, max_row_bytes=1 << 20)
    assert rows == [{"a": "1", "b": "x"}, {"a": "3", "b": "z"}]
    assert [(r.line, r.reason, len(r.text)) for r in rejects] == [(3, "row too large", 1024)]
