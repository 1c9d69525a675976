"""``feedbackctl proposals list|show|approve|reject|ack|expire`` and ``acknowledgements``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.history import load_histories
from feedbackctl.authority.snapshot import load_snapshot
from feedbackctl.core.results import ProposalShown, ProposalsResult, Report
from feedbackctl.errors import FeedbackError, UsageError
from feedbackctl.patterns import proposals as lifecycle
from tests.clirun import cli
from tests.gitutil import CONFIG_EMAIL, HUMAN_EMAIL, HUMAN_NAME, commit_files, git_out
from tests.proposefix import (
    DEV_BRANCH,
    NOW,
    NOW_TEXT,
    PROD,
    PROD_BRANCH,
    PROD_RECORD,
    Setup,
    at,
    claim_files,
    entries,
    make_setup,
    prod_claim,
    run,
    signals,
)


def entries_of(report: Report) -> list[dict[str, Any]]:
    return report.result_as(ProposalsResult).proposals or []


def listed(s: Setup, now=NOW) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    return {e["branch"]: e for e in entries_of(lifecycle.list_proposals(s.repo, None, now))}


@pytest.fixture()
def bounded(tmp_path: Path) -> Setup:
    """prod at its upper bound 256 under pressure: a MEDIUM proposal 256 -> 384 (beyond bounds)."""
    s = make_setup(tmp_path, claim_files(max_memory=256))
    run(s)
    return s


@pytest.fixture()
def inside(tmp_path: Path) -> Setup:
    """--all: prod 256 -> 384 inside its bounds (MEDIUM) and dev 512 -> 128 (LOW)."""
    s = make_setup(tmp_path, idle_dev=True)
    run(s, all_changes=True)
    return s


def test_list_shows_every_proposal_with_its_status(inside: Setup) -> None:
    rows = listed(inside)
    assert set(rows) == {PROD_BRANCH, DEV_BRANCH}
    prod = rows[PROD_BRANCH]
    assert (prod["status"], prod["risk"], prod["from"], prod["to"]) == ("pending", "MEDIUM", 256, 384)
    assert prod["expiresAt"] == "2026-11-15T00:00:00Z" and prod["escalated"] is False
    assert rows[DEV_BRANCH]["risk"] == "LOW"


def test_approve_applies_to_the_authority_branch_as_a_human_baseline(bounded: Setup) -> None:
    s = bounded
    main = s.main()
    report = lifecycle.approve(
        s.repo, None, "messagewall-prod", "lambdaMemory", at(hours=1), reason="LGTM", beyond_bounds=True
    )
    new = s.main()
    assert report.commits[0]["sha"] == new and git_out(s.work, "rev-parse", f"{new}^") == main
    diff = git_out(s.work, "diff", "--unified=0", main, new)
    assert "-  lambdaMemory: 256    # Higher memory for production" in diff
    assert "+  lambdaMemory: 384    # Higher memory for production" in diff
    assert git_out(s.work, "diff", "--name-only", main, new) == PROD  # the record stays on its branch
    t = s.trailers(new)
    assert (t["Feedback-Kind"], t["Feedback-From"], t["Feedback-To"]) == ("approve", "256", "384")
    # 384 is beyond the bound 256: the human's explicit choice is recorded; the act reached origin.
    assert t["Feedback-Tags"] == "beyond-bounds" and t["Feedback-Proposal"].startswith(f"{PROD_BRANCH}@")
    assert git_out(s.origin, "rev-parse", "main") == new
    assert git_out(s.work, "log", "-1", "--format=%an <%ae>", new) == f"{HUMAN_NAME} <{HUMAN_EMAIL}>"
    assert "Approved by Ada Human" in git_out(s.work, "log", "-1", "--format=%b", new)
    # The checkout followed, the way a fast-forward would; the branch is closed.
    assert "lambdaMemory: 384" in (s.work / PROD).read_text()
    assert git_out(s.work, "status", "--porcelain") == ""
    assert s.sha(PROD_BRANCH) is None
    # history.py reads kind approve as a human act: the approved value is the new baseline.
    snap = load_snapshot(s.repo, None)
    h = load_histories(s.repo, snap.commit, snap.claims, snap.settings.policy, at(hours=2))
    assert h.for_claim("messagewall-prod")["lambdaMemory"].baseline == 384


def test_the_approver_comes_from_git_config(bounded: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(key)
    lifecycle.approve(bounded.repo, None, "messagewall-prod", "lambdaMemory", at(hours=1), beyond_bounds=True)
    assert git_out(bounded.work, "log", "-1", "--format=%ae %ce", "main") == f"{CONFIG_EMAIL} {CONFIG_EMAIL}"


def test_approve_refuses_a_stale_proposal(bounded: Setup) -> None:
    s = bounded
    commit_files(
        s.work, {PROD: prod_claim(memory=320, max_memory=256)}, "Set 320 by hand", "2026-11-08T00:10:00Z"
    )
    main = s.main()
    with pytest.raises(FeedbackError, match="stale: spec.lambdaMemory is 320 now, not 256"):
        lifecycle.approve(s.repo, None, "messagewall-prod", "lambdaMemory", at(hours=1))
    assert s.main() == main
    assert listed(s, at(hours=1))[PROD_BRANCH]["status"] == "stale"
    r = cli(
        "proposals", "approve", "messagewall-prod", "lambdaMemory", "--repo", str(s.work), "--now", NOW_TEXT
    )
    assert r.code == 1 and "stale" in r.stderr and "Traceback" not in r.stderr


def test_approve_refuses_a_branch_a_human_took_over(bounded: Setup) -> None:
    s = bounded
    git_out(s.work, "checkout", "-q", PROD_BRANCH)
    commit_files(s.work, {"NOTES.md": "x\n"}, "notes", "2026-11-08T00:20:00Z")
    git_out(s.work, "checkout", "-q", "main")
    with pytest.raises(FeedbackError, match="merge it with git"):
        lifecycle.approve(s.repo, None, "messagewall-prod", "lambdaMemory", at(hours=1))


def test_unknown_proposal_is_a_usage_error(bounded: Setup) -> None:
    with pytest.raises(UsageError, match="no proposal branch feedback/messagewall-dev/lambdaMemory"):
        lifecycle.approve(bounded.repo, None, "messagewall-dev", "lambdaMemory", NOW)


def test_reject_silences_the_same_change_for_seven_days(bounded: Setup) -> None:
    s = bounded
    tip, main = s.sha(PROD_BRANCH), s.main()
    report = lifecycle.reject(s.repo, None, "messagewall-prod", "lambdaMemory", at(hours=1), reason="not now")
    # The act is an empty commit on the authority branch (and its remote); the branch is untouched.
    act = s.main()
    assert report.commits[0]["sha"] == act and git_out(s.work, "rev-parse", f"{act}^") == main
    assert git_out(s.work, "diff", "--name-only", main, act) == ""
    assert git_out(s.origin, "rev-parse", "main") == act
    t = s.trailers(act)
    assert (t["Feedback-Kind"], t["Feedback-Proposal"]) == ("reject", f"{PROD_BRANCH}@{tip}")
    assert git_out(s.work, "log", "-1", "--format=%an <%ae>", act) == f"{HUMAN_NAME} <{HUMAN_EMAIL}>"
    assert s.sha(PROD_BRANCH) == tip and s.record(PROD_BRANCH)["status"]["state"] == "pending"
    row = listed(s, at(hours=1))[PROD_BRANCH]
    assert row["status"] == "rejected" and f"rejected by {HUMAN_NAME} <{HUMAN_EMAIL}>" in row["detail"]

    # Same change (even with a value within one step): silent.
    signals(s.metrics, "messagewall-prod", util=95.0, used=240.0, end=at(days=3))
    e = entries(run(s, at(days=3)))[PROD_BRANCH]
    assert e["action"] == "suppressed" and "2026-11-15T01:00:00Z" in e["detail"]
    assert s.sha(PROD_BRANCH) == tip
    # The value moved by more than the tolerance (one 128 MB step): a new proposal.
    signals(s.metrics, "messagewall-prod", util=99.0, used=500.0, end=at(days=4))
    e = entries(run(s, at(days=4)))[PROD_BRANCH]
    assert (e["action"], e["to"]) == ("reopened", 640)
    assert s.on_branch(PROD_BRANCH) == [s.sha(PROD_BRANCH)]


def test_a_rejection_ends_after_seven_days(bounded: Setup) -> None:
    s = bounded
    lifecycle.reject(s.repo, None, "messagewall-prod", "lambdaMemory", at(hours=1))
    signals(s.metrics, "messagewall-prod", util=95.0, used=240.0, end=at(days=7, hours=2))
    e = entries(run(s, at(days=7, hours=2)))[PROD_BRANCH]
    assert (e["action"], e["previousStatus"], e["to"]) == ("reopened", "rejected", 384)


def test_ack_is_for_medium_and_stops_escalation(inside: Setup) -> None:
    s = inside
    with pytest.raises(FeedbackError, match="LOW needs none"):
        lifecycle.acknowledge(s.repo, None, "messagewall-dev", "lambdaMemory", at(hours=1))
    tip = s.sha(PROD_BRANCH)
    report = lifecycle.acknowledge(s.repo, None, "messagewall-prod", "lambdaMemory", at(hours=1))
    t = s.trailers(report.commits[0]["sha"])
    assert (t["Feedback-Kind"], t["Feedback-Proposal"]) == ("ack", f"{PROD_BRANCH}@{tip}")
    assert report.commits[0]["sha"] == s.main() and s.sha(PROD_BRANCH) == tip
    row = listed(s, at(hours=9))[PROD_BRANCH]
    assert (row["risk"], row["escalated"], row["acknowledgedBy"]) == (
        "MEDIUM",
        False,
        f"{HUMAN_NAME} <{HUMAN_EMAIL}>",
    )


def test_an_unacknowledged_medium_escalates_to_high_after_eight_hours(inside: Setup) -> None:
    s = inside
    assert listed(s, at(hours=7.9))[PROD_BRANCH]["risk"] == "MEDIUM"
    row = listed(s, at(hours=8))[PROD_BRANCH]
    assert (row["risk"], row["riskClass"], row["escalated"]) == ("HIGH", "MEDIUM", True)
    assert "unacknowledged for 8h -> HIGH" in row["riskRationale"]
    with pytest.raises(FeedbackError, match="HIGH risk now; approve or reject"):
        lifecycle.acknowledge(s.repo, None, "messagewall-prod", "lambdaMemory", at(hours=8))
    # propose reports the escalation.
    signals(s.metrics, "messagewall-prod", util=60.0, used=150.0, end=at(hours=9))
    events = run(s, at(hours=9)).events
    assert any(e["branch"] == PROD_BRANCH and "escalated to HIGH" in e["detail"] for e in events)


def test_acknowledgements_are_read_from_the_authority_branch(inside: Setup) -> None:
    s = inside
    assert lifecycle.acknowledgements(s.repo, s.main(), at(hours=1)) == {}  # nothing acked yet
    lifecycle.acknowledge(s.repo, None, "messagewall-prod", "lambdaMemory", at(hours=1))
    (ack,) = lifecycle.acknowledgements(s.repo, s.main(), at(hours=2)).values()
    assert (ack.claim, ack.field, ack.old, ack.new) == ("messagewall-prod", "lambdaMemory", 256, 384)
    assert ack.commit == s.main() and ack.by == f"{HUMAN_NAME} <{HUMAN_EMAIL}>"
    # It lives as long as a proposal would; a later reject or approve of the field closes it.
    assert lifecycle.acknowledgements(s.repo, s.main(), at(days=8)) == {}
    lifecycle.reject(s.repo, None, "messagewall-prod", "lambdaMemory", at(hours=3))
    assert lifecycle.acknowledgements(s.repo, s.main(), at(hours=4)) == {}


def test_expire_closes_proposals_older_than_seven_days(inside: Setup) -> None:
    s = inside
    assert lifecycle.expire(s.repo, None, at(days=6)).commits == []
    assert listed(s, at(days=7))[PROD_BRANCH]["status"] == "expired"
    report = lifecycle.expire(s.repo, None, at(days=7, hours=1))
    assert sorted(c["branch"] for c in report.commits) == [DEV_BRANCH, PROD_BRANCH]
    assert s.trailers(PROD_BRANCH)["Feedback-Kind"] == "expire"
    assert s.record(PROD_BRANCH)["status"]["state"] == "expired"
    assert lifecycle.expire(s.repo, None, at(days=8)).commits == []  # once
    # The signal persists: a fresh proposal reuses the branch.
    signals(s.metrics, "messagewall-prod", util=95.0, used=240.0, end=at(days=8))
    e = entries(run(s, at(days=8), all_changes=True))[PROD_BRANCH]
    assert (e["action"], e["previousStatus"]) == ("reopened", "expired")


def test_show_and_cli(bounded: Setup) -> None:
    s = bounded
    report = lifecycle.show_proposal(s.repo, None, "messagewall-prod", "spec.lambdaMemory", NOW)
    shown = report.result_as(ProposalShown)
    assert shown.record is not None and shown.record["kind"] == "ConfigurationProposal"
    assert [c["kind"] for c in shown.chain] == ["proposal"]
    base = ["--repo", str(s.work), "--now", NOW_TEXT]
    r = cli("proposals", "list", *base, "--output", "json")
    assert r.code == 0 and r.json()["proposals"][0]["status"] == "pending"
    r = cli("proposals", "show", "messagewall-prod", "lambdaMemory", *base)
    assert r.code == 0 and "memory_utilization" in r.stdout and PROD_BRANCH in r.stdout
    r = cli("proposals", "reject", "messagewall-prod", "lambdaMemory", *base, "--reason", "no", "--dry-run")
    assert r.code == 0 and s.record(PROD_BRANCH)["status"]["state"] == "pending"
    r = cli("proposals", "approve", "messagewall-prod", "lambdaMemory", *base)
    assert r.code == 1 and "outside the autoTune bounds 128-256" in r.stderr and "--beyond-bounds" in r.stderr
    r = cli("proposals", "approve", "messagewall-prod", "lambdaMemory", *base, "--beyond-bounds")
    assert r.code == 0, r.stderr
    assert "lambdaMemory: 384" in git_out(s.work, "show", f"main:{PROD}")
    r = cli("proposals", "approve", "messagewall-prod", "lambdaMemory", *base, "--beyond-bounds")
    assert r.code == 2 and "no proposal branch" in r.stderr


def test_approve_without_an_identity_is_refused(bounded: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(key)
    git_out(bounded.work, "config", "user.name", "feedbackctl")
    git_out(bounded.work, "config", "user.email", "feedbackctl@localhost")
    with pytest.raises(UsageError, match="git config user.name"):
        lifecycle.approve(bounded.repo, None, "messagewall-prod", "lambdaMemory", NOW)


def test_record_parses_back(bounded: Setup) -> None:
    from feedbackctl.authority import proposal_record
    from feedbackctl.core import proposal as record

    text = git_out(bounded.work, "show", f"{PROD_BRANCH}:{PROD_RECORD}")
    p = proposal_record.parse(text, PROD_RECORD)
    assert (p.claim, p.field, p.old, p.new, p.risk) == (
        "messagewall-prod",
        "lambdaMemory",
        256,
        384,
        "MEDIUM",
    )
    assert record.render(p) == text + "\n"  # byte for byte: reruns compare trees
    assert p.expires_at - p.created_at == timedelta(days=7)
    with pytest.raises(record.ProposalError, match="not a ConfigurationProposal"):
        proposal_record.parse("kind: Other\n", "x.yaml")


@pytest.mark.parametrize(
    "text",
    [
        "yes",
        "No",
        "null",
        "1e5",
        "0x1F",
        "a: b",
        "#x",
        "- a",
        "ünïcode ✓",
        "two\nlines",
        'q"uote',
        "",
        "~",
        "@at",
    ],
)
def test_records_round_trip_awkward_values(text: str) -> None:
    from feedbackctl.authority import proposal_record
    from feedbackctl.core import proposal as record
    from feedbackctl.core.models import Evidence

    p = record.Proposal(
        claim="c",
        field="we/ird~field",
        old=text,
        new=1e20,
        target_kind="K",
        target_api_version="g/v1",
        target_path="c.yaml",
        base_commit="0" * 40,
        risk="MEDIUM",
        risk_rationale=text,
        policy_result="passed",
        opened_at=NOW,
        created_at=NOW,
        summary=text,
        evidence=(Evidence("m", "p99", 30, 7, 0.5, None),),
        confidence=0.5,
    )
    back = proposal_record.parse(record.render(p), "x.yaml")
    assert back == p
    assert record.render(back) == record.render(p)


def reviewer_clone(s: Setup, tmp_path: Path) -> GitRepo:
    clone = tmp_path / "reviewer"
    git_out(tmp_path, "clone", "-q", str(s.origin), str(clone))
    return GitRepo.open(clone)


def test_a_team_reviews_on_the_remote(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=256))
    run(s, push=True)  # the cron job's clone
    reviewer = reviewer_clone(s, tmp_path)
    rows = entries_of(lifecycle.list_proposals(reviewer, None, at(hours=1), remote="origin"))
    assert [(r["branch"], r["status"]) for r in rows] == [(PROD_BRANCH, "pending")]
    report = lifecycle.reject(
        reviewer, None, "messagewall-prod", "lambdaMemory", at(hours=1), remote="origin"
    )
    assert report.commits[0]["pushed"] is True
    assert git_out(
        s.origin, "log", "-1", "--format=%(trailers:key=Feedback-Kind,valueonly)", "main"
    ) == ("reject")
    # The cron job sees the rejection on its next run.
    signals(s.metrics, "messagewall-prod", util=95.0, used=240.0, end=at(hours=2))
    assert entries(run(s, at(hours=2), push=True))[PROD_BRANCH]["action"] == "suppressed"


def test_approve_on_the_remote_pushes_the_change_and_closes_the_branch(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=256))
    run(s, push=True)
    reviewer = reviewer_clone(s, tmp_path)
    report = lifecycle.approve(
        reviewer, None, "messagewall-prod", "lambdaMemory", at(hours=1), remote="origin", beyond_bounds=True
    )
    assert report.commits[0]["pushed"] is True
    assert (
        git_out(s.origin, "log", "-1", "--format=%(trailers:key=Feedback-Kind,valueonly)", "main")
        == "approve"
    )
    assert "lambdaMemory: 384" in git_out(s.origin, "show", f"main:{PROD}")
    assert git_out(s.origin, "for-each-ref", "refs/heads/feedback/") == ""
    # The cron clone pulls; its next run proposes nothing new for the field.
    git_out(s.work, "pull", "-q", "--ff-only")
    assert entries(run(s, at(hours=1), push=True)) == {}


def test_approve_on_the_remote_needs_the_same_authority_branch(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=256))
    run(s, push=True)
    reviewer = reviewer_clone(s, tmp_path)
    assert reviewer.work_tree is not None
    commit_files(reviewer.work_tree, {"NOTES.md": "local only\n"}, "local", "2026-11-08T00:30:00Z")
    with pytest.raises(FeedbackError, match="bring them together"):
        lifecycle.approve(
            reviewer, None, "messagewall-prod", "lambdaMemory", at(hours=1),
            remote="origin", beyond_bounds=True,  # fmt: skip
        )
    assert git_out(s.origin, "log", "-1", "--format=%s", "main") == "Initial claims"


def test_approve_remote_through_the_cli(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=256))
    run(s, push=True)
    reviewer = tmp_path / "reviewer"
    git_out(tmp_path, "clone", "-q", str(s.origin), str(reviewer))
    r = cli(
        "proposals",
        "approve",
        "messagewall-prod",
        "lambdaMemory",
        "--repo",
        str(reviewer),
        "--remote",
        "origin",
        "--beyond-bounds",
        "--now",
        at(hours=1).isoformat(),
    )
    assert r.code == 0, r.stderr
    assert "lambdaMemory: 384" in git_out(s.origin, "show", f"main:{PROD}")
    assert git_out(s.origin, "for-each-ref", "refs/heads/feedback/") == ""
