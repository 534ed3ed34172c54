"""Links through the real HTTP API: manual links and their pairs, suggestions after an
ingestion, linked rows, preview, recalculation, delete, visibility and bad input."""

from __future__ import annotations

import time

import httpx

from tests.support.api import error_code

CUSTOMERS = [{"customer": f"C-{i:04d}", "name": f"Name {i}", "vip": i % 2 == 0} for i in range(40)]
ORDERS = [{"order": i, "customer": f" c-{i % 30:04d}", "amount": i * 1.5, "vip": i % 3 == 0} for i in range(90)]


def _setup(api: httpx.Client, unique: str) -> str:
    ns = f"links-{unique}"
    assert api.post("/namespaces", json={"name": ns}).status_code == 201
    for ds, rows in (("customers", CUSTOMERS), ("orders", ORDERS)):
        r = api.post(f"/namespaces/{ns}/datasets/{ds}/rows", params={"create": True}, json=rows)
        assert r.status_code == 201, r.text
    return ns


def _end(ns: str, ds: str, column: str, **more: str) -> dict:
    return {"namespace": ns, "dataset": ds, "column": column, **more}


def _wait_for_suggestion(api: httpx.Client, ns: str, want: set[str], timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        # Both ends in ``ns``: the shared server also suggests links to other tests'
        # namespaces' datasets of the same names.
        items = [i for i in api.get("/links", params={"namespace": ns, "status": "suggested"}).json()["items"]
                 if i["from"]["namespace"] == i["to"]["namespace"] == ns]
        found = {frozenset((f"{i['from']['dataset']}.{i['from']['column']}", f"{i['to']['dataset']}.{i['to']['column']}"))
                 for i in items}
        if frozenset(want) in found or time.monotonic() > deadline:
            return items
        time.sleep(0.3)


def test_manual_link_pairs_linked_rows_and_delete(api, unique):
    ns = _setup(api, unique)
    body = {"from": _end(ns, "orders", "customer"), "to": _end(ns, "customers", "customer"),
            "match_type": "ExactMatch", "options": {"min_distinct": 5}}
    r = api.post("/links", json=body)
    assert r.status_code == 201, r.text
    link = r.json()
    assert link["created"] is True and link["status"] == "active" and link["pair_count"] == 90
    assert link["evidence"]["overlap_distinct"] == 30 and len(link["evidence"]["samples"]) == 5
    assert link["from"] == {"namespace": ns, "dataset": "orders", "column": "customer", "lon_column": None}
    # the same link again, either way round: 200, created false, the same id
    again = api.post("/links", json={**body, "from": body["to"], "to": body["from"]})
    assert again.status_code == 200 and again.json()["created"] is False and again.json()["id"] == link["id"]

    # pairs, paged
    seen, cursor = [], None
    while True:
        page = api.get(f"/links/{link['id']}/pairs", params={"limit": 40, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        seen += [(p["from_id"], p["to_id"]) for p in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 90 == len(set(seen)) and page.json()["total"] == 90

    # linked rows of one customer row: its three orders
    rows = api.post("/query", json={"query": f'SELECT _id FROM "{ns}"."customers" WHERE customer = \'C-0007\'',
                                    "include_metadata": True}).json()["rows"]
    row_id = rows[0]["_id"]
    linked = api.get(f"/namespaces/{ns}/datasets/customers/rows/{row_id}/linked")
    assert linked.status_code == 200, linked.text
    got = sorted(i["row"]["order"] for i in linked.json()["items"])
    assert got == [7, 37, 67] and {i["dataset"] for i in linked.json()["items"]} == {"orders"}
    assert api.get(f"/namespaces/{ns}/datasets/customers/rows/999999/linked").status_code == 404

    # recalculation after new rows: the pairs follow
    api.post(f"/namespaces/{ns}/datasets/orders/rows", json=[{"order": 1000, "customer": "C-0039"}])
    recalc = api.post("/links/recalculate", json={"namespace": ns, "link_id": link["id"]})
    assert recalc.status_code == 200, recalc.text
    assert recalc.json()["recalculated"][0]["pair_count"] == 91

    assert api.delete(f"/links/{link['id']}").status_code == 204
    assert error_code(api.get(f"/links/{link['id']}/pairs")) == "link_not_found"
    assert api.delete(f"/links/{link['id']}").status_code == 404

    # a link whose dataset goes is gone too (pruned at the next recalculation)
    other = api.post("/links", json=body).json()
    assert api.delete(f"/namespaces/{ns}/datasets/orders").status_code == 204
    assert api.get(f"/links/{other['id']}").status_code == 404
    assert api.post("/links/recalculate", json={"namespace": ns}).json()["recalculated"] == []
    assert api.get("/links", params={"namespace": ns}).json()["items"] == []


def test_suggestions_after_ingestion_skip_low_cardinality(api, unique):
    ns = _setup(api, unique)
    items = _wait_for_suggestion(api, ns, {"orders.customer", "customers.customer"})
    pairs = {frozenset((f"{i['from']['dataset']}.{i['from']['column']}", f"{i['to']['dataset']}.{i['to']['column']}")):
             i for i in items}
    s = pairs.get(frozenset({"orders.customer", "customers.customer"}))
    assert s is not None, items
    assert s["status"] == "suggested" and s["score"] >= 0.95
    assert s["evidence"]["overlap"] == 30 and s["evidence"]["samples"]
    # booleans never link
    assert not any("vip" in (i["from"]["column"], i["to"]["column"]) for i in items)
    # accepting a suggestion makes it active, same id
    r = api.post("/links", json={"from": s["from"], "to": s["to"]})
    assert r.status_code == 201 and r.json()["id"] == s["id"] and r.json()["status"] == "active"
    assert r.json()["pair_count"] == 90


def test_preview_saves_nothing(api, unique):
    ns = _setup(api, unique)
    body = {"from": _end(ns, "orders", "customer"), "to": _end(ns, "customers", "customer")}
    r = api.post("/links/preview", json=body)
    assert r.status_code == 200, r.text
    preview = r.json()["links"][0]
    assert preview["pair_count"] == 90 and len(preview["sample_pairs"]) == 20
    assert api.get("/links", params={"namespace": ns, "status": "active"}).json()["items"] == []
    r = api.post("/links/preview", json={"namespace": ns, "dataset": "orders"})
    assert r.status_code == 200, r.text
    assert any(s["to"]["column"] == "customer" for s in r.json()["suggestions"])


def test_geo_link(api, unique):
    ns = f"geo-{unique}"
    assert api.post("/namespaces", json={"name": ns}).status_code == 201
    shops = [{"shop": i, "lat": 46.0 + i * 0.01, "lon": 7.0} for i in range(20)]  # ~1.1 km apart
    stops = [{"stop": f"s{i}", "where": {"lat": 46.0 + i * 0.01 + 0.002, "lon": 7.0}} for i in range(20)]
    assert api.post(f"/namespaces/{ns}/datasets", json={"name": "stops", "columns": [
        {"name": "stop", "type": "string"}, {"name": "where", "type": "geo"}]}).status_code == 201
    for ds, rows in (("shops", shops), ("stops", stops)):
        assert api.post(f"/namespaces/{ns}/datasets/{ds}/rows", params={"create": True}, json=rows).status_code == 201
    r = api.post("/links", json={"from": _end(ns, "shops", "lat", lon_column="lon"), "to": _end(ns, "stops", "where"),
                                 "match_type": "GeoMatch", "options": {"distance": 500, "unit": "m"}})
    assert r.status_code == 201, r.text
    assert r.json()["pair_count"] == 20  # each shop: the stop 222 m north, not the next (889 m)
    r = api.post("/links", json={"from": _end(ns, "shops", "lat", lon_column="lon"), "to": _end(ns, "stops", "where"),
                                 "match_type": "GeoMatch", "options": {"distance": 1, "unit": "mi"}})
    assert r.status_code == 200 and r.json()["created"] is False  # one link per pair of ends and type


def test_bad_input(api, unique):
    ns = _setup(api, unique)
    r = api.post("/links", json={"from": _end(ns, "orders", "vip"), "to": _end(ns, "customers", "customer")})
    assert r.status_code == 400 and error_code(r) == "incompatible_link_types"
    assert "bool" in r.json()["error"]["message"] and "string" in r.json()["error"]["message"]
    r = api.post("/links", json={"from": _end(ns, "orders", "amount"), "to": _end(ns, "customers", "customer"),
                                 "match_type": "GeoMatch"})
    assert r.status_code == 400 and error_code(r) == "incompatible_link_types"
    for options in ({"min_distinct": 0}, {"min_variation": 2}, {"min_distinct": "x"}):
        r = api.post("/links", json={"from": _end(ns, "orders", "customer"), "to": _end(ns, "customers", "customer"),
                                     "options": options})
        assert r.status_code == 400 and error_code(r) == "invalid_link_options", options
    r = api.post("/links", json={"from": _end(ns, "orders", "nope"), "to": _end(ns, "customers", "customer")})
    assert r.status_code == 400 and error_code(r) == "link_column_not_found"
    r = api.post("/links", json={"from": _end(ns, "orders", "customer"), "to": _end(ns, "missing", "customer")})
    assert r.status_code == 404
    assert api.get("/links", params={"namespace": f"nope-{unique}"}).status_code == 404


def test_visible_only_with_both_ends(server, api, unique):
    a, b = f"la-{unique}", f"lb-{unique}"
    for ns, ds, rows in ((a, "customers", CUSTOMERS), (b, "orders", ORDERS)):
        assert api.post("/namespaces", json={"name": ns}).status_code == 201
        assert api.post(f"/namespaces/{ns}/datasets/{ds}/rows", params={"create": True}, json=rows).status_code == 201
    link = api.post("/links", json={"from": _end(b, "orders", "customer"), "to": _end(a, "customers", "customer")})
    assert link.status_code == 201, link.text
    link_id = link.json()["id"]
    token = api.post("/tokens", json={"name": f"one-end-{unique}", "role": "viewer",
                                      "restrictions": {"grants": [{"namespace": a, "access": "read"}]}})
    assert token.status_code == 201, token.text
    with server.client(token.json()["key"]) as one_end:
        assert one_end.get("/links", params={"namespace": a}).json()["items"] == []
        for path in (f"/links/{link_id}", f"/links/{link_id}/pairs"):
            r = one_end.get(path)
            assert r.status_code == 404 and error_code(r) == "link_not_found", path
        row = api.post("/query", json={"query": f'SELECT min(_id) AS i FROM "{a}"."customers"',
                                       "include_metadata": True}).json()["rows"][0]["i"]
        assert one_end.get(f"/namespaces/{a}/datasets/customers/rows/{row}/linked").json()["items"] == []
        r = one_end.post("/links/preview", json={"from": _end(b, "orders", "customer"),
                                                 "to": _end(a, "customers", "customer")})
        assert r.status_code == 404
    # the admin sees it from either end
    assert [i["id"] for i in api.get("/links", params={"namespace": a, "status": "active"}).json()["items"]] == [link_id]


def test_evidence_reads_as_the_link_does_after_its_other_end_is_ingested_again(api, unique):
    """A suggestion re-scored after an ingestion into its `to` end keeps its direction, and
    its evidence says each end's counts on the right side."""
    ns = _setup(api, unique)

    def link() -> dict:
        items = _wait_for_suggestion(api, ns, {"orders.customer", "customers.customer"})
        return next(i for i in items if {i["from"]["dataset"], i["to"]["dataset"]} == {"orders", "customers"}
                    and i["from"]["column"] == i["to"]["column"] == "customer")

    first = link()
    target = first["to"]["dataset"]
    if target == "customers":  # ten more distinct customers: 50
        more = [{"customer": f"C-{i:04d}", "name": f"Name {i}", "vip": False} for i in range(40, 50)]
        want = {"customers": 50, "orders": 30}
    else:  # orders of ten more customers: 40
        more = [{"order": 1000 + i, "customer": f"C-{i:04d}", "amount": 1.0, "vip": False} for i in range(30, 40)]
        want = {"customers": 40, "orders": 40}
    assert api.post(f"/namespaces/{ns}/datasets/{target}/rows", json=more).status_code in (200, 201)
    deadline = time.monotonic() + 60
    while True:
        now = link()
        distinct = {now["from"]["dataset"]: now["evidence"]["from_distinct"],
                    now["to"]["dataset"]: now["evidence"]["to_distinct"]}
        if distinct[target] == want[target] or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert now["id"] == first["id"] and now["from"] == first["from"]
    assert distinct == want, now
