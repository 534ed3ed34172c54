"""Feedback on runs through the real server: set fields piecemeal, resolve, reopen by a
change, clear; bad values refused and nothing changed; who may read and write."""

from __future__ import annotations

import httpx

from tests.compat.datagen_support import other_workspace_key
from tests.support.api import deploy, error_code, run
from tests.support.servers import Server

ECHO = "def main(x: int = 1):\n    return {'x': x}\n"


def test_feedback_lifecycle(api: httpx.Client, unique: str) -> None:
    tool = f"fb-{unique}"
    deploy(api, tool, ECHO)
    rid = run(api, tool, {"x": 1})["id"]
    assert error_code(api.get(f"/runs/{rid}/feedback")) == "feedback_not_found"
    assert error_code(api.post(f"/runs/{rid}/feedback/resolve")) == "feedback_not_found"

    r = api.patch(f"/runs/{rid}/feedback", json={"rating": "down", "comment": "x is off", "labels": ["math", "math"]})
    assert r.status_code == 200, r.text
    fb = r.json()
    assert (fb["rating"], fb["comment"], fb["labels"], fb["resolved"]) == ("down", "x is off", ["math"], False)
    assert fb["id"].startswith("fbk_") and fb["run_id"] == rid

    r = api.patch(f"/runs/{rid}/feedback", json={"score": 0.25, "corrected_output": {"x": 2}})
    fb = r.json()
    assert (fb["rating"], fb["score"], fb["corrected_output"], fb["has_corrected_output"]) == ("down", 0.25, {"x": 2},
                                                                                              True)
    resolved = api.post(f"/runs/{rid}/feedback/resolve").json()
    assert resolved["resolved"] is True and resolved["resolved_at"] and resolved["resolved_by"]
    reopened = api.patch(f"/runs/{rid}/feedback", json={"comment": "still off"}).json()
    assert reopened["resolved"] is False and reopened["resolved_at"] is None and reopened["score"] == 0.25

    for bad in ({"rating": "sideways"}, {"score": 1.5}, {"score": True}, {"labels": ["x" * 101]},
                {"labels": "math"}, {"colour": "red"}, {"comment": 5}, {}):
        resp = api.patch(f"/runs/{rid}/feedback", json=bad)
        assert resp.status_code == 400, (bad, resp.text)
        assert error_code(resp) in ("validation_error", "invalid_feedback")
    assert api.get(f"/runs/{rid}/feedback").json() == reopened  # nothing changed

    assert api.delete(f"/runs/{rid}/feedback").status_code == 204
    assert error_code(api.get(f"/runs/{rid}/feedback")) == "feedback_not_found"
    assert api.delete(f"/runs/{rid}/feedback").status_code == 204  # nothing to clear is fine


def test_feedback_access(api: httpx.Client, unique: str, server: Server) -> None:
    tool, other = f"fba-{unique}", f"fbb-{unique}"
    deploy(api, tool, ECHO)
    deploy(api, other, ECHO)
    rid, hidden = run(api, tool)["id"], run(api, other)["id"]
    for r_id in (rid, hidden):
        assert api.patch(f"/runs/{r_id}/feedback", json={"rating": "up"}).status_code == 200

    def key(role: str, tools: list[str] | None = None) -> str:
        body: dict = {"name": f"fb-{role}", "role": role}
        if tools:
            body["restrictions"] = {"tools": tools}
        return api.post("/tokens", json=body).json()["key"]

    with server.client(key("viewer")) as viewer:
        assert viewer.get(f"/runs/{rid}/feedback").json()["rating"] == "up"
        for resp in (viewer.patch(f"/runs/{rid}/feedback", json={"rating": "down"}),
                     viewer.delete(f"/runs/{rid}/feedback"), viewer.post(f"/runs/{rid}/feedback/resolve")):
            assert resp.status_code == 403 and error_code(resp) == "insufficient_role"
    with server.client(key("member", [tool])) as restricted:
        assert restricted.patch(f"/runs/{rid}/feedback", json={"comment": "ok"}).status_code == 200
        for resp in (restricted.get(f"/runs/{hidden}/feedback"),
                     restricted.patch(f"/runs/{hidden}/feedback", json={"rating": "down"}),
                     restricted.delete(f"/runs/{hidden}/feedback"),
                     restricted.post(f"/runs/{hidden}/feedback/resolve")):
            assert resp.status_code == 404 and error_code(resp) == "run_not_found"
    with server.client(other_workspace_key(server)) as stranger:
        for resp in (stranger.get(f"/runs/{rid}/feedback"), stranger.delete(f"/runs/{rid}/feedback"),
                     stranger.patch(f"/runs/{rid}/feedback", json={"rating": "down"})):
            assert resp.status_code == 404 and error_code(resp) == "run_not_found"
    assert api.get(f"/runs/{hidden}/feedback").json()["rating"] == "up"
    assert api.get(f"/runs/{rid}/feedback").json()["rating"] == "up"
