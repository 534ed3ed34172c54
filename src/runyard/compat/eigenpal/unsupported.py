"""``client.agents``, ``client.source`` and ``client.automations``: parts of Eigenpal that
runyard does not have. Every call raises :class:`EigenpalNotSupportedError` naming the
feature (never an empty answer), before any request is sent."""

from __future__ import annotations

from typing import Any, NoReturn

from .errors import EigenpalNotSupportedError

__all__ = ["Agents", "Source", "Automations"]


class _Unsupported:
    """Any method of the section raises; ``dir()`` lists the reference's method names."""

    _feature = ""
    _hint = ""
    _methods: tuple[str, ...] = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        feature = f"{self._feature}.{name}"

        def refuse(*args: Any, **kwargs: Any) -> NoReturn:
            raise EigenpalNotSupportedError(feature, self._hint)

        return refuse

    def __dir__(self) -> list[str]:
        return list(self._methods)


class _EmailTriggers(_Unsupported):
    _feature = "agents.email_triggers"
    _hint = "runyard's email triggers start tools and workflows (client.email_triggers in the runyard SDK)"
    _methods = ("list", "get", "create_alias", "delete_alias", "update", "update_alias")


class Agents(_Unsupported):
    _feature = "agents"
    _hint = "runyard has no agents yet; deploy the logic as a tool or a workflow and use client.run / client.workflows"
    _methods = ("list", "get", "create", "update", "list_files", "put_file", "upload_files", "versions",
                "email_triggers")

    def __init__(self) -> None:
        self.email_triggers = _EmailTriggers()


class Source(_Unsupported):
    _feature = "source"
    _hint = "runyard keeps tool and workflow versions itself (no Git-backed source); use the runyard SDK's tools"
    _methods = ("decrypt_secrets", "encrypt_secrets", "lockfile", "raw", "releases", "repository")


class Automations(_Unsupported):
    _feature = "automations"
    _hint = "runyard has no automations synced from Git; schedules, webhooks and email triggers start runs"
    _methods = ("sync",)
