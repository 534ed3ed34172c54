"""``client.tools``: deploy, update, inspect and run tools."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from .._base import RequestOptions, Timeout
from .._endpoint import Listing, Plan, Send, endpoint, listing
from .._files import dumps, resolve_code
from ..models import Run, Tool, ToolVersion
from ._resource import AsyncResource, SyncResource, compact, seg
from .runs import RunsAPI

__all__ = ["Tools", "AsyncTools", "CodeLike"]

#: What ``deploy``/``update`` accept as code: source text, a function, or a path to a
#: ``.py`` file, a ``.zip`` or a package directory.
CodeLike = str | os.PathLike[str] | Callable[..., Any]


def _str_list(value: Sequence[str] | str | None, *, lines: bool) -> list[str] | None:
    """A list of strings; a lone ``str`` is not exploded into characters — it is one item,
    or, for requirements, requirements.txt-style lines (comments and blanks dropped)."""
    if value is None:
        return None
    if isinstance(value, str):
        if not lines:
            return [value]
        stripped = (line.split("#", 1)[0].strip() for line in value.splitlines())
        return [line for line in stripped if line]
    return list(value)


def _config(
    *,
    name: str | None,
    entrypoint: str | None,
    description: str | None,
    input_schema: Mapping[str, Any] | None,
    output_schema: Mapping[str, Any] | None,
    requirements: Sequence[str] | str | None,
    required_secrets: Sequence[str] | str | None,
    default_inputs: Mapping[str, Any] | None,
    visibility: str | None,
    timeout_s: float | None,
    memory_mb: int | None,
    retries: int | None,
    reuse_process: bool | None,
    retry_on: Sequence[str] | None = None,
    retry_backoff_s: float | None = None,
    network: bool | None = None,
    connections: Sequence[str] | str | None = None,
    files: Sequence[str] | str | None = None,
    mode: str | None = None,
    output_vars: Sequence[str] | str | None = None,
) -> dict[str, Any]:
    return compact(
        name=name,
        entrypoint=entrypoint,
        description=description,
        input_schema=dict(input_schema) if input_schema is not None else None,
        output_schema=dict(output_schema) if output_schema is not None else None,
        requirements=_str_list(requirements, lines=True),
        required_secrets=_str_list(required_secrets, lines=False),
        default_inputs=dict(default_inputs) if default_inputs is not None else None,
        visibility=visibility,
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        retries=retries,
        reuse_process=reuse_process,
        retry_on=[retry_on] if isinstance(retry_on, str) else list(retry_on) if retry_on is not None else None,
        retry_backoff_s=retry_backoff_s,
        network=network,
        connections=_str_list(connections, lines=False),
        files=[files] if isinstance(files, str) else list(files) if files is not None else None,
        mode=mode,
        output_vars=_str_list(output_vars, lines=False),
    )


def _code_request(
    method: str,
    path: str,
    code: CodeLike | None,
    config: dict[str, Any],
    *,
    creating: bool,
    idempotency_key: str | None,
    timeout: Timeout,
) -> RequestOptions:
    """JSON when the code is inline text (or absent); multipart with a ``file`` part and a
    ``config`` JSON field when it is a file or a zipped package."""
    if code is None:
        return RequestOptions(method, path, json=config, idempotency_key=idempotency_key, timeout=timeout)
    src = resolve_code(code)
    if creating:
        config.setdefault("name", src.default_name)
        if src.default_entrypoint and config.get("mode") != "script":  # a script has no entry function
            config.setdefault("entrypoint", src.default_entrypoint)
        if not config.get("name"):
            raise ValueError("name= is required when deploying code given as a string")
    if src.file is None:
        return RequestOptions(
            method, path, json={**config, "code": src.code}, idempotency_key=idempotency_key, timeout=timeout
        )
    return RequestOptions(
        method, path, data={"config": dumps(config)}, files=[src.file], idempotency_key=idempotency_key,
        timeout=timeout,
    )


class ToolsAPI:
    """``client.tools``, written once for :class:`Tools` and :class:`AsyncTools`."""

    @endpoint
    def deploy(
        self,
        code: CodeLike,
        *,
        name: str | None = None,
        entrypoint: str | None = None,
        description: str | None = None,
        input_schema: Mapping[str, Any] | None = None,
        output_schema: Mapping[str, Any] | None = None,
        requirements: Sequence[str] | str | None = None,
        required_secrets: Sequence[str] | str | None = None,
        default_inputs: Mapping[str, Any] | None = None,
        visibility: Literal["private", "public"] | None = None,
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        retries: int | None = None,
        reuse_process: bool | None = None,
        retry_on: Sequence[str] | None = None,
        retry_backoff_s: float | None = None,
        network: bool | None = None,
        connections: Sequence[str] | str | None = None,
        files: Sequence[str] | str | None = None,
        mode: Literal["function", "script"] | None = None,
        output_vars: Sequence[str] | str | None = None,
        idempotency_key: str | None = None,
        timeout: Timeout = None,
    ) -> Plan[Tool]:
        """Deploy a new tool. ``code`` is source text, a function object (its source is
        deployed and its name becomes the default tool name and entrypoint), or a path to
        a ``.py`` file, a ``.zip`` or a package directory (zipped for upload). A ``str``
        is taken as a path only when it has no newline and names an existing file.
        ``files``: the workspace files its runs read (``context.files.open(name)``).
        ``mode="script"``: code without an entry function — the inputs become its module
        globals (``default_inputs`` as defaults) and the run's output is ``{name: value}``
        of the globals ``output_vars`` names; ``entrypoint`` then names the module to run."""
        config = _config(
            name=name, entrypoint=entrypoint, description=description, input_schema=input_schema,
            output_schema=output_schema, requirements=requirements, required_secrets=required_secrets,
            default_inputs=default_inputs, visibility=visibility, timeout_s=timeout_s, memory_mb=memory_mb,
            retries=retries,
            reuse_process=reuse_process, retry_on=retry_on, retry_backoff_s=retry_backoff_s, network=network,
            connections=connections, files=files, mode=mode, output_vars=output_vars,
        )
        opts = _code_request(
            "POST", "/tools", code, config, creating=True, idempotency_key=idempotency_key, timeout=timeout
        )
        return Tool.model_validate((yield Send(opts)).json())

    @endpoint
    def update(
        self,
        tool: str,
        *,
        code: CodeLike | None = None,
        entrypoint: str | None = None,
        description: str | None = None,
        input_schema: Mapping[str, Any] | None = None,
        output_schema: Mapping[str, Any] | None = None,
        requirements: Sequence[str] | str | None = None,
        required_secrets: Sequence[str] | str | None = None,
        default_inputs: Mapping[str, Any] | None = None,
        visibility: Literal["private", "public"] | None = None,
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        retries: int | None = None,
        reuse_process: bool | None = None,
        retry_on: Sequence[str] | None = None,
        retry_backoff_s: float | None = None,
        network: bool | None = None,
        connections: Sequence[str] | str | None = None,
        files: Sequence[str] | str | None = None,
        mode: Literal["function", "script"] | None = None,
        output_vars: Sequence[str] | str | None = None,
        timeout: Timeout = None,
    ) -> Plan[Tool]:
        """Change any subset of a tool; a code or config change (``mode`` and
        ``output_vars`` included) makes a new version."""
        config = _config(
            name=None, entrypoint=entrypoint, description=description, input_schema=input_schema,
            output_schema=output_schema, requirements=requirements, required_secrets=required_secrets,
            default_inputs=default_inputs, visibility=visibility, timeout_s=timeout_s, memory_mb=memory_mb,
            retries=retries,
            reuse_process=reuse_process, retry_on=retry_on, retry_backoff_s=retry_backoff_s, network=network,
            connections=connections, files=files, mode=mode, output_vars=output_vars,
        )
        opts = _code_request(
            "PATCH", f"/tools/{seg(tool)}", code, config, creating=False, idempotency_key=None, timeout=timeout
        )
        return Tool.model_validate((yield Send(opts)).json())

    @endpoint
    def rename(self, tool: str, name: str, *, timeout: Timeout = None) -> Plan[Tool]:
        """Rename a tool: its id, versions and runs stay; the old name is free at once
        (409 ``tool_exists`` when ``name`` is taken)."""
        opts = RequestOptions("PATCH", f"/tools/{seg(tool)}", json={"name": name}, timeout=timeout)
        return Tool.model_validate((yield Send(opts)).json())

    @endpoint
    def get(self, tool: str, *, timeout: Timeout = None) -> Plan[Tool]:
        """A tool by id (``tool_…``) or name, with its latest version's settings."""
        return Tool.model_validate((yield Send(RequestOptions("GET", f"/tools/{seg(tool)}", timeout=timeout))).json())

    @listing
    def list(
        self,
        *,
        search: str | None = None,
        sort: Literal["name", "created_at", "updated_at"] | None = None,
        order: Literal["asc", "desc"] | None = None,
        limit: int | None = None,
        include_total: bool | None = None,
        timeout: Timeout = None,
    ) -> Listing[Tool]:
        """The workspace's tools, ``search`` matching their names; iterate the page for
        every tool across pages."""
        params = compact(search=search, sort=sort, order=order, limit=limit, include_total=include_total)
        return Listing(Tool, lambda cursor: RequestOptions(
            "GET", "/tools", params={**params, "cursor": cursor}, timeout=timeout))

    @listing
    def versions(self, tool: str, *, limit: int | None = None, timeout: Timeout = None) -> Listing[ToolVersion]:
        """The versions of a tool, newest first."""
        return Listing(ToolVersion, lambda cursor: RequestOptions(
            "GET", f"/tools/{seg(tool)}/versions", params={"limit": limit, "cursor": cursor}, timeout=timeout))

    @endpoint
    def get_version(self, tool: str, version: int, *, timeout: Timeout = None) -> Plan[ToolVersion]:
        """One version of a tool (its code hash, settings and schemas as deployed)."""
        opts = RequestOptions("GET", f"/tools/{seg(tool)}/versions/{int(version)}", timeout=timeout)
        return ToolVersion.model_validate((yield Send(opts)).json())

    @endpoint
    def delete(self, tool: str, *, timeout: Timeout = None) -> Plan[None]:
        """Delete a tool; its runs stay readable."""
        yield Send(RequestOptions("DELETE", f"/tools/{seg(tool)}", timeout=timeout))

    @endpoint
    def run(
        self,
        tool: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
        tags: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        raise_on_failure: bool = False,
    ) -> Plan[Run]:
        """Run a tool and wait until the run ends (or ``timeout`` seconds pass, raising
        :class:`~runyard.WaitTimeoutError`). Shorthand for ``runs.create`` + ``runs.wait``."""
        return (yield from RunsAPI.create_and_wait.plan(
            self, tool, inputs, version=version, tags=tags, timeout=timeout, raise_on_failure=raise_on_failure
        ))


class Tools(ToolsAPI, SyncResource):
    """``client.tools``: deploy, update, inspect and run tools."""


class AsyncTools(ToolsAPI, AsyncResource):
    """``client.tools`` of :class:`~runyard.AsyncClient`: the methods of :class:`Tools`, as coroutines."""
