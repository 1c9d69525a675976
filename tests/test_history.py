"""``feedbackctl history`` and ``feedbackctl review``: the audit trail read back from git."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.snapshot import load_snapshot
from feedbackctl.authority.writer import Plan, Staging, trailer, write
from tests.clirun import Result, cli
from tests.gitutil import commit_files, git_out, make_repo
from tests.test_drift import DEV, DEV_CLAIM, PROD_CLAIM, drift, example_claims, head, live_file, trailers


def autotune_commit(work: Path, claim: str, field: str, value: int, at: datetime) -> str:
    """A real auto-tune commit, written the way the autotune pattern writes one."""
    repo = GitRepo.open(work)
    snapshot = load_snapshot(repo, None)
    c = snapshot.claim(claim)
    assert c is not None
    staging = Staging(repo, snapshot.commit)
    staging.set_value(c, field, value)
    plan = Plan(
        subject=f"feedbackctl: auto-tune {claim} {field}",
        trailers=[
            trailer(
                "auto-tune",
                claim,
                field,
                old=c.value(field),
                new=value,
                source="metric-fixtures",
                rule="memory-pressure",
                risk="MEDIUM",
                evidence="memory_utilization min=92.6 vs threshold 90 over 30m, n=7",
            )
        ],
        edits=staging.edits(),
    )
    return write(repo, snapshot.branch, snapshot.commit, plan, at)


@pytest.fixture()
def story(tmp_path: Path) -> dict[str, object]:
    """Initial claims (human), a human dev edit, an auto-tune of prod, a drift capture of prod."""
    work, origin = make_repo(tmp_path, example_claims(), date="2026-10-01T00:00:00Z")
    text = (work / DEV).read_text().replace("lambdaMemory: 512", "lambdaMemory: 384")
    human = commit_files(work, {DEV: text}, "Trim dev memory", "2026-10-05T00:00:00Z")
    tuned = autotune_commit(work, PROD_CLAIM, "lambdaMemory", 384, datetime(2026, 11, 1, tzinfo=UTC))
    r = drift(work, live_file(tmp_path, {PROD_CLAIM: {"lambdaTimeout": 60}}), now="2026-11-07T00:00:00Z")
    assert r.code == 0, r.stderr
    return {"work": work, "origin": origin, "human": human, "tuned": tuned, "captured": head(work)}


def history(work: Path, *args: str) -> Result:
    return cli("history", "--repo", str(work), "--now", "2026-11-08T00:00:00Z", *args)


def entries(work: Path, *args: str) -> list[dict]:
    r = history(work, "--output", "json", *args)
    assert r.code == 0, r.stderr
    return r.json()["entries"]


def test_every_change_newest_first_with_humans_derived_by_value(story) -> None:
    work = story["work"]
    rows = entries(work)
    assert [(e["kind"], e["claim"], e["field"]) for e in rows[:3]] == [
        ("drift-capture", PROD_CLAIM, "spec.lambdaTimeout"),
        ("auto-tune", PROD_CLAIM, "spec.lambdaMemory"),
        ("human", DEV_CLAIM, "spec.lambdaMemory"),
    ]
    capture, tuned, human = rows[:3]
    assert (capture["from"], capture["to"], capture["source"]) == (30, 60, "live-file")
    assert capture["tags"] == ["break-glass", "requires-review"] and capture["pendingReview"]
    assert (tuned["rule"], tuned["risk"], tuned["commit"]) == ("memory-pressure", "MEDIUM", story["tuned"])
    assert tuned["evidence"].startswith("memory_utilization min=92.6")
    assert (human["from"], human["to"], human["human"], human["author"]) == (512, 384, True, "Ada Human")
    assert human["commit"] == story["human"]
    # The initial commit set every tuned field of both claims.
    initial = rows[3:]
    assert {(e["claim"], e["field"], e["to"]) for e in initial} == {
        (PROD_CLAIM, "spec.lambdaMemory", 256),
        (PROD_CLAIM, "spec.lambdaTimeout", 30),
        (DEV_CLAIM, "spec.lambdaMemory", 512),
        (DEV_CLAIM, "spec.lambdaTimeout", 10),
    }
    assert all(e["kind"] == "human" and e["from"] is None for e in initial)


def test_filters(story) -> None:
    work = story["work"]

    def kinds(*args: str) -> list[tuple[str, str]]:
        return [(e["kind"], e["claim"]) for e in entries(work, *args)]

    assert kinds("--claim", "*-prod", "--field", "spec.lambdaMemory") == [
        ("auto-tune", PROD_CLAIM),
        ("human", PROD_CLAIM),
    ]
    assert kinds("--kind", "auto-tune,drift-capture") == [
        ("drift-capture", PROD_CLAIM),
        ("auto-tune", PROD_CLAIM),
    ]
    assert kinds("--kind", "auto-tune", "--kind", "human", "--claim", DEV_CLAIM) == [("human", DEV_CLAIM)] * 3
    assert kinds("--source", "live-*") == [("drift-capture", PROD_CLAIM)]
    assert kinds("--tag", "break-glass") == [("drift-capture", PROD_CLAIM)]
    assert kinds("--since", "2026-10-02T00:00:00Z", "--until", "2026-11-02T00:00:00Z") == [
        ("auto-tune", PROD_CLAIM),
        ("human", DEV_CLAIM),
    ]
    assert kinds("--since", "3d") == [("drift-capture", PROD_CLAIM)]  # before --now
    bad = history(work, "--since", "last tuesday")
    assert bad.code == 2 and "--since 'last tuesday' is not an ISO-8601 time" in bad.stderr


def test_review_empties_the_pending_list(story) -> None:
    work, captured = story["work"], story["captured"]
    pending = entries(work, "--pending-review")
    assert [e["commit"] for e in pending] == [captured]
    table = history(work, "--tag", "requires-review")
    assert table.code == 0 and "1 entry; 1 awaiting review" in table.stdout

    r = cli(
        "review",
        captured[:10],
        "--repo",
        str(work),
        "--note",
        "Incident 42: keep 60 s",
        "--now",
        "2026-11-08T09:00:00Z",
    )
    assert r.code == 0, r.stderr
    review = head(work)
    assert git_out(work, "rev-parse", f"{review}^") == captured
    assert git_out(work, "diff", "--name-only", captured, review) == ""  # a record, no file change
    assert trailers(work, review) == {
        "Feedback-Kind": "review",
        "Feedback-Claim": PROD_CLAIM,
        "Feedback-Field": "spec.lambdaTimeout",
        "Feedback-Reviews": captured,
    }
    assert "Incident 42: keep 60 s" in git_out(work, "log", "-1", "--format=%b", review)
    assert git_out(work, "log", "-1", "--format=%an %cI", review) == "Ada Human 2026-11-08T09:00:00+00:00"

    assert entries(work, "--pending-review") == []
    assert entries(work, "--tag", "requires-review") == []
    reviewed = entries(work, "--tag", "reviewed")
    assert [(e["commit"], e["reviewedBy"]) for e in reviewed] == [(captured, review)]
    assert entries(work, "--kind", "review")[0]["reviews"] == captured
    # Reviewing again changes nothing.
    again = cli("review", captured, "--repo", str(work))
    assert again.code == 0 and head(work) == review
    assert f"{captured[:10]} was already reviewed in {review[:10]}" in again.stdout


def test_review_refuses_what_cannot_be_reviewed(story, tmp_path) -> None:
    work, tuned = story["work"], story["tuned"]
    before = head(work)
    cases = [
        (("review", "deadbeef"), "commit 'deadbeef' not found"),
        (("review", tuned), f"commit {tuned[:10]} carries no change tagged requires-review"),
    ]
    for args, message in cases:
        r = cli(*args, "--repo", str(work))
        assert r.code == 2 and message in r.stderr, r.stderr
    # A capture on a review branch is reviewed there, not on main.
    live = live_file(tmp_path, {DEV_CLAIM: {"lambdaTimeout": 20}})
    assert drift(work, live, "--branch", "drift/review").code == 0
    on_branch = head(work, "drift/review")
    r = cli("review", on_branch, "--repo", str(work))
    assert r.code == 2 and f"commit {on_branch[:10]} is not on main; pass --ref" in r.stderr
    assert head(work) == before
    ok = cli("review", on_branch, "--repo", str(work), "--ref", "drift/review")
    assert ok.code == 0 and head(work) == before
    assert trailers(work, "drift/review")["Feedback-Reviews"] == on_branch


def test_history_and_review_work_on_a_bare_repo(story) -> None:
    work, origin = story["work"], story["origin"]
    git_out(work, "push", "-q", "origin", "main")
    assert [e["kind"] for e in entries(origin, "--pending-review")] == ["drift-capture"]
    r = cli("review", story["captured"], "--repo", str(origin), "--dry-run")
    assert r.code == 0 and head(origin) == story["captured"]
    assert cli("review", story["captured"], "--repo", str(origin)).code == 0
    assert entries(origin, "--pending-review") == []
