"""The worker reads a run's ``context.mcp.call`` requests from a folder the run owns, so it
must never follow what the run planted there: a link to a file outside, a FIFO that would
block it, a request too large to hold."""

from __future__ import annotations

import json
import os
from pathlib import Path

from runyard.worker.mcp_calls import MAX_REQUEST, RunMcpBridge


def _dir_fd(path: Path) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY)


def test_a_request_is_read_only_from_a_regular_file_of_bounded_size(tmp_path: Path) -> None:
    secret = tmp_path / "outside-secret.json"
    secret.write_text(json.dumps({"alias": "stolen"}))
    box = tmp_path / "box"
    box.mkdir()
    (box / "ok.req").write_text(json.dumps({"alias": "mcp_s_t", "params": {}}))
    (box / "link.req").symlink_to(secret)
    os.mkfifo(box / "fifo.req")
    (box / "big.req").write_bytes(b" " * (MAX_REQUEST + 1))
    fd = _dir_fd(box)
    try:
        assert RunMcpBridge._read(fd, "ok.req") == {"alias": "mcp_s_t", "params": {}}
        assert RunMcpBridge._read(fd, "link.req") is None  # not followed
        assert RunMcpBridge._read(fd, "fifo.req") is None  # not read, nor waited on
        assert RunMcpBridge._read(fd, "big.req") is None
        assert RunMcpBridge._read(fd, "missing.req") is None
    finally:
        os.close(fd)
