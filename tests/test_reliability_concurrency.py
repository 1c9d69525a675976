"""Concurrent ``autotune`` runs: against one checkout, and from clones pushing to one bare origin.

Every round puts three claims under memory pressure and starts every process
at once, so they all race for the same three changes. Afterwards each change
is on the branch exactly once (256 -> 384 for each round's claims, nothing
for the others), no commit repeats a trailer, no lock file is left, every
checkout is clean, and with clones every clone was fast-forwarded to what was
pushed. The harness is ``bench/chaos.py``; ``python -m bench.chaos
concurrency`` (or ``pytest -m slow``) runs 8 processes x 50 rounds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import PER_ROUND, ConcurrencyReport, concurrency


def _check(report: ConcurrencyReport, rounds: int) -> None:
    assert report.failures == [], "\n".join(report.failures)
    assert report.applied == PER_ROUND * rounds


@pytest.mark.parametrize(("mode", "procs", "rounds"), [("one-repo", 4, 5), ("clones", 3, 4)])
def test_concurrent_runs_apply_every_change_exactly_once(
    mode: str, procs: int, rounds: int, tmp_path: Path, git_env: Path
) -> None:
    _check(concurrency(tmp_path, procs, rounds, mode), rounds)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["one-repo", "clones"])
def test_eight_processes_fifty_rounds(mode: str, tmp_path: Path, git_env: Path) -> None:
    _check(concurrency(tmp_path, 8, 50, mode), 50)
