"""Blob storage: code, logs, artifacts, uploads. A local (or shared) directory.

Keys are relative POSIX paths. Writes go to a temp file then ``os.replace`` so a crash
mid-write never leaves a half blob under a real key.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):  # the parts a Path would see
            raise ValueError(f"invalid blob key {key!r}")
        return self.root / key

    def put_bytes(self, key: str, data: bytes) -> str:
        """Store ``data``; returns its sha256."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
        return hashlib.sha256(data).hexdigest()

    def put_stream(self, key: str, stream: BinaryIO, *, max_bytes: int | None = None) -> tuple[int, str]:
        """Copy a stream in; returns (size, sha256). Raises ValueError past ``max_bytes``."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                while chunk := stream.read(1 << 20):
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise ValueError(f"upload exceeds {max_bytes} bytes")
                    digest.update(chunk)
                    fh.write(chunk)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return size, digest.hexdigest()

    def put_file(self, key: str, source: Path, *, move: bool = False) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if move:
            try:
                os.replace(source, target)
                return
            except OSError:
                pass  # another filesystem: fall back to a copy
        tmp = target.with_name(f".tmp-{target.name}")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)

    def get_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def open(self, key: str) -> BinaryIO:
        return self.path(key).open("rb")

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self.path(prefix), ignore_errors=True)
