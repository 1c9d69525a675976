"""Benchmark drift capture on a fleet and history on a long history; prints a table.

    python -m bench.drift [DIR] --claims 10000 --drifted 100 --history 20000

Each command runs as a subprocess through the CLI, as cron would run it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drift", description=__doc__)
    parser.add_argument("dir", type=Path, nargs="?")
    parser.add_argument("--claims", type=int, default=10000)
    parser.add_argument("--drifted", type=int, default=100)
    parser.add_argument("--history", type=int, default=20000)
    args = parser.parse_args(argv)
    root = args.dir or Path(tempfile.mkdtemp(prefix="feedbackctl-bench-drift-"))
    fleet = make_fleet(root, args.claims, points=2, step_seconds=3600)
    live = root / "live.json"
    live.write_text(json.dumps(live_state(args.claims, args.drifted)))
    history = make_history_repo(root, args.history)
    repo = str(fleet.repo)
    rows: list[tuple[str, float, str]] = []

    def run(label: str, *cli: str) -> None:
        seconds, proc = timed(*cli, "--now", NOW, "--output", "json")
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            raise SystemExit(f"{label}: exit {proc.returncode}")
        out = json.loads(proc.stdout)
        if "entries" in out:
            note = f"{len(out['entries'])} entries"
        else:
            differ = sum(1 for d in out["drift"] if d["status"] in ("drift", "captured"))
            note = f"{differ} differ, {len(out['commits'])} commits, {out['inSync']} in sync"
        rows.append((label, seconds, note))

    observed = f"{args.claims} claims x 2 fields"
    run(f"drift --mode report ({observed})", "drift", "--repo", repo, "--live", str(live), "--mode", "report")
    run(f"drift capture ({observed})", "drift", "--repo", repo, "--live", str(live))
    run("drift capture again (no change)", "drift", "--repo", repo, "--live", str(live))
    hist = str(history.repo)
    run(f"history, all ({history.commits} commits)", "history", "--repo", hist)
    run("history --pending-review", "history", "--repo", hist, "--pending-review")
    run("history --claim 'auth-*'", "history", "--repo", hist, "--claim", "auth-*")

    width = max(len(r[0]) for r in rows)
    print(f"{'command':<{width}}  {'seconds':>8}  result")
    for label, seconds, note in rows:
        print(f"{label:<{width}}  {seconds:8.2f}  {note}")
    print(f"(data in {root})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
