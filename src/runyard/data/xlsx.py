"""A small streaming XLSX reader: ``zipfile`` + ``ElementTree.iterparse``.

openpyxl is not a server dependency, and an upload must not be trusted: the ``<dimension>``
element is ignored (a forged one may claim a billion rows), each row is dropped once read, every
zip member is read through a byte cap (zip bombs), and shared strings have their own cap since
they must be held in memory.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from xml.etree import ElementTree as ET

NS_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
NS_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
NS_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_M = "{" + NS_MAIN + "}"

# Built-in number formats that are dates or times (ECMA-376 18.8.30).
_BUILTIN_DATE_FORMATS = {14, 15, 16, 17, 18, 19, 20, 21, 22, 27, 30, 36, 45, 46, 47, 50, 57}
_CELL_REF = re.compile(r"([A-Z]{1,3})(\d+)")
_EPOCH_1900 = dt.datetime(1899, 12, 30)  # includes Excel's fictitious 1900-02-29
_EPOCH_1904 = dt.datetime(1904, 1, 1)


class XlsxError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _CappedMember:
    """A zip member's stream that fails once more than ``cap`` bytes came out of it."""

    def __init__(self, raw: IO[bytes], cap: int, budget: list[int]) -> None:
        self._raw = raw
        self._cap = cap
        self._budget = budget  # shared across members: [bytes left for the whole workbook]

    def read(self, size: int = -1) -> bytes:
        size = 1 << 16 if size is None or size < 0 else min(size, 1 << 20)
        data = self._raw.read(size)
        self._cap -= len(data)
        self._budget[0] -= len(data)
        if self._cap < 0 or self._budget[0] < 0:
            raise XlsxError("decompression_limit", "the workbook decompresses to more than its cap")
        return data


def _col_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ord(ch) - 64)
    return n - 1


def _is_date_format(code: str) -> bool:
    # Drop quoted literals, [colour]/[locale] sections and escaped chars before looking for d/m/y/h/s.
    stripped = re.sub(r'"[^"]*"|\[[^\]]*\]|\\.', "", code).lower()
    return bool(re.search(r"[dmyhs]", stripped)) and "general" not in stripped


class XlsxReader:
    def __init__(
        self,
        path: Path,
        *,
        max_decompressed_bytes: int,
        max_shared_strings_bytes: int = 256 << 20,
    ) -> None:
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise XlsxError("invalid_file", f"not a valid XLSX (zip) file: {exc}") from exc
        self._budget = [max_decompressed_bytes]
        self._cap = max_decompressed_bytes
        self._max_shared = max_shared_strings_bytes
        self._names = set(self._zip.namelist())
        self.date1904 = False
        self.sheets = self._read_workbook()
        self._shared: list[str] | None = None
        self._date_styles: set[int] | None = None

    def close(self) -> None:
        self._zip.close()

    def position(self) -> int:
        """How far into the zip file reading has got (progress)."""
        fp = self._zip.fp
        try:
            return int(fp.tell()) if fp is not None else 0
        except (OSError, ValueError):
            return 0

    def _open(self, name: str) -> _CappedMember:
        if name not in self._names:
            raise XlsxError("invalid_file", f"the workbook has no {name}")
        try:
            return _CappedMember(self._zip.open(name), self._cap, self._budget)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
            raise XlsxError("invalid_file", f"cannot read {name}: {exc}") from exc

    def _iter(self, name: str, events: tuple[str, ...] = ("end",)) -> Iterator[tuple[str, ET.Element]]:
        try:
            yield from ET.iterparse(self._open(name), events=events)  # type: ignore[arg-type]
        except ET.ParseError as exc:
            raise XlsxError("invalid_file", f"{name} is not valid XML: {exc}") from exc
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise XlsxError("invalid_file", f"cannot read {name}: {exc}") from exc

    def _read_workbook(self) -> list[tuple[str, str]]:
        """(sheet name, member path) in workbook order."""
        rels: dict[str, str] = {}
        if "xl/_rels/workbook.xml.rels" in self._names:
            for _, el in self._iter("xl/_rels/workbook.xml.rels"):
                if el.tag == "{" + NS_PKG_REL + "}Relationship":
                    target = el.get("Target", "")
                    path = target.lstrip("/") if target.startswith("/") else posixpath.join("xl", target)
                    rels[el.get("Id", "")] = posixpath.normpath(path)
        sheets: list[tuple[str, str]] = []
        for _, el in self._iter("xl/workbook.xml"):
            if el.tag == _M + "workbookPr" and el.get("date1904") in ("1", "true"):
                self.date1904 = True
            elif el.tag == _M + "sheet":
                rid = el.get("{" + NS_REL + "}id", "")
                target = rels.get(rid) or f"xl/worksheets/sheet{len(sheets) + 1}.xml"
                sheets.append((el.get("name", f"Sheet{len(sheets) + 1}"), target))
        if not sheets:
            raise XlsxError("invalid_file", "the workbook has no sheets")
        return sheets

    def _load_shared(self) -> list[str]:
        shared: list[str] = []
        if "xl/sharedStrings.xml" not in self._names:
            return shared
        total = 0
        for _, el in self._iter("xl/sharedStrings.xml"):
            if el.tag == _M + "si":
                # Rich text runs (<r><t>) and plain <t>; phonetic runs (<rPh>) are not the text.
                text = "".join(t.text or "" for t in el.iter(_M + "t") if not _in_rph(el, t))
                total += len(text)
                if total > self._max_shared:
                    raise XlsxError("decompression_limit", "the workbook's shared strings exceed their cap")
                shared.append(text)
                el.clear()
        return shared

    def _load_date_styles(self) -> set[int]:
        dates: set[int] = set()
        if "xl/styles.xml" not in self._names:
            return dates
        custom: dict[int, str] = {}
        in_xfs = False
        index = 0
        for event, el in self._iter("xl/styles.xml", ("start", "end")):
            if el.tag == _M + "numFmt" and event == "end":
                try:
                    custom[int(el.get("numFmtId", "-1"))] = el.get("formatCode", "")
                except ValueError:
                    pass
            elif el.tag == _M + "cellXfs":
                in_xfs = event == "start"
            elif el.tag == _M + "xf" and in_xfs and event == "end":
                try:
                    fmt = int(el.get("numFmtId", "0"))
                except ValueError:
                    fmt = 0
                if fmt in _BUILTIN_DATE_FORMATS or (fmt in custom and _is_date_format(custom[fmt])):
                    dates.add(index)
                index += 1
        return dates

    def sheet_path(self, sheet: str | None) -> str:
        if sheet is None:
            return self.sheets[0][1]
        for name, path in self.sheets:
            if name == sheet:
                return path
        raise XlsxError("invalid_file", f"the workbook has no sheet named {sheet!r}")

    def iter_rows(self, sheet: str | None, *, max_rows: int, max_columns: int) -> Iterator[tuple[int, list[object]]]:
        """(1-based row number, cell values) for each non-empty row, streaming."""
        path = self.sheet_path(sheet)
        if self._shared is None:
            self._shared = self._load_shared()
            self._date_styles = self._load_date_styles()
        shared = self._shared
        date_styles = self._date_styles or set()
        epoch = _EPOCH_1904 if self.date1904 else _EPOCH_1900
        row_no = 0
        count = 0
        parent: ET.Element | None = None
        for event, el in self._iter(path, ("start", "end")):
            if event == "start":
                if el.tag == _M + "sheetData":
                    parent = el
                continue
            if el.tag != _M + "row":
                continue
            r = el.get("r")
            row_no = int(r) if r and r.isdigit() else row_no + 1
            values: list[object] = []
            for c in el.iter(_M + "c"):
                ref = c.get("r")
                if ref:
                    m = _CELL_REF.match(ref)
                    col = _col_index(m.group(1)) if m else len(values)
                else:
                    col = len(values)
                if col >= max_columns:
                    raise XlsxError("too_many_columns", f"a row has more than {max_columns} columns")
                value = _cell_value(c, shared, date_styles, epoch)
                if col >= len(values):
                    values.extend([None] * (col + 1 - len(values)))
                values[col] = value
            # Drop the parsed row so memory stays bounded whatever the sheet's size.
            el.clear()
            if parent is not None:
                parent.remove(el)
            if not any(v is not None and v != "" for v in values):
                continue
            count += 1
            if count > max_rows:
                raise XlsxError("too_many_rows", f"the sheet has more than {max_rows} rows")
            yield row_no, values


def _in_rph(si: ET.Element, t: ET.Element) -> bool:
    return any(t in list(rph.iter()) for rph in si.iter(_M + "rPh"))


def _cell_value(c: ET.Element, shared: list[str], date_styles: set[int], epoch: dt.datetime) -> object:
    kind = c.get("t", "n")
    if kind == "inlineStr":
        return "".join(t.text or "" for t in c.iter(_M + "t"))
    v = c.find(_M + "v")
    text = v.text if v is not None else None
    if text is None:
        return None
    if kind == "s":
        try:
            return shared[int(text)]
        except (ValueError, IndexError):
            return None
    if kind == "b":
        return text.strip() in ("1", "true")
    if kind in ("str", "e"):
        return text if kind == "str" else None
    if kind == "d":
        return text  # ISO 8601 already
    try:
        num = float(text)
    except ValueError:
        return text
    style = c.get("s")
    if style and style.isdigit() and int(style) in date_styles:
        try:
            # Excel keeps times as fractions of a day: round to the millisecond it displays.
            stamp = epoch + dt.timedelta(milliseconds=round(num * 86_400_000))
        except (OverflowError, ValueError):
            return num
        if num == int(num):
            return stamp.date().isoformat()
        return stamp.isoformat()
    if num.is_integer() and not any(ch in text for ch in ".eE"):
        return int(text) if abs(num) < 2**63 else num
    return num
