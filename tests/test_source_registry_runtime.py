"""A feedback source that is not in the registry is refused at run time, not trusted by default.

The run's source is named by ``--metrics`` (``cloudwatch:NAME`` acts as the
registry entry NAME) or ``.feedbackctl.yaml``; a claim names the sources that
may auto-tune it in ``spec.autoTune.sources`` (docs/sources.md). A name the
registry lacks is one clear line (exit 1) and changes nothing it names; the
other claims still run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.clirun import ROOT, Result, cli
from tests.gitutil import RepoFactory, git_out, make_repo

EXAMPLE = ROOT / "examples" / "messagewall"
PROD_CLAIM = (EXAMPLE / "claims" / "messagewall-prod.yaml").read_text()
NOW = "2026-11-08T00:00:00Z"
COOLDOWN = "    cooldownMinutes: 60  # Minimum time between adjustments\n"
NAMES = ["app-a", "app-b", "app-c"]


def claim_text(name: str, sources: str | None = None) -> str:
    text = PROD_CLAIM.replace("name: messagewall-prod", f"name: {name}")
    assert COOLDOWN in text
    return text.replace(COOLDOWN, COOLDOWN + (f"    sources: {sources}\n" if sources else ""))


def fleet(tmp_path: Path, sources: dict[str, str]) -> tuple[Path, Path]:
    files = {f"claims/{n}.yaml": claim_text(n, sources.get(n)) for n in NAMES}
    work, _ = make_repo(tmp_path, files, date="2026-10-01T00:00:00Z")
    metrics = tmp_path / "metrics"
    for n in NAMES:
        shutil.copytree(EXAMPLE / "metrics" / "messagewall-prod", metrics / n)
    return work, metrics


def run(command: str, work: Path, metrics: Path | str, *extra: str) -> Result:
    return cli(command, "--repo", str(work), "--metrics", str(metrics), "--now", NOW, *extra)


def tuned(work: Path) -> list[str]:
    out = git_out(work, "log", "main", "--format=%(trailers:key=Feedback-Claim,valueonly)")
    return sorted(line for line in out.splitlines() if line)


def test_a_claim_naming_an_unregistered_source_is_refused_and_the_others_still_run(tmp_path: Path) -> None:
    work, metrics = fleet(tmp_path, {"app-b": "[metric-fixtures, cloudwach-metrics]"})
    r = run("autotune", work, metrics)
    assert r.code == 1, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: claims/app-b.yaml: app-b: spec.autoTune.sources: source 'cloudwach-metrics' is not in the "
        "feedback source registry (policies/sources.yaml: feedbackSources; registered: agent-observation, "
        "cloudwatch-metrics, cost-explorer, metric-fixtures); register it there or fix the name"
    ]
    assert "Traceback" not in r.stderr
    assert tuned(work) == ["app-a", "app-c"]
    assert git_out(work, "status", "--porcelain") == ""


def test_propose_refuses_it_too(tmp_path: Path) -> None:
    work, metrics = fleet(tmp_path, {"app-b": "[cloudwach-metrics]"})
    r = run("propose", work, metrics, "--all")
    assert r.code == 1, r.stderr
    assert "app-b: spec.autoTune.sources: source 'cloudwach-metrics' is not in the" in r.stderr
    branches = git_out(work, "for-each-ref", "--format=%(refname:short)", "refs/heads/feedback/").split()
    assert branches and not any("app-b" in b for b in branches)
    assert any("app-a" in b for b in branches) and any("app-c" in b for b in branches)


def test_a_claim_tuned_only_by_other_sources_gets_a_proposal_instead(tmp_path: Path) -> None:
    work, metrics = fleet(tmp_path, {"app-b": "[cloudwatch-metrics]"})
    r = run("autotune", work, metrics, "--output", "json")
    assert r.code == 0, r.stderr
    assert tuned(work) == ["app-a", "app-c"]
    needs = [e for e in r.json()["needsProposal"] if e["claim"] == "app-b"]
    assert len(needs) == 1
    assert "spec.autoTune.sources lets only cloudwatch-metrics auto-tune this claim, not metric-fixtures" in (
        needs[0]["reason"]
    )


def test_the_audit_flags_an_auto_tune_from_a_source_the_claim_does_not_allow(tmp_path: Path) -> None:
    work, metrics = fleet(tmp_path, {"app-b": "[cloudwatch-metrics]"})
    assert run("autotune", work, metrics).code == 0
    head = git_out(work, "rev-parse", "main").strip()
    # A hand-made commit that passes for the tool's: app-b tuned by metric-fixtures.
    path = work / "claims" / "app-b.yaml"
    path.write_text(path.read_text().replace("lambdaMemory: 256", "lambdaMemory: 384", 1))
    message = (
        "feedbackctl: auto-tune app-b\n\nFeedback-Kind: auto-tune\nFeedback-Claim: app-b\n"
        "Feedback-Field: spec.lambdaMemory\nFeedback-From: 256\nFeedback-To: 384\n"
        "Feedback-Source: metric-fixtures\nFeedback-Risk: MEDIUM\n"
    )
    env = {**os.environ, "GIT_COMMITTER_DATE": NOW, "GIT_AUTHOR_DATE": NOW}
    git_out(work, "commit", "-qam", message, env=env)
    assert git_out(work, "rev-parse", "main").strip() != head
    r = cli("audit", "verify", "--repo", str(work), "--output", "json")
    assert r.code == 3, r.stderr
    rules = {(v["claim"], v["rule"]) for v in r.json()["violations"]}
    assert ("app-b", "trust") in rules
    assert all(claim == "app-b" for claim, _ in rules)


@pytest.mark.parametrize("bad", ["[]", "[1]", "{a: b}"])
def test_a_malformed_sources_list_is_refused_for_that_claim(tmp_path: Path, bad: str) -> None:
    work, metrics = fleet(tmp_path, {"app-b": bad})
    r = run("autotune", work, metrics)
    assert r.code == 1
    assert "app-b: spec.autoTune.sources: expected a list of feedback source names" in r.stderr
    assert tuned(work) == ["app-a", "app-c"]


def test_an_unregistered_run_source_changes_nothing(
    aws: str, repo_factory: RepoFactory, tmp_path: Path
) -> None:
    """``cloudwatch:NAME`` with a typo used to run at the default medium trust and auto-apply."""
    from tests import test_cloudwatch_analyze as cw

    cw.load_week(tmp_path / "unused-fixtures")
    block = (
        "\n  autoTune:\n    enabled: true\n    memoryBounds: {min: 128, max: 512}\n    cooldownMinutes: 60\n"
        "    trigger: {metric: memory_utilization, threshold: 90, sustainedMinutes: 360}\n"
    )
    work = cw.repo(repo_factory, **{"claims/messagewall-prod.yaml": cw.PROD + block})
    head = git_out(work, "rev-parse", "main")
    r = run("autotune", work, "cloudwatch:cloudwatch-metrcs", "--output", "json")
    assert r.code == 1, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: --metrics cloudwatch:cloudwatch-metrcs: feedback source 'cloudwatch-metrcs' is not in the "
        "registry (policies/sources.yaml: feedbackSources), so no claim is changed from it; register it "
        "there with its trustLevel, or fix the name"
    ]
    assert git_out(work, "rev-parse", "main") == head
    blocked = [d for d in r.json()["decisions"] if d["blockedBy"] == ["trust"]]
    assert blocked and "not in the feedback source registry" in blocked[0]["reason"]
    ok = run("autotune", work, "cloudwatch:cloudwatch-metrics", "--output", "json")  # the right name
    assert ok.code == 0, ok.stderr
    assert len(ok.json()["commits"]) == 1
