"""An ``mcp_tool`` run whose node dies mid-call: the run holds a lease its driver renews; once
the node is gone and the lease expired, a sweep fails it ``worker_lost`` — and does not call
the tool again (an MCP tool may have side effects)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.mcp_client.conftest import McpTestServer
from tests.mcp_client.test_mcp_tools import connect
from tests.support.servers import PgDatabase, Server


def test_a_run_whose_node_dies_mid_call_fails_as_worker_lost(backend: str, tmp_path: Path,
                                                           mcp_server: McpTestServer) -> None:
    pg = PgDatabase.create() if backend == "postgres" else None
    srv = Server(data_dir=tmp_path / "data", database_url=pg.url if pg else None,
                 extra_env={"RUNYARD_ALLOWED_HOSTS": "127.0.0.1", "RUNYARD_LEASE_S": "2"})
    try:
        srv.start()
        with srv.client(timeout=60) as admin:
            name = connect(admin, mcp_server)
            made = admin.post(f"/mcp-tools/mcp_{name}_slow/execute", json={"parameters": {"seconds": 30}})
            assert made.status_code == 201, made.text
            run_id = made.json()["id"]
            deadline = time.monotonic() + 20
            while "calling slow" not in admin.get(f"/runs/{run_id}/logs").text:
                assert time.monotonic() < deadline, "the driver never made the call"
                time.sleep(0.05)
            # The lease is renewed while the call runs: still running after several leases.
            time.sleep(5)
            assert admin.get(f"/runs/{run_id}").json()["status"] == "running"
        srv.kill9()
        srv.start()
        with srv.client(timeout=60) as admin:
            deadline = time.monotonic() + 30
            while (run := admin.get(f"/runs/{run_id}").json())["status"] == "running":
                assert time.monotonic() < deadline, run
                time.sleep(0.2)
            assert run["status"] == "failed" and run["error"]["type"] == "worker_lost", run
            assert "not repeated" in run["error"]["message"]
            assert "worker_lost" in admin.get(f"/runs/{run_id}/logs").text
            # Not called again: a sweep later, it is still the same failed run.
            time.sleep(3)
            assert admin.get(f"/runs/{run_id}").json()["error"]["type"] == "worker_lost"
    finally:
        srv.stop()
        if pg:
            pg.drop()
