"""The run sandbox, tried as an attacker would: each attack runs inside a tool and must fail.

The server runs as this test's user (root in CI), as ``runyard up`` does on a fresh VM.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.api import deploy, run, wait_status
from tests.support.processes import alive
from tests.support.servers import Server

# Landlock, seccomp and cgroups exist only on Linux: elsewhere runyard runs without a sandbox
# (with a warning per missing protection, docs/sandbox.md), so there is nothing to attack.
pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="the sandbox is made of Linux kernel features (Landlock, seccomp, cgroups); other systems have none")

PROBE = '''
import glob, os, socket

def attempt(fn):
    try:
        value = fn()
        return "ALLOWED: " + str(value)[:200]
    except Exception as exc:  # noqa
        return f"denied: {type(exc).__name__}: {exc}"

def read(path):
    with open(path, "rb") as fh:
        return fh.read(64)

def write(path):
    with open(path, "w") as fh:
        fh.write("pwned")
    return path

def connect(host, port):
    with socket.create_connection((host, port), timeout=2):
        return "connected"

def main(data_dir: str, server_pid: int, api_port: int, other_run: str = "", other_code: str = "") -> dict:
    here = os.getcwd()
    rel = os.path.join(here, "..", "..")
    out = {
        "admin_key": attempt(lambda: read(os.path.join(data_dir, "admin-key"))),
        "admin_key_relative": attempt(lambda: read(os.path.join(rel, "admin-key"))),
        "secret_key": attempt(lambda: read(os.path.join(data_dir, "secret.key"))),
        "database": attempt(lambda: read(os.path.join(data_dir, "runyard.db"))),
        "list_data_dir": attempt(lambda: os.listdir(data_dir)),
        "server_environ": attempt(lambda: read(f"/proc/{server_pid}/environ")),
        "server_cmdline": attempt(lambda: read(f"/proc/{server_pid}/cmdline")),
        "etc_shadow": attempt(lambda: read("/etc/shadow")),
        "write_tmp": attempt(lambda: write("/tmp/runyard-sandbox-probe")),
        "write_data_dir": attempt(lambda: write(os.path.join(data_dir, "pwned"))),
        "write_own_code": attempt(lambda: write(os.path.join(os.path.dirname(__file__), "main.py"))),
        "other_code": attempt(lambda: write(other_code)) if other_code else "skipped",
        "other_code_glob": attempt(lambda: glob.glob(os.path.join(data_dir, "cache", "code", "*"))
                                   or (_ for _ in ()).throw(PermissionError("nothing listed"))),
        "other_run": attempt(lambda: os.listdir(os.path.join(data_dir, "work", other_run))) if other_run else "skipped",
        "signal_server": attempt(lambda: os.kill(server_pid, 0)),
        "postgres_tcp": attempt(lambda: connect("127.0.0.1", 5432)),
        "postgres_unix": attempt(lambda: socket.socket(socket.AF_UNIX).connect("/var/run/postgresql/.s.PGSQL.5432")),
        "api_tcp": attempt(lambda: connect("127.0.0.1", api_port)),
        "api_zero_addr": attempt(lambda: connect("0.0.0.0", api_port)),
        "api_ipv6": attempt(lambda: connect("::1", api_port)),
        "redis_udp_loopback": attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", 6379))),
        "outside_udp": attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("192.0.2.1", 9))),
        "unshare_user": attempt(lambda: os.unshare(getattr(os, "CLONE_NEWUSER", 0x10000000))
                                 if hasattr(os, "unshare") else (_ for _ in ()).throw(PermissionError("no unshare"))),
        "own_work_dir": attempt(lambda: write(os.path.join(here, "mine.txt"))),
        "own_tmp": attempt(lambda: write(os.path.join(os.environ["TMPDIR"], "mine.txt"))),
        "own_output": attempt(lambda: write(os.path.join(os.environ["RUNYARD_OUTPUT_DIR"], "result.txt"))),
        "stdlib": attempt(lambda: __import__("json").dumps({"ok": 1})),
        "uid": os.getuid(),
    }
    return out
'''


def _server_pid(server: Server) -> int:
    assert server.proc is not None
    return server.proc.pid


def test_a_tool_cannot_reach_the_platform(server: Server, api: httpx.Client, unique: str) -> None:
    """Keys, database, environment, other runs, other tools' code, host services: all denied;
    its own dirs, the stdlib and the outside network still work."""
    victim = deploy(api, f"victim-{unique}", "import time\n\ndef main(s: float = 0):\n    time.sleep(s)\n    return 1\n")
    run(api, victim["name"], {"s": 0})  # its code is now laid out in the node's code cache
    code_dirs = list((server.data_dir / "cache" / "code").glob("*"))
    assert code_dirs, "the code cache is where the issue's attack rewrote another tool's code"
    other_code = str(next(iter(code_dirs[0].glob("*.py"))))
    pending = api.post("/runs", json={"tool": victim["name"], "inputs": {"s": 30}}).json()
    assert wait_status(api, pending["id"], {"running"})["status"] == "running"
    probe = deploy(api, f"probe-{unique}", PROBE)
    result = run(api, probe["name"], {"data_dir": str(server.data_dir), "server_pid": _server_pid(server),
                                      "api_port": server.port, "other_run": pending["id"],
                                      "other_code": other_code})
    api.post(f"/runs/{pending['id']}/cancel")
    assert result["status"] == "succeeded", result
    out = result["output"]
    for attack in ("admin_key", "admin_key_relative", "secret_key", "database", "list_data_dir",
                   "server_environ", "server_cmdline", "etc_shadow", "write_tmp", "write_data_dir",
                   "write_own_code", "other_code", "other_code_glob", "other_run", "signal_server",
                   "postgres_tcp", "postgres_unix", "api_tcp", "api_zero_addr", "api_ipv6",
                   "redis_udp_loopback", "unshare_user"):
        assert out[attack].startswith("denied"), (attack, out[attack])
    for allowed in ("own_work_dir", "own_tmp", "own_output", "stdlib", "outside_udp"):
        assert out[allowed].startswith("ALLOWED"), (allowed, out[allowed])
    assert "pwned" not in Path(other_code).read_text()
    assert not Path("/tmp/runyard-sandbox-probe").exists()


SPAWNER = '''
import os, subprocess, time

def main() -> dict:
    daemon = subprocess.Popen(["sleep", "300"], start_new_session=True)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # a double fork: the grandchild is reparented away from the run
        grandchild = os.fork()
        if grandchild == 0:
            os.setsid()
            time.sleep(300)
            os._exit(0)
        os.write(write_end, str(grandchild).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    os.close(write_end)
    return {"daemon": daemon.pid, "grandchild": int(os.read(read_end, 32))}
'''


def test_processes_a_run_started_die_with_it(api: httpx.Client, unique: str) -> None:
    tool = deploy(api, f"spawner-{unique}", SPAWNER)
    result = run(api, tool["name"])
    assert result["status"] == "succeeded", result
    pids = [result["output"]["daemon"], result["output"]["grandchild"]]
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in pids if alive(pid)], "a daemon outlived its run"


FORKER = '''
import os, time

def main(n: int = 400) -> dict:
    pids, error = [], None
    for _ in range(n):
        try:
            pid = os.fork()
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc}"
            break
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        pids.append(pid)
    return {"forked": len(pids), "error": error}
'''


def test_a_run_has_a_process_cap_even_as_root(server: Server, api: httpx.Client, unique: str) -> None:
    tool = deploy(api, f"forker-{unique}", FORKER)
    result = run(api, tool["name"], {"n": 400})
    assert result["status"] == "succeeded", result
    assert result["output"]["forked"] < 300 and result["output"]["error"], result["output"]


NO_NET = '''
import socket

def main() -> str:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    except OSError as exc:
        return f"denied: {exc}"
    return "ALLOWED"
'''


def test_network_false_cuts_a_run_off(api: httpx.Client, unique: str) -> None:
    off = deploy(api, f"nonet-{unique}", NO_NET, network=False)
    assert off["network"] is False
    assert run(api, off["name"])["output"].startswith("denied")
    on = deploy(api, f"net-{unique}", NO_NET)
    assert on["network"] is True
    assert run(api, on["name"])["output"] == "ALLOWED"
    bad = api.post("/tools", json={"name": f"badnet-{unique}", "code": NO_NET, "network": "no"})
    assert bad.status_code == 400


MEMORY = '''
import json
import os

def main(children: int = 3, mb: int = 70) -> list:
    pids = []
    for _ in range(children):
        pid = os.fork()
        if pid == 0:
            block = bytearray(mb * 1024 * 1024)
            for i in range(0, len(block), 4096):
                block[i] = 1
            import time
            time.sleep(5)
            os._exit(0)
        pids.append(pid)
    return [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
'''


def test_the_memory_cap_is_for_the_run_as_a_whole(api: httpx.Client, unique: str) -> None:
    """Three processes of 70 MB each pass a per-process 128 MB limit, not the run's."""
    tool = deploy(api, f"memhog-{unique}", MEMORY, memory_mb=128)
    result = run(api, tool["name"])
    if result["status"] == "succeeded":
        assert -9 in result["output"], result["output"]  # the kernel killed one of them
    else:
        assert result["error"]["type"] == "memory_limit_exceeded", result["error"]


SUICIDE = '''
import os, signal

def main() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
'''


def test_a_sigkill_is_a_crash_unless_the_memory_cap_was_hit(api: httpx.Client, unique: str) -> None:
    tool = deploy(api, f"sigkill-{unique}", SUICIDE, memory_mb=256)
    result = run(api, tool["name"])
    assert result["status"] == "failed"
    assert result["error"]["type"] == "process_crashed", result["error"]
    hog = deploy(api, f"hog-{unique}", "def main():\n    b = bytearray(1)\n    while True:\n"
                                       "        b += bytearray(16 * 1024 * 1024)\n", memory_mb=64)
    result = run(api, hog["name"])
    assert result["error"]["type"] == "memory_limit_exceeded", result["error"]


INSPECT_LEAK = '''
import json
import os
LEAK = ""
for path in ("../admin-key", "{data}/admin-key", "{data}/secret.key"):
    try:
        LEAK += open(path).read()
    except OSError:
        pass
print("LEAKED:" + LEAK if LEAK else "nothing")

def main(x: int) -> str:
    return LEAK
'''


def test_deploy_time_inspection_is_sandboxed(server: Server, api: httpx.Client, unique: str) -> None:
    """Inferring the schema imports the tool: that import is confined like a run."""
    code = INSPECT_LEAK.replace("{data}", str(server.data_dir))
    tool = deploy(api, f"inspectleak-{unique}", code)
    assert tool["input_schema"]["properties"]["x"]["type"] == "integer"
    assert run(api, tool["name"], {"x": 1})["output"] == ""


def test_doctor_lists_every_protection_active(server: Server) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    env["RUNYARD_DATA_DIR"] = str(server.data_dir)
    out = subprocess.run([sys.executable, "-m", "runyard.cli.main", "doctor", "--json"], capture_output=True,
                         text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    import json

    report = json.loads(out.stdout)
    assert set(report["protections"]) >= {"filesystem", "no_privileges", "syscall_filter", "memory_cap",
                                          "pids_cap", "run_kill", "host_services_blocked", "confinement_verified"}
    missing = {k: v for k, v in report["protections"].items() if not v.startswith("active")}
    assert not missing, missing


def test_readyz_details_only_for_admins(server: Server, api: httpx.Client) -> None:
    anonymous = httpx.get(f"{server.base_url}/readyz").json()
    assert "sandbox" not in anonymous
    admin = httpx.get(f"{server.base_url}/readyz", headers={"Authorization": f"Bearer {server.admin_key}"}).json()
    assert set(admin["sandbox"]) >= {"filesystem", "run_kill"}
    viewer = api.post("/tokens", json={"name": "viewer-readyz", "role": "viewer"}).json()
    seen = httpx.get(f"{server.base_url}/readyz", headers={"Authorization": f"Bearer {viewer['key']}"}).json()
    assert "sandbox" not in seen


def test_strict_mode_refuses_to_start_without_a_protection(tmp_path: Path) -> None:
    server = Server(data_dir=tmp_path / "data", extra_env={"RUNYARD_SANDBOX": "strict",
                                                           "RUNYARD_SANDBOX_HOST_FILTER": "off"})
    server.start(wait_ready=False)
    try:
        assert server.proc is not None
        code = server.proc.wait(60)
        assert code != 0
        assert "strict" in server.logs() and "host_services_blocked" in server.logs()
    finally:
        server.stop()


BACKEND = '''
"""An in-tree PEP 517 backend: its code runs when uv builds the package (at environment build)."""
import base64, hashlib, os, socket, zipfile

def _attempt(fn):
    try:
        return "ALLOWED: " + str(fn())[:100]
    except Exception as exc:
        return f"denied: {type(exc).__name__}"

def _connect():
    with socket.create_connection(("127.0.0.1", 5432), timeout=2):
        return "connected"

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    found = {
        "admin_key": _attempt(lambda: open(os.path.join(DATA_DIR, "admin-key")).read()),
        "secret_key": _attempt(lambda: open(os.path.join(DATA_DIR, "secret.key")).read()),
        "env_admin_key": "ALLOWED" if "RUNYARD_ADMIN_KEY" in os.environ else "denied",
        "postgres": _attempt(_connect),
        "write_outside": _attempt(lambda: open("/tmp/runyard-build-probe", "w").write("x")),
    }
    name = "evilpkg-1.0-py3-none-any.whl"
    files = {
        "evilpkg/__init__.py": f"FOUND = {found!r}\\n",
        # Run by site at every start of the venv's interpreter (a fork server's too, unless it
        # never loads the venv's site-packages unconfined).
        "evilpkg.pth": "import os; open('/tmp/runyard-pth-probe', 'w').write('x')\\n",
        "evilpkg-1.0.dist-info/METADATA": "Metadata-Version: 2.1\\nName: evilpkg\\nVersion: 1.0\\n",
        "evilpkg-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
        for path, text in files.items():
            data = text.encode()
            zf.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
        record.append("evilpkg-1.0.dist-info/RECORD,,")
        zf.writestr("evilpkg-1.0.dist-info/RECORD", "\\n".join(record) + "\\n")
    return name
'''


def test_environment_builds_are_sandboxed(server: Server, api: httpx.Client, unique: str, tmp_path: Path) -> None:
    """A requirement's build script runs confined: no keys, no server environment, no host services."""
    pkg = tmp_path / "evilpkg"
    pkg.mkdir()
    (pkg / "pyproject.toml").write_text('[build-system]\nrequires = []\nbuild-backend = "backend"\n'
                                        'backend-path = ["."]\n\n[project]\nname = "evilpkg"\nversion = "1.0"\n')
    (pkg / "backend.py").write_text(BACKEND.replace("DATA_DIR", repr(str(server.data_dir))))
    tool = deploy(api, f"evilbuild-{unique}", "def main() -> dict:\n    import evilpkg\n    return evilpkg.FOUND\n",
                  requirements=[str(pkg)])
    for _ in range(3):  # the first execs the venv's interpreter; later ones fork from a server under it
        result = run(api, tool["name"], wait=120)
        assert result["status"] == "succeeded", result
        for attack, outcome in result["output"].items():
            assert outcome.startswith("denied"), (attack, outcome)
    assert not Path("/tmp/runyard-build-probe").exists()
    assert not Path("/tmp/runyard-pth-probe").exists()


def test_a_requirement_cannot_point_a_build_into_the_data_dir(server: Server, api: httpx.Client,
                                                              unique: str) -> None:
    """A local-path requirement inside the data dir is not made readable to the build: uv
    cannot read the key it names, and the build log it returns holds none of it."""
    key = (server.data_dir / "secret.key").read_text().strip()
    tool = deploy(api, f"keyreq-{unique}", "def main():\n    return 1\n",
                  requirements=[str(server.data_dir / "secret.key")])
    result = run(api, tool["name"], wait=120)
    assert result["status"] == "failed"
    assert result["error"]["type"] == "environment_build_failed", result["error"]
    assert key not in json.dumps(result) and key[:12] not in json.dumps(result)
