"""The pure decision core: every rule outcome of analyze, with plain values."""

from __future__ import annotations

from dataclasses import replace

import pytest

from feedbackctl.authority.config import load_policy_docs
from feedbackctl.core.decide import recommend
from feedbackctl.core.models import Outcome
from feedbackctl.core.policy import PolicyError
from feedbackctl.errors import ClaimError
from tests.corefix import NOW, SOURCE, change, claim, healthy, inputs, policy, series


def one(decisions, field="lambdaMemory"):
    return next(d for d in decisions if d.field == field)


def test_sustained_memory_pressure_recommends_usage_based_size() -> None:
    d = one(recommend(inputs(claim(), healthy()), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.CHANGE
    assert (d.current, d.recommended, d.direction, d.rule) == (256, 384, "increase", "memory-pressure")
    # 240 MB peak + 15 % = 276 MB, rounded up to the 128 MB step
    assert any(e.metric == "used_memory_max" and e.value == 240 for e in d.evidence)
    trigger = next(e for e in d.evidence if e.metric == "memory_utilization")
    assert trigger.window_minutes == 30 and trigger.points == 7 and trigger.statistic == "min"
    assert 0.5 < d.confidence <= 0.99
    assert d.risk == "MEDIUM"  # LOW base + prod elevator


def test_single_spike_never_acts() -> None:
    s = healthy()
    s["memory_utilization"] = series("memory_utilization", lambda a: 99.0 if a == 5 else 60.0)
    d = one(recommend(inputs(claim(), s), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.HOLD
    assert d.recommended is None


def test_pressure_shorter_than_the_sustained_window_holds() -> None:
    s = healthy()
    s["memory_utilization"] = series("memory_utilization", lambda a: 95.0 if a <= 20 else 70.0)
    d = one(recommend(inputs(claim(), s), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.HOLD
    assert "did not hold" in d.notes[0].detail


def test_too_few_points_is_not_enough_data() -> None:
    s = healthy()
    s["memory_utilization"] = series("memory_utilization", lambda a: 95.0, hours=0.2)
    d = one(recommend(inputs(claim(), s), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.NOT_ENOUGH_DATA


def test_stale_data_is_not_enough_data() -> None:
    s = healthy()
    s["memory_utilization"] = series(
        "memory_utilization",
        lambda a: 95.0,
        end=NOW.replace(hour=0) - __import__("datetime").timedelta(hours=2),
    )
    d = one(recommend(inputs(claim(), s), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.NOT_ENOUGH_DATA
    assert any("old" in n.detail for n in d.notes)


def test_missing_metric_is_not_enough_data() -> None:
    d = one(recommend(inputs(claim(), {}), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.NOT_ENOUGH_DATA


def test_coupling_trap_ignores_utilization_from_before_the_last_memory_change() -> None:
    # utilization was measured against the old configured memory until 60 minutes ago
    recent = inputs(claim(), healthy(), {"lambdaMemory": [change(60, 128, 256, kind="human")]})
    assert one(recommend(recent, policy(), NOW, SOURCE)).outcome == Outcome.NOT_ENOUGH_DATA
    settled = inputs(claim(), healthy(), {"lambdaMemory": [change(3 * 1440, 128, 256, kind="human")]})
    assert one(recommend(settled, policy(), NOW, SOURCE)).outcome == Outcome.CHANGE


def test_hysteresis_band_between_thresholds_holds() -> None:
    d = one(recommend(inputs(claim(), healthy(used=154)), policy(), NOW, SOURCE))  # ~60 %
    assert d.outcome == Outcome.HOLD


def test_decrease_needs_the_low_threshold_for_a_full_day() -> None:
    c = claim(env="dev", lambdaMemory=512)
    s = healthy(memory=512, used=60)
    s["memory_utilization"] = series("memory_utilization", lambda a: 12.0 if a <= 12 * 60 else 60.0)
    assert one(recommend(inputs(c, s), policy(), NOW, SOURCE)).outcome == Outcome.HOLD
    s["memory_utilization"] = series("memory_utilization", lambda a: 12.0)
    d = one(recommend(inputs(c, s), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.CHANGE
    assert (d.direction, d.recommended, d.rule) == ("decrease", 128, "memory-idle")
    assert d.risk == "LOW"


@pytest.mark.parametrize(
    ("metric", "bad", "guardrail"),
    [
        ("errors", 12.0, "errors-healthy"),
        ("throttles", 3.0, "throttles-healthy"),
        ("duration_p99", 9000.0, "p99-healthy"),
    ],
)
def test_no_decrease_while_a_guardrail_metric_is_bad(metric: str, bad: float, guardrail: str) -> None:
    c = claim(env="dev", lambdaMemory=512, lambdaTimeout=10)
    s = healthy(memory=512, used=60, timeout=10)
    s[metric] = series(metric, lambda a: bad)
    d = one(recommend(inputs(c, s), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.BLOCKED
    assert d.blocked_by == (guardrail,)
    assert d.recommended == 128  # what it would have been: blocked is an answer


def test_no_decrease_without_data_proving_health() -> None:
    c = claim(env="dev", lambdaMemory=512)
    s = healthy(memory=512, used=60)
    del s["errors"]
    d = one(recommend(inputs(c, s), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.BLOCKED
    assert d.blocked_by == ("errors-healthy",)
    assert "cannot prove health" in d.reason


def test_p50_alone_never_justifies_a_change() -> None:
    with pytest.raises(PolicyError, match="p50 never justifies a change"):
        load_policy_docs(
            {
                "feedback-rules.yaml": (
                    "policies/feedback-rules.yaml",
                    b"""
rules:
  - name: fast-p50
    field: lambdaMemory
    direction: decrease
    when: {metric: duration_p50, below: 100}
    sustainedMinutes: 60
""",
                )
            }
        )


def test_timeout_pressure_sizes_from_p99() -> None:
    s = healthy()
    s["duration_p99"] = series("duration_p99", lambda a: 26000.0)
    d = one(recommend(inputs(claim(), s), policy(), NOW, SOURCE), "lambdaTimeout")
    assert d.outcome == Outcome.CHANGE
    assert (d.current, d.recommended, d.rule) == (30, 40, "timeout-pressure")  # 26 s x 1.5 -> 40


def test_schema_limit_blocks_going_past_lambdas_maximum() -> None:
    c = claim(lambdaMemory=10240, autotune=False)
    d = one(recommend(inputs(c, healthy(memory=10240, used=10000)), policy(), NOW, SOURCE))
    assert d.outcome == Outcome.BLOCKED
    assert d.blocked_by == ("schema",)


def test_wrong_type_is_a_claim_error_naming_the_field() -> None:
    with pytest.raises(ClaimError, match=r"app-prod: spec.lambdaMemory is 'big', expected a number"):
        recommend(inputs(claim(lambdaMemory="big"), healthy()), policy(), NOW, SOURCE)


def test_claim_trigger_overrides_the_policy_threshold() -> None:
    seed = dict(claim().spec["autoTune"])
    seed["trigger"] = {"metric": "memory_utilization", "threshold": 97, "sustainedMinutes": 30}
    c = replace(claim(), spec={**claim().spec, "autoTune": seed})
    assert one(recommend(inputs(c, healthy()), policy(), NOW, SOURCE)).outcome == Outcome.HOLD  # 93.75 %


def test_decisions_are_deterministic() -> None:
    a = recommend(inputs(claim(), healthy()), policy(), NOW, SOURCE)
    b = recommend(inputs(claim(), healthy()), policy(), NOW, SOURCE)
    assert a == b


def test_decision_fields_are_in_the_order_decide_passes_them() -> None:
    # core/decide.py _made builds each decision once, its fields passed by position (keywords
    # cost more, per claim and field): a field moved or put among them must be passed there too.
    from dataclasses import fields

    from feedbackctl.core.models import Decision

    assert [f.name for f in fields(Decision)][:13] == [
        "claim", "field", "current", "outcome", "recommended", "uncapped", "direction", "confidence",
        "rule", "source", "risk", "evidence", "notes",
    ]  # fmt: skip
