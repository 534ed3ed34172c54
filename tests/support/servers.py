"""Real runyard servers on loopback (``runyard up`` child processes), scratch PostgreSQL
databases (when ``RUNYARD_TEST_DATABASE_URL`` is set) and free ports."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PG_URL = os.environ.get("RUNYARD_TEST_DATABASE_URL")
BACKENDS = ["sqlite", "postgres"] if PG_URL else ["sqlite"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgDatabase:
    url: str
    name: str

    @classmethod
    def create(cls) -> PgDatabase:
        import psycopg
        assert PG_URL
        name = f"runyard_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        base, _, _ = PG_URL.rpartition("/")
        return cls(url=f"{base}/{name}", name=name)

    def drop(self) -> None:
        import psycopg
        assert PG_URL
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@dataclass
class Server:
    """A ``runyard up`` child process on a loopback port."""

    data_dir: Path
    database_url: str | None = None
    slots: int = 4
    admin_key: str = field(default_factory=lambda: "ry_test_" + secrets.token_urlsafe(24))
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    mode: str = "up"
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return f"{self.base_url}/api/v1"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
        env.update(RUNYARD_ADMIN_KEY=self.admin_key, RUNYARD_UV_OFFLINE="1", RUNYARD_WORKER_SLOTS=str(self.slots),
                   RUNYARD_DATA_DIR=str(self.data_dir), RUNYARD_PORT=str(self.port))
        env.update(self.extra_env)
        if self.database_url:
            env["RUNYARD_DATABASE_URL"] = self.database_url
        return env

    def start(self, wait_ready: bool = True) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"server-{self.mode}-{self.port}.log"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "runyard.cli.serve", self.mode], env=self.env(),
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        if wait_ready and self.mode != "worker":
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 180) -> None:
        # Generous: under a parallel run on 2 cores a fresh server migrates and forks its
        # engine while other servers do the same.  A hang still fails, just later.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.logs()}")
            try:
                probe = "/readyz" if self.mode == "up" else "/healthz"
                if httpx.get(f"{self.base_url}{probe}", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not ready in {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def kill9(self) -> None:
        """SIGKILL the server process only (children notice their parent is gone)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def client(self, key: str | None = None, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=self.api, headers={"Authorization": f"Bearer {key or self.admin_key}"},
                            timeout=timeout)
