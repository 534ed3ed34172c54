"""The official ``datalinks`` client's ``ingest(..., entity_resolution=MatchTypeConfig(...))``
(2.2.0, unchanged) against a real runyard server: the client's ``link`` payload is runyard's
entity resolution on ingest (keep_first), so a re-sent row lands once, with its entity's id."""

from __future__ import annotations

import httpx
import pytest
from datalinks.links import ExactMatch, GeoMatch, MatchTypeConfig

from tests.compat.test_datalinks_client import dl, name
from tests.support.servers import Server

pytestmark = pytest.mark.timeout(120)


def _stored(server: Server, namespace: str, dataset: str) -> list[dict]:
    with server.client() as api:
        r = api.post("/query", json={"query": f'SELECT _id, _entity_id, * FROM "{dataset}" ORDER BY _id',
                                     "namespace": namespace, "include_metadata": True})
        assert r.status_code == 200, r.text
        return r.json()["rows"]


def test_ingest_with_exact_match_resolves_entities(server: Server) -> None:
    api = dl(server, name("er"), "people")
    api.create_space()
    people = [{"name": "Ada", "city": "London"}, {"name": "Alan", "city": "Wilmslow"}]
    config = MatchTypeConfig(exact_match=ExactMatch(targetColumns=["name"]))
    assert api.ingest(people, entity_resolution=config).failed == []
    # the client re-sends a known person (another spelling) and a new one: one new row
    again = [{"name": " ada ", "city": "Paris"}, {"name": "Grace", "city": "Arlington"}]
    assert api.ingest(again, entity_resolution=config).failed == []
    rows = _stored(server, api.config.namespace, "people")
    assert [r["name"] for r in rows] == ["Ada", "Alan", "Grace"] and rows[0]["city"] == "London"
    assert len({r["_entity_id"] for r in rows}) == 3

    # without targetColumns every column is a key: the same row again is the same entity
    every = MatchTypeConfig(exact_match=ExactMatch())
    assert api.ingest([{"name": "ALAN", "city": "wilmslow"}], entity_resolution=every).failed == []
    assert len(_stored(server, api.config.namespace, "people")) == 3


def test_ingest_with_geo_match_and_the_report_on_the_wire(server: Server) -> None:
    api = dl(server, name("er"), "shops")
    api.create_space()
    config = MatchTypeConfig(geo_match=GeoMatch(targetColumns=["lat", "lon"], distance=300, distanceUnit="meters"))
    assert api.ingest([{"shop": "A", "lat": 51.5, "lon": -0.12}], entity_resolution=config).failed == []
    with httpx.Client(base_url=f"{server.base_url}/compat/datalinks", timeout=60,
                      headers={"Authorization": f"Bearer {server.admin_key}"}) as raw:
        r = raw.post(f"/ingest/{api.config.namespace}/shops",
                     json={"data": [{"shop": "A2", "lat": 51.501, "lon": -0.12}, {"shop": "B", "lat": 52.0, "lon": 0.0}],
                           "link": config.config})
        assert r.status_code == 200, r.text
        report = r.json()["entityResolution"]
        assert [e["action"] for e in report["entities"]] == ["kept_existing", "created"]
        assert r.json()["indexed"] == 2

        # options are checked as for links; the error names them
        bad = raw.post(f"/ingest/{api.config.namespace}/shops",
                       json={"data": [{"shop": "C", "lat": 1, "lon": 1}],
                             "link": {"GeoMatch": {"targetColumns": ["lat", "lon"], "distance": -2}}})
        assert bad.status_code == 400 and bad.json()["error_code"] == "invalid_entity_resolution", bad.text
        both = raw.post(f"/ingest/{api.config.namespace}/shops",
                        json={"data": [{"shop": "C", "lat": 1, "lon": 1}],
                              "link": {"ExactMatch": {}, "GeoMatch": {"targetColumns": ["lat", "lon"]}}})
        assert both.status_code == 400 and "one match type" in both.json()["message"], both.text
    assert [r["shop"] for r in _stored(server, api.config.namespace, "shops")] == ["A", "B"]
