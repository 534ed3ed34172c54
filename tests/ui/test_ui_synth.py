"""The Synthetic data pages of the web UI against a real server: the templates list, a
template's YAML editor whose preview follows the typing (in Debian's chromium), saving a new
version, generating a download in each format the engine writes, and a viewer who neither sees
nor can force a write. Screenshots go to the test-artifacts directory."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from runyard import synth
from tests.support.servers import Server
from tests.ui.conftest import artifacts_dir, make_key
from tests.ui.support import page_csrf, sign_in
from tests.ui.test_ui_browser import PAGE_BUDGET, _transferred


def _document(name: str) -> str:
    return (f"name: {name}\nlocale: en_US\nfields:\n  - name: id\n    generator: sequence\n"
            "  - name: label\n    generator: constant\n    value: \"<script>alert(1)</script>\"\n")


@pytest.fixture(scope="module")
def template(server: Server) -> Iterator[dict[str, Any]]:
    name = f"uisynth_{uuid.uuid4().hex[:6]}"
    with server.client() as api:
        created = api.post("/templates", content=_document(name), headers={"content-type": "application/yaml"})
        if created.status_code != 201:  # the API takes JSON: the same document
            created = api.post("/templates", json=synth.load_document(_document(name)))
        assert created.status_code == 201, created.text
        yield created.json()


def test_the_list_and_a_template_page_show_the_yaml_and_a_preview(server: Server, template: dict[str, Any]) -> None:
    client = sign_in(server)
    listing = client.get("/ui/synth").text
    assert f'href="/ui/synth/{template["id"]}"' in listing
    page = client.get(f"/ui/synth/{template['id']}")
    assert page.status_code == 200
    assert f"name: {template['name']}" in page.text and "generator: sequence" in page.text
    assert "<script>alert(1)</script>" not in page.text  # in the YAML and in the preview: text
    assert page.text.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 2
    assert client.get("/ui/synth/tpl_does_not_exist").status_code == 404


def test_the_preview_endpoint_answers_rows_or_the_error(server: Server) -> None:
    client = sign_in(server)
    token = page_csrf(client, "/ui/synth")
    rows = client.post("/ui/synth/preview", data={"csrf_token": token, "document": _document("p")})
    assert rows.status_code == 200 and rows.text.count("<tr>") == 10 + 1  # header and 10 rows
    bad = client.post("/ui/synth/preview", data={"csrf_token": token,
                                                 "document": "name: p\nfields:\n  - name: x\n    generator: nope\n"})
    assert bad.status_code == 200 and 'role="alert"' in bad.text and "unknown generator" in bad.text
    not_yaml = client.post("/ui/synth/preview", data={"csrf_token": token, "document": "fields: [unclosed"})
    assert 'role="alert"' in not_yaml.text
    huge = client.post("/ui/synth/preview", data={"csrf_token": token, "document": "#" * 70_000})
    assert 'role="alert"' in huge.text and "at most" in huge.text
    assert client.post("/ui/synth/preview", data={"document": _document("p")}).status_code == 403  # no CSRF


def test_save_makes_a_new_version_and_a_bad_document_changes_nothing(server: Server, api: httpx.Client) -> None:
    name = f"uisave_{uuid.uuid4().hex[:6]}"
    client = sign_in(server)
    token = page_csrf(client, "/ui/synth/new")
    created = client.post("/ui/synth/new", data={"csrf_token": token, "document": _document(name)})
    assert created.status_code == 303
    ref = created.headers["location"].rsplit("/", 1)[1]
    changed = _document(name) + "  - name: extra\n    generator: uuid\n"
    saved = client.post(f"/ui/synth/{ref}/save", data={"csrf_token": token, "document": changed})
    assert saved.status_code == 303
    view = api.get(f"/templates/{ref}").json()
    assert view["version"] == 2 and [f["name"] for f in view["fields"]] == ["id", "label", "extra"]
    bad = client.post(f"/ui/synth/{ref}/save", data={"csrf_token": token,
                                                     "document": f"name: {name}\nfields: []\n"})
    assert bad.status_code == 400 and 'role="alert"' in bad.text
    assert "fields: []" in bad.text  # the editor keeps what the user wrote
    assert api.get(f"/templates/{ref}").json()["version"] == 2


@pytest.mark.parametrize("fmt", synth.FORMATS)
def test_generate_downloads_each_format(server: Server, template: dict[str, Any], fmt: str) -> None:
    client = sign_in(server)
    token = page_csrf(client, f"/ui/synth/{template['id']}")
    response = client.post(f"/ui/synth/{template['id']}/generate",
                           data={"csrf_token": token, "format": fmt, "count": "25", "seed": "7"})
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-disposition"].startswith("attachment")
    assert response.headers["x-runyard-seed"] == "7"
    body = response.content
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(body.decode())))
        assert rows[0] == ["id", "label"] and len(rows) == 26 and rows[1][1] == "<script>alert(1)</script>"
    elif fmt == "json":
        assert len(json.loads(body)) == 25
    elif fmt == "ndjson":
        assert len(body.decode().strip().splitlines()) == 25
    elif fmt == "parquet":
        assert pq.read_table(io.BytesIO(body)).num_rows == 25
    elif fmt == "sql":
        assert body.decode().upper().count("INSERT") >= 1
    else:  # xlsx: a zip
        assert body[:2] == b"PK"


def test_a_viewer_sees_no_write_buttons_and_cannot_force_a_write(server: Server, api: httpx.Client,
                                                                 template: dict[str, Any]) -> None:
    client = sign_in(server, make_key(api, "viewer"))
    listing = client.get("/ui/synth").text
    assert "New template" not in listing
    page = client.get(f"/ui/synth/{template['id']}").text
    assert "Save new version" not in page and "Generate and download" not in page
    token = page_csrf(client, "/ui/synth")
    before = api.get("/templates", params={"limit": 1000}).json()["items"]
    for path, form in ((f"/ui/synth/{template['id']}/save", {"document": _document(template["name"]) + "#"}),
                       (f"/ui/synth/{template['id']}/generate", {"format": "csv", "count": "5"}),
                       ("/ui/synth/new", {"document": _document(f"viewer_{uuid.uuid4().hex[:6]}")})):
        refused = client.post(path, data={"csrf_token": token, **form})
        assert refused.status_code == 403, path
        assert "insufficient_role" in refused.text
    assert api.get("/templates", params={"limit": 1000}).json()["items"] == before
    # previewing reads only: a viewer may, as through the API
    assert client.post("/ui/synth/preview", data={"csrf_token": token,
                                                  "document": _document("v")}).status_code == 200


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


def test_the_preview_follows_the_typing_then_create_and_download(page: Any, server: Server) -> None:
    name = f"uitype_{uuid.uuid4().hex[:6]}"
    page.goto("/ui/synth/new")
    editor = page.get_by_label("Template (YAML or JSON)")
    assert page.locator("#preview th", has_text="email").count() == 1  # the example's preview
    editor.fill(f"name: {name}\nfields:\n  - name: id\n    generator: sequence\n")
    editor.press("End")
    editor.type("  - name: city\n    generator: address.city\n", delay=20)
    page.locator("#preview th", has_text="city").wait_for()
    assert page.locator("#preview tbody tr").count() == 10
    editor.type("  - name: broken\n    generator: no_such_generator\n", delay=20)
    page.locator("#preview .error", has_text="unknown generator").wait_for()
    _shot(page, "synth-editor-error")
    for _ in range(len("  - name: broken\n    generator: no_such_generator\n")):
        editor.press("Backspace")
    page.locator("#preview th", has_text="city").wait_for()
    page.get_by_role("button", name="Create template").click()
    page.wait_for_url(re.compile(r"/ui/synth/tpl_"))
    _shot(page, "synth-template")
    page.get_by_label("Rows").fill("12")
    page.get_by_label("Format").select_option("csv")
    with page.expect_download() as info:
        page.get_by_role("button", name="Generate and download").click()
    download = info.value
    assert download.suggested_filename == f"{name}.csv"
    with open(download.path(), newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["id", "city"] and len(rows) == 13 and rows[12][0] == "12"


def test_each_synth_page_weighs_under_the_budget(browser: Any, server: Server, template: dict[str, Any]) -> None:
    cookie = sign_in(server).cookies.get("runyard_ui")
    for name, path in {"synth-templates": "/ui/synth", "synth-template-page": f"/ui/synth/{template['id']}",
                       "synth-new": "/ui/synth/new"}.items():
        ctx = browser.new_context(base_url=server.base_url)  # a cold cache each time
        ctx.add_cookies([{"name": "runyard_ui", "value": cookie, "domain": "127.0.0.1", "path": "/ui"}])
        page = ctx.new_page()
        weight = _transferred(page, path)
        assert 0 < weight <= PAGE_BUDGET, (name, weight)
        _shot(page, name)
        ctx.close()


def test_odd_generate_fields_are_refused_or_taken_as_the_api_takes_them(server: Server,
                                                                         template: dict[str, Any]) -> None:
    client = sign_in(server)
    token = page_csrf(client, f"/ui/synth/{template['id']}")
    path = f"/ui/synth/{template['id']}/generate"
    text_seed = client.post(path, data={"csrf_token": token, "format": "csv", "count": "3", "seed": "--5"})
    assert text_seed.status_code == 200  # a string seed, as the API takes one
    for form, code in (({"format": "exe", "count": "3"}, "invalid_format"),
                       ({"format": "csv", "count": "-1"}, "validation_error")):
        refused = client.post(path, data={"csrf_token": token, **form})
        assert refused.status_code == 400 and code in refused.text, form
