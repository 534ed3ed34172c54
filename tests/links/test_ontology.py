"""The namespace ontology through the real HTTP API: the graph of active links, adding and
removing links, and the deterministic curator over the suggestions."""

from __future__ import annotations

import time

import httpx

from tests.cli.conftest import cli, config_file  # noqa: F401 (fixtures)
from tests.sdk.conftest import client  # noqa: F401 (fixture)
from tests.support.api import error_code
from tests.support.cli import as_json

CUSTOMERS = [{"id": i + 1, "customer": f"C-{i:04d}", "name": f"Name {i}"} for i in range(40)]
ORDERS = [{"id": i + 1, "customer_id": i % 30 + 1, "customer": f"c-{i % 30:04d}", "amount": i * 1.5}
          for i in range(90)]
# 13 of its 20 partners are customers: a borderline score (0.65)
PARTNERS = [{"partner": f"C-{i:04d}" if i < 13 else f"X-{i:04d}", "since": 2000 + i % 3} for i in range(20)]


def _end(ns: str, ds: str, column: str) -> dict:
    return {"namespace": ns, "dataset": ds, "column": column}


def _key(item: dict) -> frozenset[str]:
    """``{"orders.customer", "customers.customer"}`` for a link inside one namespace; the ends
    namespace-qualified otherwise (suggestions reach other tests' namespaces too)."""
    a, b = item["from"], item["to"]
    if a["namespace"] == b["namespace"]:
        return frozenset((f"{a['dataset']}.{a['column']}", f"{b['dataset']}.{b['column']}"))
    return frozenset((f"{a['namespace']}/{a['dataset']}.{a['column']}", f"{b['namespace']}/{b['dataset']}.{b['column']}"))


def _setup(api: httpx.Client, unique: str) -> tuple[str, dict[frozenset[str], dict]]:
    ns = f"onto-{unique}"
    assert api.post("/namespaces", json={"name": ns}).status_code == 201
    for ds, rows in (("customers", CUSTOMERS), ("orders", ORDERS), ("partners", PARTNERS)):
        r = api.post(f"/namespaces/{ns}/datasets/{ds}/rows", params={"create": True}, json=rows)
        assert r.status_code == 201, r.text
    want = {frozenset(p) for p in (("orders.customer_id", "customers.id"), ("orders.id", "customers.id"),
                                   ("orders.customer", "customers.customer"),
                                   ("partners.partner", "customers.customer"))}
    deadline = time.monotonic() + 60
    while True:
        items = api.get("/links", params={"namespace": ns, "status": "suggested"}).json()["items"]
        # both ends here: other tests' namespaces on the shared server have datasets of these names
        found = {_key(i): i for i in items if i["from"]["namespace"] == i["to"]["namespace"] == ns}
        if want <= set(found) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert want <= set(found), sorted(map(sorted, found))
    return ns, found


def test_curate_then_activate_and_read_the_ontology(api, unique):
    ns, found = _setup(api, unique)
    assert api.get(f"/namespaces/{ns}/ontology").json()["edges"] == []

    r = api.post(f"/namespaces/{ns}/ontology/curate", json={"model": "any"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["datasets_processed"] == 3 and out["activated"] is False
    decided = {_key(c["link"]): c for c in out["curated_links"]}
    assert all(c["reviewed_by"] == "rules" and c["reason"] for c in out["curated_links"])
    assert decided[frozenset(("orders.customer_id", "customers.id"))]["decision"] == "select"
    assert decided[frozenset(("orders.customer", "customers.customer"))]["decision"] == "select"
    own = decided[frozenset(("orders.id", "customers.id"))]
    assert own["decision"] == "reject" and "own dataset" in own["reason"]
    border = decided[frozenset(("partners.partner", "customers.customer"))]
    assert border["decision"] == "review" and "borderline" in border["reason"]
    assert out["total_selected"] == sum(c["decision"] == "select" for c in out["curated_links"]) >= 2
    # nothing changed without activate
    assert api.get(f"/namespaces/{ns}/ontology").json()["edges"] == []

    r = api.post(f"/namespaces/{ns}/ontology/curate", json={"activate": True})
    assert r.status_code == 200, r.text
    assert {c["link"]["status"] for c in r.json()["curated_links"] if c["decision"] == "select"} == {"active"}
    onto = api.get(f"/namespaces/{ns}/ontology").json()
    edges = {_key(e): e for e in onto["edges"]}
    assert frozenset(("orders.customer_id", "customers.id")) in edges
    assert frozenset(("orders.id", "customers.id")) not in edges
    e = edges[frozenset(("orders.customer_id", "customers.id"))]
    assert e["match_type"] == "ExactMatch" and e["score"] == 1.0 and e["pair_count"] == 90
    nodes = {n["dataset"]: n for n in onto["nodes"] if n["namespace"] == ns}
    assert set(nodes) >= {"customers", "orders"} and nodes["orders"]["in_namespace"] is True
    assert "customer_id" in nodes["orders"]["columns"] and onto["match_types"]["ExactMatch"] == len(onto["edges"])
    # curated again: the active ones are kept
    again = api.post(f"/namespaces/{ns}/ontology/curate", json={}).json()
    assert {c["decision"] for c in again["curated_links"] if c["link"]["status"] == "active"} == {"keep"}
    assert again["total_selected"] == 0


def test_patch_adds_and_removes(api, unique):
    ns, found = _setup(api, unique)
    border = found[frozenset(("partners.partner", "customers.customer"))]
    manual = {"from": _end(ns, "partners", "since"), "to": _end(ns, "orders", "id"), "options": {"min_distinct": 1}}
    r = api.patch(f"/namespaces/{ns}/ontology", json={"add": [border["id"], manual]})
    assert r.status_code == 200, r.text
    added = r.json()["added"]
    assert [a["result"] for a in added] == ["activated", "created"]
    assert added[0]["link"]["id"] == border["id"] and added[0]["link"]["status"] == "active"
    manual_id = added[1]["link"]["id"]
    assert {e["id"] for e in r.json()["ontology"]["edges"]} == {border["id"], manual_id}
    # again: unchanged
    r = api.patch(f"/namespaces/{ns}/ontology", json={"add": [border["id"]]})
    assert r.json()["added"][0]["result"] == "unchanged"

    r = api.patch(f"/namespaces/{ns}/ontology", json={"remove": [border["id"], manual_id]})
    assert r.status_code == 200, r.text
    assert [x["result"] for x in r.json()["removed"]] == ["suggested", "deleted"]
    assert r.json()["ontology"]["edges"] == []
    assert api.get(f"/links/{border['id']}").json()["status"] == "suggested"
    assert api.get(f"/links/{manual_id}").status_code == 404

    # bad input
    assert error_code(api.patch(f"/namespaces/{ns}/ontology", json={"remove": ["lnk_nope"]})) == "link_not_found"
    other = f"onto2-{unique}"
    assert api.post("/namespaces", json={"name": other}).status_code == 201
    r = api.patch(f"/namespaces/{other}/ontology", json={"remove": [border["id"]]})
    assert r.status_code == 400 and error_code(r) == "link_outside_namespace"
    assert api.get(f"/namespaces/nope-{unique}/ontology").status_code == 404


def test_sdk_and_cli(client, cli, api, unique):  # noqa: F811
    ns, found = _setup(api, unique)
    out = client.links.curate(ns)
    assert out["total_selected"] >= 2 and out["curated_links"][0]["reviewed_by"] == "rules"
    border = found[frozenset(("partners.partner", "customers.customer"))]
    upd = client.links.update_ontology(ns, add=[border["id"], {"from": f"{ns}/partners.since",
                                                               "to": f"{ns}/orders.id", "options": {"min_distinct": 1}}])
    assert [a["result"] for a in upd["added"]] == ["activated", "created"]
    assert len(client.links.ontology(ns)["edges"]) == 2
    r = cli("data", "links", "curate", ns)
    assert r.exit_code == 0, r.output
    assert "selected" in r.output and "select" in r.output and "borderline" not in r.output.split("\n")[-1]
    r = cli("data", "links", "curate", ns, "--activate", "--json")
    assert r.exit_code == 0, r.output
    activated = [c for c in as_json(r)["curated_links"] if c["decision"] == "select"]
    assert activated and all(c["link"]["status"] == "active" for c in activated)
    r = cli("data", "links", "ontology", ns, "--json")
    assert r.exit_code == 0, r.output
    assert {e["id"] for e in as_json(r)["edges"]} >= {c["link"]["id"] for c in activated} | {border["id"]}
    r = cli("data", "links", "ontology", ns)
    assert r.exit_code == 0 and "customers" in r.output
