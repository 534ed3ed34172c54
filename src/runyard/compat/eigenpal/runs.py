"""``client.run``, ``client.rerun`` and ``client.runs.*``: Eigenpal's run operations on
runyard's ``/api/v1/runs`` routes (the same paths Eigenpal's API uses).

Answers are runyard's JSON as dicts — a run is runyard's run object, a list is
``{"items", "next_cursor", "total"}`` — and downloads are bytes. The mapping of each
parameter is in docs/compat.md (Eigenpal).
"""

from __future__ import annotations

import builtins
import io
import json
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from runyard.sdk._base import FilePart

from ._transport import FileSource, Transport, file_part, seg
from .errors import EigenpalNotFoundError, EigenpalValidationError

__all__ = ["Runs", "start_run", "MAX_WAIT_S"]

#: ``wait_for_completion`` is at most this many seconds (Eigenpal's and runyard's limit).
MAX_WAIT_S = 600
#: Eigenpal's ``expand`` section names → runyard's (``input`` is runyard's ``inputs``).
_EXPAND = {"input": "inputs", "inputs": "inputs", "usage": "usage", "execution": "execution", "debug": "debug"}
#: Eigenpal's list filters with another name on runyard's ``GET /runs``.
_LIST_NAMES = {"from": "created_after", "from_": "created_after", "to": "created_before"}
_LIST_FILTERS = ("type", "source", "status", "trigger", "triggered_by", "source_ref", "batch_id", "example_id",
                 "example_id_contains", "created_after", "created_before", "completed_after", "completed_before",
                 "cursor", "offset", "limit", "ids", "project", "app", "worker_id", "sort", "order", "page",
                 "page_size", "include_total")


def _is_file(value: Any) -> bool:
    return isinstance(value, Path | bytes | bytearray) or hasattr(value, "read")


def _wait(wait_for_completion: int | float | None) -> dict[str, Any]:
    if wait_for_completion is None:
        return {}
    if not 0 <= float(wait_for_completion) <= MAX_WAIT_S:
        raise EigenpalValidationError(f"wait_for_completion must be between 0 and {MAX_WAIT_S} seconds",
                                      status=400, code="validation_error")
    return {"wait": float(wait_for_completion)}


def start_run(transport: Transport, payload: dict[str, Any], inputs: Mapping[str, Any] | None,
              wait_for_completion: int | float | None) -> dict[str, Any]:
    """``POST /runs``: JSON, or multipart when an input is a file (``Path``, bytes, an open
    binary file): each file goes as a part named after its input, the rest as ``payload``."""
    plain = {k: v for k, v in (inputs or {}).items() if not _is_file(v)}
    files = [file_part(name, bytes(v) if isinstance(v, bytearray) else v)
             for name, v in (inputs or {}).items() if _is_file(v)]
    body = {**payload, "inputs": plain}
    params = _wait(wait_for_completion)
    timeout = float(wait_for_completion) + 30 if wait_for_completion else None
    if files:
        return transport.json("POST", "/runs", params=params, data={"payload": json.dumps(body)}, files=files,
                              timeout=timeout)
    return transport.json("POST", "/runs", params=params, json=body, timeout=timeout)


class _Sub:
    def __init__(self, transport: Transport) -> None:
        self._t = transport


class Artifacts(_Sub):
    def list(self, id: str) -> dict[str, Any]:
        """``{"items": [{path, size, sha256, content_type}], ...}``: the run's artifacts."""
        return self._t.json("GET", f"/runs/{seg(id)}/artifacts")

    def download(self, id: str, path: str) -> bytes:
        """One artifact's bytes by its path (``output/report.csv``)."""
        quoted = "/".join(seg(part) for part in path.split("/"))
        return self._t.raw("GET", f"/runs/{seg(id)}/artifacts/{quoted}")

    def download_zip(self, id: str, *, files: str | Iterable[str] | None = None, token: str | None = None) -> bytes:
        """Every artifact in one zip; ``files`` (a list, or comma-separated paths) keeps only
        those (an unknown path is 404). ``token`` is Eigenpal's signed-link parameter: a
        runyard key authenticates this request, so it is not used."""
        del token
        whole = self._t.raw("GET", f"/runs/{seg(id)}/artifacts.zip")
        if files is None:
            return whole
        wanted = [f.strip() for f in files.split(",")] if isinstance(files, str) else [str(f) for f in files]
        wanted = [f for f in wanted if f]
        with zipfile.ZipFile(io.BytesIO(whole)) as source:
            present = set(source.namelist())
            missing = [f for f in wanted if f not in present]
            if missing:
                raise EigenpalNotFoundError(f"run {id} has no artifact {', '.join(missing)}", status=404,
                                            code="artifact_not_found")
            out = io.BytesIO()
            with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as subset:
                for name in wanted:
                    subset.writestr(source.getinfo(name), source.read(name))
        return out.getvalue()


class Comparison(_Sub):
    def get(self, id: str) -> dict[str, Any]:
        """The run against its example's expected output: field and file differences, a score."""
        return self._t.json("GET", f"/runs/{seg(id)}/comparison")


class Expected(_Sub):
    def list(self, id: str) -> dict[str, Any]:
        """The expected output (and files) of the run's example."""
        return self._t.json("GET", f"/runs/{seg(id)}/expected")

    def copy_output(self, id: str, *, artifacts: builtins.list[str] | None = None, copy_output: bool = True,
                    options: Mapping[str, Any] | None = None, output: Any = None) -> dict[str, Any]:
        """The run's output (and the named ``artifacts``) become the expected output; or give
        ``output`` outright with ``copy_output=False``."""
        body: dict[str, Any] = {"copy_output": copy_output}
        if artifacts is not None:
            body["artifacts"] = builtins.list(artifacts)
        if options is not None:
            body["options"] = dict(options)
        if output is not None:
            body["output"] = output
        return self._t.json("POST", f"/runs/{seg(id)}/expected", json=body)

    def upload(self, id: str, files: Mapping[str, FileSource] | Iterable[Path | str]) -> dict[str, Any]:
        """Upload files as expected files: a mapping of file name → path/bytes/file, or paths."""
        parts: builtins.list[FilePart]
        if isinstance(files, Mapping):
            parts = [file_part("file", source, filename=name) for name, source in files.items()]
        else:
            parts = [file_part("file", Path(p)) for p in files]
        return self._t.json("POST", f"/runs/{seg(id)}/expected", files=parts)

    def download(self, id: str, filename: str) -> bytes:
        return self._t.raw("GET", f"/runs/{seg(id)}/expected/{seg(filename)}")

    def rename(self, id: str, filename: str, new_filename: str) -> dict[str, Any]:
        return self._t.json("PATCH", f"/runs/{seg(id)}/expected/{seg(filename)}", json={"filename": new_filename})

    def delete(self, id: str, filename: str) -> None:
        self._t.send("DELETE", f"/runs/{seg(id)}/expected/{seg(filename)}")


class Feedback(_Sub):
    def get(self, id: str) -> dict[str, Any]:
        return self._t.json("GET", f"/runs/{seg(id)}/feedback")

    def update(self, id: str, body: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        """Set ``rating`` (``up``/``down``) or ``score`` (0–1), ``comment``, ``labels``,
        ``corrected_output``; fields not given stay."""
        return self._t.json("PATCH", f"/runs/{seg(id)}/feedback", json={**dict(body or {}), **fields})

    def clear(self, id: str) -> None:
        self._t.send("DELETE", f"/runs/{seg(id)}/feedback")

    def resolve(self, id: str) -> dict[str, Any]:
        return self._t.json("POST", f"/runs/{seg(id)}/feedback/resolve")


class Files(_Sub):
    def list(self, id: str) -> dict[str, Any]:
        """The run's input then output file rows (name, size, type, checksum, step)."""
        return self._t.json("GET", f"/runs/{seg(id)}/files")

    def delete(self, id: str, file_id: str) -> None:
        """Remove an input file while the run has not started."""
        self._t.send("DELETE", f"/runs/{seg(id)}/files/{seg(file_id)}")

    def upload(self, id: str, files: Mapping[str, FileSource]) -> dict[str, Any]:
        """Give a run that has not started its input files: input name → path/bytes/file."""
        return self._t.json("POST", f"/runs/{seg(id)}/files",
                            files=[file_part(name, source) for name, source in files.items()])


class Trace(_Sub):
    def get(self, id: str) -> dict[str, Any]:
        """A tool run's trace events; a workflow run's step timeline."""
        return self._t.json("GET", f"/runs/{seg(id)}/trace")


class Runs(_Sub):
    """``client.runs``: list, get, cancel, compare, connect, definition, and the
    ``artifacts``, ``comparison``, ``expected``, ``feedback``, ``files``, ``trace`` sections."""

    def __init__(self, transport: Transport) -> None:
        super().__init__(transport)
        self.artifacts = Artifacts(transport)
        self.comparison = Comparison(transport)
        self.expected = Expected(transport)
        self.feedback = Feedback(transport)
        self.files = Files(transport)
        self.trace = Trace(transport)

    def list(self, **filters: Any) -> dict[str, Any]:
        """One page of runs, newest first. Filters are Eigenpal's: ``type``, ``source``,
        ``status``, ``trigger``, ``triggered_by``, ``source_ref``, ``batch_id``, ``example_id``,
        ``example_id_contains``, ``from``/``from_`` and ``to`` (created after/before),
        ``created_after``…``completed_before``, ``cursor``, ``offset``, ``limit``, ``ids``
        (a list or comma-separated); runyard's own (``project``, ``page``…) pass through.
        An unknown filter is a ``TypeError``, never silently dropped."""
        params: dict[str, Any] = {}
        for name, value in filters.items():
            target = _LIST_NAMES.get(name, name)
            if target not in _LIST_FILTERS:
                raise TypeError(f"runs.list() got an unknown filter {name!r}")
            if value is None:
                continue
            if target == "ids" and not isinstance(value, str):
                value = ",".join(str(v) for v in value)
            if target in ("status", "trigger") and not isinstance(value, str):
                value = ",".join(str(v) for v in value)
            params[target] = value
        return self._t.json("GET", "/runs", params=params)

    def get(self, id: str, *, expand: str | Iterable[str] | None = None) -> dict[str, Any]:
        """One run; ``expand`` adds sections: ``input``, ``usage``, ``execution``, ``debug``
        (a list or comma-separated)."""
        params: dict[str, Any] = {}
        if expand is not None:
            names = [e.strip() for e in expand.split(",")] if isinstance(expand, str) else builtins.list(expand)
            unknown = [e for e in names if e and e not in _EXPAND]
            if unknown:
                raise EigenpalValidationError(f"expand takes {', '.join(sorted(set(_EXPAND) - {'inputs'}))}; "
                                              f"not {', '.join(unknown)}", status=400, code="validation_error")
            params["expand"] = ",".join(dict.fromkeys(_EXPAND[e] for e in names if e))
        return self._t.json("GET", f"/runs/{seg(id)}", params=params)

    def cancel(self, id: str) -> dict[str, Any]:
        """Cancel a queued run, or stop a running one (answered once it ended, up to 5 s)."""
        return self._t.json("POST", f"/runs/{seg(id)}/cancel")

    def compare(self, id: str, *, run_id: str | None = None, expected: Any = None,
                options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Compare the run with another run (``run_id``) or a value (``expected``)."""
        body: dict[str, Any] = {"run_id": run_id} if run_id is not None else {"expected": expected}
        if options is not None:
            body["options"] = dict(options)
        return self._t.json("POST", f"/runs/{seg(id)}/compare", json=body)

    def connect(self, id: str) -> dict[str, Any]:
        """A short-lived signed WebSocket URL streaming the live run."""
        return self._t.json("POST", f"/runs/{seg(id)}/connect")

    def definition(self, id: str) -> dict[str, Any]:
        """The workflow definition a workflow run used (a tool run: 404)."""
        return self._t.json("GET", f"/runs/{seg(id)}/definition")


def rerun(transport: Transport, run_id: str, *, version: str | int | None = "latest",
          wait_for_completion: int | float | None = None) -> dict[str, Any]:
    """``POST /runs/{id}/rerun``: Eigenpal's default is the latest version (``"original"``
    pins the source run's)."""
    params: dict[str, Any] = {"version": "latest" if version is None else str(version), **_wait(wait_for_completion)}
    timeout = float(wait_for_completion) + 30 if wait_for_completion else None
    return transport.json("POST", f"/runs/{seg(run_id)}/rerun", params=params, timeout=timeout)

