"""Deterministic ingestion pipelines against a real server: JSON rows, a CSV file, preview,
and a bad pipeline refused with nothing ingested."""

from __future__ import annotations

import json

from tests.support.api import error_code

PIPELINE = [
    {"rename": {"Full Name": "name"}},
    {"normalize": {"columns": ["name"], "case": "title"}},
    {"split": {"column": "name", "separator": " ", "into": ["first", "last"]}},
    {"regex_extract": {"column": "email", "pattern": r"@(.+)$", "into": ["domain"]}},
    {"cast": {"age": "int"}},
    {"derive": {"name": "months", "expression": "age * 12"}},
    {"drop": ["email"]},
    {"dedupe": {"columns": ["name"]}},
]
CSV = (b"Full Name,age,email\n  ann   LEE ,31,ann@example.com\nbob ray,x,bob@example.org\n"
       b"Ann Lee,31,ann@example.com\ncid  moe,40,cid@example.net\n")


def _wait(api, ingestion_id, timeout=60):
    r = api.get(f"/ingestions/{ingestion_id}/wait", params={"timeout": timeout})
    assert r.status_code == 200, r.text
    return r.json()


def _rows(api, ns, ds):
    r = api.post("/query", json={"query": f'SELECT * FROM "{ns}"."{ds}" ORDER BY name'})
    assert r.status_code == 200, r.text
    return r.json()["rows"]


def test_json_rows_through_a_pipeline(api, unique):
    ns = f"pipe-{unique}"
    api.post("/namespaces", json={"name": ns})
    rows = [{"Full Name": "  ann   LEE ", "age": "31", "email": "ann@example.com"},
            {"Full Name": "bob ray", "age": "x", "email": "bob@example.org"},
            {"Full Name": "Ann Lee", "age": "31", "email": "ann@example.com"},
            {"Full Name": "cid  moe", "age": 40, "email": "cid@example.net"}]
    r = api.post(f"/namespaces/{ns}/datasets/people/rows", params={"create": "true"},
                 json={"rows": rows, "pipeline": PIPELINE})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["ingested"] == 2
    assert [f["index"] for f in body["failed"]] == [1]
    assert "step 4 (cast)" in body["failed"][0]["errors"]["pipeline"]
    assert body["failed"][0]["row"]["Full Name"] == "bob ray"
    stored = _rows(api, ns, "people")
    assert [(r["name"], r["first"], r["last"], r["age"], r["months"], r["domain"]) for r in stored] == [
        ("Ann Lee", "Ann", "Lee", 31, 372, "example.com"), ("Cid Moe", "Cid", "Moe", 40, 480, "example.net")]
    assert "email" not in stored[0] and "Full Name" not in stored[0]
    record = api.get(f"/ingestions/{body['ingestion_id']}").json()
    assert record["failed_rows"] == 1 and record["processed_rows"] == 2


def test_csv_file_through_a_pipeline(api, unique):
    ns = f"pipe-{unique}"
    api.post("/namespaces", json={"name": ns})
    r = api.post(f"/namespaces/{ns}/datasets/people/files", files={"file": ("people.csv", CSV, "text/csv")},
                 data={"options": json.dumps({"pipeline": PIPELINE})})
    assert r.status_code == 202, r.text
    done = _wait(api, r.json()["id"])
    assert done["status"] == "succeeded", done["status_message"]
    assert done["processed_rows"] == 2 and done["failed_rows"] == 1
    stored = _rows(api, ns, "people")
    assert [(r["name"], r["age"], r["months"], r["domain"]) for r in stored] == [
        ("Ann Lee", 31, 372, "example.com"), ("Cid Moe", 40, 480, "example.net")]
    rejects = api.get(f"/ingestions/{done['id']}/rejects").json()["items"]
    assert len(rejects) == 1 and rejects[0]["line"] == 2 and "step 4 (cast)" in rejects[0]["reason"]


def test_preview_with_a_pipeline(api, unique):
    rows = [{"Full Name": "ann lee", "age": "31", "email": "ann@example.com"},
            {"Full Name": "bob ray", "age": "x", "email": "bob@example.org"}]
    r = api.post("/ingest/preview", json={"rows": rows, "options": {"pipeline": PIPELINE}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["rows"] == [{"name": "Ann Lee", "age": 31, "first": "Ann", "last": "Lee", "domain": "example.com",
                             "months": 372}]
    types = {c["name"]: c["type"] for c in body["columns"]}
    assert types["age"] == "int" and types["months"] == "int" and "email" not in types
    assert len(body["rejects"]) == 1 and "step 4 (cast)" in body["rejects"][0]["reason"]


def test_bad_pipeline_refused_and_nothing_ingested(api, unique):
    ns = f"pipe-{unique}"
    api.post("/namespaces", json={"name": ns})
    api.post(f"/namespaces/{ns}/datasets", json={"name": "people"})
    cases = [
        [{"rename": {"a": "b"}}, {"nope": {}}],
        [{"regex_extract": {"column": "a", "pattern": "(", "into": ["b"]}}],
        [{"derive": {"name": "x", "expression": "1) AS d FROM read_csv('/etc/passwd') --"}}],
        [{"cast": {"a": "number"}}],
        [{"split": {"column": "a", "separator": ",", "into": ["b"], "extra": 1}}],
        [{"drop": ["a"]}] * 51,
    ]
    for pipeline in cases:
        r = api.post(f"/namespaces/{ns}/datasets/people/rows", json={"rows": [{"a": "1"}], "pipeline": pipeline})
        assert r.status_code == 400 and error_code(r) == "invalid_pipeline", r.text
        f = api.post(f"/namespaces/{ns}/datasets/people/files", files={"file": ("a.csv", b"a\n1\n", "text/csv")},
                     data={"options": json.dumps({"pipeline": pipeline})})
        assert f.status_code == 400 and error_code(f) == "invalid_pipeline", f.text
        p = api.post("/ingest/preview", json={"rows": [{"a": "1"}], "options": {"pipeline": pipeline}})
        assert p.status_code == 400 and error_code(p) == "invalid_pipeline", p.text
    r = api.post(f"/namespaces/{ns}/datasets/people/rows", json={"rows": [{"a": "1"}], "pipeline": cases[0]})
    assert r.json()["error"]["details"]["step"] == 1
    assert api.get(f"/namespaces/{ns}/datasets/people").json()["rows"] == 0
    assert api.get(f"/namespaces/{ns}/datasets/people/ingestions").json()["items"] == []
