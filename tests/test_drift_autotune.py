"""A break-glass capture starts the field's settling window: auto-tune never reverts it inside it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.history import load_histories
from feedbackctl.authority.snapshot import load_snapshot
from feedbackctl.core.fleet import run as autotune_fleet
from feedbackctl.core.models import Decision, Outcome
from feedbackctl.patterns.inputs import gather
from tests.gitutil import commit_files, make_repo
from tests.test_drift import PROD, PROD_CLAIM, drift, example_claims, live_file, trailers

NOW = datetime(2026, 11, 8, tzinfo=UTC)
# Idle memory: metrics that argue for taking the incident's extra memory back.
IDLE = {
    "memory_utilization": 30.0,
    "used_memory_max": 150.0,
    "duration_p99": 2000.0,
    "errors": 0.0,
    "throttles": 0.0,
    "invocations": 500.0,
}


def write_metrics(root: Path, claim: str, values: dict[str, float]) -> Path:
    start = int((NOW - timedelta(days=7)).timestamp())
    stamps = range(start, int(NOW.timestamp()) + 1, 300)
    for metric, value in values.items():
        path = root / claim / f"{metric}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("timestamp,value\n" + "".join(f"{t},{value}\n" for t in stamps))
    return root


@pytest.fixture()
def setup(tmp_path: Path) -> tuple[Path, Path]:
    files = {PROD: example_claims()[PROD]}
    work, _ = make_repo(tmp_path, files, date="2026-10-01T00:00:00Z")
    metrics = write_metrics(tmp_path / "metrics", PROD_CLAIM, IDLE)
    return work, metrics


def memory_decision(work: Path, metrics: Path, now: datetime) -> Decision:
    snapshot = load_snapshot(GitRepo.open(work), None)
    gathered = gather(snapshot, str(metrics), now)
    assert gathered.problems == []
    policy = snapshot.settings.policy
    decisions = autotune_fleet(gathered.inputs, policy, now, gathered.source, gathered.histories.fleet)
    return next(d for d in decisions if d.claim == PROD_CLAIM and d.field == "lambdaMemory")


def test_control_the_metrics_do_argue_for_lowering_memory(setup) -> None:
    work, metrics = setup
    text = (work / PROD).read_text().replace("lambdaMemory: 256", "lambdaMemory: 512")
    commit_files(work, {PROD: text}, "Raise prod memory (reviewed)", "2026-11-05T00:00:00Z")
    d = memory_decision(work, metrics, NOW)
    assert d.outcome == Outcome.CHANGE
    assert (d.current, d.direction, d.rule) == (512, "decrease", "memory-idle")
    assert d.recommended is not None and d.recommended < 512


def test_a_captured_value_is_never_reverted_while_it_settles(setup, tmp_path) -> None:
    work, metrics = setup
    captured_at = NOW - timedelta(minutes=30)
    live = live_file(tmp_path, {PROD_CLAIM: {"lambdaMemory": 512}})
    r = drift(work, live, now=captured_at.isoformat())
    assert r.code == 0, r.stderr
    assert trailers(work, "main")["Feedback-Kind"] == "drift-capture"

    # History treats the capture as a change of the field, at the capture's time.
    snapshot = load_snapshot(GitRepo.open(work), None)
    histories = load_histories(snapshot.repo, snapshot.commit, snapshot.claims, snapshot.settings.policy, NOW)
    last = histories.for_claim(PROD_CLAIM)["lambdaMemory"].last_change
    assert last is not None and (last.kind, last.old, last.new, last.at) == (
        "drift-capture",
        256,
        512,
        captured_at,
    )

    d = memory_decision(work, metrics, NOW)
    assert d.outcome == Outcome.BLOCKED
    assert d.blocked_by == ("settling",)
    assert "changed by drift-capture 30m ago" in d.reason
    assert not d.changes_value

    # Later inside the window, still blocked; the claim keeps the captured value.
    later = memory_decision(work, metrics, captured_at + timedelta(minutes=119))
    assert later.outcome == Outcome.BLOCKED and later.blocked_by == ("settling",)
    assert "lambdaMemory: 512" in (work / PROD).read_text()
