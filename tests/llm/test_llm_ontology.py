"""Ontology curation with a model: the borderline suggestions go to the (scripted) provider
in one JSON call; its decisions and reasons come back ``reviewed_by: "model"``; a failing
call leaves the rules' decisions."""

from __future__ import annotations

from tests.links.test_ontology import _key, _setup
from tests.support.fake_llm import json_answer, status


def test_model_reviews_the_borderline_links(admin, provider, fake, unique):
    ns, found = _setup(admin, unique)
    border = found[frozenset(("partners.partner", "customers.customer"))]
    fake.script(json_answer({"decisions": [{"id": border["id"], "decision": "select",
                                            "reason": "partners are customers"}]}))
    r = admin.post(f"/namespaces/{ns}/ontology/curate", json={})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model_review"]["provider"] == "scripted" and out["model_review"]["error"] is None
    assert out["model_review"]["reviewed"] >= 1
    decided = {_key(c["link"]): c for c in out["curated_links"]}
    mine = decided[frozenset(("partners.partner", "customers.customer"))]
    assert mine["decision"] == "select" and mine["reviewed_by"] == "model" and "partners are customers" in mine["reason"]
    # the clear-cut ones stay the rules'
    assert decided[frozenset(("orders.id", "customers.id"))]["reviewed_by"] == "rules"
    assert decided[frozenset(("orders.customer_id", "customers.id"))]["decision"] == "select"
    [request] = fake.requests
    assert border["id"] in request.prompt and "customers.customer" in request.prompt
    assert request.body["response_format"] == {"type": "json_object"}

    # the model failing: the rules' decisions stand, the error said
    fake.script(status(500), status(500), status(500))
    out = admin.post(f"/namespaces/{ns}/ontology/curate", json={}).json()
    assert out["model_review"]["error"]
    decided = {_key(c["link"]): c for c in out["curated_links"]}
    mine = decided[frozenset(("partners.partner", "customers.customer"))]
    assert mine["decision"] == "review" and mine["reviewed_by"] == "rules"
    fake.script()
