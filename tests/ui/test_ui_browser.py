"""The web UI in a real browser (Debian's chromium through Playwright) against a real server:
sign in, run a tool from its generated form and watch its log arrive, open an artifact, cancel
a run, create and revoke a token, a viewer's pages, the browser's own field checks, a session
that ends and comes back to the same page, a long log, page weight. Screenshots of each main
page go to the test-artifacts directory (conftest.artifacts_dir)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.api import deploy, run, wait_status
from tests.support.servers import Server
from tests.ui.conftest import artifacts_dir, make_key
from tests.ui.support import sign_in
from tests.ui.tools_code import FORM_TOOL, MANY_LINES, SLEEPER

PAGE_BUDGET = 200 * 1024  # bytes a page may transfer on first load, everything included


@pytest.fixture(scope="module")
def tools(server: Server) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:6]
    names = {"form": f"brform_{suffix}", "sleeper": f"brsleep_{suffix}", "many": f"brmany_{suffix}"}
    with server.client() as api:
        deploy(api, names["form"], FORM_TOOL)
        deploy(api, names["sleeper"], SLEEPER)
        deploy(api, names["many"], MANY_LINES)
    yield names


@pytest.fixture
def context(browser: Any, server: Server) -> Iterator[Any]:
    ctx = browser.new_context(base_url=server.base_url, viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(20_000)
    try:
        yield ctx
    finally:
        ctx.close()


def _sign_in_in_browser(page: Any, key: str) -> None:
    """Fill the sign-in form the page is on (wherever it was sent from) with ``key``."""
    assert "/ui/sign-in" in page.url
    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def _signed_in_page(context: Any, key: str, path: str = "/ui") -> Any:
    page = context.new_page()
    page.goto(path)
    _sign_in_in_browser(page, key)
    return page


def _shot(page: Any, name: str) -> None:
    page.screenshot(path=str(artifacts_dir() / f"{name}.png"), full_page=True)


def test_run_a_tool_from_its_form_and_watch_the_log_arrive(context: Any, server: Server, api: httpx.Client,
                                                           tools: dict[str, str]) -> None:
    page = context.new_page()
    page.goto(f"/ui/tools/{tools['form']}")  # no session yet: sign in, then back to the tool
    _sign_in_in_browser(page, server.admin_key)
    assert page.url.endswith(f"/ui/tools/{tools['form']}")
    _shot(page, "tool")
    page.get_by_label("count").fill("6")
    page.get_by_label("word").fill("hello")
    page.get_by_label("mode").select_option(label="slow")
    page.get_by_label("tags").fill("red\nblue")
    page.get_by_label("delay").fill("0.5")
    page.get_by_role("button", name=re.compile("^Run ")).click()
    page.wait_for_url(re.compile(r"/ui/runs/run_\w+$"))
    run_id = page.url.rsplit("/", 1)[-1]
    log = page.locator("#log")
    # Lines arrive while the run goes: the first is there before the run has printed the last.
    log.get_by_text("line 1 hello").wait_for()
    assert api.get(f"/runs/{run_id}").json()["status"] in ("queued", "running")
    assert "line 5 hello" not in log.inner_text()
    _shot(page, "run-live")
    # At its end the page reloads with the output in.
    page.locator("#run-status .status-succeeded").wait_for(timeout=30_000)
    page.locator("#run-output").get_by_text('"slow"').wait_for()
    assert "line 5 hello" in page.locator("#log").inner_text()
    inputs = api.get(f"/runs/{run_id}", params={"expand": "inputs"}).json()["inputs"]
    assert inputs["tags"] == ["red", "blue"] and inputs["count"] == 6 and inputs["mode"] == "slow"
    _shot(page, "run")
    # An artifact: a CSV previewed as a table, with what it holds shown as text.
    page.get_by_role("link", name="table.csv").click()
    page.locator("table td", has_text="<b>x</b>").wait_for()
    _shot(page, "artifact")
    # the log's search hides lines that do not match
    page.go_back()
    page.get_by_label("Search").fill("line 3")
    assert page.locator("#log .line:not(.hidden)").count() == 1


def test_the_browser_checks_fields_and_nothing_runs(context: Any, server: Server, api: httpx.Client,
                                                    tools: dict[str, str]) -> None:
    page = _signed_in_page(context, server.admin_key, f"/ui/tools/{tools['form']}")
    before = api.get("/runs", params={"source": tools["form"], "include_total": "true"}).json()["total"]
    page.get_by_role("button", name=re.compile("^Run ")).click()  # count is required and empty
    message = page.locator("#in-count-error")
    message.wait_for()
    assert message.inner_text().strip() != "" and page.url.endswith(f"/ui/tools/{tools['form']}")
    assert page.get_by_label("count").get_attribute("aria-invalid") == "true"
    _shot(page, "tool-invalid")
    assert api.get("/runs", params={"source": tools["form"], "include_total": "true"}).json()["total"] == before


def test_cancel_a_run(context: Any, server: Server, api: httpx.Client, tools: dict[str, str]) -> None:
    started = run(api, tools["sleeper"], {"seconds": 120}, wait=0)
    wait_status(api, started["id"], {"running"})
    page = _signed_in_page(context, server.admin_key, f"/ui/runs/{started['id']}")
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel").click()
    page.locator("#run-status .status-cancelled").wait_for(timeout=30_000)
    assert api.get(f"/runs/{started['id']}").json()["status"] == "cancelled"


def test_create_a_token_see_its_key_once_and_revoke_it(context: Any, server: Server) -> None:
    page = _signed_in_page(context, server.admin_key, "/ui/settings/tokens")
    name = f"browser-{uuid.uuid4().hex[:6]}"
    page.get_by_label("Name").fill(name)
    page.get_by_label("Role").select_option("viewer")
    page.get_by_role("button", name="Create token").click()
    key = page.locator("#created-key").input_value()
    assert key and httpx.get(f"{server.api}/runs", headers={"authorization": f"Bearer {key}"}).status_code == 200
    _shot(page, "tokens")
    page.goto("/ui/settings/tokens")
    assert key not in page.content()  # shown once only
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Revoke {name}").click()
    page.wait_for_load_state()
    assert page.get_by_role("button", name=f"Revoke {name}").count() == 0
    assert httpx.get(f"{server.api}/runs", headers={"authorization": f"Bearer {key}"}).status_code == 401


def test_a_viewer_sees_no_buttons_that_write(context: Any, server: Server, api: httpx.Client,
                                             tools: dict[str, str]) -> None:
    started = run(api, tools["sleeper"], {"seconds": 30}, wait=0)
    page = _signed_in_page(context, make_key(api, "viewer"), f"/ui/tools/{tools['form']}")
    assert page.get_by_role("button", name=re.compile("^Run ")).count() == 0
    page.goto(f"/ui/runs/{started['id']}")
    assert page.get_by_role("button", name="Cancel").count() == 0
    page.goto("/ui/settings/secrets")
    assert page.get_by_role("button", name="Set secret").count() == 0
    api.post(f"/runs/{started['id']}/cancel")


def test_an_ended_session_signs_in_again_and_returns_to_the_page(context: Any, server: Server,
                                                                 api: httpx.Client) -> None:
    key = make_key(api, "member")
    page = _signed_in_page(context, key, "/ui/runs?status=failed")
    token_id = next(t["id"] for t in api.get("/tokens", params={"limit": 1000}).json()["items"]
                    if t["prefix"] == key[:10])
    api.delete(f"/tokens/{token_id}")  # the session's key goes: so does the session
    page.reload()
    _sign_in_in_browser(page, server.admin_key)
    assert page.url.endswith("/ui/runs?status=failed")
    assert page.get_by_label("Status").input_value() == "failed"


def test_a_run_with_ten_thousand_log_lines_stays_responsive(context: Any, server: Server, api: httpx.Client,
                                                            tools: dict[str, str]) -> None:
    done = run(api, tools["many"], {"lines": 10000}, wait=60)
    page = _signed_in_page(context, server.admin_key)
    started = time.monotonic()
    page.goto(f"/ui/runs/{done['id']}")
    assert time.monotonic() - started < 5
    assert page.locator("#log .line").count() == 500
    page.get_by_role("button", name="Load earlier lines").click()
    page.locator("#log .line", has_text="log line 09000").wait_for()
    assert page.locator("#log .line").count() == 1000
    started = time.monotonic()
    page.get_by_label("Search").fill("09123")
    assert page.locator("#log .line:not(.hidden)").count() == 1 and time.monotonic() - started < 2


def _transferred(page: Any, path: str) -> int:
    """Bytes the page's first load transferred (bodies and headers of every request)."""
    sizes: list[int] = []
    page.on("requestfinished", lambda request: sizes.append(
        (lambda s: s["responseBodySize"] + s["responseHeadersSize"])(request.sizes())))
    page.goto(path, wait_until="networkidle")
    return sum(sizes)


def test_each_main_page_weighs_under_the_budget(browser: Any, server: Server, api: httpx.Client,
                                                tools: dict[str, str]) -> None:
    done = run(api, tools["form"], {"count": 3}, wait=60)
    cookie = sign_in(server).cookies.get("runyard_ui")
    pages = {"home": "/ui", "tools": "/ui/tools", "tool-page": f"/ui/tools/{tools['form']}", "runs": "/ui/runs",
             "run-page": f"/ui/runs/{done['id']}", "tokens-page": "/ui/settings/tokens",
             "secrets": "/ui/settings/secrets", "sign-in": "/ui/sign-in"}
    for name, path in pages.items():
        ctx = browser.new_context(base_url=server.base_url)  # a cold cache each time
        ctx.add_cookies([{"name": "runyard_ui", "value": cookie, "domain": "127.0.0.1", "path": "/ui"}])
        page = ctx.new_page()
        weight = _transferred(page, path)
        assert 0 < weight <= PAGE_BUDGET, (name, weight)
        _shot(page, name)
        if name == "home":
            page.set_viewport_size({"width": 390, "height": 844})  # a phone
            _shot(page, "home-phone")
            assert page.evaluate("document.documentElement.scrollWidth") <= 400
        ctx.close()
