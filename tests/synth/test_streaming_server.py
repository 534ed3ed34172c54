"""Generation through a real server: XLSX streams at the sheet limit, a client that goes
away stops the work and leaves nothing on disk, and template versions keep determinism."""

from __future__ import annotations

import copy
import csv
import io
import os
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest

from runyard import synth
from tests.support.synth import CUSTOMERS

MAX_XLSX_ROWS = 1_048_575


def _create(api: httpx.Client, doc: dict[str, Any]) -> dict[str, Any]:
    resp = api.post("/templates", json=doc)
    assert resp.status_code == 201, resp.text
    return resp.json()


def _columns(text: str) -> dict[str, list[str]]:
    rows = list(csv.DictReader(io.StringIO(text)))
    return {name: [r[name] for r in rows] for name in (rows[0] if rows else {})}


@pytest.mark.slow
def test_a_full_xlsx_sheet_streams_from_the_first_second(api, unique, tmp_path):
    tid = _create(api, dict(CUSTOMERS, name=f"xl_{unique}"))["id"]
    out = tmp_path / "full.xlsx"
    started = time.monotonic()
    first_byte = None
    # The client's default 60 s timeout is between pieces, never the whole download.
    with api.stream("POST", f"/templates/{tid}/generate",
                    json={"count": MAX_XLSX_ROWS, "format": "xlsx", "seed": 3}, timeout=60) as resp, \
            out.open("wb") as fh:
        assert resp.status_code == 200
        for piece in resp.iter_bytes():
            if first_byte is None and piece:
                first_byte = time.monotonic() - started
            fh.write(piece)
    assert first_byte is not None and first_byte < 1.0, first_byte
    with zipfile.ZipFile(out) as zf:
        sheet = zf.getinfo("xl/worksheets/sheet1.xml")
        assert sheet.file_size > 100 * MAX_XLSX_ROWS
        with zf.open(sheet) as fh:
            head = fh.read(4096).decode()
        assert f'<dimension ref="A1:H{MAX_XLSX_ROWS + 1}"/>' in head
        with zf.open(sheet) as fh:  # the last row is there, the XML closes
            fh.seek(sheet.file_size - 4096)
            tail = fh.read().decode()
        assert f'<row r="{MAX_XLSX_ROWS + 1}">' in tail and tail.endswith("</sheetData></worksheet>")
    rows = openpyxl.load_workbook(out, read_only=True).active.iter_rows(max_row=3, values_only=True)
    assert [r[0] for r in rows] == ["id", 1, 2]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _leftovers(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.rglob("*") if "synth" in p.name or p.suffix in (".xlsx", ".parquet"))


@pytest.mark.slow
def test_a_client_that_goes_away_stops_the_work_and_leaves_nothing(fresh_server, tmp_path, unique):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    fresh_server.extra_env = {"TMPDIR": str(tmp)}
    fresh_server.start()
    assert fresh_server.proc is not None
    pid = fresh_server.proc.pid
    with fresh_server.client() as api:
        tid = _create(api, dict(CUSTOMERS, name=f"gone_{unique}"))["id"]
        for fmt, count in (("xlsx", MAX_XLSX_ROWS), ("csv", 200_000_000)):
            with api.stream("POST", f"/templates/{tid}/generate",
                            json={"count": count, "format": fmt, "seed": 1}) as resp:
                assert resp.status_code == 200
                received = 0
                for piece in resp.iter_bytes():
                    received += len(piece)
                    if received > 1_000_000:
                        break
            # The connection is closed mid-stream. Within a block or two the server is idle.
            deadline = time.monotonic() + 20
            while True:
                before = _cpu_seconds(pid)
                time.sleep(1.0)
                busy = _cpu_seconds(pid) - before
                if busy < 0.3 or time.monotonic() > deadline:
                    break
            assert busy < 0.3, f"{fmt}: the server still burns {busy:.2f} CPU-s per second"
            assert _leftovers(tmp) == [], fmt
        # The generation's request ended (the access log writes its line when it does).
        assert f"POST /api/v1/templates/{tid}/generate 200" in fresh_server.logs()
    fresh_server.stop()
    assert _leftovers(tmp) == []
    assert "Cancel" not in fresh_server.logs()  # nothing left running at shutdown


def test_template_versions_keep_determinism_through_the_server(api, unique):
    doc = dict(copy.deepcopy(CUSTOMERS), name=f"det_{unique}")
    created = _create(api, doc)
    tid = created["id"]
    assert created["seeding"] == 2

    def generate(**body: Any) -> dict[str, list[str]]:
        resp = api.post(f"/templates/{tid}/generate", json={"count": 300, "format": "csv", "seed": 42, **body})
        assert resp.status_code == 200, resp.text
        return _columns(resp.text)

    v1 = generate()
    # The same document again: no new version, the same bytes.
    same = api.patch(f"/templates/{tid}", json={"fields": doc["fields"], "locale": doc["locale"]})
    assert same.status_code == 200 and same.json()["version"] == 1
    assert [v["version"] for v in api.get(f"/templates/{tid}/versions").json()["items"]] == [1]

    # Add a field: every other column stays as it was.
    added = api.patch(f"/templates/{tid}", json={"fields": [*doc["fields"][:2],
                                                           {"name": "vip", "generator": "boolean"},
                                                           *doc["fields"][2:]]}).json()
    assert added["version"] == 2
    v2 = generate()
    assert {k: v for k, v in v2.items() if k != "vip"} == v1
    # Remove one: the rest are unchanged again.
    removed = api.patch(f"/templates/{tid}", json={"fields": [f for f in doc["fields"] if f["name"] != "city"]})
    assert removed.json()["version"] == 3
    assert generate() == {k: v for k, v in v1.items() if k != "city"}
    # Override one for a request: only that column changes.
    overridden = generate(version=1, overrides={"tier": "gold"})
    assert overridden["tier"] == ["gold"] * 300
    assert {k: v for k, v in overridden.items() if k != "tier"} == {k: v for k, v in v1.items() if k != "tier"}
    # An old version still gives its own bytes.
    assert generate(version=1) == v1


def test_versions_made_under_seeding_1_reproduce_their_bytes(api, unique):
    doc = dict(copy.deepcopy(CUSTOMERS), name=f"old_{unique}", seeding=1)
    tid = _create(api, doc)["id"]
    resp = api.post(f"/templates/{tid}/generate", json={"count": 500, "format": "csv", "seed": 9})
    local = synth.plan_generation(synth.parse_template(doc), count=500, seed=9, version=1)
    assert resp.content == b"".join(synth.stream(local, "csv"))
    # Scheme 1 mixed the version in: that is kept for the versions made under it, while
    # an update makes its new version under the current scheme.
    updated = api.patch(f"/templates/{tid}", json={"description": "now on scheme 2"}).json()
    assert updated["version"] == 2 and updated["seeding"] == 2
    again = api.post(f"/templates/{tid}/generate", json={"count": 500, "format": "csv", "seed": 9, "version": 1})
    assert again.content == resp.content
    refused = api.patch(f"/templates/{tid}", json={"seeding": 1})
    assert refused.status_code == 400
