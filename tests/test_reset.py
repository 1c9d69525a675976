"""``feedbackctl reset``: back to the tested baseline, as a reviewed, replayable commit."""

from __future__ import annotations

from pathlib import Path

from tests.clirun import ROOT, cli
from tests.gitutil import commit_files, git_out, make_repo

PROD = "claims/messagewall-prod.yaml"
NOW = "2026-11-08T00:00:00Z"
AUTO = (
    "feedbackctl: auto-tune\n\nFeedback-Kind: auto-tune\nFeedback-Claim: messagewall-prod\n"
    "Feedback-Field: spec.lambdaMemory\nFeedback-From: {old}\nFeedback-To: {new}\n"
    "Feedback-Source: metric-fixtures\n"
)


def repo_with_auto_tunes(tmp_path: Path) -> Path:
    text = (ROOT / "examples/messagewall/claims/messagewall-prod.yaml").read_text()
    work, _ = make_repo(tmp_path, {PROD: text}, date="2026-09-01T00:00:00Z")
    for i, (old, new) in enumerate(((256, 384), (384, 512))):
        text = text.replace(f"lambdaMemory: {old}", f"lambdaMemory: {new}")
        commit_files(work, {PROD: text}, AUTO.format(old=old, new=new), date=f"2026-11-0{i + 1}T00:00:00Z")
    return work


def test_reset_returns_to_the_human_baseline_with_a_reset_trailer(tmp_path: Path) -> None:
    work = repo_with_auto_tunes(tmp_path)
    dry = cli("reset", "--repo", str(work), "--now", NOW, "--dry-run", "--output", "json")
    assert dry.code == 0, dry.stderr
    assert dry.json()["resets"] == [
        {"claim": "messagewall-prod", "field": "spec.lambdaMemory", "from": 512, "to": 256, "risk": "MEDIUM"}
    ]
    assert "lambdaMemory: 512" in (work / PROD).read_text()
    r = cli("reset", "--repo", str(work), "--now", NOW, "--field", "lambdaMemory")
    assert r.code == 0, r.stderr
    assert "lambdaMemory: 256    # Higher memory for production" in (work / PROD).read_text()
    assert git_out(work, "diff", "--numstat", "HEAD~1", "HEAD").split()[:2] == ["1", "1"]
    kinds = git_out(work, "log", "-1", "--format=%(trailers:key=Feedback-Kind,valueonly)").strip()
    assert kinds == "reset"
    assert git_out(work, "status", "--porcelain") == ""
    again = cli("reset", "--repo", str(work), "--now", NOW)
    assert again.code == 0 and "at its baseline" in again.stdout
    assert git_out(work, "rev-list", "--count", "HEAD") == "4"


def test_explicit_baseline_annotation_wins(tmp_path: Path) -> None:
    work = repo_with_auto_tunes(tmp_path)
    text = (
        (work / PROD)
        .read_text()
        .replace(
            'confighub.io/precious: "true"',
            'confighub.io/precious: "true"\n    feedbackctl.io/baseline.lambdaMemory: "384"',
        )
    )
    commit_files(work, {PROD: text}, "pin the tested baseline", date="2026-11-03T00:00:00Z")
    r = cli("reset", "--repo", str(work), "--now", NOW, "--output", "json", "--dry-run")
    assert [(x["from"], x["to"]) for x in r.json()["resets"]] == [(512, 384)]
