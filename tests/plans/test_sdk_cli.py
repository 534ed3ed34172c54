"""``client.plans`` and ``runyard admin plan`` against a real server of the test's own
(setting a plan limits the whole workspace)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import runyard
from runyard.cli.main import app
from tests.support.servers import Server


@pytest.fixture
def started(fresh_server: Server) -> Server:
    return fresh_server.start()


def test_sdk_reads_and_sets_the_plan(started: Server) -> None:
    with runyard.Client(base_url=started.base_url, api_key=started.admin_key) as client:
        assert client.plans.get().plan == "unlimited"
        plan = client.plans.set("custom", requests_per_minute=1200, rows_per_hour=250_000)
        assert (plan.plan, plan.requests_per_minute, plan.rows_per_hour, plan.source, plan.counted_by) == (
            "custom", 1200, 250_000, "plan", "database")
        assert client.plans.get().updated_at is not None
        with pytest.raises(runyard.ValidationError) as refused:
            client.plans.set("pro", rows_per_hour=5)
        assert refused.value.code == "validation_error"
        assert client.plans.get().plan == "custom"  # unchanged
        # A key of another user (even an admin) reads the plan but cannot set it.
        client.users.create("second-admin", role="admin")
        key = client.tokens.create("second", role="admin", user="second-admin").key
    with runyard.Client(base_url=started.base_url, api_key=key) as other:
        assert other.plans.get().requests_per_minute == 1200
        with pytest.raises(runyard.PermissionDeniedError) as denied:
            other.plans.set("unlimited")
        assert denied.value.code == "operator_only"


def test_cli_admin_plan(started: Server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    env = {"RUNYARD_CONFIG": str(tmp_path / "config.json"), "COLUMNS": "250", "RUNYARD_PROFILE": None,
           "RUNYARD_BASE_URL": started.base_url, "RUNYARD_API_KEY": started.admin_key}

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, ["admin", "plan", *args], env=env, catch_exceptions=False)

    shown = invoke("set", "free")
    assert shown.exit_code == 0 and "free" in shown.stdout and "10,000" in shown.stdout
    out = invoke("set", "enterprise", "--rows-per-hour", "5000000", "--json")
    assert out.exit_code == 0
    body = json.loads(out.stdout)
    assert (body["plan"], body["requests_per_minute"], body["rows_per_hour"]) == ("enterprise", None, 5_000_000)
    assert json.loads(invoke("get", "--json").stdout)["plan"] == "enterprise"
    bad = invoke("set", "gold")
    assert bad.exit_code != 0
    refused = invoke("set", "free", "--requests-per-minute", "5")
    assert refused.exit_code != 0 and "fixed limits" in (refused.stdout + refused.stderr)
