"""The synth HTTP surface, through a real server on loopback."""

from __future__ import annotations

import csv
import io
import json

import pyarrow.parquet as pq
import pytest

from runyard import synth
from tests.support.synth import CUSTOMERS


def _create(api, unique: str, doc: dict | None = None) -> dict:
    doc = doc or dict(CUSTOMERS, name=f"customers_{unique}")
    resp = api.post("/templates", json=doc)
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_crud_and_versions(api, unique):
    created = _create(api, unique)
    tid = created["id"]
    assert created["version"] == 1 and created["name"] == f"customers_{unique}"
    assert [f["name"] for f in created["fields"]][:2] == ["id", "name"]
    assert api.get(f"/templates/{tid}").json()["id"] == tid
    assert api.get(f"/templates/customers_{unique}").json()["id"] == tid  # by name too

    fields = created["fields"] + [{"name": "vip", "generator": "boolean", "probability": 0.1}]
    updated = api.patch(f"/templates/{tid}", json={"fields": fields, "description": "v2"})
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2 and updated.json()["latest_version"] == 2

    versions = api.get(f"/templates/{tid}/versions").json()
    assert [v["version"] for v in versions["items"]] == [2, 1] and versions["total"] == 2
    v1 = api.get(f"/templates/{tid}@v1").json()
    assert v1["version"] == 1 and "vip" not in [f["name"] for f in v1["fields"]]
    assert api.get(f"/templates/{tid}/versions/2").json()["description"] == "v2"
    assert api.get(f"/templates/{tid}@v9").status_code == 404

    listed = api.get("/templates", params={"limit": 1000}).json()
    assert tid in [t["id"] for t in listed["items"]]

    assert api.delete(f"/templates/{tid}").status_code == 204
    gone = api.get(f"/templates/{tid}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "template_not_found"
    assert _create(api, unique)["id"] != tid  # the name is free again


def test_bad_template_is_a_400_naming_the_field_and_nothing_is_stored(api, unique):
    before = api.get("/templates", params={"include_total": True, "limit": 1}).json()["total"]
    doc = {"name": f"bad_{unique}", "fields": [
        {"name": "a", "generator": "integer"}, {"name": "b", "generator": "formula", "expression": "c + a"},
        {"name": "c", "generator": "integer"}]}
    resp = api.post("/templates", json=doc)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "invalid_template" and error["details"]["field"] == "b"
    assert "defined after" in error["message"] and error["request_id"]
    for fields in ([{"name": "x", "generator": "nope"}], [{"name": "x", "generator": "regex", "pattern": "("}]):
        bad = api.post("/templates", json={"name": f"bad_{unique}", "fields": fields})
        assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "x"
    after = api.get("/templates", params={"include_total": True, "limit": 1}).json()["total"]
    assert after == before


def test_generate_streams_every_format_deterministically(api, unique):
    tid = _create(api, unique)["id"]
    resp = api.post(f"/templates/{tid}/generate", json={"count": 70_000, "format": "csv", "seed": 5})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    assert resp.headers["x-runyard-seed"] == "5"
    local = synth.plan_generation(synth.parse_template(dict(CUSTOMERS, name=f"customers_{unique}")),
                                  count=70_000, seed=5)
    assert resp.content == b"".join(synth.stream(local, "csv"))
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert len(rows) == 70_000 and rows[0]["id"] == "1"

    via_accept = api.post(f"/templates/{tid}/generate", json={"count": 10, "seed": 5},
                          headers={"Accept": "text/csv"})
    assert via_accept.headers["content-type"].startswith("text/csv")
    as_json = api.post(f"/templates/{tid}/generate", json={"count": 10, "seed": 5, "format": "json"}).json()
    assert [r["id"] for r in as_json] == list(range(1, 11))
    parquet = api.post(f"/templates/{tid}/generate", json={"count": 100, "seed": 5, "format": "parquet"})
    assert pq.read_table(io.BytesIO(parquet.content)).num_rows == 100
    sql = api.post(f"/templates/{tid}/generate", json={"count": 20, "format": "sql", "dialect": "sqlite",
                                                      "table": "people", "rows_per_statement": 7})
    assert sql.text.count('INSERT INTO "people"') == 3

    drawn = api.post(f"/templates/{tid}/generate", json={"count": 5, "format": "ndjson"})
    seed = drawn.headers["x-runyard-seed"]
    again = api.post(f"/templates/{tid}/generate", json={"count": 5, "format": "ndjson", "seed": int(seed)})
    assert again.content == drawn.content


def test_preview_equals_first_rows_and_overrides(api, unique):
    tid = _create(api, unique)["id"]
    preview = api.post(f"/templates/{tid}/preview", json={"seed": 3, "overrides": {"city": "Berlin"}}).json()
    assert preview["seed"] == 3 and len(preview["rows"]) == 3
    full = api.post(f"/templates/{tid}/generate",
                    json={"count": 1000, "seed": 3, "format": "json", "overrides": {"city": "Berlin"}}).json()
    assert preview["rows"] == full[:3]
    assert {r["city"] for r in full} == {"Berlin"}
    bad = api.post(f"/templates/{tid}/generate", json={"count": 5, "overrides": {"nope": 1}})
    assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "nope"


def test_unique_refused_before_streaming(api, unique):
    doc = {"name": f"u_{unique}", "fields": [{"name": "c", "generator": "choice", "values": [1, 2], "unique": True}]}
    tid = _create(api, unique, doc)["id"]
    resp = api.post(f"/templates/{tid}/generate", json={"count": 3, "format": "csv"})
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "unique_space_too_small"
    assert resp.json()["error"]["details"]["field"] == "c"


def test_sets_and_into_set_and_references(api, unique):
    name = f"skus_{unique}"
    first = api.post("/sets", json={"name": name, "rows": [{"sku": "A"}, {"sku": "B"}]})
    assert first.status_code == 201 and first.json()["version"] == 1
    second = api.post("/sets", json={"name": name, "rows": [{"sku": "C"}, {"sku": "D"}, {"sku": "E"}]})
    assert second.json()["version"] == 2
    assert [r["sku"] for r in api.get(f"/sets/{name}").json()["rows"]] == ["C", "D", "E"]
    assert [r["sku"] for r in api.get(f"/sets/{name}", params={"version": 1}).json()["rows"]] == ["A", "B"]
    assert name in [s["name"] for s in api.get("/sets", params={"limit": 1000}).json()["items"]]

    customers = _create(api, unique)
    orders_doc = {"name": f"orders_{unique}", "fields": [
        {"name": "order_id", "generator": "sequence"},
        {"name": "customer_id", "generator": "reference", "template": customers["id"], "field": "id",
         "count": 50},
        {"name": "sku", "generator": "reference", "set": name, "column": "sku"}]}
    orders = _create(api, unique, orders_doc)
    rows = api.post(f"/templates/{orders['id']}/generate", json={"count": 300, "seed": 2, "format": "json"}).json()
    assert {r["sku"] for r in rows} == {"C", "D", "E"}
    assert {r["customer_id"] for r in rows} <= set(range(1, 51))

    saved = api.post(f"/templates/{customers['id']}/generate",
                     json={"count": 50, "seed": 2, "into_set": f"cust_{unique}"})
    assert saved.status_code == 200 and saved.json()["row_count"] == 50
    assert saved.json()["source"]["seed"] == 2
    loaded = api.get(f"/sets/cust_{unique}").json()["rows"]
    direct = api.post(f"/templates/{customers['id']}/generate",
                      json={"count": 50, "seed": 2, "format": "json"}).json()
    assert json.loads(json.dumps(loaded)) == direct

    assert api.delete(f"/sets/{name}").status_code == 204
    assert api.get(f"/sets/{name}").status_code == 404


@pytest.fixture
def quota_server(fresh_server):
    fresh_server.extra_env["RUNYARD_SYNTH_ROWS_PER_HOUR"] = "1000"
    return fresh_server.start()


@pytest.mark.slow
def test_quota_429_with_retry_after(quota_server):
    with quota_server.client() as admin:  # the operator's keys are not limited (docs/limits.md)
        admin.post("/users", json={"username": "limited", "role": "member"})
        member = admin.post("/tokens", json={"name": "limited", "role": "member", "user": "limited"}).json()["key"]
    with quota_server.client(member) as api:
        tid = api.post("/templates", json=CUSTOMERS).json()["id"]
        assert api.post(f"/templates/{tid}/generate", json={"count": 800, "format": "csv"}).status_code == 200
        for _ in range(3):  # previews are free
            assert api.post(f"/templates/{tid}/preview", json={}).status_code == 200
        over = api.post(f"/templates/{tid}/generate", json={"count": 300, "format": "csv"})
        assert over.status_code == 429
        assert over.json()["error"]["code"] == "quota_exceeded"
        assert 1 <= int(over.headers["retry-after"]) <= 3600
        assert api.post(f"/templates/{tid}/generate", json={"count": 200, "format": "csv"}).status_code == 200


def _walk(api, path: str) -> list[dict]:
    items, cursor = [], None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = api.get(path, params=params).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def test_lists_page_through_latest_versions(api, unique):
    made = [_create(api, unique, dict(CUSTOMERS, name=f"page_{unique}_{i}")) for i in range(3)]
    api.patch(f"/templates/{made[0]['id']}", json={"description": "v2"})
    for i in range(3):
        api.post("/sets", json={"name": f"pset_{unique}_{i}", "rows": [{"n": i}]})
    api.post("/sets", json={"name": f"pset_{unique}_0", "rows": [{"n": 10}, {"n": 11}]})
    templates = {t["id"]: t for t in _walk(api, "/templates")}
    assert all(t["id"] in templates for t in made)
    assert templates[made[0]["id"]]["version"] == 2  # the latest version, not the first
    sets = {s["name"]: s for s in _walk(api, "/sets") if s["name"].startswith(f"pset_{unique}")}
    assert sorted(sets) == [f"pset_{unique}_{i}" for i in range(3)]
    assert sets[f"pset_{unique}_0"]["version"] == 2 and sets[f"pset_{unique}_0"]["row_count"] == 2


def test_a_set_read_far_past_its_end_is_empty_not_an_error(api, unique):
    name = f"far-{unique}"
    assert api.post("/sets", json={"name": name, "rows": [{"a": 1}]}).status_code == 201
    far = api.get(f"/sets/{name}", params={"offset": 2**53})
    assert far.status_code == 200 and far.json()["rows"] == [] and far.json()["next_offset"] is None
    assert api.get(f"/sets/{name}", params={"offset": 10**20}).status_code == 400
    assert api.get(f"/sets/{name}", params={"version": -(10**30)}).status_code == 400
