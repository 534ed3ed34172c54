"""A worker killed mid-ingestion with entity resolution (overwrite): the dataset keeps its
snapshot, the retry resolves against what is stored then, and every entity is one row."""

from __future__ import annotations

import gzip
import json
import time

import pytest

from tests.support.servers import Server


@pytest.mark.slow
def test_a_killed_worker_leaves_the_snapshot_and_the_retry_overwrites_once(backend, tmp_path):
    from tests.support.servers import PgDatabase

    pg = PgDatabase.create() if backend == "postgres" else None
    srv = Server(data_dir=tmp_path / "data", database_url=pg.url if pg else None,
                 extra_env={"RUNYARD_LEASE_S": "2"})
    keys = 600_000
    try:
        srv.start()
        data = gzip.compress(("k,v\n" + "".join(f"K{i},new{i}\n" for i in range(keys))).encode(), compresslevel=1)
        config = {"match_type": "ExactMatch", "columns": ["k"], "policy": "overwrite"}
        with srv.client(timeout=120) as api:
            api.post("/namespaces", json={"name": "erdur"})
            old = [{"k": f"k{i}", "v": f"old{i}"} for i in range(0, keys, 1000)]  # 600 keys, other case
            r = api.post("/namespaces/erdur/datasets/d/rows", params={"create": "true"},
                         json={"rows": old, "entity_resolution": config})
            assert r.status_code == 201, r.text
            r = api.post("/namespaces/erdur/datasets/d/files", files={"file": ("big.csv.gz", data)},
                         data={"options": json.dumps({"entity_resolution": config})})
            assert r.status_code == 202, r.text
            ingestion = r.json()["id"]
            deadline = time.monotonic() + 60
            while api.get(f"/ingestions/{ingestion}").json()["status"] != "processing":
                assert time.monotonic() < deadline
                time.sleep(0.05)
        srv.kill9()
        srv.stop()
        srv.start()
        with srv.client(timeout=120) as api:
            before = api.get("/namespaces/erdur/datasets/d").json()
            assert before["rows"] in (len(old), keys)  # the old snapshot, or (if it was that quick) the retry's
            done = api.get(f"/ingestions/{ingestion}/wait", params={"timeout": 180}).json()
            assert done["status"] == "succeeded", (done["status_message"], done["attempt"])
            report = done["attributes"]["entity_resolution"]
            assert report["counts"]["overwritten"] + report["counts"]["created"] == keys
            after = api.get("/namespaces/erdur/datasets/d").json()
            assert after["rows"] == keys  # one row per entity: the old rows replaced, nothing twice
            q = api.post("/query", json={"query": "SELECT count(DISTINCT lower(k)) AS n, count(*) FILTER "
                                                  "(WHERE v LIKE 'old%') AS old FROM d", "namespace": "erdur"})
            assert q.json()["rows"][0] == {"n": keys, "old": 0}
    finally:
        srv.stop()
        if pg:
            pg.drop()
