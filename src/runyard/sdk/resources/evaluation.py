"""Evaluation: ``client.runs.expected``, ``client.runs.comparison``, ``client.runs.feedback``
and ``client.batches``.

An expected output belongs to the run's (tool or workflow, example id) pair — a run
without an ``example_id`` stands for itself — so setting it from one run makes every
later run of that example comparable with ``client.runs.comparison.get(run)``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._base import FilePart, RequestOptions, Timeout
from .._endpoint import Listing, Plan, Send, Sleep, endpoint, listing
from ..errors import WaitTimeoutError
from ..models import Comparison, EvalBatch, Expected, Feedback, Run
from ._resource import AsyncResource, SyncResource, compact, seg

__all__ = ["Expectations", "AsyncExpectations", "Comparisons", "AsyncComparisons", "RunFeedback",
           "AsyncRunFeedback", "Batches", "AsyncBatches"]

RunRef = str | Run
_UNSET: Any = object()


def _run_id(run: RunRef) -> str:
    return run.id if isinstance(run, Run) else str(run)


def _batch_id(batch: str | EvalBatch) -> str:
    return batch.id if isinstance(batch, EvalBatch) else str(batch)


def _file_parts(files: Mapping[str, str | Path | bytes]) -> list[FilePart]:
    """One part per expected file: a path (sent under its own name unless the key names
    it otherwise) or bytes (named by the key)."""
    parts = []
    for name, source in files.items():
        if isinstance(source, bytes):
            parts.append(FilePart("file", name, source))
            continue
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"expected file {name!r}: no such file: {path}")
        parts.append(FilePart("file", name, path))
    return parts


class ExpectationsAPI:
    """``client.runs.expected``, written once for :class:`Expectations` and :class:`AsyncExpectations`."""

    @endpoint
    def get(self, run: RunRef, *, timeout: Timeout = None) -> Plan[Expected]:
        """The expected output of the run's example (``NotFoundError``, code ``expected_not_found``)."""
        return Expected.model_validate((yield Send(RequestOptions(
            "GET", f"/runs/{seg(_run_id(run))}/expected", timeout=timeout))).json())

    @endpoint
    def copy_output(self, run: RunRef, *, artifacts: Sequence[str] | None = None,
                    options: Mapping[str, Any] | None = None, timeout: Timeout = None) -> Plan[Expected]:
        """Make the run's output (and the named ``artifacts``) the expected output of its
        example. ``options``: ``{numeric_tolerance, unordered_paths, key_columns}``."""
        body = compact(copy_output=True, artifacts=list(artifacts) if artifacts is not None else None,
                       options=dict(options) if options is not None else None)
        return Expected.model_validate((yield Send(RequestOptions(
            "POST", f"/runs/{seg(_run_id(run))}/expected", json=body, timeout=timeout))).json())

    @endpoint
    def set(self, run: RunRef, *, output: Any = _UNSET, files: Mapping[str, str | Path | bytes] | None = None,
            artifacts: Sequence[str] | None = None, options: Mapping[str, Any] | None = None,
            timeout: Timeout = None) -> Plan[Expected]:
        """Set the expected output outright (``output``), upload ``files`` ({file name: path
        or bytes}; a file of the same name is replaced), copy ``artifacts``, set ``options``."""
        body: dict[str, Any] = compact(artifacts=list(artifacts) if artifacts is not None else None,
                                       options=dict(options) if options is not None else None)
        if output is not _UNSET:
            body["output"] = output
        path = f"/runs/{seg(_run_id(run))}/expected"
        if files:
            opts = RequestOptions("POST", path, data={"payload": json.dumps(body)}, files=_file_parts(files),
                                  timeout=timeout)
        else:
            opts = RequestOptions("POST", path, json=body, timeout=timeout)
        return Expected.model_validate((yield Send(opts)).json())

    @endpoint
    def download(self, run: RunRef, filename: str, dest: str | Path | None = None, *,
                 timeout: Timeout = None) -> Plan[bytes | Path]:
        """An expected file's bytes, or, with ``dest`` (a file or a directory), written there."""
        content = (yield Send(RequestOptions(
            "GET", f"/runs/{seg(_run_id(run))}/expected/{seg(filename)}", timeout=timeout))).content
        if dest is None:
            return content
        target = Path(dest).expanduser()
        if target.is_dir():
            target = target / filename
        target.write_bytes(content)
        return target

    @endpoint
    def rename(self, run: RunRef, filename: str, new_name: str, *, timeout: Timeout = None) -> Plan[Expected]:
        """Rename an expected file (``ConflictError``, ``expected_file_exists``, when taken)."""
        return Expected.model_validate((yield Send(RequestOptions(
            "PATCH", f"/runs/{seg(_run_id(run))}/expected/{seg(filename)}", json={"filename": new_name},
            timeout=timeout))).json())

    @endpoint
    def delete(self, run: RunRef, filename: str, *, timeout: Timeout = None) -> Plan[None]:
        """Delete an expected file."""
        yield Send(RequestOptions("DELETE", f"/runs/{seg(_run_id(run))}/expected/{seg(filename)}", timeout=timeout))
        return None


class ComparisonsAPI:
    """``client.runs.comparison``, written once for :class:`Comparisons` and :class:`AsyncComparisons`."""

    @endpoint
    def get(self, run: RunRef, *, timeout: Timeout = None) -> Plan[Comparison]:
        """The run against its example's expected output (``NotFoundError``,
        ``expected_not_found``, when there is none)."""
        return Comparison.model_validate((yield Send(RequestOptions(
            "GET", f"/runs/{seg(_run_id(run))}/comparison", timeout=timeout))).json())

    @endpoint
    def compare(self, run: RunRef, *, other: RunRef | None = None, expected: Any = _UNSET,
                options: Mapping[str, Any] | None = None, timeout: Timeout = None) -> Plan[Comparison]:
        """The run against another run (``other``: its output and artifacts as the
        expectation) or against a value (``expected``)."""
        if (other is None) == (expected is _UNSET):
            raise ValueError("give either other or expected")
        body: dict[str, Any] = compact(options=dict(options) if options is not None else None)
        if other is not None:
            body["run_id"] = _run_id(other)
        else:
            body["expected"] = expected
        return Comparison.model_validate((yield Send(RequestOptions(
            "POST", f"/runs/{seg(_run_id(run))}/compare", json=body, timeout=timeout))).json())


class RunFeedbackAPI:
    """``client.runs.feedback``, written once for :class:`RunFeedback` and :class:`AsyncRunFeedback`."""

    @endpoint
    def get(self, run: RunRef, *, timeout: Timeout = None) -> Plan[Feedback]:
        """The run's feedback (``NotFoundError``, ``feedback_not_found``, when none was given)."""
        return Feedback.model_validate((yield Send(RequestOptions(
            "GET", f"/runs/{seg(_run_id(run))}/feedback", timeout=timeout))).json())

    @endpoint
    def update(self, run: RunRef, *, rating: str | None = None, score: float | None = None,
               comment: str | None = None, labels: Sequence[str] | None = None, corrected_output: Any = _UNSET,
               timeout: Timeout = None) -> Plan[Feedback]:
        """Set what is given (``rating`` "up"/"down", ``score`` 0..1, ``comment``, ``labels``,
        ``corrected_output``); the rest stays. A change reopens resolved feedback."""
        body = compact(rating=rating, score=score, comment=comment,
                       labels=list(labels) if labels is not None else None)
        if corrected_output is not _UNSET:
            body["corrected_output"] = corrected_output
        return Feedback.model_validate((yield Send(RequestOptions(
            "PATCH", f"/runs/{seg(_run_id(run))}/feedback", json=body, timeout=timeout))).json())

    @endpoint
    def clear(self, run: RunRef, *, timeout: Timeout = None) -> Plan[None]:
        """Remove the run's feedback."""
        yield Send(RequestOptions("DELETE", f"/runs/{seg(_run_id(run))}/feedback", timeout=timeout))
        return None

    @endpoint
    def resolve(self, run: RunRef, *, timeout: Timeout = None) -> Plan[Feedback]:
        """Mark the run's feedback resolved."""
        return Feedback.model_validate((yield Send(RequestOptions(
            "POST", f"/runs/{seg(_run_id(run))}/feedback/resolve", timeout=timeout))).json())


class BatchesAPI:
    """``client.batches``, written once for :class:`Batches` and :class:`AsyncBatches`."""

    @endpoint
    def create(self, *, tool: str | None = None, workflow: str | None = None, version: int | str | None = None,
               examples: Sequence[Mapping[str, Any]] | None = None, dataset: str | None = None,
               set: str | None = None, columns: Sequence[str] | None = None,
               timeout: Timeout = None) -> Plan[EvalBatch]:
        """One run of ``tool`` (or ``workflow``) per example: ``examples`` inline
        (``[{"example_id", "inputs"}]``), or the rows of ``dataset`` ("ns/name") or saved
        ``set``, which need an ``example_id`` column (``columns``: the inputs taken)."""
        if sum(x is not None for x in (examples, dataset, set)) != 1:
            raise ValueError("give one of examples, dataset or set")
        source: Any
        if examples is not None:
            source = [dict(e) for e in examples]
        else:
            source = compact(dataset=dataset, set=set, columns=list(columns) if columns is not None else None)
        body = compact(tool=tool, workflow=workflow, version=version, examples=source)
        return EvalBatch.model_validate((yield Send(RequestOptions("POST", "/batches", json=body,
                                                                   timeout=timeout))).json())

    @endpoint
    def get(self, batch: str | EvalBatch, *, timeout: Timeout = None) -> Plan[EvalBatch]:
        """Counts by status, the mean score against expected outputs and the regressions
        against the previous batch of the same target."""
        return EvalBatch.model_validate((yield Send(RequestOptions(
            "GET", f"/batches/{seg(_batch_id(batch))}", timeout=timeout))).json())

    @listing
    def list(self, *, tool: str | None = None, workflow: str | None = None, limit: int | None = None,
             timeout: Timeout = None) -> Listing[EvalBatch]:
        """Batches, newest first, with their runs' counts by status."""
        return Listing(EvalBatch, lambda cursor: RequestOptions(
            "GET", "/batches", params={"tool": tool, "workflow": workflow, "limit": limit, "cursor": cursor},
            timeout=timeout))

    @endpoint
    def cancel(self, batch: str | EvalBatch, *, timeout: Timeout = None) -> Plan[EvalBatch]:
        """Cancel the batch's runs still going."""
        return EvalBatch.model_validate((yield Send(RequestOptions(
            "POST", f"/batches/{seg(_batch_id(batch))}/cancel", timeout=timeout))).json())

    @endpoint
    def wait(self, batch: str | EvalBatch, *, timeout: float | None = None,
             poll_interval: float = 1.0) -> Plan[EvalBatch]:
        """The batch once none of its runs is going (:class:`~runyard.WaitTimeoutError`
        after ``timeout`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            current = EvalBatch.model_validate((yield Send(RequestOptions(
                "GET", f"/batches/{seg(_batch_id(batch))}"))).json())
            if current.status != "running":
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeoutError(f"batch {current.id} still running after {timeout}s", runs=[])
            left = poll_interval if deadline is None else min(poll_interval, max(0.0, deadline - time.monotonic()))
            yield Sleep(left)


class Expectations(ExpectationsAPI, SyncResource):
    """``client.runs.expected``."""


class AsyncExpectations(ExpectationsAPI, AsyncResource):
    """``client.runs.expected`` of :class:`~runyard.AsyncClient` (coroutines)."""


class Comparisons(ComparisonsAPI, SyncResource):
    """``client.runs.comparison``."""


class AsyncComparisons(ComparisonsAPI, AsyncResource):
    """``client.runs.comparison`` of :class:`~runyard.AsyncClient` (coroutines)."""


class RunFeedback(RunFeedbackAPI, SyncResource):
    """``client.runs.feedback``."""


class AsyncRunFeedback(RunFeedbackAPI, AsyncResource):
    """``client.runs.feedback`` of :class:`~runyard.AsyncClient` (coroutines)."""


class Batches(BatchesAPI, SyncResource):
    """``client.batches``: evaluation batches."""


class AsyncBatches(BatchesAPI, AsyncResource):
    """``client.batches`` of :class:`~runyard.AsyncClient` (coroutines)."""

