"""A run's log file: capped, with secret values redacted even across write boundaries."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

REDACTED = b"***"


class RunLog:
    def __init__(self, path: Path, cap_bytes: int, secrets: list[str],
                 on_grow: Callable[[], None] | None = None) -> None:
        """``on_grow`` is called after bytes reach the file (under the log's lock: keep it short)."""
        self.path = path
        self._on_grow = on_grow
        self._fh: BinaryIO | None = None  # opened on the first byte: silent runs write no file
        try:
            self.size = path.stat().st_size  # a retried attempt appends to the same log
        except FileNotFoundError:
            self.size = 0
        self.cap = cap_bytes
        self.truncated = False
        self._secrets = sorted({s.encode() for s in secrets if s}, key=len, reverse=True)
        self._pending = b""
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock:
            data = self._pending + data
            self._pending = b""
            if self._secrets:
                data = self._redact(data)
                # Hold back a tail that could be the start of a secret split across writes.
                hold = self._partial_secret_suffix(data)
                if hold:
                    data, self._pending = data[:-hold], data[-hold:]
            self._append(data)

    def _redact(self, data: bytes) -> bytes:
        for secret in self._secrets:
            data = data.replace(secret, REDACTED)
        return data

    def _partial_secret_suffix(self, data: bytes) -> int:
        longest = 0
        for secret in self._secrets:
            for n in range(min(len(secret) - 1, len(data)), longest, -1):
                if data.endswith(secret[:n]):
                    longest = n
                    break
        return longest

    def _file(self) -> BinaryIO:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("ab", buffering=0)
        return self._fh

    def _append(self, data: bytes) -> None:
        if not data or self.truncated:
            return
        room = self.cap - self.size
        if len(data) > room:
            data = data[:max(room, 0)]
            marker = f"\n[runyard: log truncated at {self.cap} bytes]\n".encode()
            self.truncated = True
            self._file().write(data + marker)
            self.size += len(data) + len(marker)
            return
        self._file().write(data)
        self.size += len(data)
        if self._on_grow is not None:
            self._on_grow()

    def note(self, text: str) -> None:
        """A line from the platform itself (not the tool), e.g. an environment build."""
        with self._lock:
            flushed, self._pending = self._pending, b""
            self._append(flushed)
            line = f"[runyard] {text}\n".encode()
            self._file().write(line)
            self.size += len(line)

    def close(self) -> None:
        with self._lock:
            if self._pending:
                self._append(self._pending)
                self._pending = b""
            if self._fh is not None:
                self._fh.close()


# Deeper output could not be rendered back (orjson stops at 255 levels, and a run's output
# sits inside the run inside a list): such a value is refused, not stored.
MAX_STORED_DEPTH = 200


class ValueTooDeep(ValueError):
    pass


def scrub_value(value: object, secrets: list[str]) -> object:
    """What a run reports, fit to store: secret values replaced by ``***`` anywhere inside a JSON
    value, and strings that cannot be encoded as UTF-8 (lone surrogates such as ``"\\ud800"``, which a
    tool can return) escaped as their ``\\udxxx`` text, so that no stored row breaks a read.
    Raises ``ValueTooDeep`` for arrays/objects nested deeper than ``MAX_STORED_DEPTH``."""
    ordered = sorted((s for s in set(secrets) if s), key=len, reverse=True)
    return _scrub(value, ordered, 0)


def _scrub(value: object, secrets: list[str], depth: int) -> object:
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                value = value.encode("utf-8", "backslashreplace").decode("utf-8")
        for secret in secrets:
            value = value.replace(secret, "***")
        return value
    if isinstance(value, (list, dict)) and depth >= MAX_STORED_DEPTH:
        raise ValueTooDeep(f"nests arrays/objects deeper than {MAX_STORED_DEPTH} levels")
    if isinstance(value, list):
        return [_scrub(v, secrets, depth + 1) for v in value]
    if isinstance(value, dict):
        return {_scrub(k, secrets, depth): _scrub(v, secrets, depth + 1) for k, v in value.items()}  # type: ignore[misc]
    return value


def redact_file(path: Path, secrets: list[str], chunk_bytes: int = 1 << 20) -> bool:
    """Replace secret values by ``***`` in a file, in place; True when one was found.

    Reads in chunks (a secret split across two is still found); the file is rewritten
    only when it holds a secret.
    """
    needles = sorted({s.encode() for s in secrets if s}, key=len, reverse=True)
    if not needles:
        return False
    overlap = len(needles[0]) - 1
    found = False
    with path.open("rb") as fh:
        tail = b""
        while chunk := fh.read(chunk_bytes):
            window = tail + chunk
            if any(needle in window for needle in needles):
                found = True
                break
            tail = window[-overlap:] if overlap else b""
    if not found:
        return False
    tmp = path.with_name(path.name + ".redacting")
    tmp.unlink(missing_ok=True)
    writer = RunLog(tmp, cap_bytes=1 << 62, secrets=secrets)  # its redaction holds split secrets back
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(chunk_bytes):
                writer.write(chunk)
    finally:
        writer.close()
    if tmp.exists():
        tmp.replace(path)
    return True
