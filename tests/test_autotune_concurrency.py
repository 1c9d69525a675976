"""Cron safety: concurrent runs, pushes to one origin, kills at random instants."""

from __future__ import annotations

import os
import random
import time
from datetime import timedelta
from pathlib import Path

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.core.results import AutotuneResult
from feedbackctl.patterns.autotune import JITTER_SECONDS, RunOptions, run_autotune
from tests.autotunefix import (
    PROD,
    PROD_CLAIM,
    PROD_PATH,
    T0,
    autotune_args,
    decision,
    example_metrics,
    finish,
    memory_of,
    ok_json,
    run_on,
    spawn,
    with_autotune,
)
from tests.gitutil import RepoFactory, git_out

WIDE = """  autoTune:
    enabled: true
    memoryBounds: {min: 128, max: 2048}
    cooldownMinutes: 60
    trigger: {metric: memory_utilization, threshold: 90, sustainedMinutes: 30}
"""


def auto_tunes(repo: Path, rev: str = "main") -> list[tuple[str, str, str, str]]:
    """(claim, field, from, to) of every auto-tune commit, newest first."""
    fmt = "%(trailers:key=Feedback-Kind,valueonly,separator=%x2C)|%(trailers:key=Feedback-Claim,valueonly)"
    out = []
    for sha in git_out(repo, "rev-list", rev).split():
        kind, _, _ = git_out(repo, "log", "-1", f"--format={fmt}", sha).partition("|")
        if kind.strip() != "auto-tune":
            continue
        values = [
            git_out(repo, "log", "-1", f"--format=%(trailers:key=Feedback-{k},valueonly)", sha).strip()
            for k in ("Claim", "Field", "From", "To")
        ]
        out.append((values[0], values[1], values[2], values[3]))
    return out


def test_two_runs_at_the_same_instant_apply_the_change_once(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    work, _ = repo_factory({PROD_PATH: PROD_CLAIM})
    bare = tmp_path / "bare.git"
    git_out(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    metrics = example_metrics(tmp_path / "metrics")
    for repo in (work, bare):
        runs = [spawn(*autotune_args(repo, metrics, T0)) for _ in range(2)]
        results = [ok_json(finish(p)) for p in runs]
        statuses = sorted(decision(r)["status"] for r in results)
        assert statuses == ["applied", "blocked"]
        loser = next(r for r in results if decision(r)["status"] == "blocked")
        assert decision(loser)["blockedBy"] == ["cooldown"]
        assert auto_tunes(repo) == [(PROD, "spec.lambdaMemory", "256", "384")]
        assert memory_of(repo) == 384
    assert git_out(work, "status", "--porcelain") == ""


def test_clones_pushing_to_one_origin_apply_each_change_once(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    names = ["app-a", "app-b", "app-c"]
    text = with_autotune(PROD_CLAIM, WIDE)
    work, origin = repo_factory(
        {f"claims/{n}.yaml": text.replace("name: messagewall-prod", f"name: {n}") for n in names}
    )
    clones = []
    for i in range(3):
        clone = tmp_path / f"clone{i}"
        git_out(tmp_path, "clone", "-q", str(origin), str(clone))
        clones.append(clone)
    metrics = tmp_path / "metrics"
    start = T0 - timedelta(hours=26)
    for rnd in range(3):
        now = T0 + timedelta(hours=3 * rnd)
        size = 256 + 128 * rnd  # what the claims have by then
        for n in names:  # 95 % busy at every size: every round asks for one more step
            run_on(metrics, n, start, now, memory=size, used=0.95 * size, append=rnd > 0)
        start = now + timedelta(minutes=5)
        runs = [spawn(*autotune_args(c, metrics, now, "--push")) for c in clones]
        for p in runs:
            ok_json(finish(p))
    tunes = auto_tunes(origin)
    assert len(tunes) == len(set(tunes)) == 6  # each change exactly once
    assert sorted(tunes) == sorted(
        (n, "spec.lambdaMemory", a, b) for n in names for a, b in (("256", "384"), ("384", "512"))
    )
    tip = git_out(origin, "rev-parse", "main")
    for clone in clones:  # every clone fast-forwarded to what was pushed, files included
        assert git_out(clone, "rev-parse", "main") == tip
        assert git_out(clone, "status", "--porcelain") == ""
        assert memory_of(clone, path="claims/app-a.yaml") == 512
    assert git_out(origin, "fsck", "--no-dangling") == ""


HOOK = """#!/bin/sh
# Simulates another writer landing a commit while this push is in flight.
if [ ! -f "$GIT_DIR/moved-once" ]; then
  touch "$GIT_DIR/moved-once"
  env -u GIT_QUARANTINE_PATH git update-ref refs/heads/main "$(git rev-parse refs/pending/human)"
fi
exit 0
"""


def test_push_rejected_by_a_moving_remote_fetches_re_evaluates_and_retries(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    work, origin = repo_factory({PROD_PATH: PROD_CLAIM})
    # Someone else's commit (a README, not the claim), waiting in origin to land mid-push.
    other = tmp_path / "other"
    git_out(tmp_path, "clone", "-q", str(origin), str(other))
    (other / "README.md").write_text("claims for the message wall\n")
    git_out(other, "add", "README.md")
    # Dated like the commit it follows: a writer refuses a --now before the tip it builds on.
    when = git_out(work, "log", "-1", "--format=%cI")
    dated = {**os.environ, "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
    git_out(other, "commit", "-q", "-m", "Add a README", env=dated)
    git_out(other, "push", "-q", "origin", "HEAD:refs/pending/human")
    human = git_out(other, "rev-parse", "HEAD")
    hook = origin / "hooks" / "pre-receive"
    hook.write_text(HOOK)
    hook.chmod(0o755)
    metrics = example_metrics(tmp_path / "metrics")
    slept: list[float] = []

    out = run_autotune(GitRepo.open(work), None, str(metrics), T0, RunOptions(push=True, sleep=slept.append))

    assert out.report.result_as(AutotuneResult).attempts == 2
    assert len(slept) == 1 and 0 <= slept[0] < JITTER_SECONDS
    assert out.status[(PROD, "lambdaMemory")] == "applied"
    assert git_out(origin, "rev-parse", "main~1") == human  # rebuilt on the commit that won
    assert auto_tunes(origin) == [(PROD, "spec.lambdaMemory", "256", "384")]
    assert git_out(work, "rev-parse", "main") == git_out(origin, "rev-parse", "main")
    assert (work / "README.md").exists() and git_out(work, "status", "--porcelain") == ""


def test_push_leaves_a_dirty_local_checkout_alone_and_says_so(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    work, origin = repo_factory({PROD_PATH: PROD_CLAIM})
    (work / PROD_PATH).write_text(PROD_CLAIM.replace("lambdaTimeout: 30", "lambdaTimeout: 45"))
    local = git_out(work, "rev-parse", "main")
    metrics = example_metrics(tmp_path / "metrics")

    data = ok_json(finish(spawn(*autotune_args(work, metrics, T0, "--push"))))

    assert decision(data)["status"] == "applied"
    assert memory_of(origin) == 384
    assert git_out(work, "rev-parse", "main") == local
    assert "lambdaTimeout: 45" in (work / PROD_PATH).read_text()
    assert any(e["type"] == "local-branch" and "uncommitted changes" in e["message"] for e in data["events"])


def test_kill_9_at_random_instants_leaves_a_valid_repo_and_the_next_run_converges(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    work, _ = repo_factory({PROD_PATH: PROD_CLAIM})
    metrics = example_metrics(tmp_path / "metrics")
    rng = random.Random(20261108)
    for trial in range(6):
        repo = tmp_path / f"kill{trial}.git"
        git_out(tmp_path, "clone", "-q", "--bare", str(work), str(repo))
        proc = spawn(*autotune_args(repo, metrics, T0))
        time.sleep(rng.uniform(0.0, 1.5))
        proc.kill()
        proc.wait()
        assert git_out(repo, "fsck", "--no-dangling") == ""
        assert memory_of(repo) in (256, 384)
        ok_json(finish(spawn(*autotune_args(repo, metrics, T0))))
        assert auto_tunes(repo) == [(PROD, "spec.lambdaMemory", "256", "384")]
        assert git_out(repo, "fsck", "--no-dangling") == ""
