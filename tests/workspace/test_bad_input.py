"""Bad input to ingestion and uploads: each refused with its code, nothing ingested, the server up."""

from __future__ import annotations

import gzip
import io
import zipfile

import httpx
import pytest

from tests.support.api import error_code


@pytest.fixture
def ns(api, unique):
    name = f"bad-{unique}"
    assert api.post("/namespaces", json={"name": name}).status_code == 201
    return name


def _wait(api, ingestion_id):
    return api.get(f"/ingestions/{ingestion_id}/wait", params={"timeout": 60}).json()


def _rows(api, ns, ds="d"):
    r = api.get(f"/namespaces/{ns}/datasets/{ds}")
    return r.json()["rows"] if r.status_code == 200 else 0


def test_a_zero_byte_file_is_refused(api, ns):
    r = api.post(f"/namespaces/{ns}/datasets/d/files", files={"file": ("empty.csv", b"")})
    assert r.status_code == 400 and error_code(r) == "empty_file"
    r = api.post("/uploads", json={"filename": "empty.csv", "size": 0})
    assert r.status_code == 400


def test_a_gzip_bomb_fails_its_ingestion_cleanly(fresh_server):
    fresh_server.extra_env["RUNYARD_INGEST_MAX_DECOMPRESSED_MB"] = "256"
    fresh_server.start()
    api = fresh_server.client()
    ns = "bomb"
    api.post("/namespaces", json={"name": ns})
    bomb = io.BytesIO()
    with gzip.GzipFile(fileobj=bomb, mode="wb", compresslevel=9) as gz:
        block = b"0" * (1 << 20)
        for _ in range(2048):  # 2 GiB of zeros in about 2 MB
            gz.write(block)
    r = api.post(f"/namespaces/{ns}/datasets/d/files", files={"file": ("bomb.csv.gz", bomb.getvalue())})
    assert r.status_code == 202, r.text
    done = _wait(api, r.json()["id"])
    assert done["status"] == "failed" and "decompression_limit" in done["status_message"], done
    assert _rows(api, ns) == 0
    assert api.get("/me").status_code == 200  # the server is fine
    api.close()


def test_an_xlsx_claiming_a_billion_rows_reads_its_real_ones(api, ns):
    sheet = ('<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/'
             'spreadsheetml/2006/main"><dimension ref="A1:Z1000000000"/><sheetData>'
             '<row r="1"><c r="A1" t="inlineStr"><is><t>name</t></is></c><c r="B1" t="inlineStr"><is><t>n</t></is></c></row>'
             '<row r="2"><c r="A2" t="inlineStr"><is><t>x</t></is></c><c r="B2"><v>1</v></c></row>'
             '</sheetData></worksheet>')
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/'
                   'package/2006/content-types"/>')
        z.writestr("xl/workbook.xml", '<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/'
                   'spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/'
                   'relationships"><sheets><sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>')
        z.writestr("xl/_rels/workbook.xml.rels", '<?xml version="1.0"?><Relationships xmlns="http://schemas.'
                   'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.'
                   'openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
                   '</Relationships>')
        z.writestr("xl/worksheets/sheet1.xml", sheet)
    r = api.post(f"/namespaces/{ns}/datasets/d/files", files={"file": ("big.xlsx", buf.getvalue())})
    done = _wait(api, r.json()["id"])
    assert done["status"] == "succeeded", done["status_message"]
    assert _rows(api, ns) == 1


def test_invalid_utf8_lines_are_rejects_not_failures(api, ns):
    data = b"a,b\n1,ok\n2,\xff\xfe bad\n3,fine\n"
    r = api.post(f"/namespaces/{ns}/datasets/d/files", files={"file": ("u.csv", data)},
                 data={"options": '{"encoding": "utf-8"}'})
    done = _wait(api, r.json()["id"])
    assert done["status"] == "succeeded", done["status_message"]
    assert _rows(api, ns) == 2 and done["failed_rows"] == 1


def test_upload_parts_bad_sizes_order_and_signatures(api, ns):
    size = 6 * 1024 * 1024
    data = b"a,b\n" + b"1,2\n" * ((size - 4) // 4)
    data = data[:size]
    upload = api.post("/uploads", json={"filename": "x.csv", "size": size, "part_size": 5 * 1024 * 1024}).json()
    first, second = upload["parts"]
    with httpx.Client(timeout=60) as anonymous:
        too_big = anonymous.put(second["url"], content=data[5 * 1024 * 1024:] + b"extra")
        assert too_big.status_code == 400 and error_code(too_big) == "part_size_mismatch"
        # a part's URL is bound to its part number
        other = second["url"].replace("/parts/2?", "/parts/1?")
        assert anonymous.put(other, content=data[: 5 * 1024 * 1024]).status_code == 403
        e1 = anonymous.put(first["url"], content=data[: 5 * 1024 * 1024]).json()["etag"]
    missing = api.post(f"/uploads/{upload['id']}/complete", json={
        "key": upload["key"], "parts": [{"part_number": 1, "etag": e1}], "namespace": ns, "dataset": "d"})
    assert missing.status_code == 400 and error_code(missing) == "missing_part"
    with httpx.Client(timeout=60) as anonymous:
        e2 = anonymous.put(second["url"], content=data[5 * 1024 * 1024:]).json()["etag"]
    for parts, code in (([{"part_number": 2, "etag": e2}, {"part_number": 1, "etag": e1}], "invalid_part_order"),
                        ([{"part_number": 1, "etag": e1}, {"part_number": 1, "etag": e1}], "invalid_part_order"),
                        ([{"part_number": 1, "etag": e1}, {"part_number": 2, "etag": "0" * 32}], "invalid_part")):
        r = api.post(f"/uploads/{upload['id']}/complete", json={"key": upload["key"], "parts": parts,
                                                               "namespace": ns, "dataset": "d"})
        assert r.status_code == 400 and error_code(r) == code, (parts, r.text)
    assert _rows(api, ns) == 0
    # Someone else's key cannot complete it, an aborted upload takes no more parts.
    assert api.delete(f"/uploads/{upload['id']}").status_code == 204
    with httpx.Client(timeout=60) as anonymous:
        late = anonymous.put(first["url"], content=data[: 5 * 1024 * 1024])
    assert late.status_code == 409 and error_code(late) == "upload_aborted"


def test_another_users_upload_is_not_there(api, server, ns, unique):
    user = api.post("/users", json={"username": f"u{unique}", "role": "member", "password": "long enough pw"})
    assert user.status_code == 201, user.text
    key = api.post("/tokens", json={"name": "other", "role": "member", "user": f"u{unique}"}).json()["key"]
    upload = api.post("/uploads", json={"filename": "x.csv", "size": 10}).json()
    with server.client(key) as other:
        r = other.post(f"/uploads/{upload['id']}/complete", json={"key": upload["key"], "parts": [],
                                                                  "namespace": ns, "dataset": "d"})
        assert r.status_code == 404 and error_code(r) == "upload_not_found"
        assert other.get(f"/namespaces/{ns}").status_code == 404  # private: not shared with them


def test_storage_quota_refuses_an_upload_before_any_byte(fresh_server):
    fresh_server.extra_env["RUNYARD_STORAGE_QUOTA_BYTES"] = "1000"
    fresh_server.start()
    with fresh_server.client() as api:
        r = api.post("/uploads", json={"filename": "x.csv", "size": 5000})
        assert r.status_code == 413 and error_code(r) == "storage_quota_exceeded"
        api.post("/namespaces", json={"name": "q"})
        ok = api.post("/namespaces/q/datasets/d/rows", params={"create": "true"}, json=[{"a": 1}])
        assert ok.status_code == 201
        big = api.post("/namespaces/q/datasets/d/rows", json=[{"b": "x" * 2000}])
        assert big.status_code == 413 and error_code(big) == "storage_quota_exceeded"


def test_a_50_mb_json_row_is_refused_whole(api, ns):
    r = api.post(f"/namespaces/{ns}/datasets/d/rows", params={"create": "true"},
                 content=b'[{"a": "' + b"x" * (50 * 1024 * 1024) + b'"}]', headers={"content-type": "application/json"})
    assert r.status_code == 413 and error_code(r) == "payload_too_large"
    assert _rows(api, ns) == 0
