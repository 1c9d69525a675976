"""The feedback source registry: the seed's list as written, trust, per-source cooldown,
single spikes and settling after a deployment."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import yaml

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.snapshot import load_snapshot
from feedbackctl.authority.writer import Plan, Staging, trailer, write
from feedbackctl.core.decide import TRUST_WINDOW_FACTOR, autotune, recommend
from feedbackctl.core.fleet import run as autotune_fleet
from feedbackctl.core.models import Outcome, Series
from feedbackctl.core.policy import Source
from feedbackctl.core.policy_parse import parse_sources
from feedbackctl.patterns.inputs import gather
from tests.clirun import ROOT, cli
from tests.corefix import NOW, SOURCE, claim, healthy, inputs, policy, series
from tests.cwdata import write_fixture
from tests.gitutil import RepoFactory, commit_files

NOW_ISO = "2026-11-08T00:00:00Z"

# The seed's "Feedback Sources" block, verbatim.
SEED = """\
# Explicit feedback source registration
feedbackSources:
  - name: cloudwatch-metrics
    type: pull
    endpoint: arn:aws:cloudwatch:...
    trustLevel: high
    cooldown: 60m

  - name: cost-explorer
    type: pull
    endpoint: arn:aws:ce:...
    trustLevel: high
    cooldown: 24h  # Cost data is daily

  - name: agent-observation
    type: push
    trustLevel: medium
    cooldown: 30m
    requiresProposal: true  # Cannot auto-apply
"""


def test_the_seed_registry_is_accepted_exactly_as_written() -> None:
    sources = parse_sources(yaml.safe_load(SEED), "policies/sources.yaml")
    assert sources["cloudwatch-metrics"] == Source(
        "cloudwatch-metrics", "pull", "high", 60, False, "arn:aws:cloudwatch:..."
    )
    assert sources["cost-explorer"].cooldown_minutes == 24 * 60
    agent = sources["agent-observation"]
    assert (agent.type, agent.trust_level, agent.cooldown_minutes, agent.requires_proposal) == (
        "push", "medium", 30, True,
    )  # fmt: skip


def test_a_repo_registry_overrides_by_name_and_a_bad_entry_is_a_usage_error(
    repo_factory: RepoFactory,
) -> None:
    prod = (ROOT / "examples/messagewall/claims/messagewall-prod.yaml").read_text()
    extra = "  - name: cross-account\n    type: pull\n    trustLevel: very-low\n    cooldown: 6h\n"
    work, _ = repo_factory({"claims/prod.yaml": prod, "policies/sources.yaml": SEED + extra})
    snapshot = load_snapshot(GitRepo.open(work), None)
    sources = snapshot.settings.policy.sources
    assert sources["cross-account"].trust_level == "very-low"
    assert sources["cross-account"].cooldown_minutes == 360
    assert "metric-fixtures" in sources  # the shipped entries stay
    commit_files(work, {"policies/sources.yaml": SEED.replace("type: push", "type: webhook")}, "Bad type")
    result = cli("analyze", "--repo", str(work), "--metrics", str(ROOT / "examples/messagewall/metrics"))
    assert result.code == 2
    assert "policies/sources.yaml: feedbackSources[" in result.stderr
    assert ".type: expected one of pull, push, got 'webhook'" in result.stderr


# --- trust levels ------------------------------------------------------------------------------


def pressure_for(minutes: int) -> dict[str, Series]:
    """Memory pressure only over the last ``minutes``, calm before."""
    s = healthy()
    s["memory_utilization"] = series("memory_utilization", lambda a: 95.0 if a <= minutes else 50.0)
    return s


def memory(decisions):
    return next(d for d in decisions if d.field == "lambdaMemory")


def test_the_trust_table() -> None:
    assert TRUST_WINDOW_FACTOR == {"high": 1, "medium": 1, "low": 2, "very-low": 4}


def test_lower_trust_needs_a_longer_sustained_window() -> None:
    c = claim(autotune=False)  # the policy rule's 30-minute window
    for trust, minutes, outcome in (
        ("high", 45, Outcome.CHANGE),
        ("low", 45, Outcome.HOLD),  # needs 60 minutes
        ("low", 75, Outcome.CHANGE),
        ("very-low", 75, Outcome.HOLD),  # needs 120 minutes
        ("very-low", 150, Outcome.CHANGE),
    ):
        source = Source("s", "pull", trust, 60)
        d = memory(recommend(inputs(c, pressure_for(minutes), baseline=256), policy(), NOW, source))
        assert d.outcome == outcome, (trust, minutes, d.reason)


def test_low_and_very_low_trust_never_auto_apply() -> None:
    for trust in ("low", "very-low"):
        source = Source("s", "pull", trust, 60)
        d = memory(autotune(inputs(claim(), healthy(), baseline=256), policy(), NOW, source))
        assert d.outcome == Outcome.PROPOSE
        assert d.blocked_by == ("trust",)


def test_a_requires_proposal_source_only_proposes_even_with_high_trust() -> None:
    source = Source("pager-agent", "push", "high", 30, requires_proposal=True)
    d = memory(autotune(inputs(claim(), healthy(), baseline=256), policy(), NOW, source))
    assert d.outcome == Outcome.PROPOSE and d.blocked_by == ("trust",)


# --- single spikes and settling ------------------------------------------------------------------


def test_a_single_spike_never_acts() -> None:
    s = healthy()
    s["memory_utilization"] = series("memory_utilization", lambda a: 99.0 if a == 10 else 60.0)
    d = memory(autotune(inputs(claim(), s, baseline=256), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.HOLD
    assert "did not hold" in d.reason


def test_a_burst_shorter_than_the_window_never_acts() -> None:
    d = memory(autotune(inputs(claim(), pressure_for(20), baseline=256), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.HOLD


def test_metrics_from_the_first_hours_after_a_deployment_are_ignored(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    """A human deploys more memory an hour before --now: the pressure data describe the old size."""
    prod = (ROOT / "examples/messagewall/claims/messagewall-prod.yaml").read_text()
    work, _ = repo_factory({"claims/prod.yaml": prod}, date="2026-10-01T00:00:00Z")
    metrics = ROOT / "examples/messagewall/metrics"
    before = cli(
        "analyze", "--repo", str(work), "--metrics", str(metrics), "--now", NOW_ISO, "--output", "json"
    )
    assert _memory(before.json())["outcome"] == "change"

    commit_files(
        work,
        {"claims/prod.yaml": prod.replace("lambdaMemory: 256", "lambdaMemory: 320")},
        "Deploy 320 MB",
        date="2026-11-07T23:00:00Z",
    )
    after = cli(
        "analyze", "--repo", str(work), "--metrics", str(metrics), "--now", NOW_ISO, "--output", "json"
    )
    d = _memory(after.json())
    assert d["outcome"] == "not-enough-data"
    assert "since the last change (settling)" in d["reason"]


def _memory(report: dict) -> dict:
    return next(
        d
        for d in report["decisions"]
        if d["claim"] == "messagewall-prod" and d["field"] == "spec.lambdaMemory"
    )


# --- per-source cooldown, end to end from Feedback-Source trailers -------------------------------


def _pressure_fixtures(root: Path) -> Path:
    for name, s in healthy(memory=256, used=240, timeout=35).items():
        write_fixture(
            root, "messagewall-prod", name, list(zip(s.ts.tolist(), s.values.tolist(), strict=True))
        )
    return root


def _feedback_commit(work: Path, kind: str, source: str, at: datetime) -> None:
    repo = GitRepo.open(work)
    snapshot = load_snapshot(repo, None)
    c = snapshot.claim("messagewall-prod")
    assert c is not None
    staging = Staging(repo, snapshot.commit)
    if kind == "auto-tune":
        staging.set_value(c, "lambdaTimeout", 35)
    else:  # a marker: the sidecar, not the claim
        staging.put("claims/messagewall-prod.recommendation.yaml", "kind: ConfigurationRecommendation\n")
    plan = Plan(
        subject=f"feedbackctl: {kind}",
        trailers=[trailer(kind, "messagewall-prod", "lambdaTimeout", old=30, new=35, source=source)],
        edits=staging.edits(),
    )
    write(repo, snapshot.branch, snapshot.commit, plan, at)


def _autotune_memory(work: Path, metrics: Path):
    snapshot = load_snapshot(GitRepo.open(work), None)
    gathered = gather(snapshot, str(metrics), NOW)
    assert gathered.problems == []
    decisions = autotune_fleet(
        gathered.inputs, snapshot.settings.policy, NOW, gathered.source, gathered.histories.fleet
    )
    return memory(decisions)


def test_a_source_waits_out_its_own_cooldown_counted_from_its_trailers(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    prod = (ROOT / "examples/messagewall/claims/messagewall-prod.yaml").read_text()
    metrics = _pressure_fixtures(tmp_path / "metrics")
    work, _ = repo_factory({"claims/prod.yaml": prod}, date="2026-10-01T00:00:00Z")
    assert _autotune_memory(work, metrics).outcome == Outcome.CHANGE

    # The fixtures source (cooldown 60m) auto-tuned the claim's timeout 20 minutes ago.
    _feedback_commit(work, "auto-tune", "metric-fixtures", NOW - timedelta(minutes=20))
    d = _autotune_memory(work, metrics)
    assert d.outcome == Outcome.BLOCKED
    assert d.blocked_by == ("source-cooldown",)
    assert "metric-fixtures changed this claim 20m ago; its cooldown is 60m" in d.reason


def test_another_sources_change_does_not_start_this_sources_cooldown(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    prod = (ROOT / "examples/messagewall/claims/messagewall-prod.yaml").read_text()
    metrics = _pressure_fixtures(tmp_path / "metrics")
    work, _ = repo_factory({"claims/prod.yaml": prod}, date="2026-10-01T00:00:00Z")
    _feedback_commit(work, "auto-tune", "cost-explorer", NOW - timedelta(minutes=20))
    assert _autotune_memory(work, metrics).outcome == Outcome.CHANGE


def test_a_recommendation_is_not_a_change_and_starts_no_cooldown(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    prod = (ROOT / "examples/messagewall/claims/messagewall-prod.yaml").read_text()
    metrics = _pressure_fixtures(tmp_path / "metrics")
    work, _ = repo_factory({"claims/prod.yaml": prod}, date="2026-10-01T00:00:00Z")
    _feedback_commit(work, "recommendation", "metric-fixtures", NOW - timedelta(minutes=5))
    assert _autotune_memory(work, metrics).outcome == Outcome.CHANGE
