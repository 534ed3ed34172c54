"""The official ``datalinks`` client (2.2.0, pinned in the test extra), unchanged, against a
real runyard server at ``/compat/datalinks``: every method issue 15 lists, driven as the
client's documentation shows, and the ontology/LLM methods answering ``not_implemented`` (the
link methods: test_datalinks_links.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from datalinks.api import AsyncDataLinksAPI, DataLinksAPI, DataLinksRequestError, DLConfig

from tests.support.servers import Server

pytestmark = pytest.mark.timeout(120)


def dl(server: Server, namespace: str = "", dataset: str = "", key: str | None = None) -> DataLinksAPI:
    return DataLinksAPI(DLConfig(host=f"{server.base_url}/compat/datalinks", apikey=key or server.admin_key,
                                 namespace=namespace, objectname=dataset))


def name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def space(server: Server) -> Iterator[DataLinksAPI]:
    """A fresh namespace and dataset (made with create_space), as the client's config names them."""
    api = dl(server, name("ns"), name("people"))
    api.create_space(data_description="people we know", schema_definition={"name": "full name"})
    yield api


def error_body(exc: DataLinksRequestError) -> dict[str, Any]:
    assert isinstance(exc.content, bytes)
    return json.loads(exc.content)


def member(server: Server, role: str = "member") -> tuple[str, str]:
    """A new user of the workspace and a key of theirs: (username, key)."""
    username = f"u{uuid.uuid4().hex[:8]}"
    with server.client() as admin:
        assert admin.post("/users", json={"username": username, "role": role}).status_code == 201
        made = admin.post("/tokens", json={"name": "compat", "role": role, "user": username})
        assert made.status_code == 201, made.text
    return username, made.json()["key"]


PEOPLE = [{"name": "Ada", "age": 36, "city": "London"}, {"name": "Alan", "age": 41, "city": "Wilmslow"},
          {"name": "Grace", "age": 85, "city": "Arlington"}]


# -- configuration and identity ------------------------------------------------------------------
def test_the_client_configured_from_its_environment_reaches_runyard(server: Server,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DL_HOST", f"{server.base_url}/compat/datalinks")
    monkeypatch.setenv("DL_API_KEY", server.admin_key)
    monkeypatch.setenv("DL_NAMESPACE", "ignored_here")
    api = DataLinksAPI()  # DLConfig.from_env(), as the client's docs set it up
    me = api.get_current_user()
    assert me is not None and me.username == "admin" and me.id.startswith("usr_")


def test_a_bad_key_is_refused_in_the_shape_the_client_reports(server: Server) -> None:
    api = dl(server, "any", "thing", key="ry_not_a_key")
    assert api.get_current_user() is None  # reads answer None on failure, as documented
    with pytest.raises(DataLinksRequestError) as caught:
        api.clear_dataset()
    assert caught.value.status_code == 401
    body = error_body(caught.value)
    assert body["error_code"] == "invalid_api_key" and body["message"]
    assert body["error"]["code"] == "invalid_api_key" and body["error"]["request_id"]


# -- datasets ----------------------------------------------------------------------------------
def test_create_space_then_ingest_and_read_the_dataset_info(server: Server, space: DataLinksAPI) -> None:
    ns, ds = space.config.namespace, space.config.objectname
    space.create_space()  # again: an existing space is left alone and reported as success
    result = space.ingest(PEOPLE, batch_size=2)
    assert result.successful == PEOPLE and result.failed == []

    info = space.get_dataset_info()
    assert info is not None
    assert (info.dataset.name, info.dataset.namespace, info.dataset.owner) == (ds, ns, "admin")
    assert info.dataset.visibility == "Private"
    assert info.metadata.row_count == 3
    assert info.metadata.column_names == ["name", "age", "city"]
    assert info.metadata.data_description is not None and info.metadata.data_description.root == "people we know"
    assert info.metadata.schema_definition is not None and dict(info.metadata.schema_definition.root) == {
        "name": "full name"}


def test_a_batch_with_a_bad_row_fails_whole_and_nothing_of_it_lands(space: DataLinksAPI) -> None:
    assert space.ingest(PEOPLE).failed == []
    bad = [{"name": "Edsger", "age": 72}, {"name": "Barbara", "age": "not a number"}]
    result = space.ingest(bad, max_attempts=2)
    assert result.successful == [] and result.failed == bad
    info = space.get_dataset_info()
    assert info is not None and info.metadata.row_count == 3


def test_ingest_into_a_dataset_that_does_not_exist_fails(server: Server) -> None:
    api = dl(server, name("ns"), "missing")
    result = api.ingest([{"a": 1}], max_attempts=1)
    assert result.successful == [] and result.failed == [{"a": 1}]


def test_update_infer_definition_and_sort_order(space: DataLinksAPI) -> None:
    space.ingest(PEOPLE)
    space.update_infer_definition(data_description="famous people",
                                  schema_definition={"name": "their name", "age": "years"})
    space.update_sort_order(["city", "name", "age"])
    info = space.get_dataset_info()
    assert info is not None
    assert info.metadata.column_names == ["city", "name", "age"]
    assert info.metadata.data_description is not None and info.metadata.data_description.root == "famous people"
    assert info.metadata.schema_definition is not None
    assert dict(info.metadata.schema_definition.root) == {"name": "their name", "age": "years"}
    with pytest.raises(DataLinksRequestError) as caught:
        space.update_sort_order(["city", "name"])  # not every column
    assert caught.value.status_code == 400 and error_body(caught.value)["error_code"] == "invalid_sort_order"


def test_rename_clear_and_delete_a_dataset(server: Server, space: DataLinksAPI) -> None:
    space.ingest(PEOPLE)
    new = name("renamed")
    space.rename_dataset(new)
    assert space.get_dataset_info() is None  # the old name is gone
    space.config.objectname = new
    info = space.get_dataset_info()
    assert info is not None and info.metadata.row_count == 3

    space.clear_dataset()
    info = space.get_dataset_info()
    assert info is not None and info.metadata.row_count == 0
    assert info.metadata.column_names == ["name", "age", "city"]  # rows go, the catalog stays

    space.delete_dataset()
    assert space.get_dataset_info() is None
    with pytest.raises(DataLinksRequestError) as caught:
        space.delete_dataset()
    assert caught.value.status_code == 404 and error_body(caught.value)["error_code"] == "dataset_not_found"


def test_list_datasets_and_schema_listings(server: Server, space: DataLinksAPI) -> None:
    ns, ds = space.config.namespace, space.config.objectname
    space.ingest(PEOPLE)
    other = dl(server, ns, name("cities"))
    other.create_space()

    everything = space.list_datasets()
    assert everything is not None
    assert {(d.namespace, d.name) for d in everything} >= {(ns, ds), (ns, other.config.objectname)}
    within = space.list_datasets(namespace=ns)
    assert within is not None and sorted(d.name for d in within) == sorted([ds, other.config.objectname])
    assert all(d.owner == "admin" and d.visibility == "Private" for d in within)

    every_schema = space.list_all_datasets_schema()
    assert every_schema is not None and (ns, ds) in {(d.namespace, d.name) for d in every_schema}
    in_ns = space.list_datasets_in_namespace_schema()
    assert in_ns is not None and sorted(d.name for d in in_ns) == sorted([ds, other.config.objectname])
    people = next(d for d in in_ns if d.name == ds)
    assert [c["name"] for c in (people.model_extra or {})["columns"]] == ["name", "age", "city"]
    assert space.list_datasets_in_namespace_schema(namespace=ns, user="admin") is not None
    assert space.list_datasets_in_namespace_schema(namespace=ns, user="somebody_else") is None  # not theirs


def test_namespaces_list_and_rename(server: Server, space: DataLinksAPI) -> None:
    ns = space.config.namespace
    mine = space.list_namespaces()
    assert mine is not None and ns in {n.name for n in mine} and all(n.owner == "admin" for n in mine)
    assert space.list_namespaces(user="admin") is not None
    new = name("ns")
    space.rename_namespace(new)
    space.config.namespace = new
    names = {n.name for n in space.list_namespaces() or []}
    assert new in names and ns not in names
    assert space.get_dataset_info() is not None  # its datasets went with it


def test_a_namespace_shared_with_another_user(server: Server, space: DataLinksAPI) -> None:
    username, key = member(server)
    theirs = dl(server, space.config.namespace, space.config.objectname, key=key)
    assert theirs.get_dataset_info() is None  # private: not theirs to see
    space.share_namespace_access(username, "viewer")
    assert [(g.username, g.role) for g in space.list_namespace_shares() or []] == [(username, "viewer")]
    info = theirs.get_dataset_info()
    assert info is not None and info.dataset.owner == "admin"
    with pytest.raises(DataLinksRequestError) as caught:
        theirs.clear_dataset()  # a viewer reads, does not write
    assert caught.value.status_code == 403
    space.revoke_namespace_access(username, "viewer")
    assert theirs.get_dataset_info() is None


# -- query -------------------------------------------------------------------------------------
def test_query_data_with_star_sql_and_the_default_query(space: DataLinksAPI) -> None:
    ns, ds = space.config.namespace, space.config.objectname
    space.ingest(PEOPLE)
    rows = space.query_data("*")
    assert rows is not None and sorted(r["name"] for r in rows) == ["Ada", "Alan", "Grace"]
    assert all(not k.startswith("_") for r in rows for k in r)
    with_meta = space.query_data("*", include_metadata=True)
    assert with_meta is not None and all("_id" in r and "_ingested_at" in r for r in with_meta)
    default = space.query_data()  # the client asks for Ontology(ns/ds): the whole dataset
    assert default is not None and len(default) == 3

    sql = space.query_data(f'SELECT name, age FROM "{ns}"."{ds}" WHERE age > 40 ORDER BY age')
    assert sql == [{"name": "Alan", "age": 41}, {"name": "Grace", "age": 85}]
    bare = space.query_data(f"SELECT count(*) AS n FROM {ds}")  # bare names resolve within the namespace
    assert bare == [{"n": 3}]
    assert space.query_data("DROP TABLE anything") is None  # refused: the client answers None
    explained = space.query_data("*", explain=True)  # runyard's plan travels beside the rows
    assert explained is not None and len(explained) == 3


# -- multipart uploads and ingestions -------------------------------------------------------------
def upload(api: DataLinksAPI, data: bytes, filename: str = "people.csv") -> dict[str, Any]:
    """The documented trio's first two steps: prepare, then PUT each part to its presigned URL."""
    prepared = api.prepare_multipart_upload(filename, len(data))
    assert prepared["uploadId"] and prepared["key"] and prepared["presignedUrls"]
    parts = []
    offset = 0
    for number, item in enumerate(prepared["presignedUrls"], start=1):
        chunk = data[offset:offset + item["size"]]
        offset += item["size"]
        assert item["url"].startswith("http")  # absolute, on runyard itself, no bearer key needed
        put = httpx.put(item["url"], content=chunk, timeout=30)
        assert put.status_code == 200, put.text
        parts.append({"partNumber": number, "etag": put.headers["ETag"]})
    assert offset == len(data)
    return {"upload_id": prepared["uploadId"], "key": prepared["key"], "parts": parts}


def csv_bytes(rows: int) -> bytes:
    return ("id,city,amount\n" + "".join(f"{i},c{i % 7},{i * 1.5}\n" for i in range(rows))).encode()


def test_multipart_upload_prepare_put_finish_then_wait(server: Server, space: DataLinksAPI) -> None:
    rows = 600_000  # about 11 MB
    data = csv_bytes(rows)
    sent = upload(space, data)
    assert len(sent["parts"]) == 2  # parts of 8 MiB, as DataLinks documents them
    finished = space.finish_multipart_upload(sent["upload_id"], sent["key"], sent["parts"], name="people.csv")
    ingestion_id = finished["id"]
    uuid.UUID(ingestion_id)  # the client's records carry UUIDs
    record = space.wait_for_ingestion(ingestion_id, poll_interval=1, timeout=60)
    assert record.status == "succeeded", record
    assert record.processed_rows == rows and record.attributes is not None
    assert record.attributes.name == "people.csv"
    totals = space.query_data(f'SELECT count(*) AS n, sum(amount) AS total FROM "{space.config.namespace}".'
                              f'"{space.config.objectname}" WHERE id >= 0')
    assert totals == [{"n": rows, "total": sum(i * 1.5 for i in range(rows))}]

    listed = space.list_ingestions()
    assert listed is not None and str(listed[0].id) == ingestion_id  # newest first
    space.mark_ingestion_seen(ingestion_id)
    seen = next(r for r in space.list_ingestions() or [] if str(r.id) == ingestion_id)
    assert (seen.model_extra or {})["seen"] is True


def test_ingest_with_curate_curates_the_namespace(server: Server) -> None:
    """``ingest(curate=True)`` is runyard's ``curate``: once the link suggestions are computed,
    the namespace's ontology is curated (activated), recorded on the ingestion."""
    namespace, marker = name("cur"), uuid.uuid4().hex[:6]
    # values unique to the test: suggestions reach every dataset the key can read
    customers = [{"customer": f"K{marker}-{i:03d}", "name": f"N{marker}-{i}"} for i in range(40)]
    orders = [{"customer": f"k{marker}-{i % 30:03d} ", "note": f"o{marker}-{i}"} for i in range(90)]
    apis = {ds: dl(server, namespace, ds) for ds in ("customers", "orders")}
    for ds, rows in (("customers", customers), ("orders", orders)):
        apis[ds].create_space()
        assert apis[ds].ingest(rows, curate=(ds == "orders")).failed == []
    with httpx.Client(base_url=server.api, headers={"Authorization": f"Bearer {server.admin_key}"},
                      timeout=30) as api:
        newest = api.get(f"/namespaces/{namespace}/datasets/orders/ingestions").json()["items"][0]
        deadline = time.monotonic() + 90
        while (newest["attributes"].get("curation") or {}).get("status") == "pending" and time.monotonic() < deadline:
            time.sleep(0.3)
            newest = api.get(f"/ingestions/{newest['id']}").json()
        curation = newest["attributes"]["curation"]
        assert curation["status"] == "succeeded" and curation["total_selected"] >= 1, curation
        edges = api.get(f"/namespaces/{namespace}/ontology").json()["edges"]
        assert [{(e["from"]["dataset"], e["from"]["column"]), (e["to"]["dataset"], e["to"]["column"])}
                for e in edges] == [{("orders", "customer"), ("customers", "customer")}]


def test_finish_with_a_rows_step_is_refused_and_nothing_lands(space: DataLinksAPI) -> None:
    from datalinks.pipeline import Pipeline, ProcessStructured

    sent = upload(space, csv_bytes(5))
    with pytest.raises(DataLinksRequestError) as caught:
        space.finish_multipart_upload(sent["upload_id"], sent["key"], sent["parts"],
                                      inference_steps=Pipeline(ProcessStructured(derive_from="city")))
    assert caught.value.status_code == 400 and error_body(caught.value)["error_code"] == "invalid_pipeline"
    assert space.list_ingestions() == []


def test_a_failed_ingestion_retried(server: Server, space: DataLinksAPI) -> None:
    sent = upload(space, b'[{"name": "Ada"}, {"name": ', filename="truncated.json")  # cut short
    finished = space.finish_multipart_upload(sent["upload_id"], sent["key"], sent["parts"])
    failed = space.wait_for_ingestion(finished["id"], poll_interval=1, timeout=60)
    assert failed.status == "failed" and failed.status_message and "not closed" in failed.status_message
    retried = space.retry_ingestion(finished["id"])
    assert retried is not None
    again = space.wait_for_ingestion(str(retried.id), poll_interval=1, timeout=60)
    assert again.status == "failed"


def test_abort_a_multipart_upload(space: DataLinksAPI) -> None:
    data = csv_bytes(10)
    prepared = space.prepare_multipart_upload("later.csv", len(data))
    space.abort_multipart_upload(prepared["uploadId"], prepared["key"])
    with pytest.raises(DataLinksRequestError) as caught:
        space.finish_multipart_upload(prepared["uploadId"], prepared["key"], [{"partNumber": 1, "etag": "x"}])
    assert 400 <= (caught.value.status_code or 0) < 500


# -- tokens -------------------------------------------------------------------------------------
def test_tokens_restricted_with_access_restricted_to(server: Server, space: DataLinksAPI) -> None:
    ns = space.config.namespace
    space.ingest(PEOPLE)
    elsewhere = dl(server, name("ns"), "secret")
    elsewhere.create_space()

    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    token = space.add_token(name("ci"), expires_at=expires,
                            access_restricted_to=[{"username": "self", "namespace": ns}])
    assert token is not None and token.token and token.id.startswith("tok_")
    assert token.expires_at.startswith(expires[:16])
    listed = space.list_tokens()
    assert listed is not None and token.id in {t.id for t in listed}
    assert all(t.token is None for t in listed)  # the secret is shown once

    permissions = space.list_token_permissions(token.id)
    assert permissions is not None and permissions.restricted is True
    assert [(p.username, p.namespace, p.dataset) for p in permissions.permissions or []] == [("admin", ns, None)]

    narrowed = dl(server, ns, space.config.objectname, key=token.token)
    assert {d.namespace for d in narrowed.list_datasets() or []} == {ns}
    assert narrowed.query_data("*") is not None
    assert dl(server, elsewhere.config.namespace, "secret", key=token.token).get_dataset_info() is None

    space.delete_token(token.id)
    assert narrowed.get_current_user() is None  # revoked


def test_a_token_restricted_to_one_dataset(server: Server, space: DataLinksAPI) -> None:
    ns, ds = space.config.namespace, space.config.objectname
    other = dl(server, ns, name("other"))
    other.create_space()
    token = space.add_token(name("one"), access_restricted_to=[{"username": "admin", "namespace": ns,
                                                                  "dataset": ds}])
    assert token is not None and token.token
    permissions = space.list_token_permissions(token.id)
    assert permissions is not None
    assert [(p.namespace, p.dataset) for p in permissions.permissions or []] == [(ns, ds)]
    narrowed = dl(server, ns, ds, key=token.token)
    assert [d.name for d in narrowed.list_datasets(namespace=ns) or []] == [ds]
    assert space.add_token(name("bad"), access_restricted_to=[{"username": "self", "namespace": "no_such_ns"}]) \
        is None


# -- usage --------------------------------------------------------------------------------------
def test_usage_by_day_and_history(space: DataLinksAPI) -> None:
    space.ingest(PEOPLE, batch_size=1)  # each batch metered: rows and bytes
    today = dt.datetime.now(dt.UTC).date()
    by_day = space.get_usage_by_day()
    assert by_day is not None and by_day.meta.time_zone_for_aggregation == "UTC"
    latest = by_day.data[-1]
    assert latest.date == today and latest.tokens_used == 0 and latest.cost_usd == 0.0
    assert (latest.model_extra or {})["usage"]["ingested_rows"] >= 3
    in_tokyo = space.get_usage_by_day(timezone="Asia/Tokyo")
    assert in_tokyo is not None and in_tokyo.meta.time_zone_for_aggregation == "Asia/Tokyo"

    history = space.get_usage_history(page_size=2)
    assert history is not None and len(history.data) == 2 and history.meta.page_cursor is not None
    following = space.get_usage_history(page_size=2, page_cursor=history.meta.page_cursor)
    assert following is not None and following.data and following.data[0].timestamp <= history.data[-1].timestamp


# -- links, ontology and LLM methods: not_implemented -----------------------------------------------
def test_links_and_llm_methods_answer_not_implemented(space: DataLinksAPI) -> None:
    # ask, autorag and natural-language queries are served (test_datalinks_nl.py): without a
    # provider they answer 409 llm_not_configured.
    with pytest.raises(DataLinksRequestError) as caught:
        space.autorag("which city is the oldest person from?")
    assert caught.value.status_code == 409 and error_body(caught.value)["error_code"] == "llm_not_configured"

    with pytest.raises(DataLinksRequestError) as caught:  # save_ontology is served (test_datalinks_cleaning.py)
        space.delete_agent_run("run-1")
    assert caught.value.status_code == 501
    body = error_body(caught.value)
    assert body["error_code"] == "not_implemented" and "issue 17" in body["message"]
    assert "issue 17" in str(caught.value)  # the client's own message carries it

    # Served (test_datalinks_infer.py): without a provider, built from the sample's statistics.
    described = space.infer_dataset_description(PEOPLE)
    assert described["source"] == "statistics" and described["dataDescription"]

    assert space.get_conversation("c-1") is None  # reads answer None


def test_ingest_with_an_llm_pipeline_is_refused_not_ignored(space: DataLinksAPI) -> None:
    from datalinks.pipeline import Pipeline, ReverseGeo

    result = space.ingest(PEOPLE, inference_steps=Pipeline(ReverseGeo("city")), max_attempts=1)
    assert result.failed == PEOPLE
    info = space.get_dataset_info()
    assert info is not None and info.metadata.row_count == 0


# -- the async client -----------------------------------------------------------------------------
def test_the_async_client_speaks_the_same_wire(server: Server) -> None:
    async def main() -> None:
        config = DLConfig(host=f"{server.base_url}/compat/datalinks", apikey=server.admin_key,
                          namespace=name("ns"), objectname="people")
        async with AsyncDataLinksAPI(config) as api:
            await api.create_space(data_description="async")
            results = await asyncio.gather(api.ingest(PEOPLE[:2]), api.ingest(PEOPLE[2:]))
            assert [r.failed for r in results] == [[], []]
            rows = await api.query_data("*")
            assert rows is not None and sorted(r["name"] for r in rows) == ["Ada", "Alan", "Grace"]
            info = await api.get_dataset_info()
            assert info is not None and info.metadata.row_count == 3
            described = await api.infer_dataset_description(PEOPLE)  # from the statistics: no provider
            assert described["source"] == "statistics"

    asyncio.run(main())


# -- every route ----------------------------------------------------------------------------------
def compat_routes() -> list[tuple[str, str]]:
    from fastapi.routing import APIRoute

    from runyard.api.compat.datalinks import PREFIX, router

    return sorted((method, PREFIX + route.path) for route in router.routes if isinstance(route, APIRoute)
                  for method in route.methods or ())


def test_every_route_refuses_a_caller_without_a_key(server: Server) -> None:
    """The compat routes are kept out of tests/core's route table: this is their row there."""
    routes = compat_routes()
    assert len(routes) > 50
    failures = []
    with httpx.Client(base_url=server.base_url, timeout=30) as anonymous:
        for method, path in routes:
            url = re.sub(r"\{[^}]+\}", "x", path)
            response = anonymous.request(method, url)
            body = response.json()
            if response.status_code != 401 or body.get("error_code") != "missing_api_key":
                failures.append(f"{method} {path}: {response.status_code} {response.text[:200]}")
    assert not failures, "\n".join(failures)
