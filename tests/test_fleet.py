"""The fleet pipeline (core/fleet.py) and the shared rule definitions, with plain values."""

from __future__ import annotations

from dataclasses import replace

from feedbackctl.core import fleet, guards
from feedbackctl.core.models import FieldChange, FieldHistory, FleetHistory, Outcome
from feedbackctl.core.policy import Limits
from tests.corefix import NOW, SOURCE, change, claim, healthy, inputs, policy


def test_the_pipeline_holds_the_rate_limit_across_claims() -> None:
    p = replace(policy(), limits=Limits(rate_per_run=2, rate_per_24h=5))
    fleet_inputs = [inputs(claim(name=f"app-{i}"), healthy(), baseline=256) for i in range(3)]
    busy = FleetHistory(tuple((f"x{i}", change(60 * i + 61, 1, 2)) for i in range(4)))
    quiet = [d for d in fleet.run(fleet_inputs, p, NOW, SOURCE, FleetHistory()) if d.field == "lambdaMemory"]
    assert [d.outcome for d in quiet] == [Outcome.CHANGE, Outcome.CHANGE, Outcome.BLOCKED]
    mem = [d for d in fleet.run(fleet_inputs, p, NOW, SOURCE, busy) if d.field == "lambdaMemory"]
    assert [d.outcome for d in mem] == [Outcome.CHANGE, Outcome.BLOCKED, Outcome.BLOCKED]
    assert mem[1].blocked_by == ("rate-limit",)


def test_a_shard_gets_its_share_of_the_per_run_limit() -> None:
    p = replace(policy(), limits=Limits(rate_per_run=3, rate_per_24h=50))
    fleet_inputs = [inputs(claim(name=f"app-{i}"), healthy(), baseline=256) for i in range(3)]
    slot = guards.RunSlot("run-1", 1, 2)  # the second of two shards: 1 of 3
    mem = [
        d
        for d in fleet.run(fleet_inputs, p, NOW, SOURCE, FleetHistory(), slot=slot)
        if d.field == "lambdaMemory"
    ]
    assert [d.outcome for d in mem] == [Outcome.CHANGE, Outcome.BLOCKED, Outcome.BLOCKED]


def test_what_counts_as_a_source_act_is_the_callers_value() -> None:
    marker = change(10, 256, 256, kind="recommendation", source="agent")
    tuned = change(90, 256, 384, source="agent")
    history = [FieldHistory("app", "lambdaMemory", (tuned, marker))]

    def changes_value(c: FieldChange) -> bool:
        return c.old != c.new

    assert guards.last_source_act(history, "agent", changes_value) == tuned
    assert guards.last_source_act(history, "agent", lambda c: True) == marker
    assert guards.last_source_act(history, "other", lambda c: True) is None
    assert guards.source_cooling(NOW, marker, 60) == 10
    assert guards.source_cooling(NOW, tuned, 60) is None
    assert guards.source_cooling(NOW, None, 60) is None
