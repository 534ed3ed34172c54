"""Workspace plans over HTTP: who may set them, what they limit, the headers, on a real
server per test (the plan is the workspace's: a shared server would be limited for all)."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.support.servers import Server

REDIS_URL = "redis://127.0.0.1:6379/0"
CUSTOMERS = {"name": "plan_customers", "fields": [{"name": "id", "generator": "sequence", "start": 1},
                                                   {"name": "tier", "generator": "choice",
                                                    "values": ["free", "pro"]}]}


def code(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


def clear_of_window_end(window_s: int = 60, margin: float = 20) -> None:
    """Wait for a fresh window if the current one ends within ``margin`` seconds."""
    left = window_s - time.time() % window_s
    if left < margin:
        time.sleep(left + 0.2)


@pytest.fixture(params=["database", "redis"])
def plan_server(request: pytest.FixtureRequest, fresh_server: Server) -> Server:
    if request.param == "redis":
        fresh_server.extra_env["RUNYARD_REDIS_URL"] = REDIS_URL
    return fresh_server.start()


def key_of(api: httpx.Client, role: str, restrictions: dict | None = None) -> str:
    """A key of a user of its own (keys the operator makes for itself are the operator's)."""
    username = f"plans-{role}-{uuid.uuid4().hex[:6]}"
    made = api.post("/users", json={"username": username, "role": role})
    assert made.status_code == 201, made.text
    body = {"name": username, "role": role, "user": username,
            **({"restrictions": restrictions} if restrictions else {})}
    made = api.post("/tokens", json=body)
    assert made.status_code == 201, made.text
    return made.json()["key"]


def test_only_the_operator_sets_the_plan_and_bad_input_changes_nothing(fresh_server: Server) -> None:
    server = fresh_server.start()
    with server.client() as operator:
        default = operator.get("/workspace/plan")
        assert default.status_code == 200
        assert default.json() | {"updated_at": None} == {
            "object": "plan", "plan": "unlimited", "requests_per_minute": None, "rows_per_hour": None, "storage_bytes": None,
            "source": "default", "counted_by": "database", "updated_at": None, "updated_by": None}
        assert "x-ratelimit-limit" not in default.headers  # unlimited: no rate-limit headers
        viewer, member, admin = (key_of(operator, role) for role in ("viewer", "member", "admin"))
        assert operator.post("/tools", json={"name": "plans-tool", "code": "def main():\n    return 1\n"}
                             ).status_code == 201
        restricted = key_of(operator, "admin", {"tools": ["plans-tool"]})
        # Another admin of the workspace (a user the operator made) is not the operator.
        made = operator.post("/users", json={"username": "second-admin", "role": "admin",
                                             "password": "plans-password-1"})
        assert made.status_code == 201, made.text
        login = httpx.post(f"{server.api}/auth/login", json={"username": "second-admin",
                                                           "password": "plans-password-1"})
        other_admin = login.json()["key"]
    for key, expected in ((viewer, "insufficient_role"), (member, "insufficient_role"),
                          (restricted, "restricted"), (other_admin, "operator_only")):
        with server.client(key) as client:
            assert client.get("/workspace/plan").json()["plan"] == "unlimited"  # any key reads it
            refused = client.put("/workspace/plan", json={"plan": "enterprise"})
            assert refused.status_code == 403 and code(refused) == expected, refused.text
    with server.client() as operator:
        for body, field in (({"plan": "gold"}, "plan"), ({"plan": "free", "rows_per_hour": 5}, "rows_per_hour"),
                            ({"plan": "custom"}, "requests_per_minute"),
                            ({"plan": "custom", "requests_per_minute": 0}, "requests_per_minute"),
                            ({"plan": "custom", "rows_per_hour": -3}, "rows_per_hour"),
                            ({"plan": "pro", "burst": 3}, "burst")):
            bad = operator.put("/workspace/plan", json=body)
            assert bad.status_code == 400 and field in bad.text, (body, bad.text)
        assert operator.get("/workspace/plan").json()["source"] == "default"  # nothing changed
        pro = operator.put("/workspace/plan", json={"plan": "pro"}).json()
        assert (pro["plan"], pro["requests_per_minute"], pro["rows_per_hour"], pro["source"]) == (
            "pro", 600, 1_000_000, "plan")
        enterprise = operator.put("/workspace/plan", json={"plan": "enterprise", "rows_per_hour": 5_000_000}).json()
        assert (enterprise["requests_per_minute"], enterprise["rows_per_hour"]) == (None, 5_000_000)
    with server.client(admin) as client:
        assert client.get("/workspace/plan").json()["plan"] == "enterprise"


def test_free_plan_61st_request_in_a_minute_is_refused(plan_server: Server) -> None:
    with plan_server.client() as operator:
        member = key_of(operator, "member")
        clear_of_window_end()
        assert operator.put("/workspace/plan", json={"plan": "free"}).status_code == 200
    with plan_server.client(member) as api:
        seen = []
        for _ in range(70):
            r = api.get("/tools")
            if r.status_code != 200:
                break
            assert r.headers["x-ratelimit-limit"] == "60"
            assert 1 <= int(r.headers["x-ratelimit-reset"]) <= 60
            seen.append(int(r.headers["x-ratelimit-remaining"]))
        assert len(seen) == 60 and seen[0] == 59 and seen[-1] == 0
        assert r.status_code == 429 and code(r) == "rate_limited"
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert r.headers["x-ratelimit-limit"] == "60" and r.headers["x-ratelimit-remaining"] == "0"
        # Run creation (served ahead of FastAPI) and bodies are counted the same way.
        assert api.post("/runs", json={"tool": "anything"}).status_code == 429
        assert api.post("/templates", json=CUSTOMERS).status_code == 429
    with plan_server.client() as operator:  # the operator's own key is never limited
        for _ in range(3):
            r = operator.get("/tools")
            assert r.status_code == 200 and "x-ratelimit-limit" not in r.headers
        assert operator.put("/workspace/plan", json={"plan": "unlimited"}).status_code == 200
    with plan_server.client(member) as api:  # lifted on this node at once
        r = api.get("/tools")
        assert r.status_code == 200 and "x-ratelimit-limit" not in r.headers


def test_rows_per_hour_limit_on_generation(plan_server: Server) -> None:
    with plan_server.client() as operator:
        member = key_of(operator, "member")
        clear_of_window_end(3600, 30)
        assert operator.put("/workspace/plan", json={"plan": "custom", "rows_per_hour": 1000}).status_code == 200
    with plan_server.client(member) as api:
        tid = api.post("/templates", json=CUSTOMERS).json()["id"]
        assert api.post(f"/templates/{tid}/generate", json={"count": 800, "format": "csv"}).status_code == 200
        over = api.post(f"/templates/{tid}/generate", json={"count": 300, "format": "csv"})
        assert over.status_code == 429 and code(over) == "quota_exceeded"
        assert over.json()["error"]["details"]["limit"] == 1000
        assert 1 <= int(over.headers["retry-after"]) <= 3600
        assert "x-ratelimit-limit" not in over.headers  # requests are unlimited on this plan
        into_set = api.post(f"/templates/{tid}/generate", json={"count": 300, "format": "parquet"},
                            params={"into_set": "too_many"})
        assert into_set.status_code == 429 and api.get("/sets/too_many").status_code == 404  # nothing saved
        assert api.post(f"/templates/{tid}/generate", json={"count": 200, "format": "csv"}).status_code == 200
        with plan_server.client() as operator:
            assert operator.put("/workspace/plan", json={"plan": "free"}).status_code == 200
            # the operator generates past the plan: its key is not limited
            assert operator.post(f"/templates/{tid}/generate", json={"count": 20_000, "format": "csv"}
                                 ).status_code == 200
        refused = api.post(f"/templates/{tid}/generate", json={"count": 10_001, "format": "csv"})
        assert refused.status_code == 429 and code(refused) == "quota_exceeded"
        assert refused.json()["error"]["details"]["limit"] == 10_000


def test_unlimited_default_limits_nothing(fresh_server: Server) -> None:
    with fresh_server.start().client() as api:
        tid = api.post("/templates", json=CUSTOMERS).json()["id"]
        for _ in range(120):
            r = api.get("/tools")
            assert r.status_code == 200 and "x-ratelimit-remaining" not in r.headers
        big = api.post(f"/templates/{tid}/generate", json={"count": 50_000, "format": "csv"})
        assert big.status_code == 200 and big.text.count("\n") >= 50_000


def test_a_plan_sets_the_workspace_storage_quota(fresh_server: Server) -> None:
    """``storage_bytes`` (any plan) overrides the node's default quota; null goes back to it."""
    def put(api: httpx.Client, name: str, size: int) -> httpx.Response:
        return api.post("/workspace/files", data={"name": name},
                        files={"file": (name, b"x" * size, "application/octet-stream")})

    with fresh_server.start().client() as operator:
        assert put(operator, "a.bin", 6_000).status_code == 201  # no quota by default
        plan = operator.put("/workspace/plan", json={"plan": "pro", "storage_bytes": 10_000})
        assert plan.status_code == 200 and plan.json()["storage_bytes"] == 10_000, plan.text
        assert operator.get("/workspace/storage").json()["quota_bytes"] == 10_000
        refused = put(operator, "b.bin", 5_000)
        assert refused.status_code == 413 and code(refused) == "storage_quota_exceeded", refused.text
        assert refused.json()["error"]["details"]["quota_bytes"] == 10_000
        assert [f["name"] for f in operator.get("/workspace/files").json()["items"]] == ["a.bin"]
        bad = operator.put("/workspace/plan", json={"plan": "pro", "storage_bytes": 0})
        assert bad.status_code == 400 and "storage_bytes" in bad.text
        assert operator.get("/workspace/plan").json()["storage_bytes"] == 10_000  # unchanged
        assert operator.put("/workspace/plan", json={"plan": "pro"}).json()["storage_bytes"] is None
        assert put(operator, "b.bin", 5_000).status_code == 201  # the node's default: unlimited


def test_redis_down_the_api_stays_usable_and_limited_per_node(fresh_server: Server) -> None:
    """A node whose Redis is unreachable answers every request (within Redis' 250 ms
    timeout at most) and keeps limiting on its own count."""
    from tests.support.servers import free_port

    fresh_server.extra_env["RUNYARD_REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    with fresh_server.start().client() as operator:
        member = key_of(operator, "member")
        clear_of_window_end()
        plan = operator.put("/workspace/plan", json={"plan": "custom", "requests_per_minute": 5})
        assert plan.status_code == 200 and plan.json()["counted_by"] == "redis"
    with fresh_server.client(member) as api:
        started = time.monotonic()
        answers = [api.get("/tools") for _ in range(6)]
        assert time.monotonic() - started < 5
        assert [r.status_code for r in answers] == [200] * 5 + [429]
        assert [r.headers["x-ratelimit-remaining"] for r in answers[:5]] == ["4", "3", "2", "1", "0"]
        assert "Redis failed" in fresh_server.logs()
