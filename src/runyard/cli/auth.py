"""``runyard login`` / ``runyard logout``: manage profiles in the user config file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from runyard.sdk import Client
from runyard.sdk._base import DEFAULT_BASE_URL

from . import _config
from ._context import STATE
from ._output import JSON_HELP, handle_errors, note, outcome, spinner


def admin_key_hint() -> str:
    """Where a new user's first key is."""
    local = Path(".runyard") / "admin-key"
    where = (f"it is in {local} here" if local.is_file() else
             "it is in <data-dir>/admin-key (./.runyard/admin-key for `bash scripts/up.sh` or `runyard up`)")
    return (f"The server printed an admin API key on its first start; {where}: "
            f"`cat {local} | runyard login` (or pass --api-key).")


@handle_errors
def login(
    base_url: Annotated[str | None, typer.Option("--base-url", "-u", help="Server URL.")] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", "-k", help="API key (prompted, or read from stdin when piped).")
    ] = None,
    profile: Annotated[str | None, typer.Option("--profile", "-p", help="Profile to store it under.")] = None,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Check the key against the server.")] = True,
    json_output: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Store a server URL and API key in the config file (mode 0600) as a named profile."""
    name = _config.selected_profile_name(profile or STATE.profile)
    existing = _config.get_profile(name)
    url = base_url or STATE.base_url or existing.base_url or DEFAULT_BASE_URL
    key = api_key or STATE.api_key
    if not key:
        if sys.stdin.isatty():
            note(admin_key_hint())
            key = typer.prompt("API key", hide_input=True)
        else:
            key = sys.stdin.readline().strip()
    if not key:
        raise ValueError(f"no API key given. {admin_key_hint()}")
    if verify:
        with spinner(f"Checking {url}…", enabled=not json_output), Client(api_key=key, base_url=url) as c:
            # Any authenticated read proves the key; tools are readable by every role.
            c.tools.list(limit=1)
    path = _config.put_profile(_config.Profile(name=name, base_url=url, api_key=key), make_current=True)
    outcome(json_output, {"profile": name, "base_url": url, "config_path": str(path)}, f"Logged in to [bold]{url}[/bold] as profile [bold]{name}[/bold] (saved in {path}).")


@handle_errors
def logout(
    profile: Annotated[str | None, typer.Option("--profile", "-p", help="Profile to remove.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Remove a profile (its key) from the config file."""
    name = _config.selected_profile_name(profile or STATE.profile)
    removed = _config.remove_profile(name)
    outcome(json_output, {"profile": name, "removed": removed}, f"Profile [bold]{name}[/bold] {'removed' if removed else 'was not stored'}.")
