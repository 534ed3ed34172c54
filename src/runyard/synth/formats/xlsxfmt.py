"""XLSX, streamed as it is made: a ZIP written front to back, the sheet deflated row by row.

An XLSX file is a ZIP of XML parts. The small parts (content types, relationships, the
workbook, styles) go first; the worksheet follows as one deflated entry whose XML is
built column-wise with Arrow string kernels, block by block; the ZIP's central
directory closes the stream. Entries carry data descriptors (sizes after the data), so
nothing ever needs to seek back: the first bytes leave before the first row is made,
memory stays at one block, and no temporary file exists.

Cells hold inline strings, numbers, booleans, or date serials with a date format;
text is always text (never a formula, a number or a link). Bytes depend only on the
plan: the sheet entry is fed whole blocks, whatever the chunk size used to feed the
encoder, and every ZIP timestamp is fixed.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import GenerationError
from ..generators.strings import concat_bytes
from ..seeding import BLOCK_ROWS
from .base import Encoder
from .literals import text_of
from .parquetfmt import _DrainSink

MAX_XLSX_ROWS = 1_048_575  # Excel's sheet limit minus the header row
MAX_CELL_CHARS = 32_767  # Excel's limit for the text of one cell
FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)  # ZIP timestamps: fixed, so the bytes are reproducible
COMPRESS_LEVEL = 1  # zlib level: XML compresses well even at 1, which is several times faster than 6
ZIP64_LIMIT = (1 << 31) - 1
EXCEL_EPOCH_OFFSET = 25_569  # days from 1899-12-30 to 1970-01-01
SECONDS_PER_DAY = 86_400

MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
XML_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'

CONTENT_TYPES = XML_HEAD + (
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/styles.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
    '</Types>'
)
ROOT_RELS = XML_HEAD + (
    f'<Relationships xmlns="{PKG_REL_NS}">'
    f'<Relationship Id="rId1" Type="{REL_NS}/officeDocument" Target="xl/workbook.xml"/>'
    '</Relationships>'
)
WORKBOOK_RELS = XML_HEAD + (
    f'<Relationships xmlns="{PKG_REL_NS}">'
    f'<Relationship Id="rId1" Type="{REL_NS}/worksheet" Target="worksheets/sheet1.xml"/>'
    f'<Relationship Id="rId2" Type="{REL_NS}/styles" Target="styles.xml"/>'
    '</Relationships>'
)
# Style 0: general; 1: date; 2: date and time; 3: time of day.
STYLE_DATE, STYLE_DATETIME, STYLE_TIME = 1, 2, 3
STYLES = XML_HEAD + (
    f'<styleSheet xmlns="{MAIN_NS}">'
    '<numFmts count="3"><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/>'
    '<numFmt numFmtId="165" formatCode="yyyy-mm-dd hh:mm:ss"/><numFmt numFmtId="166" formatCode="hh:mm:ss"/>'
    '</numFmts>'
    '<fonts count="1"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="4"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="166" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '</cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    '</styleSheet>'
)
# Characters XML 1.0 cannot carry, and text that Excel would read as one of its escapes.
_XML_ILLEGAL = r"[\x00-\x08\x0b\x0c\x0e-\x1f]|_x[0-9A-Fa-f]{4}_"
_XML_ILLEGAL_RE = re.compile(_XML_ILLEGAL)
_XML_SPECIAL = r"[&<>]"


def column_letters(index: int) -> str:
    """0 → A, 25 → Z, 26 → AA …"""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def xml_text(values: pa.Array) -> pa.Array:
    """Strings escaped for XML element content, in Excel's ``_xHHHH_`` form where XML has no way."""
    if pc.any(pc.match_substring_regex(values, _XML_SPECIAL)).as_py():
        values = pc.replace_substring(values, "&", "&amp;")
        values = pc.replace_substring(values, "<", "&lt;")
        values = pc.replace_substring(values, ">", "&gt;")
    odd = pc.match_substring_regex(values, _XML_ILLEGAL)
    if pc.any(odd).as_py():
        # Rare: control characters (and literal "_xHHHH_") are fixed row by row in Python.
        rows = np.nonzero(odd.fill_null(False).to_numpy(zero_copy_only=False))[0]
        fixed = values.to_pylist()
        for i in rows:
            fixed[i] = _XML_ILLEGAL_RE.sub(_excel_escape, fixed[i])
        values = pa.array(fixed, pa.string())
    return values


def _excel_escape(match: re.Match[str]) -> str:
    text = match.group(0)
    if len(text) == 1:
        return f"_x{ord(text):04X}_"
    return "_x005F_" + text  # a literal "_x0041_" stays literal


def _excel_serial(days: pa.Array) -> pa.Array:
    """Days since 1970 → Excel's serial (1900 system, with its phantom 29 Feb 1900)."""
    serial = pc.add(days, EXCEL_EPOCH_OFFSET)
    return pc.if_else(pc.less(serial, 61), pc.subtract(serial, 1), serial)


def _seconds(values: pa.Array) -> pa.Array:
    unit = getattr(values.type, "unit", "s")
    per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[unit]
    raw = pc.cast(values, pa.int64() if values.type.bit_width == 64 else pa.int32())
    return pc.divide(pc.cast(raw, pa.float64()), float(per_second))


class XlsxEncoder(Encoder):
    name = "xlsx"
    media_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    extension = "xlsx"
    parallel = False
    block_stage = True
    option_names = frozenset({"sheet"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.count > MAX_XLSX_ROWS:
            raise GenerationError(f"xlsx holds at most {MAX_XLSX_ROWS:,} rows; {self.count:,} requested",
                                  code="count_too_large", available=MAX_XLSX_ROWS, requested=self.count)
        sheet = self.options.get("sheet", "data")
        if not isinstance(sheet, str) or not 1 <= len(sheet) <= 31 or any(c in sheet for c in "[]:*?/\\"):
            raise self.option_error("sheet", "must be 1-31 characters without []:*?/\\")
        self.sheet_name = sheet
        self.letters = [column_letters(i) for i in range(len(self.schema))]
        self.sink = _DrainSink()
        self.zip: zipfile.ZipFile | None = None
        self.entry: Any = None
        self.pending: list[pa.RecordBatch] = []

    # -- the package around the sheet -------------------------------------------------

    def _info(self, name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        # A ZipInfo passed to open()/writestr() brings its own level (an alias of
        # ``compress_level`` from Python 3.13).
        info._compresslevel = COMPRESS_LEVEL  # type: ignore[attr-defined]
        info.external_attr = 0o600 << 16
        return info

    def header(self) -> bytes:
        # A sink without seek(): zipfile writes data descriptors and never goes back.
        self.zip = zipfile.ZipFile(self.sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL)
        workbook = XML_HEAD + (
            f'<workbook xmlns="{MAIN_NS}" xmlns:r="{REL_NS}"><sheets>'
            f'<sheet name="{escape(self.sheet_name, {chr(34): "&quot;"})}" sheetId="1" r:id="rId1"/>'
            '</sheets></workbook>'
        )
        for name, text in (("[Content_Types].xml", CONTENT_TYPES), ("_rels/.rels", ROOT_RELS),
                           ("xl/workbook.xml", workbook), ("xl/_rels/workbook.xml.rels", WORKBOOK_RELS),
                           ("xl/styles.xml", STYLES)):
            self.zip.writestr(self._info(name), text)
        return self.sink.drain()

    def _open_sheet(self, first_block: bytes, first_rows: int) -> None:
        assert self.zip is not None
        # Zip64 only when the sheet may pass 2 GiB (estimated from the first block, so
        # the choice, like every byte, depends only on the plan).
        per_row = len(first_block) / max(1, first_rows)
        zip64 = per_row * self.count * 1.5 > ZIP64_LIMIT
        self.entry = self.zip.open(self._info("xl/worksheets/sheet1.xml"), "w", force_zip64=zip64)
        columns = len(self.schema)
        last = f"{self.letters[-1]}{self.count + 1}" if columns else "A1"
        header_cells = "".join(
            f'<c r="{letter}1" t="inlineStr"><is><t xml:space="preserve">{escape(name)}</t></is></c>'
            for letter, name in zip(self.letters, self.schema.names, strict=True))
        self.entry.write((XML_HEAD + f'<worksheet xmlns="{MAIN_NS}" xmlns:r="{REL_NS}">'
                          f'<dimension ref="A1:{last}"/><sheetData><row r="1">{header_cells}</row>').encode())

    # -- rows ---------------------------------------------------------------------------

    def _cells(self, column: pa.Array, letter: str, rows: pa.Array) -> pa.Array:
        """One column of a block as ``<c>`` elements ("" where the value is null)."""
        t = column.type
        style = 0
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            text = pc.utf8_slice_codeunits(column, 0, MAX_CELL_CHARS) if len(column) else column
            return self._join(letter, rows, '" t="inlineStr"><is><t xml:space="preserve">', xml_text(text),
                              "</t></is></c>")
        if pa.types.is_boolean(t):
            return self._join(letter, rows, '" t="b"><v>', pc.if_else(column, "1", "0"), "</v></c>")
        if pa.types.is_date(t):
            days = pc.cast(pc.cast(column, pa.date32()), pa.int32())
            value: pa.Array = _excel_serial(pc.cast(days, pa.int64()))
            style = STYLE_DATE
        elif pa.types.is_timestamp(t):
            value = _excel_serial(pc.divide(_seconds(column), float(SECONDS_PER_DAY)))
            style = STYLE_DATETIME
        elif pa.types.is_time(t):
            value = pc.divide(_seconds(column), float(SECONDS_PER_DAY))
            style = STYLE_TIME
        elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            value = column
        else:
            text = text_of(column) if not pa.types.is_null(t) else column.cast(pa.string())
            return self._join(letter, rows, '" t="inlineStr"><is><t xml:space="preserve">', xml_text(text),
                              "</t></is></c>")
        if pa.types.is_floating(value.type):
            value = pc.if_else(pc.is_finite(value), value, pa.scalar(None, value.type))
        middle = f'" s="{style}"><v>' if style else '"><v>'
        return self._join(letter, rows, middle, text_of(value), "</v></c>")

    @staticmethod
    def _join(letter: str, rows: pa.Array, middle: str, value: pa.Array, tail: str) -> pa.Array:
        # Null values propagate through the join; an absent cell is an empty string.
        return pc.binary_join_element_wise(f'<c r="{letter}', rows, middle, value, tail, "").fill_null("")

    def _render(self, batch: pa.RecordBatch, row_start: int) -> bytes:
        if batch.num_rows == 0:
            return b""
        rows = pc.cast(pa.array(np.arange(row_start + 2, row_start + 2 + batch.num_rows, dtype=np.int64)),
                       pa.string())
        parts: list[Any] = ['<row r="', rows, '">']
        for column, letter in zip(batch.columns, self.letters, strict=True):
            parts.append(self._cells(column, letter, rows))
        parts.append("</row>")
        return concat_bytes(pc.binary_join_element_wise(*parts, ""))

    def stage_block(self, batch: pa.RecordBatch, row_start: int) -> tuple[bytes, int]:
        return self._render(batch, row_start), batch.num_rows

    def encode_staged(self, staged: tuple[bytes, int], row_start: int) -> bytes:
        self._write_block(*staged)
        return self.sink.drain()

    def _write_block(self, xml: bytes, rows: int) -> None:
        if self.entry is None:
            self._open_sheet(xml, rows)
        self.entry.write(xml)

    def encode(self, batch: pa.RecordBatch, row_start: int) -> bytes:
        self.pending.append(batch)
        end = row_start + batch.num_rows
        # The sheet entry is fed whole blocks, so the deflated bytes never depend on
        # the chunk size used to feed the encoder.
        if end % BLOCK_ROWS == 0 or end == self.count:
            self._flush(end)
        return self.sink.drain()

    def _flush(self, end: int) -> None:
        if not self.pending:
            return
        start = end - sum(b.num_rows for b in self.pending)
        table = pa.Table.from_batches(self.pending, schema=self.schema).combine_chunks()
        self.pending.clear()
        batches = table.to_batches()
        self._write_block(self._render(batches[0], start) if batches else b"", table.num_rows)

    def finish(self) -> Iterator[bytes]:
        self._flush(self.count)
        if self.entry is None:
            self._open_sheet(b"", 0)
        self.entry.write(b"</sheetData></worksheet>")
        self.entry.close()
        self.entry = None
        assert self.zip is not None
        self.zip.close()
        self.zip = None
        yield self.sink.drain()

    def close(self) -> None:
        # An aborted stream holds only memory: drop it (there is no file to remove).
        self.pending.clear()
        self.entry = None
        self.zip = None
        self.sink.drain()
