"""``feedbackctl analyze`` end to end: real git repos, the example's fixtures, the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from feedbackctl.authority.claimcache import CACHE_VERSION
from tests.clirun import ROOT, cli
from tests.gitutil import commit_files, git_out, make_repo

EXAMPLE = ROOT / "examples" / "messagewall"
NOW = "2026-11-08T00:00:00Z"
PROD = "claims/messagewall-prod.yaml"
DEV = "claims/messagewall-dev.yaml"


def claims() -> dict[str, str]:
    return {f"claims/{p.name}": p.read_text() for p in (EXAMPLE / "claims").glob("*.yaml")}


@pytest.fixture()
def repo(tmp_path: Path) -> tuple[Path, Path]:
    return make_repo(tmp_path, claims(), date="2026-10-01T00:00:00Z")


@pytest.fixture()
def metrics(tmp_path: Path) -> Path:
    target = tmp_path / "metrics"
    shutil.copytree(EXAMPLE / "metrics", target)
    return target


def analyze(work: Path, metrics: Path, *extra: str) -> object:
    return cli("analyze", "--repo", str(work), "--metrics", str(metrics), "--now", NOW, *extra)


def by_key(report: dict) -> dict[tuple[str, str], dict]:
    return {(d["claim"], d["field"]): d for d in report["decisions"]}


def test_json_report_tells_the_examples_story(repo, metrics) -> None:
    work, _ = repo
    r = analyze(work, metrics, "--output", "json")
    assert r.code == 0, r.stderr
    report = r.json()
    assert report["schemaVersion"] == 1 and report["branch"] == "main"
    d = by_key(report)
    prod = d[("messagewall-prod", "spec.lambdaMemory")]
    assert (prod["current"], prod["recommended"], prod["outcome"]) == (256, 384, "change")
    assert prod["risk"] == "MEDIUM" and prod["rule"] == "memory-pressure"
    assert {e["metric"] for e in prod["evidence"]} == {"memory_utilization", "used_memory_max"}
    trigger = next(e for e in prod["evidence"] if e["metric"] == "memory_utilization")
    assert trigger["windowMinutes"] == 30 and trigger["points"] == 7
    dev = d[("messagewall-dev", "spec.lambdaMemory")]
    assert (dev["current"], dev["recommended"], dev["direction"]) == (512, 128, "decrease")
    assert d[("messagewall-prod", "spec.lambdaTimeout")]["outcome"] == "hold"


def test_table_output_and_detailed_exitcode(repo, metrics) -> None:
    work, _ = repo
    r = analyze(work, metrics)
    assert r.code == 0
    assert "messagewall-prod" in r.stdout and "256 → 384" in r.stdout
    assert analyze(work, metrics, "--detailed-exitcode").code == 3


def test_reads_git_objects_not_the_work_tree_and_works_on_bare_repos(repo, metrics) -> None:
    work, origin = repo
    (work / PROD).write_text((work / PROD).read_text().replace("lambdaMemory: 256", "lambdaMemory: 999"))
    for target in (work, origin):
        prod = by_key(analyze(target, metrics, "--output", "json").json())[
            ("messagewall-prod", "spec.lambdaMemory")
        ]
        assert prod["current"] == 256


def test_write_commits_one_sidecar_per_claim_and_never_the_claim(repo, metrics) -> None:
    work, _ = repo
    before = git_out(work, "rev-parse", "HEAD")
    r = analyze(work, metrics, "--write", "--output", "json")
    assert r.code == 0, r.stderr
    assert len(r.json()["commits"]) == 1
    changed = git_out(work, "diff", "--name-only", before, "HEAD").split()
    assert changed == [
        "claims/messagewall-dev.recommendation.yaml",
        "claims/messagewall-prod.recommendation.yaml",
    ]
    assert git_out(work, "status", "--porcelain") == ""
    kinds = git_out(work, "log", "-1", "--format=%(trailers:key=Feedback-Kind,valueonly)").split()
    assert set(kinds) == {"recommendation"} and len(kinds) == 3
    assert git_out(work, "log", "-1", "--format=%ad %cd", "--date=iso-strict").split() == [
        "2026-11-08T00:00:00+00:00",
        "2026-11-08T00:00:00+00:00",
    ]
    sidecar = (work / "claims/messagewall-prod.recommendation.yaml").read_text()
    assert "kind: ConfigurationRecommendation" in sidecar and "targetClaim: messagewall-prod" in sidecar
    assert "recommendedValue: 384" in sidecar and "status: pending-review" in sidecar
    # Same inputs again: no new commit.
    again = analyze(work, metrics, "--write", "--output", "json")
    assert again.json()["commits"] == []
    assert git_out(work, "rev-list", "--count", "HEAD") == "2"


def test_write_dry_run_writes_nothing(repo, metrics) -> None:
    work, _ = repo
    head = git_out(work, "rev-parse", "HEAD")
    r = analyze(work, metrics, "--write", "--dry-run", "--output", "json")
    assert r.json()["commits"][0]["sha"] == "(dry-run)"
    assert git_out(work, "rev-parse", "HEAD") == head


def test_dismiss_survives_regeneration_and_accept_applies_the_value(repo, metrics) -> None:
    work, _ = repo
    analyze(work, metrics, "--write")
    git_out(work, "push", "-q")  # shared: the acts go to origin and this checkout follows
    r = cli(
        "recommendations", "dismiss", "messagewall-dev", "lambdaTimeout", "--repo", str(work), "--now", NOW
    )
    assert r.code == 0, r.stderr
    assert "status: dismissed" in (work / "claims/messagewall-dev.recommendation.yaml").read_text()
    head = git_out(work, "rev-parse", "HEAD")
    analyze(work, metrics, "--write")
    assert git_out(work, "rev-parse", "HEAD") == head  # nothing material changed
    r = cli(
        "recommendations", "accept", "messagewall-prod", "lambdaMemory", "--repo", str(work), "--now", NOW
    )
    assert r.code == 0, r.stderr
    numstat = git_out(work, "diff", "--numstat", "HEAD~1", "HEAD", "--", PROD)
    assert numstat.split()[:2] == ["1", "1"]
    assert "lambdaMemory: 384    # Higher memory for production" in (work / PROD).read_text()
    assert git_out(work, "log", "-1", "--format=%(trailers:key=Feedback-Kind,valueonly)").strip() == "accept"
    assert git_out(work, "status", "--porcelain") == ""


def test_write_refuses_when_a_file_it_would_touch_is_dirty(repo, metrics) -> None:
    work, _ = repo
    analyze(work, metrics, "--write")
    commit_files(
        work,
        {DEV: (work / DEV).read_text().replace("lambdaTimeout: 10", "lambdaTimeout: 12")},
        "human edits timeout",
        date="2026-10-02T00:00:00Z",
    )
    sidecar = work / "claims/messagewall-dev.recommendation.yaml"
    sidecar.write_text(sidecar.read_text() + "# my notes\n")
    head = git_out(work, "rev-parse", "HEAD")
    r = analyze(work, metrics, "--write")
    assert r.code == 1
    assert "messagewall-dev.recommendation.yaml has uncommitted changes" in r.stderr
    assert git_out(work, "rev-parse", "HEAD") == head
    assert sidecar.read_text().endswith("# my notes\n")


def test_bad_claim_file_is_reported_and_the_others_still_run(tmp_path, metrics) -> None:
    files = {**claims(), "claims/broken.yaml": "kind: ServerlessEventAppClaim\nspec: [unclosed\n"}
    work, _ = make_repo(tmp_path, files, date="2026-10-01T00:00:00Z")
    r = analyze(work, metrics, "--output", "json")
    assert r.code == 1
    assert "claims/broken.yaml" in r.stderr and "malformed YAML" in r.stderr
    assert ("messagewall-prod", "spec.lambdaMemory") in by_key(r.json())
    assert "Traceback" not in r.stderr


def test_wrong_type_names_claim_and_field(tmp_path, metrics) -> None:
    files = claims()
    files[PROD] = files[PROD].replace("lambdaMemory: 256", 'lambdaMemory: "lots"')
    work, _ = make_repo(tmp_path, files, date="2026-10-01T00:00:00Z")
    r = analyze(work, metrics, "--output", "json")
    assert r.code == 1
    assert "messagewall-prod: spec.lambdaMemory is 'lots', expected a number" in r.stderr
    assert ("messagewall-dev", "spec.lambdaMemory") in by_key(r.json())


def test_bad_metric_values_are_reported_per_claim(repo, metrics) -> None:
    work, _ = repo
    f = metrics / "messagewall-prod" / "memory_utilization.csv"
    f.write_text(f.read_text() + "2026-11-07T23:59:00Z,nan\n")
    r = analyze(work, metrics, "--output", "json")
    assert r.code == 1
    assert "memory_utilization.csv" in r.stderr
    assert ("messagewall-dev", "spec.lambdaMemory") in by_key(r.json())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--now", "yesterday"], "--now 'yesterday' is not an ISO-8601 time"),
        (["--ref", "nope"], "ref 'nope' not found"),
    ],
)
def test_usage_errors_exit_2(repo, metrics, args, message) -> None:
    work, _ = repo
    r = cli("analyze", "--repo", str(work), "--metrics", str(metrics), *args)
    assert r.code == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_non_git_path_and_missing_metrics_are_usage_errors(tmp_path, repo) -> None:
    r = cli("analyze", "--repo", str(tmp_path / "nowhere"), "--metrics", str(tmp_path))
    assert r.code == 2 and "not a git repository" in r.stderr
    work, _ = repo
    r = cli("analyze", "--repo", str(work), "--now", NOW)
    assert r.code == 2 and "no metric source" in r.stderr


def test_detached_head_needs_an_explicit_ref(repo, metrics) -> None:
    work, _ = repo
    git_out(work, "checkout", "-q", "--detach")
    r = analyze(work, metrics)
    assert r.code == 2 and "--ref" in r.stderr
    assert analyze(work, metrics, "--ref", "main").code == 0


def test_config_limits_claim_paths_and_policy_overrides_apply(tmp_path, metrics) -> None:
    files = {
        **claims(),
        "other/messagewall-prod.yaml": claims()[PROD].replace("messagewall-prod", "elsewhere"),
        ".feedbackctl.yaml": "claims:\n  paths: [claims/]\n",
        "policies/feedback-rules.yaml": "rules:\n  - name: timeout-pressure\n    field: lambdaTimeout\n"
        "    direction: increase\n"
        "    when: {metric: duration_p99, above: 0.3, relativeTo: lambdaTimeout, scale: 1000}\n"
        "    sustainedMinutes: 60\n",
    }
    work, _ = make_repo(tmp_path, files, date="2026-10-01T00:00:00Z")
    d = by_key(analyze(work, metrics, "--output", "json").json())
    assert {c for c, _ in d} == {"messagewall-prod", "messagewall-dev"}
    # p99 of 9.5-14 s is above 30 % of the 30 s timeout: the repo's threshold, not the default 80 %
    assert d[("messagewall-prod", "spec.lambdaTimeout")]["outcome"] == "change"


def test_broken_policy_override_is_a_configuration_error(tmp_path, metrics) -> None:
    files = {**claims(), "policies/risk.yaml": "fields:\n  lambdaMemory: {base: TINY, concern: compute}\n"}
    work, _ = make_repo(tmp_path, files, date="2026-10-01T00:00:00Z")
    r = analyze(work, metrics)
    assert r.code == 2
    assert "policies/risk.yaml: fields.lambdaMemory.base: expected one of LOW, MEDIUM, HIGH" in r.stderr


def test_recent_human_change_holds_back_coupled_metrics(repo, metrics) -> None:
    work, _ = repo
    text = (work / PROD).read_text().replace("lambdaMemory: 256", "lambdaMemory: 320")
    commit_files(work, {PROD: text}, "bump memory by hand", date="2026-11-07T23:00:00Z")
    prod = by_key(analyze(work, metrics, "--output", "json").json())[
        ("messagewall-prod", "spec.lambdaMemory")
    ]
    assert prod["outcome"] == "not-enough-data"
    assert "since the last change" in prod["reason"]


def test_a_claim_without_metrics_is_not_enough_data_not_an_error(repo, metrics) -> None:
    work, _ = repo
    shutil.rmtree(metrics / "messagewall-dev")
    r = analyze(work, metrics, "--output", "json")
    assert r.code == 0
    assert "warning:" in r.stderr and "messagewall-dev: no metrics for claim" in r.stderr
    dev = by_key(r.json())[("messagewall-dev", "spec.lambdaMemory")]
    assert dev["outcome"] == "not-enough-data"


def test_claim_cache_is_keyed_by_blob_and_survives_corruption(repo, metrics) -> None:
    work, _ = repo
    first = analyze(work, metrics, "--output", "json").json()["decisions"]
    cache = work / ".git" / "feedbackctl" / f"claims-v{CACHE_VERSION}.json"
    assert cache.exists()
    assert analyze(work, metrics, "--output", "json").json()["decisions"] == first
    text = (work / PROD).read_text().replace("lambdaMemory: 256", "lambdaMemory: 192")
    commit_files(work, {PROD: text}, "human resize", date="2026-10-02T00:00:00Z")
    prod = by_key(analyze(work, metrics, "--output", "json").json())[
        ("messagewall-prod", "spec.lambdaMemory")
    ]
    assert prod["current"] == 192
    cache.write_bytes(b"not json")
    assert analyze(work, metrics, "--output", "json").code == 0


def test_shards_split_the_claims_between_cron_jobs(repo, metrics) -> None:
    work, _ = repo
    seen = []
    for i in range(3):
        r = analyze(work, metrics, "--output", "json", "--shard", f"{i}/3")
        assert r.code == 0
        seen += sorted({d["claim"] for d in r.json()["decisions"]})
    assert sorted(seen) == ["messagewall-dev", "messagewall-prod"]
    assert analyze(work, metrics, "--shard", "3/3").code == 2
