"""The official ``datalinks`` client's cleaning and save_ontology methods (2.2.0, unchanged)
against a real runyard server: request_cleaning / get_cleaning_code are runyard's cleaning
tasks (the model is the scripted server on loopback), save_ontology is runyard's ontology
PATCH with the client's ``ApiLink``s or dicts."""

from __future__ import annotations

import uuid

import httpx
import pytest
from datalinks.api import DataLinksRequestError

from tests.compat.test_datalinks_client import dl, name
from tests.compat.test_datalinks_links import Pair
from tests.compat.test_datalinks_nl import error_code, fake, llm_server  # noqa: F401  (module fixtures)
from tests.support.fake_llm import FakeLLM, json_answer
from tests.support.servers import Server

pytestmark = pytest.mark.timeout(180)

PEOPLE = [{"name": " Ann ", "age": 31}, {"name": "bob", "age": None}, {"name": "Cy ", "age": 40}]
SQL = "SELECT trim(name) AS name, age FROM source WHERE age IS NOT NULL"


def _task(server: Server, namespace: str, dataset: str, wire_id: str) -> dict:
    runyard_id = "cln_" + _ulid(uuid.UUID(wire_id).int)
    with server.client(timeout=90) as admin:
        got = admin.get(f"/namespaces/{namespace}/datasets/{dataset}/cleaning/{runyard_id}", params={"wait": 60})
    assert got.status_code == 200, got.text
    return got.json()


def _wire(server: Server, key: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=f"{server.base_url}/compat/datalinks", timeout=60,
                        headers={"Authorization": f"Bearer {key or server.admin_key}"})


def _ulid(value: int) -> str:
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    return "".join(alphabet[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def test_request_cleaning_and_its_code(llm_server: Server, fake: FakeLLM) -> None:  # noqa: F811
    people = dl(llm_server, name("cl"), "people")
    people.create_space()
    assert people.ingest(PEOPLE).failed == []
    fake.script(json_answer({"sql": SQL, "explanation": "trim, drop rows without an age"}))
    task_id = people.request_cleaning(["Trim the names", "Drop rows without an age"], people.config.namespace,
                                      "people_clean")
    assert task_id is not None and str(uuid.UUID(task_id)) == task_id  # the client's UUID form
    done = _task(llm_server, people.config.namespace, "people", task_id)
    assert done["status"] == "succeeded", done
    [code] = people.get_cleaning_code(task_id) or []
    assert code["name"] == "clean.sql" and SQL in code["content"] and code["status"] == "succeeded"
    cleaned = dl(llm_server, people.config.namespace, "people_clean")
    rows = sorted(cleaned.query_data("*") or [], key=lambda r: r["age"])
    assert [(r["name"], r["age"]) for r in rows] == [("Ann", 31), ("Cy", 40)]
    # The target exists now: refused, nothing asked of the model.
    # The client answers None for a refusal; the wire says why in DataLinks' error shape.
    fake.script()
    assert people.request_cleaning(["again"], people.config.namespace, "people_clean") is None
    with _wire(llm_server) as c:
        path = f"/agents/self/{people.config.namespace}/people/requestCleaning"
        r = c.post(path, json={"prompts": ["again"], "outputNamespace": people.config.namespace,
                               "outputDatasetName": "people_clean"})
        assert r.status_code == 409 and r.json()["error_code"] == "dataset_exists"
        r = c.post(path, json={"prompts": [], "outputNamespace": people.config.namespace, "outputDatasetName": "o"})
        assert r.status_code == 400 and r.json()["error_code"] == "invalid_prompts"
        assert c.get(f"/agents/cleaning/{uuid.uuid4()}/code").status_code == 404
    assert fake.requests == []
    # An unknown task: the client's None.
    assert people.get_cleaning_code(str(uuid.uuid4())) is None


def test_a_refused_transform_shows_its_code_and_creates_nothing(llm_server: Server, fake: FakeLLM) -> None:  # noqa: F811
    people = dl(llm_server, name("cr"), "people")
    people.create_space()
    assert people.ingest(PEOPLE).failed == []
    fake.script(json_answer({"sql": "COPY source TO '/tmp/x.csv'"}))
    task_id = people.request_cleaning(["Export it"], people.config.namespace, "out")
    assert task_id is not None
    done = _task(llm_server, people.config.namespace, "people", task_id)
    assert done["status"] == "failed" and done["error"]["code"] == "read_only_sql"
    [code] = people.get_cleaning_code(task_id) or []
    assert "COPY source" in code["content"] and code["error"]["code"] == "read_only_sql"
    with llm_server.client() as admin:
        assert admin.get(f"/namespaces/{people.config.namespace}/datasets/out").status_code == 404


def test_cleaning_without_a_provider_is_409(server: Server) -> None:
    api = dl(server, name("cn"), "people")
    api.create_space()
    assert api.request_cleaning(["trim"], api.config.namespace, "out") is None
    with _wire(server) as c:
        r = c.post(f"/agents/self/{api.config.namespace}/people/requestCleaning",
                   json={"prompts": ["trim"], "outputNamespace": api.config.namespace, "outputDatasetName": "out"})
        assert r.status_code == 409 and r.json()["error_code"] == "llm_not_configured"


def test_cleaning_of_a_dataset_out_of_sight_is_404(server: Server) -> None:
    api = dl(server, name("cs"), "people")
    api.create_space()
    elsewhere = dl(server, name("ce"), "other")
    elsewhere.create_space()
    with server.client() as admin:
        made = admin.post("/tokens", json={"name": name("v"), "role": "member", "restrictions": {
            "grants": [{"namespace": elsewhere.config.namespace, "access": "write"}]}})
    assert made.status_code == 201, made.text
    blind = dl(server, api.config.namespace, "people", key=made.json()["key"])
    assert blind.request_cleaning(["trim"], elsewhere.config.namespace, "out") is None
    with _wire(server, made.json()["key"]) as c:
        r = c.post(f"/agents/self/{api.config.namespace}/people/requestCleaning",
                   json={"prompts": ["trim"], "outputNamespace": elsewhere.config.namespace, "outputDatasetName": "o"})
        assert r.status_code == 404, r.text


# -- save_ontology ---------------------------------------------------------------------------------
def test_save_ontology_adds_and_removes_links(server: Server) -> None:
    pair = Pair(server)
    assert pair.orders.get_ontology() == []
    origin = f"ri.self.{pair.sales}.orders.customer"
    destination = f"ri.self.{pair.crm}.customers.cid"
    pair.orders.save_ontology(add=[{"origin": origin, "destination": destination}])  # a 1.x dict: two ends
    [link] = pair.orders.get_ontology() or []
    assert link.origin == f"ri.admin.{pair.sales}.orders.customer" and link.match_type == "ExactMatch"
    assert link.destination == f"ri.admin.{pair.crm}.customers.cid"
    pair.orders.save_ontology(add=[link])  # the same again, as an ApiLink: unchanged
    assert len(pair.orders.get_ontology() or []) == 1
    pair.orders.save_ontology(remove=[{"origin": link.destination, "destination": link.origin}])  # either way round
    assert pair.orders.get_ontology() == []
    pair.orders.save_ontology(add=[link])  # by its runyard id: active again
    [again] = pair.orders.get_ontology() or []
    pair.orders.save_ontology(remove=[again])
    assert pair.orders.get_ontology() == []


def test_save_ontology_refuses_bad_links(server: Server) -> None:
    pair = Pair(server)
    for bad in ({"origin": "not-a-ref", "destination": "ri.self.a.b.c"},
                {"origin": f"ri.self.{pair.sales}.orders.customer", "destination": f"ri.self.{pair.crm}.customers.cid",
                 "matchType": "FuzzyMatch"}):
        with pytest.raises(DataLinksRequestError) as caught:
            pair.orders.save_ontology(add=[bad])
        assert caught.value.status_code == 400, caught.value
    with pytest.raises(DataLinksRequestError) as caught:  # no such link to remove
        pair.orders.save_ontology(remove=[{"origin": f"ri.self.{pair.sales}.orders.customer",
                                           "destination": f"ri.self.{pair.crm}.customers.cid",
                                           "matchType": "GeoMatch"}])
    assert caught.value.status_code == 404 and error_code(caught.value) == "link_not_found"
    assert pair.orders.get_ontology() == []


def test_save_ontology_needs_both_ends_readable_and_write_access(server: Server) -> None:
    pair = Pair(server)
    with server.client() as admin:
        reader = admin.post("/tokens", json={"name": name("r"), "role": "viewer"}).json()["key"]
        one_side = admin.post("/tokens", json={"name": name("o"), "role": "member", "restrictions": {
            "grants": [{"namespace": pair.sales, "access": "write"}]}}).json()["key"]
    link = {"origin": f"ri.self.{pair.sales}.orders.customer", "destination": f"ri.self.{pair.crm}.customers.cid"}
    with pytest.raises(DataLinksRequestError) as caught:
        dl(server, pair.sales, "orders", key=reader).save_ontology(add=[link])
    assert caught.value.status_code == 403
    with pytest.raises(DataLinksRequestError) as caught:
        dl(server, pair.sales, "orders", key=one_side).save_ontology(add=[link])
    assert caught.value.status_code == 404  # the other end is out of its sight
    assert pair.orders.get_ontology() == []
    with _wire(server) as c:
        r = c.post(f"/ontology/self/{pair.sales}/nope", json={"add": []})
        assert r.status_code == 404
