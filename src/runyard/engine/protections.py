"""Which of the sandbox's protections this host enforces, each "active…" or "missing: why".

Shown by ``runyard doctor``, by ``/readyz`` to admin keys, and logged as a warning at
start for every missing one (``RUNYARD_SANDBOX=strict`` refuses to start instead).
"""

from __future__ import annotations

import os
import sys
import tempfile

from runyard.engine import sandbox
from runyard.engine.cgroups import RunGroups

NAMES = (
    "filesystem", "signals_and_abstract_sockets", "no_privileges", "syscall_filter",
    "memory_cap", "pids_cap", "run_kill", "host_services_blocked", "confinement_verified",
)


def check(groups: RunGroups | None, protected: list[str]) -> dict[str, str]:
    report: dict[str, str] = {}
    if not sys.platform.startswith("linux"):
        return {name: f"missing: not Linux ({sys.platform})" for name in NAMES}
    abi = sandbox.landlock_abi()
    report["filesystem"] = f"active (Landlock ABI {abi})" if abi else "missing: Landlock is not enabled in this kernel"
    report["signals_and_abstract_sockets"] = (
        f"active (Landlock ABI {abi} scopes)" if abi >= 6 else f"missing: needs Landlock ABI 6, this kernel has {abi}")
    who = "uid 0 with every capability dropped" if os.geteuid() == 0 else f"uid {os.geteuid()}"
    report["no_privileges"] = f"active ({who}, no_new_privs)"
    arch = sandbox.seccomp_arch()
    report["syscall_filter"] = ("active (seccomp: no AF_UNIX sockets, io_uring or namespaces; network: false "
                                "blocks all sockets)" if arch and _has_seccomp()
                                else "missing: seccomp filters need x86_64 or aarch64 with CONFIG_SECCOMP_FILTER")
    if groups is None:
        for name in ("memory_cap", "pids_cap", "run_kill", "host_services_blocked"):
            report[name] = "missing: no usable cgroup hierarchy"
    else:
        for name in ("memory_cap", "pids_cap", "run_kill", "host_services_blocked"):
            report[name] = groups.status.get(name, "missing")
    report["confinement_verified"] = verify(protected) if abi else "missing: no Landlock"
    return report


def _has_seccomp() -> bool:
    try:
        with open("/proc/self/status") as fh:
            return any(line.startswith("Seccomp:") for line in fh)
    except OSError:
        return False


def verify(protected: list[str]) -> str:
    """Confine a forked child as a run is, and check it can write its dir but not read a
    protected one (the data dir) or the host's ``/etc/hostname``."""
    with tempfile.TemporaryDirectory(prefix="runyard-verify-") as tmp:
        work, out = os.path.join(tmp, "w"), os.path.join(tmp, "o")
        os.mkdir(work)
        os.mkdir(out)
        targets = [p for p in protected if os.path.exists(p)] + ["/etc/hostname"]
        static = sandbox.Static.open(protected)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through the pipe
            os.close(read_end)
            try:
                sandbox.confine({"network": True}, static, work, out, None)
                with open(os.path.join(work, "probe"), "w") as fh:
                    fh.write("ok")
                leaked = []
                for target in targets:
                    try:
                        os.listdir(target) if os.path.isdir(target) else open(target).close()
                        leaked.append(target)
                    except OSError:
                        pass
                message = "leaked: " + ", ".join(leaked) if leaked else "ok"
            except BaseException as exc:  # noqa: BLE001
                message = f"error: {exc}"
            os.write(write_end, message.encode()[:4000])
            os._exit(0)
        os.close(write_end)
        static.close()
        with os.fdopen(read_end, "rb") as fh:
            message = fh.read().decode()
        os.waitpid(pid, 0)
    if message == "ok":
        return "active (a confined child wrote its dir and could not read " + ", ".join(targets) + ")"
    return f"missing: {message}"
