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

import hashlib
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
ROWS = [{"id": 1, "name": "ann"}, {"id": 2, "name": "bob"}, {"id": 3, "name": "cy"}]
CSV = b"id,name\n1,ann\n2,bob\n"
PART = b"id,name\n7,dee\n"  # a whole (one-part) upload
PASSWORD = "authz-password-1"


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
NO_MODEL = Expect(frozenset({409}), "llm_not_configured")  # the shared server has no model provider
NO_TASK = Expect(frozenset({404}), "cleaning_task_not_found")

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
    scoped_token: str = ""  # a viewer key restricted to ``tool``: one the restricted key may see
    tool_body: dict[str, Any] = field(default_factory=dict)
    user: str = ""  # another user of the workspace, with a password
    ns: str = ""  # a namespace of user admin (the owner of every key here)
    ds: str = ""  # a dataset in it, with a few rows
    ingestion: str = ""  # a finished file ingestion into ``ns``
    upload: str = ""  # an open upload of user admin ...
    upload_key: str = ""  # ... its key
    part_url: str = ""  # ... and its one part's signed URL
    schedule: str = ""  # a schedule of ``tool`` (user admin's; it fires once a day)
    webhook: str = ""  # a webhook of ``tool`` (user admin's) ...
    hook_url: str = ""  # ... and its secret URL
    email_trigger: str = ""  # an email trigger of ``tool`` (user admin's) ...
    email_alias: str = ""  # ... and one of its aliases
    workflow: str = ""  # a workflow calling ``tool`` ...
    workflow_run: str = ""  # ... a finished run of it
    folder: str = ""

    def fresh_workflow(self) -> str:
        name = self.name("flow").replace("_", "-")
        _ok(self.admin.post("/workflows", json={"definition": {"name": name, "steps": [
            {"id": "s", "uses": self.tool}]}}))
        return name

    def fresh_folder(self) -> str:
        return _ok(self.admin.post("/folders", json={"name": self.name("folder")}))["id"]

    def fresh_connection(self) -> str:
        """An http connection to a public address (a check of it fails within its second)."""
        return _ok(self.admin.post("/connections", json={"name": self.name("conn").replace("_", "-"), "type": "http",
                                                         "config": {"base_url": "https://93.184.216.34/",
                                                                    "timeout_s": 1}}))["id"]

    def fresh_provider(self) -> str:
        """A language-model provider (not the default: the shared server keeps none)."""
        return _ok(self.admin.post("/llm/providers", json={
            "name": self.name("prov"), "base_url": "https://93.184.216.34/v1", "default_model": "m",
            "default": False}))["id"]

    def fresh_address(self) -> str:
        return f"{self.name('authz').replace('_', '-')}@example.com"

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

    def token_for(self, target: str) -> str:
        return self.scoped_token if target == "own" else self.viewer_token

    def fresh_token_for(self, target: str) -> str:
        restrictions = {"tools": [self.tool]} if target == "own" else {}
        return _ok(self.admin.post("/tokens", json={"name": self.name("doomed"), "role": "viewer",
                                                     "restrictions": restrictions}))["id"]

    def fresh_user(self) -> str:
        name = self.name("doomed")
        _ok(self.admin.post("/users", json={"username": name, "role": "viewer"}))
        return name

    def fresh_namespace(self) -> str:
        name = self.name("doomed")
        _ok(self.admin.post("/namespaces", json={"name": name}))
        return name

    def fresh_member(self) -> str:
        """``ns`` shared with ``user`` again (a cell removes the share)."""
        _ok(self.admin.put(f"/namespaces/{self.ns}/members/{self.user}", params={"access": "read"}))
        return self.user

    def fresh_dataset(self) -> str:
        name = self.name("doomed")
        _ok(self.admin.post(f"/namespaces/{self.ns}/datasets/{name}/rows", params={"create": True}, json=ROWS))
        return name

    def fresh_upload(self, *, with_part: bool = False) -> dict[str, Any]:
        """An open upload of user admin (every key's user); with its one part sent, ready to complete."""
        upload = _ok(self.admin.post("/uploads", json={"filename": "part.csv", "size": len(PART)}))
        if with_part:
            upload["etag"] = _ok(httpx.put(upload["parts"][0]["url"], content=PART, timeout=60))["etag"]
        return upload

    def complete(self, client: httpx.Client) -> httpx.Response:
        upload = self.fresh_upload(with_part=True)
        return client.post(f"/uploads/{upload['id']}/complete", json={
            "key": upload["key"], "parts": [{"part_number": 1, "etag": upload["etag"]}],
            "namespace": self.ns, "dataset": "uploaded"})

    def fresh_schedule(self) -> str:
        return _ok(self.admin.post("/schedules", json={"tool": self.tool, "cron": "0 3 * * *"}))["id"]

    def fresh_webhook(self) -> str:
        return _ok(self.admin.post("/webhooks", json={"tool": self.tool}))["id"]

    def fresh_email_trigger(self) -> str:
        return _ok(self.admin.post("/email-triggers", json={"tool": self.tool, "aliases": [self.fresh_address()]}))["id"]

    def fresh_email_alias(self) -> str:
        return _ok(self.admin.post(f"/email-triggers/{self.email_trigger}/aliases",
                                   json={"address": self.fresh_address()}))["id"]

    def fresh_failed_ingestion(self) -> str:
        """A file ingestion that failed (not Parquet, though said to be): one a retry runs again."""
        started = _ok(self.admin.post(f"/namespaces/{self.ns}/datasets/{self.ds}/files",
                                      files={"file": ("bad.parquet", b"this is not parquet")},
                                      data={"options": json.dumps({"format": "parquet"})}))
        return _finished(self.admin, started["id"], "failed")


def _ok(response: httpx.Response) -> Any:
    assert response.status_code in (200, 201, 202), response.text
    return response.json()


def _code(response: httpx.Response) -> str | None:
    try:
        return response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def _finished(client: httpx.Client, ingestion_id: str, status: str) -> str:
    done = _ok(client.get(f"/ingestions/{ingestion_id}/wait", params={"timeout": 120}))
    assert done["status"] == status, done
    return ingestion_id


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
        # data: every key below is user admin's, so the namespace it makes is theirs (owner)
        w.user = w.name("person")
        _ok(admin.post("/users", json={"username": w.user, "role": "member", "password": PASSWORD}))
        w.ns, w.ds = w.name("authz"), "people"
        _ok(admin.post("/namespaces", json={"name": w.ns}))
        _ok(admin.post(f"/namespaces/{w.ns}/datasets/{w.ds}/rows", params={"create": True}, json=ROWS))
        started = _ok(admin.post(f"/namespaces/{w.ns}/datasets/files/files", files={"file": ("people.csv", CSV)}))
        w.ingestion = _finished(admin, started["id"], "succeeded")
        upload = w.fresh_upload()
        w.upload, w.upload_key, w.part_url = upload["id"], upload["key"], upload["parts"][0]["url"]
        w.schedule = w.fresh_schedule()
        hook = _ok(admin.post("/webhooks", json={"tool": w.tool, "rate_per_s": 1000, "burst": 1000}))
        w.webhook, w.hook_url = hook["id"], hook["url"]
        w.email_trigger = w.fresh_email_trigger()
        w.email_alias = w.fresh_email_alias()
        w.workflow, w.folder = w.fresh_workflow(), w.fresh_folder()
        finished = _ok(admin.post("/runs", params={"wait": 60}, json={"workflow": w.workflow}))
        assert finished["status"] == "succeeded", finished
        w.workflow_run = finished["id"]
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
        w.scoped_token = _ok(admin.post("/tokens", json={"name": f"authz-scoped-{u}", "role": "viewer",
                                                          "restrictions": {"tools": [w.tool]}}))["id"]
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
TOKEN_HIDDEN = "token_not_found"
USER_HIDDEN = "user_not_found"
ESCALATION = Expect(frozenset({403}), "token_escalation")
NS_DENIED = Expect(frozenset({403}), "namespace_access_denied")
FINISHED = Expect(frozenset({409}), "ingestion_finished")
BAD_PASSWORD = Expect(frozenset({401}), "invalid_credentials")
FORGED = Expect(frozenset({403}), "invalid_signature")


def data_writer(send: Send, status: int, *, check: Check | None = None) -> Row:
    """A write to user admin's namespace: its member and admin keys may (the user owns it); a
    viewer key sees it, so it is told 403 ``namespace_access_denied``, not 404."""
    return api(send, viewer=NS_DENIED, member=ok(status), admin=ok(status), check=check)


ROLE_OF = {"viewer": "viewer", "member": "member", "admin": "admin", "restricted": "member"}


def _me(w: World, who: str, target: str, response: httpx.Response) -> None:
    me = response.json()
    assert (me["username"], me["token_role"], me["restricted"]) == ("admin", ROLE_OF[who], who == "restricted"), me


def _namespace_access(w: World, who: str, target: str, response: httpx.Response) -> None:
    # user admin owns it; a viewer key only reads it
    assert response.json()["access"] == ("read" if who == "viewer" else "owner"), (who, response.json())


def _lists_namespace(w: World, who: str, target: str, response: httpx.Response) -> None:
    assert w.ns in {item["name"] for item in response.json()["items"]}, who


def _lists_tokens(w: World, who: str, target: str, response: httpx.Response) -> None:
    """A restricted key lists only keys within its restrictions."""
    ids = {item["id"] for item in response.json()["items"]}
    assert w.scoped_token in ids, (who, "its tool's key is not listed")
    assert (w.viewer_token in ids) == (who != "restricted"), (who, "an unrestricted key listed or not")


def _login(w: World, c: httpx.Client, t: str) -> httpx.Response:
    return c.post("/auth/login", json={"username": w.user, "password": PASSWORD if t == "own" else "not-the-password"})


def _put_part(w: World, c: httpx.Client, t: str) -> httpx.Response:
    url = w.part_url if t == "own" else w.part_url.split("signature=")[0] + "signature=" + "0" * 64
    return c.put(url, content=PART)


def _call_hook(w: World, c: httpx.Client, t: str) -> httpx.Response:
    """The hook's URL, with whatever key the caller has (it counts for nothing)."""
    url = w.hook_url if t == "own" else w.hook_url.rsplit("/", 1)[0] + "/rwh_" + "A" * 43
    return httpx.post(url, json={"x": 2}, headers=dict(c.headers), timeout=60)


def _part_etag(w: World, who: str, target: str, response: httpx.Response) -> None:
    assert response.json()["etag"] == hashlib.md5(PART, usedforsecurity=False).hexdigest(), response.text


def _batch_item_answer(w: World, who: str, target: str, response: httpx.Response) -> None:
    # The batch is judged by the key's role; each item as POST /runs would judge it.
    [item] = response.json()["items"]
    if target == "hidden":
        assert item["status"] == 404 and item["error"]["code"] == TOOL_HIDDEN, item
    else:
        assert item["status"] == 201, item


def _delete_run_file(w: World, c: httpx.Client, t: str) -> httpx.Response:
    """An input file of a fresh run awaiting confirmation (of the target's tool), deleted."""
    run_id = w.fresh_awaiting_run(t)
    _ok(w.admin.post(f"/runs/{run_id}/files", files={"doc": ("doc.txt", b"hello")}))
    file_id = _ok(w.admin.get(f"/runs/{run_id}/files"))["items"][0]["id"]
    return c.delete(f"/runs/{run_id}/files/{file_id}")


def _open_live(w: World, c: httpx.Client, t: str) -> httpx.Response:
    """The run's live WebSocket through a URL the caller signs: the connect call's refusal,
    the handshake's, or (200) the first message the socket sent."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    link = c.post(f"/runs/{w.run_for(t)}/connect")
    if link.status_code != 200:
        return link
    try:
        with connect(link.json()["url"], open_timeout=10) as ws:
            return httpx.Response(200, json=json.loads(ws.recv(timeout=10)))
    except InvalidStatus as exc:
        return httpx.Response(exc.response.status_code, content=exc.response.body or b"")


def _multipart_run(w: World, c: httpx.Client, t: str) -> httpx.Response:
    # A form field (no filename) makes the request multipart with no file: FastAPI's route.
    return c.post("/runs", files={"payload": (None, json.dumps({"tool": w.tool_for(t)}))})


def _link_body(w: World, column: str = "name") -> dict[str, Any]:
    """A link between ``ds`` (people) and the ``files`` dataset of ``ns`` (both user admin's)."""
    return {"from": {"namespace": w.ns, "dataset": w.ds, "column": column},
            "to": {"namespace": w.ns, "dataset": "files", "column": column}, "options": {"min_distinct": 1}}


def _link_id(w: World) -> str:
    """The link every reading cell reads (made once; POST /links answers an existing one)."""
    return str(_ok(w.admin.post("/links", json=_link_body(w)))["id"])


def _fresh_link(w: World) -> str:
    """A link a cell deletes (on another pair of columns than the shared one)."""
    return str(_ok(w.admin.post("/links", json=_link_body(w, "id")))["id"])


def _workspace_file(w: World) -> str:
    """A workspace file of its own, for a cell that reads or deletes one."""
    name = f"{w.name('file')}.txt"
    _ok(w.admin.post("/workspace/files", data={"name": name}, files={"file": ("f.txt", b"hello", "text/plain")}))
    return name


# -- evaluation (services.expected, feedback, eval_batches): an expected output and feedback
# on both runs, a batch of each tool, made once; a cell that deletes gets a file of its own.
def _expected(w: World, target: str) -> str:
    run_id = w.run_for(target)
    made = w.__dict__.setdefault("expected_made", set())
    if run_id not in made:
        _ok(w.admin.post(f"/runs/{run_id}/expected", json={
            "copy_output": True, "artifacts": ["out.txt"] if target == "own" else []}))
        made.add(run_id)
    return run_id


def _fresh_expected_file(w: World, target: str) -> str:
    run_id = _expected(w, target)
    name = f"{w.name('doomed')}.txt"
    _ok(w.admin.post(f"/runs/{run_id}/expected", files={"file": (name, b"doomed")}))
    return f"/runs/{run_id}/expected/{name}"


def _feedback(w: World, target: str) -> str:
    run_id = w.run_for(target)
    _ok(w.admin.patch(f"/runs/{run_id}/feedback", json={"rating": "up"}))
    return run_id


def _batch(w: World, target: str) -> str:
    batches = w.__dict__.setdefault("eval_batches", {})
    if target not in batches:
        batches[target] = _ok(w.admin.post("/batches", json={"tool": w.tool_for(target),
                                                              "examples": [{"example_id": "e1", "inputs": {}}]}))["id"]
    return batches[target]


def _batches_only_its_own(w: World, who: str, target: str, response: httpx.Response) -> None:
    names = {item["target"]["name"] for item in response.json()["items"]}
    if who == "restricted":
        assert names <= {w.tool}, (who, sorted(names))


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
    "POST /api/v1/runs/search": reader(
        lambda w, c, t: c.post("/runs/search", json={"limit": 1000, "select": ["id", "tool_name"]}),
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

    # evaluation: expected outputs, comparison, feedback (the run's visibility first)
    "GET /api/v1/runs/{run_id}/expected": reader(lambda w, c, t: c.get(f"/runs/{_expected(w, t)}/expected"),
                                                 hides=RUN_HIDDEN),
    "POST /api/v1/runs/{run_id}/expected": writer(  # it exists: updated, 200
        lambda w, c, t: c.post(f"/runs/{_expected(w, t)}/expected", json={"copy_output": True}), 200,
        hides=RUN_HIDDEN),
    "GET /api/v1/runs/{run_id}/expected/{filename}": reader(
        lambda w, c, t: c.get(f"/runs/{_expected(w, t)}/expected/out.txt"), hides=RUN_HIDDEN),
    "PATCH /api/v1/runs/{run_id}/expected/{filename}": writer(  # renamed to itself: unchanged
        lambda w, c, t: c.patch(f"/runs/{_expected(w, t)}/expected/out.txt", json={"filename": "out.txt"}), 200,
        hides=RUN_HIDDEN),
    "DELETE /api/v1/runs/{run_id}/expected/{filename}": writer(
        lambda w, c, t: c.delete(_fresh_expected_file(w, t)), 204, hides=RUN_HIDDEN),
    "GET /api/v1/runs/{run_id}/comparison": reader(lambda w, c, t: c.get(f"/runs/{_expected(w, t)}/comparison"),
                                                   hides=RUN_HIDDEN),
    "POST /api/v1/runs/{run_id}/compare": reader(
        lambda w, c, t: c.post(f"/runs/{w.run_for(t)}/compare", json={"expected": 1}), hides=RUN_HIDDEN),
    "GET /api/v1/runs/{run_id}/feedback": reader(lambda w, c, t: c.get(f"/runs/{_feedback(w, t)}/feedback"),
                                                 hides=RUN_HIDDEN),
    "PATCH /api/v1/runs/{run_id}/feedback": writer(
        lambda w, c, t: c.patch(f"/runs/{w.run_for(t)}/feedback", json={"comment": "authz"}), 200, hides=RUN_HIDDEN),
    "DELETE /api/v1/runs/{run_id}/feedback": writer(
        lambda w, c, t: c.delete(f"/runs/{_feedback(w, t)}/feedback"), 204, hides=RUN_HIDDEN),
    "POST /api/v1/runs/{run_id}/feedback/resolve": writer(
        lambda w, c, t: c.post(f"/runs/{_feedback(w, t)}/feedback/resolve"), 200, hides=RUN_HIDDEN),
    # evaluation batches: a restricted key starts and sees only its tool's
    "POST /api/v1/batches": writer(
        lambda w, c, t: c.post("/batches", json={"tool": w.tool_for(t), "examples": [{"example_id": "e", "inputs": {}}]}),
        201, hides=TOOL_HIDDEN),
    "GET /api/v1/batches": reader(lambda w, c, t: (_batch(w, "own"), _batch(w, "hidden"),
                                                   c.get("/batches", params={"limit": 1000}))[-1],
                                  check=_batches_only_its_own),
    "GET /api/v1/batches/{batch_id}": reader(lambda w, c, t: c.get(f"/batches/{_batch(w, t)}"),
                                             hides="batch_not_found"),
    "POST /api/v1/batches/{batch_id}/cancel": writer(
        lambda w, c, t: c.post(f"/batches/{_batch(w, t)}/cancel"), 200, hides="batch_not_found"),
    "GET /api/v1/runs/{run_id}/files": reader(lambda w, c, t: c.get(f"/runs/{w.run_for(t)}/files"), hides=RUN_HIDDEN),
    "DELETE /api/v1/runs/{run_id}/files/{file_id}": writer(_delete_run_file, 204, hides=RUN_HIDDEN),
    "POST /api/v1/runs/{run_id}/connect": reader(lambda w, c, t: c.post(f"/runs/{w.run_for(t)}/connect"),
                                                 hides=RUN_HIDDEN),
    # a WebSocket: the key signs the URL (connect), the URL opens the socket
    "GET /api/v1/runs/{run_id}/live": reader(_open_live, hides=RUN_HIDDEN),

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

    # tokens: members manage their own user's keys, admins everyone's; a restricted key sees and
    # mints only keys within its own restrictions ("own": a key restricted to its tool)
    "POST /api/v1/tokens": writer(
        lambda w, c, t: c.post("/tokens", json={"name": w.name("t"), "role": "viewer",
                                                "restrictions": {"tools": [w.tool]} if t == "own" else {}}), 201,
        restricted=(("own", ok(201)), ("hidden", ESCALATION))),
    "GET /api/v1/tokens": api(lambda w, c, t: c.get("/tokens", params={"limit": 1000}), viewer=DENIED,
                              member=ok(200), admin=ok(200), check=_lists_tokens),
    "GET /api/v1/tokens/{token_id}": api(lambda w, c, t: c.get(f"/tokens/{w.token_for(t)}"), viewer=DENIED,
                                         member=ok(200), admin=ok(200), hides=TOKEN_HIDDEN),
    "GET /api/v1/tokens/{token_id}/permissions": api(
        lambda w, c, t: c.get(f"/tokens/{w.token_for(t)}/permissions"), viewer=DENIED, member=ok(200),
        admin=ok(200), hides=TOKEN_HIDDEN),
    "DELETE /api/v1/tokens/{token_id}": api(
        lambda w, c, t: c.delete(f"/tokens/{w.fresh_token_for(t) if t == 'own' else w.viewer_token}"),
        viewer=DENIED, member=ok(204), admin=ok(204), hides=TOKEN_HIDDEN),

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

    # users: admins manage them (with a key restricted to nothing); every key reads its own user
    # (all the keys here are user admin's) and /me; signing in takes a password, not a key
    "POST /api/v1/users": admin_only(
        lambda w, c, t: c.post("/users", json={"username": w.name("person"), "role": "viewer"}), 201),
    "GET /api/v1/users": admin_only(lambda w, c, t: c.get("/users", params={"limit": 1000}), 200),
    "GET /api/v1/users/{username}": reader(lambda w, c, t: c.get(f"/users/{'admin' if t == 'own' else w.user}"),
                                           hides=USER_HIDDEN),
    # one's own account takes a key that is the whole user (here user admin: an unrestricted
    # admin key); a narrower key setting the password could sign in as all of the user
    "PATCH /api/v1/users/{username}": api(
        lambda w, c, t: c.patch(f"/users/{'admin' if t == 'own' else w.user}", json={"display_name": "Admin"}),
        viewer=DENIED, member=DENIED, admin=ok(200), restricted=RESTRICTED, hides=USER_HIDDEN),
    "DELETE /api/v1/users/{username}": admin_only(lambda w, c, t: c.delete(f"/users/{w.fresh_user()}"), 204),
    "GET /api/v1/me": reader(lambda w, c, t: c.get("/me"), check=_me),
    "POST /api/v1/auth/login": Row(_login, {who: (("own", ok(201)), ("wrong", BAD_PASSWORD)) for who in WHO}),

    # namespaces: user admin's own (every key here is admin's): a viewer key reads them, and
    # since it sees them, a write answers 403 namespace_access_denied; a key restricted to a
    # tool has no data grants, so on data it acts as its user
    "POST /api/v1/namespaces": writer(lambda w, c, t: c.post("/namespaces", json={"name": w.name("space")}), 201),
    "GET /api/v1/namespaces": reader(lambda w, c, t: c.get("/namespaces", params={"limit": 1000}),
                                     check=_lists_namespace),
    "GET /api/v1/namespaces/{ns}": reader(lambda w, c, t: c.get(f"/namespaces/{w.ns}"), check=_namespace_access),
    "PATCH /api/v1/namespaces/{ns}": data_writer(
        lambda w, c, t: c.patch(f"/namespaces/{w.ns}", json={"description": "the authz namespace"}), 200),
    "DELETE /api/v1/namespaces/{ns}": data_writer(lambda w, c, t: c.delete(f"/namespaces/{w.fresh_namespace()}"),
                                                  204),
    "GET /api/v1/namespaces/{ns}/members": reader(lambda w, c, t: c.get(f"/namespaces/{w.ns}/members")),
    "PUT /api/v1/namespaces/{ns}/members/{username}": data_writer(
        lambda w, c, t: c.put(f"/namespaces/{w.ns}/members/{w.user}", params={"access": "read"}), 200),
    "POST /api/v1/namespaces/{ns}/members": data_writer(
        lambda w, c, t: c.post(f"/namespaces/{w.ns}/members", json={"username": w.user, "access": "read"}), 201),
    "DELETE /api/v1/namespaces/{ns}/members/{username}": data_writer(
        lambda w, c, t: c.delete(f"/namespaces/{w.ns}/members/{w.fresh_member()}"), 204),

    # datasets
    "POST /api/v1/namespaces/{ns}/datasets": data_writer(
        lambda w, c, t: c.post(f"/namespaces/{w.ns}/datasets", json={"name": w.name("table")}), 201),
    "GET /api/v1/namespaces/{ns}/datasets": reader(lambda w, c, t: c.get(f"/namespaces/{w.ns}/datasets")),
    "GET /api/v1/datasets": reader(lambda w, c, t: c.get("/datasets", params={"namespace": w.ns})),
    "GET /api/v1/namespaces/{ns}/datasets/{ds}": reader(lambda w, c, t: c.get(f"/namespaces/{w.ns}/datasets/{w.ds}")),
    "PATCH /api/v1/namespaces/{ns}/datasets/{ds}": data_writer(
        lambda w, c, t: c.patch(f"/namespaces/{w.ns}/datasets/{w.ds}", json={"description": "people"}), 200),
    "POST /api/v1/namespaces/{ns}/datasets/{ds}/clear": data_writer(
        lambda w, c, t: c.post(f"/namespaces/{w.ns}/datasets/{w.fresh_dataset()}/clear"), 200),
    "DELETE /api/v1/namespaces/{ns}/datasets/{ds}": data_writer(
        lambda w, c, t: c.delete(f"/namespaces/{w.ns}/datasets/{w.fresh_dataset()}"), 204),
    "GET /api/v1/schema": reader(lambda w, c, t: c.get("/schema")),
    "GET /api/v1/schema/{ns}": reader(lambda w, c, t: c.get(f"/schema/{w.ns}")),
    "POST /api/v1/namespaces/{ns}/datasets/{ds}/rows": data_writer(
        lambda w, c, t: c.post(f"/namespaces/{w.ns}/datasets/{w.ds}/rows", json=ROWS[:1]), 201),

    # links: read by any key that reads both ends; made, recalculated and deleted by a member
    # key that reads both ends (a restricted key without data grants acts as its user)
    "GET /api/v1/links": reader(lambda w, c, t: c.get("/links", params={"namespace": w.ns})),
    "POST /api/v1/links": api(lambda w, c, t: c.post("/links", json=_link_body(w)), viewer=DENIED,
                              member=ok(200, 201), admin=ok(200, 201)),
    "POST /api/v1/links/preview": reader(lambda w, c, t: c.post("/links/preview", json=_link_body(w))),
    "POST /api/v1/links/recalculate": writer(
        lambda w, c, t: c.post("/links/recalculate", json={"namespace": w.ns, "link_id": _link_id(w)}), 200),
    "GET /api/v1/links/{link_id}": reader(lambda w, c, t: c.get(f"/links/{_link_id(w)}")),
    "GET /api/v1/links/{link_id}/pairs": reader(lambda w, c, t: c.get(f"/links/{_link_id(w)}/pairs")),
    "DELETE /api/v1/links/{link_id}": writer(lambda w, c, t: c.delete(f"/links/{_fresh_link(w)}"), 204),
    "GET /api/v1/namespaces/{ns}/datasets/{ds}/rows/{row_id}/linked": reader(
        lambda w, c, t: c.get(f"/namespaces/{w.ns}/datasets/{w.ds}/rows/1/linked")),
    # the namespace ontology: read (and curated without activating) by any key; changed by a member
    "GET /api/v1/namespaces/{ns}/ontology": reader(lambda w, c, t: c.get(f"/namespaces/{w.ns}/ontology")),
    "PATCH /api/v1/namespaces/{ns}/ontology": writer(
        lambda w, c, t: c.patch(f"/namespaces/{w.ns}/ontology", json={"add": [_link_id(w)]}), 200),
    "POST /api/v1/namespaces/{ns}/ontology/curate": reader(
        lambda w, c, t: c.post(f"/namespaces/{w.ns}/ontology/curate", json={})),

    # files and multipart uploads: an upload is its user's (here every key's); creating one,
    # getting its part URLs and aborting it take a member key; completing it writes to the dataset
    "POST /api/v1/namespaces/{ns}/datasets/{ds}/files": data_writer(
        lambda w, c, t: c.post(f"/namespaces/{w.ns}/datasets/files/files", files={"file": ("people.csv", CSV)}), 202),
    "POST /api/v1/uploads": writer(lambda w, c, t: c.post("/uploads", json={"filename": "x.csv", "size": 10}), 201),
    "GET /api/v1/uploads/{upload_id}": reader(lambda w, c, t: c.get(f"/uploads/{w.upload}")),
    "POST /api/v1/uploads/{upload_id}/urls": writer(
        lambda w, c, t: c.post(f"/uploads/{w.upload}/urls", json={"key": w.upload_key}), 200),
    "POST /api/v1/uploads/{upload_id}/complete": writer(lambda w, c, t: w.complete(c), 202),
    "DELETE /api/v1/uploads/{upload_id}": writer(lambda w, c, t: c.delete(f"/uploads/{w.fresh_upload()['id']}"), 204),
    # the signed part URL needs no key: whoever sends a correct part gets its ETag (sent again,
    # a part is overwritten), and a forged signature is refused whatever key comes with it
    "PUT /api/v1/uploads/{upload_id}/parts/{part_number}": Row(
        _put_part, {who: (("own", ok(200)), ("forged", FORGED)) for who in WHO}, check=_part_etag),

    # workflows and folders: a viewer reads, a member writes; a key restricted to some tools
    # or data can do nothing with them (their steps run with the user's access)
    "POST /api/v1/workflows": writer(lambda w, c, t: c.post("/workflows", json={"definition": {
        "name": w.name("flow").replace("_", "-"), "steps": [{"id": "s", "uses": w.tool}]}}), 201,
        restricted=RESTRICTED),
    "GET /api/v1/workflows": api(lambda w, c, t: c.get("/workflows"), viewer=ok(200), member=ok(200),
                                 admin=ok(200), restricted=RESTRICTED),
    "GET /api/v1/workflows/{workflow}": api(lambda w, c, t: c.get(f"/workflows/{w.workflow}"), viewer=ok(200),
                                            member=ok(200), admin=ok(200), restricted=RESTRICTED),
    "PATCH /api/v1/workflows/{workflow}": writer(lambda w, c, t: c.patch(f"/workflows/{w.workflow}", json={
        "folder_id": w.folder}), 200, restricted=RESTRICTED),
    "DELETE /api/v1/workflows/{workflow}": writer(lambda w, c, t: c.delete(f"/workflows/{w.fresh_workflow()}"),
                                                  204, restricted=RESTRICTED),
    "GET /api/v1/workflows/{workflow}/versions": api(
        lambda w, c, t: c.get(f"/workflows/{w.workflow}/versions"), viewer=ok(200), member=ok(200),
        admin=ok(200), restricted=RESTRICTED),
    "GET /api/v1/workflows/{workflow}/versions/{version}": api(
        lambda w, c, t: c.get(f"/workflows/{w.workflow}/versions/1"), viewer=ok(200), member=ok(200),
        admin=ok(200), restricted=RESTRICTED),
    "POST /api/v1/workflows/{workflow}/versions": writer(  # tag version 1
        lambda w, c, t: c.post(f"/workflows/{w.workflow}/versions", json={"version": 1, "tag": "stable"}), 200,
        restricted=RESTRICTED),
    "POST /api/v1/folders": writer(lambda w, c, t: c.post("/folders", json={"name": w.name("folder")}), 201,
                                   restricted=RESTRICTED),
    "GET /api/v1/folders": api(lambda w, c, t: c.get("/folders"), viewer=ok(200), member=ok(200), admin=ok(200),
                               restricted=RESTRICTED),
    "GET /api/v1/folders/{folder_id}": api(lambda w, c, t: c.get(f"/folders/{w.folder}"), viewer=ok(200),
                                           member=ok(200), admin=ok(200), restricted=RESTRICTED),
    "PATCH /api/v1/folders/{folder_id}": writer(lambda w, c, t: c.patch(f"/folders/{w.folder}", json={
        "description": "kept here"}), 200, restricted=RESTRICTED),
    "DELETE /api/v1/folders/{folder_id}": writer(lambda w, c, t: c.delete(f"/folders/{w.fresh_folder()}"), 204,
                                                 restricted=RESTRICTED),
    # a workflow run's definition: any key that sees the run (a restricted key sees no workflow run)
    "GET /api/v1/runs/{run_id}/definition": api(
        lambda w, c, t: c.get(f"/runs/{w.workflow_run}/definition"), viewer=ok(200), member=ok(200),
        admin=ok(200), restricted=hidden("run_not_found")),
    # input to a run that waits for none (a finished tool run): refused as a state conflict
    "POST /api/v1/runs/{run_id}/input": writer(
        lambda w, c, t: c.post(f"/runs/{w.run_for(t)}/input", json={"payload": {}}), 409, hides=RUN_HIDDEN),

    # schedules and webhooks: a member writes; every key here is user admin's, so each sees
    # admin's own; a restricted key can do nothing with them (they run with the user's access)
    "POST /api/v1/schedules": writer(
        lambda w, c, t: c.post("/schedules", json={"tool": w.tool, "cron": "0 4 * * *"}), 201, restricted=RESTRICTED),
    "GET /api/v1/schedules": api(lambda w, c, t: c.get("/schedules"), viewer=ok(200), member=ok(200),
                                 admin=ok(200), restricted=RESTRICTED),
    "GET /api/v1/schedules/{schedule_id}": api(lambda w, c, t: c.get(f"/schedules/{w.schedule}"), viewer=ok(200),
                                               member=ok(200), admin=ok(200), restricted=RESTRICTED),
    "GET /api/v1/schedules/{schedule_id}/next": api(
        lambda w, c, t: c.get(f"/schedules/{w.schedule}/next", params={"count": 3}), viewer=ok(200),
        member=ok(200), admin=ok(200), restricted=RESTRICTED),
    "PATCH /api/v1/schedules/{schedule_id}": writer(
        lambda w, c, t: c.patch(f"/schedules/{w.schedule}", json={"cron": "0 3 * * *"}), 200, restricted=RESTRICTED),
    "DELETE /api/v1/schedules/{schedule_id}": writer(
        lambda w, c, t: c.delete(f"/schedules/{w.fresh_schedule()}"), 204, restricted=RESTRICTED),
    "POST /api/v1/webhooks": writer(lambda w, c, t: c.post("/webhooks", json={"tool": w.tool}), 201,
                                    restricted=RESTRICTED),
    "GET /api/v1/webhooks": api(lambda w, c, t: c.get("/webhooks"), viewer=ok(200), member=ok(200),
                                admin=ok(200), restricted=RESTRICTED),
    "GET /api/v1/webhooks/{webhook_id}": api(lambda w, c, t: c.get(f"/webhooks/{w.webhook}"), viewer=ok(200),
                                             member=ok(200), admin=ok(200), restricted=RESTRICTED),
    "PATCH /api/v1/webhooks/{webhook_id}": writer(
        lambda w, c, t: c.patch(f"/webhooks/{w.webhook}", json={"rate_per_s": 1000}), 200, restricted=RESTRICTED),
    "DELETE /api/v1/webhooks/{webhook_id}": writer(
        lambda w, c, t: c.delete(f"/webhooks/{w.fresh_webhook()}"), 204, restricted=RESTRICTED),
    # email triggers: as schedules and webhooks (a member writes; a restricted key nothing);
    # the workspace's records, mail to no alias included, only an admin reads
    "POST /api/v1/email-triggers": writer(
        lambda w, c, t: c.post("/email-triggers", json={"tool": w.tool, "aliases": [w.fresh_address()]}), 201,
        restricted=RESTRICTED),
    "GET /api/v1/email-triggers": api(lambda w, c, t: c.get("/email-triggers"), viewer=ok(200), member=ok(200),
                                      admin=ok(200), restricted=RESTRICTED),
    "GET /api/v1/email-triggers/{trigger_id}": api(
        lambda w, c, t: c.get(f"/email-triggers/{w.email_trigger}"), viewer=ok(200), member=ok(200),
        admin=ok(200), restricted=RESTRICTED),
    "PATCH /api/v1/email-triggers/{trigger_id}": writer(
        lambda w, c, t: c.patch(f"/email-triggers/{w.email_trigger}", json={"allowed_senders": ["@example.com"]}),
        200, restricted=RESTRICTED),
    "DELETE /api/v1/email-triggers/{trigger_id}": writer(
        lambda w, c, t: c.delete(f"/email-triggers/{w.fresh_email_trigger()}"), 204, restricted=RESTRICTED),
    "POST /api/v1/email-triggers/{trigger_id}/aliases": writer(
        lambda w, c, t: c.post(f"/email-triggers/{w.email_trigger}/aliases", json={"address": w.fresh_address()}),
        201, restricted=RESTRICTED),
    "GET /api/v1/email-triggers/{trigger_id}/aliases": api(
        lambda w, c, t: c.get(f"/email-triggers/{w.email_trigger}/aliases"), viewer=ok(200), member=ok(200),
        admin=ok(200), restricted=RESTRICTED),
    "PATCH /api/v1/email-triggers/{trigger_id}/aliases/{alias_id}": writer(
        lambda w, c, t: c.patch(f"/email-triggers/{w.email_trigger}/aliases/{w.fresh_email_alias()}",
                                json={"address": w.fresh_address()}), 200, restricted=RESTRICTED),
    "DELETE /api/v1/email-triggers/{trigger_id}/aliases/{alias_id}": writer(
        lambda w, c, t: c.delete(f"/email-triggers/{w.email_trigger}/aliases/{w.fresh_email_alias()}"), 204,
        restricted=RESTRICTED),
    "GET /api/v1/email-triggers/{trigger_id}/records": api(
        lambda w, c, t: c.get(f"/email-triggers/{w.email_trigger}/records"), viewer=ok(200), member=ok(200),
        admin=ok(200), restricted=RESTRICTED),
    "GET /api/v1/email-records": api(lambda w, c, t: c.get("/email-records"), viewer=DENIED, member=DENIED,
                                     admin=ok(200), restricted=DENIED),
    # a hook's URL is its credential: whoever calls it starts a run (a key counts for nothing),
    # and an unknown token is 404 whatever key comes with it
    "POST /hooks/{token}": Row(_call_hook, {who: (("own", ok(202)), ("unknown", hidden("not_found"))) for who in WHO}),

    # ingestions: read with the dataset; retried and cancelled with write access to it
    "GET /api/v1/namespaces/{ns}/datasets/{ds}/ingestions": reader(
        lambda w, c, t: c.get(f"/namespaces/{w.ns}/datasets/files/ingestions")),
    "GET /api/v1/ingestions/{ingestion_id}": reader(lambda w, c, t: c.get(f"/ingestions/{w.ingestion}")),
    "GET /api/v1/ingestions/{ingestion_id}/wait": reader(
        lambda w, c, t: c.get(f"/ingestions/{w.ingestion}/wait", params={"timeout": 0})),
    "GET /api/v1/ingestions/{ingestion_id}/rejects": reader(lambda w, c, t: c.get(f"/ingestions/{w.ingestion}/rejects")),
    "POST /api/v1/ingestions/{ingestion_id}/seen": reader(lambda w, c, t: c.post(f"/ingestions/{w.ingestion}/seen")),
    "POST /api/v1/ingestions/{ingestion_id}/retry": data_writer(
        lambda w, c, t: c.post(f"/ingestions/{w.fresh_failed_ingestion()}/retry"), 200),
    "POST /api/v1/ingestions/{ingestion_id}/cancel": api(  # a finished one: authorized, then answered as it is
        lambda w, c, t: c.post(f"/ingestions/{w.ingestion}/cancel"), viewer=NS_DENIED, member=FINISHED,
        admin=FINISHED),

    # previews, inference and queries read; usage is each user's own (an admin's: the workspace's)
    "POST /api/v1/ingest/preview": reader(lambda w, c, t: c.post("/ingest/preview", json={"rows": ROWS})),
    "POST /api/v1/infer-schema": reader(lambda w, c, t: c.post("/infer-schema", json={"rows": ROWS})),
    "POST /api/v1/query": reader(
        lambda w, c, t: c.post("/query", json={"query": f'SELECT count(*) AS n FROM "{w.ns}"."{w.ds}"'})),
    "GET /api/v1/usage": reader(lambda w, c, t: c.get("/usage")),
    "GET /api/v1/ingestions/{ingestion_id}/entities": reader(
        lambda w, c, t: c.get(f"/ingestions/{w.ingestion}/entities")),

    # language-model providers: admins only (a key restricted to nothing); the model features
    # read with the data (with no provider, infer-description answers from the statistics)
    "POST /api/v1/llm/providers": admin_only(lambda w, c, t: c.post("/llm/providers", json={
        "name": w.name("prov"), "base_url": "https://93.184.216.34/v1", "default_model": "m", "default": False}), 201),
    "GET /api/v1/llm/providers": admin_only(lambda w, c, t: c.get("/llm/providers"), 200),
    "GET /api/v1/llm/providers/{provider}": admin_only(
        lambda w, c, t: c.get(f"/llm/providers/{w.fresh_provider()}"), 200),
    "PATCH /api/v1/llm/providers/{provider}": admin_only(
        lambda w, c, t: c.patch(f"/llm/providers/{w.fresh_provider()}", json={"default_model": "m2"}), 200),
    "DELETE /api/v1/llm/providers/{provider}": admin_only(
        lambda w, c, t: c.delete(f"/llm/providers/{w.fresh_provider()}"), 204),
    "POST /api/v1/namespaces/{ns}/datasets/{ds}/infer-description": reader(
        lambda w, c, t: c.post(f"/namespaces/{w.ns}/datasets/{w.ds}/infer-description", json={})),
    # cleaning: read the source, write in the output namespace (a viewer key is told so before
    # the missing provider); a task is read with its source (none exists here: no provider)
    "POST /api/v1/namespaces/{ns}/datasets/{ds}/cleaning": api(
        lambda w, c, t: c.post(f"/namespaces/{w.ns}/datasets/{w.ds}/cleaning", json={
            "prompts": ["trim"], "output_namespace": w.ns, "output_dataset": w.name("cleaned")}),
        viewer=NS_DENIED, member=NO_MODEL, admin=NO_MODEL),
    "GET /api/v1/namespaces/{ns}/datasets/{ds}/cleaning/{task_id}": api(
        lambda w, c, t: c.get(f"/namespaces/{w.ns}/datasets/{w.ds}/cleaning/cln_00000000000000000000000000"),
        viewer=NO_TASK, member=NO_TASK, admin=NO_TASK),
    # ask / autorag: any key that reads data; the shared server has no provider, so every
    # caller with a key hears how to configure one
    "POST /api/v1/ask": api(lambda w, c, t: c.post("/ask", json={"query": "how many?", "namespace": w.ns}),
                            viewer=NO_MODEL, member=NO_MODEL, admin=NO_MODEL),
    "POST /api/v1/autorag": api(lambda w, c, t: c.post("/autorag", json={"query": "how many?", "namespace": w.ns}),
                                viewer=NO_MODEL, member=NO_MODEL, admin=NO_MODEL),
    "GET /api/v1/usage/daily": reader(lambda w, c, t: c.get("/usage/daily")),
    # the workspace's plan: any key reads it; only the operator (the bootstrap admin user,
    # whose key the admin column uses) sets it — setting "unlimited" keeps the server's default
    "GET /api/v1/workspace/plan": reader(lambda w, c, t: c.get("/workspace/plan")),
    "PUT /api/v1/workspace/plan": admin_only(lambda w, c, t: c.put("/workspace/plan", json={"plan": "unlimited"}), 200),

    # connections: admins (a key restricted to nothing) manage, check and read metadata; any
    # unrestricted key lists and reads them (secret parts as references only)
    "POST /api/v1/connections": admin_only(lambda w, c, t: c.post("/connections", json={
        "name": w.name("conn").replace("_", "-"), "type": "http", "config": {"base_url": "https://93.184.216.34/"}}),
        201),
    "GET /api/v1/connections": api(lambda w, c, t: c.get("/connections"), viewer=ok(200), member=ok(200),
                                   admin=ok(200), restricted=RESTRICTED),
    "GET /api/v1/connections/{connection}": api(lambda w, c, t: c.get(f"/connections/{w.fresh_connection()}"),
                                                viewer=ok(200), member=ok(200), admin=ok(200), restricted=RESTRICTED),
    "PATCH /api/v1/connections/{connection}": admin_only(
        lambda w, c, t: c.patch(f"/connections/{w.fresh_connection()}", json={"config": {"timeout_s": 2}}), 200),
    "DELETE /api/v1/connections/{connection}": admin_only(
        lambda w, c, t: c.delete(f"/connections/{w.fresh_connection()}"), 204),
    "POST /api/v1/connections/{connection}/verify": admin_only(
        lambda w, c, t: c.post(f"/connections/{w.fresh_connection()}/verify"), 200),
    "GET /api/v1/connections/{connection}/metadata": api(
        lambda w, c, t: c.get(f"/connections/{w.fresh_connection()}/metadata"), viewer=DENIED, member=DENIED,
        admin=Expect(frozenset({502}), "connection_unreachable"), restricted=DENIED),
    # MCP tools of verified mcp connections: members list and execute (running a tool); a key
    # restricted to some tools reaches none (no verified server here: the alias is not found)
    "GET /api/v1/mcp-tools": api(lambda w, c, t: c.get("/mcp-tools"), viewer=DENIED, member=ok(200),
                                 admin=ok(200), restricted=RESTRICTED),
    "POST /api/v1/mcp-tools/{alias}/execute": api(
        lambda w, c, t: c.post("/mcp-tools/mcp_nosuch_tool/execute", json={"parameters": {}}), viewer=DENIED,
        member=hidden("mcp_tool_not_found"), admin=hidden("mcp_tool_not_found"), restricted=RESTRICTED),
    # workspace files: viewers read, members write; a restricted key reaches none
    "GET /api/v1/workspace/files": api(lambda w, c, t: c.get("/workspace/files"), viewer=ok(200), member=ok(200),
                                       admin=ok(200), restricted=RESTRICTED),
    "POST /api/v1/workspace/files": writer(
        lambda w, c, t: c.post("/workspace/files", data={"name": f"{w.name('file')}.txt"},
                               files={"file": ("f.txt", b"hello", "text/plain")}), 201, restricted=RESTRICTED),
    "GET /api/v1/workspace/files/{name}": api(lambda w, c, t: c.get(f"/workspace/files/{_workspace_file(w)}"),
                                              viewer=ok(200), member=ok(200), admin=ok(200), restricted=RESTRICTED),
    "DELETE /api/v1/workspace/files/{name}": writer(
        lambda w, c, t: c.delete(f"/workspace/files/{_workspace_file(w)}"), 204, restricted=RESTRICTED),
    "GET /api/v1/workspace/storage": api(lambda w, c, t: c.get("/workspace/storage"), viewer=ok(200),
                                         member=ok(200), admin=ok(200), restricted=RESTRICTED),
    # ingest proxy runs: a member starts one (a key restricted to tools cannot); every key of the
    # user who started it reads it, a restricted key finds none; a finished run waits on no hook
    "POST /api/v1/ingest-proxy/runs": writer(lambda w, c, t: c.post("/ingest-proxy/runs", json={
        "namespace": w.ns, "data": [{"a": 1}], "model": False, "ingest": False}), 201, restricted=RESTRICTED),
    "GET /api/v1/ingest-proxy/runs/{run_id}": api(lambda w, c, t: c.get(f"/ingest-proxy/runs/{_proxy_run(w)}"),
                                                  viewer=ok(200), member=ok(200), admin=ok(200),
                                                  restricted=hidden(RUN_HIDDEN)),
    "GET /api/v1/ingest-proxy/runs/{run_id}/stream": api(
        lambda w, c, t: c.get(f"/ingest-proxy/runs/{_proxy_run(w)}/stream"), viewer=ok(200), member=ok(200),
        admin=ok(200), restricted=hidden(RUN_HIDDEN)),
    "GET /api/v1/ingest-proxy/runs/{run_id}/trace": api(
        lambda w, c, t: c.get(f"/ingest-proxy/runs/{_proxy_run(w)}/trace"), viewer=ok(200), member=ok(200),
        admin=ok(200), restricted=hidden(RUN_HIDDEN)),
    "POST /api/v1/ingest-proxy/runs/{run_id}/hook": writer(
        lambda w, c, t: c.post(f"/ingest-proxy/runs/{_proxy_run(w)}/hook", json={"kind": "schema_review",
                                                                                 "approved": True}),
        409, restricted=hidden(RUN_HIDDEN)),
}


def _proxy_run(w: World) -> str:
    """A finished ingest proxy run of user admin's (made once; its stream read to the end)."""
    if not getattr(w, "_proxy_run_id", None):
        run = _ok(w.admin.post("/ingest-proxy/runs", json={"namespace": w.ns, "data": [{"a": 1}], "model": False,
                                                            "ingest": False}))
        w.admin.get(f"/ingest-proxy/runs/{run['id']}/stream", timeout=60)
        w._proxy_run_id = run["id"]  # type: ignore[attr-defined]
    return str(w._proxy_run_id)  # type: ignore[attr-defined]


def app_routes() -> set[str]:
    """``METHOD path`` of every route of the app, walked as FastAPI nests them, and the fast lane."""
    app = create_fastapi(SimpleNamespace(settings=SimpleNamespace(requests_per_minute=0)))  # type: ignore[arg-type]
    keys = {FAST_LANE}
    for route in iter_routes(app):
        path = getattr(route, "path_format", None) or route.path
        if path.startswith("/compat/"):
            continue  # the compatibility routes: tests/compat checks each refuses a caller without a key
        if path.startswith("/ui"):
            continue  # the web UI: a session cookie, not a key; tests/ui/test_ui_security.py checks each route
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
                label = f"{key} as {who}" + (f" ({target} resource)" if who == "restricted" or target != "own"
                                             else "")
                if not expect.matches(response):
                    failures.append(f"{label}: expected {expect}, got {response.status_code} "
                                    f"{_code(response) or response.text[:200]}")
                elif row.check is not None and response.is_success:
                    try:
                        row.check(world, who, target, response)
                    except AssertionError as exc:
                        failures.append(f"{label}: {exc}")
    assert not failures, "\n".join(failures)


def test_other_users_are_hidden_from_non_admin_keys(world: World) -> None:
    """Every key here is user admin's: it reads its own user (the table); another user is an
    admin key's to read and change, and does not exist for the others, whatever the verb."""
    for who in ("viewer", "member", "restricted"):
        client = world.clients[who]
        for response in (client.get(f"/users/{world.user}"),
                         client.patch(f"/users/{world.user}", json={"display_name": "not yours"})):
            assert response.status_code == 404 and _code(response) == USER_HIDDEN, (who, response.text)
    admin = world.clients["admin"]
    assert admin.get(f"/users/{world.user}").status_code == 200
    assert admin.patch(f"/users/{world.user}", json={"display_name": "Person"}).json()["display_name"] == "Person"
