"""Through the real HTTP API: ``curate: true`` on an ingestion (JSON rows, files) curates the
namespace's ontology once the link suggestions are computed, recorded on the ingestion; and
``POST /query {explain: true}`` lists the active links a join between the datasets could use."""

from __future__ import annotations

import hashlib
import json
import time

import httpx

from tests.sdk.conftest import client  # noqa: F401 (fixture)
from tests.support.api import error_code


def _data(unique: str) -> tuple[list[dict], list[dict]]:
    # values unique to the test, so suggestions do not reach other tests' datasets
    base = int(hashlib.sha256(unique.encode()).hexdigest()[:8], 16) * 1000 + 10**13
    customers = [{"id": base + i + 1, "customer": f"K{unique}-{i:04d}", "name": f"Name {unique} {i}"}
                 for i in range(40)]
    orders = [{"id": base + i + 1, "customer_id": base + i % 30 + 1, "customer": f" k{unique}-{i % 30:04d}",
               "amount": i * 1.5} for i in range(90)]
    return customers, orders


def _curation(api: httpx.Client, ingestion_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        got = api.get(f"/ingestions/{ingestion_id}").json()
        curation = got["attributes"].get("curation") or {}
        if curation.get("status") != "pending" or time.monotonic() > deadline:
            return curation
        time.sleep(0.3)


def _pair(edge: dict) -> frozenset[str]:
    return frozenset((f"{edge['from']['dataset']}.{edge['from']['column']}",
                      f"{edge['to']['dataset']}.{edge['to']['column']}"))


def test_rows_ingestion_with_curate_activates_the_selected_links(api, unique):
    ns = f"curing-{unique}"
    customers, orders = _data(unique)
    assert api.post("/namespaces", json={"name": ns}).status_code == 201
    r = api.post(f"/namespaces/{ns}/datasets/customers/rows", params={"create": True}, json=customers)
    assert r.status_code == 201 and r.json()["curation"] is None
    first = api.get(f"/ingestions/{r.json()['ingestion_id']}").json()
    assert "curation" not in first["attributes"]
    # the body form: {"rows": [...], "curate": true}
    r = api.post(f"/namespaces/{ns}/datasets/orders/rows", params={"create": True},
                 json={"rows": orders, "curate": True})
    assert r.status_code == 201, r.text
    assert r.json()["curation"] == {"status": "pending"}
    curation = _curation(api, r.json()["ingestion_id"])
    assert curation["status"] == "succeeded", curation
    assert curation["namespace"] == ns and curation["datasets_processed"] == 2
    assert curation["total_selected"] >= 2 and len(curation["activated"]) == curation["total_selected"]
    assert curation["decisions"]["select"] == curation["total_selected"] and curation["curated_at"]
    edges = {_pair(e): e for e in api.get(f"/namespaces/{ns}/ontology").json()["edges"]}
    assert frozenset(("orders.customer_id", "customers.id")) in edges
    assert frozenset(("orders.customer", "customers.customer")) in edges
    assert frozenset(("orders.id", "customers.id")) not in edges  # the curator's own-id rule
    assert {e["id"] for e in edges.values()} == set(curation["activated"])

    # curate as a query parameter, with no rows stored: skipped, said at once
    r = api.post(f"/namespaces/{ns}/datasets/orders/rows", params={"curate": True, "on_error": "skip"},
                 json=[{"amount": "not a number"}])
    assert r.status_code == 201, r.text
    assert r.json()["ingested"] == 0 and r.json()["curation"]["status"] == "skipped"
    assert api.get(f"/ingestions/{r.json()['ingestion_id']}").json()["attributes"]["curation"]["status"] == "skipped"

    r = api.post(f"/namespaces/{ns}/datasets/orders/rows", json={"rows": orders[:1], "curate": "yes"})
    assert r.status_code == 400 and error_code(r) == "validation_error", r.text


def test_sdk_ingest_curate_asks_on_the_last_batch(api, client, unique):  # noqa: F811
    ns = f"curesdk-{unique}"
    customers, orders = _data(unique)
    assert api.post("/namespaces", json={"name": ns}).status_code == 201
    client.datasets.ingest(ns, "customers", customers, create=True)
    result = client.datasets.ingest(ns, "orders", orders, create=True, batch_size=40, curate=True)
    assert result.successful == 90 and len(result.batches) == 3
    *earlier, last = [api.get(f"/ingestions/{b.ingestion_id}").json() for b in result.batches]
    assert all("curation" not in e["attributes"] for e in earlier)
    curation = _curation(api, last["id"])
    assert curation["status"] == "succeeded" and curation["total_selected"] >= 2, curation
    edges = {_pair(e) for e in api.get(f"/namespaces/{ns}/ontology").json()["edges"]}
    assert frozenset(("orders.customer_id", "customers.id")) in edges


def test_file_ingestion_with_curate(api, unique):
    ns = f"curefile-{unique}"
    customers, orders = _data(unique)
    assert api.post("/namespaces", json={"name": ns}).status_code == 201
    assert api.post(f"/namespaces/{ns}/datasets/customers/rows", params={"create": True},
                    json=customers).status_code == 201
    body = "\n".join(json.dumps(o) for o in orders).encode()
    r = api.post(f"/namespaces/{ns}/datasets/orders/files", files={"file": ("orders.ndjson", body)},
                 data={"options": json.dumps({"format": "ndjson", "curate": True})})
    assert r.status_code == 202, r.text
    assert r.json()["attributes"]["curation"] == {"status": "pending"}
    done = api.get(f"/ingestions/{r.json()['id']}/wait", params={"timeout": 60}).json()
    assert done["status"] == "succeeded", done
    curation = _curation(api, done["id"])
    assert curation["status"] == "succeeded" and curation["total_selected"] >= 2, curation
    edges = {_pair(e) for e in api.get(f"/namespaces/{ns}/ontology").json()["edges"]}
    assert frozenset(("orders.customer_id", "customers.id")) in edges

    r = api.post(f"/namespaces/{ns}/datasets/orders/files", files={"file": ("o.ndjson", body)},
                 data={"options": json.dumps({"curate": 1})})
    assert r.status_code == 400, r.text


def test_explain_lists_the_links_a_join_could_use(api, unique):
    ns = f"explink-{unique}"
    customers, orders = _data(unique)
    assert api.post("/namespaces", json={"name": ns}).status_code == 201
    for ds, rows in (("customers", customers), ("orders", orders)):
        assert api.post(f"/namespaces/{ns}/datasets/{ds}/rows", params={"create": True}, json=rows).status_code == 201
    for a, b in (("customer_id", "id"), ("customer", "customer")):
        r = api.post("/links", json={"from": {"namespace": ns, "dataset": "orders", "column": a},
                                     "to": {"namespace": ns, "dataset": "customers", "column": b},
                                     "match_type": "ExactMatch"})
        assert r.status_code in (200, 201), r.text
    sql = "SELECT * FROM orders JOIN customers ON orders.customer_id = customers.id"
    out = api.post("/query", json={"query": sql, "namespace": ns, "explain": True})
    assert out.status_code == 200, out.text
    found = {(x["from"]["columns"][0], x["to"]["columns"][0]): x for x in out.json()["links"]}
    assert set(found) == {("customer_id", "id"), ("customer", "customer")}
    ints = found[("customer_id", "id")]
    assert ints["match_type"] == "ExactMatch" and ints["from"]["dataset"] == "orders"
    assert ints["to"] == {"namespace": ns, "dataset": "customers", "columns": ["id"], "table": "customers"}
    assert ints["join_condition"] == "orders.customer_id = customers.id"
    text = found[("customer", "customer")]
    assert "lower(trim(" in text["join_condition"] and "normalisation" in text["note"]
    # the hints are ready to use: the normalised one finds the pairs plain equality misses
    for x, want in ((ints, 90), (text, 90)):
        r = api.post("/query", json={"query": f"SELECT count(*) AS n FROM orders JOIN customers ON "
                                              f"{x['join_condition']}", "namespace": ns})
        assert r.status_code == 200 and r.json()["rows"][0]["n"] == want, r.text
    plain = api.post("/query", json={"query": "SELECT count(*) AS n FROM orders JOIN customers ON "
                                              "orders.customer = customers.customer", "namespace": ns})
    assert plain.json()["rows"][0]["n"] == 0

    # fully qualified names when the query is not in the namespace; one dataset: no links
    qualified = f'SELECT count(*) AS n FROM "{ns}".orders JOIN "{ns}".customers ON '
    out = api.post("/query", json={"query": qualified + "true", "explain": True}).json()
    hints = {x["join_condition"] for x in out["links"]}
    assert f'"{ns}".orders.customer_id = "{ns}".customers.id' in hints
    for hint in hints:
        r = api.post("/query", json={"query": qualified + hint})
        assert r.status_code == 200 and r.json()["rows"][0]["n"] == 90, r.text
    one = api.post("/query", json={"query": "SELECT * FROM orders", "namespace": ns, "explain": True}).json()
    assert one["links"] == []
    assert api.post("/query", json={"query": "SELECT 1 AS x FROM orders", "namespace": ns}).json()["links"] is None
