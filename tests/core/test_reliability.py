"""Crashes and restarts: nothing is lost, nothing runs forever."""

from __future__ import annotations

import time

import pytest

from tests.support.api import TERMINAL, deploy, run, wait_status
from tests.support.processes import alive
from tests.support.servers import Server

pytestmark = pytest.mark.slow  # every test here waits out leases, restarts or kills nodes (30-60 s each)

# Shorter leases than the defaults (15 s / 3 s) keep the suite quick; the mechanism is the same.
FAST_LEASE = {"RUNYARD_LEASE_S": "4", "RUNYARD_HEARTBEAT_S": "1"}


def start_api_node(srv: Server, lease: dict[str, str] = FAST_LEASE) -> Server:
    """An API-only server (no worker slots)."""
    srv.mode = "server"
    srv.extra_env = {"RUNYARD_WORKER_SLOTS": "0", **lease}
    return srv.start()


def start_worker(api_node: Server, slots: int, lease: dict[str, str] = FAST_LEASE) -> Server:
    """A `runyard worker` process sharing the API node's database and data dir."""
    return Server(data_dir=api_node.data_dir, database_url=api_node.database_url, admin_key=api_node.admin_key,
                  mode="worker", slots=slots, extra_env=dict(lease)).start()


def test_worker_kill9_mid_run_ends_worker_lost(fresh_server: Server):
    # Default leases here: this test is the proof of the "within ~30 s" promise.
    api_node = start_api_node(fresh_server, lease={})
    worker = start_worker(api_node, slots=2, lease={})
    try:
        with api_node.client() as api:
            deploy(api, "stuck", "import os, time\ndef main():\n    print(f'started {os.getpid()}', flush=True)\n"
                                 "    time.sleep(120)\n")
            deploy(api, "quick", "def main():\n    return 'fine'\n")
            created = run(api, "stuck", wait=0)
            assert wait_status(api, created["id"], {"running"}, timeout=30)["status"] == "running"
            deadline = time.monotonic() + 10
            while "started" not in (text := api.get(f"/runs/{created['id']}/logs").text):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            child_pid = int(text.split()[1])
            killed_at = time.monotonic()
            worker.kill9()
            ended = wait_status(api, created["id"], TERMINAL, timeout=45)
            assert ended["status"] == "failed", ended
            assert ended["error"]["type"] == "worker_lost"
            assert time.monotonic() - killed_at < 30
            # The orphaned child does not keep running either: its fork server kills it.
            assert not alive(child_pid)
            replacement = start_worker(api_node, slots=2, lease={})
            try:
                assert run(api, "quick", wait=30)["output"] == "fine"
            finally:
                replacement.stop()
    finally:
        worker.stop()


def test_queued_runs_survive_restart(fresh_server: Server):
    srv = fresh_server
    srv.mode = "server"
    srv.extra_env = {"RUNYARD_WORKER_SLOTS": "0"}
    srv.start()
    with srv.client() as api:
        deploy(api, "later", "def main(i: int):\n    return i * 2\n")
        ids = [run(api, "later", {"i": i}, wait=0)["id"] for i in range(5)]
        assert {api.get(f"/runs/{i}").json()["status"] for i in ids} == {"queued"}
    srv.stop()
    srv.mode = "up"
    srv.extra_env = {}
    srv.start()
    with srv.client() as api:
        outputs = [wait_status(api, i, TERMINAL)["output"] for i in ids]
    assert outputs == [0, 2, 4, 6, 8]


def test_retry_policy_after_worker_lost(fresh_server: Server):
    api_node = start_api_node(fresh_server)
    worker = start_worker(api_node, slots=1)
    with api_node.client() as api:
        # The attempt number, not a marker file: a sandboxed run can write only its own dirs.
        code = """
import os, time
def main():
    if os.environ["RUNYARD_ATTEMPT"] == "1":
        time.sleep(120)
    return os.environ["RUNYARD_ATTEMPT"]
"""
        deploy(api, "flaky", code, retries=1)
        created = run(api, "flaky", wait=0)
        assert wait_status(api, created["id"], {"running"})["status"] == "running"
        time.sleep(0.5)
        worker.kill9()
        second = start_worker(api_node, slots=1)
        try:
            ended = wait_status(api, created["id"], TERMINAL, timeout=60)
            assert ended["status"] == "succeeded", ended
            assert ended["attempt"] == 2 and ended["output"] == "2"
        finally:
            second.stop()


def test_graceful_stop_records_running_runs(fresh_server: Server):
    srv = fresh_server.start()
    with srv.client() as api:
        deploy(api, "long", "import time\ndef main():\n    time.sleep(60)\n")
        created = run(api, "long", wait=0)
        assert wait_status(api, created["id"], {"running"})["status"] == "running"
    srv.stop()  # SIGTERM: the worker gives runs a grace period, then kills and records them
    srv.start()
    with srv.client() as api:
        ended = api.get(f"/runs/{created['id']}").json()
    assert ended["status"] == "failed"
    assert ended["error"]["type"] == "worker_shutdown"


def test_separate_worker_is_woken_by_notify_on_postgres(fresh_server: Server, backend: str):
    """On PostgreSQL a worker on another process/machine starts a run at once (LISTEN/NOTIFY),
    not at its next 1 s poll; the API node hears of the end the same way."""
    api_node = start_api_node(fresh_server)
    worker = start_worker(api_node, slots=2)
    try:
        with api_node.client() as api:
            deploy(api, "ping", "def main():\n    return 'pong'\n")
            assert run(api, "ping")["output"] == "pong"  # warm: code laid out, fork server up
            took = []
            for _ in range(5):
                started = time.monotonic()
                assert run(api, "ping")["output"] == "pong"
                took.append(time.monotonic() - started)
        took.sort()
        if backend == "postgres":
            assert took[2] < 0.25, took
        else:  # SQLite has no cross-process notifications: the worker polls every second
            assert took[2] < 1.5, took
    finally:
        worker.stop()
