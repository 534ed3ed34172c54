"""Untrusted work on data (parsing uploads, user SQL) run in the run sandbox.

The engine runs an entrypoint of ``runyard.data.jobs`` in a child process that can read
only the files given here and write only its own work and output dirs, with no network, a
memory cap and a time limit. The caller reads the output dir, checks what is there and
commits it; the dirs go when the caller is done with them.
"""

from __future__ import annotations

import math
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import runyard.data
from runyard.ids import new_id
from runyard.services.errors import DomainError

if TYPE_CHECKING:
    from runyard.engine.executor import Executor

# The dir holding the runyard package: the jobs module is imported from there.
PACKAGE_ROOT = Path(runyard.data.__file__).resolve().parents[2]
JOBS_MODULE = "runyard.data.jobs"


class JobFailed(DomainError):
    status = 500
    code = "job_failed"


@dataclass
class JobOutput:
    value: dict[str, Any]
    output_dir: Path
    work_dir: Path
    usage: dict[str, float] = field(default_factory=dict)

    def cleanup(self) -> None:
        shutil.rmtree(self.work_dir, ignore_errors=True)
        shutil.rmtree(self.output_dir, ignore_errors=True)


class SandboxedJobs:
    def __init__(self, executor: Callable[[], Executor], work_root: Path) -> None:
        self._executor = executor
        self.work_root = work_root

    def run(self, entrypoint: str, inputs: dict[str, Any], *, read_paths: list[str], memory_mb: int,
            timeout_s: float, on_event: Callable[[dict[str, Any]], None] | None = None,
            cancelled: threading.Event | None = None) -> JobOutput:
        """Run ``runyard.data.jobs.<entrypoint>(**inputs)`` confined; its JSON result, or
        JobFailed (the job crashed, ran out of memory or time, or was cancelled)."""
        from runyard.engine.executor import ExecRequest, Limits

        job_id = new_id("job")
        work = self.work_root / job_id
        out = self.work_root / f"{job_id}.out"
        request = ExecRequest(
            run_id=job_id, source_dir=PACKAGE_ROOT, module=JOBS_MODULE, entrypoint=entrypoint, inputs=inputs,
            env={"TMPDIR": str(work)}, workdir=work, output_dir=out,
            limits=Limits(timeout_s=timeout_s, memory_mb=memory_mb, address_space_mb=max(16384, memory_mb * 8),
                          cpu_s=math.ceil(timeout_s * (os.cpu_count() or 1)) + 1, max_file_size_mb=None),
            network=False, read_paths=[os.path.realpath(p) for p in read_paths])
        execution = self._executor().submit(request, on_event=on_event)
        if cancelled is not None:
            def watch() -> None:
                while not execution.done():
                    if cancelled.wait(0.25):
                        execution.cancel()
                        return
            threading.Thread(target=watch, daemon=True).start()
        result = execution.wait()
        output = JobOutput(result.output if isinstance(result.output, dict) else {}, out, work, result.usage)
        if result.status != "succeeded":
            output.cleanup()
            error = result.error or {}
            kind = error.get("type") or result.status
            messages = {"timed_out": f"it ran longer than {timeout_s:g} s", "cancelled": "it was cancelled",
                        "memory_limit_exceeded": f"it needed more than {memory_mb} MB of memory"}
            raise JobFailed(f"the sandboxed {entrypoint} job failed: "
                            f"{messages.get(kind) or messages.get(result.status) or error.get('message') or kind}",
                            code={"timed_out": "job_timeout", "cancelled": "cancelled"}.get(result.status,
                                                                                              "job_failed"),
                            details={"reason": kind})
        return output
