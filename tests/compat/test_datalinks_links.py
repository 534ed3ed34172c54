"""The official ``datalinks`` client's link methods (2.2.0, unchanged) against a real runyard
server: add_link, load_links, preview_links and rebuild_links served from runyard's links,
as ``ApiLink`` (origin, destination, matchType, hits), with runyard's visibility rule (a key
sees a link only when it can read both ends)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from datalinks._generated.models import ApiLink
from datalinks.api import AsyncDataLinksAPI, DataLinksAPI, DLConfig
from datalinks.links import ExactMatch, GeoMatch, MatchTypeConfig

from tests.compat.test_datalinks_client import dl, member, name
from tests.support.servers import Server

pytestmark = pytest.mark.timeout(120)



def customers(tag: str) -> list[dict[str, Any]]:
    return [{"cid": f"{tag}{i:02d}", "label": f"customer {tag} {i}", "lat": 51.0 + i / 10, "lon": -0.1}
            for i in range(12)]


def orders(tag: str, base: int) -> list[dict[str, Any]]:
    """20 orders of the 12 customers. Values unique to the test (``tag``, ``base``): runyard
    suggests links across every dataset a user can read, other tests' too."""
    return [{"oid": base + n, "customer": f"{tag}{n % 12:02d}", "lat": 51.0 + (n % 12) / 10, "lon": -0.1}
            for n in range(20)]


class Pair:
    """Two datasets in two namespaces, ingested through the client: orders and customers."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.orders = dl(server, name("sales"), "orders")
        self.customers = dl(server, name("crm"), "customers")
        tag = uuid.uuid4().hex[:8]
        base = uuid.uuid4().int % 10**12 * 100
        for api, rows in ((self.orders, orders(tag, base)), (self.customers, customers(tag))):
            api.create_space()
            assert api.ingest(rows).failed == []

    @property
    def sales(self) -> str:
        return self.orders.config.namespace

    @property
    def crm(self) -> str:
        return self.customers.config.namespace

    def add(self, api: DataLinksAPI | None = None, match_type: str = "ExactMatch", from_column: str = "customer",
            to_column: str = "cid", options: dict[str, Any] | None = None) -> bool | None:
        return (api or self.orders).add_link(self.sales, "orders", from_column, self.crm, "customers", to_column,
                                             match_type, options)


def active(links: list[ApiLink] | None) -> list[ApiLink]:
    """The active links (suggestions come and go with the background pass after each ingestion)."""
    assert links is not None
    return [lk for lk in links if (lk.model_extra or {})["status"] == "active"]


@pytest.fixture
def pair(server: Server) -> Iterator[Pair]:
    yield Pair(server)


def compat(server: Server, key: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=f"{server.base_url}/compat/datalinks", timeout=60,
                        headers={"Authorization": f"Bearer {key or server.admin_key}"})


def end(namespace: str, dataset: str, column: str) -> dict[str, str]:
    return {"username": "self", "namespace": namespace, "dataset": dataset, "columnName": column}


def test_add_link_then_load_links_answers_api_links(pair: Pair) -> None:
    assert active(pair.orders.load_links()) == []
    assert pair.add() is True                        # 201: made
    assert pair.add() is False                       # 200: it exists
    assert pair.customers.add_link(pair.crm, "customers", "cid", pair.sales, "orders", "customer",
                                   "ExactMatch") is False  # either way round

    links = active(pair.orders.load_links())
    assert len(links) == 1
    link = links[0]
    assert link.origin == f"ri.admin.{pair.sales}.orders.customer"
    assert link.destination == f"ri.admin.{pair.crm}.customers.cid"
    assert (link.match_type, link.hits) == ("ExactMatch", 20)  # every order's one customer
    extra = link.model_extra or {}
    assert extra["status"] == "active" and extra["id"].startswith("lnk_")
    assert extra["options"] == {"minDistinct": 10, "minVariation": 0.0}  # runyard's defaults, wire names
    assert [lk.origin for lk in active(pair.customers.load_links())] == [link.origin]  # from the other end too


def test_add_link_options_map_onto_runyards(pair: Pair) -> None:
    assert pair.add(options={"minDistinct": 3, "minVariation": 0.2}) is True
    with pair.server.client() as admin:
        listed = admin.get("/links", params={"namespace": pair.sales, "status": "active"}).json()["items"]
    assert [(v["match_type"], v["options"]) for v in listed] == [
        ("ExactMatch", {"min_distinct": 3, "min_variation": 0.2})]

    # GeoMatch: a latitude,longitude pair of columns, the unit in the client's words.
    assert pair.add(match_type="GeoMatch", from_column="lat,lon", to_column="lat,lon",
                    options={"distance": 500, "distanceUnit": "meters"}) is True
    geo = [lk for lk in active(pair.orders.load_links()) if lk.match_type == "GeoMatch"]
    assert len(geo) == 1 and geo[0].hits == 20  # the customers' points are 11 km apart
    assert geo[0].origin == f"ri.admin.{pair.sales}.orders.lat,lon"
    assert (geo[0].model_extra or {})["options"] == {"distance": 500, "distanceUnit": "m"}


def test_a_refused_link_answers_datalinks_error_shape(server: Server, pair: Pair) -> None:
    assert pair.add(options={"minVariation": 2}) is None  # the client reads a failure as None
    assert pair.add(to_column="nope") is None
    with compat(server) as http:
        bad = http.post("/links/add", json={"from": end(pair.sales, "orders", "customer"),
                                            "to": end(pair.crm, "customers", "cid"), "matchType": "ExactMatch",
                                            "options": {"minVariation": 2}})
        assert bad.status_code == 400
        body = bad.json()
        assert body["error_code"] == "invalid_link_options" and body["message"]
        assert body["error"]["code"] == "invalid_link_options"
        fuzzy = http.post("/links/add", json={"from": end(pair.sales, "orders", "customer"),
                                              "to": end(pair.crm, "customers", "cid"), "matchType": "FuzzyMatch"})
        assert fuzzy.status_code == 400 and fuzzy.json()["error_code"] == "invalid_link_options"
        missing = http.post("/links/add", json={"from": end(pair.sales, "orders", "customer"),
                                                "to": end(pair.crm, "customers", "nope"), "matchType": "ExactMatch"})
        assert missing.status_code == 400 and missing.json()["error_code"] == "link_column_not_found"
        elsewhere = http.post("/links/add", json={"from": {**end(pair.sales, "orders", "customer"),
                                                           "username": "someone_else"},
                                                  "to": end(pair.crm, "customers", "cid"), "matchType": "ExactMatch"})
        assert elsewhere.status_code == 404 and elsewhere.json()["error_code"] == "namespace_not_found"
    assert active(pair.orders.load_links()) == []


def test_a_key_sees_a_link_only_when_it_can_read_both_ends(server: Server, pair: Pair) -> None:
    assert pair.add() is True
    username, key = member(server)
    theirs = dl(server, pair.sales, "orders", key=key)
    assert theirs.load_links() is None  # the namespace is private: 404, which the client reads as None
    pair.orders.share_namespace_access(username, "viewer")
    assert theirs.load_links() == []  # orders readable, customers not: the link does not exist for them
    with compat(server, key) as http:
        hidden = http.get(f"/links/self/{pair.sales}/orders")
        assert hidden.status_code == 200 and hidden.json() == []
    pair.customers.share_namespace_access(username, "viewer")
    links = active(theirs.load_links())
    assert [lk.destination for lk in links] == [f"ri.admin.{pair.crm}.customers.cid"]
    # A member key that reads both ends may link them, as on runyard's own API; a viewer key may not.
    assert pair.add(theirs, from_column="oid", to_column="label") is True
    viewer_name, viewer_key = member(server, role="viewer")
    pair.orders.share_namespace_access(viewer_name, "viewer")
    pair.customers.share_namespace_access(viewer_name, "viewer")
    assert len(active(dl(server, pair.sales, "orders", key=viewer_key).load_links())) == 2
    with compat(server, viewer_key) as http:
        refused = http.post("/links/add", json={"from": end(pair.sales, "orders", "customer"),
                                                "to": end(pair.crm, "customers", "label"), "matchType": "ExactMatch"})
        assert refused.status_code == 403 and refused.json()["error_code"] == refused.json()["error"]["code"]


def test_preview_links_scores_afresh_and_keeps_to_the_link_config(pair: Pair) -> None:
    assert pair.add(match_type="GeoMatch", from_column="lat,lon", to_column="lat,lon",
                    options={"distance": 1, "distanceUnit": "kilometers"}) is True
    rows = pair.orders.query_data("*") or []
    preview = pair.orders.preview_links(rows)
    assert preview is not None
    by_status = {(lk.model_extra or {})["status"]: lk for lk in preview}
    assert by_status["active"].match_type == "GeoMatch" and by_status["active"].hits == 20
    suggested = by_status["suggested"]  # orders.customer inside customers.cid: runyard suggests it
    assert (suggested.origin, suggested.destination) == (f"ri.admin.{pair.sales}.orders.customer",
                                                         f"ri.admin.{pair.crm}.customers.cid")
    assert suggested.match_type == "ExactMatch" and suggested.hits == 12  # shared distinct values
    assert (suggested.model_extra or {})["score"] == 1.0

    exact_only = pair.orders.preview_links(rows, MatchTypeConfig(exact_match=ExactMatch()))
    assert [lk.match_type for lk in exact_only or []] == ["ExactMatch"]
    other_columns = pair.orders.preview_links(rows, MatchTypeConfig(exact_match=ExactMatch(targetColumns=["oid"])))
    assert other_columns == []
    # Thresholds runyard does not take on a preview are refused (501), not dropped: None to the client.
    assert pair.orders.preview_links(rows, MatchTypeConfig(exact_match=ExactMatch(minDistinct=0.5))) is None
    assert pair.orders.preview_links(rows, MatchTypeConfig(geo_match=GeoMatch(distance=2))) is None


def test_preview_thresholds_answer_not_implemented(server: Server, pair: Pair) -> None:
    with compat(server) as http:
        refused = http.post(f"/links/preview/self/{pair.sales}/orders",
                            json={"data": [], "link": {"ExactMatch": {"minDistinct": 0.5}}})
    assert refused.status_code == 501
    body = refused.json()
    assert body["error_code"] == "not_implemented" and "minDistinct" in body["message"]


def test_rebuild_links_recalculates_and_answers_the_dataset_links(server: Server, pair: Pair) -> None:
    assert pair.add(match_type="GeoMatch", from_column="lat,lon", to_column="lat,lon") is True
    rebuilt = pair.orders.rebuild_links(pair.orders.query_data("*") or [])
    assert rebuilt is not None
    statuses = sorted(((lk.model_extra or {})["status"], lk.match_type, lk.hits) for lk in rebuilt)
    assert statuses == [("active", "GeoMatch", 20), ("suggested", "ExactMatch", 12)]
    with server.client() as admin:
        saved = admin.get("/links", params={"namespace": pair.sales, "status": "suggested"}).json()["items"]
    assert [{v["from"]["column"], v["to"]["column"]} for v in saved] == [{"customer", "cid"}]
    viewer_name, viewer_key = member(server, role="viewer")
    pair.orders.share_namespace_access(viewer_name, "viewer")
    with compat(server, viewer_key) as http:
        refused = http.post(f"/links/self/{pair.sales}/orders", json={"data": []})
    assert refused.status_code == 403 and json.loads(refused.content)["error_code"]


def test_the_async_client_links_too(server: Server, pair: Pair) -> None:
    async def main() -> None:
        config = DLConfig(host=f"{server.base_url}/compat/datalinks", apikey=server.admin_key,
                          namespace=pair.sales, objectname="orders")
        async with AsyncDataLinksAPI(config) as api:
            assert await api.add_link(pair.sales, "orders", "customer", pair.crm, "customers", "cid",
                                      "ExactMatch") is True
            links = active(await api.load_links())
            assert [(lk.match_type, lk.hits) for lk in links] == [("ExactMatch", 20)]

    asyncio.run(main())
