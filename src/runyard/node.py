"""Starting a node: ``up`` (API + workers), ``server`` (API only), ``worker`` (workers only)."""

from __future__ import annotations

import gc
import logging
import signal
import sys
import threading
from typing import Any

from runyard.config import Settings
from runyard.wiring import Platform

log = logging.getLogger("runyard")
# gen0 every 10,000 net allocations (CPython's default is 700): a request allocates hundreds
# of objects, nearly all freed by reference counting, so most collections would find nothing.
GC_THRESHOLDS = (10_000, 10, 10)


class WorkerHook:
    """Runs a worker for the lifetime of the ASGI app (the embedded ``up`` mode)."""

    def __init__(self, platform: Platform, slots: int) -> None:
        self.platform = platform
        self.slots = slots
        self.worker: Any = None
        self.data_worker: Any = None
        self.scheduler: Any = None
        self.workflow_driver: Any = None
        self.ingest_proxy_driver: Any = None
        self.mcp_driver: Any = None

    async def start(self, app: Any) -> None:
        from runyard.worker.data import DataWorker
        from runyard.worker.ingest_proxy import IngestProxyDriver
        from runyard.worker.mcp_tools import McpToolDriver
        from runyard.worker.scheduler import Scheduler
        from runyard.worker.supervisor import Worker
        from runyard.worker.workflows import WorkflowDriver
        self.worker = Worker(self.platform, self.slots)
        self.worker.start()
        self.data_worker = DataWorker(self.platform, data_slots(self.slots))
        self.data_worker.start()
        self.scheduler = Scheduler(self.platform)
        self.scheduler.start()
        self.workflow_driver = WorkflowDriver(self.platform)
        self.workflow_driver.start()
        self.ingest_proxy_driver = IngestProxyDriver(self.platform)
        self.ingest_proxy_driver.start()
        self.mcp_driver = McpToolDriver(self.platform)
        self.mcp_driver.start()

    async def stop(self, app: Any) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
            self.workflow_driver.stop()
            self.ingest_proxy_driver.stop()
            self.mcp_driver.stop()
        if self.worker is not None:
            self.worker.stop()
            self.data_worker.stop()


class ReaperHook:
    """On API-only nodes: fail or retry runs whose worker vanished (workers do it too)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.interval_s = platform.settings.heartbeat_s * 2
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    async def start(self, app: Any) -> None:
        self._thread = threading.Thread(target=self._loop, name="runyard-reaper", daemon=True)
        self._thread.start()

    async def stop(self, app: Any) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.platform.runs.reap_lost(stale_after_s=self.platform.settings.lease_s)
            except Exception:
                log.exception("reaper failed")


class EmailHook:
    """The SMTP listener for email triggers (``RUNYARD_SMTP_PORT``), on API nodes (``up``, ``server``)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.listener: Any = None

    async def start(self, app: Any) -> None:
        from runyard.triggers.smtp import EmailListener
        settings, service = self.platform.settings, self.platform.email_triggers
        self.listener = EmailListener(
            settings.smtp_host, settings.smtp_port, resolve_recipient=service.resolve_recipient,
            on_message=service.deliver, on_record=service.record,
            max_message_bytes=settings.smtp_max_message_mb * 1024 * 1024)
        self.listener.start()
        print(f"runyard: SMTP for email triggers on {settings.smtp_host}:{self.listener.port}", file=sys.stderr)

    async def stop(self, app: Any) -> None:
        if self.listener is not None:
            self.listener.stop()
            self.listener = None


class SettledHeapHook:
    """Once the node has started: what is alive then (modules, the app, pools, the
    worker) lives as long as the process, so it leaves the garbage collector's view and a
    full collection does not walk it (a walk that would land on whichever request set it off);
    young-generation collections run less often. The last hook to start."""

    async def start(self, app: Any) -> None:
        settle_heap()

    async def stop(self, app: Any) -> None:
        pass


def data_slots(run_slots: int) -> int:
    """File ingestions a worker node parses at once: each may use a few cores itself."""
    return max(1, min(2, run_slots // 4))


def settle_heap() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def build_app(settings: Settings, *, with_workers: bool) -> tuple[Any, Platform]:
    from runyard.api.app import create_app
    platform = Platform(settings)
    hooks: list[Any] = []
    if with_workers and settings.worker_slots > 0:
        hooks.append(WorkerHook(platform, settings.worker_slots))
    else:
        hooks.append(ReaperHook(platform))
    if settings.smtp_port:
        hooks.append(EmailHook(platform))
    hooks.append(SettledHeapHook())
    return create_app(platform, lifespan_hooks=hooks), platform


def announce_admin_key(platform: Platform) -> None:
    key, created = platform.bootstrap_admin_key()
    if created:
        print(f"runyard: admin API key (shown once, also saved to {platform.settings.data_dir / 'admin-key'}):",
              file=sys.stderr)
        print(f"  {key}", file=sys.stderr)


def run_server(settings: Settings, *, with_workers: bool = True, log_level: str = "info") -> None:
    import uvicorn
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app, platform = build_app(settings, with_workers=with_workers)
    announce_admin_key(platform)
    mode = "API + workers" if with_workers and settings.worker_slots else "API"
    print(f"runyard: {mode} on http://{settings.host}:{settings.port} (data dir {settings.data_dir}, "
          f"database {'postgresql' if platform.db.is_postgres else 'sqlite'})", file=sys.stderr)
    # proxy_headers off: nothing reads the client address or scheme, and the middleware
    # would otherwise run on every request.
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning",
                            access_log=False, lifespan="on", timeout_graceful_shutdown=10,
                            proxy_headers=False)
    try:
        uvicorn.Server(config).run()
    finally:
        platform.close()


def run_worker(settings: Settings, *, log_level: str = "info") -> None:
    from runyard.worker.supervisor import Worker
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    platform = Platform(settings)
    from runyard.worker.data import DataWorker
    from runyard.worker.ingest_proxy import IngestProxyDriver
    from runyard.worker.mcp_tools import McpToolDriver
    from runyard.worker.scheduler import Scheduler
    from runyard.worker.workflows import WorkflowDriver
    worker = Worker(platform, max(1, settings.worker_slots))
    data_worker = DataWorker(platform, data_slots(worker.slots))
    scheduler = Scheduler(platform)
    workflow_driver = WorkflowDriver(platform)
    ingest_proxy_driver = IngestProxyDriver(platform)
    mcp_driver = McpToolDriver(platform)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    worker.start()
    data_worker.start()
    scheduler.start()
    workflow_driver.start()
    ingest_proxy_driver.start()
    mcp_driver.start()
    settle_heap()
    print(f"runyard: worker {worker.id} with {worker.slots} slots "
          f"(database {'postgresql' if platform.db.is_postgres else 'sqlite'})", file=sys.stderr)
    try:
        stop.wait()
    finally:
        scheduler.stop()
        workflow_driver.stop()
        ingest_proxy_driver.stop()
        mcp_driver.stop()
        worker.stop()
        data_worker.stop()
        platform.close()
