"""Evaluation in the web UI: set a run's output as expected and see the comparison beside it
(in a real browser), differences when the expected output differs, feedback (rating, comment,
labels, resolve), a batch page with its mean score and regressions, run search with the filter
grammar, a viewer who cannot write even with a valid CSRF token, and user strings escaped."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from runyard.ui.evaluation import prop_value
from tests.support.api import deploy, run
from tests.support.servers import Server
from tests.ui.conftest import artifacts_dir, make_key
from tests.ui.support import page_csrf, sign_in
from tests.ui.test_ui_browser import PAGE_BUDGET, _signed_in_page, _transferred

EVIL = "<script>alert(1)</script>"
V1 = "def main(x: int) -> dict:\n    return {'y': x, 'note': 'same'}\n"
V2 = ("def main(x: int) -> dict:\n    if x == 1:\n        raise ValueError('broken')\n"
      "    return {'y': x + 1, 'note': 'same'}\n")


@pytest.fixture(scope="module")
def tool(server: Server) -> Iterator[str]:
    name = f"evtool_{uuid.uuid4().hex[:6]}"
    with server.client() as api:
        deploy(api, name, V1)
    yield name


@pytest.fixture
def context(browser: Any, server: Server) -> Iterator[Any]:
    ctx = browser.new_context(base_url=server.base_url, viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(30_000)
    try:
        yield ctx
    finally:
        ctx.close()


def test_search_values_are_read_as_the_cli_reads_them() -> None:
    assert prop_value("eq", "5") == 5 and prop_value("eq", "five") == "five" and prop_value("eq", '"5"') == "5"
    assert prop_value("in", "a, 2,") == ["a", 2] and prop_value("contains", "5") == "5"
    assert prop_value("exists", "") is True and prop_value("exists", "false") is False


def test_set_expected_from_a_run_and_see_the_comparison(context: Any, server: Server, api: httpx.Client,
                                                        tool: str) -> None:
    done = run(api, tool, {"x": 3}, wait=60)
    assert done["status"] == "succeeded", done
    page = _signed_in_page(context, server.admin_key, f"/ui/runs/{done['id']}")
    page.locator("#main").get_by_role("link", name="Evaluation").click()
    assert "No expected output" in page.locator("#expected-heading + *, section").first.inner_text()
    page.get_by_role("button", name="Set this output as expected").click()
    page.wait_for_load_state()
    assert page.locator("#no-differences").inner_text() == "The output matches."
    assert "1.000" in page.locator("#score").inner_text()
    assert '"y": 3' in page.locator("#expected-output").inner_text()
    # the expected output changed through the API: the differences show, side by side
    changed = api.post(f"/runs/{done['id']}/expected", json={"output": {"y": 4, "note": EVIL}})
    assert changed.status_code in (200, 201), changed.text
    page.reload()
    rows = page.locator("#differences tbody tr")
    assert rows.count() == 2 and "$.y" in rows.all_inner_texts()[0] + rows.all_inner_texts()[1]
    assert EVIL in page.locator("#expected-output").inner_text()  # as text
    page.screenshot(path=str(artifacts_dir() / "evaluation-run.png"), full_page=True)


def test_give_feedback_and_resolve_it(context: Any, server: Server, api: httpx.Client, tool: str) -> None:
    done = run(api, tool, {"x": 5}, wait=60)
    page = _signed_in_page(context, server.admin_key, f"/ui/runs/{done['id']}/evaluation")
    page.get_by_label("Down").check()
    page.get_by_label("Comment").fill(f"wrong {EVIL}")
    page.get_by_label("Labels (comma-separated)").fill("math, <b>bold</b>")
    page.get_by_role("button", name="Save feedback").click()
    page.wait_for_load_state()
    state = page.locator("#feedback-state").inner_text()
    assert "down" in state and "math" in state and "<b>bold</b>" in state and "open" in state
    assert page.locator("#feedback-comment").inner_text() == f"wrong {EVIL}"
    saved = api.get(f"/runs/{done['id']}/feedback").json()
    assert saved["rating"] == "down" and saved["labels"] == ["math", "<b>bold</b>"] and not saved["resolved"]
    page.get_by_role("button", name="Resolve").click()
    page.wait_for_load_state()
    assert "resolved" in page.locator("#feedback-state").inner_text()
    assert api.get(f"/runs/{done['id']}/feedback").json()["resolved"] is True


def _batch(api: httpx.Client, tool: str) -> dict[str, Any]:
    made = api.post("/batches", json={"tool": tool, "examples": [{"example_id": "e1", "inputs": {"x": 1}},
                                                                 {"example_id": "e2", "inputs": {"x": 2}}]})
    assert made.status_code == 201, made.text
    deadline = time.monotonic() + 120
    while (batch := api.get(f"/batches/{made.json()['id']}").json())["status"] == "running":
        assert time.monotonic() < deadline, batch
        time.sleep(0.3)
    return batch


def test_a_batch_page_shows_its_mean_score_and_regressions(server: Server, api: httpx.Client) -> None:
    name = f"evbatch_{uuid.uuid4().hex[:6]}"
    deploy(api, name, V1)
    first = _batch(api, name)
    e2_run = api.post("/runs/search", json={"props": [{"field": "batch_id", "op": "eq", "value": first["id"]},
                                                      {"field": "example_id", "op": "eq", "value": "e2"}],
                                            "select": ["id"]}).json()["items"][0]
    assert api.post(f"/runs/{e2_run['id']}/expected", json={"copy_output": True}).status_code in (200, 201)
    deploy(api, name, V2)  # e1 now fails, e2 is off by one
    second = _batch(api, name)
    client = sign_in(server)
    listing = client.get("/ui/batches")
    assert listing.status_code == 200 and first["id"] in listing.text and second["id"] in listing.text
    page = client.get(f"/ui/batches/{second['id']}")
    assert page.status_code == 200
    regressions = page.text.split('id="regressions"', 1)[1].split("</table>", 1)[0]
    assert "e1" in regressions and "e2" in regressions and "status-failed" in regressions
    mean = page.text.split('id="mean-score"', 1)[1].split("</dd>", 1)[0]
    assert f"{second['mean_score']:.3f}" in mean and second["mean_score"] < 1
    assert first["id"] in page.text  # the previous batch, linked
    assert client.get("/ui/batches/bat_doesnotexist").status_code == 404


def test_search_runs_with_the_filter_grammar(server: Server, api: httpx.Client, tool: str) -> None:
    small, big = run(api, tool, {"x": 2}, wait=60), run(api, tool, {"x": 9}, wait=60)
    client = sign_in(server)
    page = client.get("/ui/search", params=[("field", "tool_name"), ("op", "eq"), ("value", tool),
                                            ("field", "inputs.x"), ("op", "gt"), ("value", "5"),
                                            ("select", "id"), ("select", "status"), ("select", "inputs")])
    assert page.status_code == 200, page.text[-2000:]
    results = page.text.split('id="search-results"', 1)[1].split("</table>", 1)[0]
    assert big["id"] in results and small["id"] not in results and "succeeded" in results
    bad = client.get("/ui/search", params=[("field", "nonsense"), ("op", "eq"), ("value", EVIL)])
    assert bad.status_code == 400 and 'id="search-error"' in bad.text and EVIL not in bad.text
    assert client.get("/ui/search").status_code == 200  # the empty form


def test_a_viewer_cannot_set_expected_or_give_feedback(server: Server, api: httpx.Client, tool: str) -> None:
    done = run(api, tool, {"x": 7}, wait=60)
    viewer = sign_in(server, make_key(api, "viewer"))
    page = viewer.get(f"/ui/runs/{done['id']}/evaluation")
    assert page.status_code == 200 and "Set this output as expected" not in page.text and "Save feedback" not in page.text
    csrf = page_csrf(viewer, f"/ui/runs/{done['id']}/evaluation")
    assert viewer.post(f"/ui/runs/{done['id']}/expected", data={"csrf_token": csrf}).status_code == 403
    assert viewer.post(f"/ui/runs/{done['id']}/feedback", data={"csrf_token": csrf, "rating": "up"}).status_code == 403
    assert api.get(f"/runs/{done['id']}/expected").status_code == 404
    assert api.get(f"/runs/{done['id']}/feedback").status_code == 404
    member = sign_in(server, make_key(api, "member"))
    assert member.post(f"/ui/runs/{done['id']}/feedback", data={"rating": "up"}).status_code == 403  # no CSRF token
    other_tool = f"evother_{uuid.uuid4().hex[:6]}"
    deploy(api, other_tool, V1)
    restricted = sign_in(server, make_key(api, "member", restrictions={"tools": [other_tool]}))
    assert restricted.get(f"/ui/runs/{done['id']}/evaluation").status_code == 404  # not its tool's run


def test_the_pages_weigh_under_the_budget(browser: Any, server: Server, api: httpx.Client, tool: str) -> None:
    done = run(api, tool, {"x": 4}, wait=60)
    cookie = sign_in(server).cookies.get("runyard_ui")
    for name, path in {"evaluation": f"/ui/runs/{done['id']}/evaluation", "batches": "/ui/batches",
                       "search": f"/ui/search?field=tool_name&op=eq&value={tool}"}.items():
        ctx = browser.new_context(base_url=server.base_url)
        ctx.add_cookies([{"name": "runyard_ui", "value": cookie, "domain": "127.0.0.1", "path": "/ui"}])
        page = ctx.new_page()
        weight = _transferred(page, path)
        assert 0 < weight <= PAGE_BUDGET, (name, weight)
        page.screenshot(path=str(artifacts_dir() / f"{name}.png"), full_page=True)
        ctx.close()
