"""``runyard up`` / ``server`` / ``worker``: server-side commands (need the server extra)."""

from __future__ import annotations

from pathlib import Path

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


DataDir = typer.Option(None, "--data-dir", help="Data directory (env RUNYARD_DATA_DIR, default ./.runyard).")
Host = typer.Option(None, "--host", help="Bind address (env RUNYARD_HOST, default 127.0.0.1).")
Port = typer.Option(None, "--port", help="Port (env RUNYARD_PORT, default 8000).")
DatabaseUrl = typer.Option(None, "--database-url", help="postgresql://… (env RUNYARD_DATABASE_URL); SQLite by default.")
Slots = typer.Option(None, "--slots", help="Concurrent runs on this node (env RUNYARD_WORKER_SLOTS).")


def up(data_dir: Path | None = DataDir, host: str | None = Host, port: int | None = Port,
       database_url: str | None = DatabaseUrl, slots: int | None = Slots) -> None:
    """Start runyard: the API server and workers in one process tree."""
    from runyard.serve import run_server
    run_server(_settings(data_dir, host, port, database_url, slots), with_workers=True)


def server(data_dir: Path | None = DataDir, host: str | None = Host, port: int | None = Port,
           database_url: str | None = DatabaseUrl) -> None:
    """Start an API server only (workers run elsewhere with `runyard worker`)."""
    from runyard.serve import run_server
    run_server(_settings(data_dir, host, port, database_url, 0), with_workers=False)


def worker(data_dir: Path | None = DataDir, database_url: str | None = DatabaseUrl,
           slots: int | None = Slots) -> None:
    """Start workers only, pointed at a shared database and data dir."""
    from runyard.serve import run_worker
    run_worker(_settings(data_dir, None, None, database_url, slots))


if __name__ == "__main__":
    # `python -m runyard.cli.serve up|server|worker`: settings from RUNYARD_* only.
    import sys

    command = {"up": up, "server": server, "worker": worker}[sys.argv[1] if len(sys.argv) > 1 else "up"]
    command(**{name: None for name in command.__code__.co_varnames[:command.__code__.co_argcount]})
