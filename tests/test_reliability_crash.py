"""kill -9 at random instants of the writing commands (SPEC section 5: "a run killed
at any instant leaves the repo valid").

Each kill: a fresh copy of a 16-claim repo, the command as a real process,
SIGKILL after a random delay (the process alone, or its whole process group
with its git children); then ``git fsck`` is clean, no ref points at a
missing object, no lock file is left, ``git status`` of the checkout is clean,
and the next uninterrupted run converges to the state of a run that was
never killed. The harness is ``bench/chaos.py``; ``python -m bench.chaos
crash`` (or ``pytest -m slow``) runs 200 kills per command.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.chaos import (
    CrashReport,
    Fleet,
    argv_for,
    changes,
    crash_trials,
    make_fleet,
    problems_after_kill,
    run_inline,
)
from feedbackctl.authority import ffjournal, reflocks
from feedbackctl.authority.gitrepo import GitRepo
from tests.clirun import ROOT
from tests.gitutil import git_out

FAST_KILLS = 4
SLOW_KILLS = 200


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, git_env: Path) -> Fleet:
    return make_fleet(tmp_path_factory.mktemp("crash") / "fleet", 16)


def _check(report: CrashReport, kills: int) -> None:
    assert report.kills == kills
    assert report.failures == [], "\n".join(report.failures)


@pytest.mark.parametrize("command", ["autotune", "propose", "drift"])
def test_kill_9_leaves_a_valid_repo_and_the_next_run_converges(
    fleet: Fleet, command: str, tmp_path: Path
) -> None:
    _check(crash_trials(fleet, command, FAST_KILLS, random.Random(8), tmp_path), FAST_KILLS)


@pytest.mark.parametrize("command", ["autotune", "drift"])
def test_kill_9_of_a_run_on_a_bare_repo(fleet: Fleet, command: str, tmp_path: Path) -> None:
    _check(crash_trials(fleet, command, 2, random.Random(9), tmp_path, bare=True), 2)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["autotune", "propose", "drift"])
def test_kill_9_two_hundred_times(fleet: Fleet, command: str, tmp_path: Path) -> None:
    _check(crash_trials(fleet, command, SLOW_KILLS, random.Random(20261108), tmp_path), SLOW_KILLS)


# --- the one instant no ordering avoids: the branch has moved, the files have not ------------------

# The ref and the files move in one detached child; a crash of that child (or of
# the machine) between its two steps is what the journal is for.
KILL_AFTER_CAS = """
import os, signal, sys
from feedbackctl.authority import gitrepo

def move_and_follow(self, owner, name, new, old):
    owner.update_ref(name, new, old)
    os.kill(os.getpid(), signal.SIGKILL)  # after the compare-and-swap, before the files follow

gitrepo.GitRepo._move_and_follow = move_and_follow
from feedbackctl.cli import run
sys.exit(run(sys.argv[1:]))
"""

# The run killed with its whole process group the instant its write was handed to
# git: the step runs on in its own session and finishes both halves. Its stdout is
# this script's, so the test's read of the pipe ends only when the step has ended.
KILL_RUN_DURING_MOVE = """
import os, signal, subprocess, sys
from feedbackctl.authority import gitrepo

real = gitrepo.run

def run(argv, *, cwd=None, input=None, env=None, check=True, detached=False, **kw):
    if detached and argv[0] == "sh":  # the ref move and its checkout (index steps are detached too)
        subprocess.Popen(list(argv), cwd=cwd, env={**os.environ, **(env or {})},
                         start_new_session=True, stdin=subprocess.DEVNULL)
        os.killpg(0, signal.SIGKILL)
    return real(argv, cwd=cwd, input=input, env=env, check=check, detached=detached, **kw)

gitrepo.run = run
from feedbackctl.cli import run as cli_run
sys.exit(cli_run(sys.argv[1:]))
"""


def test_killing_drift_with_its_group_during_the_write_leaves_a_clean_checkout(
    small: Fleet, tmp_path: Path
) -> None:
    script = tmp_path / "kill_run_during_move.py"
    script.write_text(KILL_RUN_DURING_MOVE)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    argv = argv_for("drift", small, small.work)
    proc = subprocess.run(
        [sys.executable, str(script), *argv], env=env, capture_output=True, start_new_session=True
    )
    assert proc.returncode == -signal.SIGKILL
    # No next run: right after the kill, main has the captures and the files match it.
    assert len(changes(small.work, "main")) == 3
    assert git_out(small.work, "status", "--porcelain") == ""
    assert problems_after_kill(small.work, bare=False) == []
    assert "lambdaTimeout: 60" in (small.work / "claims" / f"{small.names[0]}.yaml").read_text()


def kill_after_cas(tmp_path: Path, argv: list[str]) -> int:
    script = tmp_path / "kill_after_cas.py"
    script.write_text(KILL_AFTER_CAS)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    return subprocess.run([sys.executable, str(script), *argv], env=env, capture_output=True).returncode


@pytest.fixture()
def small(tmp_path: Path, git_env: Path) -> Fleet:
    return make_fleet(tmp_path / "small", 3)


def test_a_kill_between_the_ref_and_the_files_is_finished_by_the_next_run(
    small: Fleet, tmp_path: Path
) -> None:
    argv = argv_for("drift", small, small.work)
    assert kill_after_cas(tmp_path, argv) == -signal.SIGKILL
    # The window is real: main has the captures, the checkout still has the old files.
    assert git_out(small.work, "status", "--porcelain").count("M  claims/") == 3
    assert len(changes(small.work, "main")) == 3
    # Any next run finishes the fast-forward before it does anything else.
    assert run_inline(["analyze", "--repo", str(small.work), "--metrics", str(small.metrics)])[0] == 0
    assert problems_after_kill(small.work, bare=False) == []
    assert "lambdaTimeout: 60" in (small.work / "claims" / f"{small.names[0]}.yaml").read_text()


def test_a_file_the_human_touched_after_the_kill_is_left_alone(small: Fleet, tmp_path: Path) -> None:
    assert kill_after_cas(tmp_path, argv_for("drift", small, small.work)) == -signal.SIGKILL
    mine = small.work / "claims" / f"{small.names[1]}.yaml"
    mine.write_text(mine.read_text().replace("region: us-east-1", "region: eu-west-1"))
    restored = ffjournal.recover(_bare_open(small.work))
    assert sorted(restored) == sorted(f"claims/{n}.yaml" for n in (small.names[0], small.names[2]))
    assert "region: eu-west-1" in mine.read_text() and "lambdaTimeout: 30" in mine.read_text()
    status = git_out(small.work, "status", "--porcelain").splitlines()
    assert status == [f"MM claims/{small.names[1]}.yaml"]  # still the human's to sort out


def test_a_run_in_progress_keeps_its_intent(small: Fleet) -> None:
    repo = _bare_open(small.work)
    head = git_out(small.work, "rev-parse", "main")
    intent = ffjournal.begin(repo, "refs/heads/main", head, head)
    record = json.loads(intent.read_text())
    record["pid"] = os.getppid()  # alive, and not this process
    intent.write_text(json.dumps(record))
    assert ffjournal.recover(repo) == [] and intent.exists()
    record["pid"] = 2**22 + 12345  # no such process: the run died
    intent.write_text(json.dumps(record))
    assert ffjournal.recover(repo) == [] and not intent.exists()


def _bare_open(path: Path) -> GitRepo:
    """A GitRepo on ``path`` without the recovery GitRepo.open runs."""
    git_dir = Path(git_out(path, "rev-parse", "--absolute-git-dir"))
    return GitRepo(git_dir, path, False, "sha1")


# --- lock files a killed git leaves (kill -9 of a whole process group) -------------------------------


def _lock(path: Path, age_seconds: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("0" * 40 + "\n")  # a half-written ref: git never renamed it over the ref
    then = time.time() - age_seconds
    os.utime(path, (then, then))
    return path


@pytest.mark.parametrize("command", ["drift", "autotune"])
def test_a_stale_branch_lock_is_removed_and_the_run_goes_on(small: Fleet, command: str) -> None:
    lock = _lock(small.work / ".git" / "refs" / "heads" / "main.lock", reflocks.STALE_SECONDS + 60)
    code, err = run_inline(argv_for(command, small, small.work))
    assert code == 0, err
    assert not lock.exists() and len(changes(small.work, "main")) == 3
    assert problems_after_kill(small.work, bare=False) == []


def test_a_stale_lock_on_proposal_branches_is_removed(small: Fleet) -> None:
    heads = small.work / ".git" / "refs" / "heads" / "feedback"
    locks = [_lock(heads / n / "lambdaMemory.lock", reflocks.STALE_SECONDS + 60) for n in small.names]
    code, err = run_inline(argv_for("propose", small, small.work))
    assert code == 0, err
    assert not any(lock.exists() for lock in locks)
    assert len(git_out(small.work, "for-each-ref", "refs/heads/feedback/").splitlines()) == 3


def test_a_fresh_lock_may_be_a_live_writer_it_is_left_and_named(small: Fleet) -> None:
    lock = _lock(small.work / ".git" / "refs" / "heads" / "main.lock", 5)
    before = git_out(small.work, "rev-parse", "main")
    code, err = run_inline(argv_for("drift", small, small.work))
    assert code == 1
    assert (
        "the branch kept moving during 5 attempts (last: refs/heads/main is locked by another git process; "
        "nothing was changed — rerun (if no other run is active, remove the stale refs/heads/main.lock)); "
        "rerun later"
    ) in err
    assert lock.exists() and git_out(small.work, "rev-parse", "main") == before
    assert git_out(small.work, "status", "--porcelain") == ""


# --- a run killed alone while its git child holds index.lock ----------------------------------------

# A git that holds the checkout's index.lock for a moment during ``update-index --refresh``
# (the first index-writing step of a fast-forward), announcing it through a marker file.
HOLDING_GIT = """#!/bin/sh
case " $* " in
  *" --refresh "*)
    if [ ! -e "$SHIM_MARK" ]; then
      for a in "$@"; do case "$a" in --git-dir=*) gd="${a#--git-dir=}";; esac; done
      : > "$gd/index.lock"
      : > "$SHIM_MARK"
      sleep 1
      rm -f "$gd/index.lock"
    fi;;
esac
exec REAL_GIT "$@"
"""


def test_killing_the_run_alone_while_git_holds_the_index_lock_leaves_no_lock(
    small: Fleet, tmp_path: Path
) -> None:
    shim = tmp_path / "bin" / "git"
    shim.parent.mkdir()
    shim.write_text(HOLDING_GIT.replace("REAL_GIT", _real_git()))
    shim.chmod(0o755)
    mark = tmp_path / "holding"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "NO_COLOR": "1",
        "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}",
        "SHIM_MARK": str(mark),
    }
    run = subprocess.Popen(
        [sys.executable, "-m", "feedbackctl", *argv_for("drift", small, small.work)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    for _ in range(600):  # the run reaches its write
        if mark.exists() or run.poll() is not None:
            break
        time.sleep(0.05)
    assert mark.exists(), "the run never refreshed the index"
    run.kill()  # the run alone, not its git child's group
    run.wait()
    lock = small.work / ".git" / "index.lock"
    for _ in range(200):  # git finishes its step on its own, then lets go of the lock
        if not lock.exists():
            break
        time.sleep(0.05)
    assert not lock.exists(), "a killed run left index.lock: every later git command refuses"
    assert git_out(small.work, "status", "--porcelain") == ""
    assert problems_after_kill(small.work, bare=False) == []


def _real_git() -> str:
    found = shutil.which("git")
    assert found is not None
    return os.path.realpath(found)


def test_scratch_refs_and_locks_of_a_killed_import_are_swept_a_live_ones_kept(small: Fleet) -> None:
    scratch = small.work / ".git" / "refs" / "feedbackctl" / "import"
    head = git_out(small.work, "rev-parse", "main")
    for name in ("a" * 32, "b" * 32):
        ref = f"refs/feedbackctl/import/{name}"
        subprocess.run(["git", "update-ref", ref, head], cwd=small.work, check=True)
    old = time.time() - reflocks.STALE_SECONDS - 60
    os.utime(scratch / ("a" * 32), (old, old))  # a run killed mid-import, long ago
    lock = _lock(scratch / f"{'c' * 32}.lock", reflocks.STALE_SECONDS + 60)
    code, err = run_inline(argv_for("propose", small, small.work))
    assert code == 0, err
    left = git_out(small.work, "for-each-ref", "--format=%(refname)", "refs/feedbackctl/import/").split()
    assert left == [f"refs/feedbackctl/import/{'b' * 32}"]  # fresh: may be a live run's
    assert not lock.exists()
    assert len(git_out(small.work, "for-each-ref", "refs/heads/feedback/").splitlines()) == 3
