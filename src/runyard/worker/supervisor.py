"""The worker: claims queued runs, executes each in a sandboxed child, records the end.

Threads, not processes: one dispatcher (claims and launches), one heartbeat (leases,
cancel requests, the reaper), and a small pool that finishes runs and builds
environments, so the executor's I/O thread never waits on the database.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import mimetypes
import os
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runyard.engine.executor import REUSE_DIR_PREFIX, ExecRequest, Limits
from runyard.ids import new_id
from runyard.services.run_execution import record_attempt
from runyard.services.runs import CANCELLED, FAILED, step_policy, will_retry
from runyard.services.storage import StorageQuotaExceeded
from runyard.services.tools import DEFAULT_RETRY_ON, retry_policy
from runyard.timeutil import rfc3339, utcnow
from runyard.worker.logs import RunLog, ValueTooDeep, redact_file, scrub_value
from runyard.worker.mcp_calls import DIR_NAME as MCP_DIR_NAME
from runyard.worker.mcp_calls import RunMcpBridge

log = logging.getLogger(__name__)
PROGRESS_MIN_INTERVAL_S = 0.25
LOG_RELAY_INTERVAL_S = 0.1  # how often a growing log is announced to other nodes
CPUS = os.cpu_count() or 1  # os.cpu_count() reads /sys on every call
HOSTNAME = socket.gethostname()


@dataclass
class ActiveRun:
    row: Any
    runlog: RunLog
    workdir: Path  # the run's cwd; its output dir is a sibling (see output_dir)
    secrets: list[str]
    execution: Any = None
    unsubscribe: Any = None
    cancelled: bool = False
    shutdown: bool = False  # killed because the worker is stopping
    last_progress: float = 0.0
    progress: dict[str, Any] | None = None  # the latest, written with the run's end too
    trace_path: Path | None = None
    mcp_bridge: RunMcpBridge | None = None  # answers context.mcp.call (tools declaring mcp servers)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def output_dir(self) -> Path:
        return self.workdir.with_name(self.workdir.name + ".out")


class Worker:
    def __init__(self, platform: Any, slots: int, *, worker_id: str | None = None) -> None:
        self.platform = platform
        self.settings = platform.settings
        self.slots = slots
        self.id = worker_id or new_id("wrk")
        self.active: dict[str, ActiveRun] = {}
        self._reserved = 0
        # Queued runs may be waiting (a run.queued was heard, or the last claim was full);
        # only then does a finished run wake the dispatcher. It also polls every second.
        self._backlog = True
        self._active_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=max(2, min(8, slots)), thread_name_prefix="runyard-finish")
        self._threads: list[threading.Thread] = []
        self._versions: dict[str, Any] = {}
        self._unsubscribe_queued: Any = None
        self.work_root = self.settings.data_dir / "work"

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.work_root.mkdir(parents=True, exist_ok=True)
        self.platform.workers.register(self.id, self.slots)
        _ = self.platform.executor  # start the fork server before the first run arrives
        self._unsubscribe_queued = self.platform.hub.subscribe("run.queued", lambda *_: self._on_queued())
        self.platform.runs.local_worker = self
        for target, name in ((self._dispatch_loop, "dispatch"), (self._heartbeat_loop, "heartbeat")):
            thread = threading.Thread(target=target, name=f"runyard-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._wake.set()
        log.info("worker %s started with %d slots", self.id, self.slots)

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop claiming; give running runs ``grace_s`` to end, then kill and record them."""
        self._stopping.set()
        self._wake.set()
        if self.platform.runs.local_worker is self:
            self.platform.runs.local_worker = None
        if self._unsubscribe_queued:
            self._unsubscribe_queued()
        deadline = time.monotonic() + grace_s
        while self.active and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._active_lock:
            leftovers = list(self.active.values())
        for active in leftovers:
            active.shutdown = True
            if active.execution is not None:
                active.execution.cancel()
        deadline = time.monotonic() + 3
        while self.active and time.monotonic() < deadline:
            time.sleep(0.05)
        for thread in self._threads:
            thread.join(timeout=2)
        self._pool.shutdown(wait=True)
        # Whatever is still ours goes to the reaper path right away, not after the lease.
        self.platform.workers.sign_off(self.id)
        self.platform.runs.reap_lost(stale_after_s=self.settings.lease_s, own_worker_id=self.id)

    # -- dispatch --------------------------------------------------------------------------
    def _dispatch_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self._claim_and_launch()
            except Exception:
                log.exception("dispatch failed")
                time.sleep(0.5)

    def _on_queued(self) -> None:
        self._backlog = True
        self._wake.set()

    # -- fast path: runs created in this process ---------------------------------------------
    def try_reserve(self) -> bool:
        """Reserve a slot for a run about to be created in this process."""
        with self._active_lock:
            if self._stopping.is_set() or len(self.active) + self._reserved >= self.slots:
                return False
            self._reserved += 1
            return True

    def release_reservation(self) -> None:
        with self._active_lock:
            self._reserved -= 1
        self._wake.set()

    def launch_reserved(self, row: Any) -> None:
        """Start a run inserted as ``running`` for this worker (called in the creating thread)."""
        self._launch(row, reserved=True)

    def _claim_and_launch(self) -> None:
        while not self._stopping.is_set():
            with self._active_lock:
                free = self.slots - len(self.active) - self._reserved
            if free <= 0:
                return
            rows = self.platform.runs.claim(self.id, free, self.settings.lease_s)
            for row in rows:
                self._launch(row)
            if len(rows) < free:
                self._backlog = False  # the queue is drained (until the next run.queued)
                return
            self._backlog = True

    def _retry_policy(self, row: Any) -> dict[str, Any]:
        """The run's tool version's ``retry_on`` and ``retry_backoff_s``."""
        try:
            return step_policy(row, retry_policy(self._version(row.tool_version_id)._mapping))
        except Exception:  # e.g. the version could not be read: the default policy
            log.exception("could not read the retry policy of run %s", row.id)
            return {"retry_on": list(DEFAULT_RETRY_ON), "retry_backoff_s": 0.0}

    def _version(self, version_id: str) -> Any:
        version = self._versions.get(version_id)
        if version is None:
            version = self.platform.tools.version_by_id(version_id)
            self._versions[version_id] = version
        return version

    def _launch(self, row: Any, *, reserved: bool = False) -> None:
        workdir = self.work_root / row.id
        secrets: list[str] = []
        runlog = None
        try:
            version = self._version(row.tool_version_id)
            if version.reuse_process:
                # The runs a process may take one after another live in one dir, where the
                # sandbox lets it write (executor.REUSE_DIR_PREFIX).
                workdir = self.work_root / f"{REUSE_DIR_PREFIX}{version.id}" / row.id
            secret_values = self.platform.secrets.reveal(row.workspace_id, list(version.required_secrets))
            secrets = list(secret_values.values())
            # The connections the tool declares, secret values included (context.connection);
            # those values are redacted from the run's log and output like its secrets.
            connection_settings, connection_secrets = self.platform.connections.settings_for_run(
                row.workspace_id, list(getattr(version, "connections", None) or []))
            if connection_settings:
                secrets += connection_secrets
                secret_values = {**secret_values, "RUNYARD_CONNECTIONS": json.dumps(connection_settings)}
            runlog = self._runlog(row.id, secrets)
            if row.attempt > 1:
                runlog.note(f"attempt {row.attempt} of {row.max_attempts}")
            active = ActiveRun(row=row, runlog=runlog, workdir=workdir, secrets=secrets)
            with self._active_lock:
                self.active[row.id] = active
                if reserved:  # the slot moves from reserved to active atomically
                    self._reserved -= 1
                    reserved = False
            active.unsubscribe = self.platform.hub.subscribe(f"run.cancel:{row.id}", lambda *_: self._cancel(row.id))
            if version.requirements:
                self._pool.submit(self._prepare_and_submit, active, version, secret_values)
            else:
                self._prepare_and_submit(active, version, secret_values)
        except Exception as exc:
            log.exception("could not start run %s", row.id)
            if runlog is None:
                runlog = self._runlog(row.id, secrets)
                active = ActiveRun(row=row, runlog=runlog, workdir=workdir, secrets=secrets)
                with self._active_lock:
                    self.active[row.id] = active
            if reserved:
                with self._active_lock:
                    self._reserved -= 1
            self._finish(row.id, FAILED, None, {"type": "internal_error", "message": str(exc), "traceback": None}, None)

    def _runlog(self, run_id: str, secrets: list[str]) -> RunLog:
        """The run's log; as it grows, its followers (``GET /runs/{id}/logs?follow``) hear of
        it on the event bus: at once in this process when someone follows, and on other
        nodes at most every 0.1 s (a follower there also rereads every second)."""
        hub = self.platform.hub
        topic = f"run.log:{run_id}"
        relayed = [0.0]

        def grew() -> None:
            now = time.monotonic()
            remote = hub.bridge is not None and now - relayed[0] >= LOG_RELAY_INTERVAL_S
            if remote:
                relayed[0] = now
            if remote or hub.has_subscribers(topic):
                hub.publish(topic, None, remote=remote)

        return RunLog(self.platform.runs.files.log(run_id), self.settings.log_cap_bytes, secrets, on_grow=grew)

    def _prepare_and_submit(self, active: ActiveRun, version: Any, secret_values: dict[str, str]) -> None:
        row = active.row
        try:
            python = None
            if version.requirements:
                from runyard.engine.environments import EnvironmentBuildFailed
                try:
                    python = self._environment(version.requirements, active)
                except EnvironmentBuildFailed as exc:
                    self._finish(row.id, FAILED, None, {
                        "type": "environment_build_failed",
                        "message": f"building the environment for {', '.join(version.requirements)} failed",
                        "traceback": exc.log[-20000:]}, None)
                    return
            if active.cancelled:
                self._finish(row.id, CANCELLED, None, {"type": "cancelled", "message": "cancelled by request",
                                                       "traceback": None}, None)
                return
            cwd, out = active.workdir, active.output_dir  # the child creates both
            inputs = dict(row.inputs)
            for key, meta in (row.input_files or {}).items():
                target = cwd / "inputs" / key / meta["filename"]
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.platform.runs.files.blob(meta["blob"]), target)
                inputs[key] = str(target)
            # A run's own timeout (POST /runs timeout_s, a workflow step's) replaces its tool's.
            timeout_s = float((row.run_policy or {}).get("timeout_s") or version.timeout_s)
            env = {
                "RUNYARD_TOOL": row.tool_name, "RUNYARD_TOOL_VERSION": str(row.tool_version),
                "RUNYARD_ATTEMPT": str(row.attempt), **secret_values,
            }
            # The workspace files the tool declares: where each one's blob is (None: not
            # uploaded), readable by this run and no other file of the blob store.
            files = self.platform.workspace_files.paths_for_run(row.workspace_id, version.files or [])
            env["RUNYARD_FILES"] = json.dumps(files)
            mcp_servers = list(getattr(version, "mcp_server_names", None) or [])
            if mcp_servers:
                # context.mcp.call: requests in a dir of the run's own, answered by this
                # worker, which alone holds the MCP connections' credentials.
                env["RUNYARD_MCP_DIR"] = str(cwd / MCP_DIR_NAME)
                active.mcp_bridge = RunMcpBridge(
                    self.platform, workspace_id=row.workspace_id, servers=mcp_servers, work_root=self.work_root,
                    workdir=cwd, secrets=active.secrets, on_trace=lambda event: self._on_event(active, event))
                active.mcp_bridge.start()
            request = ExecRequest(
                run_id=row.id, source_dir=self.platform.tools.source_dir(version), module=version.module,
                entrypoint=version.entrypoint, inputs=inputs, env=env, workdir=cwd, output_dir=out,
                limits=Limits(timeout_s=timeout_s, memory_mb=version.memory_mb,
                              # A backstop to the wall-clock timeout: more CPU than every core
                              # for the whole timeout can only mean the timeout failed.
                              cpu_s=math.ceil(timeout_s * CPUS) + 1),
                python=python, reuse_process=bool(version.reuse_process), network=bool(version.network),
                read_paths=[path for path in files.values() if path],
                output_vars=list(version.output_vars or []) if version.mode == "script" else None)
            self._record_attempt(row, request, version)
            execution = self.platform.executor.submit(
                request, on_output=active.runlog.write, on_event=lambda event: self._on_event(active, event))
            active.execution = execution
            if active.cancelled:
                execution.cancel()
            execution.add_done_callback(lambda result: self._end_soon(row.id, result))
        except Exception as exc:
            log.exception("could not start run %s", row.id)
            self._finish(row.id, FAILED, None, {"type": "internal_error", "message": f"could not start: {exc}",
                                                "traceback": None}, None)

    def _record_attempt(self, row: Any, request: ExecRequest, version: Any) -> None:
        """What this attempt runs under, for ``GET /runs/{id}?expand=execution,debug``: the
        limits and sandbox the engine is asked to apply, as the engine states them."""
        executor = self.platform.executor
        config = executor.sandbox
        try:
            record_attempt(self.platform.runs.files, row.id, {
                "attempt": row.attempt, "worker_id": self.id, "host": HOSTNAME, "pid": os.getpid(),
                "started_at": rfc3339(utcnow()),
                "environment": {"python": "own environment" if request.python else "shared (warm fork server)",
                                "requirements": list(version.requirements or []),
                                "reuse_process": request.reuse_process},
                "limits": dataclasses.asdict(request.limits), "network": request.network,
                "reuse_process": request.reuse_process,
                "sandbox": {"mode": config.mode, "max_processes": config.max_processes,
                            "host_filter": config.host_filter, "protections": dict(executor.protections)},
            })
        except OSError:  # only the record is lost: the run goes on
            log.exception("could not record the start of run %s", row.id)

    def _environment(self, requirements: list[str], active: ActiveRun) -> str:
        manager = self.platform.executor.environments  # builds confined like the runs
        active.runlog.note(f"preparing environment: {' '.join(requirements)}")
        started = time.monotonic()
        python = manager.ensure(requirements)
        active.runlog.note(f"environment ready in {time.monotonic() - started:.1f}s")
        return str(python)

    # -- events and end --------------------------------------------------------------------
    def _on_event(self, active: ActiveRun, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "progress":
            now = time.monotonic()
            active.progress = scrub_value({k: event.get(k) for k in ("fraction", "message")},  # type: ignore[assignment]
                                          active.secrets)
            if now - active.last_progress >= PROGRESS_MIN_INTERVAL_S or event.get("fraction") == 1:
                active.last_progress = now
                self._pool.submit(self.platform.runs.record_progress, active.row.id, active.progress)
        elif kind == "trace":
            event = {**event, "ts": event.get("ts") or rfc3339(utcnow())}
            path = self.platform.runs.files.trace(active.row.id)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as fh:
                try:
                    line = json.dumps(scrub_value(event, active.secrets), default=str)
                except ValueTooDeep as exc:  # kept, without what could not be read back
                    event = {**event, "attrs": {"runyard_error": f"the attributes {exc}"}}
                    line = json.dumps(scrub_value(event, active.secrets), default=str)
                fh.write(line + "\n")

    def _cancel(self, run_id: str) -> None:
        active = self.active.get(run_id)
        if active is None:
            return
        active.cancelled = True
        if active.execution is not None:
            active.execution.cancel()

    def _end_soon(self, run_id: str, result: Any) -> None:
        """Record a run's end (called on the engine's I/O thread).

        With no other run in flight nothing waits on that thread, so the end is written
        right here, one thread hand-off sooner — unless artifacts or leftovers need file
        work. Otherwise a pool thread writes it, so other runs' output keeps flowing.
        """
        if len(self.active) <= 1 and result.dirs_removed:
            self._on_done(run_id, result)
        else:
            self._pool.submit(self._on_done, run_id, result)

    def _on_done(self, run_id: str, result: Any) -> None:
        self._finish(run_id, result.status, result.output, result.error, result.usage,
                     dirs_removed=result.dirs_removed)

    def _finish(self, run_id: str, status: str, output: Any, error: dict[str, Any] | None,
                usage: dict[str, Any] | None, *, dirs_removed: bool = False) -> None:
        active = self.active.get(run_id)
        if active is None:
            return
        if active.mcp_bridge is not None:
            active.mcp_bridge.stop()
        try:
            active.runlog.close()
            if active.shutdown and status != "succeeded":
                # Killed because this worker is stopping, not by the user: a failure the
                # tool's retry policy may retry, recorded as such.
                status, error = FAILED, {
                    "type": "worker_shutdown", "traceback": None,
                    "message": f"the worker shut down during attempt {active.row.attempt}"}
            elif active.cancelled and status != CANCELLED and status != "succeeded":
                status, error = CANCELLED, {"type": "cancelled", "message": "cancelled by request", "traceback": None}
            try:
                output = scrub_value(output, active.secrets)
            except ValueTooDeep as exc:  # it could not be read back: a failure of the run
                status, output, error = FAILED, None, {"type": "output_not_serializable",
                                                       "message": f"the output {exc}", "traceback": None}
            error = scrub_value(error, active.secrets)  # type: ignore[assignment]
            artifacts: list[dict[str, Any]] = []
            refusal = None if dirs_removed else self._storage_refusal(active)
            if refusal is not None:  # over the workspace's storage quota: the run fails, no artifact is kept
                status, output, error = FAILED, None, refusal
            elif not dirs_removed:
                artifacts = self._collect_artifacts(run_id, active.output_dir, active.secrets)
            policy = self._retry_policy(active.row)
            if not dirs_removed and will_retry(active.row, status, error, policy["retry_on"]):
                # Back to the queue: this attempt's dirs go first, or the next attempt
                # (same paths, maybe on this worker at once) would lose its own to them.
                _remove_dir(active.workdir)
                _remove_dir(active.output_dir)
                dirs_removed = True
            self.platform.runs.finish(active.row, worker_id=self.id, status=status, output=output, error=error,
                                      usage=usage, log_bytes=active.runlog.size, log_truncated=active.runlog.truncated,
                                      artifacts=artifacts, progress=active.progress, **policy)
        except Exception:
            log.exception("could not record the end of run %s", run_id)
        finally:
            if active.unsubscribe:
                active.unsubscribe()
            if not dirs_removed:
                _remove_dir(active.workdir)
                _remove_dir(active.output_dir)
            with self._active_lock:
                if self.active.get(run_id) is active:  # not a next attempt launched meanwhile
                    del self.active[run_id]
            if self._backlog:  # a slot opened and runs may be waiting for one
                self._wake.set()

    def _storage_refusal(self, active: ActiveRun) -> dict[str, Any] | None:
        """The run's error when keeping its artifacts would pass the workspace's storage quota."""
        quota = self.platform.storage_quota
        if not active.output_dir.exists() or quota.limit(active.row.workspace_id) <= 0:
            return None
        size = sum(p.stat().st_size for p in active.output_dir.rglob("*") if p.is_file() and not p.is_symlink())
        if size == 0:
            return None
        try:
            quota.check(active.row.workspace_id, size)
        except StorageQuotaExceeded as exc:
            return {"type": "storage_quota_exceeded", "traceback": None,
                    "message": f"the run's artifacts ({size} bytes) were not kept: {exc.message}"}
        return None

    def _collect_artifacts(self, run_id: str, out: Path, secrets: list[str]) -> list[dict[str, Any]]:
        """Move the files under the output dir to blobs, secrets redacted from their names and
        from text files' contents (here, once, with the values the run had; see docs/api.md)."""
        try:
            with os.scandir(out) as entries:
                if next(entries, None) is None:
                    return []  # the common case, without a recursive glob
        except FileNotFoundError:
            return []
        found = []
        for path in sorted(out.rglob("*")):
            if not path.is_file() or path.is_symlink():
                continue
            rel = str(scrub_value(path.relative_to(out).as_posix(), secrets))
            if secrets and _is_text(path, rel):
                redact_file(path, secrets)
            blob_key = self.platform.runs.files.artifact_key(run_id, rel)
            digest = hashlib.sha256()
            with path.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
            size = path.stat().st_size
            self.platform.blobs.put_file(blob_key, path, move=True)
            found.append({"path": rel, "blob_key": blob_key, "size": size, "sha256": digest.hexdigest(),
                          "content_type": mimetypes.guess_type(rel)[0] or "application/octet-stream"})
        return found

    # -- heartbeat -------------------------------------------------------------------------
    def _heartbeat_loop(self) -> None:
        last_reap = 0.0
        while not self._stopping.wait(self.settings.heartbeat_s):
            try:
                self.platform.workers.heartbeat(self.id)
                ids = list(self.active)
                for run_id in self.platform.runs.heartbeat(self.id, ids, self.settings.lease_s):
                    self._cancel(run_id)
                for run_id in ids:
                    active = self.active.get(run_id)
                    if active is not None:
                        self.platform.runs.record_log_size(run_id, active.runlog.size, active.runlog.truncated)
                if time.monotonic() - last_reap >= self.settings.heartbeat_s * 2:
                    last_reap = time.monotonic()
                    # Right after renewing the leases of every run it holds.
                    if self.platform.runs.reap_lost(stale_after_s=self.settings.lease_s, own_worker_id=self.id):
                        self._wake.set()
            except Exception:
                log.exception("heartbeat failed")


_TEXT_TYPES = {"application/json", "application/xml", "application/javascript", "application/x-ndjson",
               "application/yaml", "application/x-yaml", "application/x-sh", "application/sql"}


def _is_text(path: Path, name: str) -> bool:
    """A text artifact (its secrets are redacted): by its type, or with no NUL in its first 8 KiB."""
    kind = mimetypes.guess_type(name)[0]
    if kind is not None:
        return kind.startswith("text/") or kind in _TEXT_TYPES or kind.endswith(("+json", "+xml"))
    with path.open("rb") as fh:
        return b"\0" not in fh.read(8192)


def _remove_dir(path: Path) -> None:
    """Remove a run's dir (usually the child already has); a tree walk only when needed."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:  # not empty: the tool left files behind
        shutil.rmtree(path, ignore_errors=True)
