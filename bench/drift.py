"""Benchmark drift capture on a fleet and history on a long history; prints a table.

    python -m bench.drift [DIR] --claims 10000 --drifted 100 --history 20000

Each command runs as a subprocess through the CLI, as cron would run it. Floors,
measured in the same run: interpreter start-up with feedbackctl imported, plus
for drift the git read and PyYAML C-loader parse of every claim and the live
file's load; for history one ``git log --first-parent --raw`` with messages.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import Row, print_rows
from bench.fleet import DEFAULT_NOW, fleet_claims, make_fleet, make_history_repo

ROOT = Path(__file__).resolve().parents[1]
NOW = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(DEFAULT_NOW))


def live_state(n_claims: int, drifted: int, seed: int = 0) -> dict[str, dict[str, int]]:
    """Every claim's live memory and timeout; ``drifted`` of them changed by hand."""
    live = {}
    every = max(1, n_claims // max(drifted, 1))
    for c in fleet_claims(n_claims, seed):
        timeout = (
            c.timeout * 2 if drifted and c.index % every == 0 and c.index // every < drifted else c.timeout
        )
        live[c.name] = {"lambdaMemory": c.memory, "lambdaTimeout": timeout}
    return live


def timed(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    began = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "feedbackctl", *args], env=env, capture_output=True, text=True, check=False
    )
    return time.perf_counter() - began, proc


def startup() -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import feedbackctl.cli"], env=env, check=True)
    return time.perf_counter() - began


def drift_floor(repo: Path, live: Path) -> float:
    import yaml

    from feedbackctl.authority.gitrepo import GitRepo

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    began = time.perf_counter()
    git = GitRepo.open(repo)
    listed = git.list_files(git.resolve("main"), ("",))
    blobs = git.read_blobs([b for _, b in listed])
    for _, b in listed:
        list(yaml.load_all(blobs[b], Loader=loader))
    json.loads(live.read_text())
    return startup() + time.perf_counter() - began


def history_floor(repo: Path) -> float:
    began = time.perf_counter()
    subprocess.run(
        ["git", "-C", str(repo), "log", "--first-parent", "--raw", "--format=%H%x00%aI%x00%B", "main"],
        check=True,
        capture_output=True,
    )
    return startup() + time.perf_counter() - began


def bench(root: Path, claims: int, drifted: int, history_commits: int) -> list[Row]:
    """drift report/capture on a fleet, history on a long history, each through the CLI."""
    root.mkdir(parents=True, exist_ok=True)
    fleet_root = root / f"fleet-{claims}"
    shutil.rmtree(fleet_root, ignore_errors=True)
    fleet = make_fleet(fleet_root, claims, points=2, step_seconds=3600)
    live = fleet_root / "live.json"
    live.write_text(json.dumps(live_state(claims, drifted)))
    repo = str(fleet.repo)
    rows: list[Row] = []

    floor = drift_floor(fleet.repo, live)

    def run(label: str, *cli: str) -> None:
        seconds, proc = timed(*cli, "--now", NOW, "--output", "json")
        if proc.returncode != 0:
            raise RuntimeError(f"{label}: exit {proc.returncode}: {proc.stderr[-1000:]}")
        out = json.loads(proc.stdout)
        if "entries" in out:
            note = f"{len(out['entries'])} entries"
        else:
            differ = sum(1 for d in out["drift"] if d["status"] in ("drift", "captured"))
            note = f"{differ} differ, {len(out['commits'])} commits, {out['inSync']} in sync"
        rows.append(Row("drift", label, seconds, floor, note=note))

    observed = f"{claims} claims x 2 fields"
    run(f"drift --mode report ({observed})", "drift", "--repo", repo, "--live", str(live), "--mode", "report")
    run(f"drift capture ({observed}, {drifted} drifted)", "drift", "--repo", repo, "--live", str(live))
    run(f"drift capture again, no change ({claims} claims)", "drift", "--repo", repo, "--live", str(live))
    if history_commits:
        hist_root = root / f"history-{history_commits}"
        shutil.rmtree(hist_root, ignore_errors=True)
        history = make_history_repo(hist_root, history_commits)
        hist = str(history.repo)
        floor = history_floor(history.repo)
        run(f"history, all ({history.commits} commits)", "history", "--repo", hist)
        run("history --pending-review", "history", "--repo", hist, "--pending-review")
        run("history --claim 'auth-*'", "history", "--repo", hist, "--claim", "auth-*")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drift", description=__doc__)
    parser.add_argument("dir", type=Path, nargs="?")
    parser.add_argument("--claims", type=int, default=10000)
    parser.add_argument("--drifted", type=int, default=100)
    parser.add_argument("--history", type=int, default=20000)
    args = parser.parse_args(argv)
    root = args.dir or Path(tempfile.mkdtemp(prefix="feedbackctl-bench-drift-"))
    print_rows(bench(root, args.claims, args.drifted, args.history), title="feedbackctl drift and history")
    print(f"(data in {root})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
