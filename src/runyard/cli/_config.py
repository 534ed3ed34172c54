"""The user config file: named profiles of base URL + API key.

Location: ``$RUNYARD_CONFIG``, else ``$XDG_CONFIG_HOME/runyard/config.json``, else
``~/.config/runyard/config.json``. It holds API keys, so it is written 0600 (and its
directory 0700), atomically, so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_PROFILE = "default"


def config_path() -> Path:
    explicit = os.environ.get("RUNYARD_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "runyard" / "config.json"


@dataclass
class Profile:
    name: str
    base_url: str | None = None
    api_key: str | None = None


def load() -> dict[str, Any]:
    path = config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"profiles": {}}
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"cannot read config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise RuntimeError(f"config file {path} is not a JSON object")
    data.setdefault("profiles", {})
    return data


def save(data: dict[str, Any]) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # Created with 0600 from the first byte: the key is never world-readable, even briefly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def selected_profile_name(explicit: str | None) -> str:
    if explicit:
        return explicit
    env = os.environ.get("RUNYARD_PROFILE")
    if env:
        return env
    try:
        current = load().get("current_profile")
    except RuntimeError:
        current = None
    return current or DEFAULT_PROFILE


def get_profile(name: str) -> Profile:
    raw = load()["profiles"].get(name) or {}
    return Profile(name=name, base_url=raw.get("base_url"), api_key=raw.get("api_key"))


def put_profile(profile: Profile, *, make_current: bool) -> Path:
    data = load()
    data["profiles"][profile.name] = {"base_url": profile.base_url, "api_key": profile.api_key}
    if make_current:
        data["current_profile"] = profile.name
    return save(data)


def remove_profile(name: str) -> bool:
    data = load()
    if name not in data["profiles"]:
        return False
    del data["profiles"][name]
    if data.get("current_profile") == name:
        data.pop("current_profile")
    save(data)
    return True
