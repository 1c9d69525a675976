"""Decision-core integrity with plain values: coupled fields, hysteresis, sparse and late windows,
contradicting signals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from feedbackctl.authority.config import load_policy_docs
from feedbackctl.core.decide import ClaimInputs, autotune, recommend
from feedbackctl.core.guards import guardrail_spec
from feedbackctl.core.models import Decision, FieldHistory, Outcome, Series
from feedbackctl.core.policy import Condition, Limits, PolicyError
from feedbackctl.core.policy_parse import parse_rules
from feedbackctl.core.signals import check_window, max_gap_seconds
from feedbackctl.core.tuning import check_trigger, parse_autotune
from feedbackctl.errors import ClaimError
from tests.corefix import NOW, SOURCE, claim, healthy, policy, series

WIDE_BOUNDS = {
    "enabled": True,
    "memoryBounds": {"min": 512, "max": 2048},
    "timeoutBounds": {"min": 5, "max": 30},
    "cooldownMinutes": 60,
}


def one(decisions: list[Decision], field: str = "lambdaMemory") -> Decision:
    return next(d for d in decisions if d.field == field)


def with_baselines(c: Any, s: Mapping[str, Series], **baselines: Any) -> ClaimInputs:
    hist = {
        f: FieldHistory(c.name, f, (), baseline=baselines.get(f, c.value(f)))
        for f in ("lambdaMemory", "lambdaTimeout")
    }
    return ClaimInputs(c, dict(s), hist)


# --- coupled fields ------------------------------------------------------------------------------


def idle_with_a_slow_tail(p99_ms: float) -> dict[str, Series]:
    """1024 MB at 22 % for a week, a p99 of ``p99_ms`` and no errors or throttles."""
    s = healthy(memory=1024, used=225)
    s["duration_p99"] = series("duration_p99", lambda a: p99_ms)
    return s


def test_a_raised_timeout_does_not_lift_the_p99_guardrail_of_a_memory_decrease() -> None:
    c = claim(lambdaMemory=1024, lambdaTimeout=15, autoTune=WIDE_BOUNDS)
    s = idle_with_a_slow_tail(9_000)  # above 80 % of the human's 10 s, below 80 % of the tuned 15 s
    d = one(autotune(with_baselines(c, s, lambdaTimeout=10), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.BLOCKED and d.blocked_by == ("p99-healthy",)
    assert "above 8000 held" in d.reason
    assert "relative to the baseline lambdaTimeout 10, not the current 15" in d.reason
    # The same claim whose human set 15 s: nothing protects 8 s any more, and memory may fall.
    same = one(autotune(with_baselines(c, s, lambdaTimeout=15), policy(), NOW, SOURCE))
    assert same.outcome == Outcome.CHANGE and same.recommended == 896


def test_analyze_reports_the_guardrail_on_the_baseline_too() -> None:
    c = claim(lambdaMemory=1024, lambdaTimeout=15, autoTune=WIDE_BOUNDS)
    inputs = with_baselines(c, idle_with_a_slow_tail(9_000), lambdaTimeout=10)
    d = one(recommend(inputs, policy(), NOW, SOURCE))
    assert d.outcome == Outcome.BLOCKED and d.blocked_by == ("p99-healthy",)


def test_a_timeout_lowered_below_its_baseline_is_judged_on_the_lower_value() -> None:
    c = claim(lambdaMemory=1024, lambdaTimeout=10, autoTune=WIDE_BOUNDS)
    inputs = with_baselines(c, idle_with_a_slow_tail(9_000), lambdaTimeout=30)
    d = one(autotune(inputs, policy(), NOW, SOURCE))
    assert d.outcome == Outcome.BLOCKED and d.blocked_by == ("p99-healthy",)
    assert "relative to the baseline" not in d.reason  # the current 10 s is already the stricter


@pytest.mark.parametrize(
    ("op", "current", "baseline", "judged"),
    [
        ("above", 15, 10, 10),  # a bad-when-above guardrail is stricter with the smaller value
        ("above", 10, 15, 10),
        ("below", 15, 10, 15),  # and a bad-when-below one with the larger
        ("below", 10, 15, 15),
        ("above", 15, None, 15),  # no known baseline: the current value
        ("above", 15, "x", 15),
    ],
)
def test_guardrail_spec_takes_the_stricter_of_baseline_and_current(
    op: str, current: float, baseline: object, judged: float
) -> None:
    cond = Condition("duration_p99", "above" if op == "above" else "below", 0.8, "lambdaTimeout", 1000)
    spec, _ = guardrail_spec(cond, {"lambdaTimeout": current}, {"lambdaTimeout": baseline})  # type: ignore[dict-item]
    assert spec["lambdaTimeout"] == judged


# --- hysteresis ----------------------------------------------------------------------------------

FIELDS = {"lambdaMemory": {"step": 128, "min": 128, "max": 10240}}
METRICS = {"memory_utilization": {"coupledTo": ["lambdaMemory"]}}


def rules_doc(up: float, down: float, **limits: Any) -> dict[str, Any]:
    return {
        "fields": FIELDS,
        "metrics": METRICS,
        "rules": [
            {
                "name": "pressure",
                "field": "lambdaMemory",
                "direction": "increase",
                "when": {"metric": "memory_utilization", "above": up},
                "sustainedMinutes": 30,
            },
            {
                "name": "idle",
                "field": "lambdaMemory",
                "direction": "decrease",
                "when": {"metric": "memory_utilization", "below": down},
                "sustainedMinutes": 1440,
            },
        ],
        "limits": limits,
    }


@pytest.mark.parametrize(("up", "down"), [(30, 40), (40, 40), (42, 40)])
def test_an_increase_threshold_not_above_the_decrease_band_is_refused(up: float, down: float) -> None:
    with pytest.raises(PolicyError) as e:
        parse_rules(rules_doc(up, down), "policies/feedback-rules.yaml")
    msg = str(e.value)
    assert msg.startswith("policies/feedback-rules.yaml: rules[pressure].when.above: ")
    assert f"decrease threshold {down:g}" in msg and "'idle'" in msg and "hysteresisBand" in msg


def test_a_clear_band_loads_and_the_band_is_configurable() -> None:
    parse_rules(rules_doc(45, 40), "f.yaml")  # 40 <= 45 x 0.9
    with pytest.raises(PolicyError, match="rules\\[pressure\\]"):
        parse_rules(rules_doc(45, 40, hysteresisBand=0.2), "f.yaml")
    parse_rules(rules_doc(41, 40, hysteresisBand=0), "f.yaml")
    with pytest.raises(PolicyError, match="rules\\[pressure\\]"):
        parse_rules(rules_doc(40, 40, hysteresisBand=0), "f.yaml")  # equal is never above
    with pytest.raises(PolicyError, match="limits.hysteresisBand"):
        parse_rules(rules_doc(90, 40, hysteresisBand=1), "f.yaml")


def test_thresholds_on_different_signals_are_not_compared() -> None:
    doc = rules_doc(30, 40)
    doc["rules"][1]["when"] = {"metric": "memory_utilization", "below": 40, "relativeTo": "lambdaMemory"}
    parse_rules(doc, "f.yaml")


def test_a_repo_override_that_inverts_a_shipped_rule_names_its_file() -> None:
    override = (
        b"rules:\n  - name: memory-idle\n    field: lambdaMemory\n    direction: decrease\n"
        b"    when: {metric: memory_utilization, below: 95}\n    sustainedMinutes: 60\n"
    )
    with pytest.raises(PolicyError) as e:
        load_policy_docs({"feedback-rules.yaml": ("policies/feedback-rules.yaml", override)})
    assert str(e.value).startswith("policies/feedback-rules.yaml: rules[memory-pressure].when.above: ")
    assert "'memory-idle'" in str(e.value)


def trigger_claim(threshold: float) -> Any:
    auto = {
        "enabled": True,
        "memoryBounds": {"min": 128, "max": 512},
        "trigger": {"metric": "memory_utilization", "threshold": threshold, "sustainedMinutes": 30},
    }
    return claim(autoTune=auto)


@pytest.mark.parametrize("threshold", [30, 40, 60, 64])
def test_a_claim_trigger_inside_a_decrease_band_is_refused_naming_file_and_key(threshold: float) -> None:
    c = trigger_claim(threshold)
    p = policy()
    with pytest.raises(ClaimError) as e:
        check_trigger(c.name, parse_autotune(c), p.rules, band=p.limits.hysteresis_band, path=c.path)
    msg = str(e.value)
    assert msg.startswith(f"app-prod: {c.path}: spec.autoTune.trigger.threshold: {threshold:g} is not above")
    # The shipped decrease rules on memory_utilization: memory-idle (40) and cost-overprovisioned (60).
    assert "memory-idle" in msg or "cost-overprovisioned" in msg


def test_a_claim_trigger_above_every_decrease_band_is_accepted() -> None:
    c = trigger_claim(70)
    p = policy()
    check_trigger(c.name, parse_autotune(c), p.rules, band=p.limits.hysteresis_band, path=c.path)


# --- sparse windows ------------------------------------------------------------------------------


def idle_series(hole: tuple[float, float] | None = None, step_min: int = 5) -> dict[str, Series]:
    """A 1024 MB claim idle for a week; ``hole`` = (from, to) minutes ago without points."""
    s = healthy(memory=1024, used=225)
    mu = series("memory_utilization", lambda a: 22.0, step_min=step_min)
    if hole is not None:
        ago = (NOW.timestamp() - mu.ts) / 60
        keep = ~((ago > hole[0]) & (ago < hole[1]))
        mu = Series(mu.metric, mu.ts[keep], mu.values[keep])
    s["memory_utilization"] = mu
    return s


def test_a_nineteen_hour_hole_in_a_sustained_window_is_not_enough_data() -> None:
    c = claim(lambdaMemory=1024, autoTune=WIDE_BOUNDS)
    d = one(recommend(with_baselines(c, idle_series(hole=(120, 120 + 19 * 60))), policy(), NOW, SOURCE))
    # The increase rule can still judge its 30 minutes: the field holds, its idle window cannot.
    assert d.outcome == Outcome.HOLD and d.recommended is None
    idle = next(n for n in d.notes if n.rule == "memory-idle")
    assert "memory_utilization has a 1140m gap after 2026-11-07T03:00Z in the 1440m window" in idle.detail
    assert "max 15m between points" in idle.detail
    # Without the hole the same rule fires.
    full = one(recommend(with_baselines(c, idle_series()), policy(), NOW, SOURCE))
    assert full.outcome == Outcome.CHANGE and full.rule == "memory-idle"


def test_the_default_gap_follows_the_series_spacing() -> None:
    limits = Limits()
    hourly = series("m", lambda a: 1.0, step_min=60)
    assert max_gap_seconds(hourly, limits) == 3 * 3600
    assert max_gap_seconds(series("m", lambda a: 1.0), limits) == 15 * 60  # 3 x 5 min is below the floor
    assert max_gap_seconds(hourly, replace(limits, max_gap_minutes=90)) == 90 * 60
    cond = Condition("m", "below", 2.0)

    def check(s: Series) -> Any:
        now = NOW.timestamp()
        return check_window(cond, s, {}, now=now, window_minutes=1440, valid_from=0, limits=limits)

    assert check(hourly).holds
    n = len(hourly)
    two_hours = Series("m", np.delete(hourly.ts, [n - 10]), np.delete(hourly.values, [n - 10]))
    assert check(two_hours).holds  # one lost hourly point: a 2 h gap is within 3 spacings
    lost = [n - 10, n - 9, n - 8]
    four_hours = Series("m", np.delete(hourly.ts, lost), np.delete(hourly.values, lost))
    w = check(four_hours)
    assert not w.enough and "240m gap" in w.detail and "max 180m" in w.detail


def test_max_gap_minutes_is_read_from_the_policy_globally_and_per_metric() -> None:
    doc = rules_doc(90, 40, maxGapMinutes=45)
    doc["metrics"] = {"memory_utilization": {"maxGapMinutes": 20}, "errors": {}}
    _, metrics, _, _, limits = parse_rules(doc, "f.yaml")
    assert limits.max_gap_minutes == 45 and metrics["memory_utilization"].max_gap_minutes == 20
    doc["limits"] = {"maxGapMinutes": 0}
    with pytest.raises(PolicyError, match="limits.maxGapMinutes"):
        parse_rules(doc, "f.yaml")


def test_a_per_metric_max_gap_decides_the_window() -> None:
    p = policy()
    mp = replace(p.metrics["memory_utilization"], max_gap_minutes=24 * 60)
    lenient = replace(p, metrics={**p.metrics, "memory_utilization": mp})
    c = claim(lambdaMemory=1024, autoTune=WIDE_BOUNDS)
    d = one(recommend(with_baselines(c, idle_series(hole=(120, 120 + 19 * 60))), lenient, NOW, SOURCE))
    assert d.outcome == Outcome.CHANGE


# --- late data -----------------------------------------------------------------------------------


def late(minutes: float) -> dict[str, Series]:
    """Memory pressure whose every metric arrives ``minutes`` late."""
    s = healthy()
    return {m: v.until(NOW.timestamp() - minutes * 60) for m, v in s.items()}


def test_data_ten_minutes_late_is_judged_over_the_window_up_to_its_newest_point() -> None:
    d = one(recommend(with_baselines(claim(), late(10)), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.CHANGE and d.recommended == 384
    trigger = next(e for e in d.evidence if e.metric == "memory_utilization")
    assert trigger.points == 7 and trigger.window_minutes == 30


def test_data_older_than_the_staleness_limit_is_still_stale() -> None:
    d = one(recommend(with_baselines(claim(), late(35)), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.NOT_ENOUGH_DATA
    assert "newest memory_utilization point is 35m old (max 30m)" in d.notes[0].detail


def test_a_late_window_still_starts_after_settling() -> None:
    cond = Condition("m", "above", 1.0)
    s = series("m", lambda a: 2.0).until(NOW.timestamp() - 600)
    end = NOW.timestamp()
    # The change settled 25 minutes ago: 30 minutes up to the newest point reach before it.
    w = check_window(cond, s, {}, now=end, window_minutes=30, valid_from=end - 25 * 60, limits=Limits())
    assert not w.enough and "settling" in w.detail


# --- contradicting signals -----------------------------------------------------------------------


def test_utilisation_pressure_that_absolute_usage_contradicts_holds() -> None:
    """92 % utilisation, but a 248 MB peak + 15 % fits in 384 MB: no 384 -> 512 ratchet."""
    s = healthy(memory=384, used=248)
    s["memory_utilization"] = series("memory_utilization", lambda a: 92.0)
    c = claim(lambdaMemory=384, autoTune=WIDE_BOUNDS | {"memoryBounds": {"min": 128, "max": 1024}})
    for decide in (recommend, autotune):
        d = one(decide(with_baselines(c, s), policy(), NOW, SOURCE))
        assert d.outcome == Outcome.HOLD and d.recommended is None
        assert d.notes[0].rule == "signals-disagree"
        detail = d.notes[0].detail
        assert "memory_utilization above 90 held for 30m (min 92" in detail
        assert "peak used_memory_max 248 + 15% margin = 285.2 fits in the current 384" in detail
        assert {e.metric for e in d.evidence} == {"memory_utilization", "used_memory_max"}


def test_agreeing_signals_still_step() -> None:
    s = healthy(memory=384, used=360)
    c = claim(lambdaMemory=384, autoTune=WIDE_BOUNDS | {"memoryBounds": {"min": 128, "max": 1024}})
    d = one(recommend(with_baselines(c, s), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.CHANGE and d.recommended == 512
