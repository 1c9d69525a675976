"""The history work of one ``autotune`` run: a 100k-commit repo against a fresh one.

Issue 3's target: on a repo with 100k commits (about 10 % with Feedback-*
trailers) the history work (cooldowns, settling, flap windows, rate limits,
baselines) of one autotune run over 1,000 claims costs at most 0.5 s more
than on a fresh repo (one commit) with the same claims.

"History work" is what ``load_histories`` (inside gather) and
``fill_baselines`` take in ``patterns.evaluation.evaluate``; the rest of a run
(metrics, decisions) is the same on both repos and is shown for context.
Two metric sets: the fleet's own (a typical run, a few candidates) and a
"hot" one with every opted-in claim under memory pressure (every one of them
needs a baseline: the worst case). With and without a commit-graph; with
nothing remembered in the git dir (the first run on a clone) and with what a
run WARM_BEHIND commits earlier remembered (the next cron run): the walks back
to the first commit are remembered by tip sha (authority/logcache.py). Every
timed run starts with the process memos cleared, like a cron run.

    python -m bench.history_bench [--commits 100000] [--claims 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import OUT, Row, child, print_rows
from bench.fleet import DEFAULT_NOW, fleet_claims, make_fleet, make_history_repo

TARGET = 0.5
# The warm rows: what a run this many commits before the tip remembered (authority/logcache.py).
WARM_BEHIND = 20
METRICS = ("memory_utilization", "used_memory_max", "duration_p99", "errors", "throttles")


@dataclass(frozen=True)
class Paths:
    fresh: Path
    history: Path
    metrics: Path
    hot: Path
    commits: int
    feedback_commits: int


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def build(commits: int, claims: int) -> Paths:
    root = OUT / f"history-{commits}x{claims}"
    marker = root / ".done"
    if not marker.exists():
        shutil.rmtree(root, ignore_errors=True)
        began = time.perf_counter()
        made = make_history_repo(root, commits, n_claims=claims, bare=True)
        # 26 h of 5-minute points: every rule's window, the day of memory-idle included.
        make_fleet(root, claims, points=313, step_seconds=300, metrics=METRICS, bare=True)
        _hot_metrics(root / "metrics", root / "metrics-hot", claims)
        (root / "feedback-commits").write_text(str(made.feedback_commits))
        took = time.perf_counter() - began
        print(f"built {commits} commits and a fresh fleet in {took:.1f}s", file=sys.stderr)
        marker.write_text("ok")
    return Paths(
        root / "fleet.git",
        root / "history.git",
        root / "metrics",
        root / "metrics-hot",
        commits,
        int((root / "feedback-commits").read_text()),
    )


def _hot_metrics(src: Path, dst: Path, claims: int) -> None:
    """The same fixtures, with every opted-in claim at 95 % memory utilization."""
    shutil.copytree(src, dst)
    for c in fleet_claims(claims):
        if not c.auto_tune:
            continue
        f = dst / c.name / "memory_utilization.csv"
        rows = f.read_text().splitlines()
        f.write_text("\n".join([rows[0]] + [r.split(",", 1)[0] + ",95.5" for r in rows[1:]]) + "\n")


def _commit_graph(repo: Path, on: bool) -> None:
    graph = repo / "objects" / "info" / "commit-graph"
    if on and not graph.exists():
        subprocess.run(["git", "-C", str(repo), "commit-graph", "write", "--reachable", "--changed-paths"],
                       check=True, capture_output=True)  # fmt: skip
    elif not on and graph.exists():
        graph.unlink()


@contextmanager
def _timing(spent: dict[str, list[float]]) -> Iterator[None]:
    """Time load_histories (inside gather) and fill_baselines where evaluate calls them."""
    from feedbackctl.patterns import inputs

    def wrap(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), _cpu()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] = [spent.get(name, [0, 0])[0] + time.perf_counter() - wall,
                               spent.get(name, [0, 0])[1] + _cpu() - cpu]  # fmt: skip

        return timed

    saved = inputs.load_histories, inputs.fill_baselines
    inputs.load_histories = wrap(saved[0], "load")  # type: ignore[assignment]
    inputs.fill_baselines = wrap(saved[1], "baselines")  # type: ignore[assignment]
    try:
        yield
    finally:
        inputs.load_histories, inputs.fill_baselines = saved


@dataclass(frozen=True)
class Measure:
    history: float  # wall, best run
    history_cpu: float  # self + git children, best run
    load: float
    baselines: float
    evaluate: float
    candidates: int
    changes: int


def _forget() -> None:
    """What a fresh process does not know: each timed run starts like a cron run."""
    from feedbackctl.authority import commits, logcache

    commits._EXACT.clear()
    logcache.forget()


def _logs(repo: Path) -> Path:
    return repo / "feedbackctl" / "logs"


def _cold(repo: Path) -> Callable[[], None]:
    """Nothing remembered: the first run on a clone (authority/logcache.py)."""

    def prepare() -> None:
        shutil.rmtree(_logs(repo), ignore_errors=True)
        _forget()

    return prepare


def _warm(repo: Path, metrics: Path) -> Callable[[], None]:
    """What a run WARM_BEHIND commits before the tip left in the git dir: the next cron run."""
    from feedbackctl.authority.gitrepo import GitRepo
    from feedbackctl.authority.snapshot import load_snapshot
    from feedbackctl.patterns.evaluation import evaluate

    saved = repo / "feedbackctl" / "bench-logs"
    if not saved.exists():
        shutil.rmtree(_logs(repo), ignore_errors=True)
        _forget()
        git = GitRepo.open(repo)
        git.git("update-ref", "refs/heads/bench-previous", f"main~{WARM_BEHIND}")
        evaluate(load_snapshot(git, "bench-previous"), str(metrics), datetime.fromtimestamp(DEFAULT_NOW, UTC))
        shutil.copytree(_logs(repo), saved)

    def prepare() -> None:
        shutil.rmtree(_logs(repo), ignore_errors=True)
        shutil.copytree(saved, _logs(repo))
        _forget()

    return prepare


def measure(repo: Path, metrics: Path, runs: int, prepare: Callable[[], None]) -> Measure:
    from feedbackctl.authority.gitrepo import GitRepo
    from feedbackctl.authority.snapshot import load_snapshot
    from feedbackctl.core.models import Outcome
    from feedbackctl.patterns.evaluation import _candidates, evaluate

    now = datetime.fromtimestamp(DEFAULT_NOW, UTC)
    git = GitRepo.open(repo)
    best: Measure | None = None
    for _ in range(runs):
        snapshot = load_snapshot(git, "main")
        prepare()
        spent: dict[str, list[float]] = {}
        with _timing(spent):
            began = time.perf_counter()
            ev = evaluate(snapshot, str(metrics), now)
            total = time.perf_counter() - began
        load, fill = spent.get("load", [0, 0]), spent.get("baselines", [0, 0])
        m = Measure(
            history=load[0] + fill[0],
            history_cpu=load[1] + fill[1],
            load=load[0],
            baselines=fill[0],
            evaluate=total,
            candidates=len(_candidates(ev.decisions)),
            changes=sum(d.outcome == Outcome.CHANGE for d in ev.decisions),
        )
        best = m if best is None or m.history < best.history else best
    assert best is not None
    return best


def bench(commits: int, claims: int, runs: int, cli: bool) -> list[Row]:
    paths = build(commits, claims)
    rows: list[Row] = []
    label = f"{commits // 1000}k commits ({paths.feedback_commits} with trailers)"
    for metrics, kind in ((paths.metrics, "typical"), (paths.hot, "every opted-in claim a candidate")):
        fresh = measure(paths.fresh, metrics, runs, _cold(paths.fresh))
        rows.append(Row("history", f"fresh repo, {kind}", fresh.history, None, "",
                        f"cpu {fresh.history_cpu:.3f}; evaluate {fresh.evaluate:.2f}s; "
                        f"{fresh.candidates} candidates"))  # fmt: skip
        shutil.rmtree(paths.history / "feedbackctl" / "bench-logs", ignore_errors=True)
        for graph, state in ((True, "cold"), (True, "warm"), (False, "cold"), (False, "warm")):
            _commit_graph(paths.history, graph)
            prepare = _cold(paths.history) if state == "cold" else _warm(paths.history, metrics)
            m = measure(paths.history, metrics, runs, prepare)
            extra = m.history - fresh.history
            remembered = "nothing remembered" if state == "cold" else f"remembered {WARM_BEHIND} commits back"
            rows.append(Row(
                "history",
                f"{label}, {'commit-graph + Bloom' if graph else 'no commit-graph'}, {remembered}, {kind}",
                m.history,
                fresh.history,
                f"+{extra:.3f}s (<= +{TARGET}s)",
                f"cpu {m.history_cpu:.3f}; load {m.load:.3f} + baselines {m.baselines:.3f}; "
                f"evaluate {m.evaluate:.2f}s; {m.candidates} candidates, {m.changes} changes",
            ))  # fmt: skip
    _commit_graph(paths.history, True)
    _cold(paths.history)()
    if cli:
        for repo, name in ((paths.fresh, "fresh repo"), (paths.history, label), (paths.history, "again")):
            args = ["autotune", "--repo", str(repo), "--metrics", str(paths.hot), "--now", str(DEFAULT_NOW),
                    "--dry-run", "--output", "json"]  # fmt: skip
            got = child("bench.history_bench", *args)
            rows.append(Row("cli", f"autotune --dry-run, {name}, hot metrics", got["seconds"], None, "",
                            f"exit {got['code']}"))  # fmt: skip
    return rows


def run_child(args: list[str]) -> None:
    from feedbackctl.cli import run

    began = time.perf_counter()
    with open(os.devnull, "w") as sink:
        saved, sys.stdout = sys.stdout, sink
        try:
            code = run(args)
        finally:
            sys.stdout = saved
    print(f'{{"seconds": {time.perf_counter() - began}, "code": {code}}}', file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--child":
        run_child(argv[1:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--commits", type=int, default=100_000)
    ap.add_argument("--claims", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5, help="best of N in-process runs")
    ap.add_argument("--no-cli", action="store_true", help="skip the whole-command timings")
    a = ap.parse_args(argv)
    print_rows(bench(a.commits, a.claims, a.runs, not a.no_cli), title="autotune history work")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
