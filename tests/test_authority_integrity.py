"""Reviews that cannot be forged or bypassed: acks, approvals, proposals and remotes.

End to end through the CLI, with real repos, a bare origin, second clones and
commits made with plain git by another identity (someone who can push
branches but not the authority branch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.clirun import Result, cli
from tests.gitutil import HUMAN_EMAIL, HUMAN_NAME, git_out
from tests.proposefix import (
    PROD,
    PROD_BRANCH,
    PROD_RECORD,
    Setup,
    at,
    claim_files,
    entries,
    make_setup,
    run,
    signals,
)

LOW_CEILING = "limits:\n  autoApplyCeiling: LOW\n"
MALLORY = "Mallory Pusher"
MALLORY_EMAIL = "mallory@example.com"


def low_setup(tmp_path: Path, max_memory: int = 2048, **kw: Any) -> Setup:
    """prod 256 under memory pressure, MEDIUM risk, auto-apply ceiling LOW: a risk-ceiling proposal."""
    files = claim_files(max_memory=max_memory)
    files["policies/feedback-rules.yaml"] = LOW_CEILING
    return make_setup(tmp_path, files, **kw)


def as_mallory(work: Path, message: str, *, amend: bool = False) -> str:
    """Commit what is in the work tree with plain git, as another identity."""
    env = {
        "GIT_AUTHOR_NAME": MALLORY,
        "GIT_AUTHOR_EMAIL": MALLORY_EMAIL,
        "GIT_COMMITTER_NAME": MALLORY,
        "GIT_COMMITTER_EMAIL": MALLORY_EMAIL,
        "GIT_AUTHOR_DATE": "2026-11-08T00:30:00Z",
        "GIT_COMMITTER_DATE": "2026-11-08T00:30:00Z",
    }
    git_out(work, "add", "-A", env=env)
    git_out(work, "commit", "-q", *(["--amend"] if amend else []), "-m", message, env=env)
    return git_out(work, "rev-parse", "HEAD")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new))


def trailers(work: Path, rev: str) -> dict[str, str]:
    out = git_out(work, "log", "-1", "--format=%(trailers:only,unfold)", rev)
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


def autotune(s: Setup, hours: float = 1, *extra: str, util: float = 95.0, used: float = 240.0) -> Result:
    signals(s.metrics, "messagewall-prod", util=util, used=used, end=at(hours=hours))  # fresh data
    return cli(
        "autotune", "--repo", str(s.work), "--metrics", str(s.metrics), "--now", at(hours=hours).isoformat(),
        "--output", "json", *extra,
    )  # fmt: skip


def prod_decision(r: Result) -> dict[str, Any]:
    return next(
        d
        for d in r.json()["decisions"]
        if d["claim"] == "messagewall-prod" and d["field"] == "spec.lambdaMemory"
    )


def proposals(s: Setup, *opts: str, work: Path | None = None) -> Result:
    return cli(*opts[:1], *opts[1:], "--repo", str(work or s.work), "--now", at(hours=1).isoformat())


def listed(work: Path) -> dict[str, dict[str, Any]]:
    r = cli("proposals", "list", "--repo", str(work), "--now", at(hours=1).isoformat(), "--output", "json")
    assert r.code == 0, r.stderr
    return {e["branch"]: e for e in r.json()["proposals"]}


def audit_verify(work: Path) -> Result:
    return cli("audit", "verify", "--repo", str(work), "--output", "json")


CLAIM_FIELD = ("messagewall-prod", "lambdaMemory")


# --- 1. forged ack ----------------------------------------------------------------------


def test_a_forged_ack_on_a_proposal_branch_grants_nothing_and_is_reported(tmp_path: Path) -> None:
    s = low_setup(tmp_path)
    assert entries(run(s))[PROD_BRANCH]["to"] == 384
    head = s.main()
    # Someone who can only push branches: the record's value to 512, a trusted name, a copied trailer.
    git_out(s.work, "checkout", "-q", PROD_BRANCH)
    edit(s.work / PROD_RECORD, "value: 384", "value: 512")
    with (s.work / PROD_RECORD).open("a") as f:
        f.write('  acknowledgedBy: "Trusted Reviewer <sre@corp>"\n  acknowledgedAt: "2026-11-08T00:30:00Z"\n')
    edit(s.work / PROD, "lambdaMemory: 384 ", "lambdaMemory: 512 ")
    forged = as_mallory(
        s.work,
        "feedbackctl: ack messagewall-prod spec.lambdaMemory 256 -> 512\n\n"
        "Feedback-Kind: ack\nFeedback-Claim: messagewall-prod\nFeedback-Field: spec.lambdaMemory\n"
        "Feedback-From: 256\nFeedback-To: 512\n",
    )
    git_out(s.work, "checkout", "-q", "main")

    row = listed(s.work)[PROD_BRANCH]
    assert row["status"] == "handed-off" and row["acknowledgedBy"] is None
    assert "tampered" in row["detail"] and MALLORY in row["detail"] and forged[:10] in row["detail"]
    r = autotune(s)
    assert r.code == 0, r.stderr
    d = prod_decision(r)
    assert d["outcome"] == "propose" and d["blockedBy"] == ["risk-ceiling"]
    assert s.main() == head and "lambdaMemory: 256 " in git_out(s.work, "show", f"main:{PROD}")
    # A human cannot ack the tampered branch either: it is not the tool's proposal any more.
    r = proposals(s, "proposals", "ack", *CLAIM_FIELD)
    assert r.code == 1 and "handed-off" in r.stderr and s.main() == head


# --- 2. the ack is a guard, and audit replays it ----------------------------------------


def test_the_documented_ack_workflow_applies_through_the_guards_and_passes_audit(tmp_path: Path) -> None:
    s = low_setup(tmp_path)
    run(s)
    tip = s.sha(PROD_BRANCH)
    r = proposals(s, "proposals", "ack", *CLAIM_FIELD)
    assert r.code == 0, r.stderr
    ack = s.main()
    t = trailers(s.work, ack)
    assert (t["Feedback-Kind"], t["Feedback-To"]) == ("ack", "384")
    assert t["Feedback-Proposal"] == f"{PROD_BRANCH}@{tip}"
    assert git_out(s.work, "log", "-1", "--format=%an <%ae>", ack) == f"{HUMAN_NAME} <{HUMAN_EMAIL}>"
    assert git_out(s.origin, "rev-parse", "main") == ack  # the act reached the remote
    assert listed(s.work)[PROD_BRANCH]["acknowledgedBy"] == f"{HUMAN_NAME} <{HUMAN_EMAIL}>"

    r = autotune(s, 2)
    assert r.code == 0, r.stderr
    assert prod_decision(r)["outcome"] == "change"
    t = trailers(s.work, "main")
    assert (t["Feedback-Kind"], t["Feedback-To"], t["Feedback-Acknowledged"]) == ("auto-tune", "384", ack)
    assert "lambdaMemory: 384 " in git_out(s.work, "show", f"main:{PROD}")
    r = audit_verify(s.work)
    assert r.code == 0, r.stdout + r.stderr


def test_an_oversized_ack_applies_one_step_and_the_rest_stays_a_proposal(tmp_path: Path) -> None:
    s = low_setup(tmp_path, max_memory=4096, util=99.0, used=500.0)
    run(s)
    # A proposal for a big jump (made by hand, as anyone may): the record and its claim edit agree.
    git_out(s.work, "checkout", "-q", PROD_BRANCH)
    edit(s.work / PROD_RECORD, "value: 384", "value: 2304")
    edit(s.work / PROD, "lambdaMemory: 384 ", "lambdaMemory: 2304 ")
    message = git_out(s.work, "log", "-1", "--format=%B").replace("-> 384", "-> 2304")
    as_mallory(s.work, message.replace("Feedback-To: 384", "Feedback-To: 2304"), amend=True)
    git_out(s.work, "checkout", "-q", "main")
    assert listed(s.work)[PROD_BRANCH]["to"] == 2304
    r = proposals(s, "proposals", "ack", *CLAIM_FIELD)
    assert r.code == 0, r.stderr
    ack = s.main()

    r = autotune(s, 2, util=99.0, used=500.0)
    assert r.code == 0, r.stderr
    d = prod_decision(r)
    assert (d["outcome"], d["recommended"]) == ("change", 384)  # one step of 128, not 2304
    t = trailers(s.work, "main")
    assert (t["Feedback-From"], t["Feedback-To"], t["Feedback-Acknowledged"]) == ("256", "384", ack)
    assert audit_verify(s.work).code == 0

    # The same ack named by a hand-made auto-tune commit that jumps straight to 2304: flagged.
    edit(s.work / PROD, "lambdaMemory: 384 ", "lambdaMemory: 2304 ")
    as_mallory(
        s.work,
        "feedbackctl: auto-tune messagewall-prod spec.lambdaMemory 384 -> 2304\n\n"
        "Feedback-Kind: auto-tune\nFeedback-Claim: messagewall-prod\nFeedback-Field: spec.lambdaMemory\n"
        f"Feedback-From: 384\nFeedback-To: 2304\nFeedback-Source: metric-fixtures\nFeedback-Risk: MEDIUM\n"
        f"Feedback-Acknowledged: {ack}\n",
    )
    r = audit_verify(s.work)
    assert r.code == 3, r.stdout + r.stderr
    rules = {v["rule"] for v in r.json()["violations"]}
    assert "step-limit" in rules


def test_an_ack_named_from_a_proposal_branch_is_flagged_by_audit(tmp_path: Path) -> None:
    s = low_setup(tmp_path)
    run(s)
    branch_tip = s.sha(PROD_BRANCH)
    assert branch_tip is not None
    edit(s.work / PROD, "lambdaMemory: 256 ", "lambdaMemory: 384 ")
    as_mallory(
        s.work,
        "feedbackctl: auto-tune messagewall-prod spec.lambdaMemory 256 -> 384\n\n"
        "Feedback-Kind: auto-tune\nFeedback-Claim: messagewall-prod\nFeedback-Field: spec.lambdaMemory\n"
        "Feedback-From: 256\nFeedback-To: 384\nFeedback-Source: metric-fixtures\nFeedback-Risk: MEDIUM\n"
        f"Feedback-Acknowledged: {branch_tip}\n",
    )
    r = audit_verify(s.work)
    assert r.code == 3, r.stdout + r.stderr
    found = [v for v in r.json()["violations"] if v["rule"] == "risk-ceiling"]
    assert found and any("not on the authority branch" in v["detail"] for v in found)


# --- 3. approve applies the reviewed diff -------------------------------------------------


def test_approve_refuses_a_record_changed_after_the_claim_edit(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=4096))
    run(s, all_changes=True)
    head = s.main()
    git_out(s.work, "checkout", "-q", PROD_BRANCH)
    edit(s.work / PROD_RECORD, "value: 384", "value: 3008")
    later = as_mallory(s.work, "bump the record")
    git_out(s.work, "checkout", "-q", "main")
    r = proposals(s, "proposals", "approve", *CLAIM_FIELD)
    assert r.code == 1 and later[:10] in r.stderr and MALLORY in r.stderr
    assert s.main() == head


def test_approve_refuses_when_the_record_and_the_diff_disagree(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=4096))
    run(s, all_changes=True)
    head = s.main()
    git_out(s.work, "checkout", "-q", PROD_BRANCH)
    edit(s.work / PROD_RECORD, "value: 384", "value: 3008")
    message = git_out(s.work, "log", "-1", "--format=%B")
    forged = as_mallory(s.work, message.replace("Feedback-To: 384", "Feedback-To: 3008"), amend=True)
    git_out(s.work, "checkout", "-q", "main")
    r = proposals(s, "proposals", "approve", *CLAIM_FIELD)
    assert r.code == 1, r.stderr
    assert "256 -> 3008" in r.stderr and "256 -> 384" in r.stderr and forged[:10] in r.stderr
    assert s.main() == head and git_out(s.origin, "rev-parse", "main") == head


def test_approve_beyond_the_bounds_needs_the_flag_and_records_it(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=256))
    run(s)
    head = s.main()
    r = proposals(s, "proposals", "approve", *CLAIM_FIELD)
    assert r.code == 1 and "--beyond-bounds" in r.stderr and s.main() == head
    r = proposals(s, "proposals", "approve", *CLAIM_FIELD, "--beyond-bounds")
    assert r.code == 0, r.stderr
    t = trailers(s.work, "main")
    assert (t["Feedback-Kind"], t["Feedback-To"], t["Feedback-Tags"]) == ("approve", "384", "beyond-bounds")
    assert "--beyond-bounds" in git_out(s.work, "log", "-1", "--format=%b", "main")


# --- 4. remotes: local unpushed commits never enter a proposal ---------------------------


def test_propose_push_builds_on_the_remote_tip_not_on_local_commits(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=256))
    (s.work / "NOTES.md").write_text("local only\n")
    local = as_mallory(s.work, "local, unpushed")
    origin_main = git_out(s.origin, "rev-parse", "main")
    assert entries(run(s, push=True))[PROD_BRANCH]["action"] == "created"
    tip = git_out(s.origin, "rev-parse", PROD_BRANCH)
    assert git_out(s.origin, "rev-parse", f"{tip}^") == origin_main
    assert local not in git_out(s.work, "rev-list", tip).split()


def test_propose_without_push_builds_on_the_upstream_not_on_local_commits(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=256))
    (s.work / "NOTES.md").write_text("local only\n")
    local = as_mallory(s.work, "local, unpushed")
    assert entries(run(s))[PROD_BRANCH]["action"] == "created"
    tip = s.sha(PROD_BRANCH)
    assert git_out(s.work, "rev-parse", f"{tip}^") == git_out(s.origin, "rev-parse", "main") != local


def test_autotune_push_with_unpushed_local_commits_exits_1_and_says_what_to_do(tmp_path: Path) -> None:
    s = make_setup(tmp_path)
    (s.work / "NOTES.md").write_text("local only\n")
    as_mallory(s.work, "local, unpushed")
    origin_main = git_out(s.origin, "rev-parse", "main")
    r = autotune(s, 1, "--push")
    assert r.code == 1
    assert "lacks" in r.stderr and "git push origin main" in r.stderr and "Traceback" not in r.stderr
    assert git_out(s.origin, "rev-parse", "main") == origin_main


# --- 5. acts reach the remote; a fresh clone sees them -----------------------------------


def clone(s: Setup, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    git_out(tmp_path, "clone", "-q", str(s.origin), str(path))
    return path


def test_a_rejection_in_one_clone_holds_in_a_fresh_clone_and_the_original(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=256))
    assert entries(run(s, push=True))[PROD_BRANCH]["action"] == "created"
    reviewer = clone(s, tmp_path, "reviewer")
    r = proposals(s, "proposals", "reject", *CLAIM_FIELD, "--reason", "not now", work=reviewer)
    assert r.code == 0, r.stderr
    t = trailers(s.origin, "main")
    assert t["Feedback-Kind"] == "reject" and t["Feedback-Proposal"].startswith(f"{PROD_BRANCH}@")

    fresh = Setup(clone(s, tmp_path, "fresh"), s.origin, s.metrics)
    signals(s.metrics, "messagewall-prod", util=95.0, used=240.0, end=at(hours=2))
    assert entries(run(fresh, at(hours=2), push=True))[PROD_BRANCH]["action"] == "suppressed"
    again = entries(run(s, at(hours=2), push=True))[PROD_BRANCH]
    assert again["action"] == "suppressed", again


def test_an_act_without_a_known_remote_is_refused_naming_the_flag(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=256))
    run(s, push=True)
    reviewer = clone(s, tmp_path, "reviewer")
    git_out(reviewer, "branch", "--unset-upstream", "main")
    head = git_out(s.origin, "rev-parse", "main")
    r = proposals(s, "proposals", "reject", *CLAIM_FIELD, work=reviewer)
    assert r.code == 2 and "--remote origin" in r.stderr
    assert git_out(s.origin, "rev-parse", "main") == head
    r = proposals(s, "proposals", "reject", *CLAIM_FIELD, "--remote", "origin", work=reviewer)
    assert r.code == 0, r.stderr
    assert trailers(s.origin, "main")["Feedback-Kind"] == "reject"


def test_acts_never_need_a_remote_in_a_repo_without_one(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=256))
    git_out(s.work, "remote", "remove", "origin")
    run(s)
    r = proposals(s, "proposals", "reject", *CLAIM_FIELD)
    assert r.code == 0, r.stderr
    assert trailers(s.work, "main")["Feedback-Kind"] == "reject"
    assert listed(s.work)[PROD_BRANCH]["status"] == "rejected"


def test_a_copied_expire_marker_cannot_change_what_the_proposal_says(tmp_path: Path) -> None:
    s = low_setup(tmp_path)
    run(s)
    git_out(s.work, "checkout", "-q", PROD_BRANCH)
    edit(s.work / PROD_RECORD, "value: 384", "value: 512")
    as_mallory(s.work, "expire\n\nFeedback-Kind: expire\nFeedback-Claim: messagewall-prod\n")
    git_out(s.work, "checkout", "-q", "main")
    row = listed(s.work)[PROD_BRANCH]
    assert (row["status"], row["to"]) == ("pending", 384)  # the proposal commit's record, with its diff
    r = proposals(s, "proposals", "ack", *CLAIM_FIELD)
    assert r.code == 0, r.stderr
    assert trailers(s.work, "main")["Feedback-To"] == "384"
