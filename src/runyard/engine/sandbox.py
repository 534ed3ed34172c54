"""Confining a run's process: what it may read, write, reach and signal.

Stdlib-only (ctypes over raw syscalls) and free of runyard imports: it is loaded by path
in fork servers running under a tool's own interpreter, as ``child.py`` is.

A run's process confines itself right after ``child.prepare`` made its dirs and before
any of the tool's code runs (``confine``):

1. it joins its run's cgroups (paths in the request; the executor made them, see
   ``cgroups.py``): a memory cap for the run as a whole, a process cap, and a group the
   executor empties when the run ends (daemons and ``setsid`` included); the network
   filter on the cgroup2 group of its fork server keeps it off this host's own
   addresses (``netfilter.py``);
2. Landlock: read-only on the Python runtime and its packages, the system libraries
   and a short list of ``/etc`` files, its tool version's code; read-write on its own
   work, tmp and output dirs; its own ``/proc/<pid>``; signals and abstract unix
   sockets scoped to its own domain;
3. with ``network: false``, a stricter seccomp filter: no socket at all.

What does not depend on the run is done before it: its fork server gave up every
capability (bounding set kept empty by securebits, ``capset`` to zero, ``no_new_privs``)
and installed the base seccomp filter (no new ``AF_UNIX`` sockets — path-named sockets
such as PostgreSQL's are outside Landlock's filesystem rules here —, no ``io_uring``,
which would bypass the filter, no new namespaces) once, for all its children; and it
made each child's Landlock ruleset, with the rules every run holds, right before
forking it (``ruleset_for_child``), where adding them costs far less than in a fresh
fork whose every first touch of a page copies it.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

# --------------------------------------------------------------------------- syscalls

_SYS_LANDLOCK_CREATE_RULESET = 444  # the same number on every architecture
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1

_ARCHES = {  # machine -> (AUDIT_ARCH, capset, socket, clone, unshare, setns, clone3, io_uring_setup)
    "x86_64": (0xC000003E, 126, 41, 56, 272, 308, 435, 425),
    "aarch64": (0xC00000B7, 91, 198, 220, 97, 268, 435, 425),
}

# Landlock's filesystem rights (bits; the rights up to MAKE_SYM are ABI 1's, see handled_fs)
# and scopes (ABI 6).
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3 and 5
SCOPE_ABSTRACT_UNIX, SCOPE_SIGNAL = 1 << 0, 1 << 1

_FILE_ONLY = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV  # rights a file rule may hold
READ = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR

_PR_SET_SECUREBITS = 28
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
# NOROOT, NO_SETUID_FIXUP, KEEP_CAPS_LOCKED, NO_CAP_AMBIENT_RAISE, each with its lock.
_SECUREBITS = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80
_CAP_VERSION_3 = 0x20080522

_CLONE_NEW_ANY = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000

_libc: Any = None


def _lib() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
        _libc.prctl.restype = ctypes.c_int
    return _libc


class SandboxError(OSError):
    """A protection could not be applied to a run (it then does not run at all)."""


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise SandboxError(err, f"{what}: {os.strerror(err)}")
    return result


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is absent or disabled."""
    try:
        version = _lib().syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                                 ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION))
    except (OSError, AttributeError):
        return 0
    return max(0, int(version))


def handled_fs(abi: int) -> int:
    rights = (1 << 13) - 1
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def seccomp_arch() -> tuple[int, ...] | None:
    return _ARCHES.get(platform.machine())


# --------------------------------------------------------------------------- what a run may read

# /etc: what the C library, TLS and time zones read; never the whole directory (shadow, keys).
ETC_FILES = (
    "/etc/ld.so.cache", "/etc/localtime", "/etc/timezone", "/etc/resolv.conf", "/etc/hosts", "/etc/host.conf",
    "/etc/nsswitch.conf", "/etc/gai.conf", "/etc/services", "/etc/protocols", "/etc/ssl", "/etc/ca-certificates",
    "/etc/pki", "/etc/mime.types", "/etc/passwd", "/etc/group", "/etc/os-release", "/etc/alternatives",
    "/etc/fonts",
)
SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin", "/sys/devices/system/cpu")
PROC_FILES = ("/proc/meminfo", "/proc/cpuinfo", "/proc/stat", "/proc/loadavg", "/proc/version",
              "/proc/sys/kernel/random", "/proc/sys/vm/overcommit_memory",
              # CPU quota files, which runtimes (DuckDB, the JVM, Go) read to size their thread pools.
              "/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us",
              "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us")
DEV_RW = ("/dev/null", "/dev/zero", "/dev/full")
DEV_READ = ("/dev/random", "/dev/urandom")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def runtime_paths(extra: Iterable[str] = ()) -> list[str]:
    """The Python runtime of this process: prefixes, the stdlib and every ``sys.path`` dir."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.realpath(sys.executable))}
    paths.update(p for p in sys.path if p and os.path.isabs(p))
    # runyard's own package (the child runtime and runyard.context, loaded by path under a
    # tool's interpreter): never anything above it, which may hold the data dir.
    paths.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths.update(extra)
    return sorted(paths)


def read_paths(protected: Iterable[str], extra: Iterable[str] = (),
               requested: Iterable[str] = ()) -> tuple[list[tuple[str, int]], list[str]]:
    """(path, rights) rules every run of this process may hold, and the paths left out.

    A path is left out when it holds one of ``protected`` (the data dir, key files): a
    ``sys.path`` entry such as the project root with the data dir inside would expose it.
    ``requested`` paths come from users (a requirement's local path): those are left out
    when they lie inside a protected path, too.
    """
    protected = [os.path.realpath(p) for p in protected]
    rules: list[tuple[str, int]] = []
    excluded: list[str] = []
    for path in requested:
        real = os.path.realpath(path)
        if os.path.exists(real) and not any(_inside(p, real) or _inside(real, p) for p in protected):
            rules.append((real, READ))
        else:
            excluded.append(path)
    dirs: list[str] = []
    for path in [*runtime_paths(extra), *SYSTEM_DIRS]:
        real = os.path.realpath(path)
        if not os.path.exists(real):
            continue
        if any(_inside(p, real) for p in protected):
            excluded.append(path)
            continue
        dirs.append(real)
    for real in sorted(set(dirs)):  # a dir inside another already listed needs no rule (nor fd)
        if not any(_inside(real, outer) for outer in dirs if outer != real):
            rules.append((real, READ))
    for path in (*ETC_FILES, *PROC_FILES, *DEV_READ):
        if os.path.exists(path):
            rules.append((path, READ))
    for path in DEV_RW:
        if os.path.exists(path):
            rules.append((path, FS_READ_FILE | FS_WRITE_FILE | FS_TRUNCATE | FS_IOCTL_DEV))
    return rules, excluded


class Static:
    """What every run of one fork server shares: the ABI, the rules' opened paths, the
    seccomp filters. Made once, in the fork server (its fds are inherited by its forks)."""

    def __init__(self, abi: int, rules: list[tuple[int, int, bool]], excluded: list[str]) -> None:
        self.abi = abi
        self.rules = rules  # (O_PATH fd, rights, is a dir)
        # The rules' path_beneath structs, packed once: a run passes pointers into this.
        fs = handled_fs(abi)
        self.packed = ctypes.create_string_buffer(b"".join(
            struct.pack("=Qi", rights & (fs if is_dir else fs & _FILE_ONLY), fd) for fd, rights, is_dir in rules) or b"\0")
        self.excluded = excluded
        self.filters: dict[bool, bytes] = {}
        # Set in a spare before its run arrives (``ahead``): privileges gone, the base
        # seccomp filter in place, a ruleset holding the static rules.
        self.dropped = False
        self.seccomp_installed = False
        # A forked child's ruleset, made by its fork server (``ruleset_for_child``); a child
        # has no static paths open (its fork server keeps them), so it cannot make one.
        self.pending_ruleset: int | None = None
        self.own_proc_added = False  # the pending ruleset has the process's /proc entry

    @classmethod
    def open(cls, protected: Iterable[str], extra: Iterable[str] = (), requested: Iterable[str] = ()) -> Static:
        abi = landlock_abi()
        paths, excluded = read_paths(protected, extra, requested)
        rules = []
        for path, rights in paths:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            rules.append((fd, rights, os.path.isdir(path)))
        static = cls(abi, rules, excluded)
        _syscall4()  # made here, before any fork: making a ctypes prototype is slow
        for network in (True, False):
            static.filters[network] = seccomp_filter(network=network)
        return static

    def fds(self) -> list[int]:
        return [fd for fd, _, _ in self.rules]

    def close_paths(self) -> None:
        """Close the opened paths (rulesets made from them keep what they need)."""
        fds = sorted(self.fds())
        if fds and fds[-1] - fds[0] + 1 == len(fds):
            os.closerange(fds[0], fds[-1] + 1)  # opened one after another: one syscall
        else:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.rules = []

    def close(self) -> None:
        self.close_paths()
        ruleset, self.pending_ruleset = self.pending_ruleset, None
        if ruleset is not None:
            os.close(ruleset)


# --------------------------------------------------------------------------- confining


def ruleset_for_child(static: Static) -> int | None:
    """In a fork server, right before it forks a child: a ruleset holding the static rules,
    for that child only (the server closes its copy after the fork). Adding rules costs the
    server, whose pages are warm, a fraction of what it costs a fresh fork, whose every
    first touch of a page copies it."""
    if static.abi <= 0 or not static.rules:
        return None
    return _static_ruleset(static)


def take_ruleset(static: Static, ruleset: int | None) -> None:
    """In the child forked after ``ruleset_for_child``: the ruleset its run will complete.
    The static paths' fds are its fork server's (the child closes its copies)."""
    static.rules = []
    static.pending_ruleset = ruleset


def ahead(static: Static) -> None:
    """In a spare, before its run: the rule for its own /proc entry (its pid is known),
    which also brings the pages of this code path in before the run needs them."""
    if static.pending_ruleset is not None and not static.own_proc_added:
        _add_path_rule(static.pending_ruleset, handled_fs(static.abi), f"/proc/{os.getpid()}",
                       READ | FS_WRITE_FILE, True)
        static.own_proc_added = True


def harden_server(static: Static) -> None:
    """In a fork server, before it forks anything: what every run gives up anyway (its
    privileges, and the syscalls of the base seccomp filter) is given up once, here, and
    inherited. The server needs neither: its children make their dirs in root-owned dirs
    and join their cgroups as uid 0, which takes no capability."""
    drop_privileges()
    static.dropped = True
    if static.filters.get(True):
        install_seccomp(static.filters[True])
        static.seccomp_installed = True


def confine(policy: Mapping[str, Any], static: Static | None, workdir: str, output_dir: str,
            source_dir: str | None) -> None:
    """Apply the run's sandbox to this process (irreversible). Raises SandboxError when a
    protection cannot be applied (the run then fails without running any of its code)."""
    for procs in policy.get("cgroups") or ():
        _join_cgroup(procs)
    if static is None or not static.dropped:
        drop_privileges()
    # network: false is the seccomp filter's (no socket at all): the ruleset is the same.
    network = bool(policy.get("network", True))
    if static is not None and static.abi > 0:
        write_root = policy.get("write_root")
        writable = [write_root] if write_root else [workdir, output_dir]
        ruleset, static.pending_ruleset = static.pending_ruleset, None
        if ruleset is None:
            if not static.rules:
                raise SandboxError(0, "no Landlock ruleset was prepared for this process")
            ruleset = _static_ruleset(static)
        restrict_paths(static, ruleset, writable, [source_dir] if source_dir else [],
                       list(policy.get("read") or ()))
    if static is not None and (not static.seccomp_installed or not network):
        filt = static.filters.get(network)
        if filt:
            install_seccomp(filt)  # filters stack: the stricter answer wins
    if static is not None:
        static.close()  # the tool gets none of its fds (nor has them count against its limit)


def _join_cgroup(procs: str) -> None:
    try:
        fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise SandboxError(exc.errno or 0, f"joining the run's cgroup {procs}: {exc.strerror}") from None
    try:
        os.write(fd, b"0")  # "0": the writing process itself
    except OSError as exc:
        raise SandboxError(exc.errno or 0, f"joining the run's cgroup {procs}: {exc.strerror}") from None
    finally:
        os.close(fd)


def drop_privileges() -> None:
    """No capability left or obtainable: capabilities zeroed, ``no_new_privs`` (so no exec,
    of a setuid or any root binary, gains any), securebits locked so uid 0 means nothing."""
    libc = _lib()
    libc.prctl(_PR_SET_SECUREBITS, _SECUREBITS, 0, 0, 0)  # needs CAP_SETPCAP: not an unprivileged user's
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    header = struct.pack("=Ii", _CAP_VERSION_3, 0)
    data = bytes(24)  # two {effective, permitted, inheritable} u32 triples, all zero
    arch = seccomp_arch()
    _check(libc.syscall(arch[1] if arch else 126, header, data), "dropping capabilities")


def _static_ruleset(static: Static) -> int:
    """A new Landlock ruleset holding the rules every run of this server gets."""
    libc = _lib()
    abi = static.abi
    fs = handled_fs(abi)
    scoped = (SCOPE_ABSTRACT_UNIX | SCOPE_SIGNAL) if abi >= 6 else 0
    attr = struct.pack("=QQQ", fs, 0, scoped) if abi >= 6 else struct.pack("=QQ", fs, 0) if abi >= 4 \
        else struct.pack("=Q", fs)
    abuf = ctypes.create_string_buffer(attr, len(attr))
    ruleset = _check(libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, abuf, ctypes.c_size_t(len(attr)),
                                  ctypes.c_uint32(0)), "creating the Landlock ruleset")
    # (made by the fork server before each fork: not on a run's path)
    try:
        add, base = _syscall4(), ctypes.addressof(static.packed)
        for n in range(len(static.rules)):
            _check(add(_SYS_LANDLOCK_ADD_RULE, ruleset, _RULE_PATH_BENEATH, base + 12 * n, 0), "adding a Landlock rule")
    except BaseException:
        os.close(ruleset)
        raise
    return ruleset


_syscall4_fn: Any = None


def _syscall4() -> Any:
    """``syscall(long, int, int, void *, unsigned)`` with its argument types fixed once."""
    global _syscall4_fn
    if _syscall4_fn is None:
        proto = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_long, ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
                                 ctypes.c_uint, use_errno=True)
        _syscall4_fn = proto(("syscall", _lib()))
    return _syscall4_fn


def _add_path_rule(ruleset: int, fs: int, path: str, rights: int, is_dir: bool | None) -> None:
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        _add_rule(ruleset, fs, fd, rights, os.path.isdir(path) if is_dir is None else is_dir)
    finally:
        os.close(fd)


def _add_rule(ruleset: int, fs: int, fd: int, rights: int, is_dir: bool) -> None:
    rights &= fs if is_dir else (fs & _FILE_ONLY)
    rule = struct.pack("=Qi", rights, fd)
    _check(_lib().syscall(_SYS_LANDLOCK_ADD_RULE, ruleset, _RULE_PATH_BENEATH, rule, 0), "adding a Landlock rule")


def restrict_paths(static: Static, ruleset: int, writable: list[str], readable: list[str],
                   extra_readable: list[str]) -> None:
    """Add the run's own paths to ``ruleset`` and restrict this process by it (closes it)."""
    fs = handled_fs(static.abi)
    try:
        if not static.own_proc_added:
            _add_path_rule(ruleset, fs, f"/proc/{os.getpid()}", READ | FS_WRITE_FILE, True)  # its own /proc entry
        for path in writable:
            _add_path_rule(ruleset, fs, path, fs, True)
        for path in readable:
            _add_path_rule(ruleset, fs, path, READ, True)
        for path in extra_readable:
            _add_path_rule(ruleset, fs, path, READ, None)
        _check(_lib().syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0), "applying the Landlock ruleset")
    finally:
        os.close(ruleset)


# --------------------------------------------------------------------------- seccomp

_RET_ALLOW = 0x7FFF0000
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_EACCES, _EPERM, _ENOSYS = 13, 1, 38


def seccomp_filter(*, network: bool) -> bytes:
    """A classic-BPF filter: see the module docstring. Empty on unknown architectures."""
    arch = seccomp_arch()
    if arch is None:
        return b""
    audit_arch, _capset, nr_socket, nr_clone, nr_unshare, nr_setns, nr_clone3, nr_uring = arch
    LD_W_ABS, JEQ_K, JSET_K, JGE_K, RET_K = 0x20, 0x15, 0x45, 0x35, 0x06

    prog: list[tuple[int, int, int, int]] = []

    def op(code: int, k: int, jt: int = 0, jf: int = 0) -> None:
        prog.append((code, jt, jf, k))

    deny_eacces = _RET_ERRNO | _EACCES
    deny_eperm = _RET_ERRNO | _EPERM
    op(LD_W_ABS, 4)  # seccomp_data.arch
    op(JEQ_K, audit_arch, 1, 0)
    op(RET_K, _RET_KILL_PROCESS)  # a foreign syscall ABI (i386 on x86_64) would dodge the numbers below
    op(LD_W_ABS, 0)  # seccomp_data.nr
    if audit_arch == 0xC000003E:
        op(JGE_K, 0x40000000, 0, 1)  # the x32 ABI
        op(RET_K, deny_eperm)
    op(JEQ_K, nr_clone3, 0, 1)
    op(RET_K, _RET_ERRNO | _ENOSYS)  # glibc falls back to clone, whose flags can be checked
    for nr in (nr_uring, nr_unshare, nr_setns):
        op(JEQ_K, nr, 0, 1)
        op(RET_K, deny_eperm)
    if network:  # socket(AF_UNIX, ...) only
        op(JEQ_K, nr_socket, 0, 4)
        op(LD_W_ABS, 16)  # args[0] (low half): the address family
        op(JEQ_K, 1, 0, 1)  # AF_UNIX
        op(RET_K, deny_eacces)
        op(RET_K, _RET_ALLOW)
    else:  # no socket at all
        op(JEQ_K, nr_socket, 0, 1)
        op(RET_K, deny_eacces)
    op(JEQ_K, nr_clone, 0, 3)
    op(LD_W_ABS, 16)  # args[0]: the clone flags
    op(JSET_K, _CLONE_NEW_ANY, 0, 1)
    op(RET_K, deny_eperm)
    op(RET_K, _RET_ALLOW)
    return b"".join(struct.pack("=HBBI", code, jt, jf, k) for code, jt, jf, k in prog)


def install_seccomp(filt: bytes) -> None:
    count = len(filt) // 8
    buf = ctypes.create_string_buffer(filt, len(filt))
    fprog = struct.pack("=HxxxxxxQ", count, ctypes.addressof(buf))
    fbuf = ctypes.create_string_buffer(fprog, len(fprog))
    _check(_lib().prctl(_PR_SET_SECCOMP, ctypes.c_ulong(_SECCOMP_MODE_FILTER), fbuf, 0, 0), "installing seccomp")


# --------------------------------------------------------------------------- confined commands


def confined_command(policy: Mapping[str, Any], argv: list[str]) -> list[str]:
    """``argv`` run under ``policy`` (``cgroups``, ``protected``, ``read``, ``write``, and
    optionally ``network`` — false: no socket at all, true: no new ``AF_UNIX`` socket, as a
    run —, ``memory_mb`` and ``cpu_s`` rlimits): the command starts this file, which
    confines itself and then execs ``argv``. For work on untrusted input outside a run, such
    as building a tool's environment (its packages' build scripts run there) or a stdio MCP
    server (services.mcp_stdio)."""
    import json

    return [sys.executable, "-I", os.path.abspath(__file__), json.dumps(dict(policy)), "--", *argv]


def _exec_confined(args: list[str]) -> None:
    import json

    policy, argv = json.loads(args[0]), args[2:]
    for procs in policy.get("cgroups") or ():
        _join_cgroup(procs)
    static = Static.open(policy.get("protected") or [], requested=policy.get("read") or [])
    drop_privileges()
    if static.abi > 0:
        restrict_paths(static, _static_ruleset(static), list(policy.get("write") or []), [], [])
    if "network" in policy:  # absent: the environment builds', which fetch packages
        filt = static.filters.get(bool(policy["network"]))
        if filt:
            install_seccomp(filt)
    static.close()
    import resource

    if policy.get("memory_mb"):
        limit = int(policy["memory_mb"]) << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if policy.get("cpu_s"):
        resource.setrlimit(resource.RLIMIT_CPU, (int(policy["cpu_s"]), int(policy["cpu_s"])))
    os.execv(argv[0], argv)


if __name__ == "__main__":
    try:
        _exec_confined(sys.argv[1:])
    except (OSError, ValueError, IndexError) as exc:
        sys.stderr.write(f"runyard sandbox: cannot start a confined command: {exc}\n")
        sys.exit(70)
