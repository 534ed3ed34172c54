"""In-run helpers for tool code: progress, trace events, artifacts.

Tool code imports this as ``from runyard import context``. It runs inside the run's
child process, which may be a fork of the runyard fork server or a tool's own
virtualenv interpreter where runyard is not installed (the child runtime then loads
this file by path), so it must stay stdlib-only.

Events travel to the engine as JSON lines on a pipe the child runtime binds with
``_bind``. Outside a run (a tool tested locally) nothing is bound and events are
dropped, while ``artifact`` still writes files, so tool code runs unchanged.
"""

from __future__ import annotations

import _thread
import json
import math
import os
import time

# Kept light: every run imports this module, and in the lean fork server it is preloaded,
# so pathlib/shutil are imported where used and the lock comes from _thread (threading
# would add its after-fork work to every forked run).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, BinaryIO

__all__ = ["artifact", "connection", "files", "mcp", "output_dir", "progress", "run_id", "trace"]

_fd: int | None = None
# One os.write per event keeps lines whole; the lock covers tool threads that write
# events concurrently (pipe writes above PIPE_BUF are not atomic).
_lock = _thread.allocate_lock()


def _bind(fd: int | None) -> None:
    """Called by the child runtime: send events to ``fd`` from now on."""
    global _fd
    _fd = fd


def _emit(event: dict[str, Any]) -> None:
    if _fd is None:
        return
    event.setdefault("ts", time.time())
    _write(json.dumps(event, default=str, separators=(",", ":")).encode() + b"\n")


def _write(line: bytes) -> None:
    """Write one whole JSON line to the engine (the child runtime sends its result here)."""
    if _fd is None:
        return
    with _lock:
        view = memoryview(line)
        while view:
            written = os.write(_fd, view)
            view = view[written:]


def run_id() -> str | None:
    """The id of the run this code executes in, or None outside a run."""
    return os.environ.get("RUNYARD_RUN_ID")


def output_dir() -> Path:
    """Directory whose files become the run's artifacts (created on demand)."""
    from pathlib import Path

    path = Path(os.environ.get("RUNYARD_OUTPUT_DIR") or "runyard-output").absolute()
    path.mkdir(parents=True, exist_ok=True)
    return path


def progress(fraction: float, message: str | None = None) -> None:
    """Report progress as a fraction in [0, 1], with an optional status message."""
    value = float(fraction)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"progress fraction must be between 0 and 1, got {fraction!r}")
    _emit({"type": "progress", "fraction": value, "message": None if message is None else str(message)})


def trace(name: str, **attrs: Any) -> None:
    """Record a named trace event with JSON-able attributes (others are str()-ed)."""
    _emit({"type": "trace", "name": str(name), "attrs": attrs})


def artifact(path_or_name: str | os.PathLike[str], data: bytes | str | None = None) -> Path:
    """Put a file into the output directory and announce it as an artifact.

    With ``data``, ``path_or_name`` is a relative name inside the output directory and
    the data is written there. Without it, ``path_or_name`` is an existing file (or
    directory) which is copied in under its base name, unless it already lies inside
    the output directory. Returns the artifact's path.
    """
    import shutil
    from pathlib import Path

    out = output_dir()
    if data is not None:
        dest = _inside(out, Path(path_or_name))
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            dest.write_text(data, encoding="utf-8")
        else:
            dest.write_bytes(bytes(data))
    else:
        src = Path(path_or_name).absolute()
        if not src.exists():
            raise FileNotFoundError(f"artifact source does not exist: {src}")
        if src.resolve().is_relative_to(out.resolve()):
            dest = src
        else:
            dest = out / src.name
            if src.is_dir():
                shutil.copytree(src, dest, dirs_exist_ok=True)
            else:
                shutil.copyfile(src, dest)
    rel = dest.resolve().relative_to(out.resolve()).as_posix()
    size = dest.stat().st_size if dest.is_file() else None
    _emit({"type": "artifact", "path": rel, "size": size})
    return dest


def _inside(root: Path, name: Path) -> Path:
    """Resolve ``name`` under ``root``, refusing absolute names and ``..`` escapes."""
    if name.is_absolute():
        raise ValueError(f"artifact name must be relative to the output directory, got {str(name)!r}")
    dest = (root / name).resolve()
    if not dest.is_relative_to(root.resolve()) or dest == root.resolve():
        raise ValueError(f"artifact name escapes the output directory: {str(name)!r}")
    return dest


class FileNotDeclared(LookupError):
    """A workspace file the tool does not declare in its ``files``: a run reads only those."""


class _Files:
    """The workspace files the tool declares (``files: [name, ...]``), read-only.

    In a run, the worker passes where each declared file's bytes are (``RUNYARD_FILES``)
    and the sandbox lets the run read those and nothing else of the store. Outside a run
    (a tool tested locally), a name is a file in ``RUNYARD_FILES_DIR`` or the current
    directory, so tool code runs unchanged.
    """

    def _declared(self) -> dict[str, str | None] | None:
        raw = os.environ.get("RUNYARD_FILES")
        if raw is None:
            return None
        return json.loads(raw)

    def names(self) -> list[str]:
        """The names the tool declares (outside a run: none)."""
        return list(self._declared() or {})

    def path(self, name: str) -> str:
        """Where the file's bytes can be read (do not write there: it is read-only)."""
        declared = self._declared()
        if declared is None:
            return os.path.join(os.environ.get("RUNYARD_FILES_DIR") or ".", name)
        if name not in declared:
            listed = ", ".join(repr(n) for n in declared) or "none"
            raise FileNotDeclared(f"workspace file {name!r} is not declared by this tool (it declares: {listed}); "
                                  "add it to the tool's files to read it in runs")
        path = declared[name]
        if path is None:
            raise FileNotFoundError(f"workspace file {name!r} does not exist (the tool declares it, "
                                    "but no file of that name is uploaded)")
        return path

    def open(self, name: str) -> BinaryIO:
        """The workspace file ``name``, opened for binary reading."""
        return open(self.path(name), "rb")  # noqa: SIM115 (the caller closes it)

    def read_bytes(self, name: str) -> bytes:
        with self.open(name) as fh:
            return fh.read()


#: ``context.files.open(name)``: the workspace files the tool declares.
files = _Files()


class ConnectionNotDeclared(LookupError):
    """A connection the tool does not declare in its ``connections``: a run gets only those."""


def connection(name: str) -> dict[str, Any]:
    """The settings of connection ``name`` with its secret values (``password``,
    ``auth.token``, ``secret_access_key``, …) as the workspace's admin configured it:
    ``{"name", "type", "host", "port", …}``. Only connections the tool declares
    (``connections: [name, ...]``) are there; the tool imports its own driver.

    Outside a run, ``RUNYARD_CONNECTIONS`` (a JSON object of name → settings) stands in,
    so tool code runs unchanged in a local test.
    """
    raw = os.environ.get("RUNYARD_CONNECTIONS")
    declared: dict[str, Any] = json.loads(raw) if raw else {}
    if name not in declared:
        listed = ", ".join(repr(n) for n in declared) or "none"
        raise ConnectionNotDeclared(f"connection {name!r} is not declared by this tool (it declares: {listed}); "
                                    "add it to the tool's connections to use it in runs")
    settings = declared[name]
    if settings is None:
        raise LookupError(f"connection {name!r} does not exist (the tool declares it, but no connection of that "
                          "name is configured)")
    return dict(settings)


class McpToolNotDeclared(LookupError):
    """An MCP tool alias that is not a tool of the MCP servers the tool declares
    (``mcp_server_names``): a run calls only those."""


class McpCallFailed(RuntimeError):
    """An MCP call that gave no result: ``code`` is ``mcp_tool_error`` (the tool's own error),
    ``mcp_timeout``, ``mcp_server_error`` or ``invalid_request``; ``message`` the reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class _Mcp:
    """Tools of the MCP servers the tool declares (``mcp_server_names``), by alias
    ``mcp_<server>_<tool>``, called through the worker: the connection's credentials never
    enter the run's process. Each call is a step of the run's trace (``mcp.call``).

    The run cannot open sockets of its own, so a call is a request file in
    ``RUNYARD_MCP_DIR`` (a dir of its work dir) that the worker answers with another; calls
    from several threads are answered one after another.
    """

    _counter = 0
    _lock = _thread.allocate_lock()

    def call(self, alias: str, params: dict[str, Any] | None = None) -> Any:
        """Call MCP tool ``alias`` with ``params``: its structured content, or its text.
        Raises ``McpToolNotDeclared`` for a tool of a server the tool does not declare and
        ``McpCallFailed`` when the call gave no result (the worker bounds it by the
        connection's ``call_timeout_s``)."""
        where = os.environ.get("RUNYARD_MCP_DIR")
        if not where:
            raise McpToolNotDeclared(f"MCP tool {alias!r}: this tool declares no MCP servers (mcp_server_names), "
                                     "or this code does not run in a run")
        with _Mcp._lock:
            _Mcp._counter += 1
            stem = f"{os.getpid()}n{_Mcp._counter}"
        os.makedirs(where, exist_ok=True)
        request = json.dumps({"alias": str(alias), "params": params if params is not None else {}},
                             default=str).encode()
        tmp = os.path.join(where, f"{stem}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(request)
        os.replace(tmp, os.path.join(where, f"{stem}.req"))
        answer_path = os.path.join(where, f"{stem}.resp")
        delay = 0.005
        while True:
            try:
                with open(answer_path, "rb") as fh:
                    raw = fh.read()
                break
            except FileNotFoundError:
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        os.unlink(answer_path)
        answer = json.loads(raw)
        if answer.get("ok"):
            return answer.get("output")
        code, message = str(answer.get("code")), str(answer.get("message"))
        if code == "mcp_tool_not_declared":
            raise McpToolNotDeclared(message)
        raise McpCallFailed(code, message)


#: ``context.mcp.call(alias, params)``: the MCP tools of the servers the tool declares.
mcp = _Mcp()
