"""``client.workflows``: save workflow definitions (YAML), manage their versions, drafts and
tags, and run them.

A definition is given as a path to a ``.yaml``/``.yml``/``.json`` file, as YAML text or as
a dict. An invalid one is a :class:`~runyard.ValidationError` whose ``issues`` list every
problem (``code``, ``message``, ``path``, ``line``, ``column``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from .._base import RequestOptions, Timeout
from .._endpoint import Listing, Plan, Send, Sleep, endpoint, listing
from ..errors import WaitTimeoutError
from ..models import Run, Workflow, WorkflowVersion
from ._resource import AsyncResource, SyncResource, compact, seg
from .runs import _check_failures, _create_request, _Deadline, _wait_request

__all__ = ["Workflows", "AsyncWorkflows", "DefinitionLike"]

#: What ``create``/``update`` accept: a path to a definition file, YAML (or JSON) text, or a dict.
DefinitionLike = str | os.PathLike[str] | Mapping[str, Any]
DEFINITION_SUFFIXES = (".yaml", ".yml", ".json")
#: While waiting for a workflow that may stop at a ``wait_for_input`` step, the server is
#: asked this often (its long-poll only answers when a run ends).
INPUT_POLL_S = 1.0
WorkflowRef = str | Workflow


def _ref(workflow: WorkflowRef) -> str:
    return workflow.id if isinstance(workflow, Workflow) else str(workflow)


def read_definition(definition: DefinitionLike) -> str | dict[str, Any]:
    """The definition as text (a file read, or the text given) or as a dict."""
    if isinstance(definition, Mapping):
        return dict(definition)
    if isinstance(definition, os.PathLike) or (
        # One line ending in .yaml/.yml/.json, and not a ``key: value`` line: a file name.
        isinstance(definition, str) and "\n" not in definition and ": " not in definition
        and definition.strip().endswith(DEFINITION_SUFFIXES)
    ):
        path = Path(definition).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no such definition file: {path}")
        return path.read_text(encoding="utf-8")
    if isinstance(definition, str):
        return definition
    raise TypeError(f"a definition is a path, YAML text or a dict, not a {type(definition).__name__}")


def _save_request(method: str, path: str, definition: DefinitionLike, *, draft: bool | None,
                  folder_id: str | None, tag: str | None, timeout: Timeout) -> RequestOptions:
    """Text goes as ``application/yaml`` (the rest in the query), a dict as JSON."""
    source = read_definition(definition)
    if isinstance(source, str):
        return RequestOptions(method, path, content=source.encode("utf-8"),
                              headers={"Content-Type": "application/yaml"},
                              params=compact(draft=draft or None, folder_id=folder_id, tag=tag), timeout=timeout)
    return RequestOptions(method, path, json=compact(definition=source, draft=draft or None, folder_id=folder_id,
                                                     tag=tag), timeout=timeout)


_UNSET: Any = object()


class WorkflowsAPI:
    """``client.workflows``, written once for :class:`Workflows` and :class:`AsyncWorkflows`."""

    @endpoint
    def create(
        self,
        definition: DefinitionLike,
        *,
        draft: bool = False,
        folder_id: str | None = None,
        tag: str | None = None,
        timeout: Timeout = None,
    ) -> Plan[Workflow]:
        """Save a definition: a new workflow, or — when one of that name exists — its next
        published version (``draft=True``: its draft, replacing any earlier draft).
        ``tag`` tags the published version (moved from any other); ``folder_id`` files it."""
        opts = _save_request("POST", "/workflows", definition, draft=draft, folder_id=folder_id, tag=tag,
                             timeout=timeout)
        return Workflow.model_validate((yield Send(opts)).json())

    @listing
    def list(
        self,
        *,
        search: str | None = None,
        name: str | None = None,
        kind: Literal["workflow", "block"] | None = None,
        folder_id: str | None = None,
        sort: Literal["name", "created_at", "updated_at"] | None = None,
        order: Literal["asc", "desc"] | None = None,
        limit: int | None = None,
        include_total: bool | None = None,
        timeout: Timeout = None,
    ) -> Listing[Workflow]:
        """Workflows and blocks, newest first unless ``sort``/``order`` say otherwise;
        ``search`` matches names and descriptions. Iterate the page for every one across pages."""
        params = compact(search=search, name=name, kind=kind, folder_id=folder_id, sort=sort, order=order,
                         limit=limit, include_total=include_total)
        return Listing(Workflow, lambda cursor: RequestOptions(
            "GET", "/workflows", params={**params, "cursor": cursor}, timeout=timeout))

    @endpoint
    def get(self, workflow: WorkflowRef, *, timeout: Timeout = None) -> Plan[Workflow]:
        """One workflow by id or name, with its latest version's text and its draft."""
        return Workflow.model_validate((yield Send(RequestOptions(
            "GET", f"/workflows/{seg(_ref(workflow))}", timeout=timeout))).json())

    @endpoint
    def update(
        self,
        workflow: WorkflowRef,
        definition: DefinitionLike | None = None,
        *,
        draft: bool = False,
        folder_id: str | None = _UNSET,
        tag: str | None = None,
        timeout: Timeout = None,
    ) -> Plan[Workflow]:
        """A new version (``draft=True``: the draft) from ``definition``, and/or a move to
        ``folder_id`` (None: out of any folder). Only what is given changes."""
        body: dict[str, Any] = compact(tag=tag)
        if definition is not None:
            body["definition"] = read_definition(definition)
        if draft:
            body["draft"] = True
        if folder_id is not _UNSET:
            body["folder_id"] = folder_id
        return Workflow.model_validate((yield Send(RequestOptions(
            "PATCH", f"/workflows/{seg(_ref(workflow))}", json=body, timeout=timeout))).json())

    @endpoint
    def delete(self, workflow: WorkflowRef, *, timeout: Timeout = None) -> Plan[None]:
        """Delete a workflow with every version (its runs stay)."""
        yield Send(RequestOptions("DELETE", f"/workflows/{seg(_ref(workflow))}", timeout=timeout))

    @listing
    def versions(self, workflow: WorkflowRef, *, limit: int | None = None,
                 timeout: Timeout = None) -> Listing[WorkflowVersion]:
        """Its versions, the draft (``version`` None) included."""
        path = f"/workflows/{seg(_ref(workflow))}/versions"
        return Listing(WorkflowVersion, lambda cursor: RequestOptions(
            "GET", path, params={"limit": limit, "cursor": cursor}, timeout=timeout))

    @endpoint
    def version(self, workflow: WorkflowRef, ref: int | str, *, timeout: Timeout = None) -> Plan[WorkflowVersion]:
        """One published version — a number or a tag — with its text and parsed definition."""
        return WorkflowVersion.model_validate((yield Send(RequestOptions(
            "GET", f"/workflows/{seg(_ref(workflow))}/versions/{seg(str(ref))}", timeout=timeout))).json())

    @endpoint
    def publish(
        self, workflow: WorkflowRef, tag: str | None = None, version: int | None = None, *, timeout: Timeout = None
    ) -> Plan[WorkflowVersion]:
        """Publish the draft as the next version (tagged ``tag`` if given); a workflow
        without a draft is a :class:`~runyard.ConflictError` (``no_draft``). With
        ``version``, instead move ``tag`` onto that published version."""
        return WorkflowVersion.model_validate((yield Send(RequestOptions(
            "POST", f"/workflows/{seg(_ref(workflow))}/versions", json=compact(tag=tag, version=version),
            timeout=timeout))).json())

    @endpoint
    def run(
        self,
        workflow: WorkflowRef,
        inputs: Mapping[str, Any] | None = None,
        *,
        version: int | str | None = None,
        tags: Mapping[str, Any] | None = None,
        wait: float | None = None,
        idempotency_key: str | None = None,
        timeout: Timeout = None,
    ) -> Plan[Run]:
        """Start a run of the workflow (by name or id; ``version`` a number or a tag, default
        the latest). ``pathlib.Path`` values (and open binary files) in ``inputs`` are
        uploaded as files, for the inputs declared ``{type: string, format: file}``. With
        ``wait`` (seconds, ≤ 600) the server holds the request until the run ends."""
        opts = _create_request(None, inputs, workflow=_ref(workflow), version=version, tags=tags,
                               requires_confirmation=None, wait=wait, idempotency_key=idempotency_key,
                               timeout=timeout)
        return Run.model_validate((yield Send(opts)).json())

    @endpoint
    def run_and_wait(
        self,
        workflow: WorkflowRef,
        inputs: Mapping[str, Any] | None = None,
        *,
        input: Mapping[str, Any] | None = None,
        version: int | str | None = None,
        tags: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        return_on_input: bool = True,
        raise_on_failure: bool = False,
    ) -> Plan[Run]:
        """Run the workflow and wait until the run ends (``timeout`` seconds at most, then
        :class:`~runyard.WaitTimeoutError`) — or, with ``return_on_input`` (the default),
        until it waits at a ``wait_for_input`` step (status ``waiting_for_input``: answer
        with ``client.runs.send_input`` and wait again with ``client.runs.wait``).
        ``input`` is another name for ``inputs``."""
        if input is not None and inputs is not None:
            raise TypeError("give inputs or input, not both")
        deadline = _Deadline(timeout)
        first_wait = min(deadline.chunk(), INPUT_POLL_S) if return_on_input else deadline.chunk()
        run = yield from WorkflowsAPI.run.plan(self, workflow, inputs if input is None else input, version=version,
                                               tags=tags, wait=first_wait)
        while not (run.is_terminal or (return_on_input and run.status == "waiting_for_input")):
            left = deadline.remaining()
            if left is not None and left <= 0:
                raise WaitTimeoutError(f"run {run.id} still {run.status} after {timeout}s", runs=[run])
            started = time.monotonic()
            chunk = min(deadline.chunk(), INPUT_POLL_S) if return_on_input else deadline.chunk()
            body = (yield Send(_wait_request([run.id], chunk))).json()
            for item in (*body.get("items", ()), *body.get("pending", ())):
                run = Run.model_validate(item)
            pause = 0.2 - (time.monotonic() - started)
            if pause > 0 and not run.is_terminal:
                yield Sleep(pause)
        if run.is_terminal:
            _check_failures([run], raise_on_failure)
        return run


class Workflows(WorkflowsAPI, SyncResource):
    """``client.workflows``: save, version, tag and run workflows."""


class AsyncWorkflows(WorkflowsAPI, AsyncResource):
    """``client.workflows`` of :class:`~runyard.AsyncClient`: the methods of :class:`Workflows`, as coroutines."""
