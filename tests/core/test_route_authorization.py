"""Every route of the app × every kind of caller: no key, an expired key, viewer, member,
admin, and a member key restricted to one tool. Each cell states the answer (status and,
for refusals, the error code); a route without a row fails the test, and so does a row
for a route that no longer exists.

The checks live in the services (``services/access.py`` ``Permission``); this table is
what any front end built on them answers over HTTP. One shared server; the resources the
paths name are made once, and a cell that destroys or changes the state of something
gets a fresh one of its own.
"""

from __future__ import annotations

import itertools
import json
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from runyard.api.app import create_fastapi
from runyard.api.openapi import iter_routes
from runyard.store.tables import tokens
from tests.support.servers import Server

WHO = ("none", "expired", "viewer", "member", "admin", "restricted")
FAST_LANE = "POST /api/v1/runs [fast lane: JSON body]"  # served in front of FastAPI (api.fastlane)

TOOL_CODE = """
from pathlib import Path
from runyard import context
def main(x: int = 1):
    print("hello from the authz tool")
    context.trace("step", x=x)
    (Path(context.output_dir()) / "out.txt").write_text("artifact")
    return x
"""
OTHER_CODE = "def main(x: int = 1):\n    return x\n"
TEMPLATE_FIELDS = [{"name": "id", "generator": "sequence", "start": 1},
                   {"name": "tier", "generator": "choice", "values": ["free", "pro"]}]


# -- expectations -------------------------------------------------------------------------
@dataclass(frozen=True)
class Expect:
    statuses: frozenset[int]
    code: str | None = None  # the error code a refusal must carry

    def matches(self, response: httpx.Response) -> bool:
        if response.status_code not in self.statuses:
            return False
        return self.code is None or _code(response) == self.code

    def __str__(self) -> str:
        return "/".join(map(str, sorted(self.statuses))) + (f" {self.code}" if self.code else "")


def ok(*statuses: int) -> Expect:
    return Expect(frozenset(statuses))


def hidden(code: str) -> Expect:
    return Expect(frozenset({404}), code)


DENIED = Expect(frozenset({403}), "insufficient_role")
RESTRICTED = Expect(frozenset({403}), "restricted")
NO_KEY = Expect(frozenset({401}), "missing_api_key")
EXPIRED = Expect(frozenset({401}), "expired_api_key")

# ``target``: "own" names the resources every key here may reach (the restricted key's
# tool, its runs, its secret); "hidden" names another tool's, which the restricted key
# must not see.
Cell = tuple[tuple[str, Expect], ...]
Send = Callable[["World", httpx.Client, str], httpx.Response]
Check = Callable[["World", str, str, httpx.Response], None]  # (world, who, target, response)


@dataclass
class Row:
    send: Send
    cells: dict[str, Cell]
    check: Check | None = None  # more than the status, per caller


def api(send: Send, *, viewer: Expect, member: Expect, admin: Expect,
        restricted: Expect | Cell | None = None, hides: str | None = None, check: Check | None = None) -> Row:
    """A row of an authenticated route. ``hides``: the 404 code the restricted key gets for
    another tool's resource (its own gets ``restricted``, by default what a member gets)."""
    mine: Cell
    if restricted is None:
        restricted = member
    mine = restricted if isinstance(restricted, tuple) else (("own", restricted),)
    if hides is not None:
        mine = (*mine, ("hidden", hidden(hides)))
    return Row(send, {"none": (("own", NO_KEY),), "expired": (("own", EXPIRED),),
                      "viewer": (("own", viewer),), "member": (("own", member),),
                      "admin": (("own", admin),), "restricted": mine}, check)


def public(send: Send, check: Check | None = None) -> Row:
    return Row(send, {who: (("own", ok(200)),) for who in WHO}, check)


def reader(send: Send, *, hides: str | None = None, check: Check | None = None) -> Row:
    """Any key reads."""
    return api(send, viewer=ok(200), member=ok(200), admin=ok(200), hides=hides, check=check)


def writer(send: Send, status: int, *, hides: str | None = None, restricted: Expect | Cell | None = None,
           check: Check | None = None) -> Row:
    """A member (or admin) writes; a viewer cannot."""
    return api(send, viewer=DENIED, member=ok(status), admin=ok(status), restricted=restricted, hides=hides,
               check=check)


def admin_only(send: Send, status: int) -> Row:
    return api(send, viewer=DENIED, member=DENIED, admin=ok(status), restricted=DENIED)


# -- the resources the paths name ---------------------------------------------------------
@dataclass
class World:
    server: Server
    admin: httpx.Client
    u: str
    clients: dict[str, httpx.Client] = field(default_factory=dict)
    counter: Iterator[int] = field(default_factory=itertools.count)
    tool: str = ""
    other: str = ""
    secret: str = ""
    other_secret: str = ""
    run: str = ""
    other_run: str = ""
    awaiting_run: str = ""
    template: str = ""
    set: str = ""
    viewer_token: str = ""
    tool_body: dict[str, Any] = field(default_factory=dict)

    def name(self, prefix: str) -> str:
        return f"{prefix}_{self.u}_{next(self.counter)}"

    def tool_for(self, target: str) -> str:
        return self.tool if target == "own" else self.other

    def run_for(self, target: str) -> str:
        return self.run if target == "own" else self.other_run

    def secret_for(self, target: str) -> str:
        return self.secret if target == "own" else self.other_secret

    # Fresh resources, for cells that delete or change the state of one.
    def fresh_tool(self) -> str:
        name = self.name("doomed").replace("_", "-")
        _ok(self.admin.post("/tools", json={"name": name, "code": OTHER_CODE}))
        return name

    def fresh_awaiting_run(self, target: str) -> str:
        return _ok(self.admin.post("/runs", json={"tool": self.tool_for(target), "requires_confirmation": True}))["id"]

    def fresh_secret(self) -> str:
        name = self.name("DOOMED")
        _ok(self.admin.put(f"/secrets/{name}", json={"value": "doomed-value"}))
        return name

    def fresh_token(self) -> str:
        return _ok(self.admin.post("/tokens", json={"name": self.name("doomed"), "role": "viewer"}))["id"]

    def fresh_template(self) -> str:
        return _ok(self.admin.post("/templates", json={"name": self.name("doomed"), "fields": TEMPLATE_FIELDS}))["id"]

    def fresh_set(self) -> str:
        name = self.name("doomed")
        _ok(self.admin.post("/sets", json={"name": name, "rows": [{"a": 1}]}))
        return name


def _ok(response: httpx.Response) -> Any:
    assert response.status_code in (200, 201), response.text
    return response.json()


def _code(response: httpx.Response) -> str | None:
    try:
        return response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def _expire(server: Server, token_id: str) -> None:
    """Make a key expired as the server sees it: its ``expires_at`` put in the past in the
    server's own database (no sleeping; the key was never used, so no node has it cached)."""
    engine = sa.create_engine(server.database_url or f"sqlite:///{server.data_dir / 'runyard.db'}")
    try:
        with engine.begin() as conn:
            done = conn.execute(tokens.update().where(tokens.c.id == token_id)
                                .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))).rowcount
        assert done == 1
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def world(server: Server) -> Iterator[World]:
    u = uuid.uuid4().hex[:8]
    with server.client() as admin:
        w = World(server=server, admin=admin, u=u)
        w.tool, w.other = f"authz-{u}", f"authz-other-{u}"
        w.secret, w.other_secret = f"AUTHZ_{u}".upper(), f"AUTHZ_OTHER_{u}".upper()
        for secret in (w.secret, w.other_secret):
            _ok(admin.put(f"/secrets/{secret}", json={"value": f"value-of-{secret.lower()}"}))
        w.tool_body = {"name": w.tool, "code": textwrap.dedent(TOOL_CODE), "required_secrets": [w.secret]}
        _ok(admin.post("/tools", json=w.tool_body))
        _ok(admin.post("/tools", json={"name": w.other, "code": OTHER_CODE}))
        for attr, tool in (("run", w.tool), ("other_run", w.other)):
            finished = _ok(admin.post("/runs", params={"wait": 60}, json={"tool": tool}))
            assert finished["status"] == "succeeded", finished
            setattr(w, attr, finished["id"])
        w.awaiting_run = w.fresh_awaiting_run("own")
        w.template = _ok(admin.post("/templates", json={"name": w.name("tpl"), "fields": TEMPLATE_FIELDS}))["id"]
        w.set = w.name("set")
        _ok(admin.post("/sets", json={"name": w.set, "rows": [{"a": 1}, {"a": 2}]}))
        keys: dict[str, str | None] = {"none": None, "admin": server.admin_key}
        for who, body in (("viewer", {"role": "viewer"}), ("member", {"role": "member"}),
                          ("restricted", {"role": "member", "restrictions": {"tools": [w.tool]}}),
                          ("expired", {"role": "admin",
                                       "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()})):
            token = _ok(admin.post("/tokens", json={"name": f"authz-{who}-{u}", **body}))
            keys[who] = token["key"]
            if who == "viewer":
                w.viewer_token = token["id"]
            if who == "expired":
                _expire(server, token["id"])
        for who, key in keys.items():
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            w.clients[who] = httpx.Client(base_url=server.api, headers=headers, timeout=60)
        try:
            yield w
        finally:
            for client in w.clients.values():
                client.close()


def _root(w: World, client: httpx.Client) -> httpx.Client:
    """``client``'s key against the server's root (outside /api/v1)."""
    return httpx.Client(base_url=w.server.base_url, headers=dict(client.headers), timeout=60)


def _get_root(path: str, **kwargs: Any) -> Send:
    def send(w: World, client: httpx.Client, target: str) -> httpx.Response:
        with _root(w, client) as root:
            return root.get(path, **kwargs)
    return send


def _head_root(path: str) -> Send:
    def send(w: World, client: httpx.Client, target: str) -> httpx.Response:
        with _root(w, client) as root:
            return root.head(path)
    return send


def _readyz_details(w: World, who: str, target: str, response: httpx.Response) -> None:
    # Which run protections this node enforces: an unrestricted admin's to see, nobody else's.
    assert ("sandbox" in response.json()) == (who == "admin"), (who, response.json())


def _lists_only_its_own(field: str) -> Check:
    """A list a restricted key reads names only its own tool (or its tool's secret)."""
    def check(w: World, who: str, target: str, response: httpx.Response) -> None:
        key = "name" if field == "secret" else field
        names = {item[key] for item in response.json()["items"]}
        own, other = (w.secret, w.other_secret) if field == "secret" else (w.tool, w.other)
        if who == "restricted":
            assert names <= {own}, (who, sorted(names))
        else:
            assert other in names, (who, sorted(names))
    return check


# -- the table ------------------------------------------------------------------------------
RUN_HIDDEN = "run_not_found"
TOOL_HIDDEN = "tool_not_found"


def _batch_item_answer(w: World, who: str, target: str, response: httpx.Response) -> None:
    # The batch is judged by the key's role; each item as POST /runs would judge it.
    [item] = response.json()["items"]
    if target == "hidden":
        assert item["status"] == 404 and item["error"]["code"] == TOOL_HIDDEN, item
    else:
        assert item["status"] == 201, item


def _multipart_run(w: World, c: httpx.Client, t: str) -> httpx.Response:
    # A form field (no filename) makes the request multipart with no file: FastAPI's route.
    return c.post("/runs", files={"payload": (None, json.dumps({"tool": w.tool_for(t)}))})


TABLE: dict[str, Row] = {
    # probes, the landing page, the API description and /docs: public, whatever key is sent
    "GET /healthz": public(_get_root("/healthz")),
    "GET /readyz": public(_get_root("/readyz"), check=_readyz_details),
    "GET /": public(_get_root("/")),
    "GET /docs": public(_get_root("/docs")),
    "GET /docs/assets/{path}": public(_get_root("/docs/assets/swagger-ui.css")),
    "GET /api/v1/openapi.json": public(_get_root("/api/v1/openapi.json")),
    "HEAD /api/v1/openapi.json": public(_head_root("/api/v1/openapi.json")),

    # runs
    FAST_LANE: writer(lambda w, c, t: c.post("/runs", json={"tool": w.tool_for(t)}), 201, hides=TOOL_HIDDEN),
    "POST /api/v1/runs": writer(_multipart_run, 201, hides=TOOL_HIDDEN),
    "POST /api/v1/runs/batch": writer(
        lambda w, c, t: c.post("/runs/batch", json={"runs": [{"tool": w.tool_for(t)}]}), 200,
        restricted=(("own", ok(200)), ("hidden", ok(200))), check=_batch_item_answer),
    "POST /api/v1/runs/wait": reader(
        lambda w, c, t: c.post("/runs/wait", json={"ids": [w.run_for(t)], "timeout": 0}), hides=RUN_HIDDEN),
    "GET /api/v1/runs": reader(lambda w, c, t: c.get("/runs", params={"limit": 1000}),
                               check=_lists_only_its_own("tool_name")),
    "GET /api/v1/runs/{run_id}": reader(lambda w, c, t: c.get(f"/runs/{w.run_for(t)}"), hides=RUN_HIDDEN),
    "GET /api/v1/runs/{run_id}/wait": reader(
        lambda w, c, t: c.get(f"/runs/{w.run_for(t)}/wait", params={"timeout": 0}), hides=RUN_HIDDEN),
    "POST /api/v1/runs/{run_id}/confirm": writer(
        lambda w, c, t: c.post(f"/runs/{w.fresh_awaiting_run(t) if t == 'own' else w.other_run}/confirm"),
        200, hides=RUN_HIDDEN),
    "POST /api/v1/runs/{run_id}/cancel": writer(  # a finished run: answered as it is
        lambda w, c, t: c.post(f"/runs/{w.run_for(t)}/cancel", params={"wait": 0}), 200, hides=RUN_HIDDEN),
    "POST /api/v1/runs/{run_id}/rerun": writer(
        lambda w, c, t: c.post(f"/runs/{w.run_for(t)}/rerun"), 201, hides=RUN_HIDDEN),
    "POST /api/v1/runs/{run_id}/files": writer(
        lambda w, c, t: c.post(f"/runs/{w.awaiting_run if t == 'own' else w.other_run}/files",
                               files={"doc": ("doc.txt", b"hello")}), 200, hides=RUN_HIDDEN),
    "GET /api/v1/runs/{run_id}/logs": reader(lambda w, c, t: c.get(f"/runs/{w.run_for(t)}/logs"), hides=RUN_HIDDEN),
    "GET /api/v1/runs/{run_id}/trace": reader(lambda w, c, t: c.get(f"/runs/{w.run_for(t)}/trace"),
                                              hides=RUN_HIDDEN),
    "GET /api/v1/runs/{run_id}/artifacts": reader(lambda w, c, t: c.get(f"/runs/{w.run_for(t)}/artifacts"),
                                                  hides=RUN_HIDDEN),
    "GET /api/v1/runs/{run_id}/artifacts.zip": reader(lambda w, c, t: c.get(f"/runs/{w.run_for(t)}/artifacts.zip"),
                                                      hides=RUN_HIDDEN),
    # (the hidden run has no artifact: it must still answer run_not_found, not artifact_not_found)
    "GET /api/v1/runs/{run_id}/artifacts/{path}": reader(
        lambda w, c, t: c.get(f"/runs/{w.run_for(t)}/artifacts/out.txt"), hides=RUN_HIDDEN),

    # tools: a restricted key deploys only its tool's name, sees only its tool
    "POST /api/v1/tools": writer(  # the same body again: the tool as it is, 200
        lambda w, c, t: c.post("/tools", json={**w.tool_body, "name": w.tool_for(t)} if t == "hidden" else w.tool_body),
        200, restricted=(("own", ok(200)), ("hidden", RESTRICTED))),
    "GET /api/v1/tools": reader(lambda w, c, t: c.get("/tools", params={"limit": 1000}),
                                check=_lists_only_its_own("name")),
    "GET /api/v1/tools/{ref}": reader(lambda w, c, t: c.get(f"/tools/{w.tool_for(t)}"), hides=TOOL_HIDDEN),
    "PATCH /api/v1/tools/{ref}": writer(
        lambda w, c, t: c.patch(f"/tools/{w.tool_for(t)}", json={"description": "the authz tool"}), 200,
        hides=TOOL_HIDDEN),
    "GET /api/v1/tools/{ref}/versions": reader(lambda w, c, t: c.get(f"/tools/{w.tool_for(t)}/versions"),
                                               hides=TOOL_HIDDEN),
    "GET /api/v1/tools/{ref}/versions/{version}": reader(
        lambda w, c, t: c.get(f"/tools/{w.tool_for(t)}/versions/1"), hides=TOOL_HIDDEN),
    "DELETE /api/v1/tools/{ref}": writer(  # (the restricted key's own tool stays: later rows use it)
        lambda w, c, t: c.delete(f"/tools/{w.fresh_tool() if t == 'own' else w.other}"), 204,
        restricted=(("hidden", hidden(TOOL_HIDDEN)),)),

    # tokens: admin keys only
    "POST /api/v1/tokens": admin_only(lambda w, c, t: c.post("/tokens", json={"name": w.name("t"), "role": "viewer"}),
                                      201),
    "GET /api/v1/tokens": admin_only(lambda w, c, t: c.get("/tokens"), 200),
    "GET /api/v1/tokens/{token_id}": admin_only(lambda w, c, t: c.get(f"/tokens/{w.viewer_token}"), 200),
    "DELETE /api/v1/tokens/{token_id}": admin_only(lambda w, c, t: c.delete(f"/tokens/{w.fresh_token()}"), 204),

    # secrets: a restricted key reaches only the secrets its tool declares
    "PUT /api/v1/secrets/{name}": writer(
        lambda w, c, t: c.put(f"/secrets/{w.secret_for(t)}", params={"force": True},
                              json={"value": f"value-of-{w.secret_for(t).lower()}"}), 200,
        hides="secret_not_found"),
    "GET /api/v1/secrets": reader(lambda w, c, t: c.get("/secrets", params={"limit": 1000}),
                                  check=_lists_only_its_own("secret")),
    "DELETE /api/v1/secrets/{name}": writer(  # (the restricted key's own secret stays: its tool's runs need it)
        lambda w, c, t: c.delete(f"/secrets/{w.fresh_secret() if t == 'own' else w.other_secret}"), 204,
        restricted=(("hidden", hidden("secret_not_found")),)),

    # templates and sets: not scoped by tool; any key reads and previews, members write
    "POST /api/v1/templates": writer(
        lambda w, c, t: c.post("/templates", json={"name": w.name("tpl"), "fields": TEMPLATE_FIELDS}), 201),
    "GET /api/v1/templates": reader(lambda w, c, t: c.get("/templates")),
    "GET /api/v1/templates/{ref}": reader(lambda w, c, t: c.get(f"/templates/{w.template}")),
    "PATCH /api/v1/templates/{ref}": writer(
        lambda w, c, t: c.patch(f"/templates/{w.template}", json={"description": "patched"}), 200),
    "DELETE /api/v1/templates/{ref}": writer(lambda w, c, t: c.delete(f"/templates/{w.fresh_template()}"), 204),
    "GET /api/v1/templates/{ref}/versions": reader(lambda w, c, t: c.get(f"/templates/{w.template}/versions")),
    "GET /api/v1/templates/{ref}/versions/{version}": reader(
        lambda w, c, t: c.get(f"/templates/{w.template}/versions/1")),
    "POST /api/v1/templates/{ref}/preview": reader(lambda w, c, t: c.post(f"/templates/{w.template}/preview",
                                                                          json={"seed": 1})),
    "POST /api/v1/templates/{ref}/generate": writer(
        lambda w, c, t: c.post(f"/templates/{w.template}/generate", json={"count": 3, "format": "json"}), 200),
    "POST /api/v1/sets": writer(
        lambda w, c, t: c.post("/sets", json={"name": w.name("set"), "rows": [{"a": 1}]}), 201),
    "GET /api/v1/sets": reader(lambda w, c, t: c.get("/sets")),
    "GET /api/v1/sets/{name}": reader(lambda w, c, t: c.get(f"/sets/{w.set}")),
    "DELETE /api/v1/sets/{name}": writer(lambda w, c, t: c.delete(f"/sets/{w.fresh_set()}"), 204),
}


def app_routes() -> set[str]:
    """``METHOD path`` of every route of the app, walked as FastAPI nests them, and the fast lane."""
    app = create_fastapi(SimpleNamespace(settings=SimpleNamespace(requests_per_minute=0)))  # type: ignore[arg-type]
    keys = {FAST_LANE}
    for route in iter_routes(app):
        path = getattr(route, "path_format", None) or route.path
        if path.startswith("/compat/"):
            continue  # the compatibility routes: tests/compat checks each refuses a caller without a key
        for method in getattr(route, "methods", None) or {"GET"}:  # a mount (the docs' assets) serves GET
            keys.add(f"{method} {path}")
    return keys


def test_every_route_has_a_row() -> None:
    routes = app_routes()
    missing = sorted(routes - set(TABLE))
    assert not missing, "\n".join(f"route {key} has no row in TABLE" for key in missing)
    stale = sorted(set(TABLE) - routes)
    assert not stale, "\n".join(f"row {key} names no route of the app" for key in stale)


def test_every_route_answers_every_caller_as_the_table_says(world: World) -> None:
    failures: list[str] = []
    for key, row in TABLE.items():
        for who in WHO:
            for target, expect in row.cells[who]:
                response = row.send(world, world.clients[who], target)
                label = f"{key} as {who}" + (f" ({target} resource)" if who == "restricted" else "")
                if not expect.matches(response):
                    failures.append(f"{label}: expected {expect}, got {response.status_code} "
                                    f"{_code(response) or response.text[:200]}")
                elif row.check is not None and response.is_success:
                    try:
                        row.check(world, who, target, response)
                    except AssertionError as exc:
                        failures.append(f"{label}: {exc}")
    assert not failures, "\n".join(failures)
