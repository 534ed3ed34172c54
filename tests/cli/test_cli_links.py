"""``runyard data links …`` through the Typer app against the real server."""

from __future__ import annotations

from tests.support.cli import Invoke, as_json


def test_links_commands(cli: Invoke, api, unique: str) -> None:
    ns = f"clil-{unique}"
    assert api.post("/namespaces", json={"name": ns}).status_code == 201
    api.post(f"/namespaces/{ns}/datasets/people/rows", params={"create": True},
             json=[{"email": f"P{i}@x.org", "age": i} for i in range(25)])
    api.post(f"/namespaces/{ns}/datasets/visits/rows", params={"create": True},
             json=[{"email": f" p{i % 15}@X.org", "n": i} for i in range(45)])
    r = cli("data", "links", "create", f"{ns}/visits.email", f"{ns}/people.email", "--min-distinct", "5", "--json")
    assert r.exit_code == 0, r.output
    link = as_json(r)
    assert link["pair_count"] == 45 and link["created"] is True
    r = cli("data", "links", "list", ns, "--status", "active")
    assert r.exit_code == 0 and link["id"] in r.output and "visits.email" in r.output
    r = cli("data", "links", "pairs", link["id"], "--limit", "10", "--json")
    assert r.exit_code == 0 and len(as_json(r)) == 10
    first = as_json(r)[0]["from_id"]
    r = cli("data", "links", "linked", f"{ns}/visits", str(first), "--json")
    assert r.exit_code == 0 and as_json(r)[0]["dataset"] == "people"
    r = cli("data", "links", "recalculate", ns, "--link", link["id"])
    assert r.exit_code == 0 and "Recalculated 1 links" in r.output
    r = cli("data", "links", "create", f"{ns}/visits.n", f"{ns}/people.email", "--geo")
    assert r.exit_code != 0 and "incompatible_link_types" in r.output
    r = cli("data", "links", "delete", link["id"])
    assert r.exit_code == 0
