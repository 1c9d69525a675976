"""Batches never change the answer: analyze and autotune with tiny batches against the default.

Series are read a batch of claims at a time (patterns/batches.py); the fleet-wide
rules (rate limit, one change per claim, totals, metrics cost, run-wide notices)
must come out exactly as from one pass over the fleet, byte for byte.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from feedbackctl.core.models import Claim
from feedbackctl.patterns.batches import BATCH_ENV, in_order, kept_together
from tests.autotunefix import DEV_CLAIM, PROD_CLAIM, T0, fresh_metrics, iso, run_on, with_memory
from tests.clirun import Result, cli
from tests.gitutil import RepoFactory, git_out

RULES = "limits:\n  rateLimit: {perRun: 5, per24h: 50}\n"
STAGES = "validation:\n  stages: [dev, prod]\n  soakMinutes: 1440\n"


def named(name: str, text: str = PROD_CLAIM, environment: str = "prod") -> str:
    return text.replace("name: messagewall-prod", f"name: {name}").replace(
        "environment: prod", f"environment: {environment}"
    )


def run(command: str, repo: Path, metrics: Path, batch: int | None, *extra: str) -> Result:
    """``--output json`` with ``batch`` claims per batch (None: the default)."""
    # One run id: the commits (their Feedback-Run trailer too) must be byte-identical.
    env = {BATCH_ENV: "" if batch is None else str(batch), "FEEDBACKCTL_RUN_ID": "slot-1"}
    args = ["--repo", str(repo), "--metrics", str(metrics), "--now", iso(T0), "--output", "json"]
    return cli(command, *args, *extra, env=env)


def fleet_files() -> dict[str, str]:
    """14 claims under pressure (more than the rate limit lets through), one oversized, two broken."""
    files = {f"claims/app-{i:02d}.yaml": named(f"app-{i:02d}") for i in range(14)}
    files["claims/big-00.yaml"] = with_memory(named("big-00"), 1024)
    # A mistyped value: the claim's own problem, found while deciding.
    files["claims/bad-00.yaml"] = named("bad-00").replace("lambdaMemory: 256", 'lambdaMemory: "lots"')
    files["claims/quiet-00.yaml"] = named("quiet-00")  # no metrics at all: a notice
    files["policies/feedback-rules.yaml"] = RULES
    return files


def fleet_metrics(root: Path) -> Path:
    usage = {f"app-{i:02d}": (256.0, 240.0) for i in range(14)}
    metrics = fresh_metrics(root, {**usage, "big-00": (1024.0, 200.0), "bad-00": (256.0, 240.0)}, T0)
    # A bad row (one claim's problem) and points after --now in files of two different batches.
    with (metrics / "app-03" / "errors.csv").open("a") as f:
        f.write("2026-11-07T23:00:00Z,NaN\n")
    for claim in ("app-01", "app-12"):
        run_on(metrics, claim, T0 + timedelta(minutes=5), T0 + timedelta(minutes=20), memory=256, used=240)
    return metrics


def test_analyze_json_does_not_depend_on_the_batch_size(repo_factory: RepoFactory, tmp_path: Path) -> None:
    work, _ = repo_factory(fleet_files())
    metrics = fleet_metrics(tmp_path / "m")
    default = run("analyze", work, metrics, None)
    data = default.json()
    # The fleet exercises what batches could get wrong: changes (with baselines looked up),
    # a claim's problem found while deciding, a bad series, absent metrics, late points.
    outcomes = {d["outcome"] for d in data["decisions"]}
    assert {"change", "hold"} <= outcomes, outcomes
    assert any("bad-00" in p["message"] for p in data["problems"])
    assert any("app-03" in p["message"] for p in data["problems"])
    assert any("quiet-00" in w for w in data["warnings"])
    assert any("40 points in 10 files after" in w for w in data["warnings"]), data["warnings"]
    for batch in (1, 3, 7):
        small = run("analyze", work, metrics, batch)
        assert (small.code, small.stdout, small.stderr) == (default.code, default.stdout, default.stderr)


def test_autotune_commits_do_not_depend_on_the_batch_size(repo_factory: RepoFactory, tmp_path: Path) -> None:
    files = fleet_files()
    one, _ = repo_factory(files)
    other, _ = repo_factory(files)
    assert git_out(one, "rev-parse", "main") == git_out(other, "rev-parse", "main")
    metrics = fleet_metrics(tmp_path / "m")
    default = run("autotune", one, metrics, None)
    small = run("autotune", other, metrics, 3)
    assert (small.code, small.stdout, small.stderr) == (default.code, default.stdout, default.stderr)
    data = default.json()
    # The rate limit judged the whole fleet: 5 of the 14 candidates, across batches of 3.
    assert len(data["commits"]) == 5
    assert sum("rate-limit" in d["blockedBy"] for d in data["decisions"]) == 9
    log = ["log", "--format=%H %ad %cd%n%B", "main"]
    assert git_out(one, *log) == git_out(other, *log)


def test_staged_autotune_keeps_each_stage_beside_its_validating_claim(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    dev_opted_in = DEV_CLAIM + (
        "\n  autoTune:\n    enabled: true\n    memoryBounds: {min: 128, max: 1024}\n    cooldownMinutes: 60\n"
    )
    # Claims sort between the two stages, so consecutive batches of 2 would part them.
    fillers = {
        f"claims/messagewall-e{i}.yaml": named(f"messagewall-e{i}", environment="dev") for i in range(4)
    }
    files = {
        ".feedbackctl.yaml": STAGES,
        "claims/messagewall-dev.yaml": with_memory(dev_opted_in, 256),
        "claims/messagewall-prod.yaml": PROD_CLAIM,
        **fillers,
    }
    one, _ = repo_factory(files)
    other, _ = repo_factory(files)
    usage = {n: (256.0, 240.0) for n in ("messagewall-prod", *(f"messagewall-e{i}" for i in range(4)))}
    metrics = fresh_metrics(tmp_path / "m", {**usage, "messagewall-dev": (256.0, 200.0)}, T0)
    default = run("autotune", one, metrics, None)
    small = run("autotune", other, metrics, 2)
    assert (small.code, small.stdout, small.stderr) == (default.code, default.stdout, default.stderr)
    memory = {d["claim"]: d for d in default.json()["decisions"] if d["field"] == "spec.lambdaMemory"}
    # Prod's pressure was promoted into dev, which sat two batches away in file order.
    assert memory["messagewall-prod"]["blockedBy"] == ["staging-validation"]
    assert memory["messagewall-dev"]["status"] == "applied"
    assert memory["messagewall-dev"]["reason"].startswith("promotion: messagewall-prod wants")


def _claims(*names: str) -> list[Claim]:
    return [Claim(n, "ServerlessEventAppClaim", "x/v1", {}, f"claims/{n}.yaml") for n in names]


def test_batches_are_slices_and_pairs_stay_together() -> None:
    claims = _claims("a", "b", "c", "d", "e", "f")
    assert [[c.name for c in g] for g in in_order(claims, 4)] == [["a", "b", "c", "d"], ["e", "f"]]
    groups = kept_together(claims, {"f": "b", "e": "f"}, 2)
    assert [[c.name for c in g] for g in groups] == [["a"], ["b", "e", "f"], ["c", "d"]]
    assert sorted(c.name for g in groups for c in g) == [c.name for c in claims]


def test_a_bad_batch_size_is_a_usage_error(repo_factory: RepoFactory, tmp_path: Path) -> None:
    work, _ = repo_factory({"claims/app-00.yaml": named("app-00")})
    metrics = fresh_metrics(tmp_path / "m", {"app-00": (256.0, 240.0)}, T0)
    result = cli("analyze", "--repo", str(work), "--metrics", str(metrics), env={BATCH_ENV: "0"})
    assert result.code == 2
    assert f"{BATCH_ENV}='0' is not a positive number of claims" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("size", [1, 2, 5])
def test_every_claim_is_in_exactly_one_batch(size: int) -> None:
    claims = _claims(*"abcdefg")
    pairs = {"g": "a", "c": "e"}
    groups = kept_together(claims, pairs, size)
    assert sorted(c.name for g in groups for c in g) == sorted(c.name for c in claims)
    where = {c.name: k for k, g in enumerate(groups) for c in g}
    assert all(where[x] == where[y] for x, y in pairs.items())


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("odd", [None, (1, 2.5), object()])
def test_a_fleet_report_is_written_in_slices_byte_for_byte(
    capsys: pytest.CaptureFixture[str], packed: bool, odd: object
) -> None:
    # Packed or not, and with a value JSON gives back changed (a tuple) or only default=str
    # can write (an object): the same bytes as one dump of the whole report.
    from dataclasses import replace

    from feedbackctl.core.models import Decision, Note, Outcome
    from feedbackctl.patterns.inputs import Problem
    from feedbackctl.patterns.packed import PackedDecisions
    from feedbackctl.render import JSON_SLICE, Report, print_report_json, report_json
    from feedbackctl.sources.base import MetricsCost

    decisions = [
        Decision(
            f"app-{i:04d}",
            "lambdaMemory",
            256,
            Outcome.HOLD,
            notes=(Note("r", "info", 'say "decisions": []'),),
        )
        for i in range(2 * JSON_SLICE + 7)
    ]
    if odd is not None:
        decisions[JSON_SLICE + 3] = replace(decisions[JSON_SLICE + 3], current=odd)  # type: ignore[arg-type]
    held = PackedDecisions(decisions) if packed else decisions
    report = Report("analyze", T0, "main", "abc", held, [Problem("x", "bad")], ["w"], dry_run=True)
    report.metrics_cost = MetricsCost(api_calls=3, metrics_requested=7, estimated_usd=0.00007)
    print_report_json(report)
    import json

    assert capsys.readouterr().out == json.dumps(report_json(report), default=str) + "\n"
