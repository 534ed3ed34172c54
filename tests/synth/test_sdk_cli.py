"""SDK resources and CLI commands for templates, generation and sets, against a real server."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from runyard.sdk import Client
from tests.support.synth import CUSTOMERS


def _client(server) -> Client:
    return Client(api_key=server.admin_key, base_url=server.base_url)


def test_sdk_templates_and_sets(server, unique, tmp_path):
    with _client(server) as client:
        t = client.templates.create(dict(CUSTOMERS, name=f"sdk_{unique}"))
        assert t.version == 1
        t2 = client.templates.update(t.id, description="second")
        assert t2.version == 2
        assert [v.version for v in client.templates.versions(t.id)] == [2, 1]
        assert client.templates.get(t.id, version=1).version == 1
        assert t.id in [x.id for x in client.templates.list()]
        preview = client.templates.preview(t.id, seed=4)
        rows = list(client.templates.rows(t.id, count=10, seed=4))
        assert preview["rows"] == rows[:3] and len(rows) == 10

        out = tmp_path / "c.csv"
        result = client.templates.generate(t.id, count=1000, seed=4, format="csv", to=out)
        assert result.seed == 4 and result.bytes_written == out.stat().st_size
        assert len(list(csv.DictReader(io.StringIO(out.read_text())))) == 1000

        saved = client.sets.save(f"s_{unique}", [{"a": 1}, {"a": 2}])
        assert saved.version == 1 and client.sets.get(f"s_{unique}").rows == [{"a": 1}, {"a": 2}]
        into = client.templates.generate_into_set(t.id, f"g_{unique}", count=20, seed=4)
        assert into["row_count"] == 20
        client.sets.delete(f"s_{unique}")
        client.templates.delete(t.id)


def _cli(server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from runyard.cli.main import app; app()",
                           "--base-url", server.base_url, "--api-key", server.admin_key, *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_cli_templates_generate_sets(server, unique, tmp_path):
    spec = tmp_path / "customers.yaml"
    import yaml

    spec.write_text(yaml.safe_dump(dict(CUSTOMERS, name=f"cli_{unique}")))
    created = _cli(server, "templates", "create", str(spec), "--json")
    assert created.returncode == 0, created.stderr
    tid = json.loads(created.stdout)["id"]
    listed = _cli(server, "templates", "list", "--json")
    assert tid in [t["id"] for t in json.loads(listed.stdout)]

    out = tmp_path / "out.ndjson"
    gen = _cli(server, "generate", tid, "--count", "500", "--format", "ndjson", "--seed", "9",
               "--set", "city=Paris", "-o", str(out))
    assert gen.returncode == 0, gen.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 500 and {r["city"] for r in rows} == {"Paris"}
    to_stdout = _cli(server, "generate", tid, "--count", "5", "--format", "csv", "--seed", "9")
    assert to_stdout.stdout.splitlines()[0].startswith('"id","name"')

    versions = _cli(server, "templates", "versions", tid, "--json")
    assert [v["version"] for v in json.loads(versions.stdout)] == [1]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "b", "fields": [{"name": "x", "generator": "nope"}]}))
    refused = _cli(server, "templates", "create", str(bad))
    assert refused.returncode != 0 and "nope" in (refused.stderr + refused.stdout)

    rows_file = tmp_path / "rows.json"
    rows_file.write_text(json.dumps([{"k": "a"}, {"k": "b"}]))
    assert _cli(server, "sets", "save", f"cli_{unique}", str(rows_file)).returncode == 0
    got = json.loads(_cli(server, "sets", "get", f"cli_{unique}", "--json").stdout)
    assert got["rows"] == [{"k": "a"}, {"k": "b"}]
    assert _cli(server, "sets", "delete", f"cli_{unique}").returncode == 0
    assert _cli(server, "templates", "delete", tid).returncode == 0
