"""Rendered claims through analyze, the history reader, the core guards and the render cache."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.history import fill_baselines, load_histories
from feedbackctl.authority.snapshot import load_snapshot
from feedbackctl.authority.writer import Plan, Staging, trailer, write
from feedbackctl.core.decide import autotune
from feedbackctl.core.models import Outcome
from feedbackctl.patterns.inputs import gather
from tests.clirun import cli
from tests.gitutil import RepoFactory, commit_files, git_out
from tests.kustomizefix import (
    BASE,
    NOW,
    PLAIN,
    RENDERED,
    corpus_cli,
    corpus_files,
    corpus_repo,
    metrics_dir,
    overlay,
    replace_in,
)

WHEN = datetime(2026, 11, 8, tzinfo=UTC)
PROD_EAST = overlay("prod-east")
AUTOTUNE = """\
  autoTune:
    enabled: true
    memoryBounds: {min: 128, max: 512}
    timeoutBounds: {min: 5, max: 60}
"""


def by(out: dict, claim: str, field: str) -> dict:  # type: ignore[type-arg]
    return next(d for d in out["decisions"] if (d["claim"], d["field"]) == (claim, f"spec.{field}"))


def test_analyze_decides_for_all_six_claims(repo_factory: RepoFactory, tmp_path: Path) -> None:
    work = corpus_repo(repo_factory)
    r = corpus_cli("analyze", work, tmp_path)
    assert r.code == 0, r.stderr
    out = r.json()
    assert out["problems"] == []
    assert sorted({d["claim"] for d in out["decisions"]}) == sorted((*PLAIN, *RENDERED))
    east = by(out, "messagewall-prod-east", "lambdaMemory")
    assert (east["current"], east["recommended"], east["outcome"], east["risk"]) == (
        256,
        384,
        "change",
        "MEDIUM",
    )
    # dev-east's timeout comes from the base it shares with dev-west: a batch, risk elevated.
    dev = by(out, "messagewall-dev-east", "lambdaTimeout")
    assert (dev["current"], dev["recommended"], dev["risk"]) == (10, 5, "MEDIUM")
    shared = next(n for n in dev["notes"] if n["rule"] == "shared-value")
    assert shared["detail"] == (
        "the value is shared with messagewall-dev-west: a change is a batch "
        "(LOW base + batch of 2 claims elevator)"
    )
    assert by(out, "messagewall-dev", "lambdaTimeout")["risk"] == "LOW"  # the plain claim is alone


def test_analyze_write_puts_the_sidecar_beside_the_overlay(repo_factory: RepoFactory, tmp_path: Path) -> None:
    work = corpus_repo(repo_factory)
    metrics = str(metrics_dir(tmp_path))
    r = cli("analyze", "--repo", str(work), "--metrics", metrics, "--now", NOW, "--write", "--output", "json")
    assert r.code == 0, r.stderr
    files = r.json()["commits"][0]["files"]
    assert "infra/claims/overlays/prod-east/messagewall-prod-east.recommendation.yaml" in files
    # The sidecar inside the overlay directory is neither a claim nor a kustomize input.
    s = load_snapshot(GitRepo.open(work), None)
    assert s.errors == [] and sorted(c.name for c in s.claims) == sorted((*PLAIN, *RENDERED))
    again = cli("analyze", "--repo", str(work), "--metrics", metrics, "--now", NOW, "--output", "json")
    assert again.code == 0 and by(again.json(), "messagewall-prod-east", "lambdaMemory")["recommended"] == 384


def test_human_edits_of_an_overlay_and_of_the_base_are_in_history(repo_factory: RepoFactory) -> None:
    work = corpus_repo(repo_factory)
    commit_files(
        work,
        {PROD_EAST: replace_in(PROD_EAST, "value: 256", "value: 320")},
        "raise prod-east memory",
        "2026-11-07T20:00:00Z",
    )
    commit_files(
        work,
        {BASE: replace_in(BASE, "lambdaTimeout: 10", "lambdaTimeout: 12")},
        "dev timeouts",
        "2026-11-07T21:00:00Z",
    )
    s = load_snapshot(GitRepo.open(work), None)
    h = load_histories(s.repo, s.commit, s.claims, s.settings.policy, WHEN)
    east = h.for_claim("messagewall-prod-east")["lambdaMemory"]
    assert [(c.kind, c.old, c.new) for c in east.changes] == [("human", 256, 320)]
    assert east.baseline == 320
    for dev in ("messagewall-dev-east", "messagewall-dev-west"):
        timeout = h.for_claim(dev)["lambdaTimeout"]
        assert [(c.kind, c.old, c.new) for c in timeout.changes] == [("human", 10, 12)]
    # prod overlays set their own timeout: the base edit is not a change of theirs.
    assert h.for_claim("messagewall-prod-west")["lambdaTimeout"].changes == ()
    assert h.for_claim("messagewall-prod-east")["lambdaTimeout"].changes == ()


def test_an_auto_tune_of_an_overlay_is_history_by_trailer_not_a_human_edit(repo_factory: RepoFactory) -> None:
    work = corpus_repo(repo_factory)
    s = load_snapshot(GitRepo.open(work), None)
    east = s.claim("messagewall-prod-east")
    assert east is not None
    staging = Staging(s.repo, s.commit)
    staging.set_value(east, "lambdaMemory", 384)
    plan = Plan("auto-tune", trailers=[trailer("auto-tune", east.name, "lambdaMemory", old=256, new=384)])
    plan.edits = staging.edits()
    write(s.repo, s.branch, s.commit, plan, WHEN)
    s2 = load_snapshot(GitRepo.open(work), None)
    h = fill_baselines(
        s2.repo, s2.commit, s2.claims, load_histories(s2.repo, s2.commit, s2.claims, s2.settings.policy, WHEN)
    )
    memory = h.for_claim("messagewall-prod-east")["lambdaMemory"]
    assert [(c.kind, c.old, c.new) for c in memory.changes] == [("auto-tune", 256, 384)]
    assert memory.baseline == 256  # set by the human commit that created the overlay


def test_autotune_routes_a_shared_base_value_to_a_proposal(repo_factory: RepoFactory, tmp_path: Path) -> None:
    text = corpus_files()[BASE].replace("  eventSource:", AUTOTUNE + "  eventSource:")
    work = corpus_repo(repo_factory, {BASE: text})
    s = load_snapshot(GitRepo.open(work), None)
    gathered = gather(s, str(metrics_dir(tmp_path)), WHEN)
    assert gathered.problems == []
    decisions = {
        (d.claim, d.field): d
        for i in gathered.inputs
        for d in autotune(i, s.settings.policy, WHEN, gathered.source)
    }
    east = decisions[("messagewall-prod-east", "lambdaMemory")]
    assert (east.outcome, east.recommended) == (Outcome.CHANGE, 384)
    dev = decisions[("messagewall-dev-east", "lambdaTimeout")]
    assert dev.outcome == Outcome.PROPOSE and dev.blocked_by == ("shared-value",)
    assert dev.risk == "MEDIUM"
    assert dev.reason.startswith(
        f"shared-value: spec.lambdaTimeout is set in {BASE}:20, shared with messagewall-dev-west: "
        "editing it there is a batch change (MEDIUM: LOW base + batch of 2 claims elevator)"
    )


@pytest.fixture
def counting_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The real kubectl behind a wrapper that logs every run (FEEDBACKCTL_KUBECTL)."""
    log = tmp_path / "kubectl.log"
    log.write_text("")
    wrapper = tmp_path / "kubectl-counting"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec kubectl "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("FEEDBACKCTL_KUBECTL", str(wrapper))
    return log


def runs(log: Path) -> int:
    return len(log.read_text().splitlines())


def test_renders_are_one_per_overlay_and_cached_by_content(
    repo_factory: RepoFactory, counting_kubectl: Path
) -> None:
    # Content no other test renders, so this process's cache starts cold for it.
    work = corpus_repo(repo_factory, {BASE: corpus_files()[BASE] + "# cache test\n"})
    s = load_snapshot(GitRepo.open(work), None)
    assert runs(counting_kubectl) == 5  # four overlays, and the base once (to trace through it)
    s = load_snapshot(GitRepo.open(work), None)
    assert runs(counting_kubectl) == 5
    east = s.claim("messagewall-prod-east")
    assert east is not None
    Staging(s.repo, s.commit).set_value(east, "lambdaMemory", 384)
    assert runs(counting_kubectl) == 6  # only prod-east's inputs changed: one re-render
    dev = s.claim("messagewall-dev-west")
    assert dev is not None
    Staging(s.repo, s.commit).set_value(dev, "lambdaTimeout", 15, batch=True)
    assert runs(counting_kubectl) == 10  # the base feeds all four overlays
    assert git_out(work, "status", "--porcelain") == ""  # verification never touches the work tree


def test_drift_capture_of_a_rendered_claim_edits_its_overlay(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    work = corpus_repo(repo_factory)
    live = tmp_path / "live.yaml"
    live.write_text(
        "messagewall-prod-east:\n  lambdaMemory: 512\nmessagewall-dev-east:\n  lambdaTimeout: 20\n"
    )
    base = git_out(work, "rev-parse", "HEAD")
    r = cli("drift", "--repo", str(work), "--live", str(live), "--now", NOW, "--output", "json")
    assert r.code == 1  # dev-east's timeout is shared through the base: not captured
    assert git_out(work, "diff", "--name-only", base, "HEAD") == PROD_EAST
    diff = git_out(work, "diff", "-U0", base, "HEAD").splitlines()
    assert [ln for ln in diff if ln[:1] in "+-" and not ln.startswith(("+++", "---"))] == [
        "-        value: 256",
        "+        value: 512",
    ]
    assert "shared with messagewall-dev-west" in r.stderr
