"""The per-run limit split over the shards of one cron slot (core/guards.py), and the run id."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feedbackctl.authority.runid import RUN_ID_ENV, run_id
from feedbackctl.authority.trailers import parse_trailers
from feedbackctl.authority.writer import Plan, trailer
from feedbackctl.core.decide import autotune
from feedbackctl.core.guards import RunSlot, rate_limit, shard_share
from feedbackctl.core.models import FleetHistory, Outcome
from feedbackctl.core.policy import Limits
from feedbackctl.errors import UsageError
from tests.corefix import NOW, SOURCE, change, claim, healthy, inputs, policy


@given(st.integers(0, 10_000), st.integers(1, 200))
def test_the_shares_of_a_slot_sum_to_the_limit(total: int, count: int) -> None:
    shares = [shard_share(total, i, count) for i in range(count)]
    assert sum(shares) == total
    assert all(s >= 0 for s in shares)
    assert max(shares) - min(shares) <= 1  # no shard starves another
    assert shares == sorted(shares, reverse=True)  # the extra ones go to the first shards


def test_the_brief_example() -> None:
    assert [shard_share(20, i, 3) for i in range(3)] == [7, 7, 6]
    assert [shard_share(2, i, 4) for i in range(4)] == [1, 1, 0, 0]
    assert shard_share(20, 0, 1) == 20


@pytest.mark.parametrize("index,count", [(3, 3), (-1, 2), (0, 0)])
def test_a_shard_outside_its_slot_is_a_bug(index: int, count: int) -> None:
    with pytest.raises(ValueError):
        shard_share(20, index, count)


def memory_outcomes(slot: RunSlot, fleet: FleetHistory = FleetHistory(), names: int = 6) -> list[Outcome]:
    """Six claims that each want one change, through the fleet guard as ``slot``."""
    p = replace(policy(), limits=Limits(rate_per_run=5, rate_per_24h=50))
    wanted = [
        d
        for i in range(names)
        for d in autotune(inputs(claim(name=f"app-{i}"), healthy(), baseline=256), p, NOW, SOURCE)
    ]
    assert sum(d.outcome == Outcome.CHANGE for d in wanted) == names
    return [d.outcome for d in rate_limit(wanted, fleet, NOW, p.limits, slot) if d.field == "lambdaMemory"]


def test_a_shard_grants_its_share_only() -> None:
    assert memory_outcomes(RunSlot()).count(Outcome.CHANGE) == 5
    assert memory_outcomes(RunSlot("slot", 0, 3)).count(Outcome.CHANGE) == 2
    assert memory_outcomes(RunSlot("slot", 2, 3)).count(Outcome.CHANGE) == 1


def test_changes_already_made_under_the_run_id_count_against_it() -> None:
    made = FleetHistory(tuple((f"x{i}", replace(change(1, 1, 2), run="slot")) for i in range(4)))
    assert memory_outcomes(RunSlot("slot"), made).count(Outcome.CHANGE) == 1
    assert memory_outcomes(RunSlot("other"), made).count(Outcome.CHANGE) == 5
    # a shard whose share is left is still held to what the slot has left
    assert memory_outcomes(RunSlot("slot", 0, 2), made).count(Outcome.CHANGE) == 1


def test_the_run_id_comes_from_the_environment_or_is_fresh() -> None:
    assert run_id({RUN_ID_ENV: "feedbackctl-autotune-29384000"}) == "feedbackctl-autotune-29384000"
    fresh = {run_id({}) for _ in range(3)}
    assert len(fresh) == 3 and all(len(r) == 32 for r in fresh)
    assert len(run_id({RUN_ID_ENV: ""})) == 32  # set but empty: as if unset
    with pytest.raises(UsageError, match=RUN_ID_ENV):
        run_id({RUN_ID_ENV: "a b"})


def test_feedback_run_follows_the_documented_keys_and_parses_back() -> None:
    change_ = trailer("auto-tune", "app", "lambdaMemory", old=256, new=384, tags=["x"], run="slot-1")
    message = Plan("feedbackctl: auto-tune", trailers=[change_, {**change_, "Feedback-Claim": "b"}]).message
    block = message.split("\n\n")[-1].splitlines()
    assert block[:7] == [
        "Feedback-Kind: auto-tune",
        "Feedback-Claim: app",
        "Feedback-Field: spec.lambdaMemory",
        "Feedback-From: 256",
        "Feedback-To: 384",
        "Feedback-Tags: x",
        "Feedback-Run: slot-1",
    ]
    assert [g["Feedback-Run"] for g in parse_trailers(message)] == ["slot-1", "slot-1"]
    assert [g["Feedback-Claim"] for g in parse_trailers(message)] == ["app", "b"]
