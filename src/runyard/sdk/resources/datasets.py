"""``client.datasets``: datasets and their catalog, ingestion (rows, files, large
uploads), ingestion records, previews and schema inference, and SQL queries.

Most methods are plans (see :mod:`runyard.sdk._endpoint`), written once for both
clients. ``upload`` is the exception: it sends a file's parts in parallel — threads on
:class:`Datasets`, tasks on :class:`AsyncDatasets` — so only its API calls (create or
resume, complete) are plans; the parts go straight to their signed URLs.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import json
import os
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import httpx

from .._base import LONG_POLL_MARGIN, MAX_RETRY_DELAY, FilePart, RequestOptions, Timeout, parse_retry_after
from .._endpoint import Emit, Listing, Open, Plan, Read, Send, Sleep, endpoint, listing, streamed
from ..errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ConflictError,
    RateLimitError,
    ServerError,
    ValidationError,
    WaitTimeoutError,
    make_status_error,
)
from ..models import (
    CleaningTask,
    Dataset,
    EntityEntry,
    InferredSchema,
    IngestedBatch,
    Ingestion,
    IngestionResult,
    Preview,
    QueryResult,
    Reject,
    RowFailure,
    RowsIngested,
    Schema,
    Upload,
    UploadPart,
)
from ._resource import AsyncResource, SyncResource, compact, seg
from .runs import _Deadline

if TYPE_CHECKING:
    import pyarrow

__all__ = ["Datasets", "AsyncDatasets", "Progress", "upload_state_dir"]

#: ``progress(bytes_done, total)``, called as an upload's bytes go out (from worker
#: threads on the sync client, one call at a time).
Progress = Callable[[int, int], None]
#: Column types a dataset holds.
ColumnType = Literal["int", "float", "bool", "date", "timestamp", "string", "json", "geo"]
#: ``columns`` of ``create``: ``[{"name": …, "type": …}]`` or ``{name: type}``.
Columns = Sequence[Mapping[str, str]] | Mapping[str, str]
StreamFormat = Literal["csv", "ndjson", "parquet", "arrow"]

#: Bytes read from disk (and reported to ``progress``) at a time while sending a part.
PART_CHUNK = 1024 * 1024
#: Attempts per part before an upload gives up (a re-run resumes from the parts that landed).
PART_ATTEMPTS = 4


def _dataset_path(namespace: str, dataset: str) -> str:
    return f"/namespaces/{seg(namespace)}/datasets/{seg(dataset)}"


def _ingestion_id(ingestion: str | Ingestion) -> str:
    return ingestion.id if isinstance(ingestion, Ingestion) else str(ingestion)


def _columns(columns: Columns | None) -> list[dict[str, str]] | None:
    if columns is None:
        return None
    if isinstance(columns, Mapping):
        return [{"name": str(name), "type": str(kind)} for name, kind in columns.items()]
    return [{"name": str(c["name"]), "type": str(c["type"])} for c in columns]


def _items(body: Any) -> list[Any]:
    return list(body.get("items", [])) if isinstance(body, dict) else list(body)


# ---- rows: batching, JSON-safe values, retries -------------------------------------------------

_PLAIN = frozenset({str, int, float, bool, type(None), list, dict})


def _plain(value: Any) -> Any:
    """A value JSON can carry: times as ISO 8601 text, decimals as floats, the rest as text."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, datetime | date | dtime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, int | float | str):  # bool/int/str subclasses (enums…)
        return value.value if hasattr(value, "value") else value
    if hasattr(value, "item") and callable(value.item):  # NumPy scalars
        with contextlib.suppress(TypeError, ValueError):
            return _plain(value.item())
    return str(value)


def _with_pipeline(options: Mapping[str, Any] | None, pipeline: Sequence[Mapping[str, Any]] | None
                   ) -> dict[str, Any] | None:
    """``options`` with ``pipeline`` (steps applied to every batch before it is stored) added."""
    merged = dict(options or {})
    if pipeline is not None:
        merged["pipeline"] = [dict(step) for step in pipeline]
    return merged or None


def _row(row: Any) -> Any:
    """A row ready for ``json=``: most rows are already plain dicts and pass untouched."""
    if isinstance(row, Mapping):
        if type(row) is dict and all(type(v) in _PLAIN for v in row.values()):
            return row
        return {str(k): _plain(v) for k, v in row.items()}
    return _plain(row)


def _batches(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a pandas DataFrame: its records
        rows = rows.to_dict("records")
    batch: list[Any] = []
    for row in rows:
        batch.append(_row(row))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _with_last(items: Iterator[list[Any]]) -> Iterator[tuple[list[Any], bool]]:
    """Each item with whether it is the last (one item read ahead)."""
    previous: list[Any] | None = None
    for item in items:
        if previous is not None:
            yield previous, False
        previous = item
    if previous is not None:
        yield previous, True


def _backoff(attempt: int, exc: Exception | None = None) -> float:
    """Seconds before attempt ``attempt + 1`` (``attempt`` ≥ 1): the server's Retry-After
    on a 429, else exponential with jitter."""
    if isinstance(exc, APIStatusError):
        after = parse_retry_after(exc.response.headers)
        if after is not None:
            return min(after, 60.0)
    base = min(0.5 * (2.0 ** (attempt - 1)), MAX_RETRY_DELAY)
    return base * (1 - 0.25 * random.random())


#: Failures worth sending the same batch again for (with the same Idempotency-Key).
_TRANSIENT = (APIConnectionError, ServerError, RateLimitError)
#: Conflicts that pass: the batch's first attempt still running or just failed, writers racing.
_TRANSIENT_CONFLICTS = frozenset({"ingestion_in_progress", "idempotency_retry", "dataset_busy"})


def _transient(exc: Exception) -> bool:
    if isinstance(exc, _TRANSIENT):
        return True
    if isinstance(exc, ConflictError):
        details = exc.details if isinstance(exc.details, dict) else {}
        return exc.code in _TRANSIENT_CONFLICTS or details.get("retryable") is True
    return False


def _failures_from(exc: ValidationError, start: int, batch: list[Any]) -> list[RowFailure] | None:
    """Row failures a refused batch's error carries (``on_error=abort``), if any."""
    details = exc.details if isinstance(exc.details, dict) else {}
    failed = details.get("failed")
    if not isinstance(failed, list) or not failed:
        return None
    out = []
    for item in failed:
        if isinstance(item, dict) and isinstance(item.get("index"), int):
            index = item["index"]
            row = item.get("row", batch[index] if 0 <= index < len(batch) else None)
            out.append(RowFailure(index=start + index, row=row, errors=item.get("errors") or {}))
    return out or None


# ---- uploads: the resume state file and progress -------------------------------------------------


def upload_state_dir() -> Path:
    """Where ``upload`` keeps its resume state: ``$XDG_CACHE_HOME/runyard/uploads``
    (``~/.cache/runyard/uploads`` by default)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "runyard" / "uploads"


class _UploadState:
    """One file's upload in progress, on disk: upload id, key and the ETag of each part
    sent, so a re-run after a crash sends only the missing parts. Keyed by the server,
    the file's absolute path, size and mtime (an edited file starts over). Mode 0600:
    it holds the upload's key."""

    def __init__(self, server: str, path: Path, size: int, mtime_ns: int) -> None:
        ident = f"{server}\n{path}\n{size}\n{mtime_ns}"
        self.file = upload_state_dir() / (hashlib.sha256(ident.encode()).hexdigest()[:32] + ".json")
        self.data: dict[str, Any] = {}
        self._lock = threading.Lock()

    def load(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.file.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("upload_id") and data.get("key") else None

    def start(self, data: dict[str, Any]) -> None:
        self.data = data
        self._write()

    def record(self, part_number: int, etag: str) -> None:
        with self._lock:
            self.data.setdefault("etags", {})[str(part_number)] = etag
            self._write()

    def remove(self) -> None:
        self.file.unlink(missing_ok=True)

    def _write(self) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.file.with_name(f".{self.file.name}.{uuid.uuid4().hex[:8]}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(self.data, fh)
        tmp.replace(self.file)


class _Tracker:
    """Bytes sent, for the progress callback: never goes backwards, even when a part is
    sent again after a failed attempt (each part counts its furthest byte)."""

    def __init__(self, total: int, done: int, callback: Progress | None) -> None:
        self.total, self.done, self.callback = total, done, callback
        self.parts: dict[int, int] = {}
        self._lock = threading.Lock()

    def report(self) -> None:
        if self.callback is not None:
            with self._lock:
                self.callback(self.done + sum(self.parts.values()), self.total)

    def advance(self, part_number: int, sent: int) -> None:
        with self._lock:
            if sent <= self.parts.get(part_number, 0):
                return
            self.parts[part_number] = sent
            if self.callback is not None:
                self.callback(self.done + sum(self.parts.values()), self.total)


@dataclass
class _UploadJob:
    """An upload under way: which parts still go, and the ETags of those that went."""

    path: Path
    size: int
    upload: Upload
    key: str
    state: _UploadState
    pending: list[UploadPart]
    etags: dict[int, str] = field(default_factory=dict)

    @property
    def part_size(self) -> int:
        return int(self.upload.part_size or self.size)

    def done_bytes(self) -> int:
        count = int(self.upload.part_count or 0)
        last = self.size - (count - 1) * self.part_size
        return sum(last if n == count else self.part_size for n in self.etags)


def _absolute(url: str, server: str) -> str:
    return url if url.startswith(("http://", "https://")) else server.rstrip("/") + "/" + url.lstrip("/")


def _etag_of(response: httpx.Response) -> str:
    with contextlib.suppress(ValueError):
        body = response.json()
        if isinstance(body, dict) and body.get("etag"):
            return str(body["etag"])
    tag = response.headers.get("etag", "")
    if not tag:
        raise APIStatusError("part accepted without an ETag", response=response, body=response.text,
                             code="missing_etag", request_id=response.headers.get("x-request-id"))
    return tag.removeprefix("W/").strip('"')


def _put_failed(response: httpx.Response, attempt: int) -> bool:
    """Whether a failed part PUT is worth another attempt."""
    return attempt < PART_ATTEMPTS and (response.status_code in (408, 429) or response.status_code >= 500)


class _Stopped(Exception):
    """Another part failed: this one stops sending."""


# ---- endpoints ---------------------------------------------------------------------------------


class DatasetsAPI:
    """``client.datasets``, written once for :class:`Datasets` and :class:`AsyncDatasets`."""

    # -- catalog --------------------------------------------------------------------------

    @endpoint
    def create(
        self,
        namespace: str,
        name: str,
        *,
        description: str | None = None,
        field_definitions: Mapping[str, str] | None = None,
        columns: Columns | None = None,
        timeout: Timeout = None,
    ) -> Plan[Dataset]:
        """A new, empty dataset in ``namespace``; ``columns`` (``{name: type}`` or
        ``[{"name", "type"}]``) fixes a schema up front (else the first rows make it);
        ``field_definitions`` describe fields in words."""
        body = compact(name=name, description=description, columns=_columns(columns),
                       field_definitions=dict(field_definitions) if field_definitions is not None else None)
        opts = RequestOptions("POST", f"/namespaces/{seg(namespace)}/datasets", json=body, timeout=timeout)
        return Dataset.model_validate((yield Send(opts)).json())

    @listing
    def list(self, *, namespace: str | None = None, limit: int | None = None,
             timeout: Timeout = None) -> Listing[Dataset]:
        """Every dataset the key can see (of one namespace if given)."""
        return Listing(Dataset, lambda cursor: RequestOptions(
            "GET", "/datasets", params={"namespace": namespace, "limit": limit, "cursor": cursor}, timeout=timeout))

    @endpoint
    def get(self, namespace: str, dataset: str, *, timeout: Timeout = None) -> Plan[Dataset]:
        """A dataset's catalog: rows, bytes, columns with their statistics (nulls,
        approximate distinct count, min/max, samples), sort order, last ingestion."""
        opts = RequestOptions("GET", _dataset_path(namespace, dataset), timeout=timeout)
        return Dataset.model_validate((yield Send(opts)).json())

    @endpoint
    def update(
        self,
        namespace: str,
        dataset: str,
        *,
        name: str | None = None,
        description: str | None = None,
        field_definitions: Mapping[str, str] | None = None,
        sort_order: Sequence[str] | None = None,
        timeout: Timeout = None,
    ) -> Plan[Dataset]:
        """Change what is given: ``name`` renames, ``sort_order`` is every column in
        display order (``ValidationError`` if it is not a permutation of them)."""
        body = compact(name=name, description=description,
                       field_definitions=dict(field_definitions) if field_definitions is not None else None,
                       sort_order=builtins.list(sort_order) if sort_order is not None else None)
        opts = RequestOptions("PATCH", _dataset_path(namespace, dataset), json=body, timeout=timeout)
        return Dataset.model_validate((yield Send(opts)).json())

    @endpoint
    def delete(self, namespace: str, dataset: str, *, timeout: Timeout = None) -> Plan[None]:
        """Delete the dataset: its rows and its catalog entry."""
        yield Send(RequestOptions("DELETE", _dataset_path(namespace, dataset), timeout=timeout))

    @endpoint
    def clear(self, namespace: str, dataset: str, *, timeout: Timeout = None) -> Plan[Dataset | None]:
        """Remove every row; the dataset (name, columns, descriptions) stays."""
        response = yield Send(RequestOptions("POST", f"{_dataset_path(namespace, dataset)}/clear", timeout=timeout))
        return Dataset.model_validate(response.json()) if response.content else None

    @endpoint
    def schema(self, namespace: str | None = None, *, timeout: Timeout = None) -> Plan[Schema]:
        """Every visible dataset with its columns (of one namespace if given)."""
        path = "/schema" if namespace is None else f"/schema/{seg(namespace)}"
        return Schema.model_validate((yield Send(RequestOptions("GET", path, timeout=timeout))).json())

    # -- ingestion ------------------------------------------------------------------------

    @endpoint
    def ingest(
        self,
        namespace: str,
        dataset: str,
        rows: Iterable[Any],
        *,
        batch_size: int = 10_000,
        max_attempts: int = 3,
        create: bool = False,
        on_error: Literal["skip", "abort"] = "skip",
        idempotency_key: str | None = None,
        pipeline: Sequence[Mapping[str, Any]] | None = None,
        curate: bool = False,
        entity_resolution: Mapping[str, Any] | None = None,
        timeout: Timeout = None,
    ) -> Plan[IngestionResult]:
        """Load rows (mappings; any iterable, read lazily; or a pandas DataFrame) in
        batches of ``batch_size``.

        Each batch carries its own ``Idempotency-Key``, so a batch sent again after a
        lost answer lands once. A batch that fails for a transient reason (connection,
        5xx, 429) is sent again with exponential backoff, ``max_attempts`` times in all;
        one that still fails, or that the server refuses as a whole (``on_error="abort"``
        and a bad row), adds its rows to ``failed``. Rows the server rejects one by one
        (``on_error="skip"``) are in ``failed`` too, with the reason per field. Every
        ``RowFailure.index`` counts from the start of ``rows``. Anything else (an unknown
        dataset without ``create=True``, no access) raises at once. ``pipeline``: steps the
        server applies to every batch before storing it (docs/data.md, Pipelines); a row a
        step fails on is in ``failed`` with the step's error. ``curate``: the last batch asks
        the server to curate the namespace's ontology once its link suggestions are computed
        (activating the selected links; the outcome in that ingestion's ``attributes.curation``,
        see :meth:`ingestion`). ``entity_resolution`` (``{"match_type": "ExactMatch"|"GeoMatch",
        "columns": [...], "options": {...}, "policy": "keep_first"|"overwrite"|"merge"}``,
        docs/links.md): rows matching a stored entity (or an earlier row) get its ``_entity_id``;
        each batch's report is its ``entity_resolution``, with indexes counted from ``rows``' start.
        """
        if batch_size < 1 or max_attempts < 1:
            raise ValueError("batch_size and max_attempts must be at least 1")
        base = idempotency_key or f"runyard-py-ingest-{uuid.uuid4().hex}"
        path = f"{_dataset_path(namespace, dataset)}/rows"
        params = {"create": create, "on_error": on_error}
        result = IngestionResult()
        start = 0
        for number, (batch, last) in enumerate(_with_last(_batches(rows, batch_size))):
            payload: Any = batch if pipeline is None and entity_resolution is None else {
                "rows": batch, **({"pipeline": [dict(step) for step in pipeline]} if pipeline is not None else {}),
                **({"entity_resolution": dict(entity_resolution)} if entity_resolution is not None else {})}
            opts = RequestOptions("POST", path, params={**params, "curate": True} if curate and last else params,
                                  json=payload, idempotency_key=f"{base}-{number}", max_retries=0, timeout=timeout)
            outcome = IngestedBatch(start=start, size=len(batch), attempts=0)
            while True:
                outcome.attempts += 1
                try:
                    answer = RowsIngested.model_validate((yield Send(opts)).json())
                except (*_TRANSIENT, ConflictError) as exc:
                    if not _transient(exc):
                        raise
                    if outcome.attempts < max_attempts:
                        yield Sleep(_backoff(outcome.attempts, exc))
                        continue
                    outcome.error = str(exc)
                    result.failed.extend(RowFailure(index=start + i, row=row, errors={"_batch": str(exc)})
                                         for i, row in enumerate(batch))
                except ValidationError as exc:
                    outcome.error = str(exc)
                    rows_failed = _failures_from(exc, start, batch) or [
                        RowFailure(index=start + i, row=row, errors={"_batch": str(exc)})
                        for i, row in enumerate(batch)]
                    result.failed.extend(rows_failed)
                else:
                    outcome.ingested, outcome.ingestion_id, outcome.snapshot = (
                        answer.ingested, answer.ingestion_id, answer.snapshot)
                    if answer.entity_resolution is not None:
                        report = answer.entity_resolution
                        for entry in report.entities:
                            entry.index += start
                        outcome.entity_resolution = report
                    result.successful += answer.ingested
                    for failure in answer.failed:
                        row = failure.row if failure.row is not None or not 0 <= failure.index < len(batch) \
                            else batch[failure.index]
                        result.failed.append(RowFailure(index=start + failure.index, row=row, errors=failure.errors))
                break
            result.batches.append(outcome)
            start += len(batch)
        return result

    @endpoint
    def ingest_file(
        self,
        path: str | Path,
        namespace: str,
        dataset: str,
        *,
        options: Mapping[str, Any] | None = None,
        create: bool = True,
        wait: bool | float = False,
        pipeline: Sequence[Mapping[str, Any]] | None = None,
        entity_resolution: Mapping[str, Any] | None = None,
        timeout: Timeout = None,
    ) -> Plan[Ingestion]:
        """Send a small file (CSV/TSV, JSON, NDJSON, Parquet, XLSX; gzip or zstd) in one
        request; it is ingested in the background. ``options`` override what is sniffed
        (``format``, ``delimiter``, ``quote``, ``header``, ``encoding``, ``sheet``,
        ``skip_rows``, ``on_error``); ``pipeline``: steps applied to every batch before it is
        stored; ``entity_resolution``: as for :meth:`ingest` (the report in the ingestion's
        ``attributes["entity_resolution"]``). ``wait`` (True, or seconds) waits for the end.
        Large files: :meth:`upload` (``options={"entity_resolution": ...}``)."""
        options = _with_pipeline(options, pipeline)
        if entity_resolution is not None:
            options = {**(options or {}), "entity_resolution": dict(entity_resolution)}
        file = Path(path).expanduser()
        if not file.is_file():
            raise FileNotFoundError(f"no such file: {file}")
        opts = RequestOptions(
            "POST", f"{_dataset_path(namespace, dataset)}/files", params={"create": create},
            files=[FilePart("file", file.name, file)],
            data={"options": json.dumps(dict(options))} if options else None, timeout=timeout,
        )
        ingestion = Ingestion.model_validate((yield Send(opts)).json())
        if wait is not False:
            ingestion = yield from _wait_ingestion(ingestion.id, None if wait is True else float(wait), 0.5)
        return ingestion

    @endpoint
    def cleaning(self, namespace: str, dataset: str, prompts: Sequence[str], *, output_namespace: str,
                 output_dataset: str, provider: str | None = None, model: str | None = None,
                 wait: bool | float = False, timeout: Timeout = None) -> Plan[CleaningTask]:
        """Ask the model to clean ``namespace/dataset``: ``prompts`` (1-10 steps, in order) become
        one SQL transform, run in the sandbox, whose rows become the new dataset
        ``output_namespace/output_dataset`` (which must not exist). Returns the task as queued,
        or with ``wait`` (True, or seconds) once it has finished; it may have ``failed``."""
        body = compact(prompts=list(prompts), output_namespace=output_namespace, output_dataset=output_dataset,
                       provider=provider, model=model)
        opts = RequestOptions("POST", f"{_dataset_path(namespace, dataset)}/cleaning", json=body, timeout=timeout)
        task = CleaningTask.model_validate((yield Send(opts)).json())
        if wait is not False:
            task = yield from _wait_cleaning(namespace, dataset, task.id, None if wait is True else float(wait))
        return task

    @endpoint
    def get_cleaning(self, namespace: str, dataset: str, task: str | CleaningTask, *,
                     wait: bool | float = False, timeout: Timeout = None) -> Plan[CleaningTask]:
        """A cleaning task of ``namespace/dataset``: its status, SQL and error; with ``wait``
        (True, or seconds), once it has finished (:class:`~runyard.WaitTimeoutError` after that)."""
        task_id = task.id if isinstance(task, CleaningTask) else task
        if wait is not False:
            return (yield from _wait_cleaning(namespace, dataset, task_id, None if wait is True else float(wait)))
        opts = RequestOptions("GET", f"{_dataset_path(namespace, dataset)}/cleaning/{seg(task_id)}", timeout=timeout)
        return CleaningTask.model_validate((yield Send(opts)).json())

    @endpoint
    def ingestions(self, namespace: str, dataset: str, *, limit: int | None = None,
                   timeout: Timeout = None) -> Plan[builtins.list[Ingestion]]:
        """The dataset's latest ingestions, newest first (``limit`` 1–100)."""
        opts = RequestOptions("GET", f"{_dataset_path(namespace, dataset)}/ingestions", params={"limit": limit},
                              timeout=timeout)
        return [Ingestion.model_validate(item) for item in _items((yield Send(opts)).json())]

    @endpoint
    def ingestion(self, ingestion: str | Ingestion, *, timeout: Timeout = None) -> Plan[Ingestion]:
        """One ingestion as it stands."""
        opts = RequestOptions("GET", f"/ingestions/{seg(_ingestion_id(ingestion))}", timeout=timeout)
        return Ingestion.model_validate((yield Send(opts)).json())

    @endpoint
    def wait(self, ingestion: str | Ingestion, *, timeout: float | None = None,
             poll_interval: float = 0.5) -> Plan[Ingestion]:
        """Block until the ingestion ends (succeeded, failed or cancelled) and return it,
        by server long-polls; :class:`~runyard.WaitTimeoutError` after ``timeout`` seconds."""
        return (yield from _wait_ingestion(_ingestion_id(ingestion), timeout, poll_interval))

    @endpoint
    def retry(self, ingestion: str | Ingestion, *, timeout: Timeout = None) -> Plan[Ingestion]:
        """Run a failed or cancelled ingestion again."""
        return (yield from _ingestion_action(ingestion, "retry", timeout))

    @endpoint
    def seen(self, ingestion: str | Ingestion, *, timeout: Timeout = None) -> Plan[Ingestion]:
        """Mark the ingestion as seen (acknowledged)."""
        return (yield from _ingestion_action(ingestion, "seen", timeout))

    @endpoint
    def cancel(self, ingestion: str | Ingestion, *, timeout: Timeout = None) -> Plan[Ingestion]:
        """Cancel a pending or running ingestion (the dataset keeps its previous snapshot)."""
        return (yield from _ingestion_action(ingestion, "cancel", timeout))

    @listing
    def rejects(self, ingestion: str | Ingestion, *, limit: int | None = None,
                timeout: Timeout = None) -> Listing[Reject]:
        """The input lines the ingestion could not read (line number, reason, text);
        iterate the page for all of them."""
        path = f"/ingestions/{seg(_ingestion_id(ingestion))}/rejects"
        return Listing(Reject, lambda cursor: RequestOptions(
            "GET", path, params={"limit": limit, "cursor": cursor}, timeout=timeout))

    @listing
    def entities(self, ingestion: str | Ingestion, *, limit: int | None = None,
                 timeout: Timeout = None) -> Listing[EntityEntry]:
        """An ingestion's entity resolution report, one entry per row it accepted (index,
        entity_id, action), in row order; iterate the page for all of them."""
        path = f"/ingestions/{seg(_ingestion_id(ingestion))}/entities"
        return Listing(EntityEntry, lambda cursor: RequestOptions(
            "GET", path, params={"limit": limit, "cursor": cursor}, timeout=timeout))

    # -- uploads (the API calls; the parts are sent by Datasets/AsyncDatasets.upload) ------

    @endpoint
    def create_upload(self, filename: str, size: int, *, part_size: int | None = None,
                      timeout: Timeout = None) -> Plan[Upload]:
        """A multipart upload (low level: :meth:`upload` does it all): its ``key``, and a
        signed URL per part to PUT the bytes to."""
        body = compact(filename=filename, size=size, part_size=part_size)
        return Upload.model_validate((yield Send(RequestOptions("POST", "/uploads", json=body, timeout=timeout))).json())

    @endpoint
    def get_upload(self, upload_id: str, *, timeout: Timeout = None) -> Plan[Upload]:
        """An upload's status and the parts received so far."""
        return Upload.model_validate((yield Send(RequestOptions(
            "GET", f"/uploads/{seg(upload_id)}", timeout=timeout))).json())

    @endpoint
    def abort_upload(self, upload_id: str, *, timeout: Timeout = None) -> Plan[None]:
        """Abandon an upload; its parts are removed."""
        yield Send(RequestOptions("DELETE", f"/uploads/{seg(upload_id)}", timeout=timeout))

    def _begin_upload(self, file: Path, part_size: int | None, resume: bool) -> Plan[_UploadJob]:
        """Resume the file's recorded upload if the server still has it open, else start one."""
        stat = file.stat()
        if stat.st_size < 1:
            raise ValueError(f"{file} is empty: nothing to upload")
        state = _UploadState(self._client.server_url, file.resolve(), stat.st_size, stat.st_mtime_ns)  # type: ignore[attr-defined]
        saved = state.load() if resume else None
        if saved is not None:
            try:
                opts = RequestOptions("POST", f"/uploads/{seg(saved['upload_id'])}/urls", json={"key": saved["key"]})
                upload = Upload.model_validate((yield Send(opts)).json())
            except APIStatusError as exc:
                if exc.status in (401, 429) or exc.status >= 500:
                    raise
                upload = None  # expired, aborted, completed or unknown: start over
            if upload is not None and upload.status in (None, "open"):
                state.data = saved
                job = _UploadJob(file, stat.st_size, upload, saved["key"], state, builtins.list(upload.parts))
                job.etags = {p.part_number: p.etag for p in upload.uploaded}
                return job
            state.remove()
        body = compact(filename=file.name, size=stat.st_size, part_size=part_size)
        upload = Upload.model_validate((yield Send(RequestOptions("POST", "/uploads", json=body))).json())
        if not upload.key:
            raise APIConnectionError("the server created an upload without a key")
        state.start({"upload_id": upload.id, "key": upload.key, "path": str(file.resolve()), "size": stat.st_size,
                     "part_size": upload.part_size, "etags": {}})
        return _UploadJob(file, stat.st_size, upload, upload.key, state, builtins.list(upload.parts))

    def _refresh_urls(self, job: _UploadJob) -> Plan[_UploadJob]:
        """Fresh signed URLs for the parts not received yet (the old ones expired)."""
        opts = RequestOptions("POST", f"/uploads/{seg(job.upload.id)}/urls", json={"key": job.key})
        upload = Upload.model_validate((yield Send(opts)).json())
        job.upload, job.pending = upload, builtins.list(upload.parts)
        job.etags.update({p.part_number: p.etag for p in upload.uploaded})
        return job

    def _finish_upload(
        self, job: _UploadJob, namespace: str, dataset: str, name: str | None, create: bool,
        options: Mapping[str, Any] | None, wait: bool | float,
    ) -> Plan[Ingestion]:
        """Complete the upload (every part with its ETag) and start its ingestion."""
        count = int(job.upload.part_count or len(job.etags))
        missing = [n for n in range(1, count + 1) if n not in job.etags]
        if missing:
            raise RuntimeError(f"upload {job.upload.id}: parts {missing} were not sent")
        body = compact(key=job.key, parts=[{"part_number": n, "etag": job.etags[n]} for n in sorted(job.etags)],
                       namespace=namespace, dataset=dataset, name=name, create=create,
                       options=dict(options) if options else None)
        opts = RequestOptions("POST", f"/uploads/{seg(job.upload.id)}/complete", json=body)
        ingestion = Ingestion.model_validate((yield Send(opts)).json())
        job.state.remove()
        if wait is not False:
            ingestion = yield from _wait_ingestion(ingestion.id, None if wait is True else float(wait), 0.5)
        return ingestion

    # -- preview and inference -----------------------------------------------------------

    @endpoint
    def preview(
        self,
        *,
        rows: Sequence[Any] | None = None,
        upload_id: str | None = None,
        key: str | None = None,
        options: Mapping[str, Any] | None = None,
        limit: int | None = None,
        pipeline: Sequence[Mapping[str, Any]] | None = None,
        entity_resolution: Mapping[str, Any] | None = None,
        timeout: Timeout = None,
    ) -> Plan[Preview]:
        """How ``rows`` (or an upload's file: ``upload_id`` and its ``key``) would be
        read — columns, the first ``limit`` rows, rejected lines — without saving anything;
        with ``pipeline``, as its steps leave them (rows a step fails on are rejects); with
        ``entity_resolution``, the previewed rows resolved among themselves (``created``,
        ``matched``)."""
        options = _with_pipeline(options, pipeline)
        if entity_resolution is not None:
            options = {**(options or {}), "entity_resolution": dict(entity_resolution)}
        body = compact(rows=[_row(r) for r in rows] if rows is not None else None, upload_id=upload_id, key=key,
                       options=options, limit=limit)
        opts = RequestOptions("POST", "/ingest/preview", json=body, idempotency_key="", timeout=timeout)
        return Preview.model_validate((yield Send(opts)).json())

    @endpoint
    def infer_schema(
        self,
        *,
        rows: Sequence[Any] | None = None,
        upload_id: str | None = None,
        key: str | None = None,
        options: Mapping[str, Any] | None = None,
        sample: int | None = None,
        timeout: Timeout = None,
    ) -> Plan[InferredSchema]:
        """Each column's type, nullability and detected kinds (email, url, uuid…), with
        confidence, from ``rows`` or an upload's first ``sample`` rows."""
        body = compact(rows=[_row(r) for r in rows] if rows is not None else None, upload_id=upload_id, key=key,
                       options=dict(options) if options else None, sample=sample)
        opts = RequestOptions("POST", "/infer-schema", json=body, idempotency_key="", timeout=timeout)
        return InferredSchema.model_validate((yield Send(opts)).json())

    # -- query ----------------------------------------------------------------------------

    @endpoint
    def query(
        self,
        sql: str,
        *,
        namespace: str | None = None,
        dataset: str | None = None,
        include_metadata: bool = False,
        explain: bool = False,
        limit: int | None = None,
        cursor: str | None = None,
        timeout_s: float | None = None,
        natural_language: bool = False,
        provider: str | None = None,
        model: str | None = None,
        timeout: Timeout = None,
    ) -> Plan[QueryResult]:
        """Run read-only SQL (DuckDB dialect; datasets as ``"namespace"."dataset"``, or
        bare within ``namespace``), or ``"*"`` for every row of ``dataset``. One page of
        rows (JSON results are capped): ``next_cursor`` (pass it back as ``cursor``) gets
        the next; :meth:`iter_rows` and :meth:`query_all` follow it for you. A query over
        its time limit (``timeout_s``) raises ``ValidationError`` with code
        ``query_timeout``, never retried.

        With ``natural_language=True``, ``sql`` is a question: a language model (``provider``,
        ``model``: default the workspace's) writes the SQL from the schemas this key can read;
        the result's ``sql`` holds it (query it with the ``cursor`` to page on). No provider:
        ``ConflictError`` with code ``llm_not_configured``."""
        opts = _query_request(sql, namespace, dataset, include_metadata, explain, "json", limit, cursor, timeout_s,
                              timeout, natural_language=natural_language, provider=provider, model=model)
        return QueryResult.model_validate((yield Send(opts)).json())

    @endpoint
    def query_all(
        self,
        sql: str,
        *,
        namespace: str | None = None,
        dataset: str | None = None,
        include_metadata: bool = False,
        timeout_s: float | None = None,
        timeout: Timeout = None,
    ) -> Plan[QueryResult]:
        """:meth:`query`, following cursors until the last page: every row in one result."""
        opts = _query_request(sql, namespace, dataset, include_metadata, False, "json", None, None, timeout_s, timeout)
        result = QueryResult.model_validate((yield Send(opts)).json())
        rows = builtins.list(result.rows)
        last = result
        while last.next_cursor:
            opts.json = {**opts.json, "cursor": last.next_cursor}
            last = QueryResult.model_validate((yield Send(opts)).json())
            rows.extend(last.rows)
        return result.model_copy(update={"rows": rows, "row_count": len(rows), "next_cursor": None,
                                         "truncated": False})

    @streamed
    def iter_rows(
        self,
        sql: str,
        *,
        namespace: str | None = None,
        dataset: str | None = None,
        include_metadata: bool = False,
        page_size: int | None = None,
        timeout_s: float | None = None,
        timeout: Timeout = None,
    ) -> Plan[None]:
        """Every row of the result, page after page (``page_size`` rows a request), as dicts."""
        opts = _query_request(sql, namespace, dataset, include_metadata, False, "json", page_size, None, timeout_s,
                              timeout)
        while True:
            page = QueryResult.model_validate((yield Send(opts)).json())
            for row in page.rows:
                yield Emit(row)
            if not page.next_cursor:
                return
            opts.json = {**opts.json, "cursor": page.next_cursor}

    @endpoint
    def query_arrow(
        self,
        sql: str,
        *,
        namespace: str | None = None,
        dataset: str | None = None,
        include_metadata: bool = False,
        limit: int | None = None,
        timeout_s: float | None = None,
        timeout: Timeout = None,
    ) -> Plan[pyarrow.Table]:
        """The whole result as a ``pyarrow.Table`` (streamed as Arrow IPC, no row cap).
        Needs ``pyarrow`` (``pip install pyarrow``), which the SDK does not install."""
        try:
            import pyarrow as pa
            import pyarrow.ipc as ipc
        except ImportError as exc:
            raise ImportError("query_arrow needs pyarrow, which the runyard SDK does not install: "
                              "pip install pyarrow (or use query / query_to)", name="pyarrow") from exc
        opts = _query_request(sql, namespace, dataset, include_metadata, False, "arrow", limit, None, timeout_s,
                              timeout)
        stream = yield Open(opts)
        buffer = bytearray()
        while (chunk := (yield Read(stream))) is not None:
            buffer.extend(chunk)
        return ipc.open_stream(pa.py_buffer(bytes(buffer))).read_all()

    @endpoint
    def query_to(
        self,
        sql: str,
        dest: str | Path | IO[bytes],
        *,
        format: StreamFormat = "csv",
        namespace: str | None = None,
        dataset: str | None = None,
        include_metadata: bool = False,
        limit: int | None = None,
        timeout_s: float | None = None,
        timeout: Timeout = None,
    ) -> Plan[int]:
        """Stream the whole result (no row cap) to a file path or a binary file object,
        as ``csv``, ``ndjson``, ``parquet`` or ``arrow`` (IPC stream); the bytes written.
        A path is written to a temporary sibling first, so a failure leaves no partial file."""
        if format not in ("csv", "ndjson", "parquet", "arrow"):
            raise ValueError(f"format must be csv, ndjson, parquet or arrow, not {format!r}")
        opts = _query_request(sql, namespace, dataset, include_metadata, False, format, limit, None, timeout_s,
                              timeout)
        stream = yield Open(opts)
        written = 0
        if isinstance(dest, str | Path):
            target = Path(dest).expanduser()
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
            try:
                with tmp.open("wb") as fh:
                    while (chunk := (yield Read(stream))) is not None:
                        fh.write(chunk)
                        written += len(chunk)
                tmp.replace(target)
            finally:
                tmp.unlink(missing_ok=True)
            return written
        while (chunk := (yield Read(stream))) is not None:
            dest.write(chunk)
            written += len(chunk)
        return written


def _query_request(
    sql: str, namespace: str | None, dataset: str | None, include_metadata: bool, explain: bool, fmt: str,
    limit: int | None, cursor: str | None, timeout_s: float | None, timeout: Timeout, *,
    natural_language: bool = False, provider: str | None = None, model: str | None = None,
) -> RequestOptions:
    body = compact(query=sql, namespace=namespace, dataset=dataset, include_metadata=include_metadata or None,
                   explain=explain or None, format=fmt, limit=limit, cursor=cursor, timeout_s=timeout_s,
                   is_natural_language=natural_language or None, provider=provider, model=model)
    if timeout_s is not None and (timeout is None or (isinstance(timeout, int | float) and timeout < timeout_s)):
        timeout = timeout_s + LONG_POLL_MARGIN  # our socket outlasts the server's own limit
    # A query changes nothing: no Idempotency-Key.
    return RequestOptions("POST", "/query", json=body, idempotency_key="", timeout=timeout)


def _ingestion_action(ingestion: str | Ingestion, action: str, timeout: Timeout) -> Plan[Ingestion]:
    opts = RequestOptions("POST", f"/ingestions/{seg(_ingestion_id(ingestion))}/{action}", timeout=timeout)
    return Ingestion.model_validate((yield Send(opts)).json())


def _wait_ingestion(ingestion_id: str, timeout: float | None, poll_interval: float) -> Plan[Ingestion]:
    """Long-poll ``GET /ingestions/{id}/wait`` until the ingestion ends or ``timeout`` passes."""
    deadline = _Deadline(timeout)
    while True:
        started = time.monotonic()
        chunk = deadline.chunk()
        opts = RequestOptions("GET", f"/ingestions/{seg(ingestion_id)}/wait",
                              params={"timeout": int(chunk) if chunk.is_integer() else round(chunk, 3)},
                              timeout=chunk + LONG_POLL_MARGIN)
        ingestion = Ingestion.model_validate((yield Send(opts)).json())
        if ingestion.is_finished:
            return ingestion
        left = deadline.remaining()
        if left is not None and left <= 0:
            raise WaitTimeoutError(f"ingestion {ingestion_id} still {ingestion.status} after {timeout}s")
        pause = poll_interval - (time.monotonic() - started)
        if pause > 0:  # the server answered early: never spin
            yield Sleep(pause if left is None else min(pause, left))


def _wait_cleaning(namespace: str, dataset: str, task_id: str, timeout: float | None) -> Plan[CleaningTask]:
    """Long-poll ``GET …/cleaning/{id}?wait=`` until the task ends or ``timeout`` passes."""
    deadline = _Deadline(timeout)
    while True:
        chunk = deadline.chunk()
        opts = RequestOptions("GET", f"{_dataset_path(namespace, dataset)}/cleaning/{seg(task_id)}",
                              params={"wait": int(chunk) if chunk.is_integer() else round(chunk, 3)},
                              timeout=chunk + LONG_POLL_MARGIN)
        task = CleaningTask.model_validate((yield Send(opts)).json())
        if task.is_finished:
            return task
        left = deadline.remaining()
        if left is not None and left <= 0:
            raise WaitTimeoutError(f"cleaning task {task_id} still {task.status} after {timeout}s")
        yield Sleep(0.2 if left is None else min(0.2, left))


# ---- the two resources: the parallel part of ``upload`` -------------------------------------------


_UPLOAD_DOC = """Send a file of any size by multipart upload and ingest it into ``namespace/dataset``.

        The file goes in parts (``part_size`` bytes, default: the server's choice),
        ``parallel`` at a time, each straight to its signed URL; ``progress(bytes_done,
        total)`` follows them. A state file under ``~/.cache/runyard/uploads/`` (see
        :func:`upload_state_dir`) records the upload and each part that landed, so running
        the same call again after a crash or a failure sends only the missing parts
        (``resume=False`` starts over); parts whose signed URLs expired meanwhile get
        fresh ones. Once every part is in, the upload is completed and
        its ingestion starts in the background: the returned :class:`Ingestion`, or, with
        ``wait`` (True, or seconds), the ingestion as it ended. ``options`` override what
        the server sniffs (``format``, ``delimiter``, ``header``, …); ``pipeline``: steps
        applied to every batch before it is stored."""


class Datasets(DatasetsAPI, SyncResource):
    """``client.datasets``: datasets, ingestion, uploads and queries."""

    def upload(
        self,
        path: str | Path,
        namespace: str,
        dataset: str,
        *,
        part_size: int | None = None,
        parallel: int = 4,
        progress: Progress | None = None,
        resume: bool = True,
        options: Mapping[str, Any] | None = None,
        create: bool = True,
        name: str | None = None,
        wait: bool | float = False,
        pipeline: Sequence[Mapping[str, Any]] | None = None,
    ) -> Ingestion:
        file = Path(path).expanduser()
        job = self._run(self._begin_upload(file, part_size, resume))
        try:
            self._send_parts(job, max(1, parallel), progress)
        except APIStatusError as exc:
            if exc.code != "signature_expired":
                raise
            job = self._run(self._refresh_urls(job))  # a long upload outlived its URLs: once more
            self._send_parts(job, max(1, parallel), progress)
        return self._run(self._finish_upload(job, namespace, dataset, name, create,
                                                     _with_pipeline(options, pipeline), wait))

    upload.__doc__ = _UPLOAD_DOC

    def _send_parts(self, job: _UploadJob, parallel: int, progress: Progress | None) -> None:
        tracker = _Tracker(job.size, job.done_bytes(), progress)
        tracker.report()
        todo = [p for p in job.pending if p.part_number not in job.etags]
        if not todo:
            return
        stop = threading.Event()
        server = self._client.server_url
        with httpx.Client(verify=self._client.verify_ssl, timeout=self._client._timeout(RequestOptions("PUT", "")),
                          follow_redirects=True) as http, ThreadPoolExecutor(min(parallel, len(todo))) as pool:
            futures = [pool.submit(self._send_part, http, _absolute(p.url, server), job, p, tracker, stop)
                       for p in todo]
            wait_futures(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in futures if f.done() and f.exception() is not None), None)
            if failed is not None:
                stop.set()
                for future in futures:
                    future.cancel()
                raise failed.exception()  # type: ignore[misc]

    def _send_part(self, http: httpx.Client, url: str, job: _UploadJob, part: UploadPart, tracker: _Tracker,
                   stop: threading.Event) -> None:
        offset = (part.part_number - 1) * job.part_size

        def body() -> Iterator[bytes]:
            with job.path.open("rb") as fh:
                fh.seek(offset)
                sent = 0
                while sent < part.size:
                    if stop.is_set():
                        raise _Stopped()
                    chunk = fh.read(min(PART_CHUNK, part.size - sent))
                    if not chunk:
                        raise OSError(f"{job.path} shrank while uploading")
                    yield chunk
                    sent += len(chunk)
                    tracker.advance(part.part_number, sent)

        headers = {"Content-Length": str(part.size), "Content-Type": "application/octet-stream"}
        for attempt in range(1, PART_ATTEMPTS + 1):
            try:
                response = http.put(url, content=body(), headers=headers)
            except httpx.TransportError as exc:
                if attempt < PART_ATTEMPTS and not stop.is_set():
                    time.sleep(_backoff(attempt))
                    continue
                raise (APITimeoutError if isinstance(exc, httpx.TimeoutException) else APIConnectionError)(
                    f"part {part.part_number}: {exc!r}") from exc
            if response.is_success:
                etag = _etag_of(response)
                job.etags[part.part_number] = etag
                job.state.record(part.part_number, etag)
                return
            if _put_failed(response, attempt) and not stop.is_set():
                time.sleep(_backoff(attempt, make_status_error(response)))
                continue
            raise make_status_error(response)


class AsyncDatasets(DatasetsAPI, AsyncResource):
    """``client.datasets`` of :class:`~runyard.AsyncClient` (coroutines)."""

    async def upload(
        self,
        path: str | Path,
        namespace: str,
        dataset: str,
        *,
        part_size: int | None = None,
        parallel: int = 4,
        progress: Progress | None = None,
        resume: bool = True,
        options: Mapping[str, Any] | None = None,
        create: bool = True,
        name: str | None = None,
        wait: bool | float = False,
        pipeline: Sequence[Mapping[str, Any]] | None = None,
    ) -> Ingestion:
        file = Path(path).expanduser()
        job = await self._run(self._begin_upload(file, part_size, resume))
        try:
            await self._send_parts(job, max(1, parallel), progress)
        except APIStatusError as exc:
            if exc.code != "signature_expired":
                raise
            job = await self._run(self._refresh_urls(job))  # a long upload outlived its URLs: once more
            await self._send_parts(job, max(1, parallel), progress)
        return await self._run(self._finish_upload(job, namespace, dataset, name, create,
                                                     _with_pipeline(options, pipeline), wait))

    upload.__doc__ = _UPLOAD_DOC

    async def _send_parts(self, job: _UploadJob, parallel: int, progress: Progress | None) -> None:
        tracker = _Tracker(job.size, job.done_bytes(), progress)
        tracker.report()
        todo = [p for p in job.pending if p.part_number not in job.etags]
        if not todo:
            return
        gate = asyncio.Semaphore(parallel)
        server = self._client.server_url
        async with httpx.AsyncClient(verify=self._client.verify_ssl, follow_redirects=True,
                                     timeout=self._client._timeout(RequestOptions("PUT", ""))) as http:
            async def one(part: UploadPart) -> None:
                async with gate:
                    await self._send_part(http, _absolute(part.url, server), job, part, tracker)

            tasks = [asyncio.create_task(one(p)) for p in todo]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _send_part(self, http: httpx.AsyncClient, url: str, job: _UploadJob, part: UploadPart,
                         tracker: _Tracker) -> None:
        offset = (part.part_number - 1) * job.part_size

        async def body() -> AsyncIterator[bytes]:
            with job.path.open("rb") as fh:
                fh.seek(offset)
                sent = 0
                while sent < part.size:
                    chunk = await asyncio.to_thread(fh.read, min(PART_CHUNK, part.size - sent))
                    if not chunk:
                        raise OSError(f"{job.path} shrank while uploading")
                    yield chunk
                    sent += len(chunk)
                    tracker.advance(part.part_number, sent)

        headers = {"Content-Length": str(part.size), "Content-Type": "application/octet-stream"}
        for attempt in range(1, PART_ATTEMPTS + 1):
            try:
                response = await http.put(url, content=body(), headers=headers)
            except httpx.TransportError as exc:
                if attempt < PART_ATTEMPTS:
                    await asyncio.sleep(_backoff(attempt))
                    continue
                raise (APITimeoutError if isinstance(exc, httpx.TimeoutException) else APIConnectionError)(
                    f"part {part.part_number}: {exc!r}") from exc
            if response.is_success:
                etag = _etag_of(response)
                job.etags[part.part_number] = etag
                job.state.record(part.part_number, etag)
                return
            if _put_failed(response, attempt):
                await asyncio.sleep(_backoff(attempt, make_status_error(response)))
                continue
            raise make_status_error(response)
