"""``feedbackctl propose``: proposal branches in real git repos (local bare origin for --push)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from feedbackctl.patterns.proposals import ProposalConfig, branch_name, record_path, safe_component
from tests.clirun import ROOT, cli
from tests.gitutil import commit_files, git_out
from tests.proposefix import (
    DEV_BRANCH,
    NOW,
    NOW_TEXT,
    PROD,
    PROD_BRANCH,
    PROD_RECORD,
    at,
    claim_files,
    config,
    entries,
    make_setup,
    prod_claim,
    run,
    signals,
)


def test_beyond_bounds_becomes_one_commit_on_one_branch(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=256))
    main = s.main()
    report = run(s)
    e = entries(report)[PROD_BRANCH]
    assert (e["action"], e["from"], e["to"], e["reviewReason"]) == ("created", 256, 384, "bounds")
    assert s.branches() == [PROD_BRANCH]
    # One commit on top of the authority branch; the authority branch and checkout untouched.
    assert s.on_branch(PROD_BRANCH) == [e["commit"]]
    assert git_out(s.work, "rev-parse", f"{PROD_BRANCH}^") == main == s.main()
    assert git_out(s.work, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert git_out(s.work, "status", "--porcelain") == ""
    # The minimal claim edit: one line, comment kept; plus the record.
    diff = git_out(s.work, "diff", "--unified=0", main, PROD_BRANCH, "--", PROD)
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert changed == [
        "-  lambdaMemory: 256    # Higher memory for production",
        "+  lambdaMemory: 384    # Higher memory for production",
    ]
    assert git_out(s.work, "diff", "--name-only", main, PROD_BRANCH).splitlines() == [PROD, PROD_RECORD]
    # Dates are the evaluation time.
    assert git_out(s.work, "log", "-1", "--format=%cI %aI", PROD_BRANCH) == (
        "2026-11-08T00:00:00+00:00 2026-11-08T00:00:00+00:00"
    )


def test_trailers_and_record_follow_the_seed(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=256))
    run(s)
    t = s.trailers(PROD_BRANCH)
    assert t["Feedback-Kind"] == "proposal"
    assert (t["Feedback-Claim"], t["Feedback-Field"]) == ("messagewall-prod", "spec.lambdaMemory")
    assert (t["Feedback-From"], t["Feedback-To"], t["Feedback-Risk"]) == ("256", "384", "MEDIUM")
    assert (t["Feedback-Source"], t["Feedback-Rule"]) == ("metric-fixtures", "memory-pressure")
    assert "memory_utilization min=95" in t["Feedback-Evidence"] and t["Feedback-Tags"] == "bounds"
    kinds = git_out(s.work, "log", "-1", "--format=%(trailers:key=Feedback-Kind,valueonly)", PROD_BRANCH)
    assert kinds == "proposal"

    doc = s.record(PROD_BRANCH)
    assert doc["kind"] == "ConfigurationProposal"
    spec, status = doc["spec"], doc["status"]
    assert spec["target"] == {
        "apiVersion": "messagewall.demo/v1alpha1",
        "kind": "ServerlessEventAppClaim",
        "name": "messagewall-prod",
        "namespace": "default",
        "path": PROD,
        "baseCommit": s.main(),
    }
    assert spec["change"] == [
        {"op": "test", "path": "/spec/lambdaMemory", "value": 256},
        {"op": "replace", "path": "/spec/lambdaMemory", "value": 384},
    ]
    assert spec["rationale"]["summary"].startswith("memory-pressure: ")
    assert "at bound" in spec["rationale"]["summary"]
    assert {e["metric"] for e in spec["rationale"]["evidence"]} == {"memory_utilization", "used_memory_max"}
    assert spec["proposer"]["type"] == "runtime-feedback"
    assert spec["proposer"]["id"] == "feedbackctl/metric-fixtures"
    assert 0.5 < spec["proposer"]["confidence"] < 1
    assert status["state"] == "pending"
    assert (status["riskClass"], status["riskRationale"]) == ("MEDIUM", "LOW base + prod elevator")
    assert status["policyResult"] == "passed"
    assert status["expiresAt"] == "2026-11-15T00:00:00Z"


def test_the_same_proposal_again_makes_no_commit(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=256))
    run(s)
    tip = s.sha(PROD_BRANCH)
    signals(s.metrics, "messagewall-prod", util=93.0, used=250.0, end=at(hours=2))
    again = run(s, at(hours=2))  # evidence moved on, the change did not
    assert entries(again)[PROD_BRANCH]["action"] == "unchanged"
    assert again.commits == []
    assert s.sha(PROD_BRANCH) == tip


def test_a_new_value_regenerates_the_same_branch(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=256))
    run(s)
    signals(s.metrics, "messagewall-prod", util=97.0, used=400.0, end=at(hours=1))
    report = run(s, at(hours=1))
    e = entries(report)[PROD_BRANCH]
    assert (e["action"], e["to"]) == ("updated", 512)
    assert s.branches() == [PROD_BRANCH]
    assert len(s.on_branch(PROD_BRANCH)) == 1
    assert s.trailers(PROD_BRANCH)["Feedback-To"] == "512"
    status = s.record(PROD_BRANCH)["status"]
    assert status["createdAt"] == "2026-11-08T01:00:00Z"
    assert status["openedAt"] == "2026-11-08T00:00:00Z"  # the same open proposal: not a new one


def test_a_moved_base_regenerates_the_proposal_on_it(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=256))
    run(s)
    new_main = commit_files(s.work, {"README.md": "runbook\n"}, "Add a runbook", date="2026-11-08T00:30:00Z")
    git_out(s.work, "push", "-q", "origin", "main")  # proposals build on the upstream: push it
    signals(s.metrics, "messagewall-prod", util=95.0, used=240.0, end=at(hours=1))
    report = run(s, at(hours=1))
    e = entries(report)[PROD_BRANCH]
    assert (e["action"], e["to"]) == ("rebased", 384)
    assert git_out(s.work, "rev-parse", f"{PROD_BRANCH}^") == new_main
    assert s.on_branch(PROD_BRANCH) == [e["commit"]]
    doc = s.record(PROD_BRANCH)
    assert doc["spec"]["target"]["baseCommit"] == new_main
    assert doc["status"]["createdAt"] == "2026-11-08T00:00:00Z"  # the same proposal, kept
    signals(s.metrics, "messagewall-prod", util=95.0, used=240.0, end=at(hours=2))
    again = run(s, at(hours=2))
    assert entries(again)[PROD_BRANCH]["action"] == "unchanged" and again.commits == []


def test_a_field_changed_on_the_base_makes_the_proposal_stale(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=256))
    run(s)
    tip = s.sha(PROD_BRANCH)
    commit_files(
        s.work, {PROD: prod_claim(memory=320, max_memory=256)}, "Set 320 by hand", "2026-11-08T00:10:00Z"
    )
    git_out(s.work, "push", "-q", "origin", "main")  # proposals build on the upstream: push it
    signals(s.metrics, "messagewall-prod", util=60.0, used=190.0, end=at(hours=4))  # no longer under pressure
    report = run(s, at(hours=4))
    assert entries(report) == {}
    stale = [e for e in report.events if e["branch"] == PROD_BRANCH]
    assert stale and stale[0]["status"] == "stale"
    assert "spec.lambdaMemory is 320 now, not 256" in stale[0]["detail"]
    assert s.sha(PROD_BRANCH) == tip


def test_a_stale_proposal_is_replaced_when_the_signal_still_asks(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=256))
    run(s)
    commit_files(
        s.work, {PROD: prod_claim(memory=320, max_memory=256)}, "Set 320 by hand", "2026-11-08T00:10:00Z"
    )
    git_out(s.work, "push", "-q", "origin", "main")  # proposals build on the upstream: push it
    signals(s.metrics, "messagewall-prod", util=96.0, used=300.0, end=at(hours=4))
    e = entries(run(s, at(hours=4)))[PROD_BRANCH]
    assert (e["action"], e["previousStatus"], e["from"], e["to"]) == ("updated", "stale", 320, 384)
    assert "stale proposal replaced" in e["detail"]
    assert git_out(s.work, "rev-parse", f"{PROD_BRANCH}^") == s.main()


def test_a_human_commit_on_the_branch_is_never_overwritten(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=256))
    run(s)
    git_out(s.work, "checkout", "-q", PROD_BRANCH)
    human = commit_files(s.work, {"NOTES.md": "tested in staging\n"}, "Staging notes", "2026-11-08T00:20:00Z")
    git_out(s.work, "checkout", "-q", "main")
    signals(s.metrics, "messagewall-prod", util=97.0, used=400.0, end=at(hours=1))  # a new value
    report = run(s, at(hours=1))
    e = entries(report)[PROD_BRANCH]
    assert e["action"] == "handed-off"
    assert human[:10] in e["detail"] and "Ada Human" in e["detail"]
    assert s.sha(PROD_BRANCH) == human
    assert report.commits == []


def three_prod_claims() -> dict[str, str]:
    files = claim_files(max_memory=256)
    for n in (2, 3):
        files[f"claims/messagewall-prod{n}.yaml"] = prod_claim(max_memory=256, name=f"messagewall-prod{n}")
    return files


def with_metrics_for_copies(s) -> None:  # type: ignore[no-untyped-def]
    for n in (2, 3):
        signals(s.metrics, f"messagewall-prod{n}", util=95.0, used=240.0)


def test_new_proposals_per_hour_are_limited_and_reported(tmp_path: Path) -> None:
    s = make_setup(tmp_path, three_prod_claims())
    with_metrics_for_copies(s)
    first = entries(run(s))
    actions = sorted(e["action"] for e in first.values())
    assert actions == ["created", "created", "held-back"]
    held = next(e for e in first.values() if e["action"] == "held-back")
    assert "2 proposals opened in the last hour (max 2)" in held["detail"]
    assert len(s.branches()) == 2
    for name in ("messagewall-prod", "messagewall-prod2", "messagewall-prod3"):
        signals(s.metrics, name, util=95.0, used=240.0, end=at(hours=0.5))
    # Still inside the hour: counted from the branches' records, not from memory.
    assert sorted(e["action"] for e in entries(run(s, at(hours=0.5))).values()) == [
        "held-back",
        "unchanged",
        "unchanged",
    ]
    for name in ("messagewall-prod", "messagewall-prod2", "messagewall-prod3"):
        signals(s.metrics, name, util=95.0, used=240.0, end=at(hours=1.1))
    later = entries(run(s, at(hours=1.1)))
    assert later[held["branch"]]["action"] == "created"
    assert len(s.branches()) == 3


def test_open_proposals_are_limited(tmp_path: Path) -> None:
    files = three_prod_claims() | {".feedbackctl.yaml": config(maxOpen=2, maxNewPerHour=10)}
    s = make_setup(tmp_path, files)
    with_metrics_for_copies(s)
    first = entries(run(s))
    assert sorted(e["action"] for e in first.values()) == ["created", "created", "held-back"]
    held = next(e for e in first.values() if e["action"] == "held-back")
    assert "2 proposals are open (max 2)" in held["detail"]
    for name in ("messagewall-prod", "messagewall-prod2", "messagewall-prod3"):
        signals(s.metrics, name, util=95.0, used=240.0, end=at(hours=3))
    assert entries(run(s, at(hours=3)))[held["branch"]]["action"] == "held-back"


def test_all_adds_what_autotune_would_apply(tmp_path: Path) -> None:
    s = make_setup(tmp_path, idle_dev=True)
    # prod is in bounds, MEDIUM: autotune's job; dev is not opted in: a proposal.
    e = entries(run(s))
    assert sorted(e) == [DEV_BRANCH]
    assert (e[DEV_BRANCH]["from"], e[DEV_BRANCH]["to"], e[DEV_BRANCH]["risk"]) == (512, 128, "LOW")
    assert e[DEV_BRANCH]["reviewReason"] == "opt-in"
    e = entries(run(s, all_changes=True))
    assert (e[PROD_BRANCH]["to"], e[PROD_BRANCH]["risk"], e[PROD_BRANCH]["reviewReason"]) == (
        384,
        "MEDIUM",
        "requested",
    )
    assert e[DEV_BRANCH]["action"] == "unchanged"


def test_risk_above_the_ceiling_becomes_a_proposal(tmp_path: Path) -> None:
    files = claim_files() | {"policies/feedback-rules.yaml": "limits:\n  autoApplyCeiling: LOW\n"}
    s = make_setup(tmp_path, files)
    e = entries(run(s))[PROD_BRANCH]
    assert (e["reviewReason"], e["risk"], e["from"], e["to"]) == ("risk-ceiling", "MEDIUM", 256, 384)


def test_a_source_that_requires_proposals_only_proposes(tmp_path: Path) -> None:
    sources = (
        "feedbackSources:\n"
        "  - {name: metric-fixtures, type: pull, trustLevel: high, requiresProposal: true}\n"
    )
    s = make_setup(tmp_path, claim_files() | {"policies/sources.yaml": sources})
    e = entries(run(s))[PROD_BRANCH]
    assert (e["reviewReason"], e["to"]) == ("trust", 384)
    assert s.record(PROD_BRANCH)["spec"]["rationale"]["reviewReason"] == "trust"


def test_policy_checks_block_before_classification(tmp_path: Path) -> None:
    # At its bound of 9984 MB, usage asks for 11520: beyond the schema's 10240.
    s = make_setup(tmp_path, claim_files(memory=9984, max_memory=9984), util=96.0, used=10000.0)
    report = run(s)
    e = entries(report)[PROD_BRANCH]
    assert e["action"] == "blocked"
    assert e["policyResult"] == "blocked: schema.maximum: 11520 is above 10240 MB"
    assert e["risk"] is None
    assert s.branches() == []
    d = next(d for d in report.decisions if d.claim == "messagewall-prod")
    assert d.outcome.value == "blocked" and "schema.maximum" in d.blocked_by


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=256))
    before = git_out(s.work, "for-each-ref")
    report = run(s, dry_run=True)
    assert entries(report)[PROD_BRANCH]["action"] == "created"
    assert report.commits[0]["sha"] == "(dry-run)"
    assert git_out(s.work, "for-each-ref") == before


def test_works_on_a_bare_repo(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=256))
    from feedbackctl.authority.gitrepo import GitRepo
    from feedbackctl.patterns.propose import propose

    report = propose(GitRepo.open(s.origin), None, str(s.metrics), NOW)
    assert entries(report)[PROD_BRANCH]["action"] == "created"
    assert git_out(s.origin, "rev-list", "--count", f"main..{PROD_BRANCH}") == "1"


def test_push_sends_branches_with_a_lease_and_respects_remote_handoff(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=256))
    report = run(s, push=True)
    e = entries(report)[PROD_BRANCH]
    assert e["pushed"] is True
    assert git_out(s.origin, "rev-parse", PROD_BRANCH) == s.sha(PROD_BRANCH)
    assert entries(run(s, push=True))[PROD_BRANCH]["pushed"] is None  # unchanged: no push

    # A reviewer pushes a fix to the proposal branch from their own clone.
    clone = tmp_path / "reviewer"
    git_out(tmp_path, "clone", "-q", "-b", PROD_BRANCH, str(s.origin), str(clone))
    human = commit_files(clone, {"NOTES.md": "looks fine\n"}, "Reviewer notes", "2026-11-08T01:00:00Z")
    git_out(clone, "push", "-q", "origin", PROD_BRANCH)

    signals(s.metrics, "messagewall-prod", util=97.0, used=400.0, end=at(hours=2))
    e = entries(run(s, at(hours=2), push=True))[PROD_BRANCH]
    assert e["action"] == "handed-off" and human[:10] in e["detail"]
    assert git_out(s.origin, "rev-parse", PROD_BRANCH) == human


def test_push_lease_protects_a_remote_that_moved_after_the_fetch(tmp_path: Path) -> None:
    from feedbackctl.authority.gitrepo import GitRepo

    s = make_setup(tmp_path, claim_files(max_memory=256))
    run(s, push=True)
    repo = GitRepo.open(s.work)
    # The lease names the sha we last saw: a different expectation is refused, nothing moves.
    main = s.main()
    assert repo.push("origin", PROD_BRANCH, main, main) is False
    assert git_out(s.origin, "rev-parse", PROD_BRANCH) == s.sha(PROD_BRANCH)


def test_a_checked_out_proposal_branch_is_never_moved(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=256))
    run(s)
    tip = s.sha(PROD_BRANCH)
    git_out(s.work, "worktree", "add", "-q", str(tmp_path / "review"), PROD_BRANCH)
    signals(s.metrics, "messagewall-prod", util=97.0, used=400.0, end=at(hours=1))
    e = entries(run(s, at(hours=1)))[PROD_BRANCH]
    assert e["action"] == "skipped" and "checked out" in e["detail"]
    assert s.sha(PROD_BRANCH) == tip


def test_concurrent_runs_write_each_proposal_once(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=256))
    argv = [
        sys.executable,
        "-m",
        "feedbackctl",
        "propose",
        "--repo",
        str(s.work),
        "--metrics",
        str(s.metrics),
    ]
    argv += ["--now", NOW_TEXT, "--output", "json"]
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [r[1] for r in results]
    assert len(s.on_branch(PROD_BRANCH)) == 1
    assert git_out(s.work, "for-each-ref", "refs/feedbackctl/") == ""  # no scratch refs left


def test_cli_json_and_exit_codes(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=256))
    base = ["propose", "--repo", str(s.work), "--metrics", str(s.metrics), "--now", NOW_TEXT]
    r = cli(*base, "--output", "json")
    assert r.code == 0, r.stderr
    out = r.json()
    assert out["command"] == "propose" and out["proposals"][0]["branch"] == PROD_BRANCH
    assert out["decisions"][0]["outcome"] == "propose"
    assert cli(*base, "--detailed-exitcode").code == 3
    table = cli(*base)
    assert table.code == 0 and PROD_BRANCH in table.stdout and "unchanged" in table.stdout
    assert cli("propose", "--repo", str(tmp_path / "nope"), "--metrics", str(s.metrics)).code == 2


def test_bad_prefix_is_a_usage_error(tmp_path: Path) -> None:
    s = make_setup(
        tmp_path, claim_files(max_memory=256) | {".feedbackctl.yaml": config(prefix="bad..prefix/")}
    )
    r = cli("propose", "--repo", str(s.work), "--metrics", str(s.metrics), "--now", NOW_TEXT)
    assert r.code == 2
    assert "proposals.prefix 'bad..prefix/'" in r.stderr and "Traceback" not in r.stderr


def test_a_custom_prefix_names_the_branches(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=256) | {".feedbackctl.yaml": config(prefix="tune/")})
    run(s)
    assert git_out(s.work, "for-each-ref", "--format=%(refname:short)", "refs/heads/").splitlines() == [
        "main",
        "tune/messagewall-prod/lambdaMemory",
    ]


@pytest.mark.parametrize(
    "text",
    ["app.lock", "a..b", "x y", "we~ird^", "a:b", "-lead", ".hidden", "a/b", "a@{b", "trail.", "ünï"],
)
def test_branch_names_are_made_safe_for_git(text: str) -> None:
    cfg = ProposalConfig()
    name = branch_name(cfg, text, "lambdaMemory")
    git = subprocess.run(["git", "check-ref-format", f"refs/heads/{name}"], check=False)
    assert git.returncode == 0, name
    assert name.count("/") == 2
    assert branch_name(cfg, text, "lambdaMemory") == name  # deterministic
    assert safe_component(text) != safe_component(text + "x")
    assert record_path(cfg, text, "lambdaMemory").startswith("proposals/")


def test_clean_names_are_kept_as_written() -> None:
    assert branch_name(ProposalConfig(), "messagewall-prod", "lambdaMemory") == PROD_BRANCH


def test_expiry_counts_from_the_proposal_not_the_rerun(tmp_path: Path) -> None:
    s = make_setup(tmp_path, claim_files(max_memory=256))
    run(s)
    commit_files(s.work, {"README.md": "x\n"}, "unrelated", date="2026-11-09T00:00:00Z")
    git_out(s.work, "push", "-q", "origin", "main")  # proposals build on the upstream: push it
    signals(s.metrics, "messagewall-prod", util=95.0, used=240.0, end=at(days=1))
    assert entries(run(s, at(days=1)))[PROD_BRANCH]["action"] == "rebased"
    assert s.record(PROD_BRANCH)["status"]["expiresAt"] == "2026-11-15T00:00:00Z"
    assert (
        yaml.safe_load(git_out(s.work, "show", f"{PROD_BRANCH}:{PROD_RECORD}"))["status"]["state"]
        == "pending"
    )


def test_shards_split_the_claims_and_cover_each_once(tmp_path: Path) -> None:
    from feedbackctl.authority.shard import Shard

    s = make_setup(tmp_path, three_prod_claims() | {".feedbackctl.yaml": config(maxNewPerHour=10)})
    with_metrics_for_copies(s)
    seen: list[str] = []
    for i in range(3):
        made = entries(run(s, shard=Shard(i, 3)))
        assert all(e["action"] == "created" for e in made.values())
        seen += made
    assert sorted(seen) == sorted(s.branches()) and len(seen) == 3
    # A shard outside 0..n-1 is a usage error.
    r = cli(
        "propose", "--repo", str(s.work), "--metrics", str(s.metrics), "--now", NOW_TEXT, "--shard", "5/3"
    )
    assert r.code == 2 and "--shard" in r.stderr
