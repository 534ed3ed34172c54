"""Eigenpal's Python client surface over runyard.

The published ``eigenpal`` package exposes another surface than Eigenpal's reference (its
automations and human reviews; no workflows or run evaluation), so runyard reproduces the
reference's names here, over :mod:`runyard.sdk` (nothing else of runyard: the light client
install is enough):

>>> from pathlib import Path
>>> from runyard.compat.eigenpal import EigenpalClient
>>> client = EigenpalClient(api_key="ry_…", base_url="http://127.0.0.1:8000")
>>> result = client.workflows.executions.run_and_wait("extract-invoice", input={"contract": Path("contract.pdf")})
>>> result["finished"], result["output"]

Eigenpal's API lives under ``/api/v1`` as runyard's does, so ``base_url`` is the runyard
server. ``agents``, ``source`` and ``automations`` raise :class:`EigenpalNotSupportedError`
(naming the feature) before sending anything. docs/compat.md (Eigenpal) maps every call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from runyard.sdk import Client

from ._transport import Transport
from .errors import (
    EigenpalAuthError,
    EigenpalConflictError,
    EigenpalConnectionError,
    EigenpalError,
    EigenpalForbiddenError,
    EigenpalNotFoundError,
    EigenpalNotSupportedError,
    EigenpalRateLimitError,
    EigenpalServerError,
    EigenpalTimeoutError,
    EigenpalValidationError,
)
from .runs import Runs, rerun, start_run
from .unsupported import Agents, Automations, Source
from .workflows import TERMINAL_STATUSES, Workflows

__all__ = [
    "EigenpalClient", "EigenpalError", "EigenpalValidationError", "EigenpalAuthError", "EigenpalForbiddenError",
    "EigenpalNotFoundError", "EigenpalConflictError", "EigenpalRateLimitError", "EigenpalServerError",
    "EigenpalTimeoutError", "EigenpalConnectionError", "EigenpalNotSupportedError", "TERMINAL_STATUSES",
]


class EigenpalClient:
    """An Eigenpal client talking to runyard.

    ``api_key``: a runyard key (default ``$EIGENPAL_API_KEY``); ``base_url``: the runyard
    server, with or without ``/api/v1`` (default ``$EIGENPAL_BASE_URL``, then the runyard
    SDK's own default); ``timeout_seconds``: per request (60); ``verify_ssl``: ``False``
    for a self-signed development host. Retries (2, honouring ``Retry-After``) are the
    runyard SDK's.
    """

    def __init__(self, api_key: str | None = None, base_url: str | None = None, *, timeout_seconds: float = 60.0,
                 verify_ssl: bool = True, max_retries: int = 2) -> None:
        key = api_key if api_key is not None else os.environ.get("EIGENPAL_API_KEY")
        if not key:
            raise EigenpalAuthError("no API key: pass api_key=... or set EIGENPAL_API_KEY", code="missing_api_key")
        url = base_url if base_url is not None else os.environ.get("EIGENPAL_BASE_URL") or None
        self._sdk = Client(api_key=key, base_url=url, timeout=timeout_seconds, max_retries=max_retries,
                           verify_ssl=verify_ssl)
        self._transport = Transport(self._sdk)
        self.runs = Runs(self._transport)
        self.workflows = Workflows(self._transport)
        self.agents = Agents()
        self.source = Source()
        self.automations = Automations()

    @property
    def base_url(self) -> str:
        return self._sdk.server_url

    def run(self, workflow: str | None = None, input: Mapping[str, Any] | None = None, *, tool: str | None = None,
            agent: str | None = None, version: str | int | None = None, wait_for_completion: int | float | None = None,
            tags: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Start a run of a workflow (or, runyard's own, of a ``tool``) with ``input``: file
        inputs (``Path``, bytes, binary files) go as multipart parts. ``version`` defaults to
        the latest; ``wait_for_completion`` (seconds, ≤ 600) holds the request until the run
        ends. Returns the run."""
        if agent is not None:
            raise EigenpalNotSupportedError("agents", "run a workflow or a tool instead")
        if (workflow is None) == (tool is None):
            raise EigenpalValidationError("give either workflow or tool", status=400, code="validation_error")
        payload: dict[str, Any] = {"workflow": workflow} if workflow is not None else {"tool": tool}
        if version is not None and version != "latest":
            payload["version"] = version
        if tags:
            payload["tags"] = dict(tags)
        return start_run(self._transport, payload, input, wait_for_completion)

    def rerun(self, id: str, *, version: str | int | None = "latest",
              wait_for_completion: int | float | None = None) -> dict[str, Any]:
        """A new run from run ``id``'s inputs: on the latest version by default, as
        Eigenpal's API does (``version="original"`` pins the source run's)."""
        return rerun(self._transport, id, version=version, wait_for_completion=wait_for_completion)

    def close(self) -> None:
        self._sdk.close()

    def __enter__(self) -> EigenpalClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EigenpalClient(base_url={self.base_url!r})"
