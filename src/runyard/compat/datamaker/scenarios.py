"""``DataMaker(...).scenarios``: the reference's Scenarios operations over runyard.

A scenario is a runyard tool: its code is the tool's code, ``replace`` publishes a new
tool version, and a scenario run is a run of that tool whose inputs are the scenario's
params. Answers are plain dicts in the shapes of DataMaker's REST API (lists as
``{"items", "next_cursor", "total"}``); failures raise
:class:`~runyard.compat.datamaker.DataMakerError`.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from runyard.sdk import Client, NotFoundError, Run, Tool
from runyard.sdk._base import RequestOptions

from .errors import DataMakerError, translated
from .params import coerce_params, wait_flag

__all__ = ["Scenarios", "WAIT_LIMIT_S", "coerce_params"]

#: ``wait: true`` holds the request until the run ends, at most this long (the reference's
#: five minutes); then the run comes back as it stands.
WAIT_LIMIT_S = 300.0

_SLUG_GAPS = re.compile(r"[^a-z0-9_-]+")


def _seg(value: str) -> str:
    from urllib.parse import quote

    return quote(str(value), safe="")


def _slug(name: str) -> str:
    """A runyard tool name for a scenario name: lowercase, other characters as '-'."""
    slug = _SLUG_GAPS.sub("-", name.strip().lower()).strip("-")
    return slug[:64].rstrip("-") or name


def scenario_view(tool: Tool) -> dict[str, Any]:
    data = tool.to_dict()
    schema = tool.input_schema or {}
    return {
        "id": tool.id,
        "name": tool.name,
        "description": tool.description or "",
        "version": tool.version,
        "entrypoint": tool.entrypoint,
        "params": sorted((schema.get("properties") or {}).keys()),
        "params_schema": schema,
        "created_at": data.get("created_at"),
        "updated_at": data.get("updated_at"),
    }


def run_view(run: Run) -> dict[str, Any]:
    data = run.to_dict()
    error = None
    if run.error is not None:
        error = {"code": run.error.type or "error", "message": run.error.message or "",
                 "traceback": run.error.traceback}
    view = {
        "id": run.id,
        "scenario_id": run.tool_id,
        "scenario_name": run.tool_name,
        "scenario_version": run.tool_version,
        "status": run.status,
        "output": run.output,
        "error": error,
        "created_at": data.get("created_at"),
        "started_at": data.get("started_at"),
        "finished_at": data.get("finished_at"),
        "duration_ms": run.usage.wall_ms if run.usage is not None else None,
        "attempt": run.attempt,
    }
    if run.inputs is not None:
        view["params"] = run.inputs
    return view


def _page(body: Mapping[str, Any], view: Any, model: Any) -> dict[str, Any]:
    return {"items": [view(model.model_validate(item)) for item in body.get("items", [])],
            "next_cursor": body.get("next_cursor"), "total": body.get("total")}


class Scenarios:
    """The Scenarios section of DataMaker's REST API, one method per operation:

    =====================================  =================
    ``GET /scenarios``                     :meth:`list`
    ``POST /scenarios``                    :meth:`create`
    ``PUT /scenarios/{id}``                :meth:`replace`
    ``POST /scenarios/{id}/run``           :meth:`run`
    ``GET /scenarios/{id}/runs``           :meth:`runs`
    ``GET /scenarios/{id}/runs/{run}``     :meth:`run_detail`
    ``GET …/runs/{run}/logs[?follow]``     :meth:`logs`
    ``DELETE /scenarios/{id}/runs/{run}``  :meth:`cancel`
    =====================================  =================

    A scenario id is the runyard tool's id (``tool_…``); its name works too.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    # -- scenarios ---------------------------------------------------------------------------
    def list(self, *, cursor: str | None = None, limit: int | None = None, search: str | None = None,
             include_total: bool = True) -> dict[str, Any]:
        """One page of scenarios, newest first: ``{"items", "next_cursor", "total"}``; pass
        ``next_cursor`` back as ``cursor`` for the next page."""
        params = {"cursor": cursor, "limit": limit, "search": search, "include_total": include_total or None,
                  "sort": "created_at", "order": "desc"}
        with translated():
            body = self._client.request(RequestOptions("GET", "/tools", params=params)).json()
        return _page(body, scenario_view, Tool)

    def get(self, scenario_id: str) -> dict[str, Any]:
        """One scenario (not an operation of the reference; what ``list`` shows of one)."""
        with translated():
            return scenario_view(self._client.tools.get(scenario_id))

    def create(self, name: str, code: str, *, description: str | None = None, entrypoint: str | None = None,
               requirements: Sequence[str] | str | None = None, timeout_s: float | None = None) -> dict[str, Any]:
        """A new scenario running ``code`` (Python source; ``entrypoint``, default ``main``, is
        called with the params as keyword arguments, and what it returns is the run's
        output). ``name`` becomes a runyard tool name (lowercase, other characters as '-');
        a name already taken is 409 ``scenario_exists`` (use :meth:`replace`)."""
        slug = _slug(name)
        with translated():
            try:
                existing = self._client.tools.get(slug)
            except NotFoundError:
                pass  # the name is free
            else:
                raise DataMakerError(409, "scenario_exists", f"a scenario named {slug!r} already exists",
                                     details={"scenario_id": existing.id, "name": slug})
            tool = self._client.tools.deploy(code, name=slug, description=description, entrypoint=entrypoint,
                                             requirements=requirements, timeout_s=timeout_s)
        return scenario_view(tool)

    def replace(self, scenario_id: str, code: str, *, entrypoint: str | None = None,
                requirements: Sequence[str] | str | None = None) -> dict[str, Any]:
        """Replace the scenario's code: a new version, which every run started afterwards
        uses (runs already started keep the version they began with)."""
        with translated():
            return scenario_view(self._client.tools.update(
                scenario_id, code=code, entrypoint=entrypoint, requirements=requirements))

    # -- runs ----------------------------------------------------------------------------------
    def run(self, scenario_id: str, params: Mapping[str, Any] | None = None, *,
            wait: bool | str = False) -> dict[str, Any]:
        """Trigger a run with ``params`` (see :func:`coerce_params`). ``wait=False`` answers
        at once (``status`` ``queued`` or later; poll :meth:`run_detail` or follow
        :meth:`logs`); ``wait=True`` holds until the run ends, at most five minutes, and
        answers the run as it then stands (``output`` or ``error`` once it ended)."""
        blocking = wait_flag(wait)
        with translated():
            tool = self._client.tools.get(scenario_id)
            inputs = coerce_params(dict(params or {}), tool.input_schema)
            run = self._client.runs.create(tool.id, inputs, version=tool.version,
                                           wait=WAIT_LIMIT_S if blocking else None)
            if run.inputs is None:
                run = run.model_copy(update={"inputs": inputs})
        return run_view(run)

    def runs(self, scenario_id: str, *, cursor: str | None = None, limit: int | None = None,
             status: str | builtins.list[str] | None = None, include_total: bool = True) -> dict[str, Any]:
        """One page of the scenario's runs, newest first: ``{"items", "next_cursor", "total"}``
        (``status`` filters; items leave out ``params``, :meth:`run_detail` has them)."""
        with translated():
            tool = self._client.tools.get(scenario_id)
            params: dict[str, Any] = {"tool": tool.id, "cursor": cursor, "limit": limit,
                                      "include_total": include_total or None,
                                      "status": [status] if isinstance(status, str) else status}
            body = self._client.request(RequestOptions("GET", "/runs", params=params)).json()
        return _page(body, run_view, Run)

    def run_detail(self, scenario_id: str, run_id: str) -> dict[str, Any]:
        """A run of the scenario as it stands, with its params."""
        with translated():
            return run_view(self._own_run(scenario_id, run_id, include_inputs=True))

    def logs(self, scenario_id: str, run_id: str, *, follow: bool = False) -> str | Iterator[str]:
        """The run's log as text; with ``follow=True`` an iterator of its lines, live until
        the run ends (runyard's SSE log stream, resumed if the connection drops)."""
        with translated():
            run = self._own_run(scenario_id, run_id)
            if not follow:
                return self._client.runs.logs(run.id)
        return self._follow(run.id)

    def _follow(self, run_id: str) -> Iterator[str]:
        with translated():
            yield from self._client.runs.logs(run_id, follow=True)

    def cancel(self, scenario_id: str, run_id: str) -> dict[str, Any]:
        """Cancel the run (its processes are stopped); a run that already ended comes back
        as it is."""
        with translated():
            run = self._own_run(scenario_id, run_id)
            return run_view(self._client.runs.cancel(run.id))

    def _own_run(self, scenario_id: str, run_id: str, *, include_inputs: bool = False) -> Run:
        """The run, when it is a run of this scenario; 404 ``run_not_found`` otherwise, as
        DataMaker's path ``/scenarios/{id}/runs/{run_id}`` would answer."""
        tool = self._client.tools.get(scenario_id)
        run = self._client.runs.get(run_id, include_inputs=include_inputs)
        if run.tool_id != tool.id:
            raise DataMakerError(404, "run_not_found", f"run {run_id!r} is not a run of scenario {scenario_id!r}",
                                 details={"run_id": run_id, "scenario_id": scenario_id})
        return run
