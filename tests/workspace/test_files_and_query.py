"""File ingestion (one request and multipart uploads), ingestion records and SQL queries."""

from __future__ import annotations

import gzip
import io
import json

import httpx
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from tests.support.api import error_code

CSV = b"city,amount,day\nOslo,3,2024-01-02\nRome,4.5,2024-01-03\nLima,oops,2024-01-04\n\"bad,1\nKyiv,2,2024-01-05\n"


def _wait(api, ingestion_id, timeout=60):
    r = api.get(f"/ingestions/{ingestion_id}/wait", params={"timeout": timeout})
    assert r.status_code == 200, r.text
    return r.json()


def test_csv_file_ingestion_with_rejects(api, unique):
    ns = f"files-{unique}"
    api.post("/namespaces", json={"name": ns})
    r = api.post(f"/namespaces/{ns}/datasets/sales/files", files={"file": ("sales.csv", CSV, "text/csv")})
    assert r.status_code == 202, r.text
    done = _wait(api, r.json()["id"])
    assert done["status"] == "succeeded", done["status_message"]
    info = api.get(f"/namespaces/{ns}/datasets/sales").json()
    assert info["rows"] >= 3
    rejects = api.get(f"/ingestions/{done['id']}/rejects").json()["items"]
    assert rejects and all(r["line"] >= 1 and r["reason"] for r in rejects)
    listed = api.get(f"/namespaces/{ns}/datasets/sales/ingestions", params={"limit": 5}).json()["items"]
    assert listed[0]["id"] == done["id"]
    assert api.post(f"/ingestions/{done['id']}/seen").json()["seen"] is True


def test_multipart_upload_then_query(api, server, unique):
    ns = f"up-{unique}"
    api.post("/namespaces", json={"name": ns})
    lines = ["city,amount"] + [f"c{i % 7},{i}" for i in range(300_000)]
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    part_size = 5 * 1024 * 1024
    created = api.post("/uploads", json={"filename": "big.csv.gz", "size": len(data), "part_size": part_size})
    assert created.status_code == 201, created.text
    upload = created.json()
    etags = []
    with httpx.Client(timeout=60) as anonymous:  # signed URLs need no bearer key
        for part in upload["parts"]:
            n = part["part_number"]
            chunk = data[(n - 1) * part_size: n * part_size]
            put = anonymous.put(part["url"], content=chunk)
            assert put.status_code == 200, put.text
            etags.append({"part_number": n, "etag": put.json()["etag"]})
        # Tampered signature, or another part number with the same signature: refused.
        url = upload["parts"][0]["url"]
        assert anonymous.put(url.replace("signature=", "signature=0"), content=b"x").status_code == 403
    bad = api.post(f"/uploads/{upload['id']}/complete", json={"key": "wrong", "parts": etags, "namespace": ns,
                                                              "dataset": "big"})
    assert bad.status_code == 403 and error_code(bad) == "invalid_upload_key"
    done = api.post(f"/uploads/{upload['id']}/complete", json={"key": upload["key"], "parts": etags,
                                                              "namespace": ns, "dataset": "big"})
    assert done.status_code == 202, done.text
    finished = _wait(api, done.json()["id"], timeout=120)
    assert finished["status"] == "succeeded", finished
    assert finished["processed_rows"] == 300_000

    q = api.post("/query", json={"query": f'SELECT city, count(*) AS n, sum(amount) AS s FROM "{ns}"."big" '
                                          "GROUP BY city ORDER BY city"})
    assert q.status_code == 200, q.text
    rows = q.json()["rows"]
    assert len(rows) == 7 and sum(r["n"] for r in rows) == 300_000
    arrow = api.post("/query", json={"query": "SELECT * FROM big", "namespace": ns, "format": "arrow"})
    table = ipc.open_stream(io.BytesIO(arrow.content)).read_all()
    assert isinstance(table, pa.Table) and table.num_rows == 300_000

    # "*" pages by cursor over the pinned snapshot.
    first = api.post("/query", json={"query": "*", "namespace": ns, "dataset": "big", "limit": 1000}).json()
    assert first["truncated"] and first["next_cursor"]
    second = api.post("/query", json={"query": "*", "namespace": ns, "dataset": "big", "limit": 1000,
                                      "cursor": first["next_cursor"]}).json()
    assert len(second["rows"]) == 1000 and second["rows"][0] != first["rows"][0]


def test_sql_that_escapes_is_refused(api, unique):
    ns = f"sql-{unique}"
    api.post("/namespaces", json={"name": ns})
    api.post(f"/namespaces/{ns}/datasets/t/rows", params={"create": "true"}, json=[{"a": 1}])
    for sql in ["COPY t TO '/tmp/x.csv'", "ATTACH '/tmp/x.db'", "SELECT * FROM read_csv('/etc/passwd')",
                "SELECT * FROM sniff_csv('/etc/passwd')", "INSTALL httpfs", "LOAD httpfs", "SET threads=1",
                "PRAGMA version", "CREATE SECRET s (TYPE s3)", "SELECT 1; SELECT 2", "SELECT * FROM '/etc/passwd'"]:
        r = api.post("/query", json={"query": sql, "namespace": ns})
        assert r.status_code == 400, (sql, r.text)
    never = api.post("/query", json={"query": "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) "
                                              "SELECT count(*) FROM r", "namespace": ns, "timeout_s": 1})
    assert never.status_code == 400 and error_code(never) == "query_timeout", never.text


def test_query_formats_explain_cursor_and_authorization(api, server, unique):
    ns = f"qf-{unique}"
    api.post("/namespaces", json={"name": ns})
    rows = [{"k": i, "city": f"c{i % 3}"} for i in range(25)]
    assert api.post(f"/namespaces/{ns}/datasets/t/rows", params={"create": "true"}, json=rows).status_code == 201
    sql = "SELECT k, city FROM t ORDER BY k"
    nd = api.post("/query", json={"query": sql, "namespace": ns, "format": "ndjson"})
    assert nd.headers["content-type"].startswith("application/x-ndjson")
    assert [json.loads(line)["k"] for line in nd.text.splitlines()] == list(range(25))
    csv = api.post("/query", json={"query": sql, "namespace": ns, "format": "csv"})
    assert csv.text.splitlines()[0].replace('"', "") == "k,city" and len(csv.text.splitlines()) == 26
    parquet = api.post("/query", json={"query": sql, "namespace": ns, "format": "parquet"})
    assert pq.read_table(io.BytesIO(parquet.content)).num_rows == 25

    # SQL pages by cursor too, over the snapshot the first page read: rows added meanwhile stay out.
    first = api.post("/query", json={"query": sql, "namespace": ns, "limit": 10}).json()
    assert [r["k"] for r in first["rows"]] == list(range(10)) and first["next_cursor"]
    api.post(f"/namespaces/{ns}/datasets/t/rows", json=[{"k": 100, "city": "new"}])
    seen = [r["k"] for r in first["rows"]]
    cursor = first["next_cursor"]
    while cursor:
        page = api.post("/query", json={"query": sql, "namespace": ns, "limit": 10, "cursor": cursor}).json()
        seen += [r["k"] for r in page["rows"]]
        cursor = page["next_cursor"]
    assert seen == list(range(25))
    forged = api.post("/query", json={"query": sql, "namespace": ns, "cursor": first["next_cursor"][:-4] + "AAAA"})
    assert forged.status_code == 400 and error_code(forged) == "invalid_cursor"

    explained = api.post("/query", json={"query": sql, "namespace": ns, "explain": True}).json()
    assert explained["explain"]["snapshots"] and "plan" in explained["explain"] and explained["rows"] == []
    meta = api.post("/query", json={"query": "*", "namespace": ns, "dataset": "t", "include_metadata": True,
                                    "limit": 1}).json()
    assert {"_id", "_ingestion_id", "_ingested_at"} <= set(meta["rows"][0])

    # Another user's private dataset: refused before anything runs, whether or not it exists.
    api.post("/users", json={"username": f"q{unique}", "role": "member"})
    key = api.post("/tokens", json={"name": "q", "role": "member", "user": f"q{unique}"}).json()["key"]
    with server.client(key) as other:
        for target in (f'"{ns}"."t"', f'"{ns}"."nope"'):
            r = other.post("/query", json={"query": f"SELECT * FROM {target}"})
            assert r.status_code == 403 and error_code(r) == "dataset_access_denied", r.text
