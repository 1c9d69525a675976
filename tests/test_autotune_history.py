"""The windowed history autotune reads decides exactly like a full scan of the same history.

``load_histories`` with a value window and the opted-in claims only, then
``fill_baselines`` for the wanted fields, must give every opted-in field the
same decision as the full 30-day scan of every claim plus a full baseline
search. The repos are a year of generated history: human edits without
trailers (often undone again), auto-tunes with trailers, flapping included.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bench.fleet import make_history_repo
from feedbackctl.authority.claimwalks import has_bloom_filters
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.history import Histories, fill_baselines, load_histories, value_window
from feedbackctl.authority.snapshot import load_snapshot
from feedbackctl.core.decide import ClaimInputs, autotune
from feedbackctl.core.guards import rate_limit
from feedbackctl.core.models import Claim, Decision, Series
from feedbackctl.core.policy import Policy
from feedbackctl.core.tuning import parse_autotune
from tests.corefix import SOURCE
from tests.gitutil import git_out


def _pressure(claim: Claim, now: datetime) -> dict[str, Series]:
    """Every claim under memory pressure for a day, so every opted-in field is a candidate."""
    ts = np.arange(int(now.timestamp()) - 26 * 3600, int(now.timestamp()) + 1, 300, dtype=np.int64)
    memory = float(claim.value("lambdaMemory"))
    flat = lambda v: np.full(ts.shape[0], v, dtype=np.float64)  # noqa: E731
    return {
        "memory_utilization": Series("memory_utilization", ts, flat(95.0)),
        "used_memory_max": Series("used_memory_max", ts, flat(memory * 0.95)),
        "duration_p99": Series("duration_p99", ts, flat(1000.0)),
        "errors": Series("errors", ts, flat(0.0)),
        "throttles": Series("throttles", ts, flat(0.0)),
    }


def _decide(claims: list[Claim], histories: Histories, policy: Policy, now: datetime) -> dict[str, Decision]:
    decisions = [
        d
        for c in claims
        for d in autotune(ClaimInputs(c, _pressure(c, now), histories.for_claim(c.name)), policy, now, SOURCE)
    ]
    return {
        d.claim: d
        for d in rate_limit(decisions, histories.fleet, now, policy.limits)
        if d.field == "lambdaMemory"
    }


@pytest.fixture(scope="module")
def history_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, float]:
    """The same history twice: as imported, and with a commit-graph with Bloom filters."""
    made = make_history_repo(tmp_path_factory.mktemp("hist"), 6000, n_claims=100, seed=2, bare=True)
    graphed = made.repo.parent / "graphed.git"
    shutil.copytree(made.repo, graphed)
    git_out(graphed, "commit-graph", "write", "--reachable", "--changed-paths")
    return made.repo, graphed, made.now


@pytest.mark.parametrize("graph", [False, True], ids=["no-commit-graph", "bloom"])
@pytest.mark.parametrize("days_back", [0, 20, 90, 200])
def test_windowed_history_decides_like_a_full_scan(
    history_repo: tuple[Path, Path, float], days_back: int, graph: bool
) -> None:
    plain, graphed, end = history_repo
    repo = GitRepo.open(graphed if graph else plain)
    assert has_bloom_filters(repo) is graph
    now = datetime.fromtimestamp(end, UTC) - timedelta(days=days_back)
    at = repo.git("rev-list", "-1", f"--before=@{int(now.timestamp())}", "main").decode().strip()
    snap = load_snapshot(repo, "main", at=at)
    policy = snap.settings.policy
    claims = snap.claims
    tuned = [c for c in claims if parse_autotune(c).enabled]
    assert len(tuned) >= 10

    full = load_histories(repo, at, claims, policy, now)
    full = fill_baselines(repo, at, tuned, full)
    windowed = load_histories(
        repo,
        at,
        claims,
        policy,
        now,
        value_claims={c.name for c in tuned},
        value_span=value_window(policy, claims),
    )
    windowed = fill_baselines(repo, at, tuned, windowed, wanted={(c.name, "lambdaMemory") for c in tuned})

    for c in tuned:
        assert (
            windowed.fields[c.name]["lambdaMemory"].baseline == full.fields[c.name]["lambdaMemory"].baseline
        )
    expected, got = _decide(tuned, full, policy, now), _decide(tuned, windowed, policy, now)
    for name, d in expected.items():
        g = got[name]
        assert (g.outcome, g.recommended, g.blocked_by, g.reason) == (
            d.outcome,
            d.recommended,
            d.blocked_by,
            d.reason,
        )
