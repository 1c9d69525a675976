"""The seed's five runaway risks and coupled fields, backtested.

Guards hold them; ``--no-guards`` shows them run away.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from pathlib import Path

import pytest

from feedbackctl.core.tuning import parse_autotune
from feedbackctl.patterns.simulate import Options, Result, run, setup_from

SCENARIOS = Path(__file__).resolve().parents[1] / "examples" / "scenarios"
NAMES = ("oscillation", "amplification", "metric-gaming", "cascade", "drift", "coupled-fields")
# The guard that must have stopped each runaway (seen as a reported block).
STOPPED_BY = {
    "oscillation": {"flap-freeze"},
    "amplification": {"bounds"},
    "metric-gaming": {"p99-healthy"},
    "cascade": {"rate-limit", "change-cap"},
    "drift": {"change-cap"},
    "coupled-fields": {"p99-healthy"},
}


@cache
def simulate(name: str, guards: bool = True) -> Result:
    return run(setup_from(Options(scenario=str(SCENARIOS / name), guards=guards)))


def directions(result: Result) -> dict[tuple[str, str], list[int]]:
    out: dict[tuple[str, str], list[int]] = {}
    for e in result.applied:
        out.setdefault((e.claim, e.field), []).append(1 if e.new > e.old else -1)
    return out


def reversals(steps: list[int]) -> int:
    return sum(1 for a, b in zip(steps, steps[1:], strict=False) if a != b)


@pytest.mark.parametrize("name", NAMES)
def test_guards_keep_every_change_inside_the_human_bounds(name: str) -> None:
    result = simulate(name)
    assert not result.problems
    # Metric gaming is the one scenario where the right answer is never to act.
    assert bool(result.applied) == (name != "metric-gaming"), "the scenario must exercise auto-tune"
    bounds = {c.name: parse_autotune(c).bounds for c in result.setup.claims}
    for e in result.applied:
        b = bounds[e.claim].get(e.field)
        assert b is not None, f"{e.claim} {e.field} changed without human bounds"
        assert b.min <= e.new <= b.max, e


@pytest.mark.parametrize("name", NAMES)
def test_guards_respect_every_cooldown(name: str) -> None:
    result = simulate(name)
    limits = result.setup.policy.limits
    last: dict[tuple[str, str], object] = {}
    for e in result.applied:
        tuning = parse_autotune(next(c for c in result.setup.claims if c.name == e.claim))
        minutes = tuning.cooldown_minutes if tuning.cooldown_minutes is not None else limits.cooldown_minutes
        prev = last.get((e.claim, e.field))
        if prev is not None:
            assert e.at - prev >= timedelta(minutes=max(minutes, limits.settling_minutes)), e  # type: ignore[operator]
        last[(e.claim, e.field)] = e.at


@pytest.mark.parametrize("name", NAMES)
def test_flapping_is_frozen_within_two_reversals(name: str) -> None:
    result = simulate(name)
    for key, steps in directions(result).items():
        assert reversals(steps) <= 2, key
        if reversals(steps) == 2:
            last = max(e.at for e in result.applied if (e.claim, e.field) == key)
            later = [e for e in result.stopped if (e.claim, e.field) == key and e.at > last]
            assert later and all(e.blocked_by == ("flap-freeze",) for e in later)


@pytest.mark.parametrize("name", NAMES)
def test_every_blocked_change_is_reported(name: str) -> None:
    result = simulate(name)
    assert STOPPED_BY[name] <= {rule for e in result.stopped for rule in e.blocked_by}
    for e in result.stopped:
        assert e.blocked_by and e.reason and e.rule, e
        assert e.reason.startswith(e.blocked_by[0])
    # Every step at which the core blocked (or routed to a proposal) a change that a rule asked
    # for lies inside a reported event for that claim and field.
    for track in result.tracks:
        events = [e for e in result.stopped if (e.claim, e.field) == (track.claim, track.field)]
        for t, status in zip(track.times, track.status, strict=True):
            if status in ("blocked", "proposed"):
                assert any(
                    e.event == status and e.at.timestamp() <= t <= (e.until or e.at).timestamp()
                    for e in events
                ), (track.claim, track.field, t)
        steps = sum(1 for s in track.status if s in ("blocked", "proposed"))
        assert steps == sum(e.steps for e in events)


# --- guards off: the runaway each scenario exists to show ----------------------------------------


def test_oscillation_without_guards_swings_back_and_forth() -> None:
    result = simulate("oscillation", guards=False)
    assert reversals(directions(result)[("checkout-api", "lambdaMemory")]) >= 10
    assert not result.stopped


def test_amplification_without_guards_runs_to_the_lambda_maximum() -> None:
    result = simulate("amplification", guards=False)
    assert result.final["ingest-worker"]["lambdaMemory"] >= 4096  # bounds say 384
    est = result.estimates["ingest-worker"]
    assert est.cost_usd > 5 * est.baseline_cost_usd


def test_metric_gaming_without_guards_cuts_memory_while_the_tail_times_out() -> None:
    result = simulate("metric-gaming", guards=False)
    cut = next(e for e in result.applied if e.field == "lambdaMemory")
    assert (cut.old, cut.new) == (1024, 384)
    est = result.estimates["search-api"]
    assert est.cost_usd < est.baseline_cost_usd  # the measured goal improved ...
    assert est.p99_mean_ms > 1.5 * est.baseline_p99_mean_ms  # ... the real one got worse
    assert est.timeout_minutes > 0
    guarded = simulate("metric-gaming").estimates["search-api"]
    assert (
        guarded.timeout_minutes == 0 and simulate("metric-gaming").final["search-api"]["lambdaMemory"] == 1024
    )


def test_cascade_without_guards_ratchets_both_timeouts() -> None:
    result = simulate("cascade", guards=False)
    assert result.final["orders-api"]["lambdaTimeout"] >= 100
    assert result.final["orders-worker"]["lambdaTimeout"] >= 100
    claims = [e.claim for e in result.applied]
    assert claims.count("orders-api") >= 5 and claims.count("orders-worker") >= 5


def test_drift_without_guards_leaves_the_tested_configuration_far_behind() -> None:
    result = simulate("drift", guards=False)
    assert result.final["report-builder"]["lambdaMemory"] > 2 * 256
    assert simulate("drift").final["report-builder"]["lambdaMemory"] == 512


def test_coupled_fields_without_guards_trade_memory_for_a_tail_at_the_timeout() -> None:
    result = simulate("coupled-fields", guards=False)
    assert result.final["thumbnailer"]["lambdaMemory"] <= 512
    assert result.final["thumbnailer"]["lambdaTimeout"] >= 20
    est = result.estimates["thumbnailer"]
    assert est.p99_final_ms > 2 * est.baseline_p99_mean_ms and est.timeout_minutes > 0


def test_coupled_fields_a_raised_timeout_never_lifts_the_memory_guardrail() -> None:
    """With the guardrail judged on the current timeout this ran 1024 -> 512 MB, 10 -> 20 s, p99 7 -> 14 s."""
    result = simulate("coupled-fields")
    final = result.final["thumbnailer"]
    # The timeout's own rule still raises it (p99 passed 80 % of 10 s) ...
    assert final["lambdaTimeout"] == 15
    # ... but memory stops where p99 first passed the baseline's 8 s bar.
    assert final["lambdaMemory"] == 768
    assert [(e.field, e.old, e.new) for e in result.applied if e.field == "lambdaMemory"] == [
        ("lambdaMemory", 1024, 896),
        ("lambdaMemory", 896, 768),
    ]
    blocked = [e for e in result.stopped if e.field == "lambdaMemory"]
    assert blocked and all(e.blocked_by == ("p99-healthy",) for e in blocked)
    assert "relative to the baseline lambdaTimeout 10, not the current 15" in blocked[-1].reason
    assert result.estimates["thumbnailer"].p99_max_ms < 10_000
