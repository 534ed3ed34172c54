"""``context.mcp.call(alias, params)`` answered by the worker: the run's process never holds
the MCP connection's credentials.

The sandbox lets a run create no socket of its own (the base seccomp filter refuses
``socket(AF_UNIX, …)``), so the run and its worker exchange files in a dir of the run's
own work dir (``RUNYARD_MCP_DIR``, ``.runyard-mcp``): the run writes ``<n>.req`` (one JSON
object: alias, params) and waits for ``<n>.resp``. A thread here, one per run whose tool
declares ``mcp_server_names``, polls that dir, refuses an alias outside the declared
servers (``mcp_tool_not_declared``), makes the call (``services.mcp_client.call_tool``, the
connection's timeout and error codes), appends a trace step (alias, duration, ok/error)
and answers — with the connection's secret values replaced by ``***``.

The run owns that dir and may plant symlinks in it: the dir is opened without following
links from the work root down, a request is read only when it is a regular file (no
link followed, at most ``MAX_REQUEST`` bytes), and an answer is written to a new file
(``O_EXCL``) renamed into place (a rename replaces a link, never its target).
"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runyard.services.errors import DomainError, NotFound
from runyard.services.mcp_client import call_tool
from runyard.worker.logs import scrub_value

log = logging.getLogger(__name__)

DIR_NAME = ".runyard-mcp"
POLL_S = 0.02
MAX_REQUEST = 1024 * 1024
MAX_ANSWER_ERROR = 4000


class RunMcpBridge:
    """Answers one run's ``context.mcp.call`` requests until ``stop``."""

    def __init__(self, platform: Any, *, workspace_id: str, servers: list[str], work_root: Path, workdir: Path,
                 secrets: list[str], on_trace: Callable[[dict[str, Any]], None]) -> None:
        self.platform = platform
        self.workspace_id = workspace_id
        self.servers = list(servers)
        self.work_root = work_root
        self.workdir = workdir
        self.secrets = secrets
        self.on_trace = on_trace
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="runyard-run-mcp", daemon=True)

    @property
    def path(self) -> Path:
        return self.workdir / DIR_NAME

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    # -- the exchange --------------------------------------------------------------------------
    def _open_dir(self) -> int | None:
        """The run's exchange dir, reached from the work root without following a link."""
        parts = [*self.workdir.relative_to(self.work_root).parts, DIR_NAME]
        fd = os.open(self.work_root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for part in parts:
                try:
                    child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except OSError:
                    return None
                os.close(fd)
                fd = child
            found, fd = fd, -1
            return found
        finally:
            if fd >= 0:
                os.close(fd)

    def _loop(self) -> None:
        dir_fd: int | None = None
        try:
            while not self._stop.wait(POLL_S):
                if dir_fd is None:
                    dir_fd = self._open_dir()
                    if dir_fd is None:
                        continue
                try:
                    names = sorted(n for n in os.listdir(dir_fd) if n.endswith(".req"))
                except OSError:
                    continue
                for name in names:
                    try:
                        self._answer(dir_fd, name)
                    except OSError as exc:  # the run ended and its dir went (or the run broke the dir)
                        if self._stop.is_set():
                            return
                        log.warning("the MCP bridge of run %s could not answer %s: %s", self.workdir.name, name, exc)
        except Exception:
            log.exception("the MCP bridge of run %s failed", self.workdir.name)
        finally:
            if dir_fd is not None:
                os.close(dir_fd)

    def _answer(self, dir_fd: int, name: str) -> None:
        stem = name[: -len(".req")]
        request = self._read(dir_fd, name)
        try:
            os.unlink(name, dir_fd=dir_fd)
        except OSError:
            pass
        if not stem.isalnum() or len(stem) > 64:
            return  # not one of context.mcp's names: nobody waits for it
        answer = self._call(request)
        tmp = f"{stem}.{uuid.uuid4().hex}.tmp"
        data = json.dumps(answer, default=str).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, f"{stem}.resp", src_dir_fd=dir_fd, dst_dir_fd=dir_fd)

    @staticmethod
    def _read(dir_fd: int, name: str) -> Any:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            data = os.read(fd, MAX_REQUEST + 1)
            if len(data) > MAX_REQUEST:
                return None
            return json.loads(data)
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)

    def _call(self, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict) or not isinstance(request.get("alias"), str):
            return {"ok": False, "code": "invalid_request", "message": "a request is a JSON object with an alias"}
        alias = request["alias"]
        params = request.get("params")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            return {"ok": False, "code": "invalid_request", "message": "params must be an object"}
        started = time.monotonic()
        answer = self._perform(alias, params)
        elapsed = round((time.monotonic() - started) * 1000, 1)
        attrs: dict[str, Any] = {"alias": alias, "duration_ms": elapsed, "ok": answer["ok"]}
        if not answer["ok"]:
            attrs["error"] = answer["code"]
        self.on_trace({"type": "trace", "name": "mcp.call", "attrs": attrs})
        return answer

    def _perform(self, alias: str, params: dict[str, Any]) -> dict[str, Any]:
        service = self.platform.mcp_client
        if not self.servers:
            return _refused(alias, self.servers)
        try:
            row, tool = service.resolve(self.workspace_id, alias, servers=self.servers)
        except NotFound:
            return _refused(alias, self.servers)
        found, secret_values = self.platform.connections.settings_for_run(self.workspace_id, [row.name])
        settings = found.get(row.name) or {}
        hidden = [*self.secrets, *secret_values]
        try:
            result = call_tool(service.outbound, settings, tool, params, stdio=service.stdio, connection_id=row.id)
        except DomainError as exc:
            return {"ok": False, "code": exc.code,
                    "message": str(scrub_value(exc.message, hidden))[:MAX_ANSWER_ERROR]}
        try:
            output = scrub_value(result["output"], hidden)
            text = str(scrub_value(result["text"], hidden))
        except ValueError as exc:
            return {"ok": False, "code": "mcp_server_error", "message": f"the MCP tool's result {exc}"}
        if result.get("isError"):
            return {"ok": False, "code": "mcp_tool_error",
                    "message": (text or "the MCP tool reported an error")[:MAX_ANSWER_ERROR]}
        return {"ok": True, "output": output}


def _refused(alias: str, servers: list[str]) -> dict[str, Any]:
    listed = ", ".join(repr(s) for s in servers) or "none"
    return {"ok": False, "code": "mcp_tool_not_declared",
            "message": f"MCP tool {alias!r} is not a tool of the MCP servers this tool declares ({listed}); "
                       "add its server to the tool's mcp_server_names"}
