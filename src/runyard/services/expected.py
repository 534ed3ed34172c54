"""Expected outputs: what a run of an example should produce, kept per (target, example).

The target is the tool or workflow a run ran (its ``tool_id``); the example is the run's
``example_id``, or, for a run without one, the run's own id — so an expectation set from
an untagged run applies to that run (and its reruns tagged with that id) only. Every
later run of the example, in any version, is compared against the same record.

A record holds an expected JSON output (optional) and files. Files are blobs under
``expected/<record id>/<file id>``; their names are plain file names (no path), checked
here whatever route they came through, so a name can never reach another resource.
"""

from __future__ import annotations

import mimetypes
import unicodedata
from typing import Any, BinaryIO

import sqlalchemy as sa

from runyard.ids import new_id
from runyard.services.access import Permission, Principal
from runyard.services.errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed
from runyard.services.runs import RunService
from runyard.services.storage import StorageQuota
from runyard.store.blobs import BlobStore
from runyard.store.db import Database
from runyard.store.tables_evaluation import expected_files, expected_sets
from runyard.timeutil import rfc3339, utcnow

CHANGE_EXPECTED = Permission("member", "change expected outputs")
#: One expected file's bytes at most (413 ``expected_file_too_large``).
MAX_EXPECTED_FILE_BYTES = 64 * 1024 * 1024
#: Files one expected record may hold.
MAX_EXPECTED_FILES = 100
MAX_FILENAME = 255
_UNSET: Any = object()


def check_filename(name: Any, field: str = "filename") -> str:
    """A plain file name, or 400 ``invalid_filename``: no path separator (nor an encoded
    one, which arrives decoded), no ``.``/``..``, no control characters, at most 255 chars."""
    if not isinstance(name, str) or not name or len(name) > MAX_FILENAME or name in (".", "..") \
            or "/" in name or "\\" in name or any(unicodedata.category(ch).startswith("C") for ch in name) \
            or name != name.strip():
        raise ValidationFailed(
            f"{field} must be a plain file name of 1-{MAX_FILENAME} characters without slashes, "
            "control characters or surrounding spaces, and not '.' or '..'",
            code="invalid_filename", details={"field": field})
    return name


def example_key(run: Any) -> tuple[str, str]:
    """(target id, example id) of a run: its ``example_id``, else the run's own id."""
    return run.tool_id, run.example_id or run.id


def file_view(row: Any) -> dict[str, Any]:
    return {"filename": row.filename, "size": row.size, "sha256": row.sha256, "content_type": row.content_type,
            "created_at": rfc3339(row.created_at)}


class ExpectedService:
    def __init__(self, db: Database, blobs: BlobStore, runs: RunService, quota: StorageQuota | None = None) -> None:
        self.db = db
        self.blobs = blobs
        self.runs = runs
        self.quota = quota  # expected files count toward the workspace's storage quota
        self.max_file_bytes = MAX_EXPECTED_FILE_BYTES

    # -- reading ---------------------------------------------------------------------------
    def record_row(self, workspace_id: str, target_id: str, example_id: str) -> Any:
        with self.db.read() as conn:
            return conn.execute(sa.select(expected_sets).where(
                expected_sets.c.workspace_id == workspace_id, expected_sets.c.target_id == target_id,
                expected_sets.c.example_id == example_id)).first()

    def files_of(self, record_id: str) -> list[Any]:
        with self.db.read() as conn:
            return list(conn.execute(sa.select(expected_files).where(expected_files.c.expected_id == record_id)
                                     .order_by(expected_files.c.filename)).all())

    def view(self, record: Any) -> dict[str, Any]:
        return {"object": "expected", "id": record.id, "target_id": record.target_id,
                "target_name": record.target_name, "example_id": record.example_id,
                "has_output": record.has_output, "output": record.output, "options": record.options or {},
                "files": [file_view(f) for f in self.files_of(record.id)], "source_run_id": record.source_run_id,
                "created_at": rfc3339(record.created_at), "updated_at": rfc3339(record.updated_at)}

    def for_run(self, run: Any) -> Any:
        """The expected record of a run's example, or None."""
        target_id, example_id = example_key(run)
        return self.record_row(run.workspace_id, target_id, example_id)

    def _required(self, principal: Principal, run_id: str) -> tuple[Any, Any]:
        run = self.runs.visible_row(principal, run_id)
        record = self.for_run(run)
        if record is None:
            _, example_id = example_key(run)
            raise NotFound(f"run {run_id!r} has no expected output (example {example_id!r} of "
                           f"{run.tool_name!r} has none)", code="expected_not_found",
                           details={"run_id": run_id, "example_id": example_id})
        return run, record

    def get(self, principal: Principal, run_id: str) -> dict[str, Any]:
        """The expected output of the run's example; 404 ``expected_not_found`` when none is set."""
        return self.view(self._required(principal, run_id)[1])

    def file(self, principal: Principal, run_id: str, filename: str) -> tuple[dict[str, Any], Any]:
        """(the file's view, its local path)."""
        check_filename(filename)
        _, record = self._required(principal, run_id)
        row = self._file_row(record.id, filename)
        return file_view(row), self.blobs.path(row.blob_key)

    def _file_row(self, record_id: str, filename: str) -> Any:
        with self.db.read() as conn:
            row = conn.execute(sa.select(expected_files).where(expected_files.c.expected_id == record_id,
                                                               expected_files.c.filename == filename)).first()
        if row is None:
            raise NotFound(f"expected file {filename!r} not found", code="expected_file_not_found",
                           details={"filename": filename})
        return row

    # -- writing ---------------------------------------------------------------------------
    def save(self, principal: Principal, run_id: str, *, copy_output: bool = False, output: Any = _UNSET,
             artifacts: list[str] | None = None, options: dict[str, Any] | None = None,
             files: list[tuple[str, BinaryIO]] | None = None) -> tuple[dict[str, Any], bool]:
        """Create or update the expected record of the run's example: copy the run's output
        (``copy_output``) or set ``output``, copy the named artifacts and store uploaded
        ``files`` (a file of the same name is replaced), set ``options``. Returns (record,
        created). Nothing is kept when any part is refused."""
        CHANGE_EXPECTED.check(principal)
        run = self.runs.visible_row(principal, run_id)
        if copy_output and output is not _UNSET:
            raise ValidationFailed("give copy_output or output, not both", details={"field": "output"})
        if copy_output and run.status != "succeeded":
            raise Conflict(f"run is {run.status}; only a succeeded run's output can be copied",
                           code="invalid_state", details={"status": run.status})
        sources = self._sources(principal, run, artifacts or [], files or [])
        names = [name for name, _ in sources]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValidationFailed(f"two files would be named {dup[0]!r}", code="invalid_filename",
                                   details={"field": "artifacts", "filenames": dup})
        if not (copy_output or output is not _UNSET or sources or options is not None):
            raise ValidationFailed("nothing to set: give copy_output, output, artifacts, files or options",
                                   details={"field": "copy_output"})
        target_id, example_id = example_key(run)
        record = self.for_run(run)
        record_id = record.id if record is not None else new_id("exp")
        stored: list[dict[str, Any]] = []
        try:
            for name, opener in sources:
                file_id = new_id("exp")
                key = f"expected/{record_id}/{file_id}"
                with opener() as stream:
                    try:
                        size, sha = self.blobs.put_stream(key, stream, max_bytes=self.max_file_bytes)
                    except ValueError:
                        raise PayloadTooLarge(f"expected file {name!r} is larger than {self.max_file_bytes} bytes",
                                              code="expected_file_too_large",
                                              details={"filename": name, "limit": self.max_file_bytes}) from None
                stored.append({"id": file_id, "filename": name, "size": size, "sha256": sha, "blob_key": key,
                               "content_type": mimetypes.guess_type(name)[0] or "application/octet-stream"})
            created, replaced = self._commit(principal, run, record, record_id, target_id, example_id,
                                             copy_output=copy_output, output=output, options=options, stored=stored)
        except BaseException:
            for item in stored:
                self.blobs.path(item["blob_key"]).unlink(missing_ok=True)
            raise
        for key in replaced:
            self.blobs.path(key).unlink(missing_ok=True)
        fresh = self.for_run(run)
        return self.view(fresh), created

    def _sources(self, principal: Principal, run: Any, artifacts: list[str],
                 files: list[tuple[str, BinaryIO]]) -> list[tuple[str, Any]]:
        """(file name, a function opening its bytes) of each file to store."""
        if len(artifacts) + len(files) > MAX_EXPECTED_FILES:
            raise ValidationFailed(f"at most {MAX_EXPECTED_FILES} expected files", details={"field": "artifacts"})
        sources: list[tuple[str, Any]] = []
        for path in artifacts:
            if not isinstance(path, str) or not path:
                raise ValidationFailed("artifacts must be a list of artifact paths", details={"field": "artifacts"})
            row = self.runs.artifact(principal, run.id, path)  # 404 artifact_not_found
            name = check_filename(path.rsplit("/", 1)[-1], "artifacts")
            sources.append((name, lambda key=row.blob_key: self.blobs.open(key)))
        for filename, stream in files:
            name = check_filename(filename, "file")
            sources.append((name, lambda s=stream: _Borrowed(s)))
        return sources

    def _commit(self, principal: Principal, run: Any, record: Any, record_id: str, target_id: str,
                example_id: str, *, copy_output: bool, output: Any, options: dict[str, Any] | None,
                stored: list[dict[str, Any]]) -> tuple[bool, list[str]]:
        now = utcnow()
        values: dict[str, Any] = {"updated_at": now}
        if copy_output:
            values.update(has_output=True, output=run.output, source_run_id=run.id)
        elif output is not _UNSET:
            values.update(has_output=True, output=output)
        if stored:
            values["source_run_id"] = run.id
        if options is not None:
            values["options"] = options
        replaced: list[str] = []
        created = record is None
        try:
            with self.db.write() as conn:
                if stored and self.quota is not None:
                    self.quota.lock(conn, run.workspace_id)
                    self.quota.check(run.workspace_id, sum(item["size"] for item in stored), conn,
                                     replacing=self._replaced_bytes(conn, record_id, stored))
                if created:
                    conn.execute(expected_sets.insert().values(
                        id=record_id, workspace_id=run.workspace_id, target_id=target_id,
                        target_name=run.tool_name, example_id=example_id, created_by=principal.user_id,
                        created_at=now, **{"has_output": False, "output": None, "options": {},
                                           "source_run_id": run.id, **values}))
                else:
                    conn.execute(expected_sets.update().where(expected_sets.c.id == record_id).values(**values))
                replaced = self._replace_files(conn, record_id, stored, now)
        except sa.exc.IntegrityError:  # the record was made (or its files changed) by another request meanwhile
            raise Conflict("the expected output of this example changed concurrently; send the request again",
                           code="expected_changed") from None
        return created, replaced

    @staticmethod
    def _replaced_bytes(conn: sa.Connection, record_id: str, stored: list[dict[str, Any]]) -> int:
        """The bytes of the files ``stored`` replaces (the same names): freed by the write."""
        return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(expected_files.c.size), 0)).where(
            expected_files.c.expected_id == record_id,
            expected_files.c.filename.in_([item["filename"] for item in stored]))).scalar_one())

    def _replace_files(self, conn: sa.Connection, record_id: str, stored: list[dict[str, Any]],
                       now: Any) -> list[str]:
        """Insert ``stored`` (replacing rows of the same names); the replaced blobs' keys."""
        names = [item["filename"] for item in stored]
        if not names:
            return []
        replaced = list(conn.execute(sa.select(expected_files.c.blob_key).where(
            expected_files.c.expected_id == record_id, expected_files.c.filename.in_(names))).scalars())
        conn.execute(expected_files.delete().where(expected_files.c.expected_id == record_id,
                                                   expected_files.c.filename.in_(names)))
        conn.execute(expected_files.insert(), [{**item, "expected_id": record_id, "created_at": now}
                                               for item in stored])
        count = conn.execute(sa.select(sa.func.count()).select_from(expected_files).where(
            expected_files.c.expected_id == record_id)).scalar_one()
        if count > MAX_EXPECTED_FILES:
            raise ValidationFailed(f"an expected output holds at most {MAX_EXPECTED_FILES} files",
                                   details={"field": "artifacts", "max": MAX_EXPECTED_FILES})
        return replaced

    def rename(self, principal: Principal, run_id: str, filename: str, new_name: Any) -> dict[str, Any]:
        CHANGE_EXPECTED.check(principal)
        check_filename(filename)
        new_name = check_filename(new_name, "filename")
        _, record = self._required(principal, run_id)
        row = self._file_row(record.id, filename)
        if new_name != filename:
            try:
                with self.db.write() as conn:
                    conn.execute(expected_files.update().where(expected_files.c.id == row.id)
                                 .values(filename=new_name))
                    conn.execute(expected_sets.update().where(expected_sets.c.id == record.id)
                                 .values(updated_at=utcnow()))
            except sa.exc.IntegrityError:
                raise Conflict(f"an expected file named {new_name!r} exists", code="expected_file_exists",
                               details={"filename": new_name}) from None
        return self.view(self.record_row(record.workspace_id, record.target_id, record.example_id))

    def delete_file(self, principal: Principal, run_id: str, filename: str) -> None:
        CHANGE_EXPECTED.check(principal)
        check_filename(filename)
        _, record = self._required(principal, run_id)
        row = self._file_row(record.id, filename)
        with self.db.write() as conn:
            conn.execute(expected_files.delete().where(expected_files.c.id == row.id))
            conn.execute(expected_sets.update().where(expected_sets.c.id == record.id).values(updated_at=utcnow()))
        self.blobs.path(row.blob_key).unlink(missing_ok=True)


class _Borrowed:
    """An uploaded stream lent to ``with``: read from its start, left open for its owner."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def __enter__(self) -> BinaryIO:
        self.stream.seek(0)
        return self.stream

    def __exit__(self, *exc: object) -> None:
        return None
