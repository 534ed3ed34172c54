"""``runyard up`` / ``server`` / ``worker``: server-side commands (need the server extra)."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Any

import typer


def _settings(data_dir: Path | None, host: str | None, port: int | None, database_url: str | None,
              slots: int | None):  # type: ignore[no-untyped-def]
    from runyard.config import Settings
    settings = Settings()
    if data_dir is not None:
        settings.data_dir = data_dir.resolve()
    if host is not None:
        settings.host = host
    if port is not None:
        settings.port = port
    if database_url is not None:
        settings.database_url = database_url
    if slots is not None:
        settings.worker_slots = slots
    return settings


def check_port(settings: Any) -> None:
    """Refuse before anything starts (database, workers) when the port is taken."""
    host, port = settings.host, settings.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As uvicorn binds: SO_REUSEADDR, so a port in TIME_WAIT after a restart is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            from ._output import fail

            if exc.errno == errno.EADDRINUSE:
                raise fail(f"port {port} on {host} is already in use (is runyard already running? "
                           f"`curl http://{host}:{port}/healthz`); stop it or choose another port "
                           "with --port or RUNYARD_PORT") from None
            raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


DataDir = typer.Option(None, "--data-dir", help="Data directory (env RUNYARD_DATA_DIR, default ./.runyard).")
Host = typer.Option(None, "--host", help="Bind address (env RUNYARD_HOST, default 127.0.0.1).")
Port = typer.Option(None, "--port", help="Port (env RUNYARD_PORT, default 8000).")
DatabaseUrl = typer.Option(None, "--database-url", help="postgresql://… (env RUNYARD_DATABASE_URL); SQLite by default.")
Slots = typer.Option(None, "--slots", help="Concurrent runs on this node (env RUNYARD_WORKER_SLOTS).")


def up(data_dir: Path | None = DataDir, host: str | None = Host, port: int | None = Port,
       database_url: str | None = DatabaseUrl, slots: int | None = Slots) -> None:
    """Start runyard: the API server and workers in one process tree."""
    settings = _settings(data_dir, host, port, database_url, slots)
    check_port(settings)
    from runyard.node import run_server
    run_server(settings, with_workers=True)


def server(data_dir: Path | None = DataDir, host: str | None = Host, port: int | None = Port,
           database_url: str | None = DatabaseUrl) -> None:
    """Start an API server only (workers run elsewhere with `runyard worker`)."""
    settings = _settings(data_dir, host, port, database_url, 0)
    check_port(settings)
    from runyard.node import run_server
    run_server(settings, with_workers=False)


def worker(data_dir: Path | None = DataDir, database_url: str | None = DatabaseUrl,
           slots: int | None = Slots) -> None:
    """Start workers only, pointed at a shared database and data dir."""
    from runyard.node import run_worker
    run_worker(_settings(data_dir, None, None, database_url, slots))


if __name__ == "__main__":
    # `python -m runyard.cli.serve up|server|worker`: settings from RUNYARD_* only.
    import sys

    command = {"up": up, "server": server, "worker": worker}[sys.argv[1] if len(sys.argv) > 1 else "up"]
    try:
        command(**{name: None for name in command.__code__.co_varnames[:command.__code__.co_argcount]})
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
