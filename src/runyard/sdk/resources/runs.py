"""``client.runs``: create, inspect, wait for, control and read runs."""

from __future__ import annotations

import asyncio
import builtins
import os
import time
from collections.abc import Awaitable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, overload

from .._base import LONG_POLL_MARGIN, FilePart, RequestOptions, Timeout
from .._files import dumps, split_file_inputs
from ..errors import RunFailedError, WaitTimeoutError
from ..models import Artifact, Run
from ..pagination import AsyncPaginator, SyncCursorPage
from ..streaming import AsyncLogStream, LogStream
from ._resource import AsyncResource, SyncResource, compact, seg

__all__ = ["Runs", "AsyncRuns", "Artifacts", "AsyncArtifacts", "RunFiles", "AsyncRunFiles"]

#: The server caps ``wait`` on run creation at this many seconds.
MAX_CREATE_WAIT = 600.0
#: Length of one server-side long-poll; a longer wait is several of these.
LONG_POLL_CHUNK = 60.0

RunRef = str | Run


def _run_id(ref: RunRef) -> str:
    return ref.id if isinstance(ref, Run) else str(ref)


def _create_request(
    tool: str,
    inputs: Mapping[str, Any] | None,
    *,
    version: int | None,
    tags: Mapping[str, Any] | None,
    requires_confirmation: bool | None,
    wait: float | None,
    idempotency_key: str | None,
    timeout: Timeout,
) -> RequestOptions:
    plain, files = split_file_inputs(inputs)
    payload = compact(
        tool=tool, version=version, inputs=plain, tags=dict(tags) if tags else None,
        requires_confirmation=requires_confirmation,
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
    tool: str | None,
    status: str | Sequence[str] | None,
    session: str | None,
    batch_id: str | None,
    example_id: str | None,
    created_after: datetime | str | None,
    created_before: datetime | str | None,
    order: str | None,
    limit: int | None,
    include_total: bool | None,
) -> dict[str, Any]:
    return compact(
        tool=tool,
        status=[status] if isinstance(status, str) else list(status) if status is not None else None,
        session=session,
        batch_id=batch_id,
        example_id=example_id,
        created_after=created_after,
        created_before=created_before,
        order=order,
        limit=limit,
        include_total=include_total,
    )


def _wait_request(run_id: str, chunk: float) -> RequestOptions:
    return RequestOptions(
        "GET", f"/runs/{seg(run_id)}/wait", params={"timeout": _seconds(chunk)}, timeout=chunk + LONG_POLL_MARGIN
    )


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


# ---------------------------------------------------------------------------- sync


class Artifacts(SyncResource):
    def list(self, run: RunRef, *, timeout: Timeout = None) -> builtins.list[Artifact]:
        body = self._client.request(RequestOptions("GET", f"/runs/{seg(_run_id(run))}/artifacts", timeout=timeout)).json()
        items = body.get("items", []) if isinstance(body, dict) else body
        return [Artifact.model_validate(a) for a in items]

    @overload
    def download(self, run: RunRef, path: str, dest: None = None, *, timeout: Timeout = None) -> bytes: ...
    @overload
    def download(self, run: RunRef, path: str, dest: str | Path, *, timeout: Timeout = None) -> Path: ...
    def download(self, run: RunRef, path: str, dest: str | Path | None = None, *, timeout: Timeout = None) -> bytes | Path:
        """The artifact's bytes, or, with ``dest`` (a file, or a directory to put it in),
        streams it to disk and returns the written path."""
        opts = RequestOptions("GET", f"/runs/{seg(_run_id(run))}/artifacts/{_artifact_path(path)}", timeout=timeout)
        if dest is None:
            return self._client.request(opts).content
        target = _target(dest, path)
        with self._client.stream(opts) as resp, _atomic_write(target) as fh:
            for chunk in resp.iter_bytes():
                fh.write(chunk)
        return target

    @overload
    def download_zip(self, run: RunRef, dest: None = None, *, timeout: Timeout = None) -> bytes: ...
    @overload
    def download_zip(self, run: RunRef, dest: str | Path, *, timeout: Timeout = None) -> Path: ...
    def download_zip(self, run: RunRef, dest: str | Path | None = None, *, timeout: Timeout = None) -> bytes | Path:
        rid = _run_id(run)
        opts = RequestOptions("GET", f"/runs/{seg(rid)}/artifacts.zip", timeout=timeout)
        if dest is None:
            return self._client.request(opts).content
        target = _target(dest, f"{rid}-artifacts.zip")
        with self._client.stream(opts) as resp, _atomic_write(target) as fh:
            for chunk in resp.iter_bytes():
                fh.write(chunk)
        return target


class RunFiles(SyncResource):
    def upload(self, run: RunRef, files: Mapping[str, str | Path], *, timeout: Timeout = None) -> Run:
        """Attach input files (field name = input name) to a run awaiting confirmation."""
        opts = RequestOptions("POST", f"/runs/{seg(_run_id(run))}/files", files=_upload_parts(files), timeout=timeout)
        return Run.model_validate(self._client.request(opts).json())


class Runs(SyncResource):
    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.artifacts = Artifacts(client)
        self.files = RunFiles(client)

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
        timeout: Timeout = None,
    ) -> Run:
        """Start a run. ``pathlib.Path`` values in ``inputs`` are uploaded as files. With
        ``wait`` (seconds, ≤ 600) the server holds the request until the run ends or the
        time passes and returns the run as it then stands."""
        opts = _create_request(
            tool, inputs, version=version, tags=tags, requires_confirmation=requires_confirmation, wait=wait,
            idempotency_key=idempotency_key, timeout=timeout,
        )
        return Run.model_validate(self._client.request(opts).json())

    def create_and_wait(
        self,
        tool: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
        tags: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        raise_on_failure: bool = False,
    ) -> Run:
        deadline = _Deadline(timeout)
        run = self.create(tool, inputs, version=version, tags=tags, wait=deadline.chunk())
        if run.is_terminal:
            _check_failures([run], raise_on_failure)
            return run
        return self.wait(run, timeout=deadline.remaining(), raise_on_failure=raise_on_failure)

    def get(self, run: RunRef, *, include_inputs: bool = False, timeout: Timeout = None) -> Run:
        params = {"expand": "inputs"} if include_inputs else None
        resp = self._client.request(RequestOptions("GET", f"/runs/{seg(_run_id(run))}", params=params, timeout=timeout))
        return Run.model_validate(resp.json())

    def list(
        self,
        *,
        tool: str | None = None,
        status: str | Sequence[str] | None = None,
        session: str | None = None,
        batch_id: str | None = None,
        example_id: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        order: Literal["asc", "desc"] | None = None,
        limit: int | None = None,
        include_total: bool | None = None,
        timeout: Timeout = None,
    ) -> SyncCursorPage[Run]:
        params = _list_params(
            tool, status, session, batch_id, example_id, created_after, created_before, order, limit, include_total
        )

        def fetch(cursor: str | None) -> Any:
            opts = RequestOptions("GET", "/runs", params={**params, "cursor": cursor}, timeout=timeout)
            return self._client.request(opts).json()

        return SyncCursorPage(fetch(None), Run, fetch)

    def cancel(self, run: RunRef, *, timeout: Timeout = None) -> Run:
        """Cancel; a run that already ended comes back as it is."""
        resp = self._client.request(RequestOptions("POST", f"/runs/{seg(_run_id(run))}/cancel", timeout=timeout))
        return Run.model_validate(resp.json())

    def confirm(self, run: RunRef, *, timeout: Timeout = None) -> Run:
        """Release a run created with ``requires_confirmation=True``."""
        resp = self._client.request(RequestOptions("POST", f"/runs/{seg(_run_id(run))}/confirm", timeout=timeout))
        return Run.model_validate(resp.json())

    def rerun(
        self, run: RunRef, *, version: Literal["original", "latest"] = "original", wait: float | None = None,
        idempotency_key: str | None = None, timeout: Timeout = None,
    ) -> Run:
        """A new run with the same inputs, on the original tool version or the latest;
        ``wait`` as in :meth:`create`."""
        return Run.model_validate(self._client.request(_rerun_request(run, version, wait, idempotency_key, timeout)).json())

    @overload
    def wait(  # type: ignore[overload-overlap]  # a str is a Sequence too; it matches this first
        self, runs: RunRef, *, timeout: float | None = None, poll_interval: float = 0.5, raise_on_failure: bool = False
    ) -> Run: ...
    @overload
    def wait(
        self, runs: Sequence[RunRef], *, timeout: float | None = None,
        poll_interval: float = 0.5, raise_on_failure: bool = False,
    ) -> builtins.list[Run]: ...
    def wait(
        self,
        runs: RunRef | Sequence[RunRef],
        *,
        timeout: float | None = None,
        poll_interval: float = 0.5,
        raise_on_failure: bool = False,
    ) -> Run | builtins.list[Run]:
        """Block until the run (or every run of a list, returned in input order) ends.

        Uses the server's long-poll, so a finished run is seen at once without tight
        polling; ``poll_interval`` is only the minimum spacing between two long-polls that
        came back early. Raises :class:`~runyard.WaitTimeoutError` (a ``TimeoutError``)
        after ``timeout`` seconds, and :class:`~runyard.RunFailedError` for a run that did
        not succeed when ``raise_on_failure``."""
        single = isinstance(runs, str | Run)
        ids = [_run_id(runs)] if isinstance(runs, str | Run) else [_run_id(r) for r in runs]
        deadline = _Deadline(timeout)
        done: list[Run] = []
        for rid in ids:
            try:
                done.append(self._wait_one(rid, deadline, poll_interval))
            except WaitTimeoutError as exc:
                raise WaitTimeoutError(
                    f"{len(ids) - len(done)} of {len(ids)} run(s) still not finished after {timeout}s",
                    runs=done + exc.runs + [self.get(r) for r in ids[len(done) + 1:]],
                ) from None
        _check_failures(done, raise_on_failure)
        return done[0] if single else done

    def _wait_one(self, run_id: str, deadline: _Deadline, poll_interval: float) -> Run:
        while True:
            started = time.monotonic()
            run = Run.model_validate(self._client.request(_wait_request(run_id, deadline.chunk())).json())
            if run.is_terminal:
                return run
            left = deadline.remaining()
            if left is not None and left <= 0:
                raise WaitTimeoutError(f"run {run_id} still {run.status}", runs=[run])
            # Guard against a server that answers a long-poll early: never spin.
            pause = poll_interval - (time.monotonic() - started)
            if pause > 0:
                time.sleep(pause if left is None else min(pause, left))

    @overload
    def logs(self, run: RunRef, *, follow: Literal[False] = False, offset: int = 0, timeout: Timeout = None) -> str: ...
    @overload
    def logs(self, run: RunRef, *, follow: Literal[True], offset: int = 0, timeout: Timeout = None) -> LogStream: ...
    def logs(self, run: RunRef, *, follow: bool = False, offset: int = 0, timeout: Timeout = None) -> str | LogStream:
        """The log text from ``offset``; with ``follow=True`` an iterator of lines that
        streams live until the run ends, reconnecting (``Last-Event-ID``) if the connection
        drops, without repeating or losing a line."""
        rid = _run_id(run)
        if follow:
            return LogStream(self._client, rid, offset=offset)
        opts = RequestOptions(
            "GET", f"/runs/{seg(rid)}/logs", params={"offset": offset or None}, headers={"Accept": "text/plain"},
            timeout=timeout,
        )
        return self._client.request(opts).text


# ---------------------------------------------------------------------------- async


class AsyncArtifacts(AsyncResource):
    async def list(self, run: RunRef, *, timeout: Timeout = None) -> builtins.list[Artifact]:
        resp = await self._client.request(RequestOptions("GET", f"/runs/{seg(_run_id(run))}/artifacts", timeout=timeout))
        body = resp.json()
        items = body.get("items", []) if isinstance(body, dict) else body
        return [Artifact.model_validate(a) for a in items]

    @overload
    async def download(self, run: RunRef, path: str, dest: None = None, *, timeout: Timeout = None) -> bytes: ...
    @overload
    async def download(self, run: RunRef, path: str, dest: str | Path, *, timeout: Timeout = None) -> Path: ...
    async def download(
        self, run: RunRef, path: str, dest: str | Path | None = None, *, timeout: Timeout = None
    ) -> bytes | Path:
        opts = RequestOptions("GET", f"/runs/{seg(_run_id(run))}/artifacts/{_artifact_path(path)}", timeout=timeout)
        if dest is None:
            return (await self._client.request(opts)).content
        target = _target(dest, path)
        async with self._client.stream(opts) as resp:
            with _atomic_write(target) as fh:
                async for chunk in resp.aiter_bytes():
                    fh.write(chunk)
        return target

    @overload
    async def download_zip(self, run: RunRef, dest: None = None, *, timeout: Timeout = None) -> bytes: ...
    @overload
    async def download_zip(self, run: RunRef, dest: str | Path, *, timeout: Timeout = None) -> Path: ...
    async def download_zip(self, run: RunRef, dest: str | Path | None = None, *, timeout: Timeout = None) -> bytes | Path:
        rid = _run_id(run)
        opts = RequestOptions("GET", f"/runs/{seg(rid)}/artifacts.zip", timeout=timeout)
        if dest is None:
            return (await self._client.request(opts)).content
        target = _target(dest, f"{rid}-artifacts.zip")
        async with self._client.stream(opts) as resp:
            with _atomic_write(target) as fh:
                async for chunk in resp.aiter_bytes():
                    fh.write(chunk)
        return target


class AsyncRunFiles(AsyncResource):
    async def upload(self, run: RunRef, files: Mapping[str, str | Path], *, timeout: Timeout = None) -> Run:
        opts = RequestOptions("POST", f"/runs/{seg(_run_id(run))}/files", files=_upload_parts(files), timeout=timeout)
        return Run.model_validate((await self._client.request(opts)).json())


class AsyncRuns(AsyncResource):
    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.artifacts = AsyncArtifacts(client)
        self.files = AsyncRunFiles(client)

    async def create(
        self,
        tool: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
        tags: Mapping[str, Any] | None = None,
        requires_confirmation: bool | None = None,
        wait: float | None = None,
        idempotency_key: str | None = None,
        timeout: Timeout = None,
    ) -> Run:
        opts = _create_request(
            tool, inputs, version=version, tags=tags, requires_confirmation=requires_confirmation, wait=wait,
            idempotency_key=idempotency_key, timeout=timeout,
        )
        return Run.model_validate((await self._client.request(opts)).json())

    async def create_and_wait(
        self,
        tool: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
        tags: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        raise_on_failure: bool = False,
    ) -> Run:
        deadline = _Deadline(timeout)
        run = await self.create(tool, inputs, version=version, tags=tags, wait=deadline.chunk())
        if run.is_terminal:
            _check_failures([run], raise_on_failure)
            return run
        return await self.wait(run, timeout=deadline.remaining(), raise_on_failure=raise_on_failure)

    async def get(self, run: RunRef, *, include_inputs: bool = False, timeout: Timeout = None) -> Run:
        params = {"expand": "inputs"} if include_inputs else None
        opts = RequestOptions("GET", f"/runs/{seg(_run_id(run))}", params=params, timeout=timeout)
        return Run.model_validate((await self._client.request(opts)).json())

    def list(
        self,
        *,
        tool: str | None = None,
        status: str | Sequence[str] | None = None,
        session: str | None = None,
        batch_id: str | None = None,
        example_id: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        order: Literal["asc", "desc"] | None = None,
        limit: int | None = None,
        include_total: bool | None = None,
        timeout: Timeout = None,
    ) -> AsyncPaginator[Run]:
        params = _list_params(
            tool, status, session, batch_id, example_id, created_after, created_before, order, limit, include_total
        )

        async def fetch(cursor: str | None) -> Any:
            opts = RequestOptions("GET", "/runs", params={**params, "cursor": cursor}, timeout=timeout)
            return (await self._client.request(opts)).json()

        return AsyncPaginator(lambda: fetch(None), Run, fetch)

    async def cancel(self, run: RunRef, *, timeout: Timeout = None) -> Run:
        opts = RequestOptions("POST", f"/runs/{seg(_run_id(run))}/cancel", timeout=timeout)
        return Run.model_validate((await self._client.request(opts)).json())

    async def confirm(self, run: RunRef, *, timeout: Timeout = None) -> Run:
        opts = RequestOptions("POST", f"/runs/{seg(_run_id(run))}/confirm", timeout=timeout)
        return Run.model_validate((await self._client.request(opts)).json())

    async def rerun(
        self, run: RunRef, *, version: Literal["original", "latest"] = "original", wait: float | None = None,
        idempotency_key: str | None = None, timeout: Timeout = None,
    ) -> Run:
        opts = _rerun_request(run, version, wait, idempotency_key, timeout)
        return Run.model_validate((await self._client.request(opts)).json())

    @overload
    async def wait(  # type: ignore[overload-overlap]  # a str is a Sequence too; it matches this first
        self, runs: RunRef, *, timeout: float | None = None, poll_interval: float = 0.5, raise_on_failure: bool = False
    ) -> Run: ...
    @overload
    async def wait(
        self, runs: Sequence[RunRef], *, timeout: float | None = None,
        poll_interval: float = 0.5, raise_on_failure: bool = False,
    ) -> builtins.list[Run]: ...
    async def wait(
        self,
        runs: RunRef | Sequence[RunRef],
        *,
        timeout: float | None = None,
        poll_interval: float = 0.5,
        raise_on_failure: bool = False,
    ) -> Run | builtins.list[Run]:
        """Async twin of :meth:`Runs.wait`; several runs are long-polled concurrently."""
        single = isinstance(runs, str | Run)
        ids = [_run_id(runs)] if isinstance(runs, str | Run) else [_run_id(r) for r in runs]
        deadline = _Deadline(timeout)
        results = await asyncio.gather(*(self._wait_one(rid, deadline, poll_interval) for rid in ids))
        pending = [r for r in results if not r.is_terminal]
        if pending:
            raise WaitTimeoutError(
                f"{len(pending)} of {len(ids)} run(s) still not finished after {timeout}s", runs=list(results)
            )
        _check_failures(list(results), raise_on_failure)
        return results[0] if single else list(results)

    async def _wait_one(self, run_id: str, deadline: _Deadline, poll_interval: float) -> Run:
        # Returns the non-terminal run on timeout; ``wait`` turns that into the error once
        # every concurrent wait has finished, so the error can report all of them.
        while True:
            started = time.monotonic()
            opts = _wait_request(run_id, deadline.chunk())
            run = Run.model_validate((await self._client.request(opts)).json())
            if run.is_terminal:
                return run
            left = deadline.remaining()
            if left is not None and left <= 0:
                return run
            pause = poll_interval - (time.monotonic() - started)
            if pause > 0:
                await asyncio.sleep(pause if left is None else min(pause, left))

    @overload
    def logs(
        self, run: RunRef, *, follow: Literal[False] = False, offset: int = 0, timeout: Timeout = None
    ) -> Awaitable[str]: ...
    @overload
    def logs(self, run: RunRef, *, follow: Literal[True], offset: int = 0, timeout: Timeout = None) -> AsyncLogStream: ...
    def logs(
        self, run: RunRef, *, follow: bool = False, offset: int = 0, timeout: Timeout = None
    ) -> Awaitable[str] | AsyncLogStream:
        """``await client.runs.logs(id)`` → text; ``async for line in client.runs.logs(id, follow=True)``
        streams live (not a coroutine, so no ``await`` before ``async for``)."""
        rid = _run_id(run)
        if follow:
            return AsyncLogStream(self._client, rid, offset=offset)
        opts = RequestOptions(
            "GET", f"/runs/{seg(rid)}/logs", params={"offset": offset or None}, headers={"Accept": "text/plain"},
            timeout=timeout,
        )
        return self._text(opts)

    async def _text(self, opts: RequestOptions) -> str:
        return (await self._client.request(opts)).text


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
