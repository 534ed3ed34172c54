"""Server-side checks of tool source: static validation and sandboxed signature inspection.

``validate_source`` only parses and compiles (``ast``/``compile``, never ``exec``), so
the server can run it on untrusted code. ``inspect_entrypoint`` has to import the
tool's module, so it does that in a sandboxed child: the same ``child.py`` runtime in
"inspect" mode, under the tool's own interpreter when it has one, with a scrubbed
environment, its own session (killed on timeout) and a throwaway working directory.

(Named ``introspect`` rather than ``inspect`` so it can never shadow the stdlib module.)
"""

from __future__ import annotations

import ast
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from runyard.engine import child as runtime

BASE_PATH = "/usr/local/bin:/usr/bin:/bin"


class SourceError(Exception):
    """Tool source that cannot be used: a syntax error or a missing entrypoint."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message if line is None else f"line {line}: {message}")
        self.message = message
        self.line = line


class InspectError(Exception):
    """Inspecting the entrypoint failed (import error, missing entrypoint, timeout...)."""

    def __init__(self, type_: str, message: str, traceback: str | None = None, output: str = "") -> None:
        super().__init__(f"{type_}: {message}")
        self.type = type_
        self.message = message
        self.traceback = traceback
        self.output = output  # what the module printed while being imported


def validate_source(code: str, entrypoint: str) -> None:
    """Check that ``code`` compiles and defines a top-level (async) function ``entrypoint``."""
    try:
        tree = ast.parse(code, filename="<tool>")
        # The full compile also catches errors ast.parse lets through
        # ('return' outside function, 'await' outside async function, ...).
        compile(tree, "<tool>", "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise SourceError(exc.msg, exc.lineno) from None
    except ValueError as exc:  # e.g. source containing null bytes
        raise SourceError(str(exc)) from None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entrypoint:
            return
    raise SourceError(f"no top-level function named {entrypoint!r} (expected 'def {entrypoint}(...)')")


def inspect_entrypoint(
    source_dir: Path | str,
    module: str,
    entrypoint: str,
    python: str | None = None,
    timeout_s: float = 30,
    *,
    memory_mb: int | None = None,
    sandbox: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Describe a tool's entry function, importing it only in a sandboxed child.

    Returns ``{"input_schema", "output_schema", "description", "is_async"}``; raises
    ``InspectError`` if the module cannot be imported, the entrypoint is missing, or
    the child times out or crashes. ``sandbox``: the policy the child confines itself by
    before importing anything of the tool (as a run does: ``sandbox.confine``), with
    ``protected`` naming what it must never read.
    """
    interpreter = python or sys.executable
    with tempfile.TemporaryDirectory(prefix="runyard-inspect-") as tmp:
        workdir = Path(tmp)
        env = {
            "PATH": BASE_PATH if python is None else f"{Path(python).parent}:{BASE_PATH}",
            "HOME": str(workdir),
            "TMPDIR": str(workdir / ".tmp"),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "RUNYARD_RUN_ID": "inspect",
            "RUNYARD_WORKDIR": str(workdir),
            "RUNYARD_OUTPUT_DIR": str(workdir / "out"),
        }
        spec = {
            "mode": "inspect",
            "run_id": "inspect",
            "source_dir": str(source_dir),
            "module": module,
            "entrypoint": entrypoint,
            "inputs": {},
            "env": env,
            "workdir": str(workdir),
            "output_dir": str(workdir / "out"),
            "limits": {"memory_mb": memory_mb, "max_open_files": 1024, "max_file_size_mb": 64},
        }
        if sandbox is not None:
            spec["sandbox"] = {**sandbox, "read": [*sandbox.get("read", []),
                                                   *([str(Path(python).parent.parent)] if python else [])]}
        return _run_inspection(interpreter, spec, workdir, timeout_s)


def _run_inspection(
    interpreter: str, spec: dict[str, Any], workdir: Path, timeout_s: float
) -> dict[str, Any]:
    request_fd = os.memfd_create("runyard-inspect")  # inheritable: the child reads it
    os.write(request_fd, json.dumps(spec).encode())
    events_r, events_w = os.pipe()
    os.set_inheritable(events_w, True)
    log_path = workdir / ".inspect-output.log"
    try:
        with open(log_path, "wb") as log:
            argv = [interpreter, "-I", "-u", runtime.__file__]
            argv += ["--events-fd", str(events_w), "--request-fd", str(request_fd)]
            proc = subprocess.Popen(
                argv,
                pass_fds=(events_w, request_fd),
                env=spec["env"],
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,  # a file, not a pipe: a chatty import cannot block the child
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    finally:
        os.close(events_w)
        os.close(request_fd)
    try:
        data, timed_out = _read_until_eof(events_r, time.monotonic() + timeout_s)
    finally:
        os.close(events_r)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
    output = log_path.read_text(encoding="utf-8", errors="replace")[-20000:]
    if timed_out:
        raise InspectError(
            "timeout", f"inspecting the entrypoint took longer than {timeout_s:g} s", output=output
        )
    result = None
    for line in data.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("type") == "result":
            result = event
    if result is None:
        code = proc.returncode
        what = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        raise InspectError("process_crashed", f"the inspection process {what}", output=output)
    if result.get("status") != "succeeded":
        error = result.get("error") or {}
        raise InspectError(
            str(error.get("type")), str(error.get("message")), error.get("traceback"), output=output
        )
    return result["output"]


def _read_until_eof(fd: int, deadline: float) -> tuple[bytes, bool]:
    chunks = []
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return b"".join(chunks), True
        if not poller.poll(remaining * 1000):
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
