"""Evaluating claims into decisions: the deciding half of ``feedbackctl autotune``.

One commit's claims, a batch at a time (patterns/batches.py), through the
decision core with their stages' evidence and the human acks, then the
fleet-wide rate limit (core/fleet.py) over every batch's decisions in fleet
order (core/fleet_order.py). Pure apart from reading; patterns/autotune.py
writes what it grants, and the dashboard shows it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from feedbackctl.authority.snapshot import Snapshot
from feedbackctl.core import fleet, guards
from feedbackctl.core.fleet_order import in_fleet_order
from feedbackctl.core.models import Acknowledgement, Claim, Decision, Outcome
from feedbackctl.core.rules import RuleId
from feedbackctl.core.tuning import parse_autotune
from feedbackctl.patterns import fetching, staging
from feedbackctl.patterns.acknowledgements import acknowledgements
from feedbackctl.patterns.batches import open_stream
from feedbackctl.patterns.inputs import Gathered, Problem, add_baselines
from feedbackctl.sources.base import MetricsCost


@dataclass
class Evaluation:
    snapshot: Snapshot
    decisions: list[Decision]
    problems: list[Problem]
    warnings: list[str] = field(default_factory=list)
    metrics_cost: MetricsCost = field(default_factory=MetricsCost)



def _decide(
    gathered: Gathered,
    snapshot: Snapshot,
    now: datetime,
    acked: Mapping[tuple[str, str], Acknowledgement],
    stages: staging.Stages | None = None,
    slot: guards.RunSlot = guards.RunSlot(),
) -> tuple[list[Decision], int, list[Problem]]:
    """One batch's decisions before the fleet-wide rate limit.

    The first ``own`` are the claims' own, in claim order; promotions into
    validating claims that had no decision for the field follow them.
    """
    policy = snapshot.settings.policy
    stages = stages or staging.Stages()
    series = {i.claim.name: i.series for i in gathered.inputs}
    evidence = staging.evidence(snapshot, stages, gathered.histories, series, now)
    budget = guards.fleet_budget(gathered.histories.fleet, now, policy.limits, slot)
    batch = fleet.decide(
        gathered.inputs,
        policy,
        now,
        gathered.source,
        budget,
        evidence,
        acknowledgements=acked,
        errors=stages.errors,
    )
    problems = [Problem.of(e, inputs.claim) for inputs, e in batch.failed]
    return batch.decisions, batch.own, problems



def _candidates(decisions: Sequence[Decision]) -> set[tuple[str, str]]:
    """Fields whose outcome may depend on the baseline (the change cap).

    A change held back only by a run-level limit may be granted when another
    turns into a proposal once baselines are known, so it needs one too.
    """
    waiting = (RuleId.RATE_LIMIT, RuleId.SOURCE_COOLDOWN)
    return {
        (d.claim, d.field)
        for d in decisions
        if d.outcome in (Outcome.CHANGE, Outcome.PROPOSE) or any(b in waiting for b in d.blocked_by)
    }


def opted_in(claim: Claim) -> bool:
    """Only claims with an autoTune block can act; only their history by value matters."""
    return parse_autotune(claim).enabled


def evaluate(
    snapshot: Snapshot,
    metrics: str | None,
    now: datetime,
    slot: guards.RunSlot = guards.RunSlot(),
    *,
    plan_fetch: bool = True,
) -> Evaluation:
    """Every decision of one run (``slot``: its id and shard), from one commit. Pure apart from reading.

    Series are read a batch of claims at a time (a staged claim beside its
    validating claim); the rate limit then judges the whole fleet's candidates.
    """
    policy = snapshot.settings.policy
    stages = staging.stages_for(snapshot, now)
    validators = stages.validators
    # Only the metrics a decision can use; a validating claim's are another's evidence.
    plan = fetching.for_autotune(now, snapshot.settings.policy, validators, slot) if plan_fetch else None
    # A validating claim's values over time are its evidence, opted in or not.
    stream = open_stream(
        snapshot,
        metrics,
        now,
        values_for=lambda c: opted_in(c) or c.name in validators,
        together=stages.pairs,
        planned=plan,
    )
    # A human's acks on the authority branch: inputs of the risk-ceiling guard.
    acked = acknowledgements(snapshot.repo, snapshot.commit, now)
    # A guardrail relative to another field is judged against that field's baseline too.
    relative = guards.guardrail_fields(policy)
    parts: list[tuple[list[Decision], int]] = []
    problems: list[Problem] = []
    for part in stream.batches(now):
        decisions, own, found = _decide(part, snapshot, now, acked, stages, slot)
        wanted = _candidates(decisions)
        wanted |= {(claim, f) for claim, _ in wanted for f in relative}
        if wanted:
            # Baselines can lie far back in history: look them up only for the
            # fields the change cap will judge, then decide again with them.
            add_baselines(snapshot, part, wanted)
            decisions, own, found = _decide(part, snapshot, now, acked, stages, slot)
        parts.append((decisions, own))
        problems += found
    ordered = in_fleet_order(parts, stream.fleet.claims, stages.pairs)
    decisions = fleet.limit(ordered, stream.fleet.histories.fleet, now, policy, slot)
    return Evaluation(snapshot, decisions, stream.problems + problems, stream.warnings, stream.metrics_cost)
