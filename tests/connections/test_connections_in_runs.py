"""A tool declares connections; inside its runs ``context.connection(name)`` returns their
settings with the secret values, and refuses a connection it did not declare. The values
are redacted from the run's log and output like secrets."""

from __future__ import annotations

import uuid

import httpx

from tests.support.api import deploy, run

USER = """
from runyard import context

def main(name: str) -> dict:
    settings = context.connection(name)
    print("connecting with", settings["password"])
    return {"type": settings["type"], "host": settings["host"], "user": settings["user"],
            "password_length": len(settings["password"]), "echo": settings["password"]}
"""
PASSWORD = "in-run-password-77ab31"


def test_a_run_reads_a_declared_connection_and_is_refused_an_undeclared_one(admin: httpx.Client):
    u = uuid.uuid4().hex[:6]
    for name in (f"db-{u}", f"other-{u}"):
        made = admin.post("/connections", json={"name": name, "type": "postgres", "config": {
            "host": "127.0.0.1", "database": "test", "user": "reader", "password": PASSWORD}})
        assert made.status_code == 201, made.text
    tool = deploy(admin, f"conn-user-{u}", USER, connections=[f"db-{u}", f"gone-{u}"])
    assert tool["connections"] == [f"db-{u}", f"gone-{u}"]

    done = run(admin, tool["name"], {"name": f"db-{u}"})
    assert done["status"] == "succeeded", done
    assert done["output"] == {"type": "postgres", "host": "127.0.0.1", "user": "reader",
                              "password_length": len(PASSWORD), "echo": "***"}  # redacted like a secret
    logs = admin.get(f"/runs/{done['id']}/logs").text
    assert "connecting with" in logs and PASSWORD not in logs

    refused = run(admin, tool["name"], {"name": f"other-{u}"})
    assert refused["status"] == "failed" and refused["error"]["type"] == "ConnectionNotDeclared", refused
    assert "not declared by this tool" in refused["error"]["message"]
    gone = run(admin, tool["name"], {"name": f"gone-{u}"})
    assert gone["status"] == "failed" and "does not exist" in gone["error"]["message"]


def test_connection_names_are_checked_at_deploy(admin: httpx.Client):
    response = admin.post("/tools", json={"name": f"bad-conn-{uuid.uuid4().hex[:6]}",
                                          "code": "def main():\n    return 1\n", "connections": ["Not A Name"]})
    assert response.status_code == 400 and response.json()["error"]["details"]["field"] == "connections"
