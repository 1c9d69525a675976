"""Chaos runs for cron safety: kill -9 at random instants, and concurrent writers.

    python -m bench.chaos crash [--kills 200] [--commands autotune propose drift] [--seed N]
    python -m bench.chaos concurrency [--procs 8] [--rounds 50]

``crash``: each trial copies a pristine repo, starts the command as a real
process, kills it with SIGKILL after a random delay (half the time the
process alone, so a git child it started finishes; half the time its whole
process group, as a container runtime or the OOM killer would), then checks:

- ``git fsck`` is clean and no ref points at a missing object;
- no lock file is left behind (``*.lock`` under the git dir);
- SPEC section 5's work tree rule: ``git status`` of the checkout is clean;
- the next, uninterrupted run converges to the state of a run that was never
  killed (every branch's tree, and the Feedback-* changes on each branch).

``concurrency``: N processes x R rounds of ``autotune`` against one repo, and
clones pushing to one bare origin; every change is applied exactly once
(the Feedback-Claim/Field/From/To of every auto-tune commit is unique and the
chain of values has no gap), none is lost, no trailer is duplicated.

The fast versions of both run in pytest (tests/test_reliability_crash.py,
tests/test_reliability_concurrency.py); the long ones here, or with
``pytest -m slow``. Not part of the default test run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "messagewall"
NOW = "2026-11-08T00:00:00Z"
DATE = "2026-10-01T00:00:00Z"  # claims committed well before the example's week of metrics
PROD_CLAIM = (EXAMPLE / "claims" / "messagewall-prod.yaml").read_text()
LIMITS = "proposals:\n  maxOpen: 1000\n  maxNewPerHour: 1000\n"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Ada Human",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada Human",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}


def git(repo: Path, *args: str, check: bool = True) -> str:
    env = {**os.environ, **GIT_ENV, "GIT_AUTHOR_DATE": DATE, "GIT_COMMITTER_DATE": DATE}
    proc = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} in {repo}: {proc.stderr}")
    return proc.stdout.rstrip("\n")


# --- a fleet of claims, its metrics and live state ---------------------------------------------


def claim_names(n: int) -> list[str]:
    return [f"app-{i:03d}-prod" for i in range(n)]


def claim_text(name: str, auto_tune: bool = True) -> str:
    text = PROD_CLAIM.replace("name: messagewall-prod", f"name: {name}")
    text = text.replace("resourcePrefix: messagewall", f"resourcePrefix: {name}")
    if auto_tune:  # wide bounds: a claim under pressure keeps stepping up, round after round
        text = text.replace("max: 512    # Agent can adjust", "max: 3008    # Agent can adjust")
    else:
        text = text[: text.index("\n  autoTune:")] + "\n"
    return text


@dataclass(frozen=True)
class Fleet:
    """A pristine work repo (with its bare origin) and the inputs the commands read."""

    root: Path
    work: Path
    origin: Path
    metrics: Path
    live: Path
    names: tuple[str, ...]


def make_fleet(root: Path, n: int) -> Fleet:
    names = claim_names(n)
    work, origin = root / "work", root / "origin.git"
    work.mkdir(parents=True)
    git(work, "init", "-q", "-b", "main")
    for name in names:
        (work / "claims").mkdir(exist_ok=True)
        (work / "claims" / f"{name}.yaml").write_text(claim_text(name))
    (work / ".feedbackctl.yaml").write_text(LIMITS)
    git(work, "add", "-A")
    git(work, "-c", "commit.gpgsign=false", "commit", "-q", "-m", "Initial claims")
    git(root, "init", "-q", "--bare", "-b", "main", str(origin))
    git(work, "remote", "add", "origin", str(origin))
    git(work, "push", "-q", "-u", "origin", "main")
    metrics = root / "metrics"
    for name in names:  # every claim under the example's memory pressure
        shutil.copytree(EXAMPLE / "metrics" / "messagewall-prod", metrics / name)
    live = root / "live.yaml"
    live.write_text("".join(f"{name}: {{lambdaTimeout: 60}}\n" for name in names))
    return Fleet(root, work, origin, metrics, live, tuple(names))


# --- commands, states and checks ------------------------------------------------------------------


def has_command(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(f"feedbackctl.commands.{name}") is not None


def argv_for(command: str, fleet: Fleet, repo: Path, *extra: str) -> list[str]:
    common = ["--repo", str(repo), "--now", NOW, "--output", "json", *extra]
    if command == "autotune":
        return ["autotune", "--metrics", str(fleet.metrics), *common]
    if command == "propose":
        return ["propose", "--all", "--metrics", str(fleet.metrics), *common]
    if command == "drift":
        return ["drift", "--live", str(fleet.live), *common]
    raise ValueError(command)


def spawn(argv: Sequence[str], cwd: Path | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "feedbackctl", *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,  # a full pipe nobody reads would stall the run at its report
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: killpg reaches its git children
    )


def run_inline(argv: Sequence[str]) -> tuple[int, str]:
    """The CLI in this process (no interpreter start-up): exit code and stderr."""
    from feedbackctl.cli import run

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = run(list(argv))
    return code, err.getvalue()


def changes(repo: Path, ref: str) -> list[tuple[str, ...]]:
    """(kind, claim, field, from, to) of every Feedback-* commit on ``ref``, oldest first."""
    keys = ("Kind", "Claim", "Field", "From", "To")
    fmt = "%x1e" + "%x1f".join(f"%(trailers:key=Feedback-{k},valueonly,separator=%x2C)" for k in keys)
    out = git(repo, "log", "--reverse", f"--format={fmt}", ref)
    rows = [tuple(part.strip() for part in chunk.split("\x1f")) for chunk in out.split("\x1e")[1:]]
    return [r for r in rows if r[0]]


def state(repo: Path) -> dict[str, tuple[str, tuple[tuple[str, ...], ...]]]:
    """Every branch: its tree and the Feedback-* changes on it. Equal states = converged."""
    out = git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/")
    result = {}
    for line in out.splitlines():
        ref, _ = line.split()
        result[ref] = (git(repo, "rev-parse", f"{ref}^{{tree}}"), tuple(changes(repo, ref)))
    return result


def lock_files(repo: Path, bare: bool) -> list[str]:
    git_dir = repo if bare else repo / ".git"
    return sorted(str(p.relative_to(git_dir)) for p in git_dir.rglob("*.lock"))


def problems_after_kill(repo: Path, bare: bool, locks_allowed: bool = False) -> list[str]:
    """What a kill left wrong: fsck errors, dangling refs, lock files, a dirty checkout.

    A git child killed with its process group may leave a ``.lock`` (git's own
    behaviour): allowed right after a kill, never after the next run.
    """
    found = []
    fsck = subprocess.run(
        ["git", "-C", str(repo), "fsck", "--no-dangling", "--no-progress"], capture_output=True, text=True
    )
    if fsck.returncode != 0 or fsck.stdout.strip() or "error" in fsck.stderr:
        found.append(f"git fsck: {(fsck.stdout + fsck.stderr).strip()[:300]}")
    for line in git(repo, "for-each-ref", "--format=%(refname) %(objectname)").splitlines():
        ref, sha = line.split()
        if subprocess.run(["git", "-C", str(repo), "cat-file", "-e", sha]).returncode != 0:
            found.append(f"{ref} points at missing {sha}")
    locks = lock_files(repo, bare)
    if locks and not locks_allowed:
        found.append(f"lock files left: {', '.join(locks[:3])}{' ...' if len(locks) > 3 else ''}")
    scratch = git(repo, "for-each-ref", "--format=%(refname)", "refs/feedbackctl/import/").split()
    if scratch and not locks_allowed:
        found.append(f"scratch refs of a killed import left: {', '.join(scratch[:3])}")
    if not bare:
        status = git(repo, "status", "--porcelain")
        if status:
            found.append(f"git status not clean: {status.splitlines()[:3]}")
    return found


def next_slot(repo: Path, bare: bool) -> None:
    """Time passes until the next cron run: whatever a killed git left is now minutes old."""
    from feedbackctl.authority.reflocks import STALE_SECONDS

    git_dir = repo if bare else repo / ".git"
    then = time.time() - STALE_SECONDS - 60
    scratch = git_dir / "refs" / "feedbackctl" / "import"
    for stale in [*git_dir.rglob("*.lock"), *(scratch.rglob("*") if scratch.is_dir() else [])]:
        os.utime(stale, (then, then))


def converge(argv: Sequence[str], repo: Path, runs: int = 4) -> tuple[int, str, dict[str, object]]:
    """Run until the state stops changing (a run may leave work for the next: rate limits)."""
    last: dict[str, object] = state(repo)
    code, err = 0, ""
    for _ in range(runs):
        code, err = run_inline(argv)
        if code not in (0, 3):
            break
        now = state(repo)
        if now == last:
            break
        last = now
    return code, err, last


# --- crash -------------------------------------------------------------------------------------


@dataclass
class CrashReport:
    command: str
    kills: int = 0
    mid_write: int = 0  # kills after which some ref had already moved
    finished_first: int = 0  # the process ended before the signal
    locks_left: int = 0  # kills after which a killed git child had left a .lock file
    failures: list[str] = field(default_factory=list)


def _copy(fleet: Fleet, dest: Path, bare: bool) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    if bare:
        git(fleet.root, "clone", "-q", "--bare", str(fleet.work), str(dest))
        return dest
    shutil.copytree(fleet.work, dest, symlinks=True)
    return dest


@dataclass(frozen=True)
class Timeline:
    took: float  # a whole uninterrupted run, as a process
    writing: float  # from its first new object to its end


def reference_state(
    fleet: Fleet, command: str, bare: bool, scratch: Path
) -> tuple[dict[str, object], Timeline]:
    """Where uninterrupted runs converge, and the timeline of the first run."""
    repo = _copy(fleet, scratch / f"ref-{command}-{'bare' if bare else 'work'}", bare)
    git_dir = repo if bare else repo / ".git"
    argv = argv_for(command, fleet, repo)
    seen = _objects(git_dir)
    began = time.perf_counter()
    proc = spawn(argv)
    _wait_for_write(git_dir, seen, proc, 600)
    first = time.perf_counter()
    _, err = proc.communicate()
    end = time.perf_counter()
    if proc.returncode not in (0, 3):
        raise AssertionError(f"reference {command} run failed ({proc.returncode}): {err.decode()[-800:]}")
    code, text, converged = converge(argv, repo)
    if code not in (0, 3):
        raise AssertionError(f"reference {command} rerun failed ({code}): {text[-800:]}")
    return converged, Timeline(end - began, max(end - first, 0.01))


def crash_trials(
    fleet: Fleet, command: str, kills: int, rng: random.Random, scratch: Path, bare: bool = False
) -> CrashReport:
    report = CrashReport(command)
    expected, timeline = reference_state(fleet, command, bare, scratch)
    start_state = state(fleet.work)
    for trial in range(kills):
        repo = _copy(fleet, scratch / f"kill-{command}", bare)
        git_dir = repo if bare else repo / ".git"
        seen = _objects(git_dir)
        proc = spawn(argv_for(command, fleet, repo))
        if rng.random() < 0.3:  # anywhere in the run
            time.sleep(rng.uniform(0.0, 1.1) * timeline.took)
        else:  # most of a run is start-up and reading: aim at the writing, once it has begun
            _wait_for_write(git_dir, seen, proc, timeline.took * 3)
            time.sleep(rng.uniform(0.0, 1.1) * timeline.writing)
        group = rng.random() < 0.5
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                if group:
                    os.killpg(proc.pid, signal.SIGKILL)
                else:
                    proc.kill()
        proc.communicate()
        report.kills += 1
        what = f"{command} kill {trial} ({'group' if group else 'process'}"
        if proc.returncode is not None and proc.returncode >= 0:
            report.finished_first += 1
        elif state(repo) != start_state:
            report.mid_write += 1
        report.locks_left += bool(lock_files(repo, bare))
        for problem in problems_after_kill(repo, bare, locks_allowed=True):
            report.failures.append(f"{what}, after kill): {problem}")
        next_slot(repo, bare)
        code, err, got = converge(argv_for(command, fleet, repo), repo)
        if code not in (0, 3):
            report.failures.append(f"{what}): the next run failed ({code}): {err[-400:]}")
            continue
        if got != expected:
            report.failures.append(f"{what}): did not converge: {_diff(expected, got)}")
        for problem in problems_after_kill(repo, bare):
            report.failures.append(f"{what}, after the next run): {problem}")
    return report


def _objects(git_dir: Path) -> int:
    """How many entries the object store has: it grows as soon as a run writes anything."""
    objects = git_dir / "objects"
    try:
        return sum(1 for _ in objects.iterdir()) + sum(1 for _ in (objects / "pack").iterdir())
    except OSError:
        return 0


def _wait_for_write(git_dir: Path, before: int, proc: subprocess.Popen[bytes], limit: float) -> None:
    deadline = time.perf_counter() + limit
    while proc.poll() is None and time.perf_counter() < deadline and _objects(git_dir) == before:
        time.sleep(0.002)


def _diff(expected: dict[str, object], got: dict[str, object]) -> str:
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    differ = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    return f"missing {missing[:3]}, extra {extra[:3]}, differ {differ[:3]}"


# --- concurrency --------------------------------------------------------------------------------


@dataclass
class ConcurrencyReport:
    mode: str
    procs: int
    rounds: int
    applied: int = 0
    failures: list[str] = field(default_factory=list)


PER_ROUND = 3  # claims under pressure in each round: several changes per run, each to a different claim


def pressure_round(metrics: Path, names: Sequence[str], rnd: int) -> tuple[Path, str]:
    """Round ``rnd``'s metrics and evaluation time: its claims at 95 % memory, the rest silent.

    Rounds are 2 h apart, so last round's points are stale (no data, no
    decision) and each round asks for exactly one step up for each of its own
    claims: every run of a round races for the same changes.
    """
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 11, 8, tzinfo=UTC) + timedelta(hours=2 * rnd)
    stamps = [(now - timedelta(minutes=5 * k)).strftime("%Y-%m-%dT%H:%M:%SZ") for k in range(12 * 26, -1, -1)]
    folder = metrics / f"round-{rnd:03d}"
    for name in names[PER_ROUND * rnd : PER_ROUND * (rnd + 1)]:
        d = folder / name
        d.mkdir(parents=True, exist_ok=True)
        for metric, value in (
            ("memory_utilization", 95.0),
            ("used_memory_max", 243.2),  # 95 % of 256 MB: sizing asks for one step
            ("duration_p99", 1000.0),
            ("errors", 0.0),
            ("throttles", 0.0),
        ):
            (d / f"{metric}.csv").write_text("timestamp,value\n" + "".join(f"{s},{value}\n" for s in stamps))
    folder.mkdir(parents=True, exist_ok=True)
    return folder, now.strftime("%Y-%m-%dT%H:%M:%SZ")


def check_applied_once(repo: Path, names: Sequence[str], rounds: int) -> tuple[int, list[str]]:
    """Each round's claims went 256 -> 384 exactly once; no other claim changed; no trailer twice."""
    failures = []
    tunes = [c for c in changes(repo, "main") if c[0] == "auto-tune"]
    if len(tunes) != len(set(tunes)):
        dupes = sorted({t for t in tunes if tunes.count(t) > 1})
        failures.append(f"applied more than once: {dupes[:3]}")
    tuned = set(names[: PER_ROUND * rounds])
    for name in names:
        mine = [(c[2], c[3], c[4]) for c in tunes if c[1] == name]
        want = [("spec.lambdaMemory", "256", "384")] if name in tuned else []
        if mine != want:
            failures.append(f"{name}: changes {mine}, expected {want}")
        memory = "384" if name in tuned else "256"
        if f"lambdaMemory: {memory} " not in git(repo, "show", f"main:claims/{name}.yaml"):
            failures.append(f"{name}: lambdaMemory is not {memory} at main")
    for body in git(repo, "log", "--format=%B%x1e", "main").split("\x1e"):
        keys = [ln.split(":")[0] for ln in body.splitlines() if ln.startswith("Feedback-")]
        if len(keys) != len(set(keys)):
            failures.append(f"a commit repeats a trailer: {keys}")
    return len(tunes), failures


def concurrency(root: Path, procs: int, rounds: int, mode: str) -> ConcurrencyReport:
    """``mode`` one-repo: every process on the same checkout; clones: each its own clone, --push."""
    report = ConcurrencyReport(mode, procs, rounds)
    fleet = make_fleet(root / mode, PER_ROUND * rounds + 1)  # one claim never under pressure
    if mode == "one-repo":
        repos = [fleet.work] * procs
        extra: tuple[str, ...] = ()
    else:
        repos = []
        for i in range(procs):
            clone = root / mode / f"clone{i}"
            git(root, "clone", "-q", str(fleet.origin), str(clone))
            repos.append(clone)
        extra = ("--push",)
    for rnd in range(rounds):
        metrics, now = pressure_round(root / mode / "rounds", fleet.names, rnd)
        argv = ["autotune", "--metrics", str(metrics), "--now", now, "--output", "json", *extra]
        running = [spawn([*argv, "--repo", str(r)]) for r in repos]
        for p in running:
            _, err = p.communicate()
            if p.returncode not in (0, 3):
                report.failures.append(f"round {rnd}: exit {p.returncode}: {err.decode()[-400:]}")
    truth = fleet.work if mode == "one-repo" else fleet.origin
    report.applied, failures = check_applied_once(truth, fleet.names, rounds)
    report.failures += failures
    tip = git(truth, "rev-parse", "main")
    for r in dict.fromkeys(repos):
        for problem in problems_after_kill(r, bare=False):
            report.failures.append(f"{r.name}: {problem}")
        if mode == "clones" and git(r, "rev-parse", "main") != tip:
            report.failures.append(f"{r.name}: main was not fast-forwarded to what was pushed")
    return report


# --- the command line --------------------------------------------------------------------------


@contextlib.contextmanager
def pinned_git(home: Path) -> Iterator[None]:
    """A HOME with a minimal gitconfig, as the test suite pins it."""
    from tests.gitutil import configure_git_env, set_env

    previous = configure_git_env(home)
    try:
        yield
    finally:
        set_env(previous)


def _print(lines: Sequence[str]) -> None:
    for line in lines:
        print(line, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    c = sub.add_parser("crash", help="kill -9 at random instants")
    c.add_argument("--kills", type=int, default=200, help="kills per command")
    c.add_argument("--commands", nargs="+", default=["autotune", "propose", "drift"])
    c.add_argument("--claims", type=int, default=24)
    c.add_argument("--seed", type=int, default=20261108)
    c.add_argument("--bare", action="store_true", help="bare repos instead of checkouts")
    k = sub.add_parser("concurrency", help="N processes x R rounds of autotune")
    k.add_argument("--procs", type=int, default=8)
    k.add_argument("--rounds", type=int, default=50)
    k.add_argument("--modes", nargs="+", default=["one-repo", "clones"])
    a = ap.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="feedbackctl-chaos-"))
    failures: list[str] = []
    with pinned_git(scratch / "home"):
        if a.what == "crash":
            fleet = make_fleet(scratch / "fleet", a.claims)
            rng = random.Random(a.seed)
            for command in a.commands:
                if not has_command(command):
                    print(f"{command}: not available in this checkout; skipped")
                    continue
                began = time.perf_counter()
                r = crash_trials(fleet, command, a.kills, rng, scratch, bare=a.bare)
                print(
                    f"{command}: {r.kills} kills ({r.mid_write} mid-write, "
                    f"{r.finished_first} after it ended, {r.locks_left} left a git lock), "
                    f"{len(r.failures)} failures, {time.perf_counter() - began:.0f}s",
                    flush=True,
                )
                _print(r.failures[:20])
                failures += r.failures
        else:
            for mode in a.modes:
                began = time.perf_counter()
                rep = concurrency(scratch, a.procs, a.rounds, mode)
                print(
                    f"{mode}: {rep.procs} processes x {rep.rounds} rounds, {rep.applied} changes applied, "
                    f"{len(rep.failures)} failures, {time.perf_counter() - began:.0f}s",
                    flush=True,
                )
                _print(rep.failures[:20])
                failures += rep.failures
    print(f"(scratch in {scratch})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
