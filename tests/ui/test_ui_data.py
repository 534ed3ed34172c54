"""The Data pages of the web UI against a real server: namespaces, a dataset's schema and rows
(paged), the SQL editor (results paged, explain, CSV), file upload with its progress bar and
the ingestion it starts, links and ontology. Over plain HTTP for what the server decides
(escaping, CSRF, a viewer's refusals, hidden namespaces) and in Debian's chromium for what the
browser does (query and page, upload with progress). Screenshots go to the test-artifacts
directory; each page stays under the page-weight budget."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.servers import Server
from tests.ui.conftest import artifacts_dir, make_key
from tests.ui.support import browser_client, page_csrf, pages_text, sign_in
from tests.ui.test_ui_browser import PAGE_BUDGET, _transferred

HOSTILE = "<script>alert('x')</script>"
HOSTILE_IMG = '<img src=x onerror="alert(1)">'
ROWS = 250
PASSWORD = "correct horse battery staple 9"


@pytest.fixture(scope="module")
def data(server: Server) -> Iterator[dict[str, str]]:
    """A namespace with two datasets: ``people`` (250 rows, some values HTML) and ``orders``."""
    ns = f"uidata_{uuid.uuid4().hex[:6]}"
    with server.client() as api:
        assert api.post("/namespaces", json={"name": ns}).status_code == 201
        people = [{"id": i, "name": f"person {i:03d}", "note": HOSTILE if i % 2 else HOSTILE_IMG}
                  for i in range(ROWS)]
        response = api.post(f"/namespaces/{ns}/datasets/people/rows", params={"create": "true"}, json=people)
        assert response.status_code == 201, response.text
        orders = [{"order_id": i, "person_id": i % ROWS} for i in range(40)]
        response = api.post(f"/namespaces/{ns}/datasets/orders/rows", params={"create": "true"}, json=orders)
        assert response.status_code == 201, response.text
    yield {"ns": ns}


def _dataset(ns: str, ds: str = "people") -> str:
    return f"/ui/data/namespaces/{ns}/datasets/{ds}"


# -- over HTTP -----------------------------------------------------------------------------------
def test_pages_list_namespaces_datasets_schema_and_rows(server: Server, data: dict[str, str]) -> None:
    client = sign_in(server)
    assert data["ns"] in pages_text(client, "/ui/data")
    namespace = client.get(f"/ui/data/namespaces/{data['ns']}").text
    assert _dataset(data["ns"]) in namespace and _dataset(data["ns"], "orders") in namespace
    page = client.get(_dataset(data["ns"]))
    assert page.status_code == 200
    for column in ("id", "name", "note"):
        assert f"<code>{column}</code>" in page.text
    assert page.text.count("<td>person 0") == 50  # the first page of sample rows
    after = re.search(r'href="([^"]+\?cursor=[^"#]+)#rows">Next rows', page.text)
    assert after, "no link to the next rows"
    second = client.get(after.group(1).replace("&amp;", "&")).text
    assert "<td>person 050</td>" in second and "<td>person 000</td>" not in second


def test_dataset_values_with_html_are_shown_as_text(server: Server, data: dict[str, str]) -> None:
    client = sign_in(server)
    page = client.get(_dataset(data["ns"])).text
    assert HOSTILE not in page and HOSTILE_IMG not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page and "&lt;img src=x onerror=" in page
    token = page_csrf(client, "/ui/data/query")
    result = client.post("/ui/data/query", data={"csrf_token": token, "action": "run",
                                                 "query": f'SELECT note FROM "{data["ns"]}"."people" LIMIT 4'}).text
    assert HOSTILE not in result and HOSTILE_IMG not in result and "&lt;script&gt;" in result


def test_the_sql_editor_pages_explains_and_downloads_csv(server: Server, data: dict[str, str]) -> None:
    client = sign_in(server)
    token = page_csrf(client, "/ui/data/query")
    query = 'SELECT id, name FROM people ORDER BY id'
    first = client.post("/ui/data/query", data={"csrf_token": token, "query": query, "namespace": data["ns"]})
    assert first.status_code == 200 and "person 099" in first.text and "person 100" not in first.text
    cursor = re.search(r'name="cursor" value="([^"]+)"', first.text)
    assert cursor and "Next page" in first.text
    second = client.post("/ui/data/query", data={"csrf_token": token, "query": query, "namespace": data["ns"],
                                                 "cursor": cursor.group(1), "page": "2"})
    assert "person 100" in second.text and "person 099" not in second.text and "page 2" in second.text
    explained = client.post("/ui/data/query", data={"csrf_token": token, "query": query, "namespace": data["ns"],
                                                    "action": "explain"})
    assert explained.status_code == 200 and 'id="explain"' in explained.text
    download = client.post("/ui/data/query.csv", data={"csrf_token": token, "query": query, "namespace": data["ns"]})
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert "attachment" in download.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(download.text)))
    assert rows[0] == ["id", "name"] and len(rows) == ROWS + 1
    broken = client.post("/ui/data/query", data={"csrf_token": token, "query": "SELEC nothing"})
    assert broken.status_code == 400 and 'role="alert"' in broken.text and "SELEC nothing" in broken.text


def test_a_user_who_cannot_read_the_namespace_gets_the_same_404_and_no_rows(server: Server, api: httpx.Client,
                                                                          data: dict[str, str]) -> None:
    username = f"uidataother_{uuid.uuid4().hex[:6]}"  # the namespace is the admin's, and private
    assert api.post("/users", json={"username": username, "role": "member", "password": PASSWORD}).status_code == 201
    client = sign_in(server, username=username, password=PASSWORD)
    hidden = client.get(_dataset(data["ns"]))
    assert hidden.status_code == 404
    assert client.get(f"/ui/data/namespaces/{data['ns']}").status_code == 404
    missing = client.get(_dataset(data["ns"], "no_such_dataset"))
    assert missing.status_code == 404 and missing.text == hidden.text
    assert data["ns"] not in client.get("/ui/data").text
    token = page_csrf(client, "/ui/data/query")
    refused = client.post("/ui/data/query", data={"csrf_token": token,
                                                  "query": f'SELECT * FROM "{data["ns"]}"."people"'})
    assert refused.status_code == 403 and "person 0" not in refused.text
    csv_refused = client.post("/ui/data/query.csv", data={"csrf_token": token,
                                                          "query": f'SELECT * FROM "{data["ns"]}"."people"'})
    assert csv_refused.status_code == 403 and "person" not in csv_refused.text


def test_posts_without_the_csrf_token_are_refused(server: Server, data: dict[str, str]) -> None:
    client = sign_in(server)
    query = client.post("/ui/data/query", data={"query": "SELECT 1"})
    assert query.status_code == 403 and "ui_csrf_failed" in query.text
    upload = client.post("/ui/data/uploads", json={"filename": "a.csv", "size": 10})
    assert upload.status_code == 403
    link = client.post(f"/ui/data/namespaces/{data['ns']}/links",
                       data={"from_dataset": "orders", "from_column": "person_id", "to_dataset": "people",
                             "to_column": "id"})
    assert link.status_code == 403


def test_a_viewer_sees_no_write_buttons_and_cannot_force_a_write(server: Server, api: httpx.Client,
                                                                 data: dict[str, str]) -> None:
    client = sign_in(server, make_key(api, "viewer"))  # the admin user's key: it reads the namespace
    token = page_csrf(client, "/ui/data")
    namespace = client.get(f"/ui/data/namespaces/{data['ns']}")
    assert namespace.status_code == 200 and "orders" in namespace.text
    assert "Create link" not in namespace.text and "data-upload" not in namespace.text
    assert "data-upload" not in client.get(_dataset(data["ns"])).text
    created = client.post("/ui/data/uploads", json={"filename": "a.csv", "size": 10},
                          headers={"x-csrf-token": token})
    assert created.status_code == 403 and created.json()["error"]["code"] == "insufficient_role"
    before = api.get("/links", params={"namespace": data["ns"]}).json()["items"]
    link = client.post(f"/ui/data/namespaces/{data['ns']}/links",
                       data={"csrf_token": token, "from_dataset": "orders", "from_column": "person_id",
                             "to_dataset": "people", "to_column": "id"})
    assert link.status_code == 403
    assert api.get("/links", params={"namespace": data["ns"]}).json()["items"] == before


def test_create_and_delete_a_link_and_see_the_ontology(server: Server, api: httpx.Client,
                                                       data: dict[str, str]) -> None:
    client = sign_in(server)
    path = f"/ui/data/namespaces/{data['ns']}"
    token = page_csrf(client, path)
    bad = client.post(f"{path}/links", data={"csrf_token": token, "from_dataset": "orders",
                                             "from_column": "no_such_column", "to_dataset": "people",
                                             "to_column": "id"})
    active = {"namespace": data["ns"], "status": "active"}  # (ingestion also suggests links of its own)
    assert bad.status_code in (400, 404) and not api.get("/links", params=active).json()["items"]
    made = client.post(f"{path}/links", data={"csrf_token": token, "from_dataset": "orders",
                                              "from_column": "person_id", "to_dataset": "people", "to_column": "id"})
    assert made.status_code == 303, made.text[:500]
    links = api.get("/links", params=active).json()["items"]
    assert len(links) == 1 and links[0]["from"]["column"] == "person_id"
    page = client.get(path).text
    assert "orders.person_id" in page and "Relations" in page and f"Delete link {links[0]['id']}" in page
    gone = client.post(f"{path}/links/{links[0]['id']}/delete", data={"csrf_token": token})
    assert gone.status_code == 303
    assert not api.get("/links", params=active).json()["items"]


def test_an_upload_through_the_ui_endpoints_becomes_a_dataset(server: Server, api: httpx.Client,
                                                              data: dict[str, str]) -> None:
    client = sign_in(server)
    token = page_csrf(client, f"/ui/data/namespaces/{data['ns']}")
    body = b"a,b\n1,x\n2,y\n"
    made = client.post("/ui/data/uploads", json={"filename": "small.csv", "size": len(body)},
                       headers={"x-csrf-token": token})
    assert made.status_code == 201, made.text
    upload = made.json()
    (part,) = upload["parts"]
    assert part["url"].startswith("/api/v1/uploads/")  # relative: the browser's own origin
    etag = client.put(part["url"], content=body).json()["etag"]
    wrong_key = client.post(f"/ui/data/uploads/{upload['id']}/complete", headers={"x-csrf-token": token},
                            json={"key": "upk_wrong", "parts": [{"part_number": 1, "etag": etag}],
                                  "namespace": data["ns"], "dataset": "small"})
    assert wrong_key.status_code == 403 and wrong_key.json()["error"]["code"] == "invalid_upload_key"
    done = client.post(f"/ui/data/uploads/{upload['id']}/complete", headers={"x-csrf-token": token},
                       json={"key": upload["key"], "parts": [{"part_number": 1, "etag": etag}],
                             "namespace": data["ns"], "dataset": "small"})
    assert done.status_code == 202, done.text
    assert done.json()["url"] == _dataset(data["ns"], "small")
    finished = api.get(f"/ingestions/{done.json()['ingestion']['id']}/wait", params={"timeout": 120}).json()
    assert finished["status"] == "succeeded" and finished["processed_rows"] == 2
    ingestions = client.get(_dataset(data["ns"], "small") + "/ingestions").text
    assert finished["id"] in ingestions and "status-succeeded" in ingestions


def test_a_malformed_upload_request_is_refused_with_its_field(server: Server) -> None:
    client = sign_in(server)
    token = page_csrf(client, "/ui/data")
    for body in ({"filename": "a.csv"}, {"filename": "a.csv", "size": -1}, {"filename": "", "size": 3}):
        response = client.post("/ui/data/uploads", json=body, headers={"x-csrf-token": token})
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["code"] in ("validation_error", "empty_file")
    other = client.post("/ui/data/uploads/upl_nope/complete", headers={"x-csrf-token": token},
                        json={"key": "k", "parts": [{"part_number": 1, "etag": "e"}], "namespace": "n",
                              "dataset": "d"})
    assert other.status_code == 404


# -- in the browser ------------------------------------------------------------------------------
@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    ctx = browser.new_context(base_url=server.base_url, viewport={"width": 1280, "height": 900},
                              accept_downloads=True)
    ctx.set_default_timeout(30_000)
    cookie = sign_in(server).cookies.get("runyard_ui")
    ctx.add_cookies([{"name": "runyard_ui", "value": cookie, "domain": "127.0.0.1", "path": "/ui"}])
    try:
        yield ctx.new_page()
    finally:
        ctx.close()


def _shot(page: Any, name: str) -> None:
    page.screenshot(path=str(artifacts_dir() / f"{name}.png"), full_page=True)


def test_query_a_dataset_and_page_the_results_in_the_browser(page: Any, data: dict[str, str]) -> None:
    page.goto(_dataset(data["ns"]))
    page.get_by_role("link", name="Query it").click()
    page.get_by_label("Query").fill('SELECT id, name, note FROM people ORDER BY id')
    assert page.get_by_label("Default namespace").input_value() == data["ns"]
    page.get_by_role("button", name="Run").click()
    page.wait_for_load_state()
    table = page.locator("table.rows tbody tr")
    assert table.count() == 100
    assert table.first.locator("td").nth(2).inner_text() == HOSTILE_IMG  # shown as text
    _shot(page, "data-query")
    page.get_by_role("button", name="Next page").click()
    page.wait_for_load_state()
    assert page.locator("table.rows tbody tr").first.locator("td").nth(1).inner_text() == "person 100"
    assert page.evaluate("window.__hacked === undefined")


def test_upload_a_file_see_the_progress_reach_100_and_the_dataset_appear(page: Any, data: dict[str, str],
                                                                          tmp_path: Path) -> None:
    source = tmp_path / "big.csv"
    with source.open("w") as out:  # a few MB: the upload takes more than one progress event
        out.write("n,text\n")
        for i in range(60_000):
            out.write(f"{i},row number {i} of the uploaded file\n")
    page.goto(f"/ui/data/namespaces/{data['ns']}")
    # Remember the highest value the bar showed, across the navigation that follows the upload.
    page.evaluate("""() => new MutationObserver(() => {
        const bar = document.getElementById('up-progress');
        const seen = Number(sessionStorage.getItem('maxProgress') || 0);
        sessionStorage.setItem('maxProgress', String(Math.max(seen, bar.value)));
        sessionStorage.setItem('steps', String(Number(sessionStorage.getItem('steps') || 0) + 1));
    }).observe(document.getElementById('up-percent'), {childList: true, characterData: true, subtree: true})""")
    page.get_by_label("Dataset name").fill("uploaded")
    page.get_by_label(re.compile("^File")).set_input_files(str(source))
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url(re.compile(r"/datasets/uploaded$"), timeout=120_000)
    assert page.evaluate("sessionStorage.getItem('maxProgress')") == "100"
    assert int(page.evaluate("sessionStorage.getItem('steps')")) >= 2
    page.locator("#ingestions .status-succeeded").wait_for(timeout=120_000)  # the table refreshes itself
    _shot(page, "data-dataset-ingested")
    page.reload()
    assert page.locator("table.rows tbody tr").count() == 50
    page.goto(f"/ui/data/namespaces/{data['ns']}")
    assert page.get_by_role("link", name="uploaded", exact=True).count() == 1


def test_each_data_page_weighs_under_the_budget(browser: Any, server: Server, data: dict[str, str]) -> None:
    cookie = sign_in(server).cookies.get("runyard_ui")
    pages = {"data-namespaces": "/ui/data", "data-namespace": f"/ui/data/namespaces/{data['ns']}",
             "data-dataset": _dataset(data["ns"]), "data-sql": "/ui/data/query"}
    for name, path in pages.items():
        ctx = browser.new_context(base_url=server.base_url)  # a cold cache each time
        ctx.add_cookies([{"name": "runyard_ui", "value": cookie, "domain": "127.0.0.1", "path": "/ui"}])
        page = ctx.new_page()
        weight = _transferred(page, path)
        assert 0 < weight <= PAGE_BUDGET, (name, weight)
        _shot(page, name)
        ctx.close()


def test_every_data_route_asks_for_a_session(server: Server, data: dict[str, str]) -> None:
    client = browser_client(server)
    for method, path in (("GET", "/ui/data"), ("GET", _dataset(data["ns"])), ("POST", "/ui/data/query"),
                         ("POST", "/ui/data/uploads"), ("GET", _dataset(data["ns"]) + "/ingestions")):
        response = client.request(method, path)
        assert response.status_code == 303 and response.headers["location"].startswith("/ui/sign-in"), path
