"""``client.files``: the workspace's files — upload, list, download, delete.

Uploads and downloads stream: a file given by path or as a file object is read in
chunks as the request goes out, and ``download(name, dest)`` writes the body to disk as
it arrives (to a temporary sibling, renamed when complete), so a file of gigabytes
never sits in memory. ``progress(done, total)`` is called as bytes move (``total`` is
None when unknown).
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .._base import FilePart, RequestOptions, Timeout
from .._endpoint import Listing, Open, Plan, Read, Send, endpoint, listing
from ..models import StorageUsage, WorkspaceFile
from ._resource import AsyncResource, SyncResource, seg
from .runs import _atomic_write

__all__ = ["Files", "AsyncFiles"]

#: ``progress(done, total)``: bytes moved so far, and the whole size when known.
Progress = Callable[[int, "int | None"], None]
Source = str | os.PathLike[str] | IO[bytes] | bytes


class _CountingReader:
    """A file object that reports how far it has been read (httpx rewinds it on a retry:
    the count follows the position, not the bytes read in all)."""

    def __init__(self, raw: IO[bytes], progress: Progress, total: int | None) -> None:
        self.raw = raw
        self.progress = progress
        self.total = total

    def read(self, size: int = -1) -> bytes:
        chunk = self.raw.read(size)
        self.progress(self.raw.tell(), self.total)
        return chunk

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()

    def fileno(self) -> int:
        return self.raw.fileno()


def _size(fh: IO[bytes]) -> int | None:
    try:
        return os.fstat(fh.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        return None


def _file_part(source: Source, progress: Progress | None, content_type: str | None) -> tuple[FilePart, str, Any]:
    """The multipart part for ``source``, its default name, and a file to close afterwards (or None)."""
    if isinstance(source, bytes):
        part = FilePart("file", "upload.bin", source, content_type or "application/octet-stream")
        return part, "upload.bin", None
    if isinstance(source, str | os.PathLike):
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        kind = content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if progress is None:
            return FilePart("file", path.name, path, kind), path.name, None
        fh = path.open("rb")
        return FilePart("file", path.name, _CountingReader(fh, progress, _size(fh)), kind), path.name, fh  # type: ignore[arg-type]
    name = os.path.basename(str(getattr(source, "name", "") or "")) or "upload.bin"
    kind = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    body: Any = source if progress is None else _CountingReader(source, progress, _size(source))
    return FilePart("file", name, body, kind), name, None


class FilesAPI:
    """``client.files``, written once for :class:`Files` and :class:`AsyncFiles`."""

    @endpoint
    def upload(
        self,
        source: Source,
        name: str | None = None,
        *,
        overwrite: bool = False,
        content_type: str | None = None,
        progress: Progress | None = None,
        timeout: Timeout = None,
    ) -> Plan[WorkspaceFile]:
        """Store ``source`` (a path, a binary file object read from its start, or bytes) as
        workspace file ``name`` (default: the file's own name). An existing name raises
        :class:`~runyard.ConflictError` (``file_exists``) unless ``overwrite``; past the
        workspace's storage quota, ``storage_quota_exceeded``."""
        part, default_name, opened = _file_part(source, progress, content_type)
        try:
            opts = RequestOptions("POST", "/workspace/files", params={"overwrite": True} if overwrite else None,
                                  data={"name": name or default_name}, files=[part], timeout=timeout)
            return WorkspaceFile.model_validate((yield Send(opts)).json())
        finally:
            if opened is not None:
                opened.close()

    @listing
    def list(self, *, prefix: str | None = None, limit: int | None = None,
             timeout: Timeout = None) -> Listing[WorkspaceFile]:
        """The workspace's files by name (those starting with ``prefix``, if given)."""
        return Listing(WorkspaceFile, lambda cursor: RequestOptions(
            "GET", "/workspace/files", params={"prefix": prefix, "limit": limit, "cursor": cursor}, timeout=timeout))

    @endpoint
    def download(
        self, name: str, dest: str | os.PathLike[str] | IO[bytes] | None = None, *,
        progress: Progress | None = None, timeout: Timeout = None,
    ) -> Plan[bytes | Path | int]:
        """The file's bytes; or, with ``dest`` a path (a file, or a directory to put it in),
        the file streamed to disk, returning the written path; or, with ``dest`` a binary
        file object (``sys.stdout.buffer``), the file streamed into it, returning its size."""
        opts = RequestOptions("GET", f"/workspace/files/{seg(name)}", timeout=timeout)
        if dest is None and progress is None:
            return (yield Send(opts)).content
        if dest is not None and hasattr(dest, "write"):
            sink: IO[bytes] = dest  # type: ignore[assignment]
            stream = yield Open(opts)
            length = stream.headers.get("content-length")
            written = 0
            while (chunk := (yield Read(stream))) is not None:
                sink.write(chunk)
                written += len(chunk)
                if progress is not None:
                    progress(written, int(length) if length and length.isdigit() else None)
            return written
        target: Path | None = None
        if dest is not None:
            folder = Path(dest).expanduser()  # type: ignore[arg-type]
            target = folder / name if folder.is_dir() else folder
            target.parent.mkdir(parents=True, exist_ok=True)
        stream = yield Open(opts)
        length = stream.headers.get("content-length")
        total = int(length) if length and length.isdigit() else None
        done = 0
        if target is None:
            pieces = bytearray()
            while (chunk := (yield Read(stream))) is not None:
                pieces += chunk
                done += len(chunk)
                progress(done, total)  # type: ignore[misc]
            return bytes(pieces)
        with _atomic_write(target) as fh:
            while (chunk := (yield Read(stream))) is not None:
                fh.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        return target

    @endpoint
    def delete(self, name: str, *, timeout: Timeout = None) -> Plan[None]:
        """Delete a workspace file (runs that already opened it read it to the end)."""
        yield Send(RequestOptions("DELETE", f"/workspace/files/{seg(name)}", timeout=timeout))

    @endpoint
    def usage(self, *, timeout: Timeout = None) -> Plan[StorageUsage]:
        """Bytes the workspace keeps (files, datasets, artifacts, open uploads) and its quota."""
        return StorageUsage.model_validate((yield Send(RequestOptions("GET", "/workspace/storage",
                                                                      timeout=timeout))).json())


class Files(FilesAPI, SyncResource):
    """``client.files``: the workspace's files."""


class AsyncFiles(FilesAPI, AsyncResource):
    """``client.files`` of :class:`~runyard.AsyncClient` (coroutines)."""
