"""``client.runs``: create, inspect, wait for, control and read runs."""

from __future__ import annotations

import asyncio
import builtins
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from .._base import LONG_POLL_MARGIN, FilePart, RequestOptions, Timeout
from .._endpoint import Listing, Open, Plan, Read, Send, Sleep, endpoint, listing
from .._files import dumps, split_file_inputs
from ..errors import RunFailedError, WaitTimeoutError
from ..models import (
    Artifact,
    Run,
    RunBatchItem,
    RunConnection,
    RunDefinition,
    RunFile,
    RunSearchResult,
    TraceStep,
)
from ..streaming import AsyncLogStream, LogStream
from ._resource import AsyncResource, SyncResource, compact, seg
from .evaluation import (
    AsyncComparisons,
    AsyncExpectations,
    AsyncRunFeedback,
    Comparisons,
    Expectations,
    RunFeedback,
)

__all__ = ["Runs", "AsyncRuns", "Artifacts", "AsyncArtifacts", "RunFiles", "AsyncRunFiles", "RunSpec"]

#: The server caps ``wait`` on run creation at this many seconds.
MAX_CREATE_WAIT = 600.0
#: Length of one server-side long-poll; a longer wait is several of these.
LONG_POLL_CHUNK = 60.0
#: Runs per ``POST /runs/batch`` and ids per ``POST /runs/wait`` (the server's limit);
#: ``create_many`` and ``wait`` send more as several requests.
MAX_BATCH = 1000

RunRef = str | Run
#: One item of ``create_many``: the fields of ``create`` — ``tool`` (required),
#: ``inputs``, ``version``, ``tags``, ``requires_confirmation``, ``idempotency_key``.
RunSpec = Mapping[str, Any]


def _run_id(ref: RunRef) -> str:
    return ref.id if isinstance(ref, Run) else str(ref)


def _create_request(
    tool: str | None,
    inputs: Mapping[str, Any] | None,
    *,
    version: int | str | None,
    tags: Mapping[str, Any] | None,
    requires_confirmation: bool | None,
    wait: float | None,
    idempotency_key: str | None,
    timeout: Timeout,
    workflow: str | None = None,
    timeout_s: float | None = None,
) -> RequestOptions:
    """``POST /runs`` of a tool, or with ``workflow`` of a workflow (``version`` then a
    number or a tag); ``pathlib.Path`` values and open binary files in ``inputs`` go as
    multipart file parts."""
    plain, files = split_file_inputs(inputs)
    payload = compact(
        tool=tool, workflow=workflow, version=version, inputs=plain, tags=dict(tags) if tags else None,
        requires_confirmation=requires_confirmation, timeout_s=timeout_s,
    )
    params: dict[str, Any] = {}
    timeout = _apply_wait(params, wait, timeout)
    if files:
        # Files travel as parts named after their input; the JSON rides in ``payload``.
        return RequestOptions(
            "POST", "/runs", params=params, data={"payload": dumps(payload)}, files=files,
            idempotency_key=idempotency_key, timeout=timeout,
        )
    return RequestOptions("POST", "/runs", params=params, json=payload, idempotency_key=idempotency_key, timeout=timeout)


def _apply_wait(params: dict[str, Any], wait: float | None, timeout: Timeout) -> Timeout:
    """Add ``wait`` to the query and stretch the read timeout past it: the server holds
    the request open for up to ``wait`` seconds."""
    if wait is None:
        return timeout
    wait = max(0.0, min(float(wait), MAX_CREATE_WAIT))
    params["wait"] = _seconds(wait)
    if timeout is None or (isinstance(timeout, int | float) and timeout < wait + LONG_POLL_MARGIN):
        return wait + LONG_POLL_MARGIN
    return timeout


def _rerun_request(
    run: RunRef, version: str, wait: float | None, idempotency_key: str | None, timeout: Timeout
) -> RequestOptions:
    params: dict[str, Any] = {"version": version}
    timeout = _apply_wait(params, wait, timeout)
    return RequestOptions(
        "POST", f"/runs/{seg(_run_id(run))}/rerun", params=params, idempotency_key=idempotency_key, timeout=timeout
    )


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"


def _list_params(
    tool: str | Sequence[str] | None,
    status: str | Sequence[str] | None,
    session: str | None,
    batch_id: str | None,
    example_id: str | None,
    created_after: datetime | str | None,
    created_before: datetime | str | None,
    order: str | None,
    limit: int | None,
    include_total: bool | None,
    **filters: Any,
) -> dict[str, Any]:
    ids = filters.pop("ids", None)
    trigger = filters.pop("trigger", None)
    return compact(
        tool=_listed(tool),
        status=_listed(status),
        session=session,
        batch_id=batch_id,
        example_id=example_id,
        created_after=created_after,
        created_before=created_before,
        order=order,
        limit=limit,
        include_total=include_total,
        trigger=_listed(trigger),
        ids=None if ids is None else ",".join([ids] if isinstance(ids, str) else ids),
        **filters,
    )


def _listed(value: str | Sequence[str] | None) -> builtins.list[str] | None:
    return [value] if isinstance(value, str) else builtins.list(value) if value is not None else None


def _page_request(params: Mapping[str, Any], cursor: str | None, timeout: Timeout) -> RequestOptions:
    """GET /runs for the page after ``cursor``: ``offset`` places the first page only
    (the server takes one or the other; the cursor goes on from where the offset led)."""
    if cursor is not None:
        # After a numbered page the cursor goes on with pages of the same size.
        size = params.get("page_size")
        params = {k: v for k, v in params.items() if k not in ("offset", "page", "page_size")}
        if size is not None:
            params["limit"] = size
    return RequestOptions("GET", "/runs", params={**params, "cursor": cursor}, timeout=timeout)


def _wait_request(run_ids: Sequence[str], chunk: float) -> RequestOptions:
    return RequestOptions(
        "POST", "/runs/wait", json={"ids": list(run_ids), "timeout": float(_seconds(chunk))},
        timeout=chunk + LONG_POLL_MARGIN,
    )


def _batch_item(spec: RunSpec) -> dict[str, Any]:
    """One ``POST /runs/batch`` item from a ``create_many`` spec (the body of ``create``)."""
    if not isinstance(spec, Mapping):
        raise TypeError(f"create_many takes mappings with a 'tool' (and inputs, tags…), got {type(spec).__name__}")
    unknown = set(spec) - _SPEC_FIELDS
    if unknown:
        raise TypeError(f"unknown run field(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(_SPEC_FIELDS))}")
    inputs = spec.get("inputs")
    tags = spec.get("tags")
    return compact(
        tool=spec.get("tool"), version=spec.get("version"), inputs=dict(inputs) if inputs is not None else None,
        tags=dict(tags) if tags else None, requires_confirmation=spec.get("requires_confirmation"),
        idempotency_key=spec.get("idempotency_key"),
    )


_SPEC_FIELDS = frozenset({"tool", "inputs", "version", "tags", "requires_confirmation", "idempotency_key"})


def _check_failures(runs: list[Run], raise_on_failure: bool) -> None:
    if raise_on_failure:
        for run in runs:
            if run.status != "succeeded":
                raise RunFailedError(run)


def _upload_parts(files: Mapping[str, str | Path]) -> list[FilePart]:
    parts: list[FilePart] = []
    for name, value in files.items():
        path = Path(value).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"input {name!r}: no such file: {path}")
        parts.append(FilePart(name, path.name, path))
    return parts


class _Deadline:
    def __init__(self, timeout: float | None) -> None:
        self.at = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> float | None:
        return None if self.at is None else self.at - time.monotonic()

    def chunk(self) -> float:
        left = self.remaining()
        return LONG_POLL_CHUNK if left is None else max(0.0, min(left, LONG_POLL_CHUNK))


def _download(opts: RequestOptions, dest: str | Path | None, name: str) -> Plan[bytes | Path]:
    """The body's bytes, or, with ``dest``, the body streamed to a file (see :func:`_target`)."""
    if dest is None:
        return (yield Send(opts)).content
    target = _target(dest, name)
    stream = yield Open(opts)
    with _atomic_write(target) as fh:
        while (chunk := (yield Read(stream))) is not None:
            fh.write(chunk)
    return target


def _wait_many(ids: builtins.list[str], timeout: float | None, poll_interval: float) -> Plan[builtins.list[Run]]:
    """Long-poll ``POST /runs/wait`` over the ids still running (at most ``MAX_BATCH`` a
    request) until every run is terminal or ``timeout`` passes; the runs in input order.
    Raises :class:`WaitTimeoutError` with every run as it stands."""
    deadline = _Deadline(timeout)
    latest: dict[str, Run] = {}
    pending = list(dict.fromkeys(ids))
    while pending:
        started = time.monotonic()
        for start in range(0, len(pending), MAX_BATCH):
            body = (yield Send(_wait_request(pending[start:start + MAX_BATCH], deadline.chunk()))).json()
            for item in (*body.get("items", ()), *body.get("pending", ())):
                run = Run.model_validate(item)
                latest[run.id] = run
        pending = [rid for rid in pending if rid not in latest or not latest[rid].is_terminal]
        left = deadline.remaining()
        if pending and left is not None and left <= 0:
            runs = [latest[rid] for rid in ids if rid in latest]
            raise WaitTimeoutError(
                f"{len(pending)} of {len(set(ids))} run(s) still not finished after {timeout}s", runs=runs
            )
        # Guard against a server that answers a long-poll early: never spin.
        pause = poll_interval - (time.monotonic() - started)
        if pending and pause > 0:
            yield Sleep(pause if left is None else min(pause, left))
    return [latest[rid] for rid in ids]


# ---------------------------------------------------------------------------- endpoints


class ArtifactsAPI:
    """``client.runs.artifacts``, written once for :class:`Artifacts` and :class:`AsyncArtifacts`."""

    @endpoint
    def list(self, run: RunRef, *, timeout: Timeout = None) -> Plan[builtins.list[Artifact]]:
        """The files the run wrote under its output directory, by path."""
        body = (yield Send(RequestOptions("GET", f"/runs/{seg(_run_id(run))}/artifacts", timeout=timeout))).json()
        items = body.get("items", []) if isinstance(body, dict) else body
        return [Artifact.model_validate(a) for a in items]

    @endpoint
    def download(
        self, run: RunRef, path: str, dest: str | Path | None = None, *, timeout: Timeout = None
    ) -> Plan[bytes | Path]:
        """The artifact's bytes, or, with ``dest`` (a file, or a directory to put it in),
        streams it to disk and returns the written path."""
        opts = RequestOptions("GET", f"/runs/{seg(_run_id(run))}/artifacts/{_artifact_path(path)}", timeout=timeout)
        return (yield from _download(opts, dest, path))

    @endpoint
    def download_zip(self, run: RunRef, dest: str | Path | None = None, *, timeout: Timeout = None) -> Plan[bytes | Path]:
        """Every artifact in one zip: its bytes, or, with ``dest``, written there (a
        directory gets ``<run id>-artifacts.zip``) and its path returned."""
        rid = _run_id(run)
        opts = RequestOptions("GET", f"/runs/{seg(rid)}/artifacts.zip", timeout=timeout)
        return (yield from _download(opts, dest, f"{rid}-artifacts.zip"))


class RunFilesAPI:
    """``client.runs.files``, written once for :class:`RunFiles` and :class:`AsyncRunFiles`."""

    @endpoint
    def upload(self, run: RunRef, files: Mapping[str, str | Path], *, timeout: Timeout = None) -> Plan[Run]:
        """Attach input files (field name = input name) to a run awaiting confirmation."""
        opts = RequestOptions("POST", f"/runs/{seg(_run_id(run))}/files", files=_upload_parts(files), timeout=timeout)
        return Run.model_validate((yield Send(opts)).json())

    @endpoint
    def list(self, run: RunRef, *, timeout: Timeout = None) -> Plan[builtins.list[RunFile]]:
        """The files the run was given then those it wrote (a workflow run's: its steps'
        too, each with its ``step``). ``client.runs.files(run)`` is the same call."""
        body = (yield Send(RequestOptions("GET", f"/runs/{seg(_run_id(run))}/files", timeout=timeout))).json()
        return [RunFile.model_validate(item) for item in body.get("items", [])]

    @endpoint
    def delete(self, run: RunRef, file_id: str, *, timeout: Timeout = None) -> Plan[None]:
        """Remove an input file of a run that has not started (awaiting confirmation or
        queued); later, a :class:`~runyard.ConflictError` (``run_already_started``)."""
        yield Send(RequestOptions("DELETE", f"/runs/{seg(_run_id(run))}/files/{seg(file_id)}", timeout=timeout))
        return None

    __call__ = list


class RunsAPI:
    """``client.runs``, written once for :class:`Runs` and :class:`AsyncRuns`."""

    @endpoint
    def create(
        self,
        tool: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
        tags: Mapping[str, Any] | None = None,
        requires_confirmation: bool | None = None,
        wait: float | None = None,
        idempotency_key: str | None = None,
        timeout_s: float | None = None,
        timeout: Timeout = None,
    ) -> Plan[Run]:
        """Start a run. ``pathlib.Path`` values in ``inputs`` are uploaded as files. With
        ``wait`` (seconds, ≤ 600) the server holds the request until the run ends or the
        time passes and returns the run as it then stands. ``timeout_s``: the run's own
        time limit, at most its tool version's (400 ``timeout_too_large`` otherwise);
        ``timeout`` is this HTTP request's."""
        opts = _create_request(
            tool, inputs, version=version, tags=tags, requires_confirmation=requires_confirmation, wait=wait,
            idempotency_key=idempotency_key, timeout=timeout, timeout_s=timeout_s,
        )
        return Run.model_validate((yield Send(opts)).json())

    @endpoint
    def create_many(
        self, runs: Iterable[RunSpec], *, idempotency_key: str | None = None, timeout: Timeout = None
    ) -> Plan[builtins.list[RunBatchItem]]:
        """Start many runs with one request per 1,000 (``POST /runs/batch``).

        Each item of ``runs`` is a mapping with the fields of :meth:`create`: ``tool``
        and optionally ``inputs``, ``version``, ``tags``, ``requires_confirmation`` and
        ``idempotency_key``. Returns one :class:`~runyard.RunBatchItem` per item, in
        order: ``.run`` when it was created (or replayed), ``.error`` when it was refused
        (a bad input, an unknown or hidden tool…) — one item's error never fails the
        others. Files cannot be uploaded this way.

        Retries are safe: an item without its own ``idempotency_key`` gets one derived
        from the request's key (``idempotency_key`` here, or one the client makes up)
        and its position, so a retried request creates nothing twice.
        """
        items = [_batch_item(spec) for spec in runs]
        results: builtins.list[RunBatchItem] = []
        for start in range(0, len(items), MAX_BATCH):
            key = None if idempotency_key is None else f"{idempotency_key}:{start // MAX_BATCH}"
            opts = RequestOptions("POST", "/runs/batch", json={"runs": items[start:start + MAX_BATCH]},
                                  idempotency_key=key, timeout=timeout)
            for item in (yield Send(opts)).json()["items"]:
                results.append(RunBatchItem.model_validate({**item, "index": start + item["index"]}))
        return results

    @endpoint
    def create_and_wait(
        self,
        tool: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
        tags: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        raise_on_failure: bool = False,
    ) -> Plan[Run]:
        """Start a run and wait for its end (``timeout`` seconds at most, then
        :class:`~runyard.WaitTimeoutError`); the run as it ended."""
        deadline = _Deadline(timeout)
        run = yield from RunsAPI.create.plan(self, tool, inputs, version=version, tags=tags, wait=deadline.chunk())
        if not run.is_terminal:
            run = (yield from _wait_many([run.id], deadline.remaining(), 0.5))[0]
        _check_failures([run], raise_on_failure)
        return run

    @endpoint
    def get(
        self, run: RunRef, *, include_inputs: bool = False, expand: str | Sequence[str] | None = None,
        timeout: Timeout = None,
    ) -> Plan[Run]:
        """A run as it stands; ``include_inputs`` adds the inputs it was given. ``expand``
        (a list or comma-separated) adds any of ``inputs``, ``usage`` (always there),
        ``execution`` (worker, attempts, environment, timings) and ``debug`` (the sandbox
        and limits it ran under)."""
        parts = [expand] if isinstance(expand, str) else builtins.list(expand or ())
        if include_inputs:
            parts.append("inputs")
        params = {"expand": ",".join(dict.fromkeys(parts))} if parts else None
        opts = RequestOptions("GET", f"/runs/{seg(_run_id(run))}", params=params, timeout=timeout)
        return Run.model_validate((yield Send(opts)).json())

    @endpoint
    def connect(self, run: RunRef, *, timeout: Timeout = None) -> Plan[RunConnection]:
        """A signed WebSocket URL streaming the run live (log lines, progress, trace events,
        status, then ``end``), over which ``{"type": "input", "value": ...}`` answers a run
        waiting for input. Good for a minute; it acts as this client's key."""
        return RunConnection.model_validate((yield Send(RequestOptions(
            "POST", f"/runs/{seg(_run_id(run))}/connect", timeout=timeout))).json())

    @endpoint
    def delete_file(self, run: RunRef, file_id: str, *, timeout: Timeout = None) -> Plan[None]:
        """``client.runs.files.delete``: remove an input file before the run starts."""
        return (yield from RunFilesAPI.delete.plan(self, run, file_id, timeout=timeout))

    @listing
    def list(
        self,
        *,
        tool: str | Sequence[str] | None = None,
        status: str | Sequence[str] | None = None,
        session: str | None = None,
        batch_id: str | None = None,
        example_id: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        project: str | None = None,
        app: str | None = None,
        source_ref: str | None = None,
        worker_id: str | None = None,
        example_id_contains: str | None = None,
        type: Literal["tool", "workflow"] | None = None,
        trigger: str | Sequence[str] | None = None,
        triggered_by: str | None = None,
        source: str | None = None,
        parent_run_id: str | None = None,
        completed_after: datetime | str | None = None,
        completed_before: datetime | str | None = None,
        ids: str | Sequence[str] | None = None,
        sort: str | None = None,
        order: Literal["asc", "desc"] | None = None,
        offset: int | None = None,
        limit: int | None = None,
        page: int | None = None,
        page_size: int | None = None,
        include_total: bool | None = None,
        timeout: Timeout = None,
    ) -> Listing[Run]:
        """Runs, newest first unless ``sort``/``order`` say otherwise, filtered by tool (a
        name or id, or several), status(es), tags (``session``, ``batch_id``, ``example_id``,
        ``project``, ``app``, ``source_ref``), ``example_id_contains``, ``worker_id``,
        creation and completion time, ``type``, ``trigger`` (one or several),
        ``triggered_by`` (a user, schedule or webhook id), ``source`` (the tool's name),
        ``parent_run_id`` and ``ids`` (at most 1000). ``sort``: ``created_at``,
        ``started_at``, ``finished_at``, ``queued_at``, ``duration`` or a column such as
        ``tool_name``, ``status``, ``project``. ``offset`` skips that many runs first;
        ``page`` (from 1) and ``page_size`` (≤ 1000) ask for a numbered page instead of
        ``offset``/``limit``. Iterate the page for every run across pages."""
        params = _list_params(
            tool, status, session, batch_id, example_id, created_after, created_before, order, limit, include_total,
            type=type, trigger=trigger, triggered_by=triggered_by, source=source, parent_run_id=parent_run_id,
            completed_after=completed_after, completed_before=completed_before, ids=ids, sort=sort, offset=offset,
            project=project, app=app, source_ref=source_ref, worker_id=worker_id,
            example_id_contains=example_id_contains, page=page, page_size=page_size,
        )
        return Listing(Run, lambda cursor: _page_request(params, cursor, timeout))

    @endpoint
    def search(
        self,
        props: Sequence[Mapping[str, Any]] = (),
        *,
        select: Sequence[str] | None = None,
        limit: int | None = None,
        offset: int | None = None,
        with_total_count: bool = False,
        order: str | None = None,
        timeout: Timeout = None,
    ) -> Plan[RunSearchResult]:
        """Runs matching every prop ``{"field", "op", "value"}`` (fields: run columns such
        as ``status``, ``tool_name``, ``project``, ``created_at``, and nested values
        ``tags.<key>``, ``inputs.<name>``, ``usage.<key>``; ops: ``eq neq in nin gt gte lt
        lte contains startswith exists``), each item a dict of only the ``select``ed columns
        (all by default); ``order`` like ``"created_at desc"``; ``total`` when
        ``with_total_count``. ``result.next_offset`` pages on."""
        body = compact(props=[dict(p) for p in props], select=None if select is None else builtins.list(select),
                       limit=limit, offset=offset, with_total_count=with_total_count or None, order=order)
        return RunSearchResult.model_validate((yield Send(RequestOptions(
            "POST", "/runs/search", json=body, timeout=timeout))).json())

    @endpoint
    def cancel(self, run: RunRef, *, timeout: Timeout = None) -> Plan[Run]:
        """Cancel; a run that already ended comes back as it is."""
        return Run.model_validate((yield Send(RequestOptions(
            "POST", f"/runs/{seg(_run_id(run))}/cancel", timeout=timeout))).json())

    @endpoint
    def confirm(self, run: RunRef, *, timeout: Timeout = None) -> Plan[Run]:
        """Release a run created with ``requires_confirmation=True``."""
        return Run.model_validate((yield Send(RequestOptions(
            "POST", f"/runs/{seg(_run_id(run))}/confirm", timeout=timeout))).json())

    @endpoint
    def rerun(
        self, run: RunRef, *, version: Literal["original", "latest"] = "original", wait: float | None = None,
        idempotency_key: str | None = None, timeout: Timeout = None,
    ) -> Plan[Run]:
        """A new run with the same inputs, on the original tool version or the latest;
        ``wait`` as in :meth:`create`."""
        return Run.model_validate((yield Send(_rerun_request(run, version, wait, idempotency_key, timeout))).json())

    @endpoint
    def wait(
        self,
        runs: RunRef | Sequence[RunRef],
        *,
        timeout: float | None = None,
        poll_interval: float = 0.5,
        raise_on_failure: bool = False,
    ) -> Plan[Run | builtins.list[Run]]:
        """Block until the run (or every run of a list, returned in input order) ends.

        One server long-poll (``POST /runs/wait``) covers up to 1,000 runs, so a finished
        run is seen at once without tight polling; ``poll_interval`` is only the minimum
        spacing between two long-polls that came back early. Raises
        :class:`~runyard.WaitTimeoutError` (a ``TimeoutError``, its ``runs`` every run as
        it stands) after ``timeout`` seconds, and :class:`~runyard.RunFailedError` for a
        run that did not succeed when ``raise_on_failure``."""
        single = isinstance(runs, str | Run)
        ids = [_run_id(runs)] if isinstance(runs, str | Run) else [_run_id(r) for r in runs]
        done = yield from _wait_many(ids, timeout, poll_interval)
        _check_failures(done, raise_on_failure)
        return done[0] if single else done

    @endpoint
    def send_input(
        self, run: RunRef, payload: Any, *, step_id: str | None = None, timeout: Timeout = None
    ) -> Plan[Run]:
        """End a workflow's ``wait_for_input`` step: ``payload`` (JSON, at most 1 MB) becomes
        that step's output and the workflow goes on. ``run`` is the workflow run (or the
        waiting step's run); ``step_id`` says which step when several wait. A run that is not
        waiting is a :class:`~runyard.ConflictError` (``invalid_state``)."""
        body: dict[str, Any] = {"payload": payload}
        if step_id is not None:
            body["step_id"] = step_id
        return Run.model_validate((yield Send(RequestOptions(
            "POST", f"/runs/{seg(_run_id(run))}/input", json=body, timeout=timeout))).json())

    @endpoint
    def definition(self, run: RunRef, *, timeout: Timeout = None) -> Plan[RunDefinition]:
        """The exact workflow definition (text and parsed) a workflow run used."""
        return RunDefinition.model_validate((yield Send(RequestOptions(
            "GET", f"/runs/{seg(_run_id(run))}/definition", timeout=timeout))).json())

    @endpoint
    def trace(self, run: RunRef, *, timeout: Timeout = None) -> Plan[builtins.list[Any]]:
        """A workflow run's step timeline: :class:`~runyard.sdk.models.TraceStep` items
        (each step run, one per ``for_each`` item, then the steps skipped or not started).
        A tool run: the trace events its code recorded with ``runyard.context.trace``, as dicts."""
        body = (yield Send(RequestOptions("GET", f"/runs/{seg(_run_id(run))}/trace", timeout=timeout))).json()
        items = body.get("items", []) if isinstance(body, dict) else body
        return [TraceStep.model_validate(i) if isinstance(i, dict) and "step_id" in i and "status" in i else i
                for i in items]

    @listing
    def steps(self, run: RunRef, *, limit: int | None = None, timeout: Timeout = None) -> Listing[Run]:
        """A workflow run's step runs (its child runs: ``step_id``, ``item_index``), oldest
        first — ``list(parent_run_id=run, order="asc")``."""
        params = compact(parent_run_id=_run_id(run), order="asc", limit=limit)
        return Listing(Run, lambda cursor: _page_request(params, cursor, timeout))

    def logs(self, run: RunRef, *, follow: bool = False, offset: int = 0, timeout: Timeout = None) -> Any:
        """The log text from ``offset``; with ``follow=True`` an iterator of lines that
        streams live until the run ends, reconnecting (``Last-Event-ID``) if the connection
        drops, without repeating or losing a line. (On :class:`AsyncRuns`: ``await`` the
        text; ``async for`` over the live lines, with no ``await`` before it.)"""
        rid = _run_id(run)
        if follow:
            return self._follow(rid, offset)  # type: ignore[attr-defined]
        opts = RequestOptions(
            "GET", f"/runs/{seg(rid)}/logs", params={"offset": offset or None}, headers={"Accept": "text/plain"},
            timeout=timeout,
        )
        return self._run(_text(opts))  # type: ignore[attr-defined]


def _text(opts: RequestOptions) -> Plan[str]:
    return (yield Send(opts)).text


class Artifacts(ArtifactsAPI, SyncResource):
    """``client.runs.artifacts``: list and download what runs wrote."""


class AsyncArtifacts(ArtifactsAPI, AsyncResource):
    """``client.runs.artifacts`` of :class:`~runyard.AsyncClient` (coroutines)."""


class RunFiles(RunFilesAPI, SyncResource):
    """``client.runs.files``: input files for a run awaiting confirmation."""


class AsyncRunFiles(RunFilesAPI, AsyncResource):
    """``client.runs.files`` of :class:`~runyard.AsyncClient` (coroutines)."""


class Runs(RunsAPI, SyncResource):
    """``client.runs``: create, inspect, wait for, control and read runs."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.artifacts = Artifacts(client)
        self.expected = Expectations(client)
        self.comparison = Comparisons(client)
        self.feedback = RunFeedback(client)
        self.files = RunFiles(client)

    def _follow(self, run_id: str, offset: int) -> LogStream:
        return LogStream(self._client, run_id, offset=offset)

    def live(self, run: RunRef, *, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """The run's live messages as dicts (``status``, ``log``, ``progress``, ``trace``,
        ``step``, ... ``end``), until it ends; ``timeout``: the longest wait for one message.
        Needs the ``websockets`` package (the server install has it)."""
        try:
            from websockets.sync.client import connect
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError("client.runs.live needs the websockets package: pip install websockets") from exc
        link = self.connect(run)
        with connect(link.url, open_timeout=30) as ws:
            while True:
                message = json.loads(ws.recv(timeout=timeout))
                yield message
                if message.get("type") == "end":
                    return

    if TYPE_CHECKING:  # what the shared methods return here, for type checkers
        @overload
        def wait(self, runs: RunRef, *, timeout: float | None = None, poll_interval: float = 0.5,  # type: ignore[overload-overlap]
                 raise_on_failure: bool = False) -> Run: ...
        @overload
        def wait(self, runs: Sequence[RunRef], *, timeout: float | None = None, poll_interval: float = 0.5,
                 raise_on_failure: bool = False) -> builtins.list[Run]: ...
        def wait(self, runs: RunRef | Sequence[RunRef], *, timeout: float | None = None, poll_interval: float = 0.5,
                 raise_on_failure: bool = False) -> Run | builtins.list[Run]: ...
        @overload
        def logs(self, run: RunRef, *, follow: Literal[False] = False, offset: int = 0,
                 timeout: Timeout = None) -> str: ...
        @overload
        def logs(self, run: RunRef, *, follow: Literal[True], offset: int = 0, timeout: Timeout = None) -> LogStream: ...
        def logs(self, run: RunRef, *, follow: bool = False, offset: int = 0,
                 timeout: Timeout = None) -> str | LogStream: ...


class AsyncRuns(RunsAPI, AsyncResource):
    """``client.runs`` of :class:`~runyard.AsyncClient`: the methods of :class:`Runs`, as
    coroutines (``list`` gives a paginator, ``logs(follow=True)`` an async iterator)."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.artifacts = AsyncArtifacts(client)
        self.expected = AsyncExpectations(client)
        self.comparison = AsyncComparisons(client)
        self.feedback = AsyncRunFeedback(client)
        self.files = AsyncRunFiles(client)

    def _follow(self, run_id: str, offset: int) -> AsyncLogStream:
        return AsyncLogStream(self._client, run_id, offset=offset)

    async def live(self, run: RunRef, *, timeout: float | None = None) -> AsyncIterator[dict[str, Any]]:
        """The run's live messages (see :meth:`Runs.live`), as an async iterator."""
        try:
            from websockets.asyncio.client import connect
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError("client.runs.live needs the websockets package: pip install websockets") from exc
        link = await self.connect(run)
        async with connect(link.url, open_timeout=30) as ws:
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
                yield message
                if message.get("type") == "end":
                    return

    if TYPE_CHECKING:
        @overload
        async def wait(self, runs: RunRef, *, timeout: float | None = None,  # type: ignore[overload-overlap]
                       poll_interval: float = 0.5, raise_on_failure: bool = False) -> Run: ...
        @overload
        async def wait(self, runs: Sequence[RunRef], *, timeout: float | None = None, poll_interval: float = 0.5,
                       raise_on_failure: bool = False) -> builtins.list[Run]: ...
        async def wait(self, runs: RunRef | Sequence[RunRef], *, timeout: float | None = None,
                       poll_interval: float = 0.5, raise_on_failure: bool = False) -> Run | builtins.list[Run]: ...
        @overload
        def logs(self, run: RunRef, *, follow: Literal[False] = False, offset: int = 0,
                 timeout: Timeout = None) -> Awaitable[str]: ...
        @overload
        def logs(self, run: RunRef, *, follow: Literal[True], offset: int = 0,
                 timeout: Timeout = None) -> AsyncLogStream: ...
        def logs(self, run: RunRef, *, follow: bool = False, offset: int = 0,
                 timeout: Timeout = None) -> Awaitable[str] | AsyncLogStream: ...


# ---------------------------------------------------------------------------- helpers


def _artifact_path(path: str) -> str:
    from urllib.parse import quote

    # Artifact paths keep their '/' separators; everything else is escaped.
    return quote(path.lstrip("/"), safe="/")


def _target(dest: str | Path, name: str) -> Path:
    """Where to write artifact ``name``: into ``dest`` when it is a directory (keeping the
    artifact's sub-path), else at ``dest`` itself. A name that would escape the directory
    (absolute, or with ``..``) is refused: artifact paths come from tool code."""
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts:
        raise ValueError(f"refusing unsafe artifact path: {name!r}")
    # A str ending in "/" names a directory to create; Path() would drop that slash.
    dir_hint = isinstance(dest, str) and dest.endswith(("/", os.sep))
    folder = Path(dest).expanduser()
    target = folder / rel if dir_hint or folder.is_dir() else folder
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


class _atomic_write:
    """Write to a temporary sibling and rename on success, so an interrupted download
    never leaves a truncated file under the final name."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.tmp = target.with_name(f".{target.name}.part")

    def __enter__(self) -> Any:
        self.fh = self.tmp.open("wb")
        return self.fh

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.fh.close()
        if exc_type is None:
            self.tmp.replace(self.target)
        else:
            self.tmp.unlink(missing_ok=True)
