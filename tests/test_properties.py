"""Properties of the pure core over random claims, policies, series and histories."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedbackctl.core.decide import autotune
from feedbackctl.core.fleet import run as autotune_fleet
from feedbackctl.core.models import FieldChange, FieldHistory, FleetHistory, Outcome, Series
from feedbackctl.core.policy import Limits
from tests.corefix import NOW, SOURCE, claim, inputs, policy

POLICY = policy()
LADDER = [128, 192, 256, 320, 384, 448, 512, 640, 768, 1024, 1536, 2048]
KINDS = ["auto-tune", "human", "drift-capture", "approve", "unfreeze"]


@st.composite
def scenario(draw: st.DrawFn) -> tuple:
    lo, hi = sorted(draw(st.lists(st.sampled_from(LADDER), min_size=2, max_size=2)))
    current = draw(st.sampled_from(LADDER))
    step = draw(st.sampled_from([None, 64, 128, 256]))
    bounds = {"min": lo, "max": hi} | ({"step": step} if step else {})
    cooldown = draw(st.integers(0, 240))
    autotune_block = {
        "enabled": True,
        "bounds": {"lambdaMemory": bounds},
        "cooldownMinutes": cooldown,
        "trigger": {
            "metric": "memory_utilization",
            "threshold": draw(st.sampled_from([80, 90])),
            "sustainedMinutes": draw(st.sampled_from([15, 30, 60])),
        },
    }
    c = claim(env=draw(st.sampled_from(["dev", "prod"])), lambdaMemory=current, autoTune=autotune_block)
    n = 7 * 288 + 1
    ts = np.array([int(NOW.timestamp()) - (n - 1 - i) * 300 for i in range(n)], dtype=np.int64)
    level = draw(st.floats(5, 120))
    noise = draw(st.floats(0, 30))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    util = np.clip(level + rng.normal(0, noise, n), 0, None)
    series = {
        "memory_utilization": Series("memory_utilization", ts, util),
        "used_memory_max": Series("used_memory_max", ts, util * current / 100),
        "duration_p99": Series("duration_p99", ts, np.full(n, draw(st.floats(100, 40000)))),
        "errors": Series("errors", ts, np.full(n, draw(st.sampled_from([0.0, 0.0, 20.0])))),
        "throttles": Series("throttles", ts, np.zeros(n)),
    }
    changes = []
    for minutes in sorted(draw(st.lists(st.integers(1, 30 * 1440), max_size=6)), reverse=True):
        old, new = draw(st.sampled_from(LADDER)), draw(st.sampled_from(LADDER))
        kind = draw(st.sampled_from(KINDS))
        changes.append(
            FieldChange(
                f"c{minutes}",
                NOW - timedelta(minutes=minutes),
                old,
                new,
                kind,
                source="metric-fixtures" if kind == "auto-tune" else None,
            )
        )
    baseline = draw(st.sampled_from([None, *LADDER]))
    return c, series, tuple(changes), baseline, (lo, hi, step or 128, cooldown)


def _decide(c, series, changes, baseline):
    i = inputs(c, series, baseline=baseline)
    hist = dict(i.histories)
    hist["lambdaMemory"] = FieldHistory(c.name, "lambdaMemory", changes, baseline=baseline)
    return next(
        d for d in autotune(replace(i, histories=hist), POLICY, NOW, SOURCE) if d.field == "lambdaMemory"
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_an_applied_change_respects_every_guard(case) -> None:
    c, series, changes, baseline, (lo, hi, step, cooldown) = case
    d = _decide(c, series, changes, baseline)
    if d.outcome != Outcome.CHANGE:
        assert d.recommended is None or d.outcome in (Outcome.PROPOSE, Outcome.BLOCKED)
        return
    current, new = float(d.current), float(d.recommended)
    assert lo <= new <= hi, "bounds"
    assert abs(new - current) <= step, "one step"
    assert new != current
    last_auto = [ch for ch in changes if ch.kind == "auto-tune"]
    if last_auto:
        assert (NOW - last_auto[-1].at) >= timedelta(minutes=cooldown), "cooldown"
    moved = [ch for ch in changes if ch.old != ch.new]
    if moved:
        assert (NOW - moved[-1].at) >= timedelta(minutes=POLICY.limits.settling_minutes), "settling"
    base = float(baseline if baseline is not None else current)
    assert base * POLICY.limits.cap_down <= new <= base * POLICY.limits.cap_up, "baseline cap"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(scenario(), min_size=2, max_size=5), st.integers(0, 1000))
def test_decisions_are_deterministic_and_independent_of_input_order(cases, seed) -> None:
    fleet = []
    for i, (c, series, changes, baseline, _) in enumerate(cases):
        c = replace(c, name=f"app-{i}")
        base = inputs(c, series, baseline=baseline)
        hist = dict(base.histories)
        hist["lambdaMemory"] = FieldHistory(c.name, "lambdaMemory", changes, baseline=baseline)
        fleet.append(replace(base, histories=hist))
    limited = replace(POLICY, limits=Limits(rate_per_run=2, rate_per_24h=50))
    first = autotune_fleet(fleet, limited, NOW, SOURCE, FleetHistory())
    shuffled = fleet[:]
    random.Random(seed).shuffle(shuffled)
    second = autotune_fleet(shuffled, limited, NOW, SOURCE, FleetHistory())
    key = lambda d: (d.claim, d.field)  # noqa: E731
    assert sorted(first, key=key) == sorted(second, key=key)
    assert sum(d.outcome == Outcome.CHANGE for d in first) <= 2, "rate limit per run"
