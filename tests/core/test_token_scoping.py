"""Token scoping (issue 12, part 2; grants: issue 15): a key cannot mint a broader key, a
restricted key reaches only the secrets its tools declare and cannot widen that by
redeploying its tool, a key granted one namespace reaches that namespace only (held by id,
through a rename), and everything hidden from a restricted key answers 404 to every verb."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.support.api import deploy, error_code, run, wait_status

ECHO = "def main(x: int = 1):\n    return x\n"


def _token(api: httpx.Client, name: str, role: str = "member", tools: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "role": role}
    if tools is not None:
        body["restrictions"] = {"tools": tools}
    r = api.post("/tokens", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _all(client: httpx.Client, path: str, limit: int = 1000, **filters: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {**filters, "limit": limit, **({"cursor": cursor} if cursor else {})}
        r = client.get(path, params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def test_a_key_cannot_mint_a_broader_key(server, api, unique):
    a, b = f"a-{unique}", f"b-{unique}"
    deploy(api, a, ECHO)
    deploy(api, b, ECHO)
    restricted_admin = _token(api, f"radmin-{unique}", "admin", [a])
    broad_member = _token(api, f"member-{unique}", "member")
    other_side = _token(api, f"b-only-{unique}", "member", [b])
    with server.client(restricted_admin["key"]) as r:
        # The attack of the issue: an admin restricted to one tool mints an unrestricted admin.
        for body in ({"name": "x", "role": "admin"},
                     {"name": "x", "role": "member"},
                     {"name": "x", "role": "admin", "restrictions": {"tools": []}},  # empty = all tools
                     {"name": "x", "role": "admin", "restrictions": {}},
                     {"name": "x", "role": "viewer", "restrictions": {"tools": [a, b]}},
                     {"name": "x", "role": "viewer", "restrictions": {"tools": [b]}}):
            denied = r.post("/tokens", json=body)
            assert denied.status_code == 403 and error_code(denied) == "token_escalation", (body, denied.text)
            assert denied.json()["error"]["details"]["field"] in ("role", "restrictions")
        # At least as restricted: allowed, and the new key really is restricted.
        minted_admin = r.post("/tokens", json={"name": f"m1-{unique}", "role": "admin",
                                               "restrictions": {"tools": [a]}})
        assert minted_admin.status_code == 201, minted_admin.text
        minted = r.post("/tokens", json={"name": f"m2-{unique}", "role": "viewer", "restrictions": {"tools": [a]}})
        assert minted.status_code == 201 and minted.json()["restrictions"]["tools"] == [a]
        with server.client(minted_admin.json()["key"]) as m:
            assert {t["name"] for t in _all(m, "/tools")} == {a}
            assert error_code(m.post("/tokens", json={"name": "x", "role": "admin"})) == "token_escalation"

        # Tokens it could not have created are hidden from it: not listed, 404 on every verb.
        listed = {t["id"] for t in _all(r, "/tokens")}
        assert listed == {restricted_admin["id"], minted_admin.json()["id"], minted.json()["id"]}
        paged = {t["id"] for t in _all(r, "/tokens", limit=1)}  # the same set one by one, by cursor
        assert paged == listed
        assert r.get("/tokens", params={"include_total": True}).json()["total"] == 3
        for hidden in (broad_member["id"], other_side["id"]):
            for response in (r.get(f"/tokens/{hidden}"), r.delete(f"/tokens/{hidden}")):
                assert response.status_code == 404 and error_code(response) == "token_not_found"
        assert error_code(r.get("/tokens/tok_doesnotexist")) == "token_not_found"
        assert r.get(f"/tokens/{minted.json()['id']}").status_code == 200
        assert r.delete(f"/tokens/{minted.json()['id']}").status_code == 204
    with server.client(broad_member["key"]) as still:  # the hidden token was not revoked
        assert still.get("/tools").status_code == 200
    # An unrestricted admin may restrict freely, and sees every token.
    assert _token(api, f"free-{unique}", "viewer", [b])["restrictions"]["tools"] == [b]
    everything = {t["id"] for t in _all(api, "/tokens")}
    assert {broad_member["id"], other_side["id"], restricted_admin["id"]} <= everything


def test_an_expiring_key_cannot_mint_a_longer_lived_one(server, api, unique):
    now = datetime.now(UTC)
    short = api.post("/tokens", json={"name": f"short-{unique}", "role": "admin",
                                      "expires_at": (now + timedelta(hours=1)).isoformat()})
    assert short.status_code == 201, short.text
    with server.client(short.json()["key"]) as s:
        for expires_at in (None, (now + timedelta(hours=2)).isoformat()):
            denied = s.post("/tokens", json={"name": "x", "role": "viewer", "expires_at": expires_at})
            assert denied.status_code == 403 and error_code(denied) == "token_escalation", denied.text
            assert denied.json()["error"]["details"]["field"] == "expires_at"
        ok = s.post("/tokens", json={"name": f"shorter-{unique}", "role": "admin",
                                     "expires_at": (now + timedelta(minutes=30)).isoformat()})
        assert ok.status_code == 201, ok.text


def test_a_namespace_grant_reaches_that_namespace_only(server, api, unique):
    mine, other, renamed = f"granted_{unique}", f"other_{unique}", f"renamed_{unique}"
    for ns in (mine, other):
        assert api.post("/namespaces", json={"name": ns}).status_code == 201
        stored = api.post(f"/namespaces/{ns}/datasets/people/rows", params={"create": True}, json=[{"id": 1}])
        assert stored.status_code == 201, stored.text
    token = api.post("/tokens", json={"name": f"grant-{unique}", "role": "member",
                                      "restrictions": {"grants": [{"namespace": mine, "access": "read"}]}})
    assert token.status_code == 201, token.text
    assert token.json()["restrictions"]["grants"] == [{"namespace": mine, "dataset": None, "access": "read"}]
    with server.client(token.json()["key"]) as g:
        # It sees its namespace, read only, and nothing else of the user's.
        assert {n["name"] for n in _all(g, "/namespaces")} & {mine, other} == {mine}
        assert g.get(f"/namespaces/{mine}").json()["access"] == "read"
        assert {(d["namespace"], d["name"]) for d in _all(g, "/datasets")} == {(mine, "people")}
        assert [d["namespace"] for d in g.get("/schema").json()["datasets"]] == [mine]
        assert g.get(f"/namespaces/{mine}/datasets/people").json()["rows"] == 1
        read = g.post("/query", json={"query": f'SELECT count(*) AS n FROM "{mine}"."people"'})
        assert read.status_code == 200 and read.json()["rows"] == [{"n": 1}], read.text
        # It cannot write it: it sees it, so 403.
        for denied in (g.post(f"/namespaces/{mine}/datasets/people/rows", json=[{"id": 2}]),
                       g.patch(f"/namespaces/{mine}/datasets/people", json={"description": "mine now"}),
                       g.post(f"/namespaces/{mine}/datasets", json={"name": "more"}),
                       g.post(f"/namespaces/{mine}/datasets/people/clear"),
                       g.delete(f"/namespaces/{mine}/datasets/people"),
                       g.patch(f"/namespaces/{mine}", json={"description": "mine now"}),
                       g.delete(f"/namespaces/{mine}", params={"force": True})):
            assert denied.status_code == 403 and error_code(denied) == "namespace_access_denied", denied.text
        # The user's other namespace is not there for it, whatever the verb.
        for hidden in (g.get(f"/namespaces/{other}"), g.get(f"/namespaces/{other}/datasets"),
                       g.get(f"/namespaces/{other}/datasets/people"), g.get(f"/schema/{other}"),
                       g.post(f"/namespaces/{other}/datasets/people/rows", json=[{"id": 2}]),
                       g.patch(f"/namespaces/{other}", json={"description": "x"}),
                       g.delete(f"/namespaces/{other}", params={"force": True})):
            assert hidden.status_code == 404 and error_code(hidden) == "namespace_not_found", hidden.text
        query = g.post("/query", json={"query": f'SELECT count(*) FROM "{other}"."people"'})
        assert query.status_code == 403 and error_code(query) == "dataset_access_denied", query.text
        # A new namespace would be outside its grants.
        made = g.post("/namespaces", json={"name": f"new_{unique}"})
        assert made.status_code == 403 and error_code(made) == "restricted", made.text
        # It cannot mint a key reaching further: no grants (all the user's data), write, another namespace.
        for restrictions in ({}, {"grants": [{"namespace": mine, "access": "write"}]},
                             {"grants": [{"namespace": other, "access": "read"}]},
                             {"grants": [{"namespace": mine}, {"namespace": other}]},
                             {"tools": [], "grants": [{"namespace": mine, "dataset": "people", "access": "write"}]}):
            denied = g.post("/tokens", json={"name": "x", "role": "viewer", "restrictions": restrictions})
            assert denied.status_code == 403 and error_code(denied) == "token_escalation", (restrictions, denied.text)
            assert denied.json()["error"]["details"]["field"] == "restrictions"
        narrower = g.post("/tokens", json={"name": f"narrower-{unique}", "role": "viewer", "restrictions": {
            "grants": [{"namespace": mine, "dataset": "people", "access": "read"}]}})
        assert narrower.status_code == 201, narrower.text
    # Renamed, the namespace keeps the key's access (held by id); a new namespace under the old
    # name is not reachable.
    assert api.patch(f"/namespaces/{mine}", json={"name": renamed}).status_code == 200
    assert api.post("/namespaces", json={"name": mine}).status_code == 201
    with server.client(token.json()["key"]) as g:
        assert g.get(f"/namespaces/{renamed}").json()["access"] == "read"
        assert g.get(f"/namespaces/{renamed}/datasets/people").status_code == 200
        gone = g.get(f"/namespaces/{mine}")
        assert gone.status_code == 404 and error_code(gone) == "namespace_not_found"
    assert api.get(f"/tokens/{token.json()['id']}").json()["restrictions"]["grants"] == [
        {"namespace": renamed, "dataset": None, "access": "read"}]
    permissions = api.get(f"/tokens/{token.json()['id']}/permissions").json()
    assert permissions["namespaces"] == [{"namespace": renamed, "access": "read", "datasets": {}}]


def test_a_restricted_admin_key_cannot_manage_users(server, api, unique):
    a = f"a-{unique}"
    deploy(api, a, ECHO)
    other = f"someone-{unique}"
    assert api.post("/users", json={"username": other, "role": "viewer"}).status_code == 201
    key = _token(api, f"radmin-{unique}", "admin", [a])["key"]
    with server.client(key) as r:
        for denied in (r.post("/users", json={"username": f"new-{unique}"}), r.get("/users"),
                       r.patch(f"/users/{other}", json={"role": "admin"}), r.delete(f"/users/{other}")):
            assert denied.status_code in (403, 404), denied.text
            assert error_code(denied) in ("restricted", "user_not_found"), denied.text
        assert error_code(r.post("/users", json={"username": f"new-{unique}"})) == "restricted"
        assert error_code(r.get("/users")) == "restricted"
        assert r.get("/users/admin").status_code == 200  # its own user
        hidden = r.get(f"/users/{other}")
        assert hidden.status_code == 404 and error_code(hidden) == "user_not_found"
    assert api.get(f"/users/{other}").json()["role"] == "viewer"


def test_a_key_narrower_than_its_user_cannot_set_the_users_password(server, api, unique):
    """Signing in gives a key with the user's whole role and no restrictions: a key that is
    narrower than its user (a lower role, restricted to a tool or to some data) setting the
    user's password could take the user over."""
    a = f"a-{unique}"
    deploy(api, a, ECHO)
    boss = f"boss-{unique}"
    assert api.post("/users", json={"username": boss, "role": "admin"}).status_code == 201
    answers = {}
    for body in ({"role": "viewer"}, {"role": "member"}, {"role": "admin", "restrictions": {"tools": [a]}}):
        key = api.post("/tokens", json={"name": f"k-{unique}", "user": boss, **body}).json()["key"]
        with server.client(key) as k:
            answers[repr(body)] = k.patch(f"/users/{boss}", json={"password": f"taken-over-{unique}"}).status_code
    assert set(answers.values()) == {403}, answers
    assert api.get(f"/users/{boss}").json()["has_password"] is False


def _masked(api: httpx.Client, name: str) -> str | None:
    return next((s["masked_value"] for s in _all(api, "/secrets") if s["name"] == name), None)


def test_restricted_key_reaches_only_its_tools_secrets(server, api, unique):
    mine, theirs, loose, unset = (f"MINE_{unique}", f"THEIRS_{unique}", f"LOOSE_{unique}", f"LATER_{unique}")
    for name in (mine, theirs, loose):
        assert api.put(f"/secrets/{name}", json={"value": f"{name.lower()}-original-value"}).status_code == 200
    a, b = f"a-{unique}", f"b-{unique}"
    deploy(api, a, ECHO, required_secrets=[mine, unset])
    deploy(api, b, ECHO, required_secrets=[theirs])
    key = _token(api, f"r-{unique}", "member", [a])["key"]
    theirs_before = _masked(api, theirs)
    with server.client(key) as r:
        # Lists show only what its tools declare (and is set).
        assert {s["name"] for s in _all(r, "/secrets")} == {mine}
        assert r.get("/secrets", params={"include_total": True}).json()["total"] == 1
        # Others' secrets, set or not, are not there for it: the same 404 either way.
        for name in (theirs, loose, f"NOPE_{unique}"):
            put = r.put(f"/secrets/{name}", params={"force": True}, json={"value": "attacker-value-123456"})
            assert put.status_code == 404 and error_code(put) == "secret_not_found", put.text
            gone = r.delete(f"/secrets/{name}")
            assert gone.status_code == 404 and error_code(gone) == "secret_not_found"
        # Its own tool's secrets: it may overwrite, create and delete them.
        assert r.put(f"/secrets/{mine}", params={"force": True}, json={"value": "rotated-by-member-0001"}).status_code == 200
        assert r.put(f"/secrets/{unset}", json={"value": "set-by-member-00002"}).status_code == 200
        assert {s["name"] for s in _all(r, "/secrets")} == {mine, unset}
        assert r.delete(f"/secrets/{unset}").status_code == 204
    # The others are untouched.
    assert _masked(api, theirs) == theirs_before and _masked(api, loose) is not None
    assert _masked(api, mine) == "ro…0001"
    # A restricted viewer may list (metadata only) within the same scope, and write nothing.
    viewer = _token(api, f"rv-{unique}", "viewer", [a])["key"]
    with server.client(viewer) as v:
        assert {s["name"] for s in _all(v, "/secrets")} == {mine}
        assert error_code(v.put(f"/secrets/{mine}", params={"force": True}, json={"value": "x"})) == "insufficient_role"
        assert error_code(v.delete(f"/secrets/{mine}")) == "insufficient_role"


def test_redeploying_its_own_tool_does_not_widen_a_restricted_key(server, api, unique):
    """The issue's escalation: a member restricted to one tool redeploys it. It may change
    the code, but not declare secrets beyond those its tools already declare."""
    mine, theirs = f"MINE_{unique}", f"THEIRS_{unique}"
    api.put(f"/secrets/{mine}", json={"value": "mine-value-0123456789"})
    api.put(f"/secrets/{theirs}", json={"value": "theirs-value-9876543210"})
    a, b = f"a-{unique}", f"b-{unique}"
    deploy(api, a, ECHO, required_secrets=[mine])
    deploy(api, b, ECHO, required_secrets=[theirs])
    key = _token(api, f"r-{unique}", "member", [a])["key"]
    peek = ("import os\n"
            "def main():\n"
            f"    return sorted(k for k in os.environ if k.endswith('_{unique}'))\n")
    with server.client(key) as r:
        for attempt in (
            r.post("/tools", json={"name": a, "code": peek, "required_secrets": [mine, theirs]}),
            r.patch(f"/tools/{a}", json={"required_secrets": [theirs]}),
            r.patch(f"/tools/{a}", json={"code": peek, "required_secrets": [mine, f" {theirs} "]}),
            r.post("/tools", files={"file": ("main.py", peek.encode())},
                   data={"config": f'{{"name": "{a}", "required_secrets": ["{theirs}"]}}'}),
        ):
            assert attempt.status_code == 403 and error_code(attempt) == "restricted", attempt.text
            assert attempt.json()["error"]["details"]["secrets"] == [theirs]
        assert api.get(f"/tools/{a}").json()["version"] == 1  # nothing was deployed
        # A new tool under another name is refused the same way whether or not it exists.
        for name in (b, f"new-{unique}"):
            denied = r.post("/tools", json={"name": name, "code": ECHO})
            assert denied.status_code == 403 and error_code(denied) == "restricted"
        assert api.get(f"/tools/{b}").json()["version"] == 1
        assert error_code(api.get(f"/tools/new-{unique}")) == "tool_not_found"
        # The legit path: new code, keeping (or narrowing) what it declares.
        redeployed = r.post("/tools", json={"name": a, "code": peek, "required_secrets": [mine]})
        assert redeployed.status_code == 200 and redeployed.json()["version"] == 2
        assert run(r, a)["output"] == [mine]  # its run sees its own secret only
        assert r.patch(f"/tools/{a}", json={"description": "still mine"}).status_code == 200
        narrowed = r.patch(f"/tools/{a}", json={"required_secrets": []})
        assert narrowed.status_code == 200 and narrowed.json()["required_secrets"] == []
        # Having dropped it, the key no longer reaches it, and cannot declare it back.
        assert _all(r, "/secrets") == []
        again = r.patch(f"/tools/{a}", json={"required_secrets": [mine]})
        assert again.status_code == 403 and error_code(again) == "restricted"
    # An unrestricted member may declare any secret.
    assert api.patch(f"/tools/{a}", json={"required_secrets": [mine, theirs]}).status_code == 200


def test_hidden_tools_answer_404_to_every_verb(server, api, unique):
    a, b = f"a-{unique}", f"b-{unique}"
    deploy(api, a, ECHO)
    hidden = deploy(api, b, ECHO)
    key = _token(api, f"r-{unique}", "member", [a])["key"]
    with server.client(key) as r:
        for ref in (b, hidden["id"], f"missing-{unique}"):
            for response in (r.get(f"/tools/{ref}"), r.get(f"/tools/{ref}/versions"),
                             r.get(f"/tools/{ref}/versions/1"), r.get(f"/tools/{ref}/versions/99"),
                             r.patch(f"/tools/{ref}", json={"description": "mine now"}),
                             r.patch(f"/tools/{ref}", json={"code": ECHO.replace("x", "y")}),
                             r.delete(f"/tools/{ref}"),
                             r.post("/runs", json={"tool": ref}),
                             r.post("/runs", json={"tool": ref, "requires_confirmation": True})):
                assert response.status_code == 404, (ref, response.request.method, response.text)
                assert error_code(response) == "tool_not_found"
        assert r.get(f"/tools/{a}/versions/1").status_code == 200
    tool = api.get(f"/tools/{b}").json()
    assert tool["version"] == 1 and tool["description"] == hidden["description"]
    assert _all(api, "/runs", tool=b) == []


def test_hidden_runs_answer_404_to_every_verb(server, api, unique):
    a, b = f"a-{unique}", f"b-{unique}"
    deploy(api, a, ECHO)
    deploy(api, b, "from pathlib import Path\nimport os\n"
                   "def main(x: int = 1):\n"
                   "    Path(os.environ['RUNYARD_OUTPUT_DIR'], 'out.txt').write_text('hi')\n"
                   "    print('log line')\n"
                   "    return x\n")
    finished = run(api, b)
    assert finished["status"] == "succeeded"
    waiting = api.post("/runs", json={"tool": b, "requires_confirmation": True}).json()
    assert waiting["status"] == "awaiting_confirmation"
    key = _token(api, f"r-{unique}", "member", [a])["key"]
    with server.client(key) as r:
        def verbs(run_id: str) -> list[httpx.Response]:
            return [
                r.get(f"/runs/{run_id}"), r.get(f"/runs/{run_id}", params={"expand": "inputs"}),
                r.get(f"/runs/{run_id}/wait", params={"timeout": 0}),
                r.get(f"/runs/{run_id}/logs"), r.get(f"/runs/{run_id}/logs", params={"follow": True}),
                r.get(f"/runs/{run_id}/trace"), r.get(f"/runs/{run_id}/artifacts"),
                r.get(f"/runs/{run_id}/artifacts.zip"), r.get(f"/runs/{run_id}/artifacts/out.txt"),
                r.post(f"/runs/{run_id}/confirm"), r.post(f"/runs/{run_id}/cancel", params={"wait": 0}),
                r.post(f"/runs/{run_id}/rerun"), r.post(f"/runs/{run_id}/rerun", params={"version": "latest"}),
                r.post(f"/runs/{run_id}/files", files={"x": ("x.txt", b"1")}),
            ]

        absent = verbs("run_doesnotexist")
        for run_id in (finished["id"], waiting["id"]):
            for response, reference in zip(verbs(run_id), absent, strict=True):
                where = (response.request.method, str(response.request.url))
                assert response.status_code == 404 == reference.status_code, (where, response.text)
                assert error_code(response) == "run_not_found" == error_code(reference), where
                assert response.json()["error"]["message"] == reference.json()["error"]["message"].replace(
                    "run_doesnotexist", run_id)
        assert {x["id"] for x in _all(r, "/runs")}.isdisjoint({finished["id"], waiting["id"]})
        # Its own runs: every verb works.
        own = r.post("/runs", json={"tool": a, "requires_confirmation": True}).json()
        assert r.post(f"/runs/{own['id']}/confirm").status_code == 200
        assert wait_status(r, own["id"], {"succeeded"})["status"] == "succeeded"
        rerun = r.post(f"/runs/{own['id']}/rerun", params={"wait": 30})
        assert rerun.status_code == 201 and rerun.json()["parent_run_id"] == own["id"]
        pending = r.post("/runs", json={"tool": a, "requires_confirmation": True}).json()
        assert r.post(f"/runs/{pending['id']}/cancel").json()["status"] == "cancelled"
    # Nothing happened to the hidden runs: still awaiting, not cancelled, not rerun.
    assert api.get(f"/runs/{waiting['id']}").json()["status"] == "awaiting_confirmation"
    assert {x["id"] for x in _all(api, "/runs", tool=b)} == {finished["id"], waiting["id"]}
