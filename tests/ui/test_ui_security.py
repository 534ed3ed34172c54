"""The web UI's security properties over plain HTTP: headers, cookie flags, CSRF, the ``next``
redirect, bearer-only API, sign-in throttling, sessions ending with their key, roles, 404s that
leak nothing, escaping, and artifacts that could run script served as downloads."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from runyard.api.app import create_fastapi
from runyard.api.openapi import iter_routes
from tests.support.api import deploy, run
from tests.support.servers import Server
from tests.ui.conftest import make_key
from tests.ui.support import browser_client, csrf_of, page_csrf, sign_in
from tests.ui.tools_code import FORM_TOOL, HOSTILE, MANY_LINES


@pytest.fixture(scope="module")
def tools(server: Server) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:6]
    names = {"form": f"uiform_{suffix}", "hostile": f"uihostile_{suffix}", "many": f"uimany_{suffix}"}
    with server.client() as api:
        deploy(api, names["form"], FORM_TOOL)
        deploy(api, names["hostile"], HOSTILE)
        deploy(api, names["many"], MANY_LINES)
    yield names


def _runs_of(api: httpx.Client, tool: str) -> int:
    return int(api.get("/runs", params={"source": tool, "include_total": "true", "limit": 1}).json()["total"])


def test_pages_carry_the_security_headers(server: Server) -> None:
    client = sign_in(server)
    for path in ("/ui", "/ui/sign-in", "/ui/tools", "/ui/runs", "/ui/missing-page-xyz"):
        response = client.get(path)
        csp = response.headers.get("content-security-policy", "")
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, (path, csp)
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"
    page = client.get("/ui").text
    assert "<script>" not in page and " on" + "click=" not in page  # no inline script of our own


def test_the_session_cookie_is_httponly_samesite_and_scoped_to_the_ui(server: Server) -> None:
    client = browser_client(server)
    form = client.get("/ui/sign-in")
    response = client.post("/ui/sign-in", data={"csrf_token": csrf_of(form.text), "method": "key",
                                                "api_key": server.admin_key, "next": "/ui"})
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("runyard_ui="))
    flags = cookie.lower()
    assert "httponly" in flags and "samesite=lax" in flags and "path=/ui" in flags
    assert "secure" not in flags  # plain http on loopback
    # Behind a TLS proxy (uvicorn trusts X-Forwarded-Proto from loopback) the cookie is Secure.
    secure = browser_client(server)
    form = secure.get("/ui/sign-in", headers={"x-forwarded-proto": "https"})
    nonce = form.cookies.get("runyard_ui_sign_in")  # a Secure cookie: httpx keeps it from plain http
    response = secure.post("/ui/sign-in", headers={"x-forwarded-proto": "https",
                                                   "cookie": f"runyard_ui_sign_in={nonce}"},
                           data={"csrf_token": csrf_of(form.text), "method": "key", "api_key": server.admin_key,
                                 "next": "/ui"})
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("runyard_ui="))
    assert "secure" in cookie.lower()


def test_only_a_hash_of_the_cookie_is_stored(server: Server) -> None:
    client = sign_in(server)
    value = client.cookies.get("runyard_ui")
    assert value and len(value) >= 40
    if server.database_url:
        pytest.skip("the stored bytes are read from the SQLite file")
    stored = b"".join(p.read_bytes() for p in Path(server.data_dir).glob("runyard.db*"))
    assert value.encode() not in stored


def test_every_sign_in_makes_a_new_session(server: Server) -> None:
    client = sign_in(server)
    first = client.cookies.get("runyard_ui")
    sign_in(server, client=client)
    assert client.cookies.get("runyard_ui") != first


def test_a_state_changing_post_without_the_csrf_token_is_refused(server: Server, api: httpx.Client) -> None:
    client = sign_in(server)
    name = f"csrf-{uuid.uuid4().hex[:6]}"
    for headers, data in (({}, {"name": name, "role": "viewer"}),
                          ({}, {"name": name, "role": "viewer", "csrf_token": "0" * 64}),
                          ({"x-csrf-token": "nope"}, {"name": name, "role": "viewer"})):
        response = client.post("/ui/settings/tokens", data=data, headers=headers)
        assert response.status_code == 403 and "ui_csrf_failed" in response.text
    names = [t["name"] for t in api.get("/tokens", params={"limit": 1000}).json()["items"]]
    assert name not in names
    # the same request with the page's token (a form field, or the header htmx sends) works
    response = client.post("/ui/settings/tokens", data={"name": name, "role": "viewer",
                                                        "csrf_token": page_csrf(client, "/ui/settings/tokens")})
    assert response.status_code == 201 and "not shown again" in response.text
    response = client.post("/ui/settings/secrets", headers={"x-csrf-token": page_csrf(client)},
                           data={"name": f"S_{uuid.uuid4().hex[:6]}", "value": "v4lue-xyz"})
    assert response.status_code == 303


def test_a_stale_csrf_token_from_an_older_session_is_refused(server: Server) -> None:
    client = sign_in(server)
    stale = page_csrf(client)
    sign_in(server, client=client)  # a new sign-in in the same browser: a new session
    response = client.post("/ui/settings/secrets", data={"name": "STALE_ONE", "value": "x" * 12,
                                                         "csrf_token": stale})
    assert response.status_code == 403 and "ui_csrf_failed" in response.text
    # a sign-in form posted without its own CSRF value signs nobody in
    fresh = browser_client(server)
    response = fresh.post("/ui/sign-in", data={"method": "key", "api_key": server.admin_key, "csrf_token": "x"})
    assert response.status_code == 403 and "runyard_ui" not in fresh.cookies


@pytest.mark.parametrize("target, expected", [
    ("/ui/runs?status=failed", "/ui/runs?status=failed"),
    ("//evil.example/ui", "/ui"),
    ("https://evil.example/ui", "/ui"),
    ("/\\evil.example", "/ui"),
    ("javascript:alert(1)", "/ui"),
    ("/ui\r\nLocation: https://evil.example", "/ui"),
    ("/api/v1/tokens", "/ui"),
])
def test_next_only_leads_to_a_page_of_the_ui(server: Server, target: str, expected: str) -> None:
    client = browser_client(server)
    form = client.get("/ui/sign-in")
    response = client.post("/ui/sign-in", data={"csrf_token": csrf_of(form.text), "method": "key",
                                                "api_key": server.admin_key, "next": target})
    assert response.status_code == 303 and response.headers["location"] == expected


def test_a_session_cookie_does_not_authenticate_the_api(server: Server) -> None:
    client = sign_in(server)
    cookie = client.cookies.get("runyard_ui")
    response = httpx.get(f"{server.api}/runs", headers={"cookie": f"runyard_ui={cookie}"})
    assert response.status_code == 401 and response.json()["error"]["code"] == "missing_api_key"


def test_failed_sign_ins_are_throttled_per_address_and_account(server: Server, api: httpx.Client) -> None:
    client = browser_client(server)
    wrong = "ry_" + uuid.uuid4().hex  # one account: the same key prefix each time
    statuses = []
    for _ in range(6):
        form = client.get("/ui/sign-in")
        response = client.post("/ui/sign-in", data={"csrf_token": csrf_of(form.text), "method": "key",
                                                    "api_key": wrong, "next": "/ui"})
        statuses.append(response.status_code)
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    assert "Retry-After" in response.headers and "runyard_ui" not in client.cookies
    # another account from the same address is not held up
    sign_in(server, make_key(api, "viewer"))


def test_a_session_ends_when_its_key_is_revoked(server: Server, api: httpx.Client) -> None:
    key = make_key(api, "member")
    client = sign_in(server, key)
    assert client.get("/ui").status_code == 200
    token_id = next(t["id"] for t in api.get("/tokens", params={"limit": 1000}).json()["items"]
                    if t["prefix"] == key[:10])
    assert api.delete(f"/tokens/{token_id}").status_code == 204
    response = client.get("/ui/runs")
    assert response.status_code == 303 and response.headers["location"] == "/ui/sign-in?next=/ui/runs"


def test_password_sign_in_and_sign_out(server: Server, api: httpx.Client) -> None:
    username = f"uiuser{uuid.uuid4().hex[:6]}"
    assert api.post("/users", json={"username": username, "role": "member", "password": "correct horse"}
                    ).status_code == 201
    def sign_in_keys() -> set[str]:
        return {t["id"] for t in api.get("/tokens", params={"limit": 1000}).json()["items"]
                if t["name"] == "web UI sign-in"}

    before = sign_in_keys()
    client = sign_in(server, username=username, password="correct horse")
    made = sign_in_keys() - before
    assert len(made) == 1
    home = client.get("/ui")
    assert home.status_code == 200 and username in home.text
    response = client.post("/ui/sign-out", data={"csrf_token": csrf_of(home.text)})
    assert response.status_code == 303
    # the session is gone, and so is the key the sign-in made
    assert client.get("/ui").status_code == 303
    assert not made & sign_in_keys()
    bad = browser_client(server)
    form = bad.get("/ui/sign-in")
    response = bad.post("/ui/sign-in", data={"csrf_token": csrf_of(form.text), "method": "password",
                                             "username": username, "password": "wrong password"})
    assert response.status_code == 401 and "wrong username or password" in response.text


def test_a_viewer_sees_no_run_form_and_cannot_force_a_run(server: Server, api: httpx.Client,
                                                          tools: dict[str, str]) -> None:
    client = sign_in(server, make_key(api, "viewer"))
    page = client.get(f"/ui/tools/{tools['form']}")
    assert page.status_code == 200 and "cannot start runs" in page.text and "/run\"" not in page.text
    before = _runs_of(api, tools["form"])
    response = client.post(f"/ui/tools/{tools['form']}/run", data={"csrf_token": csrf_of(page.text), "count": "1"})
    assert response.status_code == 403 and "insufficient_role" in response.text
    response = client.post("/ui/settings/secrets", data={"csrf_token": csrf_of(page.text), "name": "VIEWER_X",
                                                         "value": "y" * 12})
    assert response.status_code == 403
    assert _runs_of(api, tools["form"]) == before


def test_invalid_form_values_get_messages_at_their_fields_and_start_nothing(
        server: Server, api: httpx.Client, tools: dict[str, str]) -> None:
    client = sign_in(server)
    csrf = page_csrf(client, f"/ui/tools/{tools['form']}")
    before = _runs_of(api, tools["form"])
    response = client.post(f"/ui/tools/{tools['form']}/run", data={
        "csrf_token": csrf, "count": "many", "ratio": "half", "mode": '"warp"'})
    assert response.status_code == 400
    errors = dict(re.findall(r'id="in-([\w-]+)-error"[^>]*>([^<]+)<', response.text))
    assert errors["count"] == "must be a whole number" and errors["ratio"] == "must be a number"
    assert errors["mode"] == "choose one of the options"
    # a value of the right type the schema still refuses: the runs service's message, at the field
    response = client.post(f"/ui/tools/{tools['form']}/run", data={"csrf_token": csrf, "word": "x"})
    errors = dict(re.findall(r'id="in-([\w-]+)-error"[^>]*>([^<]+)<', response.text))
    assert response.status_code == 400 and "required" in errors["count"]
    assert _runs_of(api, tools["form"]) == before


def test_the_form_starts_a_run_with_typed_inputs(server: Server, api: httpx.Client, tools: dict[str, str]) -> None:
    client = sign_in(server)
    csrf = page_csrf(client, f"/ui/tools/{tools['form']}")
    response = client.post(f"/ui/tools/{tools['form']}/run", data={
        "csrf_token": csrf, "count": "2", "mode": '"slow"', "loud": "true", "tags": "a\n\nb\n", "ratio": "0.25"})
    assert response.status_code == 303
    run_id = response.headers["location"].rsplit("/", 1)[-1]
    inputs = api.get(f"/runs/{run_id}", params={"expand": "inputs"}).json()
    assert inputs["trigger"] == "ui"
    assert inputs["inputs"] == {"count": 2, "word": "hi", "mode": "slow", "loud": True, "tags": ["a", "b"],
                                "ratio": 0.25, "delay": 0.0} or inputs["inputs"]["tags"] == ["a", "b"]


def test_a_hidden_or_missing_run_is_the_same_404_page(server: Server, api: httpx.Client,
                                                       tools: dict[str, str]) -> None:
    hidden = run(api, tools["hostile"])
    own_tool = api.get(f"/tools/{tools['form']}").json()["id"]
    client = sign_in(server, make_key(api, "member", restrictions={"tools": [own_tool]}))
    pages = [client.get(f"/ui/runs/{hidden['id']}"), client.get("/ui/runs/run_01XXXXXXXXXXXXXXXXXXXXXXXX"),
             client.get(f"/ui/runs/{hidden['id']}/logs.txt"), client.get(f"/ui/tools/{tools['hostile']}"),
             client.get(f"/ui/runs/{hidden['id']}/artifacts/x.txt")]
    assert [p.status_code for p in pages] == [404] * 5
    bodies = {re.sub(r"run_\w+", "", p.text.split("<main", 1)[1]) for p in pages}
    assert len(bodies) == 1 and hidden["id"] not in pages[0].text
    # a POST to a hidden run changes nothing either
    cancel = client.post(f"/ui/runs/{hidden['id']}/rerun", data={"csrf_token": page_csrf(client)})
    assert cancel.status_code == 404


def test_html_in_descriptions_and_logs_is_shown_as_text(server: Server, api: httpx.Client,
                                                        tools: dict[str, str]) -> None:
    hostile = run(api, tools["hostile"])
    client = sign_in(server)
    for path in (f"/ui/tools/{tools['hostile']}", f"/ui/runs/{hostile['id']}", "/ui/tools"):
        page = client.get(path).text
        assert "<script>alert" not in page and "<img src=x" not in page, path
    assert "&lt;script&gt;alert(&#39;log&#39;)" in client.get(f"/ui/runs/{hostile['id']}").text


def test_artifacts_that_could_run_script_are_downloads(server: Server, api: httpx.Client,
                                                       tools: dict[str, str]) -> None:
    done = run(api, tools["form"], {"count": 1})
    client = sign_in(server)
    html = client.get(f"/ui/runs/{done['id']}/artifacts/page.html", params={"inline": "true"})
    assert html.status_code == 200 and html.headers["content-disposition"].startswith("attachment")
    assert "sandbox" in html.headers["content-security-policy"]
    preview = client.get(f"/ui/runs/{done['id']}/preview/page.html")
    assert "<script>alert(1)" not in preview.text and "only offered as downloads" in preview.text
    table = client.get(f"/ui/runs/{done['id']}/preview/table.csv")
    assert "<td>&lt;b&gt;x&lt;/b&gt;</td>" in table.text


def test_a_long_log_is_paged(server: Server, api: httpx.Client, tools: dict[str, str]) -> None:
    done = run(api, tools["many"], {"lines": 10000}, wait=60)
    assert done["status"] == "succeeded"
    client = sign_in(server)
    page = client.get(f"/ui/runs/{done['id']}").text
    assert page.count('class="line"') == 500 and "log line 09999" in page and "log line 09499" not in page
    earlier = re.search(r'hx-get="(/ui/runs/[^"]+/logs/before\?offset=\d+)"', page)
    assert earlier, "no button for earlier lines"
    older = client.get(earlier.group(1).replace("&amp;", "&")).text
    assert older.count('class="line"') == 500 and "log line 09499" in older and "log line 09000" in older


def test_every_ui_route_needs_a_session(server: Server) -> None:
    """The route table (tests/core/test_route_authorization.py) leaves /ui to this test: each
    route, asked without a session, sends the browser to sign in (or is the sign-in page or
    a static asset)."""
    app = create_fastapi(SimpleNamespace(settings=SimpleNamespace(requests_per_minute=0)))  # type: ignore[arg-type]
    open_routes = {"GET /ui/sign-in", "POST /ui/sign-in", "GET /ui/static/{name}",
                   "GET /ui/{rest}", "POST /ui/{rest}"}  # the last: the not-found page for any other path
    client = browser_client(server)
    checked = 0
    for route in iter_routes(app):
        path = getattr(route, "path_format", None) or route.path
        if not path.startswith("/ui"):
            continue
        for method in route.methods:
            if f"{method} {path}" in open_routes:
                continue
            url = re.sub(r"\{(\w+)(:path)?\}", "x", path)
            response = client.request(method, url)
            assert response.status_code == 303, (method, path, response.status_code)
            assert response.headers["location"].startswith("/ui/sign-in"), (method, path)
            checked += 1
    assert checked >= 15


def test_a_workflow_run_shows_its_steps_in_order_with_their_status(server: Server, api: httpx.Client) -> None:
    suffix = uuid.uuid4().hex[:6]
    double, add, flow = f"uidouble_{suffix}", f"uiadd_{suffix}", f"uiflow_{suffix}"
    deploy(api, double, "def main(n: int) -> int:\n    return n * 2\n")
    deploy(api, add, "def main(a: int, b: int = 0) -> int:\n    return a + b\n")
    yaml_text = (f"name: {flow}\ninputs:\n  type: object\n  properties:\n    n: {{type: integer}}\n"
                 f"steps:\n  - id: first\n    uses: {double}\n    with: {{n: \"${{{{ inputs.n }}}}\"}}\n"
                 f"  - id: second\n    uses: {add}\n    needs: first\n    with:\n"
                 f"      a: ${{{{ steps.first.output }}}}\n")
    saved = api.post("/workflows", content=yaml_text, headers={"content-type": "application/yaml"})
    assert saved.status_code in (200, 201), saved.text
    started = api.post("/runs", params={"wait": 60}, json={"workflow": flow, "inputs": {"n": 4}}).json()
    assert started["status"] == "succeeded", started
    page = sign_in(server).get(f"/ui/runs/{started['id']}").text
    graph = page.split('class="graph"', 1)[1].split("</ol>", 1)[0]
    assert graph.index("first") < graph.index("second") and "after first" in graph
    assert graph.count("status-succeeded") == 2
