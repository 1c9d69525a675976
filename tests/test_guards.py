"""Every runaway guard blocking the runaway it exists for (SPEC section 3)."""

from __future__ import annotations

from dataclasses import replace

from feedbackctl.core.decide import autotune
from feedbackctl.core.fleet import run as autotune_fleet
from feedbackctl.core.guards import reversals
from feedbackctl.core.models import FleetHistory, Outcome
from feedbackctl.core.policy import Limits, Source
from tests.corefix import NOW, SEED_AUTOTUNE, SOURCE, change, claim, healthy, inputs, policy


def mem(decisions):
    return next(d for d in decisions if d.field == "lambdaMemory")


def test_seed_example_one_step_256_to_384() -> None:
    d = mem(autotune(inputs(claim(), healthy(), baseline=256), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.CHANGE
    assert (d.current, d.recommended) == (256, 384)
    assert any(n.rule == "risk-ceiling" and "announced" in n.detail for n in d.notes)  # MEDIUM


def test_cooldown_blocks_a_second_change_ten_minutes_later() -> None:
    hist = {"lambdaMemory": [change(10, 256, 384)]}
    c = claim(lambdaMemory=384)
    d = mem(autotune(inputs(c, healthy(memory=384, used=370), hist, baseline=256), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.BLOCKED
    assert d.blocked_by == ("cooldown",)


def test_settling_blocks_after_a_human_change() -> None:
    hist = {"lambdaMemory": [change(30, 128, 256, kind="human")]}
    d = mem(autotune(inputs(claim(), healthy(), hist, baseline=256), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.BLOCKED
    assert d.blocked_by == ("settling",)


def test_settling_blocks_after_a_drift_capture() -> None:
    hist = {"lambdaMemory": [change(90, 384, 256, kind="drift-capture")]}
    d = mem(autotune(inputs(claim(), healthy(), hist, baseline=384), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.BLOCKED
    assert d.blocked_by == ("settling",)


def test_step_limit_allows_one_increment_per_action() -> None:
    c = claim(autoTune={**SEED_AUTOTUNE, "memoryBounds": {"min": 128, "max": 2048}})
    d = mem(autotune(inputs(c, healthy(used=600), baseline=256), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.CHANGE
    assert (d.recommended, d.uncapped) == (384, 768)
    assert any(n.rule == "step-limit" and n.effect == "shaped" for n in d.notes)


def test_upper_bound_at_bound_becomes_a_proposal() -> None:
    c = claim(lambdaMemory=512)
    d = mem(autotune(inputs(c, healthy(memory=512, used=500), baseline=512), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.PROPOSE
    assert d.blocked_by == ("bounds",)
    assert "at bound" in d.reason
    assert d.recommended == 640  # the uncapped value, for a human to decide


def test_bounds_clamp_and_report_the_uncapped_value() -> None:
    c = claim(lambdaMemory=448)
    d = mem(autotune(inputs(c, healthy(memory=448, used=470), baseline=448), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.CHANGE
    assert (d.recommended, d.uncapped) == (512, 640)


def test_change_cap_stops_drift_from_the_human_baseline() -> None:
    c = claim(autoTune={**SEED_AUTOTUNE, "memoryBounds": {"min": 128, "max": 2048}})
    d = mem(autotune(inputs(c, healthy(), baseline=128), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.PROPOSE
    assert d.blocked_by == ("change-cap",)


def test_risk_ceiling_routes_above_ceiling_to_a_proposal() -> None:
    p = replace(policy(), limits=replace(policy().limits, auto_apply_ceiling="LOW"))
    d = mem(autotune(inputs(claim(), healthy(), baseline=256), p, NOW, SOURCE))
    assert d.outcome == Outcome.PROPOSE
    assert d.blocked_by == ("risk-ceiling",)
    assert d.risk == "MEDIUM"


def test_flap_freeze_after_two_reversals() -> None:
    hist = {
        "lambdaMemory": [
            change(5 * 1440, 256, 384),
            change(3 * 1440, 384, 256),
            change(2 * 1440, 256, 384),
            change(1 * 1440, 384, 256),
        ]
    }
    assert reversals(tuple(hist["lambdaMemory"]), NOW, 30) == 3
    d = mem(autotune(inputs(claim(), healthy(), hist, baseline=256), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.BLOCKED
    assert d.blocked_by == ("flap-freeze",)


def test_a_human_commit_lifts_the_flap_freeze() -> None:
    hist = {
        "lambdaMemory": [
            change(6 * 1440, 256, 384),
            change(5 * 1440, 384, 256),
            change(4 * 1440, 256, 384),
            change(3 * 1440, 384, 256, kind="human"),
        ]
    }
    d = mem(autotune(inputs(claim(), healthy(), hist, baseline=256), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.CHANGE


def test_requires_proposal_source_never_auto_applies() -> None:
    agent = Source("agent-observation", "push", "medium", 30, requires_proposal=True)
    d = mem(autotune(inputs(claim(), healthy(), baseline=256), policy(), NOW, agent))
    assert d.outcome == Outcome.PROPOSE
    assert d.blocked_by == ("trust",)


def test_low_trust_source_needs_a_longer_window_and_only_proposes() -> None:
    low = Source("cross-account", "pull", "low", 60)
    s = healthy()
    s["memory_utilization"] = s["memory_utilization"]  # 7 days of pressure: fires even doubled
    d = mem(autotune(inputs(claim(), s, baseline=256), policy(), NOW, low))
    assert d.outcome == Outcome.PROPOSE
    assert next(e for e in d.evidence if e.metric == "memory_utilization").window_minutes == 60


def test_source_cooldown_counts_from_its_trailers() -> None:
    hist = {"lambdaTimeout": [change(20, 25, 30, source="metric-fixtures")]}
    c = claim()
    i = inputs(c, healthy(), hist, baseline=256)
    d = mem(autotune(i, policy(), NOW, SOURCE))
    assert d.outcome == Outcome.BLOCKED
    assert d.blocked_by == ("source-cooldown",)


def test_claims_that_do_not_opt_in_are_never_tuned() -> None:
    d = mem(autotune(inputs(claim(autotune=False), healthy(), baseline=256), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.BLOCKED
    assert d.blocked_by == ("opt-in",)


def test_rate_limit_per_run_and_per_rolling_day() -> None:
    p = replace(policy(), limits=Limits(rate_per_run=2, rate_per_24h=5))
    fleet_inputs = [inputs(claim(name=f"app-{i}"), healthy(), baseline=256) for i in range(3)]
    out = [
        d for d in autotune_fleet(fleet_inputs, p, NOW, SOURCE, FleetHistory()) if d.field == "lambdaMemory"
    ]
    assert [d.outcome for d in out] == [Outcome.CHANGE, Outcome.CHANGE, Outcome.BLOCKED]
    assert out[2].blocked_by == ("rate-limit",)
    busy = FleetHistory(tuple((f"x{i}", change(60 * i + 61, 1, 2)) for i in range(4)))
    out = [d for d in autotune_fleet(fleet_inputs, p, NOW, SOURCE, busy) if d.field == "lambdaMemory"]
    assert [d.outcome for d in out] == [Outcome.CHANGE, Outcome.BLOCKED, Outcome.BLOCKED]


def test_no_decrease_while_errors_are_bad_even_in_bounds() -> None:
    c = claim(
        env="dev", lambdaMemory=512, autoTune={**SEED_AUTOTUNE, "memoryBounds": {"min": 128, "max": 1024}}
    )
    s = healthy(memory=512, used=60)
    s["errors"] = s["errors"].__class__("errors", s["errors"].ts, s["errors"].values + 50)
    d = mem(autotune(inputs(c, s, baseline=512), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.BLOCKED
    assert d.blocked_by == ("errors-healthy",)
