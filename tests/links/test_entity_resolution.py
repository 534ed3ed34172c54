"""Entity resolution on ingest, through the real HTTP API (SQLite and PostgreSQL): ExactMatch
with normalisation and GeoMatch, each policy, matching inside one batch and across
ingestions, the per-row report (inline, capped, and paged), file ingestions, bad configs."""

from __future__ import annotations

import json

import httpx

from tests.support.api import error_code


def _rows(api: httpx.Client, ns: str, ds: str, order: str = "name") -> list[dict]:
    r = api.post("/query", json={"query": f'SELECT * EXCLUDE (_ingestion_id, _ingested_at) FROM "{ds}" '
                                          f"ORDER BY {order}", "namespace": ns, "include_metadata": True})
    assert r.status_code == 200, r.text
    return r.json()["rows"]


def _ingest(api: httpx.Client, ns: str, ds: str, rows: list[dict], config: dict | None, **params: object) -> dict:
    body: dict = {"rows": rows}
    if config is not None:
        body["entity_resolution"] = config
    r = api.post(f"/namespaces/{ns}/datasets/{ds}/rows", params={"create": True, **params}, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _setup(api: httpx.Client, unique: str, name: str) -> str:
    ns = f"er{name}-{unique}"
    assert api.post("/namespaces", json={"name": ns}).status_code == 201
    return ns


PEOPLE = [{"name": "Ann", "city": "Oslo", "age": 30}, {"name": "Bob", "city": "Rome", "age": 40}]
EXACT = {"match_type": "ExactMatch", "columns": ["name"]}


def test_keep_first_matches_normalised_keys_within_the_batch_and_across_ingestions(api, unique):
    ns = _setup(api, unique, "keep")
    first = _ingest(api, ns, "people", PEOPLE, EXACT)
    report = first["entity_resolution"]
    assert report["policy"] == "keep_first" and report["counts"]["created"] == 2 and report["stored_rows"] == 2
    created = {e["index"]: e["entity_id"] for e in report["entities"]}
    assert [e["action"] for e in report["entities"]] == ["created", "created"]

    # " ANN " and "ann" are Ann after NFKC, case-folding and trimming; "Ｃｉｄ" (full width) and
    # "cid" are one new entity inside this batch; a key without value matches nothing
    second = _ingest(api, ns, "people", [{"name": " ANN ", "city": "Bergen"}, {"name": "Ｃｉｄ", "age": 5},
                                         {"name": "cid", "age": 6}, {"name": None, "city": "Nowhere"}], EXACT)
    entries = second["entity_resolution"]["entities"]
    assert [e["action"] for e in entries] == ["kept_existing", "created", "kept_existing", "created"]
    assert entries[0]["entity_id"] == created[0] and entries[1]["entity_id"] == entries[2]["entity_id"]
    assert second["ingested"] == 4 and second["entity_resolution"]["stored_rows"] == 2
    rows = _rows(api, ns, "people", "_id")
    assert [r["name"] for r in rows] == ["Ann", "Bob", "Ｃｉｄ", None]
    assert rows[0]["city"] == "Oslo" and rows[0]["_entity_id"] == created[0]
    assert rows[2]["_entity_id"] == entries[1]["entity_id"]

    # the ingestion records the report, and pages through it
    ing = api.get(f"/ingestions/{second['ingestion_id']}").json()
    assert ing["attributes"]["entity_resolution"]["counts"]["kept_existing"] == 2
    page = api.get(f"/ingestions/{second['ingestion_id']}/entities", params={"limit": 3}).json()
    assert page["items"] == entries[:3] and page["next_cursor"]
    rest = api.get(f"/ingestions/{second['ingestion_id']}/entities",
                   params={"cursor": page["next_cursor"]}).json()
    assert rest["items"] == entries[3:] and rest["next_cursor"] is None


def test_overwrite_replaces_the_entity_row(api, unique):
    ns = _setup(api, unique, "over")
    _ingest(api, ns, "people", PEOPLE, EXACT)
    before = {r["name"]: r for r in _rows(api, ns, "people")}
    config = {**EXACT, "policy": "overwrite"}
    out = _ingest(api, ns, "people", [{"name": "ann", "city": "Paris"}, {"name": "Dan", "age": 1},
                                      {"name": "DAN", "age": 2}], config)
    assert [e["action"] for e in out["entity_resolution"]["entities"]] == ["overwritten", "created", "overwritten"]
    rows = _rows(api, ns, "people")
    assert len(rows) == 3  # one row per entity: Ann's old row is gone
    by_name = {r["name"].casefold(): r for r in rows}
    assert by_name["ann"] == {**by_name["ann"], "name": "ann", "city": "Paris", "age": None,
                              "_entity_id": before["Ann"]["_entity_id"]}
    assert by_name["ann"]["_id"] != before["Ann"]["_id"]
    assert by_name["dan"]["age"] == 2 and by_name["dan"]["_entity_id"] == out["entity_resolution"]["entities"][1][
        "entity_id"]
    assert by_name["bob"] == before["Bob"]
    assert api.get(f"/namespaces/{ns}/datasets/people").json()["rows"] == 3


def test_merge_applies_incoming_non_null_values_over_the_stored_ones(api, unique):
    ns = _setup(api, unique, "merge")
    _ingest(api, ns, "people", PEOPLE, {**EXACT, "policy": "merge"})
    out = _ingest(api, ns, "people", [{"name": "ANN", "age": 31}, {"name": "ann", "email": "ann@example.org"},
                                      {"name": "Eve", "city": "Lima"}], {**EXACT, "policy": "merge"})
    assert out["entity_resolution"]["counts"] == {"created": 1, "matched": 0, "kept_existing": 0,
                                                   "overwritten": 0, "merged": 2}
    rows = {r["name"].casefold(): r for r in _rows(api, ns, "people")}
    assert len(rows) == 3
    ann = rows["ann"]
    assert (ann["city"], ann["age"], ann["email"]) == ("Oslo", 31, "ann@example.org")
    assert rows["bob"]["email"] is None and rows["eve"]["city"] == "Lima"


def test_several_key_columns_must_all_match(api, unique):
    ns = _setup(api, unique, "multi")
    config = {"match_type": "ExactMatch", "columns": ["name", "city"], "policy": "keep_first"}
    _ingest(api, ns, "people", PEOPLE, config)
    out = _ingest(api, ns, "people", [{"name": "ann", "city": "OSLO"}, {"name": "Ann", "city": "Rome"}], config)
    assert [e["action"] for e in out["entity_resolution"]["entities"]] == ["kept_existing", "created"]


def test_geomatch_takes_the_nearest_entity_within_the_distance(api, unique):
    ns = _setup(api, unique, "geo")
    config = {"match_type": "GeoMatch", "columns": ["lat", "lon"], "options": {"distance": 500, "unit": "m"},
              "policy": "merge"}
    first = _ingest(api, ns, "shops", [{"shop": "A", "lat": 59.9139, "lon": 10.7522},
                                       {"shop": "B", "lat": 59.9200, "lon": 10.7522}], config)
    a, b = (e["entity_id"] for e in first["entity_resolution"]["entities"])
    # 100 m north of A (nearer A than B, though B is 780 m off), 100 m south of B, a new one far away
    # with a second row 50 m from it in the same batch
    out = _ingest(api, ns, "shops", [{"lat": 59.9148, "lon": 10.7522, "phone": "1"},
                                     {"lat": 59.9191, "lon": 10.7522, "phone": "2"},
                                     {"shop": "C", "lat": 48.8566, "lon": 2.3522},
                                     {"lat": 48.85705, "lon": 2.3522, "phone": "3"}], config)
    entries = out["entity_resolution"]["entities"]
    assert [(e["entity_id"], e["action"]) for e in entries[:2]] == [(a, "merged"), (b, "merged")]
    assert entries[2]["action"] == "created" and entries[3] == {"index": 3, "entity_id": entries[2]["entity_id"],
                                                                 "action": "merged"}
    rows = {r["shop"]: r for r in _rows(api, ns, "shops", "shop")}
    assert set(rows) == {"A", "B", "C"}
    assert (rows["A"]["phone"], rows["B"]["phone"], rows["C"]["phone"]) == ("1", "2", "3")
    assert rows["A"]["lat"] == 59.9148  # merged: the incoming non-null values win


def test_min_distinct_switches_matching_off_and_says_why(api, unique):
    ns = _setup(api, unique, "excl")
    config = {**EXACT, "options": {"min_distinct": 10}}
    _ingest(api, ns, "people", PEOPLE, config)
    out = _ingest(api, ns, "people", [{"name": "Ann"}], config)
    report = out["entity_resolution"]
    assert "min_distinct" in report["excluded"] and report["entities"][0]["action"] == "created"


def test_bad_configs_are_refused_with_nothing_stored(api, unique):
    ns = _setup(api, unique, "bad")
    _ingest(api, ns, "people", PEOPLE, None)
    cases = [
        ({**EXACT, "columns": ["nope"]}, "entity_resolution.columns", "nope"),
        ({**EXACT, "policy": "replace"}, "entity_resolution.policy", "policy"),
        ({**EXACT, "options": {"min_variation": 2}}, "entity_resolution.options.min_variation", "min_variation"),
        ({"match_type": "GeoMatch", "columns": ["lat", "lon"], "options": {"distance": -1}},
         "entity_resolution.options.distance", "distance"),
        ({"match_type": "FuzzyMatch", "columns": ["name"]}, "entity_resolution.match_type", "match_type"),
        ({"match_type": "GeoMatch", "columns": ["name"]}, "entity_resolution.columns", "GeoMatch"),
        ({**EXACT, "extra": 1}, "entity_resolution.extra", "extra"),
        ("ExactMatch", "entity_resolution", "object"),
    ]
    for config, field, said in cases:
        r = api.post(f"/namespaces/{ns}/datasets/people/rows", json={"rows": [{"name": "Zed"}],
                                                                      "entity_resolution": config})
        assert r.status_code == 400 and error_code(r) == "invalid_entity_resolution", (config, r.text)
        assert r.json()["error"]["details"]["field"] == field and said in r.json()["error"]["message"], r.text
    assert api.get(f"/namespaces/{ns}/datasets/people").json()["rows"] == 2


def test_file_ingestions_resolve_entities(api, unique):
    ns = _setup(api, unique, "file")
    _ingest(api, ns, "people", PEOPLE, EXACT)
    csv = b"name,city\nann,Paris\nZoe,Kyiv\n"
    options = {"format": "csv", "entity_resolution": {**EXACT, "policy": "overwrite"}}
    r = api.post(f"/namespaces/{ns}/datasets/people/files", files={"file": ("p.csv", csv, "text/csv")},
                 data={"options": json.dumps(options)})
    assert r.status_code == 202, r.text
    done = api.get(f"/ingestions/{r.json()['id']}/wait", params={"timeout": 60}).json()
    assert done["status"] == "succeeded", done
    report = done["attributes"]["entity_resolution"]
    assert [e["action"] for e in report["entities"]] == ["overwritten", "created"]
    rows = {r["name"].casefold(): r for r in _rows(api, ns, "people")}
    assert len(rows) == 3 and rows["ann"]["city"] == "Paris"

    # a key column the file does not have: the ingestion fails saying so, nothing stored
    options = {"format": "csv", "entity_resolution": {**EXACT, "columns": ["email"]}}
    r = api.post(f"/namespaces/{ns}/datasets/people/files", files={"file": ("p.csv", csv, "text/csv")},
                 data={"options": json.dumps(options)})
    done = api.get(f"/ingestions/{r.json()['id']}/wait", params={"timeout": 60}).json()
    assert done["status"] == "failed" and "invalid_entity_resolution" in done["status_message"], done
    assert "email" in done["status_message"] and api.get(f"/namespaces/{ns}/datasets/people").json()["rows"] == 3

    # a bad shape is refused when submitted
    options = {"format": "csv", "entity_resolution": {**EXACT, "policy": "nope"}}
    r = api.post(f"/namespaces/{ns}/datasets/people/files", files={"file": ("p.csv", csv, "text/csv")},
                 data={"options": json.dumps(options)})
    assert r.status_code == 400 and error_code(r) == "invalid_entity_resolution", r.text


def test_large_reports_are_capped_inline_and_complete_when_paged(api, unique):
    ns = _setup(api, unique, "cap")
    rows = [{"name": f"n{i % 1500}", "v": i} for i in range(2500)]
    out = _ingest(api, ns, "big", rows, EXACT)
    report = out["entity_resolution"]
    assert len(report["entities"]) == 1000 and report["entities_truncated"] and report["entities_total"] == 2500
    assert report["counts"]["created"] == 1500 and report["counts"]["kept_existing"] == 1000
    seen = []
    cursor = None
    while True:
        page = api.get(f"/ingestions/{out['ingestion_id']}/entities",
                       params={"limit": 1000, **({"cursor": cursor} if cursor else {})}).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [e["index"] for e in seen] == list(range(2500))
    assert seen[1600]["entity_id"] == seen[100]["entity_id"] and seen[1600]["action"] == "kept_existing"
    assert api.get(f"/namespaces/{ns}/datasets/big").json()["rows"] == 1500


def test_concurrent_ingestions_never_make_an_entity_twice(server, unique):
    """Writers that race resolve again when the snapshot moved under them: one key sent by
    eight clients at once is one entity, created once."""
    from concurrent.futures import ThreadPoolExecutor

    with server.client() as api:
        ns = _setup(api, unique, "race")
        _ingest(api, ns, "people", [{"name": "seed"}], EXACT)

    def send(i: int) -> dict:
        with server.client() as c:
            r = c.post(f"/namespaces/{ns}/datasets/people/rows",
                       json={"rows": [{"name": "Same", "n": i}, {"name": f"own-{i}"}], "entity_resolution": EXACT})
            assert r.status_code == 201, r.text
            return r.json()["entity_resolution"]

    with ThreadPoolExecutor(8) as pool:
        reports = list(pool.map(send, range(8)))
    firsts = [r["entities"][0] for r in reports]
    assert sum(e["action"] == "created" for e in firsts) == 1 and len({e["entity_id"] for e in firsts}) == 1
    with server.client() as api:
        rows = _rows(api, ns, "people")
        assert sorted(r["name"] for r in rows) == sorted(["seed", "Same", *(f"own-{i}" for i in range(8))])


def test_preview_resolves_the_rows_among_themselves(api):
    rows = [{"name": "Ann", "n": 1}, {"name": " ann", "n": 2}, {"name": "Bob", "n": 3}]
    r = api.post("/ingest/preview", json={"rows": rows, "options": {"entity_resolution": EXACT}})
    assert r.status_code == 200, r.text
    report = r.json()["entity_resolution"]
    assert [(e["entity_id"], e["action"]) for e in report["entities"]] == [(1, "created"), (1, "matched"),
                                                                          (3, "created")]
    assert report["stored_rows"] == 2 and r.json()["rows"] == rows  # the rows themselves as without it
    bad = api.post("/ingest/preview", json={"rows": rows, "options": {"entity_resolution": {**EXACT,
                                                                                            "columns": ["x"]}}})
    assert bad.status_code == 400 and error_code(bad) == "invalid_entity_resolution", bad.text
    assert bad.json()["error"]["details"]["field"] == "options.entity_resolution.columns"
