"""On a terminal, ``runyard run`` shows the progress a tool reports while it waits."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

PROGRESS_TOOL = '''
import time
from runyard import context

def main(steps: int = 6) -> str:
    for i in range(steps):
        context.progress(i / steps, f"step {i} of {steps}")
        time.sleep(1.0)
    return "done"
'''


@pytest.mark.slow
def test_run_on_a_tty_shows_progress(server: Any, tmp_path: Path, unique: str) -> None:
    env = {**os.environ, "RUNYARD_BASE_URL": server.base_url, "RUNYARD_API_KEY": server.admin_key,
           "RUNYARD_CONFIG": str(tmp_path / "c.json"), "COLUMNS": "120", "TERM": "xterm"}
    tool = tmp_path / f"prog_{unique}.py"
    tool.write_text(PROGRESS_TOOL)
    cmd = [sys.executable, "-m", "runyard.cli.main"]
    subprocess.run([*cmd, "deploy", str(tool)], check=True, env=env, capture_output=True, timeout=60)

    master, slave = pty.openpty()
    proc = subprocess.Popen([*cmd, "run", f"prog_{unique}"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=slave, env=env)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    out, _ = proc.communicate(timeout=30)
    os.close(master)
    assert proc.returncode == 0
    assert out == b"done\n"  # stdout stays clean: the bar lives on the terminal's stderr
    text = seen.decode(errors="replace")
    assert "running" in text
    assert "step " in text and " of 6" in text
