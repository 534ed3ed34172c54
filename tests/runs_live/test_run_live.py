"""POST /runs/{id}/connect and the /runs/{id}/live WebSocket on a real server: the live
stream of a tool run, answering a workflow's wait for input, and every URL that must
open nothing (tampered, expired, another run's, a revoked key's, a hidden run)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.support.api import deploy, error_code, wait_status

TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}
CHATTY = """
import time
from runyard import context
def main(n: int = 3, pause: float = 0.3):
    time.sleep(1.0)
    for i in range(n):
        print(f"line {i} é")
        context.progress((i + 1) / n, f"step {i}")
        context.trace("tick", i=i)
        time.sleep(pause)
    return {"done": n}
"""
APPROVAL = """
name: {name}
steps:
  - id: approve
    kind: wait_for_input
  - id: after
    uses: {tool}
    needs: approve
    with:
      x: ${{{{ steps.approve.output.x }}}}
outputs:
  result: ${{{{ steps.after.output }}}}
"""


def _token(api: httpx.Client, name: str, role: str, tools: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "role": role}
    if tools is not None:
        body["restrictions"] = {"tools": tools}
    response = api.post("/tokens", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _connect(client: httpx.Client, run_id: str) -> dict[str, Any]:
    response = client.post(f"/runs/{run_id}/connect")
    assert response.status_code == 200, response.text
    return response.json()


def _messages_until_end(ws: ClientConnection, timeout: float = 60) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = json.loads(ws.recv(timeout=deadline - time.monotonic()))
        messages.append(message)
        if message["type"] == "end":
            return messages
    raise AssertionError(f"no end message in {timeout}s: {messages}")


def _refused(url: str) -> tuple[int, str]:
    with pytest.raises(InvalidStatus) as caught, connect(url, open_timeout=10):
        pass
    response = caught.value.response
    return response.status_code, json.loads(response.body or b"{}")["error"]["code"]


def _start_workflow(api: httpx.Client, unique: str) -> dict[str, Any]:
    tool, name = f"live-double-{unique}", f"live-approve-{unique}"
    deploy(api, tool, "def main(x: int):\n    return x * 2\n")
    saved = api.post("/workflows", content=APPROVAL.format(name=name, tool=tool),
                     headers={"content-type": "application/yaml"})
    assert saved.status_code in (200, 201), saved.text
    run = api.post("/runs", params={"wait": 30}, json={"workflow": name}).json()
    assert run["status"] == "waiting_for_input", run
    return run


def test_a_tool_run_streams_live_until_it_ends(api: httpx.Client, unique: str) -> None:
    tool = f"live-{unique}"
    deploy(api, tool, CHATTY)
    # A first run and connect warm the node (the engine starts on a first run, FastAPI builds
    # a router's routes on their first request): the run watched below is still going when
    # the socket opens.
    warm = api.post("/runs", params={"wait": 30}, json={"tool": tool, "inputs": {"n": 0}}).json()
    assert warm["status"] == "succeeded"
    _connect(api, warm["id"])
    run = api.post("/runs", json={"tool": tool, "inputs": {"n": 3}}).json()
    link = _connect(api, run["id"])
    assert link["url"].startswith("ws://") and f"/api/v1/runs/{run['id']}/live?sig=" in link["url"]
    expires = datetime.fromisoformat(link["expires_at"].replace("Z", "+00:00"))
    assert 30 < (expires - datetime.now(UTC)).total_seconds() <= 61
    with connect(link["url"], open_timeout=10) as ws:
        messages = _messages_until_end(ws)
        # The server closes the socket after the end.
        with pytest.raises(ConnectionClosedOK):
            ws.recv(timeout=10)
        assert ws.close_code == 1000
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "status" and kinds[-1] == "end", messages
    statuses = [m["status"] for m in messages if m["type"] == "status"]
    assert statuses[-1] == "succeeded" and "running" in statuses, messages
    log = "".join(m["text"] for m in messages if m["type"] == "log")
    assert [line for line in log.splitlines() if line.startswith("line")] == ["line 0 é", "line 1 é", "line 2 é"]
    offsets = [m["offset"] for m in messages if m["type"] == "log"]
    assert offsets == sorted(offsets) and offsets[-1] == len(log.encode())
    assert [m["event"]["attrs"]["i"] if "attrs" in m["event"] else m["event"].get("i")
            for m in messages if m["type"] == "trace"] == [0, 1, 2]
    progress = [m["progress"] for m in messages if m["type"] == "progress"]
    assert progress and progress[-1]["fraction"] == 1
    end = messages[-1]
    assert end["status"] == "succeeded" and end["run"]["output"] == {"done": 3}
    # A run that already ended: its whole story at once, then the end.
    with connect(_connect(api, run["id"])["url"], open_timeout=10) as ws:
        again = _messages_until_end(ws, timeout=20)
    assert "".join(m["text"] for m in again if m["type"] == "log") == log
    assert again[-1]["status"] == "succeeded"


def test_a_waiting_workflow_is_answered_over_the_socket(api: httpx.Client, server: Any, unique: str) -> None:
    run = _start_workflow(api, unique)
    viewer = _token(api, f"live-viewer-{unique}", "viewer")
    with server.client(viewer["key"]) as as_viewer:
        viewer_url = _connect(as_viewer, run["id"])["url"]
    with connect(viewer_url, open_timeout=10) as ws:
        first = json.loads(ws.recv(timeout=10))
        assert first["type"] == "status" and first["status"] == "waiting_for_input"
        ws.send(json.dumps({"type": "input", "value": {"x": 1}}))
        reply = _next_of(ws, {"error", "input_accepted"})
        assert reply["type"] == "error" and reply["error"]["code"] == "insufficient_role"
    assert api.get(f"/runs/{run['id']}").json()["status"] == "waiting_for_input"  # nothing changed

    with connect(_connect(api, run["id"])["url"], open_timeout=10) as ws:
        ws.send(b"\x00binary")
        assert _next_of(ws, {"error"})["error"]["code"] == "invalid_message"
        ws.send("not json")
        assert _next_of(ws, {"error"})["error"]["code"] == "invalid_message"
        ws.send(json.dumps({"type": "cancel"}))
        assert _next_of(ws, {"error"})["error"]["code"] == "invalid_message"
        ws.send(json.dumps({"type": "input", "value": {"x": 1}, "step_id": "nope"}))
        assert _next_of(ws, {"error"})["error"]["code"] == "invalid_state"
        ws.send(json.dumps({"type": "input", "value": {"x": 21}}))
        accepted = _next_of(ws, {"input_accepted", "error"})
        assert accepted["type"] == "input_accepted", accepted
        rest = _messages_until_end(ws)
    steps = [m["step"] for m in rest if m["type"] == "step"]
    assert any(s["step_id"] == "after" and s["status"] == "succeeded" for s in steps), steps
    assert rest[-1]["status"] == "succeeded" and rest[-1]["run"]["output"] == {"result": 42}
    assert wait_status(api, run["id"], TERMINAL)["output"] == {"result": 42}


def _next_of(ws: ClientConnection, kinds: set[str]) -> dict[str, Any]:
    """The next message of one of ``kinds`` (stream messages in between are skipped)."""
    deadline = time.monotonic() + 20
    while True:
        message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if message["type"] in kinds:
            return message


def test_urls_that_open_nothing(api: httpx.Client, server: Any, unique: str) -> None:
    tool, other = f"live-a-{unique}", f"live-b-{unique}"
    deploy(api, tool, "def main(x: int = 1):\n    return x\n")
    deploy(api, other, "def main(x: int = 1):\n    return x\n")
    mine = api.post("/runs", params={"wait": 30}, json={"tool": tool}).json()
    theirs = api.post("/runs", params={"wait": 30}, json={"tool": other}).json()
    url = _connect(api, mine["id"])["url"]
    base, _, sig = url.partition("?sig=")
    token_id, expires, mac = sig.split(".")
    # No signature, a malformed one, a tampered MAC or expiry, another run's path.
    assert _refused(base) == (403, "invalid_signature")
    assert _refused(f"{base}?sig=nonsense") == (403, "invalid_signature")
    flipped = mac[:-1] + ("0" if mac[-1] != "0" else "1")
    assert _refused(f"{base}?sig={token_id}.{expires}.{flipped}") == (403, "invalid_signature")
    assert _refused(f"{base}?sig={token_id}.{int(expires) + 3600}.{mac}") == (403, "invalid_signature")
    assert _refused(url.replace(mine["id"], theirs["id"])) == (403, "invalid_signature")
    # Signed right but expired (made here with the node's key, as the server would).
    key = (server.data_dir / "signing-key").read_bytes()
    live_key = hmac.new(key, b"runyard run live connection v1", hashlib.sha256).digest()
    past = int(time.time()) - 5
    ws_id = _workspace_of(server, token_id)
    old_mac = hmac.new(live_key, f"{mine['id']}\n{ws_id}\n{token_id}\n{past}".encode(), hashlib.sha256).hexdigest()
    assert _refused(f"{base}?sig={token_id}.{past}.{old_mac}") == (403, "signature_expired")
    # The same construction, unexpired, opens: the check above failed on the expiry alone.
    later = int(time.time()) + 30
    good_mac = hmac.new(live_key, f"{mine['id']}\n{ws_id}\n{token_id}\n{later}".encode(), hashlib.sha256).hexdigest()
    with connect(f"{base}?sig={token_id}.{later}.{good_mac}", open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "status"
    # A revoked key's URL opens nothing (made before the revocation).
    member = _token(api, f"live-member-{unique}", "member")
    with server.client(member["key"]) as as_member:
        revoked_url = _connect(as_member, mine["id"])["url"]
    assert api.delete(f"/tokens/{member['id']}").status_code == 204
    assert _refused(revoked_url) == (401, "invalid_api_key")
    # A key restricted to one tool: no URL for another tool's run.
    restricted = _token(api, f"live-r-{unique}", "member", tools=[tool])
    with server.client(restricted["key"]) as scoped:
        hidden = scoped.post(f"/runs/{theirs['id']}/connect")
        assert hidden.status_code == 404 and error_code(hidden) == "run_not_found"
        assert scoped.post(f"/runs/{mine['id']}/connect").status_code == 200
    missing = api.post("/runs/run_00000000000000000000000000/connect")
    assert missing.status_code == 404 and error_code(missing) == "run_not_found"
    no_key = httpx.post(f"{server.api}/runs/{mine['id']}/connect")
    assert no_key.status_code == 401 and error_code(no_key) == "missing_api_key"


def _workspace_of(server: Any, token_id: str) -> str:
    """The workspace of a token, read from the server's own database."""
    import sqlalchemy as sa

    from runyard.store.tables import tokens

    url = server.database_url or f"sqlite:///{server.data_dir / 'runyard.db'}"
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return str(conn.execute(sa.select(tokens.c.workspace_id).where(tokens.c.id == token_id)).scalar_one())
    finally:
        engine.dispose()


def test_revoking_the_key_closes_an_open_socket(api: httpx.Client, server: Any, unique: str) -> None:
    tool = f"live-long-{unique}"
    deploy(api, tool, "import time\ndef main():\n    time.sleep(30)\n    return 1\n")
    member = _token(api, f"live-watch-{unique}", "member")
    with server.client(member["key"]) as as_member:
        run = as_member.post("/runs", json={"tool": tool}).json()
        url = _connect(as_member, run["id"])["url"]
    try:
        with connect(url, open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "status"
            assert api.delete(f"/tokens/{member['id']}").status_code == 204
            deadline = time.monotonic() + 15
            error = None
            while error is None and time.monotonic() < deadline:
                message = json.loads(ws.recv(timeout=deadline - time.monotonic()))
                assert message["type"] != "end", message
                error = message if message["type"] == "error" else None
            assert error is not None and error["error"]["code"] == "invalid_api_key", error
            with pytest.raises(ConnectionClosedError) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    finally:
        api.post(f"/runs/{run['id']}/cancel")
