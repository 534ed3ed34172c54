"""Virtual environments for tools with their own requirements, built once with uv.

Each distinct requirement set gets ``<data_dir>/envs/<key>/`` where ``key`` hashes the normalised,
sorted requirements and the Python version. Builders take a file lock, so concurrent
builders (threads or processes) wait for one build instead of racing. A venv is built
in place (its scripts hold absolute paths, so it cannot be moved after building); the
``ready`` marker is written last, so an interrupted or failed build is never used and
is wiped and retried on the next request. ``build.log`` keeps the uv output.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BUILD_TIMEOUT_S = 900.0


class EnvironmentBuildFailed(Exception):
    """uv could not build the environment; ``log`` holds its output."""

    def __init__(self, log: str, message: str | None = None) -> None:
        super().__init__(message or _last_lines(log))
        self.log = log


@dataclass(frozen=True)
class Environment:
    path: Path
    python: Path
    built: bool  # True if this call built it, False if it was already there


def normalise_requirements(requirements: list[str]) -> list[str]:
    """Strip blanks/comments, collapse whitespace, de-duplicate and sort."""
    seen: set[str] = set()
    for line in requirements:
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        seen.add(" ".join(line.split()))
    return sorted(seen)


def environment_key(requirements: list[str], python_version: str | None = None, interpreter: str = "") -> str:
    """Cache key: normalised requirements + Python version (+ the base interpreter, if not ours)."""
    version = python_version or ".".join(map(str, sys.version_info[:3]))
    if interpreter and interpreter != sys.executable:
        version = f"{version} {interpreter}"
    blob = json.dumps({"python": version, "requirements": normalise_requirements(requirements)})
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def find_uv() -> str:
    from uv import find_uv_bin  # the uv PyPI package ships the binary

    return find_uv_bin()


# Given an environment's dir and its requirements: a command prefix that confines the
# build (its packages' build scripts are untrusted code) and what to call after it.
Confine = Callable[[Path, list[str]], tuple[list[str], Callable[[], None]]]

# What a build inherits from the server's environment: the package index, proxy and TLS
# settings an operator gives uv. Never the server's own settings (keys, database URL).
_BUILD_ENV_PREFIXES = ("UV_", "PIP_")
_BUILD_ENV_NAMES = {"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy",
                    "all_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "LANG", "LC_ALL", "PATH"}


def build_environment(env_dir: Path, *, own_cache: bool) -> dict[str, str]:
    """The environment of a build step: the server's package-index settings, nothing else."""
    env = {k: v for k, v in os.environ.items() if k in _BUILD_ENV_NAMES or k.startswith(_BUILD_ENV_PREFIXES)}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(HOME=str(env_dir), TMPDIR=str(env_dir / ".tmp"))
    if own_cache:
        # A confined build gets a cache of its own: a shared one would let one tool's build
        # scripts tamper with the packages another tool's environment is built from.
        env["UV_CACHE_DIR"] = str(env_dir / ".uv-cache")
    return env


class EnvironmentManager:
    """Builds and finds the venvs under ``<data_dir>/envs/``. Thread- and process-safe."""

    def __init__(self, data_dir: Path, *, offline: bool = False, python: str | None = None,
                 confine: Confine | None = None) -> None:
        self.root = Path(data_dir) / "envs"
        self.confine = confine
        self.offline = offline or os.environ.get("RUNYARD_UV_OFFLINE") == "1"
        # The base interpreter for the venvs: the server's own, so no Python download
        # is ever needed and the fork server and venv children share a version.
        self.base_python = python or sys.executable

    def path_for(self, requirements: list[str]) -> Path:
        return self.root / environment_key(requirements, interpreter=self.base_python)

    def ensure(self, requirements: list[str], *, timeout_s: float = BUILD_TIMEOUT_S) -> Path:
        """The interpreter of the ready environment for ``requirements`` (built if needed)."""
        return self.prepare(requirements, timeout_s=timeout_s).python

    def prepare(self, requirements: list[str], *, timeout_s: float = BUILD_TIMEOUT_S) -> Environment:
        """Return the ready environment for ``requirements``, building it if needed."""
        reqs = normalise_requirements(requirements)
        env_dir = self.path_for(reqs)
        python = env_dir / "bin" / "python"
        ready = env_dir / "ready"
        if ready.exists():
            return Environment(env_dir, python, built=False)
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f"{env_dir.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if ready.exists():  # someone else built it while we waited
                return Environment(env_dir, python, built=False)
            self._build(env_dir, reqs, timeout_s)
        return Environment(env_dir, python, built=True)

    def _build(self, env_dir: Path, reqs: list[str], timeout_s: float) -> None:
        if env_dir.exists():
            shutil.rmtree(env_dir)  # a previous failed or interrupted attempt
        env_dir.mkdir(parents=True)
        log_path = env_dir / "build.log"
        uv = find_uv()
        flags = ["--no-config", "--offline"] if self.offline else ["--no-config"]
        steps = [
            [
                uv,
                "venv",
                *flags,
                "--allow-existing",
                "--no-python-downloads",
                "--python",
                self.base_python,
                str(env_dir),
            ],
            [uv, "pip", "install", *flags, "--python", str(env_dir / "bin" / "python"), *reqs],
        ]
        if not reqs:
            steps.pop()
        deadline = time.monotonic() + timeout_s
        prefix: list[str] = []
        cleanup: Callable[[], None] | None = None
        if self.confine is not None:
            prefix, cleanup = self.confine(env_dir, reqs)
        env = build_environment(env_dir, own_cache=self.confine is not None)
        (env_dir / ".tmp").mkdir(exist_ok=True)
        try:
            self._run_steps(steps, prefix, env, env_dir, log_path, reqs, deadline)
        finally:
            if cleanup is not None:
                cleanup()
            shutil.rmtree(env_dir / ".tmp", ignore_errors=True)
            shutil.rmtree(env_dir / ".uv-cache", ignore_errors=True)  # installed by copy or link already

    def _run_steps(self, steps: list[list[str]], prefix: list[str], env: dict[str, str], env_dir: Path,
                   log_path: Path, reqs: list[str], deadline: float) -> None:
        with open(log_path, "w", encoding="utf-8") as log:
            log.write(f"# requirements: {json.dumps(reqs)}\n")
            for cmd in steps:
                log.write(f"$ {' '.join(cmd)}\n")
                log.flush()
                try:
                    proc = subprocess.run(
                        [*prefix, *cmd],
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        cwd=env_dir,  # not the server's cwd: no project uv config is picked up
                        timeout=max(1.0, deadline - time.monotonic()),
                        check=False,
                    )
                    code: int | str = proc.returncode
                except subprocess.TimeoutExpired:
                    code = "timeout"
                except OSError as exc:
                    code = f"cannot run uv: {exc}"
                log.write(f"# exit: {code}\n")
                log.flush()
                if code != 0:
                    break
            else:
                (env_dir / "ready").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + "\n")
                return
        raise EnvironmentBuildFailed(log_path.read_text(encoding="utf-8", errors="replace"))


def _last_lines(log: str, n: int = 12) -> str:
    lines = [line for line in log.strip().splitlines() if line.strip()]
    return "environment build failed:\n" + "\n".join(lines[-n:])
