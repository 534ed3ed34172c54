"""Tokens, roles, restrictions and secrets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.support.api import deploy, error_code, run


def test_missing_unknown_expired_keys(server, api, unique):
    anon = httpx.get(f"{server.api}/tools")
    assert anon.status_code == 401 and error_code(anon) == "missing_api_key"
    with server.client("ry_not_a_key") as bad:
        assert error_code(bad.get("/tools")) == "invalid_api_key"
    r = api.post("/tokens", json={"name": "soon", "role": "member",
                                  "expires_at": (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()})
    assert r.status_code == 201
    key = r.json()["key"]
    with server.client(key) as member:
        assert member.get("/tools").status_code == 200
        import time
        time.sleep(1.7)
        assert error_code(member.get("/tools")) == "expired_api_key"
    r = api.post("/tokens", json={"name": "past", "expires_at": "2001-01-01T00:00:00Z"})
    assert error_code(r) == "validation_error"


def test_token_lifecycle_and_hashing(server, api):
    created = api.post("/tokens", json={"name": "ci", "role": "viewer"}).json()
    assert created["key"].startswith("ry_") and created["prefix"] == created["key"][:10]
    fetched = api.get(f"/tokens/{created['id']}").json()
    assert "key" not in fetched and fetched["role"] == "viewer"
    assert any(t["id"] == created["id"] for t in api.get("/tokens", params={"limit": 1000}).json()["items"])
    # Only a hash is stored: the key never appears in the database file.
    if not server.database_url:
        db_bytes = (server.data_dir / "runyard.db").read_bytes() + (server.data_dir / "runyard.db-wal").read_bytes()
        assert created["key"].encode() not in db_bytes
    assert api.delete(f"/tokens/{created['id']}").status_code == 204
    with server.client(created["key"]) as gone:
        assert error_code(gone.get("/tools")) == "invalid_api_key"
    assert error_code(api.get(f"/tokens/{created['id']}")) == "token_not_found"
    assert error_code(api.post("/tokens", json={"name": "x", "role": "root"})) == "validation_error"


def test_roles_and_restrictions(server, api, unique):
    deploy(api, f"allowed-{unique}", "def main():\n    return 'ok'\n")
    deploy(api, f"other-{unique}", "def main():\n    return 'no'\n")
    viewer = api.post("/tokens", json={"name": "v", "role": "viewer"}).json()["key"]
    member = api.post("/tokens", json={"name": "m", "role": "member"}).json()["key"]
    restricted = api.post("/tokens", json={"name": "r", "role": "member",
                                           "restrictions": {"tools": [f"allowed-{unique}"]}}).json()["key"]
    with server.client(viewer) as v:
        assert v.get(f"/tools/allowed-{unique}").status_code == 200
        r = v.post("/tools", json={"name": f"v-{unique}", "code": "def main():\n    pass\n"})
        assert r.status_code == 403 and error_code(r) == "insufficient_role"
        assert error_code(v.post("/runs", json={"tool": f"allowed-{unique}"})) == "insufficient_role"
        assert error_code(v.put("/secrets/X", json={"value": "y"})) == "insufficient_role"
    with server.client(viewer) as v:
        assert error_code(v.post("/tokens", json={"name": "x", "role": "viewer"})) == "insufficient_role"
    with server.client(member) as m:
        # A member manages its own user's keys: no higher role, and only its own keys in sight.
        assert error_code(m.post("/tokens", json={"name": "x", "role": "admin"})) == "token_escalation"
        own = m.post("/tokens", json={"name": "mine", "role": "member"})
        assert own.status_code == 201, own.text
        listed = {t["id"] for t in m.get("/tokens", params={"limit": 100}).json()["items"]}
        everyone = {t["id"] for t in api.get("/tokens", params={"limit": 100}).json()["items"]}
        assert own.json()["id"] in listed and listed < everyone
    with server.client(restricted) as r:
        assert run(r, f"allowed-{unique}")["output"] == "ok"
        denied = r.post("/runs", json={"tool": f"other-{unique}"})  # hidden: as if it did not exist
        assert denied.status_code == 404 and error_code(denied) == "tool_not_found"
        names = {t["name"] for t in r.get("/tools", params={"limit": 1000}).json()["items"]}
        assert names == {f"allowed-{unique}"}
        assert r.get(f"/tools/other-{unique}").status_code == 404


def test_secrets_masked_never_returned(server, api, unique):
    name = f"API_KEY_{unique}"
    value = f"sk-live-{unique}-abcdef123456"
    r = api.put(f"/secrets/{name}", json={"value": value, "display_name": "Key", "category": "llm"})
    assert r.status_code == 200, r.text
    assert value not in r.text and r.json()["masked_value"].endswith("3456")
    assert error_code(api.put(f"/secrets/{name}", json={"value": "other"})) == "secret_exists"
    if not server.database_url:  # encrypted at rest: the value is nowhere in the database files
        db = server.data_dir / "runyard.db"
        stored = db.read_bytes() + db.with_name("runyard.db-wal").read_bytes()
        assert value.encode() not in stored
    assert api.put(f"/secrets/{name}", params={"force": True}, json={"value": value}).status_code == 200
    listing = api.get("/secrets", params={"limit": 1000})
    assert value not in listing.text and any(s["name"] == name for s in listing.json()["items"])
    assert error_code(api.put("/secrets/bad-name", json={"value": "x"})) == "invalid_secret_name"
    assert api.delete(f"/secrets/{name}").status_code == 204
    assert error_code(api.delete(f"/secrets/{name}")) == "secret_not_found"


def test_secret_redacted_from_logs_output_error(api, unique):
    name = f"TOKEN_{unique}"
    value = f"hunter2-{unique}-s3cr3t"
    api.put(f"/secrets/{name}", json={"value": value})
    code = f'''
import os, sys
def main(fail: bool = False):
    v = os.environ["{name}"]
    print("the secret is", v)
    sys.stdout.write(v[:5]); sys.stdout.flush(); sys.stdout.write(v[5:] + "\\n")
    if fail:
        raise RuntimeError("leaking " + v)
    return {{"echo": v, "nested": [v + "!"]}}
'''
    deploy(api, f"leaky-{unique}", code, required_secrets=[name])
    ok = run(api, f"leaky-{unique}")
    assert ok["status"] == "succeeded"
    assert value not in str(ok) and ok["output"]["echo"] == "***"
    logs = api.get(f"/runs/{ok['id']}/logs").text
    assert value not in logs and "the secret is ***" in logs
    bad = run(api, f"leaky-{unique}", {"fail": True})
    assert bad["status"] == "failed" and value not in str(bad["error"]) and "***" in bad["error"]["message"]
    # A tool whose declared secret is unset is refused before queueing.
    deploy(api, f"needs-{unique}", "def main():\n    pass\n", required_secrets=[f"UNSET_{unique}"])
    r = api.post("/runs", json={"tool": f"needs-{unique}"})
    assert error_code(r) == "missing_secret" and f"UNSET_{unique}" in r.json()["error"]["message"]


@pytest.mark.slow
def test_request_rate_limit_headers_and_429(fresh_server):
    import time

    fresh_server.extra_env = {"RUNYARD_REQUESTS_PER_MINUTE": "5"}
    if 60 - time.time() % 60 < 5:  # don't straddle a window boundary
        time.sleep(60 - time.time() % 60 + 0.1)
    fresh_server.start()
    with fresh_server.client() as admin:  # the operator's keys are not limited (docs/limits.md)
        admin.post("/users", json={"username": "limited", "role": "member"})
        member = admin.post("/tokens", json={"name": "limited", "role": "member", "user": "limited"}).json()["key"]
    with fresh_server.client(member) as api:
        remaining = []
        for _ in range(5):
            r = api.get("/tools")
            assert r.status_code == 200
            assert r.headers["x-ratelimit-limit"] == "5"
            remaining.append(int(r.headers["x-ratelimit-remaining"]))
        assert remaining == [4, 3, 2, 1, 0]
        limited = api.get("/tools")
        assert limited.status_code == 429 and error_code(limited) == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.headers["x-ratelimit-remaining"] == "0"
        # Run creation (served ahead of FastAPI) counts against the same limit, same answer.
        limited_run = api.post("/runs", json={"tool": "anything"})
        assert limited_run.status_code == 429 and error_code(limited_run) == "rate_limited"
        assert 1 <= int(limited_run.headers["retry-after"]) <= 60
        assert limited_run.headers["x-ratelimit-limit"] == "5"
