"""The MCP driver of a worker node: makes the calls of ``mcp_tool`` runs (services.mcp_client).

A run is taken by setting its ``worker_id`` (one driver wins) with a lease the driver
renews while the call runs; a start publishes ``mcp_tool.start`` (bridged to every node on
PostgreSQL) and a sweep every ``sweep_s`` takes the runs whose poke was lost and fails
(``worker_lost``) those whose lease expired — their node died mid-call; the call is not
made again, an MCP tool may have side effects. The calls are made here, in the trusted worker, with
the connection's secrets: they never reach a user process.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from runyard.services.mcp_client import START_TOPIC
from runyard.worker.logs import scrub_value

if TYPE_CHECKING:
    from runyard.wiring import Platform

log = logging.getLogger(__name__)
SWEEP_S = 2.0


class McpToolDriver:
    def __init__(self, platform: Platform, *, threads: int = 4, sweep_s: float = SWEEP_S) -> None:
        self.service = platform.mcp_client
        # This node runs the stdio MCP servers its calls need (services.mcp_stdio).
        if self.service.stdio is None:
            self.service.stdio = platform.stdio_servers()
        self.hub = platform.hub
        self.owner = f"mcp-{uuid.uuid4().hex[:16]}"
        self.lease_s = platform.settings.lease_s
        self.sweep_s = sweep_s
        self._held: set[str] = set()
        self._held_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="runyard-mcp-call")
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        self._unsubscribe: Any = None

    def start(self) -> None:
        self._unsubscribe = self.hub.subscribe(START_TOPIC, self._on_start)
        self._sweeper = threading.Thread(target=self._sweep_loop, name="runyard-mcp-sweep", daemon=True)
        self._sweeper.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.service.stdio is not None:
            self.service.stdio.close()

    def _on_start(self, topic: str, run_id: Any) -> None:
        if isinstance(run_id, str) and not self._stop.is_set():
            self._pool.submit(self._run, run_id)

    def _run(self, run_id: str) -> None:
        try:
            with self._held_lock:
                self._held.add(run_id)
            if self.service.claim(run_id, self.owner, self.lease_s):
                self.service.perform(run_id, scrub_value)
        except Exception:
            log.exception("mcp tool run %s failed in the driver", run_id)
        finally:
            with self._held_lock:
                self._held.discard(run_id)

    def _sweep_loop(self) -> None:
        # Leases are renewed a few times per lease; the sweep for lost pokes and dead nodes
        # runs every ``sweep_s``.
        interval = max(0.2, min(self.sweep_s, self.lease_s / 3))
        last_sweep = time.monotonic()
        while not self._stop.wait(interval):
            try:
                with self._held_lock:
                    held = sorted(self._held)
                self.service.renew(held, self.owner, self.lease_s)
            except Exception:
                log.exception("renewing mcp tool leases failed")
            if time.monotonic() - last_sweep < self.sweep_s:
                continue
            last_sweep = time.monotonic()
            try:
                for run_id in self.service.reap_lost():
                    log.warning("mcp tool run %s failed: its node died mid-call (worker_lost)", run_id)
                for run_id in self.service.pending():
                    self._on_start(START_TOPIC, run_id)
            except Exception:
                log.exception("the mcp tool sweep failed")
