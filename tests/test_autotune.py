"""``feedbackctl autotune`` end to end: the seed's example on a real repo, replayed with --now."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from tests.autotunefix import (
    DEV_CLAIM,
    PROD,
    PROD_CLAIM,
    PROD_PATH,
    T0,
    autotune,
    claim_text,
    count,
    decision,
    example_metrics,
    fresh_metrics,
    iso,
    memory_of,
    ok_json,
    run_on,
)
from tests.gitutil import RepoFactory, git_out, write_files

DEV_PATH = "claims/messagewall-dev.yaml"


def seed_repo(repo_factory: RepoFactory) -> Path:
    work, _ = repo_factory({PROD_PATH: PROD_CLAIM, DEV_PATH: DEV_CLAIM})
    return work


def trailer(repo: Path, key: str, rev: str = "main") -> str:
    return git_out(repo, "log", "-1", f"--format=%(trailers:key=Feedback-{key},valueonly)", rev).strip()


def test_seed_example_one_run_is_one_commit_256_to_384(repo_factory: RepoFactory, tmp_path: Path) -> None:
    work = seed_repo(repo_factory)
    metrics = example_metrics(tmp_path / "metrics")
    before = count(work)

    data = ok_json(autotune(work, metrics, T0))

    assert count(work) == before + 1
    assert memory_of(work) == 384
    numstat = git_out(work, "diff", "--numstat", "main~1", "main")
    assert numstat == f"1\t1\t{PROD_PATH}"
    diff = git_out(work, "diff", "-U0", "main~1", "main", "--", PROD_PATH)
    assert "-  lambdaMemory: 256    # Higher memory for production" in diff
    assert "+  lambdaMemory: 384    # Higher memory for production" in diff
    # The audit record, readable with git's own trailer formatting.
    assert git_out(work, "log", "--format=%(trailers:key=Feedback-Claim,valueonly)", "-1").strip() == PROD
    assert trailer(work, "Kind") == "auto-tune"
    assert trailer(work, "Field") == "spec.lambdaMemory"
    assert (trailer(work, "From"), trailer(work, "To")) == ("256", "384")
    assert trailer(work, "Source") == "metric-fixtures"
    assert trailer(work, "Rule") == "memory-pressure"
    assert trailer(work, "Risk") == "MEDIUM"
    evidence = trailer(work, "Evidence")
    assert "\n" not in evidence and "memory_utilization min=" in evidence and "over 30m" in evidence
    # Dated at the evaluation time, author and committer, so time can be replayed.
    assert git_out(
        work, "log", "-1", "--format=%aI %cI"
    ) == "2026-11-08T00:00:00Z 2026-11-08T00:00:00Z".replace("Z", "+00:00")
    # Every decision is listed with its status; the MEDIUM auto-apply is announced.
    d = decision(data)
    assert (d["status"], d["current"], d["recommended"], d["risk"]) == ("applied", 256, 384, "MEDIUM")
    dev = decision(data, "messagewall-dev")
    assert dev["status"] == "blocked" and dev["blockedBy"] == ["opt-in"]
    assert {(x["claim"], x["field"]) for x in data["decisions"]} == {
        (PROD, "spec.lambdaMemory"),
        (PROD, "spec.lambdaTimeout"),
        ("messagewall-dev", "spec.lambdaMemory"),
        ("messagewall-dev", "spec.lambdaTimeout"),
    }
    assert [e["type"] for e in data["events"]] == ["announce"]
    assert data["commits"][0]["sha"] == git_out(work, "rev-parse", "main")
    # A claim that does not opt in is blocked from git alone, its metrics unread (docs/cloudwatch.md).
    assert {x["field"]: x["status"] for x in data["decisions"] if x["claim"] == "messagewall-dev"} == {
        "spec.lambdaMemory": "blocked",
        "spec.lambdaTimeout": "blocked",
    }
    assert data["summary"] == {"applied": 1, "blocked": 3}
    # The checked-out branch moved like `git merge --ff-only`: nothing left over.
    assert git_out(work, "status", "--porcelain") == ""
    assert (work / PROD_PATH).read_text() == claim_text(work) + "\n"


def test_replay_shows_cooldown_second_step_and_upper_bound(repo_factory: RepoFactory, tmp_path: Path) -> None:
    work = seed_repo(repo_factory)
    metrics = example_metrics(tmp_path / "metrics")
    ok_json(autotune(work, metrics, T0))
    assert memory_of(work) == 384

    # +10 minutes: the change is still cooling down; nothing is written.
    data = ok_json(autotune(work, metrics, T0 + timedelta(minutes=10)))
    d = decision(data)
    assert d["status"] == "blocked" and d["blockedBy"] == ["cooldown"]
    assert "cooldown 60m" in d["reason"]
    assert data["commits"] == [] and count(work) == 2

    # Pressure stays on the new value: 384 MB functions using ~370 MB (96 %).
    run_on(metrics, PROD, T0 + timedelta(minutes=5), T0 + timedelta(hours=3), memory=384, used=370)
    data = ok_json(autotune(work, metrics, T0 + timedelta(hours=3)))
    assert decision(data)["status"] == "applied"
    assert memory_of(work) == 512
    assert (trailer(work, "From"), trailer(work, "To")) == ("384", "512")
    assert git_out(work, "diff", "--numstat", "main~1", "main") == f"1\t1\t{PROD_PATH}"

    # Still under pressure at 512: one more step would leave the human's bounds.
    run_on(metrics, PROD, T0 + timedelta(hours=3, minutes=5), T0 + timedelta(hours=6), memory=512, used=495)
    data = ok_json(autotune(work, metrics, T0 + timedelta(hours=6)))
    d = decision(data)
    assert d["status"] == "needs-proposal" and d["outcome"] == "propose"
    assert d["blockedBy"] == ["bounds"] and "at bound" in d["reason"]
    assert (d["current"], d["recommended"]) == (512, 640)
    assert [e["type"] for e in data["needsProposal"]] == ["needs-proposal"]
    assert memory_of(work) == 512 and count(work) == 3
    kinds = git_out(work, "log", "--format=%(trailers:key=Feedback-Kind,valueonly)").split()
    assert kinds == ["auto-tune", "auto-tune"]


def test_same_inputs_twice_change_nothing_the_second_time(repo_factory: RepoFactory, tmp_path: Path) -> None:
    work = seed_repo(repo_factory)
    metrics = example_metrics(tmp_path / "metrics")
    ok_json(autotune(work, metrics, T0))
    head = git_out(work, "rev-parse", "main")
    data = ok_json(autotune(work, metrics, T0))
    assert git_out(work, "rev-parse", "main") == head
    assert data["commits"] == [] and decision(data)["blockedBy"] == ["cooldown"]


def _objects(repo: Path) -> tuple[str, str]:
    refs = git_out(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    objects = git_out(repo, "count-objects", "-v")
    return refs, objects


def test_dry_run_decides_but_writes_nothing(repo_factory: RepoFactory, tmp_path: Path) -> None:
    work = seed_repo(repo_factory)
    metrics = example_metrics(tmp_path / "metrics")
    before = _objects(work)
    data = ok_json(autotune(work, metrics, T0, "--dry-run"))
    assert _objects(work) == before  # not even a loose object
    assert data["dryRun"] is True
    assert decision(data)["status"] == "would-apply"
    assert data["commits"][0]["sha"] == "(dry-run)" and data["commits"][0]["to"] == 384
    assert git_out(work, "status", "--porcelain") == ""


def test_a_dirty_claim_file_refuses_and_changes_nothing(repo_factory: RepoFactory, tmp_path: Path) -> None:
    work = seed_repo(repo_factory)
    metrics = example_metrics(tmp_path / "metrics")
    edited = PROD_CLAIM.replace("lambdaTimeout: 30", "lambdaTimeout: 45")
    write_files(work, {PROD_PATH: edited})
    head = git_out(work, "rev-parse", "main")

    result = autotune(work, metrics, T0)

    assert result.code == 1
    assert f"{PROD_PATH} has uncommitted changes" in result.stderr
    assert "Traceback" not in result.stderr
    assert git_out(work, "rev-parse", "main") == head
    assert (work / PROD_PATH).read_text() == edited  # the user's edit is untouched
    assert decision(result.json())["status"] == "not-applied"


def test_works_on_a_bare_repo(repo_factory: RepoFactory, tmp_path: Path) -> None:
    work = seed_repo(repo_factory)
    bare = tmp_path / "authority.git"
    git_out(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    metrics = example_metrics(tmp_path / "metrics")
    ok_json(autotune(bare, metrics, T0))
    assert memory_of(bare) == 384
    assert git_out(bare, "fsck", "--no-dangling") == ""


def test_detailed_exitcode_is_3_only_when_something_changed(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    work = seed_repo(repo_factory)
    metrics = example_metrics(tmp_path / "metrics")
    assert autotune(work, metrics, T0, "--detailed-exitcode").code == 3
    assert autotune(work, metrics, T0, "--detailed-exitcode").code == 0


def test_table_output_names_the_commit_and_the_announcement(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    from tests.clirun import cli

    work = seed_repo(repo_factory)
    metrics = example_metrics(tmp_path / "metrics")
    result = cli("autotune", "--repo", str(work), "--metrics", str(metrics), "--now", iso(T0))
    assert result.code == 0, result.stderr
    assert "applied" in result.stdout
    assert (
        "announce: MEDIUM-risk auto-tune applied: messagewall-prod spec.lambdaMemory 256 -> 384"
        in result.stdout
    )
    assert "committed" in result.stdout and "opt-in" in result.stdout
    json.dumps(result.stdout)  # plain text, no control codes needed to read it


def test_an_unknown_ref_is_a_usage_error(repo_factory: RepoFactory, tmp_path: Path) -> None:
    work = seed_repo(repo_factory)
    metrics = example_metrics(tmp_path / "metrics")
    result = autotune(work, metrics, T0, "--ref", "nope")
    assert result.code == 2
    assert "ref 'nope' not found" in result.stderr


def test_demo_step_tunes_prod_and_shows_the_trailers(tmp_path: Path) -> None:
    from feedbackctl.commands.autotune import demo_step
    from feedbackctl.demo import build

    layout = build(str(tmp_path / "demo"))
    assert demo_step(layout, T0) == 0
    assert memory_of(layout.repo) == 384
    assert (
        git_out(layout.repo, "log", "-1", "--format=%(trailers:key=Feedback-To,valueonly)").strip() == "384"
    )


def test_shards_split_the_claims_and_together_cover_them(repo_factory: RepoFactory, tmp_path: Path) -> None:
    from feedbackctl.authority.shard import Shard

    names = [f"app-{i}" for i in range(6)]
    files = {f"claims/{n}.yaml": PROD_CLAIM.replace("name: messagewall-prod", f"name: {n}") for n in names}
    work, _ = repo_factory(files)
    metrics = fresh_metrics(tmp_path / "m", {n: (256, 240) for n in names}, T0)
    tuned: list[set[str]] = []
    for i in range(2):
        data = ok_json(autotune(work, metrics, T0, "--shard", f"{i}/2"))
        tuned.append({d["claim"] for d in data["decisions"] if d["status"] == "applied"})
        assert {d["claim"] for d in data["decisions"]} == {n for n in names if n in Shard(i, 2)}
    assert tuned[0] | tuned[1] == set(names) and not tuned[0] & tuned[1]
    assert count(work) == 1 + len(names)


def test_cloudwatch_through_moto_names_its_source_in_the_trailer(
    aws: str, repo_factory: RepoFactory, tmp_path: Path
) -> None:
    from tests import test_cloudwatch_analyze as cw

    cw.load_week(tmp_path / "unused-fixtures")
    block = (
        "\n  autoTune:\n    enabled: true\n    memoryBounds: {min: 128, max: 512}\n    cooldownMinutes: 60\n"
        "    trigger: {metric: memory_utilization, threshold: 90, sustainedMinutes: 360}\n"
    )
    work = cw.repo(repo_factory, **{"claims/messagewall-prod.yaml": cw.PROD + block})
    data = ok_json(autotune(work, Path("cloudwatch"), T0))
    d = decision(data)
    assert (d["status"], d["current"], d["recommended"], d["source"]) == (
        "applied",
        256,
        384,
        "cloudwatch-metrics",
    )
    assert trailer(work, "Source") == "cloudwatch-metrics"
    assert "memory_utilization min=" in trailer(work, "Evidence")
