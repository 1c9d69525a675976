"""The read-ahead helper: a real second process shares a run's reading, and is never needed.

``sources/readahead.py`` hands groups to a helper interpreter and reads the
rest here. Whatever the helper does (reads, dies, sends garbage, never
starts), the groups come out complete, in order, and the same as read here;
a fixture run's report is byte-identical with and without it; a killed run
leaves no helper behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from feedbackctl.errors import UsageError
from feedbackctl.sources import readahead
from tests.clirun import ROOT
from tests.gitutil import RepoFactory
from tests.test_batches import fleet_files, fleet_metrics, run

Read = Callable[[int], tuple[int, int]]  # a group here is its own index


def make_reader(parent: int, delay: float, misbehave_at: int | None = None, how: str = "") -> Read:
    """Group k -> (k, the pid that read it); in the helper, groups from ``misbehave_at`` on go wrong ``how``.

    From, not at: which groups the helper gets depends on timing, so the first one
    it gets at or past ``misbehave_at`` is the one that goes wrong.
    """

    def read(k: int) -> tuple[int, int]:
        time.sleep(delay)
        if misbehave_at is not None and k >= misbehave_at and os.getpid() != parent:
            out = sys.stdout.buffer
            if how == "dies":
                os._exit(3)
            if how == "hangs":
                time.sleep(3600)
            if how == "huge":  # a length no batch has, then bytes that are no pickle
                out.write(b"\xff" * 8 + b"junk")
            elif how == "torn":  # a well-framed message whose body is no pickle
                out.write((4).to_bytes(8, "little") + b"junk")
            elif how == "foreign":  # a pickle, but not (index, value)
                import pickle

                body = pickle.dumps("hello")
                out.write(len(body).to_bytes(8, "little") + body)
            out.flush()
        return k, os.getpid()

    return read


def groups(count: int, delay: float, misbehave_at: int | None = None, how: str = "") -> list[tuple[int, int]]:
    args = (os.getpid(), delay, misbehave_at, how)
    setup = {"make": f"{__name__}:make_reader", "args": args}
    return list(readahead.read_groups(range(count), make_reader(*args), setup))


def test_the_helper_reads_groups_and_the_order_is_kept() -> None:
    got = groups(24, 0.02)
    assert [k for k, _ in got] == list(range(24))
    readers = {pid for _, pid in got}
    assert os.getpid() in readers  # this process read some (the first, at least)
    assert len(readers) == 2, readers  # and a real second process read others


@pytest.mark.parametrize("how", ["dies", "huge", "torn", "foreign"])
def test_a_helper_that_goes_wrong_is_replaced_by_reading_here(how: str) -> None:
    got = groups(16, 0.02, misbehave_at=6, how=how)
    assert [k for k, _ in got] == list(range(16))
    # From the group that went wrong on, everything was read here.
    assert all(pid == os.getpid() for k, pid in got if k >= 6), got


def test_a_helper_that_stops_answering_is_given_up_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readahead, "PATIENCE_SECONDS", 1.0)
    started = time.monotonic()
    got = groups(10, 0.02, misbehave_at=4, how="hangs")
    assert [k for k, _ in got] == list(range(10))
    assert all(pid == os.getpid() for k, pid in got if k >= 4), got
    assert time.monotonic() - started < 60  # given up on after its patience, not after the hour


def test_a_helper_that_cannot_start_leaves_all_the_reading_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", str(Path("/nonexistent/python")))
    got = groups(6, 0.0)
    assert got == [(k, os.getpid()) for k in range(6)]


def test_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(readahead.READ_AHEAD_ENV, "1")
    assert readahead.wanted(2)
    assert not readahead.wanted(1)  # one group: nothing to read ahead
    monkeypatch.setenv(readahead.READ_AHEAD_ENV, "0")
    assert not readahead.wanted(20)
    monkeypatch.setenv(readahead.READ_AHEAD_ENV, "yes")
    with pytest.raises(UsageError, match="FEEDBACKCTL_READ_AHEAD='yes' is neither 0"):
        readahead.wanted(20)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setenv(readahead.READ_AHEAD_ENV, "1")
    assert not readahead.wanted(20)  # a frozen program's executable takes no -c


def test_a_fixture_run_reads_the_same_with_and_without_the_helper(
    repo_factory: RepoFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work, _ = repo_factory(fleet_files())
    metrics = fleet_metrics(tmp_path / "m")
    outs = {}
    for setting in ("0", "1"):
        monkeypatch.setenv(readahead.READ_AHEAD_ENV, setting)
        # propose without writing: a second run would otherwise see the first one's branches
        outs[setting] = [run("analyze", work, metrics, 2), run("propose", work, metrics, 2, "--dry-run")]
    # The fleet has problems (exit 1), absent metrics and points after --now in two batches.
    assert outs["0"][0].code == 1 and "40 points in 10 files after" in outs["0"][0].stdout
    for without, with_helper in zip(outs["0"], outs["1"], strict=True):
        assert (with_helper.code, with_helper.stdout, with_helper.stderr) == (
            without.code,
            without.stdout,
            without.stderr,
        )


def test_a_bad_setting_is_one_line_naming_it(
    repo_factory: RepoFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work, _ = repo_factory(fleet_files())
    metrics = fleet_metrics(tmp_path / "m")
    monkeypatch.setenv(readahead.READ_AHEAD_ENV, "on")
    result = run("analyze", work, metrics, 2)
    assert result.code == 2, result
    assert "FEEDBACKCTL_READ_AHEAD='on' is neither 0 (off) nor 1 (on)" in result.stderr
    assert "Traceback" not in result.stderr


def _helpers_marked(mark: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if f"READAHEAD_TEST_MARK={mark}".encode() in environ and b"readahead import serve" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find the helper")
def test_a_killed_run_leaves_no_helper_behind(tmp_path: Path) -> None:
    mark = f"{os.getpid()}-{time.monotonic_ns()}"
    # A helper whose every group is slow, so the run is surely mid-way when it is killed.
    script = (
        "import sys, time\n"
        "from feedbackctl.sources import readahead\n"
        "from tests.test_readahead import make_reader\n"
        "setup = {'make': 'tests.test_readahead:make_reader', 'args': (0, 0.5)}\n"
        "for _ in readahead.read_groups(range(1000), make_reader(0, 0.5), setup):\n"
        "    pass\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "READAHEAD_TEST_MARK": mark}
    run_ = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not _helpers_marked(mark) and time.monotonic() < deadline:
            time.sleep(0.05)
        helpers = _helpers_marked(mark)
        assert helpers, "the run never started its helper"
        os.kill(run_.pid, signal.SIGKILL)
        run_.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _helpers_marked(mark) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _helpers_marked(mark), "the helper outlived the run that started it"
    finally:
        if run_.poll() is None:
            run_.kill()
            run_.wait()


def test_the_helper_imports_nothing_from_the_working_directory(tmp_path: Path) -> None:
    """Run from inside a checkout someone else wrote: its pickle.py must not run in the helper."""
    hostile = tmp_path / "checkout"
    hostile.mkdir()
    marker = tmp_path / "ran"
    for name in ("pickle", "struct", "os"):
        (hostile / f"{name}.py").write_text(f"open({str(marker)!r}, 'a').write({name!r})\n")
    # The parent as the installed console script starts: the working directory not on its path.
    script = (
        "import os, sys\n"
        f"sys.path[:0] = [{str(ROOT)!r}]\n"
        "from feedbackctl.sources import readahead\n"
        "from tests.test_readahead import make_reader\n"
        "setup = {'make': 'tests.test_readahead:make_reader', 'args': (os.getpid(), 0.02)}\n"
        "pids = {pid for _, pid in readahead.read_groups(range(12), make_reader(os.getpid(), 0.02), setup)}\n"
        "print(len(pids))\n"
    )
    argv = [sys.executable, "-I", "-c", script]
    done = subprocess.run(argv, cwd=hostile, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2", "the helper read no group"
    assert not marker.exists(), f"the helper imported {marker.read_text()} from the working directory"
