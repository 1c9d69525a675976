"""Decision-core integrity end to end: ``analyze`` and ``autotune`` on real repos with fixture metrics.

Coupled fields (a tuned timeout never loosens the memory guardrail), hysteresis refused at load,
sparse windows, late data and contradicting signals.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.autotunefix import (
    DEV_CLAIM,
    PROD,
    PROD_CLAIM,
    PROD_PATH,
    T0,
    auto_trailers,
    autotune,
    count,
    decision,
    iso,
    memory_of,
    ok_json,
    run_on,
    trailer_commit,
    with_autotune,
    with_memory,
)
from tests.clirun import Result, cli
from tests.gitutil import RepoFactory

DEV_PATH = "claims/messagewall-dev.yaml"
WIDE = """  autoTune:
    enabled: true
    memoryBounds: {min: 512, max: 2048}
    timeoutBounds: {min: 5, max: 30}
    cooldownMinutes: 60
"""


def prod(memory: int, timeout: int = 30, block: str = WIDE) -> str:
    text = with_autotune(with_memory(PROD_CLAIM, memory), block)
    return text.replace("lambdaTimeout: 30", f"lambdaTimeout: {timeout}")


def analyze(repo: Path, metrics: Path, now: Any = T0) -> Result:
    return cli(
        "analyze", "--repo", str(repo), "--metrics", str(metrics), "--now", iso(now), "--output", "json"
    )


def notes(d: dict[str, Any], rule: str) -> list[str]:
    return [n["detail"] for n in d["notes"] if n["rule"] == rule]


# --- coupled fields ------------------------------------------------------------------------------


def test_an_auto_tuned_timeout_never_loosens_the_memory_guardrail(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    work, _ = repo_factory({PROD_PATH: prod(1024, timeout=10)})
    # An earlier run raised the timeout 10 -> 15 s; the human's value stays 10 s.
    trailer_commit(
        work,
        {PROD_PATH: prod(1024, timeout=15)},
        T0 - timedelta(days=3),
        [auto_trailers(PROD, "lambdaTimeout", 10, 15) | {"Feedback-Rule": "timeout-pressure"}],
    )
    metrics = tmp_path / "m"
    # Idle memory, p99 9 s: above 80 % of the human's 10 s, below 80 % of the tuned 15 s.
    run_on(metrics, PROD, T0 - timedelta(days=7), T0, memory=1024, used=225, p99=9_000, append=False)
    before = count(work)
    d = decision(ok_json(autotune(work, metrics, T0)))
    assert d["status"] == "blocked" and d["blockedBy"] == ["p99-healthy"], d
    assert "duration_p99 above 8000 held" in d["reason"]
    assert "relative to the baseline lambdaTimeout 10, not the current 15" in d["reason"]
    assert memory_of(work) == 1024 and count(work) == before
    # analyze says the same: it looks the timeout's baseline up too.
    a = decision(ok_json(analyze(work, metrics)))
    assert a["outcome"] == "blocked" and a["blockedBy"] == ["p99-healthy"], a
    assert "relative to the baseline lambdaTimeout 10" in a["reason"]


def test_a_human_set_timeout_is_the_baseline_the_guardrail_uses(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    """The control: a human raised the timeout to 15 s, so 12 s is the bar and memory may fall."""
    work, _ = repo_factory({PROD_PATH: prod(1024, timeout=15)})
    metrics = tmp_path / "m"
    run_on(metrics, PROD, T0 - timedelta(days=7), T0, memory=1024, used=225, p99=9_000, append=False)
    d = decision(ok_json(autotune(work, metrics, T0)))
    assert d["status"] == "applied" and (d["current"], d["recommended"]) == (1024, 896), d
    assert memory_of(work) == 896


# --- hysteresis ----------------------------------------------------------------------------------


def test_a_policy_whose_increase_is_not_above_its_decrease_is_refused_at_load(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    inverted = (
        "rules:\n  - name: memory-idle\n    field: lambdaMemory\n    direction: decrease\n"
        "    when: {metric: memory_utilization, below: 95}\n    sustainedMinutes: 60\n"
    )
    work, _ = repo_factory({PROD_PATH: PROD_CLAIM, "policies/feedback-rules.yaml": inverted})
    metrics = tmp_path / "m"
    run_on(metrics, PROD, T0 - timedelta(hours=26), T0, memory=256, used=240, append=False)
    for r in (autotune(work, metrics, T0), analyze(work, metrics)):
        assert r.code == 2, r.stderr
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in r.stderr
        assert "policies/feedback-rules.yaml: rules[memory-pressure].when.above: " in lines[0]
        assert "decrease threshold 95" in lines[0] and "'memory-idle'" in lines[0]


def test_a_claim_trigger_below_the_decrease_threshold_is_refused_naming_file_and_key(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    block = """  autoTune:
    enabled: true
    memoryBounds: {min: 128, max: 512}
    trigger: {metric: memory_utilization, threshold: 30, sustainedMinutes: 30}
"""
    work, _ = repo_factory({PROD_PATH: prod(256, block=block), DEV_PATH: DEV_CLAIM})
    metrics = tmp_path / "m"
    run_on(metrics, PROD, T0 - timedelta(hours=26), T0, memory=256, used=90, append=False)
    run_on(metrics, "messagewall-dev", T0 - timedelta(days=2), T0, memory=512, used=90, append=False)
    before = count(work)
    r = autotune(work, metrics, T0)
    assert r.code == 1, r.stderr
    data = r.json()
    problem = next(p for p in data["problems"] if PROD in str(p))
    assert (
        f"{PROD_PATH}: spec.autoTune.trigger.threshold: 30 is not above rule 'memory-idle''s "
        "decrease threshold 40" in str(problem)
    )
    # The other claim still ran; the refused one changed nothing.
    assert any(d["claim"] == "messagewall-dev" for d in data["decisions"])
    assert not any(d["claim"] == PROD for d in data["decisions"])
    assert memory_of(work) == 256 and count(work) == before


# --- sparse windows ------------------------------------------------------------------------------


def idle_week(metrics: Path, hole: tuple[float, float] | None = None) -> Path:
    """1024 MB at 22 % for a week, with memory_utilization missing ``hole`` hours ago (from, to)."""
    run_on(metrics, PROD, T0 - timedelta(days=7), T0, memory=1024, used=225, p99=3_000, append=False)
    if hole is not None:
        path = metrics / PROD / "memory_utilization.csv"
        rows = path.read_text().splitlines(keepends=True)
        lo, hi = iso(T0 - timedelta(hours=hole[1])), iso(T0 - timedelta(hours=hole[0]))
        path.write_text("".join(r for r in rows if not lo < r.split(",")[0] < hi))
    return metrics


def test_a_sustained_window_with_a_nineteen_hour_hole_is_not_enough_data(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    work, _ = repo_factory({PROD_PATH: prod(1024)})
    holed = idle_week(tmp_path / "holed", hole=(2, 21))
    d = decision(ok_json(analyze(work, holed)))
    assert d["outcome"] == "hold" and d["recommended"] is None, d
    (idle,) = notes(d, "memory-idle")
    assert "memory_utilization has a 1140m gap after 2026-11-07T03:00Z in the 1440m window" in idle
    assert "max 15m between points" in idle
    a = decision(ok_json(autotune(work, holed, T0)))
    assert a["status"] == "hold" and memory_of(work) == 1024
    # The same week without the hole: the decrease the hole was hiding behind n=7 points.
    full = decision(ok_json(analyze(work, idle_week(tmp_path / "full"))))
    assert full["outcome"] == "change" and full["rule"] == "memory-idle"


def test_max_gap_minutes_from_the_repo_policy(repo_factory: RepoFactory, tmp_path: Path) -> None:
    lenient = "limits:\n  maxGapMinutes: 1200\n"
    work, _ = repo_factory({PROD_PATH: prod(1024), "policies/feedback-rules.yaml": lenient})
    d = decision(ok_json(analyze(work, idle_week(tmp_path / "holed", hole=(2, 21)))))
    assert d["outcome"] == "change" and d["rule"] == "memory-idle", d
    # One lost 5-minute point is a 10-minute gap: fine by default, refused by a strict policy.
    strict = "limits:\n  maxGapMinutes: 8\n"
    work, _ = repo_factory({PROD_PATH: prod(1024), "policies/feedback-rules.yaml": strict})
    one_lost = idle_week(tmp_path / "one-lost", hole=(3, 3.1))
    (idle,) = notes(decision(ok_json(analyze(work, one_lost))), "memory-idle")
    assert "has a 10m gap" in idle and "max 8m between points" in idle


# --- late data -----------------------------------------------------------------------------------


def test_data_ten_minutes_late_still_acts(repo_factory: RepoFactory, tmp_path: Path) -> None:
    work, _ = repo_factory({PROD_PATH: PROD_CLAIM})
    metrics = tmp_path / "m"
    end = T0 - timedelta(minutes=10)
    run_on(metrics, PROD, end - timedelta(hours=26), end, memory=256, used=240, append=False)
    d = decision(ok_json(autotune(work, metrics, T0)))
    assert d["status"] == "applied" and (d["current"], d["recommended"]) == (256, 384), d
    trigger = next(e for e in d["evidence"] if e["metric"] == "memory_utilization")
    assert trigger["points"] == 7 and trigger["windowMinutes"] == 30
    assert memory_of(work) == 384


def test_data_older_than_the_staleness_limit_is_not_enough_data(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    work, _ = repo_factory({PROD_PATH: PROD_CLAIM})
    metrics = tmp_path / "m"
    end = T0 - timedelta(minutes=40)
    run_on(metrics, PROD, end - timedelta(hours=26), end, memory=256, used=240, append=False)
    d = decision(ok_json(analyze(work, metrics)))
    assert d["outcome"] == "not-enough-data"
    assert any(
        "newest memory_utilization point is 40m old (max 30m)" in n for n in notes(d, "memory-pressure")
    )


# --- contradicting signals -----------------------------------------------------------------------


def test_pressure_that_absolute_usage_contradicts_holds_with_both_signals(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    block = """  autoTune:
    enabled: true
    memoryBounds: {min: 128, max: 1024}
    cooldownMinutes: 60
"""
    work, _ = repo_factory({PROD_PATH: prod(384, block=block)})
    metrics = tmp_path / "m"
    run_on(metrics, PROD, T0 - timedelta(days=7), T0, memory=384, used=248, append=False)
    # Utilisation from another function of the claim: 92 % of its own (smaller) memory.
    other = tmp_path / "other"
    run_on(other, PROD, T0 - timedelta(days=7), T0, memory=100, used=92, append=False)
    (other / PROD / "memory_utilization.csv").replace(metrics / PROD / "memory_utilization.csv")
    before = count(work)
    for r in (analyze(work, metrics), autotune(work, metrics, T0)):
        d = decision(ok_json(r))
        assert d.get("outcome", d.get("status")) == "hold", d
        assert d["recommended"] is None
        (disagree,) = notes(d, "signals-disagree")
        assert "memory_utilization above 90 held for 30m (min 92" in disagree
        assert "peak used_memory_max 248 + 15% margin = 285.2 fits in the current 384" in disagree
    assert memory_of(work) == 384 and count(work) == before
