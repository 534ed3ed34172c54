"""``runyard data …``, ``runyard users …`` and token grants through the Typer app, against
the real server, in table and --json modes."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Invoke, as_json


@pytest.fixture(autouse=True)
def _upload_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield


def _ns(cli: Invoke, name: str) -> dict[str, Any]:
    r = cli("data", "ns", "create", name, "--description", "for tests", "--json")
    assert r.exit_code == 0, r.output
    return as_json(r)


def test_namespaces(cli: Invoke, unique: str) -> None:
    r = cli("data", "ns", "create", f"cli-{unique}", "--public")
    assert r.exit_code == 0, r.output
    assert f"cli-{unique}" in r.stderr and "public" in r.stderr and r.stdout == ""
    made = _ns(cli, f"cli2-{unique}")
    assert made["private"] is True and made["description"] == "for tests" and made["owner"] == "admin"
    r = cli("data", "ns", "list", "--owner", "self")
    assert r.exit_code == 0 and f"cli-{unique}" in r.stdout and "public" in r.stdout
    names = [n["name"] for n in as_json(cli("data", "ns", "list", "--json"))]
    assert {f"cli-{unique}", f"cli2-{unique}"} <= set(names)
    r = cli("data", "ns", "create", f"cli-{unique}", "--json")
    assert r.exit_code == 1 and as_json(r)["error"]["code"] == "namespace_exists"
    assert as_json(cli("data", "ns", "delete", f"cli2-{unique}", "--json")) == {"deleted": f"cli2-{unique}"}


def test_ingest_a_small_file_then_info_and_query(cli: Invoke, unique: str, tmp_path: Path) -> None:
    ns = _ns(cli, f"q-{unique}")["name"]
    f = tmp_path / "sales.csv"
    f.write_text("id,city,amount\n1,Lisbon,3.5\n2,Porto,4\n3,Lisbon,1.25\n")
    r = cli("data", "ingest", str(f), f"{ns}/sales")
    assert r.exit_code == 0, r.output
    assert "succeeded" in r.stdout and f"{ns}/sales" in r.stdout

    r = cli("data", "info", f"{ns}/sales")
    assert r.exit_code == 0, r.output
    for text in ("rows", "3", "city", "string", "amount", "Lisbon", "NULLS", "DISTINCT"):
        assert text in r.stdout, text
    info = as_json(cli("data", "info", f"{ns}/sales", "--json"))
    assert info["rows"] == 3 and [c["name"] for c in info["columns"]] == ["id", "city", "amount"]
    assert f"{ns}/sales" in "".join(f"{d['namespace']}/{d['name']}" for d in as_json(
        cli("data", "list", "--namespace", ns, "--json")))

    sql = "SELECT city, count(*) AS n FROM sales GROUP BY city ORDER BY city"
    r = cli("data", "query", sql, "--namespace", ns)
    assert r.exit_code == 0, r.output
    assert "Lisbon" in r.stdout and "Porto" in r.stdout and "2 row(s)" in r.stderr
    r = cli("data", "query", sql, "--namespace", ns, "--format", "csv")
    assert r.exit_code == 0, r.output
    assert list(csv.reader(r.stdout.splitlines())) == [["city", "n"], ["Lisbon", "2"], ["Porto", "1"]]
    out = as_json(cli("data", "query", sql, "--namespace", ns, "--format", "json"))
    assert out["rows"] == [{"city": "Lisbon", "n": 2}, {"city": "Porto", "n": 1}]
    limited = as_json(cli("data", "query", "*", "--namespace", ns, "--dataset", "sales", "--limit", "1", "--json"))
    assert len(limited["rows"]) == 1

    ings = as_json(cli("data", "ingestions", f"{ns}/sales", "--json"))
    assert ings and ings[0]["status"] == "succeeded"

    r = cli("data", "ingest", str(f), f"{ns}/missing", "--no-create", "--json")
    assert r.exit_code == 1 and as_json(r)["error"]["code"] == "dataset_not_found"
    r = cli("data", "info", "no-slash")
    assert r.exit_code == 2
    r = cli("data", "query", "DELETE FROM sales", "--namespace", ns)
    assert r.exit_code == 1


def test_ingest_a_large_file_by_multipart_upload(cli: Invoke, unique: str, tmp_path: Path) -> None:
    ns = _ns(cli, f"big-{unique}")["name"]
    f = tmp_path / "big.csv"
    with f.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "text"])
        for i in range(300_000):
            w.writerow([i, f"row number {i} of the big file"])
    assert f.stat().st_size > 8 * 1024 * 1024
    r = cli("data", "ingest", str(f), f"{ns}/big", "--json")
    assert r.exit_code == 0, r.output
    ing = as_json(r)
    assert ing["kind"] == "upload" and ing["status"] == "succeeded" and ing["processed_rows"] == 300_000
    r = cli("data", "ingest", str(f), f"{ns}/big2", "--no-wait", "--json")
    assert r.exit_code == 0 and as_json(r)["status"] in ("pending", "processing", "succeeded")


def test_users_and_token_grants(cli: Invoke, unique: str, tmp_path: Path) -> None:
    name = f"cu-{unique}"
    r = cli("users", "create", name, "--role", "viewer", "--password", input="a long password\n")
    assert r.exit_code == 0, r.output
    assert name in r.stderr
    users = as_json(cli("users", "list", "--json"))
    assert any(u["username"] == name and u["has_password"] for u in users)
    assert name in cli("users", "list").stdout
    assert as_json(cli("users", "me", "--json"))["username"] == "admin"

    ns = _ns(cli, f"g-{unique}")["name"]
    f = tmp_path / "one.ndjson"
    f.write_text('{"a": 1}\n')
    assert cli("data", "ingest", str(f), f"{ns}/one").exit_code == 0  # grants name what exists
    r = cli("tokens", "create", f"t-{unique}", "--grant", f"{ns}:write", "--grant", f"{ns}/one", "--json")
    assert r.exit_code == 0, r.output
    tok = as_json(r)
    grants = tok["restrictions"]["grants"]
    assert {(g["namespace"], g.get("dataset"), g["access"]) for g in grants} == {(ns, None, "write"),
                                                                               (ns, "one", "read")}
    r = cli("tokens", "list")
    assert r.exit_code == 0 and f"data: {ns} (write)" in r.stdout
    r = cli("tokens", "permissions", tok["id"])
    assert r.exit_code == 0 and ns in r.stdout
    perms = as_json(cli("tokens", "permissions", tok["id"], "--json"))
    assert perms["token_id"] == tok["id"] and any(p["namespace"] == ns for p in perms["namespaces"])
    r = cli("tokens", "create", "bad", "--grant", f"{ns}:admin")
    assert r.exit_code == 2 and "read or write" in r.output


def test_help_lists_the_data_commands() -> None:
    from typer.testing import CliRunner

    from runyard.cli.main import app

    r = CliRunner().invoke(app, ["data", "--help"])
    assert r.exit_code == 0
    for cmd in ("ns", "ingest", "query", "info", "list", "ingestions"):
        assert cmd in r.stdout
