"""Empty run dirs recycled for later runs (``engine/workdirs.py``) instead of removed and made again."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest

from runyard.engine.executor import ExecRequest, Executor, Limits
from runyard.engine.workdirs import POOL_PREFIX, DirRecycler, pool_name
from tests.support.waiting import wait_for

TOOL = """
import os

def main(chmod: bool = False, tmp_file: bool = False, artifact: bool = False, fail: bool = False):
    if fail:
        raise RuntimeError("boom")
    seen = {"inode": os.stat(".").st_ino, "cwd": os.getcwd(), "pid": os.getpid(), "entries": sorted(os.listdir(".")),
            "tmp": os.listdir(os.environ["TMPDIR"]), "out": os.listdir(os.environ["RUNYARD_OUTPUT_DIR"])}
    if chmod:
        os.chmod(".", 0o700)
    if tmp_file:
        open(os.path.join(os.environ["TMPDIR"], "left.txt"), "w").write("x")
    if artifact:
        open(os.path.join(os.environ["RUNYARD_OUTPUT_DIR"], "a.txt"), "w").write("x")
    return seen
"""


@pytest.fixture
def setup(tmp_path: Path):
    ex = Executor(tmp_path / "data", uv_offline=True, preload_servers=0)
    ex.start()
    src = tmp_path / "src"
    src.mkdir()
    (src / "tool.py").write_text(textwrap.dedent(TOOL))
    counter = [0]

    def request(reuse: bool = False, **inputs: object) -> ExecRequest:
        counter[0] += 1
        # where the worker puts them (a reused version's runs: in a dir of their own)
        workdir = tmp_path / "data" / "work" / ("reuse-v1" if reuse else "") / f"run{counter[0]}"
        return ExecRequest(run_id=f"run{counter[0]}", source_dir=src, module="tool", entrypoint="main",
                           inputs=dict(inputs), env={}, workdir=workdir,
                           output_dir=workdir.with_name(workdir.name + ".out"), limits=Limits(timeout_s=20),
                           reuse_process=reuse)

    yield ex, request
    ex.close()


def _kept(ex: Executor) -> int:
    assert ex.recycler is not None
    return len(ex.recycler._free)



def _free(ex: Executor, n: int, within: float = 10.0) -> bool:
    return wait_for(lambda: _kept(ex) == n, within)


def test_a_later_run_gets_the_dirs_an_earlier_run_left_empty(setup) -> None:
    ex, request = setup
    first = request()
    done = ex.submit(first).wait(20)
    assert done.status == "succeeded" and done.dirs_removed  # nothing for the worker to clean
    assert _free(ex, 1)  # given back once its process exited
    assert not first.workdir.exists() and not first.output_dir.exists()
    second = request()
    seen = ex.submit(second).wait(20).output
    assert seen["inode"] == done.output["inode"]  # the same directory, renamed into place
    assert seen["cwd"] == str(second.workdir)
    assert (seen["entries"], seen["tmp"], seen["out"]) == ([".tmp"], [], [])
    assert _free(ex, 1)


def test_dirs_with_something_left_in_them_go_to_the_worker(setup) -> None:
    ex, request = setup
    executions = []
    for inputs in ({"tmp_file": True}, {"artifact": True}):
        req = request(**inputs)
        assert ex.recycler is not None and ex.recycler.covers(str(req.workdir), str(req.output_dir))
        execution = ex.submit(req)  # so the execution holds the recycler until it settles
        done = execution.wait(20)
        assert done.status == "succeeded" and not done.dirs_removed  # the worker collects and removes
        assert req.workdir.exists() and req.output_dir.exists()
        executions.append(execution)
    # An execution lets go of the recycler once its process is gone and its dirs are
    # settled: only from then on is "nothing went to the pool" a fact, not a race.
    assert wait_for(lambda: all(e._recycler is None for e in executions), 10)
    assert _kept(ex) == 0


def test_dirs_a_run_changed_are_removed_not_kept(setup) -> None:
    ex, request = setup
    req = request(chmod=True)
    done = ex.submit(req).wait(20)
    assert done.status == "succeeded" and done.dirs_removed
    deadline = time.monotonic() + 10
    while req.workdir.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not req.workdir.exists() and not req.output_dir.exists()
    assert _kept(ex) == 0


def test_a_run_whose_work_dir_exists_already_makes_its_own(setup) -> None:
    """The worker lays out input files before the run: the recycled set cannot go there."""
    ex, request = setup
    assert ex.submit(request()).wait(20).status == "succeeded"
    assert _free(ex, 1)
    assert ex.recycler is not None
    unit = ex.recycler._free[-1]
    req = request()
    (req.workdir / "inputs").mkdir(parents=True)
    done = ex.submit(req).wait(20)
    assert done.status == "succeeded"
    assert done.output["entries"] == [".tmp", "inputs"] and done.output["out"] == []
    assert not os.path.exists(unit)  # the set it could not use is gone


def test_a_reused_process_keeps_its_runs_dirs_for_its_next_run(setup, tmp_path: Path) -> None:
    ex, request = setup
    first = ex.submit(request(reuse=True)).wait(20)
    assert first.status == "succeeded" and first.dirs_removed
    held = tmp_path / "data" / "work" / "reuse-v1" / pool_name(first.output["pid"], "held")
    assert wait_for(held.exists)
    second_req = request(reuse=True)
    second = ex.submit(second_req).wait(20).output
    assert (second["pid"], second["inode"]) == (first.output["pid"], first.output["inode"])
    assert second["cwd"] == str(second_req.workdir)
    assert (second["entries"], second["tmp"], second["out"]) == ([".tmp"], [], [])
    assert wait_for(held.exists)
    failing = request(reuse=True, fail=True)  # the process retires: nothing is held any more
    assert ex.submit(failing).wait(20).status == "failed"
    assert wait_for(lambda: not held.exists() and not failing.workdir.exists())
    assert _kept(ex) == 0  # the pool takes dirs of exited processes only


def test_sets_are_kept_only_as_made(tmp_path: Path) -> None:
    recycler = DirRecycler(tmp_path / "work")
    try:
        def made(name: str) -> tuple[str, str]:
            work = tmp_path / "work" / name
            (work / ".tmp").mkdir(parents=True)
            out = tmp_path / "work" / f"{name}.out"
            out.mkdir()
            return str(work), str(out)

        good = made("good")
        recycler.give_back(*good)
        assert len(recycler._free) == 1 and not os.path.exists(good[0])
        linked = made("linked")
        os.rmdir(os.path.join(linked[0], ".tmp"))
        os.symlink(str(tmp_path), os.path.join(linked[0], ".tmp"))
        recycler.give_back(*linked)
        assert len(recycler._free) == 1
        assert not recycler.covers("/elsewhere/run", str(tmp_path / "work" / "run.out"))
        assert recycler.covers(str(tmp_path / "work" / "run"), str(tmp_path / "work" / "run.out"))
    finally:
        recycler.close()
    assert not os.path.exists(recycler.pool)


def test_pools_of_dead_executors_are_removed(tmp_path: Path) -> None:
    root = tmp_path / "work"
    dead = root / pool_name(999999999, "abcd") / "u1" / ".tmp"
    dead.mkdir(parents=True)
    held = root / pool_name(999999998, "held") / ".tmp"  # a reused process's, killed while idle
    held.mkdir(parents=True)
    live = root / pool_name(os.getpid(), "abcd")
    live.mkdir()
    elsewhere = root / f"{POOL_PREFIX}999999997-abcd-another-host"  # a shared data dir: not ours to judge
    elsewhere.mkdir()
    recycler = DirRecycler(root)
    try:
        deadline = time.monotonic() + 10
        while dead.parent.parent.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not dead.parent.parent.exists()
        assert wait_for(lambda: not held.parent.exists())
        assert live.exists() and elsewhere.exists()
    finally:
        recycler.close()


def test_without_a_pool_runs_make_and_remove_their_dirs(tmp_path: Path) -> None:
    """Recycling is only an optimisation: an executor that cannot make its pool still runs."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "work").write_text("not a directory")
    ex = Executor(tmp_path / "data", uv_offline=True, preload_servers=0)
    try:
        assert ex.recycler is None
        src = tmp_path / "src"
        src.mkdir()
        (src / "tool.py").write_text("def main():\n    return 'ok'\n")
        workdir = tmp_path / "runs" / "r1"
        req = ExecRequest(run_id="r1", source_dir=src, module="tool", entrypoint="main", inputs={}, env={},
                          workdir=workdir, output_dir=workdir.with_name("r1.out"), limits=Limits(timeout_s=20))
        done = ex.submit(req).wait(20)
        assert (done.status, done.output, done.dirs_removed) == ("succeeded", "ok", True)
        deadline = time.monotonic() + 10  # the child removes them right after its result
        while (workdir.exists() or req.output_dir.exists()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not workdir.exists() and not req.output_dir.exists()
    finally:
        ex.close()
