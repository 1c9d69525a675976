"""The fetch plan (core/fetchplan.py): what it asks for, and that it never changes a decision.

The property: for random fleets (opted in or not, cooldowns, flapping,
settling, rate budgets, triggers firing or quiet, guardrails good or bad),
deciding from only the series the plan fetches gives exactly the decisions
of deciding from every series.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedbackctl.core import fetchplan, guards
from feedbackctl.core.decide import ClaimInputs, autotune
from feedbackctl.core.models import Decision, FieldChange, FieldHistory, FleetHistory, Series
from feedbackctl.core.policy import Limits
from tests.corefix import NOW, SEED_AUTOTUNE, SOURCE, change, claim, healthy, inputs, policy, series

POLICY = policy()
TUNE = {**SEED_AUTOTUNE, "memoryBounds": {"min": 128, "max": 4096}}
N = 7 * 288 + 1
TS = np.array([int(NOW.timestamp()) - (N - 1 - i) * 300 for i in range(N)], dtype=np.int64)


def decide(fleet: Sequence[ClaimInputs], budget: guards.Budget) -> list[Decision]:
    out = [d for i in fleet for d in autotune(i, POLICY, NOW, SOURCE, budget=budget)]
    return guards.rate_limit(out, FleetHistory(), NOW, POLICY.limits)


def only(i: ClaimInputs, wanted: Mapping[str, tuple[str, ...]]) -> ClaimInputs:
    keep = set(wanted.get(i.claim.name, ()))
    return replace(i, series={m: s for m, s in i.series.items() if m in keep})


def planned(fleet: Sequence[ClaimInputs], budget: guards.Budget) -> tuple[list[ClaimInputs], int]:
    """The fleet as the two rounds fetch it, and how many metric series they read."""
    bare = [replace(i, series={}) for i in fleet]
    plan = fetchplan.plan_fetch(bare, POLICY, NOW, SOURCE, budget)
    first = [only(i, plan.round_one) for i in fleet]
    more = fetchplan.second_round(plan, first, POLICY, NOW, SOURCE)
    both = {c: plan.round_one.get(c, ()) + more.get(c, ()) for c in {*plan.round_one, *more}}
    return [only(i, both) for i in fleet], sum(len(m) for m in both.values())


@st.composite
def member(draw: st.DrawFn, k: int) -> ClaimInputs:
    memory = draw(st.sampled_from([256, 512, 1024, 2048]))
    opted = draw(st.booleans())
    tune = {**TUNE, "cooldownMinutes": draw(st.sampled_from([0, 60, 600]))}
    if draw(st.booleans()):
        tune["timeoutBounds"] = {"min": 5, "max": 120}
    c = claim(f"app-{k}", autotune=opted, lambdaMemory=memory, **({"autoTune": tune} if opted else {}))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    util = np.clip(draw(st.sampled_from([20.0, 50.0, 75.0, 95.0])) + rng.normal(0, 3, N), 0, None)
    p99 = draw(st.sampled_from([2000.0, 9000.0, 27000.0]))
    s = {
        "memory_utilization": Series("memory_utilization", TS, util),
        "used_memory_max": Series("used_memory_max", TS, util * memory / 100),
        "duration_p99": Series("duration_p99", TS, np.full(N, p99)),
        "errors": Series("errors", TS, np.full(N, draw(st.sampled_from([0.0, 0.0, 20.0])))),
        "throttles": Series("throttles", TS, np.zeros(N)),
        "cost_daily": series("cost_daily", lambda a: 3.0, step_min=1440),
    }
    changes: list[FieldChange] = []
    for minutes in sorted(
        draw(st.lists(st.sampled_from([20, 90, 300, 3000, 6000]), max_size=4)), reverse=True
    ):
        kind = draw(st.sampled_from(["auto-tune", "human"]))
        old, new = draw(st.sampled_from([(memory, memory + 128), (memory + 128, memory)]))
        changes.append(change(minutes, old, new, kind))
    return inputs(c, s, {"lambdaMemory": changes})


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 6).flatmap(lambda n: st.tuples(*(member(k) for k in range(n)))), st.integers(0, 3))
def test_the_planned_fetch_decides_exactly_like_a_full_fetch(
    fleet: tuple[ClaimInputs, ...], left: int
) -> None:
    budget = guards.Budget(left, f"{3 - left} auto-tunes in the last 24h (max 3), 20 per run")
    subset, read = planned(fleet, budget)
    assert decide(subset, budget) == decide(fleet, budget)
    assert read <= sum(len(fetchplan.needed_metrics(POLICY)) for _ in fleet)


def test_a_claim_that_does_not_opt_in_reads_nothing() -> None:
    i = inputs(claim("quiet", autotune=False), {})
    plan = fetchplan.plan_fetch([i], POLICY, NOW, SOURCE)
    assert plan.round_one == {}
    assert {(f.field, f.blocked_by) for f in plan.fields} == {
        ("lambdaMemory", "opt-in"),
        ("lambdaTimeout", "opt-in"),
    }


def test_round_one_reads_the_triggers_of_the_fields_that_could_act() -> None:
    i = inputs(claim("hot"), {})
    plan = fetchplan.plan_fetch([i], POLICY, NOW, SOURCE)
    # Memory opts in (memoryBounds); the timeout has no bounds, so it cannot act.
    assert plan.acting("hot") == ("lambdaMemory",)
    assert plan.round_one == {"hot": ("memory_utilization",)}
    assert set(plan.later["hot"]) == {"used_memory_max", "cost_daily", "duration_p99", "errors", "throttles"}


def test_round_two_only_for_claims_whose_trigger_fired() -> None:
    hot = inputs(claim("hot"), healthy(256, 240))
    calm = inputs(claim("calm", lambdaMemory=256), healthy(256, 180))
    bare = [replace(i, series={}) for i in (hot, calm)]
    plan = fetchplan.plan_fetch(bare, POLICY, NOW, SOURCE)
    first = [only(i, plan.round_one) for i in (hot, calm)]
    assert set(fetchplan.second_round(plan, first, POLICY, NOW, SOURCE)) == {"hot"}


def test_cooldown_flapping_and_settling_read_nothing() -> None:
    cooling = inputs(claim("cooling"), {}, {"lambdaMemory": [change(30, 192, 256)]})
    settling = inputs(claim("settling"), {}, {"lambdaMemory": [change(30, 192, 256, "human")]})
    flips = [change(5 * 1440, 256, 384), change(4 * 1440, 384, 256), change(3 * 1440, 256, 384)]
    frozen = inputs(claim("frozen", lambdaMemory=384), {}, {"lambdaMemory": flips})
    plan = fetchplan.plan_fetch([cooling, settling, frozen], POLICY, NOW, SOURCE)
    assert plan.round_one == {}
    blocked = {f.claim: f.blocked_by for f in plan.fields if f.field == "lambdaMemory"}
    assert blocked == {"cooling": "cooldown", "settling": "settling", "frozen": "flap-freeze"}


def test_a_spent_fleet_budget_reads_nothing_and_blocks_every_field() -> None:
    hot = inputs(claim("hot"), healthy(256, 240))
    spent = guards.fleet_budget(
        FleetHistory(tuple(("x", change(60 * k, 1, 2)) for k in range(1, 4))),
        NOW,
        Limits(rate_per_24h=3),
    )
    assert spent.left == 0
    plan = fetchplan.plan_fetch([replace(hot, series={})], POLICY, NOW, SOURCE, spent)
    assert plan.round_one == {}
    d = next(d for d in autotune(hot, POLICY, NOW, SOURCE, budget=spent) if d.field == "lambdaMemory")
    assert d.blocked_by == ("rate-limit",) and "3 auto-tunes in the last 24h (max 3)" in d.reason


def test_a_low_trust_source_reads_the_triggers_a_proposal_needs() -> None:
    """trust turns a change into a proposal, whose value comes from the metrics: not settled by git."""
    low = replace(SOURCE, trust_level="low")
    plan = fetchplan.plan_fetch([inputs(claim("hot"), {})], POLICY, NOW, low)
    assert plan.round_one == {"hot": ("memory_utilization", "duration_p99")}


def test_validating_claims_are_read_in_full() -> None:
    plan = fetchplan.plan_fetch(
        [inputs(claim("dev", autotune=False), {})], POLICY, NOW, SOURCE, everything={"dev"}
    )
    assert plan.round_one == {"dev": fetchplan.needed_metrics(POLICY)}  # it sets both tuned fields


def test_a_tenth_opted_in_reads_at_most_a_fifth() -> None:
    fleet = [
        ClaimInputs(
            claim(f"c{k}", autotune=k % 10 == 0), {}, {"lambdaMemory": FieldHistory(f"c{k}", "lambdaMemory")}
        )
        for k in range(100)
    ]
    plan = fetchplan.plan_fetch(fleet, POLICY, NOW, SOURCE)
    worst = {c: m + plan.later.get(c, ()) for c, m in plan.round_one.items()}  # every trigger fires
    full = len(fleet) * len(fetchplan.needed_metrics(POLICY))
    assert sum(len(m) for m in worst.values()) * 5 <= full
