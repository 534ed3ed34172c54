"""The Celery baseline of benchmarks/runs.py: the same no-op tool body as a Celery task, a
prefork worker, Redis as broker and result backend (``redis://127.0.0.1:6379``), and the
usual client loop: ``delay()`` for every task, then ``get()`` on each result.

Needs the ``bench`` extra (celery, redis) and a Redis server; a queue and result keys of
its own (they expire), so nothing else on that Redis is touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _common import stop_group

REDIS_URL = os.environ.get("RUNYARD_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

_APP = '''
import os
from celery import Celery

app = Celery("runyard_bench", broker=os.environ["BENCH_REDIS"], backend=os.environ["BENCH_REDIS"])
app.conf.update(task_default_queue=os.environ["BENCH_QUEUE"], result_expires=600, worker_prefetch_multiplier=4,
                broker_connection_retry_on_startup=True, task_serializer="json", result_serializer="json",
                accept_content=["json"])


@app.task(name="noop")
def noop():
    return None
'''


class CeleryBench:
    """A prefork Celery worker with ``concurrency`` processes, started for the benchmark."""

    def __init__(self, concurrency: int) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="runyard-bench-celery-")
        Path(self.tmp.name, "bench_celery_app.py").write_text(_APP)
        self.queue = f"runyard-bench-{uuid.uuid4().hex[:8]}"
        os.environ.update(BENCH_REDIS=REDIS_URL, BENCH_QUEUE=self.queue)
        sys.path.insert(0, self.tmp.name)
        import bench_celery_app  # type: ignore[import-not-found]

        self.app = bench_celery_app.app
        self.noop = bench_celery_app.noop
        self.concurrency = concurrency
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "bench_celery_app", "worker", "--pool=prefork",
             f"--concurrency={concurrency}", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "--loglevel=WARNING"],
            cwd=self.tmp.name, env={**os.environ}, stdout=subprocess.DEVNULL,
            stderr=(Path(self.tmp.name) / "worker.log").open("wb"), start_new_session=True)
        deadline = time.monotonic() + 60
        while True:  # ready once a task comes back
            try:
                self.noop.delay().get(timeout=5)
                return
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError((Path(self.tmp.name) / "worker.log").read_text()) from None

    def throughput(self, n: int) -> dict[str, Any]:
        """``n`` tasks: ``delay()`` each, then ``get()`` each; tasks/s until all are back."""
        started = time.perf_counter()
        results = [self.noop.delay() for _ in range(n)]
        submitted = time.perf_counter() - started
        for result in results:
            result.get(timeout=120)
        elapsed = time.perf_counter() - started
        return {"runs": n, "concurrency": self.concurrency, "submit_s": round(submitted, 3),
                "all_terminal_s": round(elapsed, 3), "runs_per_s": round(n / elapsed, 1)}

    def close(self) -> None:
        stop_group(self.proc)
        self.app.close()
        sys.path.remove(self.tmp.name)
        self.tmp.cleanup()
