"""Each runaway guard blocking its runaway through ``feedbackctl autotune`` on a real repo.

History-derived guards are fed by real commits: human edits without trailers
(found by value) and commits with ``Feedback-*`` trailers as earlier runs
would have written them.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from feedbackctl.cli import run
from tests.autotunefix import (
    PROD,
    PROD_CLAIM,
    PROD_PATH,
    T0,
    auto_trailers,
    decision,
    fresh_metrics,
    iso,
    memory_of,
    run_on,
    trailer_commit,
    with_autotune,
    with_memory,
)
from tests.gitutil import RepoFactory, commit_files, git_out

BOUNDS_TO_2048 = """  autoTune:
    enabled: true
    memoryBounds: {min: 128, max: 2048}
    cooldownMinutes: 60
    trigger: {metric: memory_utilization, threshold: 90, sustainedMinutes: 30}
"""


def tune(capsys: pytest.CaptureFixture[str], repo: Path, metrics: Path, at: Any, *extra: str) -> Any:
    capsys.readouterr()
    argv = ["autotune", "--repo", str(repo), "--metrics", str(metrics), "--now", iso(at)]
    code = run([*argv, "--output", "json", *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def named(name: str, text: str = PROD_CLAIM) -> str:
    return text.replace("name: messagewall-prod", f"name: {name}")


def test_settling_after_a_human_edit_found_by_value(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work, _ = repo_factory({PROD_PATH: PROD_CLAIM})
    # A human raises memory by hand (no trailers) half an hour before the run.
    commit_files(
        work,
        {PROD_PATH: with_memory(PROD_CLAIM, 320)},
        "More memory for the launch",
        iso(T0 - timedelta(minutes=30)),
    )
    metrics = fresh_metrics(tmp_path / "m", {PROD: (320, 300)}, T0)
    d = decision(tune(capsys, work, metrics, T0))
    assert d["status"] == "blocked" and d["blockedBy"] == ["settling"]
    assert "changed by a human 30m ago" in d["reason"]
    assert memory_of(work) == 320


def test_a_human_commit_that_leaves_the_value_alone_does_not_settle(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work, _ = repo_factory({PROD_PATH: PROD_CLAIM})
    reworded = PROD_CLAIM.replace("# Higher memory for production", "# prod needs headroom")
    commit_files(work, {PROD_PATH: reworded}, "Reword a comment", iso(T0 - timedelta(minutes=30)))
    metrics = fresh_metrics(tmp_path / "m", {PROD: (256, 240)}, T0)
    assert decision(tune(capsys, work, metrics, T0))["status"] == "applied"
    assert "lambdaMemory: 384    # prod needs headroom" in (work / PROD_PATH).read_text()


def test_cooldown_is_the_claims_own_and_outlasts_settling(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slow = PROD_CLAIM.replace("cooldownMinutes: 60", "cooldownMinutes: 240")
    work, _ = repo_factory({PROD_PATH: slow})
    metrics = fresh_metrics(tmp_path / "m", {PROD: (256, 240)}, T0)
    assert decision(tune(capsys, work, metrics, T0))["status"] == "applied"
    run_on(metrics, PROD, T0 + timedelta(minutes=5), T0 + timedelta(hours=3), memory=384, used=370)
    d = decision(tune(capsys, work, metrics, T0 + timedelta(hours=3)))
    assert d["blockedBy"] == ["cooldown"] and "cooldown 240m" in d["reason"]  # settling (120m) is over
    assert memory_of(work) == 384
    run_on(
        metrics,
        PROD,
        T0 + timedelta(hours=3, minutes=5),
        T0 + timedelta(hours=4, minutes=5),
        memory=384,
        used=370,
    )
    assert decision(tune(capsys, work, metrics, T0 + timedelta(hours=4, minutes=5)))["status"] == "applied"
    assert memory_of(work) == 512


def _fleet(repo_factory: RepoFactory, names: list[str], rules: str | None = None) -> Path:
    files = {f"claims/{n}.yaml": named(n) for n in names}
    if rules is not None:
        files["policies/feedback-rules.yaml"] = rules
    work, _ = repo_factory(files)
    return work


def test_rate_limit_per_run(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = ["app-a", "app-b", "app-c"]
    work = _fleet(repo_factory, names, "limits:\n  rateLimit: {perRun: 1, per24h: 50}\n")
    metrics = fresh_metrics(tmp_path / "m", {n: (256, 240) for n in names}, T0)
    data = tune(capsys, work, metrics, T0)
    statuses = {n: decision(data, n)["status"] for n in names}
    assert statuses == {"app-a": "applied", "app-b": "blocked", "app-c": "blocked"}
    assert decision(data, "app-b")["blockedBy"] == ["rate-limit"]
    assert len(data["commits"]) == 1


def test_rate_limit_per_rolling_day_counted_from_trailers(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = ["app-a", "app-b", "app-c"]
    work = _fleet(repo_factory, names, "limits:\n  rateLimit: {perRun: 5, per24h: 2}\n")
    for hours, n in ((20, "app-b"), (10, "app-c")):
        trailer_commit(
            work,
            {f"claims/{n}.yaml": with_memory(named(n), 384)},
            T0 - timedelta(hours=hours),
            [auto_trailers(n, "lambdaMemory", 256, 384)],
        )
    metrics = fresh_metrics(
        tmp_path / "m", {"app-a": (256, 240), "app-b": (384, 200), "app-c": (384, 200)}, T0
    )
    d = decision(tune(capsys, work, metrics, T0), "app-a")
    assert d["blockedBy"] == ["rate-limit"] and "2 auto-tunes in the last 24h" in d["reason"]
    # Four hours later the older one has left the rolling window.
    run_on(metrics, "app-a", T0 + timedelta(minutes=5), T0 + timedelta(hours=5), memory=256, used=240)
    d = decision(tune(capsys, work, metrics, T0 + timedelta(hours=5)), "app-a")
    assert d["status"] == "applied"


def test_flap_freeze_from_history_until_a_human_acts(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work, _ = repo_factory({PROD_PATH: PROD_CLAIM})
    for days, old, new in ((5, 256, 384), (4, 384, 256), (3, 256, 384)):
        trailer_commit(
            work,
            {PROD_PATH: with_memory(PROD_CLAIM, new)},
            T0 - timedelta(days=days),
            [auto_trailers(PROD, "lambdaMemory", old, new)],
        )
    metrics = fresh_metrics(tmp_path / "m", {PROD: (384, 370)}, T0)
    d = decision(tune(capsys, work, metrics, T0))
    assert d["status"] == "blocked" and d["blockedBy"] == ["flap-freeze"]
    assert "2 direction reversals" in d["reason"]
    # A human sets the value: the freeze lifts (once the edit has settled).
    commit_files(
        work, {PROD_PATH: with_memory(PROD_CLAIM, 448)}, "Pin memory at 448", iso(T0 - timedelta(hours=3))
    )
    metrics = fresh_metrics(tmp_path / "m2", {PROD: (448, 430)}, T0)
    d = decision(tune(capsys, work, metrics, T0))
    assert d["status"] == "applied" and (d["current"], d["recommended"]) == (448, 512)


def test_source_cooldown_spans_the_claims_fields(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    both = PROD_CLAIM + "    bounds:\n      lambdaTimeout: {min: 10, max: 60, step: 5}\n"
    work, _ = repo_factory({PROD_PATH: both})
    trailer_commit(
        work,
        {PROD_PATH: both.replace("lambdaTimeout: 30", "lambdaTimeout: 35")},
        T0 - timedelta(minutes=20),
        [auto_trailers(PROD, "lambdaTimeout", 30, 35)],
    )
    metrics = fresh_metrics(tmp_path / "m", {PROD: (256, 240)}, T0)
    d = decision(tune(capsys, work, metrics, T0))
    assert d["blockedBy"] == ["source-cooldown"]
    assert "source metric-fixtures changed this claim 20m ago" in d["reason"]


def test_change_cap_counts_from_a_human_baseline_deep_in_history(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wide = with_autotune(PROD_CLAIM, BOUNDS_TO_2048)
    # The human wrote 128 long ago; an earlier auto-tune raised it to 256.
    work, _ = repo_factory({PROD_PATH: with_memory(wide, 128)})
    trailer_commit(
        work, {PROD_PATH: wide}, T0 - timedelta(days=40), [auto_trailers(PROD, "lambdaMemory", 128, 256)]
    )
    metrics = fresh_metrics(tmp_path / "m", {PROD: (256, 300)}, T0)
    d = decision(tune(capsys, work, metrics, T0))
    assert d["status"] == "needs-proposal" and d["blockedBy"] == ["change-cap"]
    assert "baseline 128" in d["reason"]
    assert memory_of(work) == 256


def test_hysteresis_a_decrease_needs_a_day_below_40_percent(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work, _ = repo_factory({PROD_PATH: with_memory(PROD_CLAIM, 512)})
    metrics = tmp_path / "m"
    run_on(
        metrics, PROD, T0 - timedelta(hours=30), T0 - timedelta(hours=12), memory=512, used=300, append=False
    )
    run_on(metrics, PROD, T0 - timedelta(hours=12) + timedelta(minutes=5), T0, memory=512, used=150)
    d = decision(tune(capsys, work, metrics, T0))
    assert d["status"] == "hold" and memory_of(work) == 512  # 12 h idle is not enough
    run_on(metrics, PROD, T0 + timedelta(minutes=5), T0 + timedelta(hours=13), memory=512, used=150)
    d = decision(tune(capsys, work, metrics, T0 + timedelta(hours=13)))
    assert d["status"] == "applied" and d["rule"] == "memory-idle"
    assert (d["current"], d["recommended"]) == (512, 384)  # one step down


def test_no_decrease_while_errors_are_bad(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work, _ = repo_factory({PROD_PATH: with_memory(PROD_CLAIM, 512)})
    metrics = tmp_path / "m"
    run_on(metrics, PROD, T0 - timedelta(hours=26), T0, memory=512, used=150, errors=40, append=False)
    d = decision(tune(capsys, work, metrics, T0))
    assert d["status"] == "blocked" and d["blockedBy"] == ["errors-healthy"]
    assert memory_of(work) == 512


def test_risk_ceiling_turns_an_auto_apply_into_a_proposal(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work, _ = repo_factory(
        {PROD_PATH: PROD_CLAIM, "policies/feedback-rules.yaml": "limits:\n  autoApplyCeiling: LOW\n"}
    )
    metrics = fresh_metrics(tmp_path / "m", {PROD: (256, 240)}, T0)
    data = tune(capsys, work, metrics, T0)
    d = decision(data)
    assert d["status"] == "needs-proposal" and d["blockedBy"] == ["risk-ceiling"] and d["risk"] == "MEDIUM"
    assert data["commits"] == [] and data["needsProposal"][0]["recommended"] == 384
    assert memory_of(work) == 256


def test_a_source_that_requires_proposals_never_auto_applies(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sources = (
        "feedbackSources:\n"
        "  - {name: metric-fixtures, type: pull, trustLevel: high, requiresProposal: true}\n"
    )
    work, _ = repo_factory({PROD_PATH: PROD_CLAIM, "policies/sources.yaml": sources})
    metrics = fresh_metrics(tmp_path / "m", {PROD: (256, 240)}, T0)
    d = decision(tune(capsys, work, metrics, T0))
    assert d["status"] == "needs-proposal" and d["blockedBy"] == ["trust"]
    assert memory_of(work) == 256


def test_general_bounds_form_tunes_the_timeout_one_step(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    block = """  autoTune:
    enabled: true
    bounds:
      lambdaTimeout: {min: 10, max: 60, step: 5}
"""
    work, _ = repo_factory({PROD_PATH: with_autotune(PROD_CLAIM, block)})
    metrics = tmp_path / "m"
    run_on(metrics, PROD, T0 - timedelta(hours=26), T0, memory=256, used=100, p99=26_000, append=False)
    data = tune(capsys, work, metrics, T0)
    d = decision(data, field="spec.lambdaTimeout")
    assert d["status"] == "applied" and (d["current"], d["recommended"], d["uncapped"]) == (30, 35, 40)
    assert [n["rule"] for n in d["notes"] if n["effect"] == "shaped"][-1] == "step-limit"
    assert "lambdaTimeout: 35    # Longer timeout for reliability" in (work / PROD_PATH).read_text()
    assert git_out(work, "log", "-1", "--format=%(trailers:key=Feedback-Field,valueonly)").strip() == (
        "spec.lambdaTimeout"
    )


def test_a_broken_claim_is_reported_and_the_others_still_tuned(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = named("app-broken").replace("lambdaMemory: 256", 'lambdaMemory: "lots"')
    work, _ = repo_factory({PROD_PATH: PROD_CLAIM, "claims/app-broken.yaml": broken})
    metrics = fresh_metrics(tmp_path / "m", {PROD: (256, 240), "app-broken": (256, 240)}, T0)
    capsys.readouterr()
    code = run(
        ["autotune", "--repo", str(work), "--metrics", str(metrics), "--now", iso(T0), "--output", "json"]
    )
    captured = capsys.readouterr()
    assert code == 1
    data = json.loads(captured.out)
    assert decision(data)["status"] == "applied"
    assert any(p["claim"] == "app-broken" and "spec.lambdaMemory" in p["message"] for p in data["problems"])
    assert "app-broken" in captured.err


def test_one_change_per_claim_and_run_the_second_field_waits_for_the_source(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    both = PROD_CLAIM + "    bounds:\n      lambdaTimeout: {min: 10, max: 60, step: 5}\n"
    work, _ = repo_factory({PROD_PATH: both})
    metrics = tmp_path / "m"
    run_on(metrics, PROD, T0 - timedelta(hours=26), T0, memory=256, used=240, p99=26_000, append=False)
    data = tune(capsys, work, metrics, T0)
    assert decision(data)["status"] == "applied"
    timeout = decision(data, field="spec.lambdaTimeout")
    assert timeout["status"] == "blocked" and timeout["blockedBy"] == ["source-cooldown"]
    assert "changes spec.lambdaMemory of this claim in this run" in timeout["reason"]
    assert len(data["commits"]) == 1
