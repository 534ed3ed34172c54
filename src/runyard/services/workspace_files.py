"""Workspace files: named files a workspace keeps, downloaded over HTTP and read by runs.

An upload streams into a temporary blob (``FileSink``: counted and hashed as it is
written, never held in memory), then ``commit`` validates the name, checks the storage
quota and moves the row to the new blob in one transaction. Replacing or deleting a file
retires its old blob in that same transaction (``retired_blobs``; the data upkeep deletes
it once no query could still read it, as it does a dataset's replaced parts), so a
download or run that looked the file up just before still finds whole bytes, and a crash
leaves no blob without a record. Anything refused removes the bytes it had written.

Who may: any key with at least the viewer role lists and downloads, members upload and
delete. A restricted key (to some tools or data) reaches no workspace files: they belong
to no namespace or tool its restrictions could name.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from runyard.ids import new_id
from runyard.services.access import Permission, Principal
from runyard.services.errors import Conflict, DomainError, NotFound, PayloadTooLarge, ValidationFailed
from runyard.services.pagination import Page, paginate
from runyard.services.storage import StorageQuota
from runyard.store.blobs import BlobStore
from runyard.store.db import Database
from runyard.store.tables_data import retired_blobs
from runyard.store.tables_files import workspace_files
from runyard.timeutil import rfc3339, utcnow

READ_FILES = Permission("viewer", "read workspace files", unrestricted=True)
WRITE_FILES = Permission("member", "change workspace files", unrestricted=True)
MAX_NAME_CHARS = 255
# One file's size cap (the storage quota is the real bound); the request guard allows this
# much body (plus the form's own bytes) on POST /workspace/files.
MAX_WORKSPACE_FILE_BYTES = 64 * 1024 ** 3
MAX_FILES_PER_RUN = 100
# An upload's temporary file untouched this long belongs to no request any more.
ABANDONED_AFTER_S = 24 * 3600.0
SWEEP_EVERY_S = 3600.0
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_CONTENT_TYPE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$")


class InsufficientStorage(DomainError):
    status = 507
    code = "insufficient_storage"


def check_file_name(name: Any, field: str = "name") -> str:
    """A workspace file's name, or 400 ``invalid_file_name``: 1-255 characters, no ``/``, ``\\``,
    ``..``, NUL or other control characters, no leading or trailing space."""
    def refuse(why: str) -> ValidationFailed:
        return ValidationFailed(f"invalid file name {str(name)[:80]!r}: {why}", code="invalid_file_name",
                                details={"field": field})

    if not isinstance(name, str) or not name:
        raise refuse("a name is required")
    if len(name) > MAX_NAME_CHARS:
        raise refuse(f"at most {MAX_NAME_CHARS} characters")
    if "/" in name or "\\" in name:
        raise refuse("a name cannot contain / or \\")
    if ".." in name or name == ".":
        raise refuse("a name cannot contain '..' or be '.'")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        raise refuse("a name cannot contain NUL or other control characters")
    if name != name.strip():
        raise refuse("a name cannot start or end with whitespace")
    return name


def _content_type(given: str | None, name: str) -> str:
    """The type to store: the upload's own when well-formed, else one guessed from the name."""
    media = (given or "").partition(";")[0].strip().lower()
    if media and _CONTENT_TYPE_RE.match(media) and media != DEFAULT_CONTENT_TYPE:
        return media
    return mimetypes.guess_type(name)[0] or DEFAULT_CONTENT_TYPE


def file_view(row: Any) -> dict[str, Any]:
    m = row._mapping
    return {"id": m["id"], "object": "workspace_file", "name": m["name"], "size": int(m["size"]),
            "content_type": m["content_type"], "sha256": m["sha256"], "created_by": m["created_by"],
            "updated_by": m["updated_by"], "created_at": rfc3339(m["created_at"]),
            "updated_at": rfc3339(m["updated_at"])}


class FileSink:
    """Receives an upload's bytes in chunks into a temporary file in the blob store, counting
    and hashing them; ``close`` then ``WorkspaceFileService.commit`` or ``abort``."""

    PREFIX = ".tmp-upload-"

    def __init__(self, directory: Path, max_bytes: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix=self.PREFIX)
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._sha = hashlib.sha256()
        self.size = 0
        self.max_bytes = max_bytes

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise PayloadTooLarge(f"a workspace file is at most {self.max_bytes} bytes",
                                  details={"limit": self.max_bytes})
        self._sha.update(chunk)
        try:
            self._file.write(chunk)
        except OSError as exc:
            raise InsufficientStorage(f"the file could not be stored: {exc.strerror}") from exc

    def close(self) -> None:
        if not self._file.closed:
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
            except OSError as exc:
                raise InsufficientStorage(f"the file could not be stored: {exc.strerror}") from exc
            finally:
                self._file.close()

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)


class WorkspaceFileService:
    def __init__(self, db: Database, blobs: BlobStore, quota: StorageQuota, *,
                 max_bytes: int = MAX_WORKSPACE_FILE_BYTES, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.blobs = blobs
        self.quota = quota
        self.max_bytes = max_bytes
        self.clock = clock
        self._last_sweep = 0.0

    @staticmethod
    def _prefix(workspace_id: str) -> str:
        return f"workspace-files/{workspace_id}"

    def _row(self, conn: sa.Connection, workspace_id: str, name: str) -> Any:
        return conn.execute(sa.select(workspace_files).where(workspace_files.c.workspace_id == workspace_id,
                                                             workspace_files.c.name == name)).first()

    # -- reading ---------------------------------------------------------------------------
    def list(self, principal: Principal, *, cursor: str | None = None, limit: int = 100,
             include_total: bool = False, prefix: str | None = None) -> Page:
        READ_FILES.check(principal)
        query = sa.select(workspace_files).where(workspace_files.c.workspace_id == principal.workspace_id)
        if prefix:
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(workspace_files.c.name.like(escaped + "%", escape="\\"))
        with self.db.read() as conn:
            rows, next_cursor, total = paginate(conn, query, sort_col=workspace_files.c.name,
                                                id_col=workspace_files.c.id, descending=False, cursor=cursor,
                                                limit=limit, include_total=include_total)
        return Page([file_view(r) for r in rows], next_cursor, total)

    def get(self, principal: Principal, name: str) -> dict[str, Any]:
        """The file's record and, under ``path``, where its bytes are (to stream them)."""
        READ_FILES.check(principal)
        check_file_name(name)
        with self.db.read() as conn:
            row = self._row(conn, principal.workspace_id, name)
        if row is None:
            raise NotFound(f"workspace file {name!r} not found", code="file_not_found", details={"name": name})
        return {**file_view(row), "path": self.blobs.path(row.blob_key)}

    def usage(self, principal: Principal) -> dict[str, Any]:
        READ_FILES.check(principal)
        return self.quota.usage(principal.workspace_id)

    # -- writing ---------------------------------------------------------------------------
    def begin_upload(self, principal: Principal) -> FileSink:
        """A sink for an upload's bytes, once the caller may upload at all (before any byte is read)."""
        WRITE_FILES.check(principal)
        return FileSink(self.blobs.path(self._prefix(principal.workspace_id)), self.max_bytes)

    def check_room(self, principal: Principal, at_least: int) -> None:
        """Before an upload's body is read: 413 ``storage_quota_exceeded`` when a file of
        ``at_least`` bytes could not fit whatever it replaced (a new name: it replaces nothing)."""
        WRITE_FILES.check(principal)
        if at_least > 0:
            self.quota.check(principal.workspace_id, at_least)

    def commit(self, principal: Principal, sink: FileSink, *, name: Any, content_type: str | None = None,
               overwrite: bool = False) -> dict[str, Any]:
        """Store the sink's bytes as workspace file ``name``: 409 ``file_exists`` unless
        ``overwrite``, 413 ``storage_quota_exceeded`` past the quota; refused, nothing stays."""
        WRITE_FILES.check(principal)
        try:
            sink.close()
            name = check_file_name(name)
            stored_type = _content_type(content_type, name)
            key = f"{self._prefix(principal.workspace_id)}/{new_id('wsf')}"
            os.replace(sink.path, self.blobs.path(key))
        except BaseException:
            sink.abort()
            raise
        try:
            self._record(principal, name, key, sink.size, sink.sha256, stored_type, overwrite)
        except BaseException:
            self.blobs.path(key).unlink(missing_ok=True)
            raise
        with self.db.read() as conn:
            return file_view(self._row(conn, principal.workspace_id, name))

    def _record(self, principal: Principal, name: str, key: str, size: int, sha256: str, content_type: str,
                overwrite: bool) -> None:
        """Insert the row, or move it to the new blob and retire the old one."""
        now = self.clock()
        with self.db.write() as conn:
            self.quota.lock(conn, principal.workspace_id)
            existing = self._row(conn, principal.workspace_id, name)
            if existing is not None and not overwrite:
                raise Conflict(f"workspace file {name!r} exists; upload with overwrite=true to replace it",
                               code="file_exists", details={"name": name})
            self.quota.check(principal.workspace_id, size, conn,
                             replacing=int(existing.size) if existing is not None else 0)
            values = {"size": size, "sha256": sha256, "content_type": content_type, "blob_key": key,
                      "updated_by": principal.user_id, "updated_at": now}
            if existing is None:
                try:
                    conn.execute(workspace_files.insert().values(
                        id=new_id("wsf"), workspace_id=principal.workspace_id, name=name,
                        created_by=principal.user_id, created_at=now, **values))
                except sa.exc.IntegrityError:
                    raise Conflict(f"workspace file {name!r} was just created by another upload",
                                   code="file_exists", details={"name": name}) from None
                return
            conn.execute(workspace_files.update().where(workspace_files.c.id == existing.id).values(**values))
            conn.execute(retired_blobs.insert().values(key=existing.blob_key, retired_at=now))

    def delete(self, principal: Principal, name: str) -> None:
        WRITE_FILES.check(principal)
        check_file_name(name)
        with self.db.write() as conn:
            row = self._row(conn, principal.workspace_id, name)
            if row is None:
                raise NotFound(f"workspace file {name!r} not found", code="file_not_found", details={"name": name})
            conn.execute(workspace_files.delete().where(workspace_files.c.id == row.id))
            conn.execute(retired_blobs.insert().values(key=row.blob_key, retired_at=self.clock()))

    def sweep_abandoned(self, *, older_than_s: float = ABANDONED_AFTER_S) -> int:
        """Delete upload temporaries no request is writing any more (a server that died
        mid-upload leaves them); at most once an hour. Returns how many went."""
        now = time.time()
        if now - self._last_sweep < SWEEP_EVERY_S:
            return 0
        self._last_sweep = now
        root = self.blobs.path("workspace-files")
        removed = 0
        for tmp in root.glob(f"*/{FileSink.PREFIX}*") if root.exists() else ():
            try:
                if now - tmp.stat().st_mtime > older_than_s:
                    tmp.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        return removed

    # -- runs ------------------------------------------------------------------------------
    def paths_for_run(self, workspace_id: str, names: Iterable[str]) -> dict[str, str | None]:
        """Where the declared files' bytes are, by name (None: no such file now). For the worker."""
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return {}
        with self.db.read() as conn:
            rows = conn.execute(sa.select(workspace_files.c.name, workspace_files.c.blob_key).where(
                workspace_files.c.workspace_id == workspace_id, workspace_files.c.name.in_(wanted))).all()
        found = {r.name: str(self.blobs.path(r.blob_key)) for r in rows}
        return {name: found.get(name) for name in wanted}
