"""Workflows and triggers in the web UI: a workflow's page (step graph in layers, YAML) and a
run from its generated form in a real browser, the run's step statuses, schedules with their
next fire times, webhooks, an email trigger's mail log, a viewer who cannot start a run even
with a valid CSRF token, and user strings escaped."""

from __future__ import annotations

import contextlib
import smtplib
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from runyard.ui.workflows import layers
from tests.support.api import deploy
from tests.support.servers import PgDatabase, Server, free_port
from tests.ui.conftest import artifacts_dir, make_key
from tests.ui.support import page_csrf, sign_in
from tests.ui.test_ui_browser import PAGE_BUDGET, _signed_in_page, _transferred

EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own, listening for mail (for the email trigger's log)."""
    pg = PgDatabase.create() if backend == "postgres" else None
    srv = Server(data_dir=tmp_path_factory.mktemp(f"ui-workflows-{backend}"), database_url=pg.url if pg else None,
                 extra_env={"RUNYARD_SMTP_PORT": str(free_port())})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        if pg:
            pg.drop()


@pytest.fixture(scope="module")
def flow(server: Server) -> Iterator[dict[str, str]]:
    """A published workflow of three steps: ``first`` and ``side`` fan out, ``second`` joins."""
    suffix = uuid.uuid4().hex[:6]
    double, add, flow = f"wfdouble_{suffix}", f"wfadd_{suffix}", f"wfflow_{suffix}"
    with server.client() as api:
        deploy(api, double, "def main(n: int) -> int:\n    return n * 2\n")
        deploy(api, add, "def main(a: int, b: int = 0) -> int:\n    return a + b\n")
        yaml_text = (f"name: {flow}\ndescription: 'adds {EVIL}'\ninputs:\n  type: object\n  required: [n]\n"
                     f"  properties:\n    n: {{type: integer, description: 'how many'}}\n"
                     f"steps:\n  - id: first\n    uses: {double}\n    with: {{n: \"${{{{ inputs.n }}}}\"}}\n"
                     f"  - id: side\n    uses: {double}\n    with: {{n: 1}}\n"
                     f"  - id: second\n    uses: {add}\n    needs: [first, side]\n    with:\n"
                     f"      a: ${{{{ steps.first.output }}}}\n      b: ${{{{ steps.side.output }}}}\n")
        saved = api.post("/workflows", content=yaml_text, headers={"content-type": "application/yaml"})
        assert saved.status_code in (200, 201), saved.text
    yield {"name": flow, "double": double}


def test_steps_are_laid_out_in_columns_after_what_they_need() -> None:
    assert layers({"a": [], "b": ["a"], "c": [], "d": ["b", "c"]}) == [["a", "c"], ["b"], ["d"]]
    assert layers({"a": ["b"], "b": ["a"]}) in ([["b"], ["a"]], [["a"], ["b"]])  # a cycle does not loop
    assert layers({"a": ["gone"]}) == [["a"]]


def test_run_a_workflow_from_its_form_and_see_its_steps(browser: Any, server: Server, flow: dict[str, str]) -> None:
    context = browser.new_context(base_url=server.base_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    try:
        page = _signed_in_page(context, server.admin_key, f"/ui/workflows/{flow['name']}")
        columns = page.locator("ol.layers > li")
        assert columns.count() == 2
        assert columns.nth(0).locator(".step").all_inner_texts()[0].startswith("first")
        assert "after first, side" in columns.nth(1).inner_text()
        assert f"name: {flow['name']}" in page.locator("pre.yaml").inner_text()
        assert EVIL in page.locator(".description").inner_text()  # shown as text, not run
        page.screenshot(path=str(artifacts_dir() / "workflow-page.png"), full_page=True)
        page.get_by_role("spinbutton", name="n (required)").fill("5")
        page.get_by_role("button", name=f"Run {flow['name']}").click()
        page.wait_for_url("**/ui/runs/run_*")
        page.locator(".graph li", has_text="second").locator(".status-succeeded").wait_for(timeout=90_000)
        page.reload()
        assert page.locator(".graph .status-succeeded").count() == 3
        page.screenshot(path=str(artifacts_dir() / "workflow-run.png"), full_page=True)
    finally:
        context.close()


def test_a_wrong_value_is_shown_at_its_field_and_nothing_runs(server: Server, api: httpx.Client,
                                                              flow: dict[str, str]) -> None:
    client = sign_in(server)
    before = api.get("/runs", params={"tool": flow["name"], "limit": 1000}).json()["items"]
    csrf = page_csrf(client, f"/ui/workflows/{flow['name']}")
    response = client.post(f"/ui/workflows/{flow['name']}/run", data={"csrf_token": csrf, "n": "many"})
    assert response.status_code == 400 and "nothing was run" in response.text
    assert api.get("/runs", params={"tool": flow["name"], "limit": 1000}).json()["items"] == before


def test_a_viewer_sees_no_run_form_and_cannot_force_a_run(server: Server, api: httpx.Client,
                                                          flow: dict[str, str]) -> None:
    viewer = sign_in(server, make_key(api, "viewer"))
    page = viewer.get(f"/ui/workflows/{flow['name']}")
    assert page.status_code == 200 and f"Run {flow['name']}" not in page.text
    csrf = page_csrf(viewer, f"/ui/workflows/{flow['name']}")
    before = len(api.get("/runs", params={"tool": flow["name"], "limit": 1000}).json()["items"])
    response = viewer.post(f"/ui/workflows/{flow['name']}/run", data={"csrf_token": csrf, "n": "2"})
    assert response.status_code == 403
    assert len(api.get("/runs", params={"tool": flow["name"], "limit": 1000}).json()["items"]) == before
    restricted = sign_in(server, make_key(api, "member", restrictions={"tools": [flow["double"]]}))  # workflows: not for it
    assert restricted.get(f"/ui/workflows/{flow['name']}").status_code in (403, 404)
    assert viewer.get("/ui/workflows/no-such-flow").status_code == 404


def test_triggers_show_next_fire_times_webhooks_and_an_email_log(server: Server, api: httpx.Client,
                                                                 flow: dict[str, str]) -> None:
    made = api.post("/schedules", json={"workflow": flow["name"], "cron": "0 6 * * *", "timezone": "UTC",
                                        "inputs": {"n": 1}})
    assert made.status_code == 201, made.text
    hook = api.post("/webhooks", json={"workflow": flow["name"]})
    assert hook.status_code == 201, hook.text
    address = f"ui-{uuid.uuid4().hex[:6]}@example.com"
    email = api.post("/email-triggers", json={"workflow": flow["name"], "aliases": [address]})
    assert email.status_code == 201, email.text
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "boss@example.com", address, f"report {EVIL}"
    msg.set_content("the body\n")
    with smtplib.SMTP("127.0.0.1", int(server.extra_env["RUNYARD_SMTP_PORT"]), timeout=30) as smtp, \
            contextlib.suppress(smtplib.SMTPDataError):  # refused (no n in the inputs): logged all the same
        smtp.send_message(msg)
    deadline = time.monotonic() + 30
    while not api.get(f"/email-triggers/{email.json()['id']}/records").json()["items"]:
        assert time.monotonic() < deadline, "the mail was never recorded"
        time.sleep(0.2)
    client = sign_in(server)
    page = client.get("/ui/triggers")
    assert page.status_code == 200
    row = page.text.split(made.json()["id"], 1)[1].split("</tr>", 1)[0]
    times = api.get(f"/schedules/{made.json()['id']}/next", params={"count": 3}).json()["times"]
    assert all(t[:16].replace("T", " ") in row for t in times) and "06:00" in row
    assert hook.json()["id"] in page.text and email.json()["id"] in page.text
    log = client.get(f"/ui/triggers/email/{email.json()['id']}")
    assert log.status_code == 200 and "boss@example.com" in log.text
    assert EVIL not in log.text and "report &lt;script&gt;" in log.text
    assert client.get("/ui/triggers/email/etr_doesnotexist").status_code == 404
    for path in (f"/schedules/{made.json()['id']}", f"/webhooks/{hook.json()['id']}",
                 f"/email-triggers/{email.json()['id']}"):
        api.delete(path)


def test_the_pages_weigh_under_the_budget(browser: Any, server: Server, flow: dict[str, str]) -> None:
    cookie = sign_in(server).cookies.get("runyard_ui")
    for name, path in {"workflows": "/ui/workflows", "workflow": f"/ui/workflows/{flow['name']}",
                       "triggers": "/ui/triggers"}.items():
        ctx = browser.new_context(base_url=server.base_url)
        ctx.add_cookies([{"name": "runyard_ui", "value": cookie, "domain": "127.0.0.1", "path": "/ui"}])
        page = ctx.new_page()
        weight = _transferred(page, path)
        assert 0 < weight <= PAGE_BUDGET, (name, weight)
        page.screenshot(path=str(artifacts_dir() / f"{name}.png"), full_page=True)
        ctx.close()


def test_the_workflow_list_searches_and_escapes(server: Server, flow: dict[str, str]) -> None:
    client = sign_in(server)
    page = client.get("/ui/workflows", params={"q": flow["name"]})
    assert page.status_code == 200 and flow["name"] in page.text and EVIL not in page.text
    assert "&lt;script&gt;" in page.text
    found = client.get("/ui/workflows", params={"q": EVIL})
    assert EVIL not in found.text, found.text[found.text.index(EVIL) - 300:found.text.index(EVIL) + 50]
    empty = client.get("/ui/workflows", params={"q": f"nothing {EVIL}"})
    assert EVIL not in empty.text and "No workflow matches" in empty.text
    assert httpx.get(f"{server.base_url}/ui/workflows", follow_redirects=False).status_code == 303
