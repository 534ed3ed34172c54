"""Namespaces, datasets and row ingestion through the real HTTP API."""

from __future__ import annotations

import threading

from tests.support.api import error_code


def test_dataset_lifecycle_with_rows(api, unique):
    ns = f"ns-{unique}"
    assert api.post("/namespaces", json={"name": ns}).status_code == 201
    dup = api.post("/namespaces", json={"name": ns})
    assert dup.status_code == 409 and error_code(dup) == "namespace_exists"
    made = api.post(f"/namespaces/{ns}/datasets", json={"name": "sales", "columns": [{"name": "city", "type": "string"}]})
    assert made.status_code == 201, made.text
    rows = [{"city": "Oslo", "amount": 3}, {"city": "Rome", "amount": 4.5}]
    r = api.post(f"/namespaces/{ns}/datasets/sales/rows", json=rows)
    assert r.status_code == 201, r.text
    assert r.json()["ingested"] == 2 and r.json()["failed"] == []
    # A value its column cannot hold fails that row, with the field's error; the rest land.
    r = api.post(f"/namespaces/{ns}/datasets/sales/rows", json=[{"city": "Lima", "amount": "x"}, {"city": "Bern"}])
    body = r.json()
    assert body["ingested"] == 1 and [f["index"] for f in body["failed"]] == [0]
    assert set(body["failed"][0]["errors"]) == {"amount"}
    info = api.get(f"/namespaces/{ns}/datasets/sales").json()
    assert info["rows"] == 3 and info["snapshot"] == 2
    cols = {c["name"]: c for c in info["columns"]}
    assert cols["amount"]["type"] == "float" and cols["city"]["distinct_approx"] == 3
    assert cols["amount"]["null_count"] == 1
    assert cols["amount"]["min"] == 3 and cols["amount"]["max"] == 4.5

    # NDJSON, and a new field adds a nullable column.
    nd = b'{"city": "Kyiv", "amount": 1, "note": "n"}\n\n{"city": "Pune"}\n'
    r = api.post(f"/namespaces/{ns}/datasets/sales/rows", content=nd,
                 headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 201 and r.json()["ingested"] == 2
    info = api.get(f"/namespaces/{ns}/datasets/sales").json()
    assert info["rows"] == 5 and [c["name"] for c in info["columns"]] == ["city", "amount", "note"]

    bad = api.patch(f"/namespaces/{ns}/datasets/sales", json={"sort_order": ["city"]})
    assert bad.status_code == 400 and error_code(bad) == "invalid_sort_order"
    ok = api.patch(f"/namespaces/{ns}/datasets/sales", json={"sort_order": ["note", "city", "amount"]})
    assert ok.json()["sort_order"] == ["note", "city", "amount"]

    cleared = api.post(f"/namespaces/{ns}/datasets/sales/clear").json()
    assert cleared["rows"] == 0 and [c["name"] for c in cleared["columns"]] == ["city", "amount", "note"]
    refused = api.delete(f"/namespaces/{ns}")
    assert refused.status_code == 409 and error_code(refused) == "namespace_not_empty"
    assert api.delete(f"/namespaces/{ns}", params={"force": "true"}).status_code == 204
    assert api.get(f"/namespaces/{ns}/datasets/sales").status_code == 404


def test_idempotency_key_lands_a_batch_once(api, unique):
    ns = f"idem-{unique}"
    api.post("/namespaces", json={"name": ns})
    headers = {"Idempotency-Key": f"k-{unique}"}
    first = api.post(f"/namespaces/{ns}/datasets/d/rows", params={"create": "true"}, json=[{"a": 1}], headers=headers)
    again = api.post(f"/namespaces/{ns}/datasets/d/rows", params={"create": "true"}, json=[{"a": 1}], headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert api.get(f"/namespaces/{ns}/datasets/d").json()["rows"] == 1


def test_concurrent_ingestions_into_one_dataset_all_land(api, server, unique):
    ns = f"conc-{unique}"
    api.post("/namespaces", json={"name": ns})
    api.post(f"/namespaces/{ns}/datasets", json={"name": "d"})
    errors: list[str] = []

    def push(n: int) -> None:
        with server.client() as c:
            for i in range(5):
                r = c.post(f"/namespaces/{ns}/datasets/d/rows", json=[{"w": n, "i": i, "v": j} for j in range(100)])
                if r.status_code != 201:
                    errors.append(r.text)

    threads = [threading.Thread(target=push, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert api.get(f"/namespaces/{ns}/datasets/d").json()["rows"] == 4 * 5 * 100


def test_bad_names_and_reserved_columns(api, unique):
    for name in ['a"b', "a.b", "a b", ""]:
        r = api.post("/namespaces", json={"name": name})
        assert r.status_code in (400, 422), (name, r.text)
    ns = f"names-{unique}"
    api.post("/namespaces", json={"name": ns})
    r = api.post(f"/namespaces/{ns}/datasets/d/rows", params={"create": "true"}, json=[{"_id": 5, "ok": 1}])
    assert r.status_code == 201 and r.json()["ingested"] == 0 and "_id" in r.json()["failed"][0]["errors"]
    wide = {f"c{i}": i for i in range(10_000)}
    r = api.post(f"/namespaces/{ns}/datasets/d/rows", json=[wide])
    assert r.status_code == 400 and error_code(r) == "too_many_columns"
    r = api.post(f"/namespaces/{ns}/datasets/d/rows", params={"on_error": "abort"}, json=[{"ok": 1}, {"ok": "x"}])
    assert r.status_code == 400 and error_code(r) == "rows_rejected"
    assert api.get(f"/namespaces/{ns}/datasets/d").json()["rows"] == 0


def test_names_that_sql_could_not_tell_apart_are_refused(api, unique):
    assert api.post("/namespaces", json={"name": "main"}).status_code == 400
    assert api.post("/namespaces", json={"name": "System"}).status_code == 400
    ns = f"Case-{unique}"
    assert api.post("/namespaces", json={"name": ns}).status_code == 201
    clash = api.post("/namespaces", json={"name": ns.lower()})
    assert clash.status_code == 409 and error_code(clash) == "namespace_exists"
    assert api.post(f"/namespaces/{ns}/datasets", json={"name": "Orders"}).status_code == 201
    again = api.post(f"/namespaces/{ns}/datasets", json={"name": "orders"})
    assert again.status_code == 409 and error_code(again) == "dataset_exists"
