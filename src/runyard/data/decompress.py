"""Transparent gzip/zstd decompression of uploads, capped while streaming.

An upload is untrusted: a few MB of gzip can expand to terabytes, so every read counts the
decompressed bytes and stops at the cap instead of ever holding the whole output.
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path
from typing import Literal

import pyarrow as pa

Compression = Literal["gzip", "zstd", "none"]

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class DecompressionLimit(Exception):
    """The decompressed stream grew past its cap."""


def sniff_compression(head: bytes) -> Compression:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


def decompress_head(head: bytes, compression: Compression, limit: int = 1 << 20) -> bytes:
    """At most ``limit`` bytes of what a (possibly truncated) compressed head decodes to."""
    if compression == "none":
        return head[:limit]
    if compression == "gzip":
        out = bytearray()
        data = head
        # Concatenated gzip members are legal (and what `cat a.gz b.gz` makes).
        while data and len(out) < limit:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                out += d.decompress(data, limit - len(out))
            except zlib.error:
                break
            if not d.eof:
                break
            data = d.unused_data
        return bytes(out[:limit])
    stream = pa.CompressedInputStream(pa.BufferReader(head), "zstd")
    out = bytearray()
    try:
        while len(out) < limit:
            chunk = stream.read(min(65536, limit - len(out)))
            if not chunk:
                break
            out += chunk
    except (OSError, pa.ArrowException):
        pass  # the head ends mid-frame: keep what decoded
    return bytes(out[:limit])


class CappedStream(io.RawIOBase):
    """A readable stream of a file's decompressed bytes that refuses to go past ``cap`` bytes.

    ``compressed_pos`` is how far into the file on disk the reader has got (for progress).
    """

    def __init__(self, path: Path, compression: Compression, cap: int) -> None:
        super().__init__()
        self._raw = pa.OSFile(str(path), "rb")
        self._stream: pa.NativeFile = (
            self._raw if compression == "none" else pa.CompressedInputStream(self._raw, compression)
        )
        self.cap = cap
        self.decompressed = 0

    def readable(self) -> bool:
        return True

    @property
    def compressed_pos(self) -> int:
        return int(self._raw.tell())

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = 1 << 20
        # Read one byte past the cap so that an exact-cap file is fine and a bigger one is caught.
        want = min(size, self.cap + 1 - self.decompressed)
        if want <= 0:
            raise DecompressionLimit(f"the decompressed data exceeds {self.cap} bytes")
        try:
            data = self._stream.read(want)
        except (OSError, pa.ArrowException) as exc:
            raise CorruptStream(str(exc)) from exc
        self.decompressed += len(data)
        if self.decompressed > self.cap:
            raise DecompressionLimit(f"the decompressed data exceeds {self.cap} bytes")
        return bytes(data)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
            self._raw.close()
        super().close()


class CorruptStream(Exception):
    """The compressed data is not valid gzip/zstd."""
