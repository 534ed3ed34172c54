"""``runyard doctor``: which run protections this host enforces, checked live."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ._output import JSON_HELP, Exit, print_json, stdout


def doctor(
    json_output: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Check every protection of the run sandbox on this host (with the server's settings:
    RUNYARD_DATA_DIR, RUNYARD_SANDBOX…). Exits 1 when any is missing."""
    from runyard.config import Settings
    from runyard.engine.cgroups import RunGroups
    from runyard.engine.protections import check
    from runyard.engine.sandbox import read_paths
    from runyard.wiring import sandbox_config

    settings = Settings()
    config = sandbox_config(settings)
    groups = None
    try:
        groups = RunGroups(max_processes=config.max_processes, allowed_ports=config.local_ports,
                           network_filter=config.host_filter)
    except OSError:
        pass
    try:
        protections = check(groups, config.protected)
    finally:
        if groups is not None:
            groups.close()
    _rules, excluded = read_paths(config.protected)
    missing = [name for name, state in protections.items() if not state.startswith("active")]
    report = {"mode": config.mode, "data_dir": str(settings.data_dir), "protections": protections,
              "runtime_paths_left_unreadable": excluded, "ok": not missing}
    if json_output:
        print_json(report)
    else:
        table = Table(title=f"runyard sandbox (RUNYARD_SANDBOX={config.mode})")
        table.add_column("protection")
        table.add_column("state")
        for name, state in protections.items():
            table.add_row(name, f"[green]{state}[/]" if state.startswith("active") else f"[red]{state}[/]")
        stdout().print(table)
        if excluded:
            stdout().print(f"[yellow]not readable by runs (they hold the data dir): {', '.join(excluded)}[/]")
    if missing:
        raise typer.Exit(Exit.ERROR)
