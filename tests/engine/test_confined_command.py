"""engine.sandbox.confined_command: a plain command confined like a run (used for environment
builds and stdio MCP servers): protected dirs unreadable, writes only in its own dir, with
``network: false`` no socket at all, ``memory_mb`` caps its address space."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runyard.engine.sandbox import confined_command, landlock_abi

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Landlock and seccomp are Linux's")

PROBE = '''
import os, socket, sys
def attempt(fn):
    try:
        fn()
        return "allowed"
    except (OSError, MemoryError) as exc:
        return "refused"
print(attempt(lambda: open(sys.argv[1]).read()))
print(attempt(lambda: open(os.path.join(sys.argv[2], "x"), "w").write("x")))
print(attempt(lambda: open(os.path.join(sys.argv[3], "x"), "w").write("x")))
print(attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()))
print(attempt(lambda: bytearray(600 << 20)))
'''


def probe(tmp_path: Path, **policy: object) -> list[str]:
    secret_dir, own, other = tmp_path / "data", tmp_path / "own", tmp_path / "other"
    for d in (secret_dir, own, other):
        d.mkdir()
    (secret_dir / "key").write_text("k")
    (tmp_path / "code").mkdir()
    script = tmp_path / "code" / "probe.py"
    script.write_text(PROBE)
    # (a dir holding a protected one is never readable: the script has a dir of its own)
    argv = confined_command({"protected": [str(secret_dir)], "read": [str(script.parent)], "write": [str(own)], **policy},
                            [sys.executable, "-I", str(script), str(secret_dir / "key"), str(own), str(other)])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.skipif(landlock_abi() <= 0, reason="no Landlock in this kernel")
def test_a_confined_command_reads_and_writes_only_what_it_may(tmp_path: Path):
    read, write_own, write_other, sock, memory = probe(tmp_path, network=False, memory_mb=300)
    assert (read, write_own, write_other) == ("refused", "allowed", "refused")
    assert sock == "refused" and memory == "refused"


def test_network_true_allows_sockets(tmp_path: Path):
    *_, sock, memory = probe(tmp_path, network=True)
    assert sock == "allowed" and memory == "allowed"
