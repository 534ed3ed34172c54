"""The rest of Settings in the web UI: users (create, change role, remove, in a real browser),
connections (verify against a real loopback service, metadata), model providers (admins only,
keys masked), workspace files (upload in a browser, download as an attachment, delete), usage
by day; keys without the role see no buttons and are refused even with a valid CSRF token."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.connections.conftest import Documents
from tests.support.api import deploy, run
from tests.support.servers import PgDatabase, Server
from tests.ui.conftest import artifacts_dir, make_key
from tests.ui.support import page_csrf, sign_in
from tests.ui.test_ui_browser import PAGE_BUDGET, _signed_in_page, _transferred

EVIL = "<script>alert(1)</script>"
OPENAPI = {"openapi": "3.0.0", "info": {"title": f"Shop {EVIL}", "version": "1"},
           "paths": {"/items": {"get": {"operationId": "listItems", "summary": "the items"}}}}


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own that may reach loopback services (connections to verify)."""
    pg = PgDatabase.create() if backend == "postgres" else None
    srv = Server(data_dir=tmp_path_factory.mktemp(f"ui-settings-{backend}"), database_url=pg.url if pg else None,
                 extra_env={"RUNYARD_ALLOWED_HOSTS": "127.0.0.1"})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        if pg:
            pg.drop()


@pytest.fixture(scope="module")
def service() -> Iterator[Documents]:
    with Documents() as docs:
        docs.routes["/"] = (200, {"content-type": "text/plain"}, b"ok")
        docs.routes["/openapi.json"] = (200, {"content-type": "application/json"}, json.dumps(OPENAPI).encode())
        yield docs


@pytest.fixture
def context(browser: Any, server: Server) -> Iterator[Any]:
    ctx = browser.new_context(base_url=server.base_url, viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(30_000)
    try:
        yield ctx
    finally:
        ctx.close()


def test_an_admin_creates_a_user_changes_its_role_and_removes_it(context: Any, server: Server,
                                                                  api: httpx.Client) -> None:
    username = f"ui-{uuid.uuid4().hex[:6]}"
    page = _signed_in_page(context, server.admin_key, "/ui/settings/users")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Role", exact=True).select_option("viewer")
    page.get_by_label("Password (optional)").fill("a long password 123")
    page.get_by_role("button", name="Create user").click()
    page.wait_for_load_state()
    assert api.get(f"/users/{username}").json()["role"] == "viewer"
    page.get_by_label(f"Role of {username}", exact=True).select_option("member")
    page.get_by_role("button", name=f"Set role of {username}").click()
    page.wait_for_load_state()
    assert api.get(f"/users/{username}").json()["role"] == "member"
    page.screenshot(path=str(artifacts_dir() / "settings-users.png"), full_page=True)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Remove {username}").click()
    page.wait_for_load_state()
    page.get_by_role("button", name=f"Remove {username}").wait_for(state="detached")
    assert api.get(f"/users/{username}").status_code == 404


def test_a_bad_username_is_refused_and_shown_escaped(server: Server) -> None:
    client = sign_in(server)
    response = client.post("/ui/settings/users", data={"csrf_token": page_csrf(client, "/ui/settings/users"),
                                                        "username": EVIL, "role": "member"})
    assert response.status_code == 400 and "username must be" in response.text and EVIL not in response.text


def test_only_admins_manage_users_even_with_a_valid_csrf_token(server: Server, api: httpx.Client) -> None:
    member = sign_in(server, make_key(api, "member"))
    page = member.get("/ui/settings/users")
    assert page.status_code == 200 and "Create user" not in page.text and "Only an admin" in page.text
    csrf = page_csrf(member, "/ui/settings/users")
    username = f"ui-{uuid.uuid4().hex[:6]}"
    response = member.post("/ui/settings/users", data={"csrf_token": csrf, "username": username, "role": "admin"})
    assert response.status_code == 403
    assert api.get(f"/users/{username}").status_code == 404
    assert member.post("/ui/settings/users/admin/role", data={"csrf_token": csrf, "role": "viewer"}).status_code == 403
    assert member.post("/ui/settings/users/admin/remove", data={"csrf_token": csrf}).status_code == 403


def test_verify_a_connection_and_see_its_metadata(context: Any, server: Server, api: httpx.Client,
                                                  service: Documents) -> None:
    good, bad = f"svc-{uuid.uuid4().hex[:6]}", f"down-{uuid.uuid4().hex[:6]}"
    for name, url in ((good, service.base_url), (bad, "http://127.0.0.1:9")):
        made = api.post("/connections", json={"name": name, "type": "http", "config": {"base_url": url}})
        assert made.status_code == 201, made.text
    page = _signed_in_page(context, server.admin_key, "/ui/settings/connections")
    page.get_by_role("button", name=f"Verify {good}").click()
    page.wait_for_load_state()
    assert page.locator("tr", has_text=good).locator(".conn-status").inner_text().startswith("ok")
    page.get_by_role("button", name=f"Verify {bad}").click()
    page.wait_for_load_state()
    assert page.locator("tr", has_text=bad).locator(".conn-status").inner_text().startswith("failed")
    assert api.get(f"/connections/{good}").json()["status"]["state"] == "ok"
    page.screenshot(path=str(artifacts_dir() / "settings-connections.png"), full_page=True)
    page.locator("tr", has_text=good).get_by_role("link", name="Metadata").click()
    page.wait_for_load_state()
    assert "listItems" in page.locator("#metadata").inner_text() and EVIL in page.locator("#metadata").inner_text()
    viewer = sign_in(server, make_key(api, "viewer"))
    listed = viewer.get("/ui/settings/connections")
    assert listed.status_code == 200 and good in listed.text and f"Verify {good}" not in listed.text
    csrf = page_csrf(viewer, "/ui/settings/connections")
    assert viewer.post(f"/ui/settings/connections/{good}/verify", data={"csrf_token": csrf}).status_code == 403
    assert viewer.get(f"/ui/settings/connections/{good}/metadata").status_code == 403


def test_model_providers_are_for_admins_and_keys_stay_masked(server: Server, api: httpx.Client) -> None:
    key = "sk-ui-test-" + uuid.uuid4().hex
    made = api.post("/llm/providers", json={"name": f"p-{uuid.uuid4().hex[:6]}", "base_url": "http://127.0.0.1:9/v1",
                                           "api_key": key, "default_model": f"model-{EVIL}"})
    assert made.status_code == 201, made.text
    page = sign_in(server).get("/ui/settings/providers")
    assert page.status_code == 200 and made.json()["name"] in page.text
    assert key not in page.text and EVIL not in page.text and "model-&lt;script&gt;" in page.text
    member = sign_in(server, make_key(api, "member")).get("/ui/settings/providers")
    assert member.status_code == 200 and made.json()["name"] not in member.text and "Only an admin" in member.text


def test_upload_download_and_delete_a_workspace_file(context: Any, server: Server, api: httpx.Client,
                                                     tmp_path: Any) -> None:
    name = f"ui-{uuid.uuid4().hex[:6]}.html"
    local = tmp_path / "page.html"
    local.write_text(EVIL)
    page = _signed_in_page(context, server.admin_key, "/ui/settings/files")
    page.get_by_label("File", exact=True).set_input_files(str(local))
    page.get_by_label("Name (default: the file's)").fill(name)
    page.get_by_role("button", name="Upload").click()
    page.wait_for_load_state()
    assert page.locator(".error").count() == 0, page.locator(".error").all_inner_texts()
    assert page.get_by_role("link", name=name).count() == 1
    assert api.get(f"/workspace/files/{name}").content == EVIL.encode()
    page.screenshot(path=str(artifacts_dir() / "settings-files.png"), full_page=True)
    client = sign_in(server)
    download = client.get(f"/ui/settings/files/download/{name}")
    assert download.status_code == 200 and download.content == EVIL.encode()
    assert download.headers["content-disposition"].startswith("attachment")
    assert "sandbox" in download.headers["content-security-policy"]
    again = client.post("/ui/settings/files", data={"csrf_token": page_csrf(client, "/ui/settings/files"),
                                                     "name": name}, files={"file": ("page.html", b"x")})
    assert again.status_code == 409 and "exists" in again.text  # a name taken, without "replace": refused
    assert api.get(f"/workspace/files/{name}").content == EVIL.encode()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Delete {name}").click()
    page.wait_for_load_state()
    page.get_by_role("link", name=name).wait_for(state="detached")
    assert api.get(f"/workspace/files/{name}").status_code == 404


def test_a_viewer_cannot_upload_or_delete_files(server: Server, api: httpx.Client) -> None:
    name = f"keep-{uuid.uuid4().hex[:6]}.txt"
    assert api.post("/workspace/files", files={"file": (name, b"kept")}).status_code == 201
    viewer = sign_in(server, make_key(api, "viewer"))
    page = viewer.get("/ui/settings/files")
    assert page.status_code == 200 and name in page.text and "Upload" not in page.text
    csrf = page_csrf(viewer, "/ui/settings/files")
    assert viewer.post(f"/ui/settings/files/delete/{name}", data={"csrf_token": csrf}).status_code == 403
    upload = viewer.post("/ui/settings/files", data={"csrf_token": csrf}, files={"file": ("new.txt", b"no")})
    assert upload.status_code == 403
    assert api.get(f"/workspace/files/{name}").content == b"kept"
    assert api.get("/workspace/files/new.txt").status_code == 404
    assert viewer.get("/ui/settings/files/download/..%2F..%2Fetc%2Fpasswd").status_code in (400, 404)


def test_usage_by_day(server: Server, api: httpx.Client) -> None:
    tool = f"usage_{uuid.uuid4().hex[:6]}"
    deploy(api, tool, "def main() -> int:\n    return 1\n")
    run(api, tool, wait=60)
    days = api.get("/usage/daily").json()
    page = sign_in(server).get("/ui/settings/usage")
    assert page.status_code == 200
    table = page.text.split('id="usage"', 1)[1].split("</table>", 1)[0]
    today = max(row["day"] for row in (days["items"] if isinstance(days, dict) else days))
    assert today in table and "runs" in table


def test_the_pages_weigh_under_the_budget(browser: Any, server: Server) -> None:
    cookie = sign_in(server).cookies.get("runyard_ui")
    for name in ("users", "connections", "providers", "files", "usage"):
        ctx = browser.new_context(base_url=server.base_url)
        ctx.add_cookies([{"name": "runyard_ui", "value": cookie, "domain": "127.0.0.1", "path": "/ui"}])
        page = ctx.new_page()
        weight = _transferred(page, f"/ui/settings/{name}")
        assert 0 < weight <= PAGE_BUDGET, (name, weight)
        page.screenshot(path=str(artifacts_dir() / f"settings-{name}-weight.png"), full_page=True)
        ctx.close()
