"""Global options (``--profile``, ``--base-url``, ``--api-key``) and building a client from them.

Precedence for each setting: command-line flag > environment (``RUNYARD_API_KEY``,
``RUNYARD_BASE_URL``) > the selected profile in the config file > built-in default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from runyard.sdk import Client
from runyard.sdk.errors import ConfigurationError

from . import _config


@dataclass
class Globals:
    profile: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    #: One client (one connection pool) per command invocation.
    cached: Client | None = None


STATE = Globals()


def resolve() -> tuple[str | None, str | None, str]:
    """(base_url, api_key, profile name) after applying the precedence rules."""
    profile_name = _config.selected_profile_name(STATE.profile)
    profile = _config.get_profile(profile_name)
    base_url = STATE.base_url or os.environ.get("RUNYARD_BASE_URL") or profile.base_url
    api_key = STATE.api_key or os.environ.get("RUNYARD_API_KEY") or profile.api_key
    return base_url, api_key, profile_name


def client() -> Client:
    if STATE.cached is None:
        STATE.cached = _make_client()
    return STATE.cached


def _make_client() -> Client:
    base_url, api_key, profile_name = resolve()
    if not api_key:
        raise ConfigurationError(
            f"no API key: run `runyard login` (profile {profile_name!r}), set RUNYARD_API_KEY or pass --api-key; "
            "the server's admin key is in <data-dir>/admin-key (./.runyard/admin-key by default)"
        )
    return Client(api_key=api_key, base_url=base_url, default_headers={"X-Runyard-Trigger": "cli"})
