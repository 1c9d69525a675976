"""autotune reads only the metrics a decision can use, and decides exactly as a full fetch.

A fleet on the real moto server: a claim whose memory trigger fires (and
changes), one that is quiet, one whose decrease trigger fires (its guardrails
must be read), one that does not opt in, one in a cooldown and one frozen by
flapping. The CLI run follows the fetch plan; the same run with the plan
switched off (the pattern function, called in-process) reads every metric.
Both must make the same decisions and the same commits, the planned one for
fewer metrics (docs/cloudwatch.md).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from feedbackctl.authority.snapshot import open_repo
from feedbackctl.commands.autotune import outcomes_json
from feedbackctl.patterns.autotune import RunOptions, run_autotune
from tests.autotunefix import auto_trailers, iso, trailer_commit
from tests.clirun import cli
from tests.cwdata import P99_AS_MAXIMUM, client, put
from tests.gitutil import RepoFactory, git_out

NOW = datetime(2026, 11, 8, tzinfo=UTC)
MAPPING = P99_AS_MAXIMUM
AUTOTUNE = """\
  autoTune:
    enabled: true
    memoryBounds: {min: 512, max: 4096}
    cooldownMinutes: 60
    trigger: {metric: memory_utilization, threshold: 90, sustainedMinutes: 30}
"""
# claim -> (lambdaMemory, used MB, opts in): what each function of the claim does.
FLEET: dict[str, tuple[int, float, bool]] = {
    "hot": (1024, 980.0, True),  # memory-pressure fires: a change
    "quiet": (1024, 720.0, True),  # nothing fires: its other metrics are never read
    "idle": (2048, 600.0, True),  # memory-idle fires: guardrails (errors, throttles, p99) read
    "optout": (1024, 980.0, False),  # would fire, but does not opt in
    "cooling": (1024, 980.0, True),  # would fire, auto-tuned 30 minutes ago
    "frozen": (1152, 1100.0, True),  # would fire, flapping
}
FUNCTIONS = ("api-handler", "snapshot-writer")


def claim_text(name: str, memory: int, opted_in: bool) -> str:
    text = f"""\
apiVersion: messagewall.demo/v1alpha1
kind: ServerlessEventAppClaim
metadata:
  name: {name}
spec:
  environment: prod
  resourcePrefix: {name}
  region: us-east-1
  lambdaMemory: {memory}
  lambdaTimeout: 30
"""
    return text + (AUTOTUNE if opted_in else "")


def path(name: str) -> str:
    return f"claims/{name}.yaml"


def fleet_repo(repo_factory: RepoFactory) -> Path:
    files = {path(n): claim_text(n, m, o) for n, (m, _, o) in FLEET.items()}
    files["claims/cooling.yaml"] = claim_text("cooling", 896, True)
    files["claims/frozen.yaml"] = claim_text("frozen", 1024, True)
    files["policies/cloudwatch.yaml"] = MAPPING
    work, _ = repo_factory(files, date="2026-10-01T00:00:00Z")
    trailer_commit(
        work,
        {path("cooling"): claim_text("cooling", 1024, True)},
        NOW - timedelta(minutes=30),
        [auto_trailers("cooling", "lambdaMemory", 896, 1024, source="cloudwatch-metrics")],
    )
    for days, old, new in ((5, 1024, 1152), (4, 1152, 1024), (3, 1024, 1152)):
        trailer_commit(
            work,
            {path("frozen"): claim_text("frozen", new, True)},
            NOW - timedelta(days=days),
            [auto_trailers("frozen", "lambdaMemory", old, new, source="cloudwatch-metrics")],
        )
    return work


def load_fleet() -> None:
    """For both functions of every claim: hourly for a day, every 5 minutes in the last hour.

    Enough for the day-long decrease window and the hour-long guardrails, and
    few points: moto's GetMetricData slows down with every datapoint it holds.
    """
    cw = client()
    end = int(NOW.timestamp())
    points = sorted({end - k * 3600 for k in range(25)} | {end - k * 300 for k in range(14)})
    for name, (memory, used, _) in FLEET.items():
        for fn in FUNCTIONS:
            function = f"{name}-{fn}"
            for namespace, metric, dim, value in (
                ("LambdaInsights", "memory_utilization", "function_name", used / memory * 100),
                ("LambdaInsights", "used_memory_max", "function_name", used),
                ("AWS/Lambda", "Duration", "FunctionName", 5000.0),
                ("AWS/Lambda", "Errors", "FunctionName", 0.0),
                ("AWS/Lambda", "Throttles", "FunctionName", 0.0),
            ):
                put(cw, namespace, metric, {dim: function}, [(t, value) for t in points])


def comparable(doc: dict[str, Any]) -> tuple[Any, Any]:
    return doc["decisions"], doc["commits"]


def test_planned_autotune_decides_like_a_full_fetch_for_fewer_metrics(
    aws: str, repo_factory: RepoFactory
) -> None:
    load_fleet()
    planned_repo = fleet_repo(repo_factory)
    full_repo = fleet_repo(repo_factory)
    assert git_out(planned_repo, "rev-parse", "main") == git_out(full_repo, "rev-parse", "main")

    result = cli(
        "autotune", "--repo", str(planned_repo), "--metrics", "cloudwatch", "--now", iso(NOW),
        "--output", "json", env={"FEEDBACKCTL_RUN_ID": "slot-1"},
    )  # fmt: skip
    assert result.code == 0, result.stderr
    planned = result.json()
    # One run id for both: the commits (their Feedback-Run trailer too) must be byte-identical.
    every_metric = RunOptions(run="slot-1", plan_fetch=False)
    full = outcomes_json(run_autotune(open_repo(full_repo), None, "cloudwatch", NOW, every_metric))

    assert comparable(planned) == comparable(full)
    assert git_out(planned_repo, "rev-parse", "main") == git_out(full_repo, "rev-parse", "main")
    status = {(d["claim"], d["field"]): (d["status"], d["blockedBy"]) for d in planned["decisions"]}
    assert status[("hot", "spec.lambdaMemory")][0] == "applied"
    assert status[("idle", "spec.lambdaMemory")][0] == "applied"
    assert status[("quiet", "spec.lambdaMemory")] == ("hold", [])
    assert status[("optout", "spec.lambdaMemory")] == ("blocked", ["opt-in"])
    assert status[("cooling", "spec.lambdaMemory")] == ("blocked", ["cooldown"])
    assert status[("frozen", "spec.lambdaMemory")] == ("blocked", ["flap-freeze"])
    assert {c["claim"] for c in planned["commits"]} == {"hot", "idle"}

    # Full: 6 claims x 5 CloudWatch metrics x 2 functions. Planned: memory_utilization of
    # the 3 claims that could act, then the other 4 metrics of the 2 whose trigger fired.
    assert full["metricsCost"]["metricsRequested"] == 6 * 5 * 2
    assert planned["metricsCost"]["metricsRequested"] == 3 * 2 + 2 * 4 * 2
    assert planned["metricsCost"]["apiCalls"] < full["metricsCost"]["apiCalls"] + 1


def test_nothing_is_read_when_no_claim_can_act(aws: str, repo_factory: RepoFactory) -> None:
    load_fleet()
    files = {path(n): claim_text(n, m, False) for n, (m, _, _) in FLEET.items()}
    files["policies/cloudwatch.yaml"] = MAPPING
    work, _ = repo_factory(files, date="2026-10-01T00:00:00Z")
    result = cli(
        "autotune", "--repo", str(work), "--metrics", "cloudwatch", "--now", iso(NOW), "--output", "json"
    )
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["metricsCost"] == {"apiCalls": 0, "metricsRequested": 0, "estimatedUSD": 0.0}
    assert {d["status"] for d in doc["decisions"]} == {"blocked"}


def test_naming_problems_are_reported_for_claims_that_read_nothing(
    aws: str, repo_factory: RepoFactory
) -> None:
    """A claim whose functions cannot be named is a problem even when it would read no metric."""
    files = {
        path("optout"): claim_text("optout", 1024, False).replace("  resourcePrefix: optout\n", ""),
        path("hot"): claim_text("hot", 1024, True),
        "policies/cloudwatch.yaml": MAPPING,
    }
    work, _ = repo_factory(files, date="2026-10-01T00:00:00Z")
    result = cli(
        "autotune", "--repo", str(work), "--metrics", "cloudwatch", "--now", iso(NOW), "--output", "json"
    )
    assert result.code == 1, result.stderr
    doc = result.json()
    assert any("spec.resourcePrefix is not set" in p["message"] for p in doc["problems"])
    assert {d["claim"] for d in doc["decisions"]} == {"hot"}


def test_analyze_reads_only_what_the_rules_of_the_claims_fields_read(
    aws: str, repo_factory: RepoFactory
) -> None:
    """A claim that sets no lambdaMemory needs no memory metric and no cost: p99, errors, throttles."""
    text = claim_text("hot", 1024, False).replace("  lambdaMemory: 1024\n", "")
    work, _ = repo_factory({path("hot"): text, "policies/cloudwatch.yaml": MAPPING})
    result = cli(
        "analyze", "--repo", str(work), "--metrics", "cloudwatch", "--now", iso(NOW), "--output", "json"
    )
    assert result.code == 0, result.stderr
    doc = result.json()
    assert [d["field"] for d in doc["decisions"]] == ["spec.lambdaTimeout"]
    # duration_p99 (the timeout rules and a guardrail), errors and throttles, for 2 functions;
    # no Cost Explorer request.
    assert doc["metricsCost"]["metricsRequested"] == 3 * 2
    assert doc["metricsCost"]["apiCalls"] == 1
