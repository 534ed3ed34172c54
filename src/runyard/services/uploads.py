"""Multipart uploads of large files, like an object store's: signed part URLs on runyard.

``create`` answers with an upload key (shown once; it proves the upload is yours at
``complete``) and one URL per part. Each URL is HMAC-signed over the method, upload, part
number, part size, expiry and uploading user, so it needs no bearer key and works for
nothing else; the signature is checked before any byte of the body is read. Parts are
written in place into one file at their offsets, so completing needs no copy. ``complete``
checks the caller, every part and the size, and queues an ingestion.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets as pysecrets
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa

from runyard.ids import new_id
from runyard.services.access import Permission, Principal
from runyard.services.datasets import DatasetService
from runyard.services.errors import Conflict, DomainError, NotFound, PermissionDenied, ValidationFailed
from runyard.services.ingestions import IngestionService
from runyard.store.blobs import BlobStore
from runyard.store.db import Database
from runyard.store.tables_data import upload_parts, uploads
from runyard.timeutil import as_utc, rfc3339, utcnow

MIN_PART = 5 * 1024 * 1024
DEFAULT_PART = 16 * 1024 * 1024
MAX_PART = 512 * 1024 * 1024
MAX_PARTS = 10_000
MAX_UPLOAD = MAX_PART * MAX_PARTS
UPLOAD_DATA = Permission("member", "upload data")


class InsufficientStorage(DomainError):
    status = 507
    code = "insufficient_storage"


def data_key(upload_id: str) -> str:
    return f"uploads/{upload_id}/data"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class UploadService:
    def __init__(self, db: Database, blobs: BlobStore, datasets_service: DatasetService,
                 ingestions_service: IngestionService, signing_key: bytes, *, ttl: timedelta = timedelta(hours=24),
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.blobs = blobs
        self.datasets = datasets_service
        self.ingestions = ingestions_service
        self.signing_key = signing_key
        self.ttl = ttl
        self.clock = clock

    # -- signing ---------------------------------------------------------------------------
    def _signature(self, upload_id: str, part_number: int, size: int, expires: int, user_id: str) -> str:
        message = f"PUT\n{upload_id}\n{part_number}\n{size}\n{expires}\n{user_id}".encode()
        return hmac.new(self.signing_key, message, hashlib.sha256).hexdigest()

    @staticmethod
    def _part_size(row: Any, part_number: int) -> int:
        if part_number < row.part_count:
            return int(row.part_size)
        return int(row.size - row.part_size * (row.part_count - 1))

    def _urls(self, row: Any, base_url: str, numbers: list[int]) -> list[dict[str, Any]]:
        expires = int(as_utc(row.expires_at).timestamp())  # type: ignore[union-attr]
        out = []
        for n in numbers:
            size = self._part_size(row, n)
            query = urlencode({"expires": expires, "signature": self._signature(row.id, n, size, expires, row.user_id)})
            out.append({"part_number": n, "size": size,
                        "url": f"{base_url.rstrip('/')}/api/v1/uploads/{row.id}/parts/{n}?{query}"})
        return out

    # -- views -----------------------------------------------------------------------------
    def _view(self, conn: sa.Connection, row: Any, *, base_url: str | None = None,
              key: str | None = None) -> dict[str, Any]:
        done = conn.execute(sa.select(upload_parts).where(upload_parts.c.upload_id == row.id)
                            .order_by(upload_parts.c.part_number)).all()
        have = {p.part_number for p in done}
        missing = [n for n in range(1, row.part_count + 1) if n not in have]
        view = {"id": row.id, "object": "upload", "filename": row.filename, "size": row.size,
                "part_size": row.part_size, "part_count": row.part_count, "status": row.status,
                "uploaded": [{"part_number": p.part_number, "etag": p.etag, "size": p.size} for p in done],
                "parts": self._urls(row, base_url, missing) if base_url and row.status == "open" else [],
                "expires_at": rfc3339(row.expires_at), "ingestion_id": row.ingestion_id}
        if key is not None:
            view["key"] = key
        return view

    def _own(self, conn: sa.Connection, principal: Principal, upload_id: str, key: str | None = None) -> Any:
        row = conn.execute(sa.select(uploads).where(uploads.c.id == upload_id,
                                                    uploads.c.workspace_id == principal.workspace_id)).first()
        if row is None or row.user_id != principal.user_id:
            raise NotFound(f"upload {upload_id!r} not found", code="upload_not_found")
        if key is not None and not hmac.compare_digest(row.key_hash, _hash(key)):
            raise PermissionDenied("the upload key does not match this upload", code="invalid_upload_key")
        return row

    # -- operations ------------------------------------------------------------------------
    def create(self, principal: Principal, *, filename: str, size: int, part_size: int | None = None,
               base_url: str, target: dict[str, Any] | None = None) -> dict[str, Any]:
        UPLOAD_DATA.check(principal)
        if not isinstance(size, int) or size < 1:
            raise ValidationFailed("size must be the file's size in bytes (at least 1)", code="empty_file",
                                   details={"field": "size"})
        if size > MAX_UPLOAD:
            raise ValidationFailed(f"an upload is at most {MAX_UPLOAD} bytes", code="upload_too_large")
        if part_size is None:
            part_size = max(DEFAULT_PART, math.ceil(size / MAX_PARTS))
        if not MIN_PART <= part_size <= MAX_PART:
            raise ValidationFailed(f"part_size must be {MIN_PART}-{MAX_PART} bytes", details={"field": "part_size"})
        count = max(1, math.ceil(size / part_size))
        if count > MAX_PARTS:
            raise ValidationFailed(f"at most {MAX_PARTS} parts: choose a larger part_size",
                                   details={"field": "part_size"})
        self.datasets.check_quota(principal.workspace_id, size)
        key = "upk_" + pysecrets.token_urlsafe(24)
        now = self.clock()
        upload_id = new_id("upl")
        path = self.blobs.path(data_key(upload_id))
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            fh.truncate(size)  # sparse: parts land at their offsets
        with self.db.write() as conn:
            conn.execute(uploads.insert().values(
                id=upload_id, workspace_id=principal.workspace_id, user_id=principal.user_id,
                token_id=principal.token_id, filename=filename[:255], size=size, part_size=part_size,
                part_count=count, key_hash=_hash(key), status="open", target=target, expires_at=now + self.ttl,
                created_at=now))
            row = conn.execute(sa.select(uploads).where(uploads.c.id == upload_id)).one()
            return self._view(conn, row, base_url=base_url, key=key)

    def get(self, principal: Principal, upload_id: str) -> dict[str, Any]:
        with self.db.read() as conn:
            return self._view(conn, self._own(conn, principal, upload_id))

    def urls(self, principal: Principal, upload_id: str, *, key: str, base_url: str) -> dict[str, Any]:
        """Fresh URLs for the parts not received yet, and what was received (to resume)."""
        UPLOAD_DATA.check(principal)
        with self.db.read() as conn:
            row = self._own(conn, principal, upload_id, key)
            self._check_open(row)
            return self._view(conn, row, base_url=base_url)

    def _check_open(self, row: Any) -> None:
        if row.status != "open":
            raise Conflict(f"the upload is {row.status}", code=f"upload_{row.status}")
        if as_utc(row.expires_at) <= self.clock():  # type: ignore[operator]
            raise Conflict("the upload has expired", code="upload_expired")

    def authorize_part(self, upload_id: str, part_number: int, *, expires: str | None, signature: str | None,
                       content_length: int | None) -> Any:
        """Check a part's signed URL before its body is read; returns the upload row."""
        if not expires or not signature or not expires.isdigit():
            raise PermissionDenied("this URL is not signed", code="invalid_signature")
        with self.db.read() as conn:
            row = conn.execute(sa.select(uploads).where(uploads.c.id == upload_id)).first()
        if row is None or not 1 <= part_number <= row.part_count:
            raise PermissionDenied("the signature does not match", code="invalid_signature")
        size = self._part_size(row, part_number)
        wanted = self._signature(row.id, part_number, size, int(expires), row.user_id)
        if not hmac.compare_digest(wanted, signature):
            raise PermissionDenied("the signature does not match", code="invalid_signature")
        if int(expires) <= self.clock().timestamp():
            raise PermissionDenied("the signed URL has expired", code="signature_expired")
        self._check_open(row)
        if content_length is not None and content_length != size:
            raise ValidationFailed(f"part {part_number} is {size} bytes, not {content_length}",
                                   code="part_size_mismatch", details={"expected": size})
        return row

    def part_writer(self, row: Any, part_number: int) -> PartSink:
        return PartSink(self.blobs.path(data_key(row.id)), (part_number - 1) * row.part_size,
                        self._part_size(row, part_number))

    def record_part(self, row: Any, part_number: int, sink: PartSink) -> str:
        etag = sink.finish()
        with self.db.write() as conn:
            current = conn.execute(sa.select(uploads.c.status).where(uploads.c.id == row.id)).scalar()
            if current != "open":
                raise Conflict(f"the upload is {current}", code=f"upload_{current}")
            conn.execute(upload_parts.delete().where(upload_parts.c.upload_id == row.id,
                                                     upload_parts.c.part_number == part_number))
            conn.execute(upload_parts.insert().values(upload_id=row.id, part_number=part_number, size=sink.size,
                                                      etag=etag, created_at=self.clock()))
        return etag

    def complete(self, principal: Principal, upload_id: str, *, key: str, parts: list[dict[str, Any]],
                 namespace: str, dataset: str, name: str | None = None, create: bool = True,
                 options: dict[str, Any] | None = None) -> dict[str, Any]:
        """Check every part (all there, in order, each ETag the one received) and queue the
        ingestion of the whole file."""
        UPLOAD_DATA.check(principal)
        with self.db.read() as conn:
            row = self._own(conn, principal, upload_id, key)
            self._check_open(row)
            received = {p.part_number: p for p in conn.execute(
                sa.select(upload_parts).where(upload_parts.c.upload_id == row.id)).all()}
        numbers = [int(p["part_number"]) for p in parts]
        if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
            raise ValidationFailed("parts must be listed once each, in ascending part_number order",
                                   code="invalid_part_order")
        missing = [n for n in range(1, row.part_count + 1) if n not in numbers or n not in received]
        if missing or numbers[-1:] != [row.part_count]:
            raise ValidationFailed(f"part(s) missing: {', '.join(map(str, missing[:20]))}", code="missing_part",
                                   details={"missing": missing[:100]})
        for p in parts:
            have = received[int(p["part_number"])]
            if not hmac.compare_digest(str(p["etag"]).strip('"'), have.etag):
                raise ValidationFailed(f"part {p['part_number']}'s ETag is not the one it was stored with",
                                       code="invalid_part", details={"part_number": p["part_number"]})
        if sum(p.size for p in received.values()) != row.size:
            raise ValidationFailed("the parts do not add up to the declared size", code="size_mismatch")
        path = self.blobs.path(data_key(row.id))
        if path.stat().st_size != row.size:
            raise ValidationFailed("the stored file is not the declared size", code="size_mismatch")
        view = self.ingestions.submit_file(principal, namespace, dataset, source=path,
                                           filename=row.filename, options=options, create=create, kind="upload",
                                           label=name)
        with self.db.write() as conn:
            conn.execute(uploads.update().where(uploads.c.id == row.id).values(
                status="completed", ingestion_id=view["id"], finished_at=self.clock()))
        shutil.rmtree(path.parent, ignore_errors=True)
        return view

    def preview(self, principal: Principal, *, rows: list[Any] | None = None, upload_id: str | None = None,
                key: str | None = None, options: dict[str, Any] | None = None, limit: int = 100,
                sample: int = 10_000, guidance: Any = None) -> dict[str, Any]:
        """What ingesting JSON rows or an upload (yours, with its key) would give; nothing saved."""
        if (rows is None) == (upload_id is None):
            raise ValidationFailed("give either rows or upload_id", code="missing_source")
        source = None
        if upload_id is not None:
            if not key:
                raise ValidationFailed("an upload's key is needed to read it", code="invalid_upload_key",
                                       details={"field": "key"})
            with self.db.read() as conn:
                row = self._own(conn, principal, upload_id, key)
            self._check_open(row)
            source = self.blobs.path(data_key(row.id))
        return self.ingestions.preview(source=source, rows=rows, options=options, limit=limit, sample=sample,
                                       principal=principal, guidance=guidance)

    def abort(self, principal: Principal, upload_id: str) -> None:
        UPLOAD_DATA.check(principal)
        with self.db.read() as conn:
            row = self._own(conn, principal, upload_id)
        if row.status != "open":
            raise Conflict(f"the upload is {row.status}", code=f"upload_{row.status}")
        # The bytes first: on a full disk, freeing them is what lets the record be written.
        shutil.rmtree(self.blobs.path(data_key(row.id)).parent, ignore_errors=True)
        with self.db.write() as conn:
            conn.execute(uploads.update().where(uploads.c.id == row.id, uploads.c.status == "open")
                         .values(status="aborted", finished_at=self.clock()))
            conn.execute(upload_parts.delete().where(upload_parts.c.upload_id == row.id))

    def expire(self) -> int:
        """Unfinished uploads past their expiry: marked expired, their bytes removed."""
        now = self.clock()
        with self.db.write() as conn:
            rows = conn.execute(sa.select(uploads.c.id).where(uploads.c.status == "open",
                                                              uploads.c.expires_at < now)).scalars().all()
            if rows:
                conn.execute(uploads.update().where(uploads.c.id.in_(rows)).values(status="expired",
                                                                                  finished_at=now))
                conn.execute(upload_parts.delete().where(upload_parts.c.upload_id.in_(rows)))
        for upload_id in rows:
            shutil.rmtree(self.blobs.path(data_key(upload_id)).parent, ignore_errors=True)
        return len(rows)


class PartSink:
    """Writes one part's bytes at its offset in the upload's file, hashing them (the ETag)."""

    def __init__(self, path: Path, offset: int, size: int) -> None:
        self.path = path
        self.offset = offset
        self.size = size
        self.written = 0
        self._md5 = hashlib.md5(usedforsecurity=False)
        try:
            self._fd = os.open(path, os.O_WRONLY)
        except FileNotFoundError:
            raise Conflict("the upload is no longer open", code="upload_aborted") from None

    def write(self, chunk: bytes) -> None:
        if self.written + len(chunk) > self.size:
            raise ValidationFailed(f"the part is larger than its {self.size} bytes", code="part_size_mismatch",
                                   details={"expected": self.size})
        try:
            os.pwrite(self._fd, chunk, self.offset + self.written)
        except OSError as exc:
            raise InsufficientStorage(f"the part could not be stored: {exc.strerror}") from exc
        self._md5.update(chunk)
        self.written += len(chunk)

    def finish(self) -> str:
        try:
            if self.written != self.size:
                raise ValidationFailed(f"the part has {self.written} of its {self.size} bytes",
                                       code="part_size_mismatch", details={"expected": self.size})
            os.fsync(self._fd)
        finally:
            self.close()
        return self._md5.hexdigest()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
