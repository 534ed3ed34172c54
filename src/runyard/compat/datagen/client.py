"""``DatagenClient``: DataGen's Python client surface (its SDK reference: custom tools, their
runs, secrets, ``execute_tool``) over runyard's SDK.

A custom tool is a runyard tool in **script mode** (its code runs top to bottom with the
input variables as globals; ``output_vars`` names the globals its run returns), and its
``deployment_uuid`` is the runyard tool's id (``tool_…``; its name is accepted too). A run
of it is a runyard run, ``run_uuid`` the run's id (``run_…``). Answers are plain dicts in
the reference's shapes, each with runyard's own fields beside them (``runyard_status``…).
"""

from __future__ import annotations

import itertools
import os
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from runyard.sdk import Client, NotFoundError, Run, WaitTimeoutError
from runyard.sdk._base import MAX_RETRY_AFTER, RequestOptions, parse_retry_after
from runyard.sdk.resources._resource import seg

from .errors import (
    DatagenAuthError,
    DatagenDeploymentError,
    DatagenHttpError,
    DatagenSecretError,
    DatagenToolError,
    translated,
)
from .statuses import COMPLETED, FINISHED, datagen_status

__all__ = ["DatagenClient", "DEFAULT_BASE_URL", "BASE_URL_ENV", "API_KEY_ENV", "SORT_FIELDS", "MAX_LIST_LIMIT"]

API_KEY_ENV = "DATAGEN_API_KEY"
#: The runyard server a client talks to when ``base_url`` is not given (the reference's
#: default, DataGen's hosted API, means nothing to runyard).
BASE_URL_ENV = "DATAGEN_BASE_URL"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
EXECUTE_PATH = "/compat/datagen/api/tools/execute"
SORT_FIELDS = ("created_at", "updated_at", "name")
MAX_LIST_LIMIT = 1000  # runyard's limit on every list
# A synchronous run is given this long beyond its execution_timeout to be queued and report.
SYNC_RUN_MARGIN_S = 60.0


class _Transport(Client):
    """The runyard SDK client with DataGen's retry spacing: ``backoff_seconds * 2**attempt``
    (a server's ``Retry-After`` still wins). Retries keep the SDK's idempotency keys, so a
    retried run start never starts two runs."""

    backoff_seconds: float = 0.5

    def _retry_delay(self, attempt: int, response: httpx.Response | None) -> float:  # type: ignore[override]
        if response is not None and (after := parse_retry_after(response.headers)) is not None:
            return min(after, MAX_RETRY_AFTER)
        return self.backoff_seconds * (2.0 ** attempt) * (1 - 0.25 * random.random())


def _tool_view(tool: Mapping[str, Any]) -> dict[str, Any]:
    """A runyard tool as a DataGen custom tool (runyard's fields kept beside)."""
    return {
        **tool,
        "deployment_uuid": tool["id"],
        "name": tool.get("name"),
        "description": tool.get("description") or "",
        "input_schema": tool.get("input_schema"),
        "output_vars": tool.get("output_vars"),
        "default_input_vars": tool.get("default_inputs") or {},
        "additional_imports": tool.get("requirements") or [],
        "expected_tools": tool.get("expected_tools") or [],
        "mcp_server_names": tool.get("mcp_server_names") or [],
        "required_secrets": tool.get("required_secrets") or [],
        "deployment_type": tool.get("visibility"),
    }


def _run_view(run: Run) -> dict[str, Any]:
    """A runyard run in ``get_run``'s shape."""
    data = run.to_dict()
    error = data.get("error")
    said = None
    if isinstance(error, dict):
        kind, message = error.get("type") or run.status, error.get("message")
        said = f"{kind}: {message}" if message else kind
    return {
        **data,
        "run_uuid": run.id,
        "deployment_uuid": run.tool_id,
        "status": datagen_status(run.status),
        "runyard_status": run.status,
        "input_vars": data.get("inputs"),
        "output_vars": data.get("output"),
        "error": said,
        "runyard_error": error,
    }


def _compact(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _listed(value: Sequence[str] | None) -> list[str] | None:
    return list(value) if value is not None else None


class DatagenClient:
    """DataGen's client over runyard.

    ``api_key``: a runyard key (default ``$DATAGEN_API_KEY``; none is
    :class:`DatagenAuthError`). ``base_url``: the runyard server, ``http://host:8000``
    (default ``$DATAGEN_BASE_URL``, else ``http://127.0.0.1:8000``). ``timeout``: seconds per
    request; ``retries``: how many times a failed request (a connection error, 408, 429,
    5xx) is retried, ``backoff_seconds * 2**attempt`` apart.
    """

    def __init__(self, api_key: str | None = None, base_url: str | None = None, timeout: int = 30,
                 retries: int = 0, backoff_seconds: float = 0.5) -> None:
        self.api_key = api_key or os.getenv(API_KEY_ENV)
        if not self.api_key:
            raise DatagenAuthError(f"API key missing. Set {API_KEY_ENV} or pass api_key.")
        if retries < 0 or backoff_seconds < 0:
            raise ValueError("retries and backoff_seconds must not be negative")
        self.base_url = (base_url or os.getenv(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.client = _Transport(api_key=self.api_key, base_url=self.base_url, timeout=float(timeout),
                                 max_retries=retries)
        self.client.backoff_seconds = backoff_seconds

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> DatagenClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DatagenClient(base_url={self.base_url!r})"

    # -- tool execution -------------------------------------------------------------------
    def execute_tool(self, tool_alias_name: str, parameters: dict[str, Any] | None = None) -> Any:
        """Run an MCP tool by alias (``mcp_<Server>_<tool>``, as ``GET /api/v1/mcp-tools``
        lists them) or a runyard tool by name, and return its result. A tool that ran and
        failed is :class:`DatagenToolError`; a refused call :class:`DatagenAuthError`
        (401/403) or :class:`DatagenHttpError`. Served by ``/compat/datagen``, as for the
        published SDK; the server holds the request until the run ends (10 minutes at most)."""
        if not tool_alias_name:
            raise ValueError("tool_alias_name is required")
        body = {"tool_alias_name": tool_alias_name, "parameters": parameters or {}}
        with translated(DatagenHttpError):
            payload = self.client.request(RequestOptions("POST", EXECUTE_PATH, json=body, root=True)).json()
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, dict):
            raise DatagenHttpError(f"Unexpected response: {payload}")
        if not data.get("success"):
            raise DatagenToolError(str(data.get("error") or "Tool reported failure"), run_id=data.get("run_id"),
                                   code=data.get("status"))
        return data.get("result")

    # -- custom tools -----------------------------------------------------------------------
    def deploy_custom_tool(
        self,
        name: str,
        code: str,
        description: str | None = None,
        input_schema: dict[str, Any] | None = None,
        output_vars: list[str] | None = None,
        expected_tools: list[str] | None = None,
        additional_imports: list[str] | None = None,
        deployment_type: str = "private",
        default_input_vars: dict[str, Any] | None = None,
        mcp_server_names: list[str] | None = None,
        required_secrets: list[str] | None = None,
    ) -> dict[str, Any]:
        """Deploy ``code`` as a script-mode runyard tool named ``name`` (a runyard tool name:
        lowercase letters, digits, ``-``, ``_``). A name already in use is
        :class:`DatagenDeploymentError` ``tool_exists`` (change it with
        :meth:`update_custom_tool`). ``additional_imports`` are pip requirements;
        ``deployment_type`` is the visibility (``private``: its deployer and admins;
        ``public``: every user of the workspace)."""
        if deployment_type not in ("private", "public"):
            raise ValueError("deployment_type must be 'private' or 'public'")
        with translated(DatagenDeploymentError):
            try:
                existing = self.client.tools.get(name)
            except NotFoundError:
                pass  # the name is free
            else:
                raise DatagenDeploymentError(
                    f"a tool named {name!r} exists already ({existing.id}): update it with update_custom_tool",
                    status_code=409, code="tool_exists", details={"deployment_uuid": existing.id, "name": name})
            body = _compact(
                name=name, code=code, mode="script", description=description, input_schema=input_schema,
                output_vars=_listed(output_vars), expected_tools=_listed(expected_tools),
                requirements=_listed(additional_imports), visibility=deployment_type,
                default_inputs=default_input_vars, mcp_server_names=_listed(mcp_server_names),
                required_secrets=_listed(required_secrets))
            tool = self.client.request(RequestOptions("POST", "/tools", json=body)).json()
        return _tool_view(tool)

    def update_custom_tool(
        self,
        deployment_uuid: str,
        name: str | None = None,
        description: str | None = None,
        code: str | None = None,
        input_schema: dict[str, Any] | None = None,
        output_vars: list[str] | None = None,
        default_input_vars: dict[str, Any] | None = None,
        additional_imports: list[str] | None = None,
        expected_tools: list[str] | None = None,
        required_secrets: list[str] | None = None,
    ) -> dict[str, Any]:
        """Change the given fields only; ``name`` renames the tool (its ``deployment_uuid``
        stays). A change of code or settings makes a new runyard tool version."""
        body = _compact(
            # DataGen's code is one script: runyard's module ``main`` (a script's entrypoint
            # names its module), said outright so the new code is read as that module.
            name=name, description=description, code=code, entrypoint="main" if code is not None else None,
            input_schema=input_schema,
            output_vars=_listed(output_vars), default_inputs=default_input_vars,
            requirements=_listed(additional_imports), expected_tools=_listed(expected_tools),
            required_secrets=_listed(required_secrets))
        with translated(DatagenDeploymentError):
            tool = self.client.request(RequestOptions("PATCH", f"/tools/{seg(deployment_uuid)}", json=body)).json()
        return _tool_view(tool)

    def get_custom_tool(self, deployment_uuid: str) -> dict[str, Any]:
        """One custom tool, with its latest version's settings."""
        with translated(DatagenHttpError):
            tool = self.client.request(RequestOptions("GET", f"/tools/{seg(deployment_uuid)}")).json()
        return _tool_view(tool)

    def list_custom_tools(self, sort_by: str = "created_at", order_by: str = "desc", skip: int = 0,
                          limit: int = 100) -> list[dict[str, Any]]:
        """The workspace's tools the key can see, sorted by ``sort_by`` (``created_at``,
        ``updated_at`` or ``name``) in ``order_by`` order, from the ``skip``-th on, ``limit``
        (1–1,000) at most."""
        if sort_by not in SORT_FIELDS:
            raise ValueError(f"sort_by must be one of {', '.join(SORT_FIELDS)}")
        if order_by not in ("asc", "desc"):
            raise ValueError("order_by must be 'asc' or 'desc'")
        if skip < 0 or not 1 <= limit <= MAX_LIST_LIMIT:
            raise ValueError(f"skip must be >= 0 and limit between 1 and {MAX_LIST_LIMIT}")
        page = min(MAX_LIST_LIMIT, skip + limit)
        with translated(DatagenHttpError):
            tools = self.client.tools.list(sort=sort_by, order=order_by, limit=page)  # type: ignore[arg-type]
            chosen = list(itertools.islice(tools, skip, skip + limit))
        return [_tool_view(tool.to_dict()) for tool in chosen]

    # -- custom tool runs ---------------------------------------------------------------------
    def _start(self, deployment_uuid: str, input_vars: dict[str, Any] | None, execution_timeout: int) -> Run:
        if execution_timeout <= 0:
            raise ValueError("execution_timeout must be positive")
        body = {"tool": deployment_uuid, "inputs": input_vars or {}, "timeout_s": execution_timeout}
        with translated(DatagenDeploymentError):
            return Run.model_validate(self.client.request(RequestOptions("POST", "/runs", json=body)).json())

    def run_custom_tool(self, deployment_uuid: str, input_vars: dict[str, Any] | None = None,
                        execution_timeout: int = 120) -> dict[str, Any]:
        """Run the tool and wait for its end; the run must finish within
        ``execution_timeout`` seconds (runyard stops it then, ``timed_out``). Answers
        ``get_run``'s shape (``run_uuid``, ``status`` ``completed``, ``output_vars``); a run
        that did not complete is :class:`DatagenDeploymentError` with the run in ``.run``."""
        run = self._start(deployment_uuid, input_vars, execution_timeout)
        return self.wait_for_run(run.id, timeout=execution_timeout + SYNC_RUN_MARGIN_S, poll_interval=0.5)

    def run_custom_tool_async(self, deployment_uuid: str, input_vars: dict[str, Any] | None = None,
                              execution_timeout: int = 120) -> dict[str, Any]:
        """Start a run and answer at once: ``{run_uuid, status: "pending", …}`` — or
        ``running`` when a worker took it before the answer left (runyard's fast path often
        does); follow it with :meth:`check_run_status`, :meth:`get_run` or :meth:`wait_for_run`."""
        run = self._start(deployment_uuid, input_vars, execution_timeout)
        return {"run_uuid": run.id, "deployment_uuid": run.tool_id, "status": datagen_status(run.status),
                "runyard_status": run.status}

    def check_run_status(self, run_uuid: str) -> dict[str, Any]:
        """``{run_uuid, status}``: ``pending``, ``running``, ``completed`` or ``failed``
        (runyard's status in ``runyard_status``; the table in
        :mod:`runyard.compat.datagen.statuses`)."""
        with translated(DatagenHttpError):
            run = self.client.runs.get(run_uuid)
        return {"run_uuid": run.id, "status": datagen_status(run.status), "runyard_status": run.status}

    def get_run(self, run_uuid: str) -> dict[str, Any]:
        """The run in full: ``status``, ``input_vars``, ``output_vars`` (its output),
        ``error`` (``"<type>: <message>"`` once it failed), timestamps, and runyard's fields."""
        with translated(DatagenHttpError):
            run = self.client.runs.get(run_uuid, include_inputs=True)
        return _run_view(run)

    def wait_for_run(self, run_uuid: str, timeout: int | float = 300, poll_interval: float = 2.0) -> dict[str, Any]:
        """Wait for the run's end (``timeout`` seconds at most) and answer :meth:`get_run`'s
        shape. A run that failed, or did not end in time, is :class:`DatagenDeploymentError`
        (``.run`` holds it as it stands)."""
        deadline = time.monotonic() + timeout
        with translated(DatagenDeploymentError):
            try:
                self.client.runs.wait(run_uuid, timeout=timeout, poll_interval=poll_interval)
            except WaitTimeoutError:
                pass  # answered below, with the run as it stands
        view = self.get_run(run_uuid)
        if view["status"] not in FINISHED:
            raise DatagenDeploymentError(
                f"run {run_uuid} did not end within {timeout:g} s (status {view['runyard_status']})",
                code="wait_timeout", run=view, details={"timeout": timeout,
                                                       "waited_s": round(timeout - (deadline - time.monotonic()), 3)})
        if view["status"] != COMPLETED:
            raise DatagenDeploymentError(f"run {run_uuid} {view['runyard_status']}: {view['error'] or 'no output'}",
                                         code=view["runyard_status"], run=view)
        return view

    # -- secrets ------------------------------------------------------------------------------
    def list_secrets(self) -> list[dict[str, Any]]:
        """Every secret of the workspace: ``name``, ``masked_value``, ``display_name``,
        ``description``, ``category``, ``provider`` (``runyard``), timestamps — never a value."""
        with translated(DatagenSecretError):
            secrets = list(self.client.secrets.list(limit=MAX_LIST_LIMIT))
        return [{**secret.to_dict(), "provider": "runyard"} for secret in secrets]

    def set_secret(self, name: str, value: str, display_name: str | None = None, description: str | None = None,
                   category: str = "api_key", force: bool = False) -> dict[str, Any]:
        """Store a secret (its metadata comes back, never its value). An existing ``name``
        is :class:`DatagenSecretError` ``secret_exists`` unless ``force``, which replaces it."""
        with translated(DatagenSecretError):
            secret = self.client.secrets.set(name, value, display_name=display_name, description=description,
                                             category=category, force=force)
        return {**secret.to_dict(), "provider": "runyard"}

