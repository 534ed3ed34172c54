"""A worker killed mid-ingestion: the dataset keeps its snapshot, the ingestion is retried once
the lease runs out, and its rows land exactly once."""

from __future__ import annotations

import gzip
import time

import pytest

from tests.support.servers import Server


@pytest.mark.slow
def test_a_killed_worker_leaves_the_snapshot_and_the_ingestion_is_retried(backend, tmp_path):
    from tests.support.servers import PgDatabase

    pg = PgDatabase.create() if backend == "postgres" else None
    srv = Server(data_dir=tmp_path / "data", database_url=pg.url if pg else None,
                 extra_env={"RUNYARD_LEASE_S": "2"})
    try:
        srv.start()
        rows = 3_000_000
        data = gzip.compress(("a,b,c\n" + "".join(f"{i},x{i % 97},{i * 0.5}\n" for i in range(rows))).encode(),
                             compresslevel=1)
        with srv.client(timeout=120) as api:
            api.post("/namespaces", json={"name": "dur"})
            api.post("/namespaces/dur/datasets/d/rows", params={"create": "true"}, json=[{"a": -1, "b": "y", "c": 0.0}])
            r = api.post("/namespaces/dur/datasets/d/files", files={"file": ("big.csv.gz", data)})
            assert r.status_code == 202, r.text
            ingestion = r.json()["id"]
            deadline = time.monotonic() + 60
            while api.get(f"/ingestions/{ingestion}").json()["status"] != "processing":
                assert time.monotonic() < deadline
                time.sleep(0.05)
        srv.kill9()  # mid-parse: the sandboxed parser goes with it
        srv.stop()
        srv.start()
        with srv.client(timeout=120) as api:
            before = api.get("/namespaces/dur/datasets/d").json()
            assert before["rows"] in (1, rows + 1)  # the old snapshot, or (if it was that quick) the retry's
            done = api.get(f"/ingestions/{ingestion}/wait", params={"timeout": 120}).json()
            assert done["status"] == "succeeded", (done["status_message"], done["attempt"])
            assert done["attempt"] >= 2
            after = api.get("/namespaces/dur/datasets/d").json()
            assert after["rows"] == rows + 1  # every row once: nothing of the lost attempt
            count = api.post("/query", json={"query": "SELECT count(DISTINCT a) AS n FROM d", "namespace": "dur"})
            assert count.json()["rows"][0]["n"] == rows + 1
    finally:
        srv.stop()
        if pg:
            pg.drop()
