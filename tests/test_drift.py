"""``feedbackctl drift`` with a live-state file: real git repos, the CLI, the pure comparison."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from feedbackctl.authority.config import load_policy_docs
from feedbackctl.core.drift import IgnoreRule, Status, coerce, compare, hold_pending_sync, same
from feedbackctl.core.models import Claim, FieldChange, ValueLocation
from feedbackctl.core.policy import PolicyError
from feedbackctl.errors import UsageError
from feedbackctl.patterns.drift import parse_ignore
from feedbackctl.sources.live import LiveState, parse_live_document
from tests import kustomizefix
from tests.clirun import ROOT, Result, cli
from tests.gitutil import commit_files, git_out, make_repo

EXAMPLE = ROOT / "examples" / "messagewall"
CORPUS = kustomizefix.CORPUS / "examples" / "claims"
NOW = "2026-11-08T00:00:00Z"
PROD = "claims/messagewall-prod.yaml"
DEV = "claims/messagewall-dev.yaml"
PROD_CLAIM = "messagewall-prod"
DEV_CLAIM = "messagewall-dev"


def example_claims() -> dict[str, str]:
    return {f"claims/{p.name}": p.read_text() for p in (EXAMPLE / "claims").glob("*.yaml")}


@pytest.fixture()
def repo(tmp_path: Path) -> tuple[Path, Path]:
    return make_repo(tmp_path, example_claims(), date="2026-10-01T00:00:00Z")


def live_file(tmp_path: Path, data: object, name: str = "live.yaml") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if name.endswith(".json") else _yaml(data))
    return path


def _yaml(data: object) -> str:
    return yaml.safe_dump(data, sort_keys=False)


def drift(work: Path, live: Path | str, *extra: str, now: str = NOW) -> Result:
    return cli("drift", "--repo", str(work), "--live", str(live), "--now", now, *extra)


def head(work: Path, ref: str = "main") -> str:
    return git_out(work, "rev-parse", ref)


def trailers(work: Path, rev: str) -> dict[str, str]:
    out = git_out(work, "log", "-1", "--format=%(trailers:only,unfold)", rev)
    return dict(line.split(": ", 1) for line in out.splitlines() if line)


# --- the pure comparison -----------------------------------------------------------


def _claim(name: str = PROD_CLAIM, **spec: object) -> Claim:
    full: dict[str, object] = {"environment": "prod", "lambdaMemory": 256, "lambdaTimeout": 30, **spec}
    locations = {
        f"spec.{k}": ValueLocation("c.yaml", 0, 0, 0, 1, 1) for k, v in full.items() if k != "autoTune"
    }
    return Claim(name, "ServerlessEventAppClaim", "x/v1", full, "c.yaml", locations=locations)


def test_coerce_keeps_the_claims_type_only_when_lossless() -> None:
    assert coerce(30, 60.0) == 60 and isinstance(coerce(30, 60.0), int)
    assert coerce(30, "60") == 60
    assert coerce(30, "060") == "060"  # not a faithful number: left as it is, and flagged later
    assert coerce("123456789012", 123456789012) == "123456789012"
    assert coerce(True, 1) == 1
    assert same(30, 30.0) and not same(True, 1) and not same(30, "30")


def test_ignore_rules_by_field_and_by_claim_with_globs() -> None:
    rules = parse_ignore(["spec.lambdaTimeout", "messagewall-dev:spec.region", "*-staging:lambda*"])
    assert rules[0] == IgnoreRule("*", "lambdaTimeout")
    assert rules[1].matches(DEV_CLAIM, "region") and not rules[1].matches(PROD_CLAIM, "region")
    assert rules[2].matches("app-staging", "lambdaMemory") and not rules[2].matches(
        "app-prod", "lambdaMemory"
    )
    with pytest.raises(PolicyError, match="drift.ignore"):
        parse_ignore(["messagewall-dev:"])


def test_compare_classifies_every_observed_field() -> None:
    claims = [_claim(), _claim(DEV_CLAIM, environment="dev")]
    state = LiveState(
        "live-file",
        observed={
            PROD_CLAIM: {"lambdaMemory": 256, "lambdaTimeout": 60, "artifactBucket": "b"},
            DEV_CLAIM: {"lambdaTimeout": 15, "lambdaMemory": 128},
            "ghost": {"lambdaMemory": 1},
        },
    )
    result = compare(claims, state, load_policy_docs({}), parse_ignore(["messagewall-dev:lambdaMemory"]))
    by = {(f.claim, f.field): f for f in result.findings}
    assert by[(PROD_CLAIM, "lambdaTimeout")].status == Status.DRIFT
    assert (by[(PROD_CLAIM, "lambdaTimeout")].desired, by[(PROD_CLAIM, "lambdaTimeout")].observed) == (30, 60)
    assert by[(PROD_CLAIM, "lambdaTimeout")].risk == "MEDIUM"  # LOW base + prod
    assert by[(PROD_CLAIM, "artifactBucket")].status == Status.UNMANAGED
    assert by[(DEV_CLAIM, "lambdaMemory")].status == Status.IGNORED
    assert by[(DEV_CLAIM, "lambdaTimeout")].status == Status.DRIFT
    assert result.in_sync == 1
    assert [p.where for p in result.problems] == ["ghost"]
    assert "not in the repo" in result.problems[0].message


def test_out_of_bounds_names_every_bound_it_breaks() -> None:
    tuned = _claim(autoTune={"enabled": True, "memoryBounds": {"min": 128, "max": 512}})
    state = LiveState("live-file", observed={PROD_CLAIM: {"lambdaMemory": 20480, "lambdaTimeout": "slow"}})
    by = {f.field: f for f in compare([tuned], state, load_policy_docs({})).findings}
    assert by["lambdaMemory"].out_of_bounds == (
        "outside the schema range 128-10240",
        "outside the autoTune bounds 128-512",
    )
    assert by["lambdaMemory"].tags == ("break-glass", "requires-review", "out-of-bounds")
    assert by["lambdaTimeout"].out_of_bounds == ("'slow' is not a number, as the schema requires",)


def test_a_rollout_in_progress_is_pending_sync_not_drift() -> None:
    now = datetime(2026, 11, 8, tzinfo=UTC)
    state = LiveState("live-file", observed={PROD_CLAIM: {"lambdaMemory": 256}})
    findings = compare([_claim(lambdaMemory=384)], state, load_policy_docs({})).findings
    autotuned = FieldChange("a" * 40, now - timedelta(minutes=5), 256, 384, "auto-tune")
    held = hold_pending_sync(findings, {(PROD_CLAIM, "lambdaMemory"): autotuned}, now, 15)
    assert held[0].status == Status.PENDING_SYNC and "auto-tune changed it 5m ago" in held[0].detail
    # After the grace period, reality wins again.
    later = hold_pending_sync(
        findings, {(PROD_CLAIM, "lambdaMemory"): autotuned}, now + timedelta(minutes=11), 15
    )
    assert later[0].status == Status.DRIFT
    # A live value that is neither the old nor the new one is drift at once.
    other = FieldChange("a" * 40, now - timedelta(minutes=5), 128, 384, "auto-tune")
    assert (
        hold_pending_sync(findings, {(PROD_CLAIM, "lambdaMemory"): other}, now, 15)[0].status == Status.DRIFT
    )


def test_live_document_problems_are_per_claim() -> None:
    state = parse_live_document(
        {
            PROD_CLAIM: {"spec.lambdaTimeout": 60, "autoTune.enabled": False},
            DEV_CLAIM: [1, 2],
            "x": {"a": {}},
        },
        "live.yaml",
    )
    assert state.observed[PROD_CLAIM] == {"lambdaTimeout": 60}
    assert set(state.problems) == {PROD_CLAIM, DEV_CLAIM, "x"}
    with pytest.raises(UsageError, match="live.yaml: expected a mapping"):
        parse_live_document([1], "live.yaml")


# --- capture end to end ----------------------------------------------------------


def test_capture_commits_the_live_value_with_the_audit_trailers(repo, tmp_path) -> None:
    work, _ = repo
    before = head(work)
    live = live_file(tmp_path, {PROD_CLAIM: {"lambdaTimeout": 60}, DEV_CLAIM: {"lambdaTimeout": 10}})
    r = drift(work, live)
    assert r.code == 0, r.stderr
    sha = head(work)
    assert git_out(work, "rev-list", "--count", f"{before}..{sha}") == "1"
    found = trailers(work, sha)
    assert len(found.pop("Feedback-Run")) == 32  # no FEEDBACKCTL_RUN_ID: a fresh id for the run
    assert found == {
        "Feedback-Kind": "drift-capture",
        "Feedback-Claim": PROD_CLAIM,
        "Feedback-Field": "spec.lambdaTimeout",
        "Feedback-From": "30",
        "Feedback-To": "60",
        "Feedback-Source": "live-file",
        "Feedback-Risk": "MEDIUM",
        "Feedback-Evidence": f"observed 60 via live-file; desired 30 at main@{before[:8]}",
        "Feedback-Tags": "break-glass, requires-review",
    }
    # Minimal edit: one line, its comment kept; the work tree followed (status clean).
    diff = git_out(work, "diff", "-U0", before, sha)
    assert [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")] == [
        "-  lambdaTimeout: 30    # Longer timeout for reliability",
        "+  lambdaTimeout: 60    # Longer timeout for reliability",
    ]
    assert git_out(work, "status", "--porcelain") == ""
    assert (
        git_out(work, "log", "-1", "--format=%aI %cI", sha)
        == "2026-11-08T00:00:00+00:00 2026-11-08T00:00:00+00:00"
    )
    assert "captured" in r.stdout and "30 → 60" in r.stdout
    # The same live state again: nothing new.
    again = drift(work, live, now="2026-11-08T00:10:00Z")
    assert again.code == 0 and head(work) == sha
    assert "2 observed field(s) match git; 0 differ" in again.stdout


def test_each_difference_is_its_own_commit(repo, tmp_path) -> None:
    work, _ = repo
    before = head(work)
    live = live_file(
        tmp_path, {PROD_CLAIM: {"lambdaTimeout": 60, "lambdaMemory": 384}, DEV_CLAIM: {"lambdaMemory": 256}}
    )
    r = drift(work, live, "--output", "json")
    assert r.code == 0, r.stderr
    report = r.json()
    assert [c["sha"] for c in report["commits"]] == git_out(
        work, "rev-list", "--reverse", f"{before}..main"
    ).splitlines()
    fields = git_out(
        work,
        "log",
        "--format=%(trailers:key=Feedback-Claim,valueonly,separator=) "
        "%(trailers:key=Feedback-Field,valueonly)",
        f"{before}..main",
    )
    assert sorted(line for line in fields.splitlines() if line) == sorted(
        [
            f"{DEV_CLAIM} spec.lambdaMemory",
            f"{PROD_CLAIM} spec.lambdaMemory",
            f"{PROD_CLAIM} spec.lambdaTimeout",
        ]
    )
    prod_text = git_out(work, "show", f"main:{PROD}")
    assert (
        "lambdaMemory: 384    # Higher memory" in prod_text and "lambdaTimeout: 60    # Longer" in prod_text
    )
    assert {e["claim"] for e in report["events"]} == {PROD_CLAIM, DEV_CLAIM} and len(report["events"]) == 3


def test_out_of_bounds_reality_is_still_captured_and_tagged(repo, tmp_path) -> None:
    work, _ = repo
    live = live_file(tmp_path, {PROD_CLAIM: {"lambdaMemory": 1024}})  # autoTune max is 512
    r = drift(work, live, "--output", "json")
    assert r.code == 0, r.stderr
    t = trailers(work, "main")
    assert t["Feedback-To"] == "1024"
    assert t["Feedback-Tags"] == "break-glass, requires-review, out-of-bounds"
    assert "outside the autoTune bounds 128-512" in t["Feedback-Evidence"]
    assert "Outside what humans allowed" in git_out(work, "log", "-1", "--format=%b", "main")
    assert r.json()["drift"][0]["outOfBounds"] == ["outside the autoTune bounds 128-512"]


def test_report_mode_and_dry_run_write_nothing(repo, tmp_path) -> None:
    work, origin = repo
    before = head(work)
    live = live_file(tmp_path, {PROD_CLAIM: {"lambdaTimeout": 60}})
    report = drift(work, live, "--mode", "report", "--output", "json")
    assert report.code == 0 and head(work) == before
    assert [(d["claim"], d["status"]) for d in report.json()["drift"]] == [(PROD_CLAIM, "drift")]
    assert report.json()["events"] == []
    assert drift(work, live, "--mode", "report", "--detailed-exitcode").code == 3
    dry = drift(origin, live, "--dry-run", "--output", "json")
    assert dry.code == 0 and head(origin) == before
    assert dry.json()["drift"][0]["status"] == "would-capture"
    assert drift(work, live, "--dry-run", "--detailed-exitcode").code == 3


def test_unknown_claim_is_a_problem_and_the_others_are_still_captured(repo, tmp_path) -> None:
    work, _ = repo
    live = live_file(
        tmp_path, {"messagewall-qa": {"lambdaTimeout": 5}, PROD_CLAIM: {"lambdaTimeout": 60}}, "l.json"
    )
    r = drift(work, live)
    assert r.code == 1
    assert "messagewall-qa: the live state names a claim that is not in the repo" in r.stderr
    assert "Traceback" not in r.stderr
    assert trailers(work, "main")["Feedback-Claim"] == PROD_CLAIM


def test_ignore_rules_from_the_repo_config(repo, tmp_path) -> None:
    work, _ = repo
    commit_files(
        work,
        {
            ".feedbackctl.yaml": (
                "drift:\n  ignore:\n    - spec.lambdaTimeout\n    - messagewall-dev:spec.region\n"
            )
        },
        "Ignore live timeout drift",
        "2026-10-02T00:00:00Z",
    )
    before = head(work)
    live = live_file(
        tmp_path,
        {PROD_CLAIM: {"lambdaTimeout": 60, "region": "us-west-2"}, DEV_CLAIM: {"region": "eu-west-1"}},
    )
    r = drift(work, live, "--output", "json")
    assert r.code == 0, r.stderr
    statuses = {(d["claim"], d["field"]): d["status"] for d in r.json()["drift"]}
    assert statuses == {
        (PROD_CLAIM, "spec.lambdaTimeout"): "ignored",
        (PROD_CLAIM, "spec.region"): "captured",
        (DEV_CLAIM, "spec.region"): "ignored",
    }
    assert git_out(work, "rev-list", "--count", f"{before}..main") == "1"


def test_branch_mode_captures_on_a_review_branch_never_checked_out(repo, tmp_path) -> None:
    work, _ = repo
    main = head(work)
    live = live_file(tmp_path, {PROD_CLAIM: {"lambdaTimeout": 60}})
    r = drift(work, live, "--branch", "drift/review", "--output", "json")
    assert r.code == 0, r.stderr
    assert head(work) == main
    assert git_out(work, "symbolic-ref", "HEAD") == "refs/heads/main"
    review = head(work, "drift/review")
    assert git_out(work, "rev-parse", f"{review}^") == main
    assert trailers(work, review)["Feedback-Kind"] == "drift-capture"
    assert r.json()["events"][0]["branch"] == "drift/review"
    # Still drift against main, but already waiting on the review branch: no second commit.
    again = drift(work, live, "--branch", "drift/review", "--output", "json")
    assert again.code == 0 and head(work, "drift/review") == review
    assert again.json()["drift"][0]["status"] == "already-captured"
    # A new difference goes on top of the review branch.
    more = live_file(tmp_path, {PROD_CLAIM: {"lambdaTimeout": 60, "lambdaMemory": 512}}, "more.yaml")
    assert drift(work, more, "--branch", "drift/review").code == 0
    assert git_out(work, "rev-parse", "drift/review^") == review
    assert head(work) == main


def test_a_change_still_rolling_out_is_not_captured_back(repo, tmp_path) -> None:
    work, _ = repo
    text = (work / PROD).read_text().replace("lambdaMemory: 256", "lambdaMemory: 384")
    commit_files(work, {PROD: text}, "Raise prod memory", "2026-11-08T00:00:00Z")
    before = head(work)
    live = live_file(tmp_path, {PROD_CLAIM: {"lambdaMemory": 256}})  # not actuated yet
    r = drift(work, live, "--output", "json", now="2026-11-08T00:05:00Z")
    assert r.code == 0 and head(work) == before
    assert r.json()["drift"][0]["status"] == "pending-sync"
    # Still 256 after the grace period: the rollout did not happen; reality wins.
    late = drift(work, live, now="2026-11-08T00:20:00Z")
    assert late.code == 0 and trailers(work, "main")["Feedback-To"] == "256"


def test_corpus_claim_edit_is_minimal(tmp_path) -> None:
    files = {f"claims/{p.name}": p.read_text() for p in CORPUS.glob("*.yaml")}
    work, _ = make_repo(tmp_path, files)
    before = head(work)
    live = live_file(tmp_path, {PROD_CLAIM: {"awsAccountId": 210987654321}})
    r = drift(work, live)
    assert r.code == 0, r.stderr
    after = git_out(work, "show", f"main:{PROD}")
    assert after + "\n" == files[PROD].replace('awsAccountId: "123456789012"', 'awsAccountId: "210987654321"')
    assert trailers(work, "main")["Feedback-Risk"] == "HIGH"
    assert head(work) != before


def test_bare_repo_with_push_lands_on_origin_and_follows_it(repo, tmp_path) -> None:
    work, origin = repo
    clone = tmp_path / "cron.git"
    git_out(tmp_path, "clone", "-q", "--bare", str(origin), str(clone))
    # Someone else pushes a human change first: the cron clone is behind.
    text = (work / DEV).read_text().replace("lambdaMemory: 512", "lambdaMemory: 384")
    human = commit_files(work, {DEV: text}, "Trim dev memory", "2026-11-01T00:00:00Z")
    git_out(work, "push", "-q", "origin", "main")
    live = live_file(tmp_path, {PROD_CLAIM: {"lambdaTimeout": 60}})
    r = drift(clone, live, "--push")
    assert r.code == 0, r.stderr
    pushed = head(origin)
    assert git_out(origin, "rev-parse", f"{pushed}^") == human
    assert trailers(origin, pushed)["Feedback-Claim"] == PROD_CLAIM
    assert head(clone) == pushed


def test_push_with_a_review_branch_leaves_origins_main_alone(repo, tmp_path) -> None:
    work, origin = repo
    main = head(origin)
    live = live_file(tmp_path, {PROD_CLAIM: {"lambdaTimeout": 60}})
    r = drift(work, live, "--push", "--branch", "drift/review")
    assert r.code == 0, r.stderr
    assert head(origin) == main and head(work) == main
    assert head(origin, "drift/review") == head(work, "drift/review")
    assert git_out(origin, "rev-parse", "drift/review^") == main


def test_a_tag_can_be_compared_but_not_captured_into(repo, tmp_path) -> None:
    work, _ = repo
    git_out(work, "tag", "v1")
    before = head(work)
    live = live_file(tmp_path, {PROD_CLAIM: {"lambdaTimeout": 60}})
    report = drift(work, live, "--ref", "v1", "--mode", "report", "--output", "json")
    assert report.code == 0 and report.json()["drift"][0]["status"] == "drift"
    r = drift(work, live, "--ref", "v1")
    assert r.code == 2 and "--ref v1 is not a branch" in r.stderr
    assert head(work) == before and git_out(work, "branch", "--list", "v1") == ""


def test_uncommitted_edit_to_the_claim_file_refuses_and_changes_nothing(repo, tmp_path) -> None:
    work, _ = repo
    before = head(work)
    (work / PROD).write_text((work / PROD).read_text() + "# local note\n")
    r = drift(work, live_file(tmp_path, {PROD_CLAIM: {"lambdaTimeout": 60}}))
    assert r.code == 1
    assert "claims/messagewall-prod.yaml has uncommitted changes" in r.stderr
    assert head(work) == before and (work / PROD).read_text().endswith("# local note\n")


def test_two_concurrent_runs_capture_once(repo, tmp_path) -> None:
    work, _ = repo
    before = head(work)
    live = live_file(tmp_path, {PROD_CLAIM: {"lambdaTimeout": 60}, DEV_CLAIM: {"lambdaTimeout": 20}})
    env = {"PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    args = [
        sys.executable,
        "-m",
        "feedbackctl",
        "drift",
        "--repo",
        str(work),
        "--live",
        str(live),
        "--now",
        NOW,
    ]
    procs = [
        subprocess.Popen(args, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    log = git_out(work, "log", "--format=%(trailers:key=Feedback-Claim,valueonly)", f"{before}..main")
    assert sorted(line for line in log.splitlines() if line) == [DEV_CLAIM, PROD_CLAIM]
    assert git_out(work, "status", "--porcelain") == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--live", "missing.yaml"), "missing.yaml: no such file"),
        (("--live", "bad.yaml"), "bad.yaml"),
        (("--live", "live.yaml", "--mode", "fix"), "--mode"),
        (("--live", "live.yaml", "--notify-webhook", "ftp://x"), "is not an http:// or https:// URL"),
        (("--live", "live.yaml", "--branch", "bad..name"), "not a valid git ref name"),
        ((), "--live"),
    ],
)
def test_bad_input_is_a_usage_error_with_one_clear_line(repo, tmp_path, args, message) -> None:
    work, _ = repo
    live_file(tmp_path, {PROD_CLAIM: {"lambdaTimeout": 60}})
    (tmp_path / "bad.yaml").write_text("messagewall-prod: {lambdaTimeout: [\n")
    before = head(work)
    r = cli("drift", "--repo", str(work), "--now", NOW, *args, cwd=tmp_path)
    assert r.code == 2, (r.stdout, r.stderr)
    assert message in r.stderr and "Traceback" not in r.stderr
    assert head(work) == before


def test_demo_captures_the_seeds_break_glass_timeout(tmp_path) -> None:
    root = tmp_path / "demo"
    r = cli("demo", "--dir", str(root))
    assert r.code == 0, r.stderr
    config = root / "config"
    log = git_out(config, "log", "--format=%(trailers:key=Feedback-Kind,valueonly,separator=)", "main")
    assert "drift-capture" in log.splitlines()
    capture = git_out(config, "log", "-1", "--format=%H", "--grep=capture drift", "main")
    assert trailers(config, capture)["Feedback-To"] == "60"
    assert "lambdaTimeout: 60" in git_out(config, "show", f"main:{PROD}")
    assert "1 capture(s) await review" in r.stdout and f"feedbackctl review {capture[:10]}" in r.stdout
