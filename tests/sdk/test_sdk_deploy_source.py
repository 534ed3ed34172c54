"""``tools.deploy(fn)`` from anywhere a function can be defined — a module, ``python -c``,
``exec``, the interactive REPL, IPython — shipping, as source, the module-level names the
function uses. Every case deploys to the real server and runs the tool."""

from __future__ import annotations

import hashlib
import json
import linecache
import os
import pty
import re
import select
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from textwrap import shorten
from typing import Any

import pytest

from runyard import Client, NotFoundError
from runyard.sdk._source import SourceError, function_source

# --- a function in a regular module, with a helper, constants, a class and imports --------

GREETING = "total"
WEIGHTS = (1, 2, 3)
LIMITS = {"low": 0, "high": 10}


def _weighted(xs: list[float]) -> float:
    return sum(w * x for w, x in zip(WEIGHTS, xs, strict=False))


class Clamp:
    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high

    def __call__(self, value: float) -> float:
        return max(self.low, min(self.high, value))


def summarize(xs: list[float]) -> dict[str, Any]:
    clamp = Clamp(LIMITS["low"], LIMITS["high"])
    return {GREETING: clamp(_weighted(xs)), "mean": statistics.mean(xs), "label": shorten("a b c d e f", width=7)}


def _sha(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _env(server: Any, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_") and k != "PYTHONSTARTUP"}
    env.update(RUNYARD_API_KEY=server.admin_key, RUNYARD_BASE_URL=server.base_url, **extra)
    return env


def test_module_function_ships_helper_constants_class_and_imports(client: Client, unique: str) -> None:
    code, name = function_source(summarize)
    assert name == "summarize"
    for line in ("import statistics", "from textwrap import shorten", "from typing import Any",
                 "GREETING = 'total'", "WEIGHTS = (1, 2, 3)", "LIMITS = {'low': 0, 'high': 10}",
                 "class Clamp:", "def _weighted(xs: list[float]) -> float:"):
        assert line in code.splitlines(), line
    assert code.rstrip().endswith('"label": shorten("a b c d e f", width=7)}')  # the tool itself last
    assert "pytest" not in code and "hashlib" not in code  # only what the function uses

    tool = client.tools.deploy(summarize, name=f"mod-{unique}")
    assert tool.entrypoint == "summarize"
    assert client.tools.get_version(tool.name, 1).code_sha256 == _sha(code)  # stored as this very source
    run = client.tools.run(tool.name, {"xs": [1.0, 2.0, 3.0]}, raise_on_failure=True)
    assert run.output == summarize([1.0, 2.0, 3.0]) == {"total": 10, "mean": 2.0, "label": "a [...]"}


# --- python -c -------------------------------------------------------------------------------

DASH_C = '''
import json
import math
import sys
from runyard import Client
UNIT = 2.5
def ring(r):
    return round(math.pi * (r * UNIT) ** 2, 3)
def area(r: float = 1.0) -> dict:
    return {"area": ring(r)}
with Client() as c:
    c.tools.deploy(area, name=sys.argv[1])
    run = c.tools.run(sys.argv[1], {"r": 2.0}, raise_on_failure=True)
    print("RESULT", json.dumps(run.output))
'''


def test_python_dash_c(server: Any, client: Client, unique: str) -> None:
    name = f"dash-c-{unique}"
    proc = subprocess.run([sys.executable, "-c", DASH_C, name], env=_env(server), capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^RESULT (.*)$", proc.stdout, re.M).group(1) == json.dumps({"area": 78.54})  # type: ignore[union-attr]
    tool = client.tools.get(name)
    assert (tool.entrypoint, tool.version) == ("area", 1)


# --- exec ------------------------------------------------------------------------------------

EXEC_SOURCE = '''
import string
ALPHABET = string.ascii_lowercase

def shift(ch, k):
    if ch not in ALPHABET:
        return ch
    return ALPHABET[(ALPHABET.index(ch) + k) % len(ALPHABET)]

def caesar(text: str, k: int = 3) -> str:
    return "".join(shift(c, k) for c in text)
'''


def test_exec_string_held_by_the_caller(client: Client, unique: str) -> None:
    namespace: dict[str, Any] = {}
    exec(EXEC_SOURCE, namespace)  # noqa: S102 — the case under test
    caesar = namespace["caesar"]
    assert caesar.__code__.co_filename == "<string>"
    code, _ = function_source(caesar)
    assert "ALPHABET = 'abcdefghijklmnopqrstuvwxyz'" in code and "def shift(ch, k):" in code
    tool = client.tools.deploy(caesar, name=f"exec-{unique}")
    run = client.tools.run(tool.name, {"text": "xyz, abc"}, raise_on_failure=True)
    assert run.output == caesar("xyz, abc") == "abc, def"


def _exec_registered(filename: str) -> Callable[..., Any]:
    source = "import zlib\nSEED = 7\n\ndef checksum(text: str) -> int:\n    return zlib.crc32(text.encode(), SEED)\n"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {}
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102
    return namespace["checksum"]  # the source string is gone with this frame; linecache keeps it


def test_exec_registered_in_linecache(client: Client, unique: str) -> None:
    filename = f"<cell-{unique}>"
    try:
        checksum = _exec_registered(filename)
        tool = client.tools.deploy(checksum, name=f"exec-lc-{unique}")
    finally:
        linecache.cache.pop(filename, None)
    run = client.tools.run(tool.name, {"text": "runyard"}, raise_on_failure=True)
    assert run.output == checksum("runyard")


def _exec_and_forget() -> Callable[..., Any]:
    namespace: dict[str, Any] = {}
    exec(compile("def vanishing_tool_x9(a):\n    return a\n", "<string>", "exec"), namespace)  # noqa: S102
    return namespace["vanishing_tool_x9"]


def test_exec_with_no_source_left_says_what_to_do(client: Client, unique: str) -> None:
    fn = _exec_and_forget()
    with pytest.raises(SourceError) as err:
        client.tools.deploy(fn, name=f"gone-{unique}")
    assert err.value.names == ["vanishing_tool_x9"]
    assert "cannot recover the source of vanishing_tool_x9" in str(err.value)
    assert "deploy(code, name=...)" in str(err.value)
    with pytest.raises(NotFoundError):
        client.tools.get(f"gone-{unique}")


# --- the interactive REPL, through a pseudo-terminal -----------------------------------------

_ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def _drive_repl(lines: list[str], env: dict[str, str], timeout: float = 180) -> str:
    """Type ``lines`` into ``python -q`` on a pty, one after each prompt; return the
    transcript. The REPL reads a tty through readline, as for a person at a terminal."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-q"], stdin=slave, stdout=slave, stderr=slave, env=env,
                            start_new_session=True, close_fds=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        pending = list(lines)
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the REPL exited and the pty closed
                    break
                if not chunk:
                    break
                out += chunk
            tail = _ANSI.sub(b"", out)[-4:]
            if pending and tail in (b">>> ", b"... "):
                os.write(master, pending.pop(0).encode() + b"\n")
                out += b"\x00"  # mark the prompt consumed
            if not pending and proc.poll() is not None:
                break
        else:
            raise AssertionError(f"REPL did not finish:\n{out.decode(errors='replace')}")
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(master)
    return _ANSI.sub(b"", out).replace(b"\x00", b"").decode(errors="replace")


def test_repl(server: Any, unique: str, tmp_path: Path) -> None:
    name = f"repl-{unique}"
    lines = [
        "import math",
        "SIDES = 6",
        "def apothem(side):",
        "    return side / (2 * math.tan(math.pi / SIDES))",
        "",
        "def hexagon_area(side: float) -> float:",
        "    return round(SIDES * side * apothem(side) / 2, 4)",
        "",
        "import readline, sys",
        "print('FILE', hexagon_area.__code__.co_filename, 'HISTORY', readline.get_current_history_length() > 0)",
        "from runyard import Client",
        "c = Client()",
        f"t = c.tools.deploy(hexagon_area, name={name!r})",
        "r = c.tools.run(t.name, {'side': 2.0}, raise_on_failure=True)",
        "print('RESULT', r.output, t.version)",
        "exit()",
    ]
    transcript = _drive_repl(lines, _env(server, HOME=str(tmp_path), TERM="dumb"))
    assert "FILE <stdin> HISTORY True" in transcript, transcript  # the interactive path, not a file
    result = re.search(r"^RESULT (\S+) (\d+)\s*$", transcript, re.M)
    assert result is not None, transcript
    assert float(result.group(1)) == 10.3923 and result.group(2) == "1"


# --- IPython / Jupyter -----------------------------------------------------------------------

IPYTHON_DRIVER = '''
import sys
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
cells = [
    "import statistics as st\\nWEIGHTS = [1, 2, 3]",
    "class Acc:\\n    def __init__(self):\\n        self.total = 0\\n"
    "    def add(self, v):\\n        self.total += v\\n        return self",
    "def score(xs: list[float]) -> float:\\n    a = Acc()\\n    for w, x in zip(WEIGHTS, xs):\\n"
    "        a.add(w * x)\\n    return st.mean([a.total, 0.0])",
    "print('FILE', score.__code__.co_filename)",
    "import sys\\nfrom runyard import Client\\nc = Client()\\nt = c.tools.deploy(score, name=sys.argv[1])",
    "r = c.tools.run(t.name, {'xs': [1.0, 1.0, 1.0]}, raise_on_failure=True)\\nprint('RESULT', r.output)",
]
for cell in cells:
    shell.run_cell(cell, store_history=True).raise_error()  # as a Jupyter kernel runs a cell
'''


def test_ipython_cells(server: Any, unique: str, tmp_path: Path) -> None:
    """Real IPython: cells run by ``InteractiveShell.run_cell``, as a Jupyter kernel runs
    them (registered in linecache, kept in ``_ih``); the class comes from the cell history."""
    proc = subprocess.run([sys.executable, "-c", IPYTHON_DRIVER, f"ipy-{unique}"],
                          env=_env(server, IPYTHONDIR=str(tmp_path / "ipython")), capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^FILE <ipython-input-", proc.stdout, re.M), proc.stdout
    assert "RESULT 3.0" in proc.stdout.splitlines(), proc.stdout


# --- what cannot be shipped -------------------------------------------------------------------

_LOCK = threading.Lock()
_square = lambda v: v * v  # noqa: E731 — the case under test


def _make_scaler(k: int) -> Callable[[int], int]:
    def scale(v: int) -> int:
        return v * k

    return scale


_scale = _make_scaler(3)


def uses_unshippable(x: int) -> int:
    with _LOCK:
        return _square(x) + _scale(x)


def test_unresolvable_names_are_named(client: Client, unique: str) -> None:
    with pytest.raises(SourceError) as err:
        client.tools.deploy(uses_unshippable, name=f"bad-{unique}")
    assert isinstance(err.value, ValueError)
    assert err.value.names == ["_LOCK", "_scale", "_square"]
    message = str(err.value)
    assert "_LOCK: a lock object" in message
    assert "_scale: a closure over k" in message
    assert "_square: a lambda assigned at runtime; write it as a def" in message
    assert "pass them in as inputs" in message
    with pytest.raises(NotFoundError):
        client.tools.get(f"bad-{unique}")

    factor = 2

    def inner(x: int) -> int:
        return x * factor

    with pytest.raises(SourceError, match=r"closure over factor.*pass factor in as inputs") as err:
        client.tools.deploy(inner, name=f"bad2-{unique}")
    assert err.value.names == ["factor"]


# --- determinism -----------------------------------------------------------------------------

DETERMINISM_MODULE = '''
import json
TAGS = {"zeta", "alpha", "mid", "beta", "omega"}
FROZEN = frozenset({"q", "b", "x"})
ORDER = {"b": 2, "a": 1}

def zed(x):
    return sorted(TAGS)[x % len(TAGS)]

def alpha(x):
    return zed(x) + str(len(FROZEN))

def tool(x: int) -> str:
    return json.dumps([alpha(x), ORDER])
'''

DEPLOY_IT = '''
import hashlib, sys
sys.path.insert(0, sys.argv[2])
import detmod
from runyard import Client
from runyard.sdk._source import function_source
with Client() as c:
    t = c.tools.deploy(detmod.tool, name=sys.argv[1])
    print("DEPLOYED", t.version, hashlib.sha256(function_source(detmod.tool)[0].encode()).hexdigest())
'''


def test_same_function_same_source_no_new_version(server: Any, client: Client, unique: str,
                                                  tmp_path: Path) -> None:
    (tmp_path / "detmod.py").write_text(DETERMINISM_MODULE)
    name = f"det-{unique}"
    seen = []
    for seed in ("1", "2", "3"):  # set iteration order differs between these processes
        proc = subprocess.run([sys.executable, "-c", DEPLOY_IT, name, str(tmp_path)],
                              env=_env(server, PYTHONHASHSEED=seed), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        seen.append(re.search(r"^DEPLOYED (\d+) (\w+)$", proc.stdout, re.M).groups())  # type: ignore[union-attr]
    assert seen[0] == seen[1] == seen[2] and seen[0][0] == "1", seen  # one version, one source
    assert client.tools.get_version(name, 1).code_sha256 == seen[0][1]
    assert [v.version for v in client.tools.versions(name)] == [1]
    run = client.tools.run(name, {"x": 1}, raise_on_failure=True)
    assert run.output == json.dumps(["beta3", {"b": 2, "a": 1}])

    # In-process too: the same text every time, sets written sorted.
    first, _ = function_source(summarize)
    assert function_source(summarize)[0] == first
    sys.path.insert(0, str(tmp_path))
    try:
        import detmod  # type: ignore[import-not-found]

        code = function_source(detmod.tool)[0]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("detmod", None)
    assert "TAGS = {'alpha', 'beta', 'mid', 'omega', 'zeta'}" in code
    assert "FROZEN = frozenset({'b', 'q', 'x'})" in code
    assert code.index("def alpha") < code.index("def zed") < code.index("def tool")  # by name, the tool last
    assert textwrap.dedent(code) == code
