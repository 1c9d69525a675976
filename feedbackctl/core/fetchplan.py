"""Which metrics an auto-tune run reads: decided from git first (docs/cloudwatch.md).

GetMetricData bills per metric requested, and most claims of a fleet cannot
act at all (they do not opt in, they are in a cooldown or frozen), so
autotune asks only for what a decision can use:

1. from git alone, which fields could act. The guards that read no metric
   settle the others (``decide.settled_by_git``, the very function the
   decision runs), and a spent fleet budget settles every field;
2. round 1: the trigger metric of every rule of the fields that could act;
3. round 2, only for the claims whose trigger fired in round 1: what such a
   decision reads next (the rules' other conditions, sizing, guardrails).

A decision whose trigger does not hold reads nothing else, so the decisions
are the same as with a full fetch. Claims named in ``everything`` (the
validating claims of a staged fleet, whose series are another claim's
evidence) are read in full in round 1. Pure.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from feedbackctl.core.decide import ClaimInputs, settled_by_git, trigger_check
from feedbackctl.core.guards import Budget
from feedbackctl.core.models import Claim
from feedbackctl.core.policy import Policy, Source
from feedbackctl.core.tuning import parse_autotune
from feedbackctl.errors import ClaimError


def needed_metrics(policy: Policy) -> tuple[str, ...]:
    """Every metric a rule or guardrail of ``policy`` reads: what a full fetch asks for."""
    names: list[str] = []
    for r in policy.rules:
        names += r.metrics
    names += [g.when.metric for g in policy.guardrails]
    return tuple(dict.fromkeys(names))


def evidence_metrics(policy: Policy, fields: Iterable[str]) -> tuple[str, ...]:
    """What the decisions of ``fields`` can read: their rules' metrics and the guardrails'."""
    names: list[str] = []
    for f in fields:
        for r in policy.rules_for(f):
            names += r.metrics
    names += [g.when.metric for g in policy.guardrails]
    return tuple(dict.fromkeys(names))


def set_fields(inputs: ClaimInputs, policy: Policy) -> tuple[str, ...]:
    """The tuned fields the claim sets: the only ones it has decisions for."""
    return fields_set_by(inputs.claim, policy)


def fields_set_by(claim: Claim, policy: Policy) -> tuple[str, ...]:
    """``set_fields`` of a claim on its own (no inputs gathered yet)."""
    return tuple(f for f in policy.tuned_fields if claim.value(f) is not None)


def claim_metrics(inputs: ClaimInputs, policy: Policy) -> tuple[str, ...]:
    """Everything a decision of the claim can read: a full fetch (analyze, propose) asks for this."""
    return evidence_metrics(policy, set_fields(inputs, policy))


@dataclass(frozen=True)
class FieldPlan:
    claim: str
    field: str
    blocked_by: str | None = None  # the guard that settles it from git; None: it could act
    detail: str = ""


@dataclass(frozen=True)
class FetchPlan:
    fields: tuple[FieldPlan, ...] = ()
    triggers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # claim -> round 1
    later: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # claim -> round 2 if it fires
    could_act: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # claim -> fields

    def acting(self, claim: str) -> tuple[str, ...]:
        return self.could_act.get(claim, ())

    @property
    def round_one(self) -> dict[str, tuple[str, ...]]:
        return {c: m for c, m in self.triggers.items() if m}


def plan_fetch(
    fleet: Sequence[ClaimInputs],
    policy: Policy,
    now: datetime,
    source: Source,
    budget: Budget | None = None,
    everything: Collection[str] = (),
) -> FetchPlan:
    """Fields that could act, and round 1's metrics per claim (``fleet``: histories, no series)."""
    fields: list[FieldPlan] = []
    triggers: dict[str, tuple[str, ...]] = {}
    later: dict[str, tuple[str, ...]] = {}
    could_act: dict[str, tuple[str, ...]] = {}
    for inputs in fleet:
        name = inputs.claim.name
        acting: list[str] = []
        try:
            for f in set_fields(inputs, policy):
                d = settled_by_git(inputs, policy, f, now, source, budget)
                if d is None:
                    acting.append(f)
                    fields.append(FieldPlan(name, f))
                else:
                    rule = d.blocked_by[-1] if d.blocked_by else d.outcome.value
                    fields.append(FieldPlan(name, f, rule, d.reason))
        except ClaimError:
            acting = []  # a bad value fails the claim's decisions whatever the metrics say
        if acting:
            could_act[name] = tuple(acting)
        if name in everything:
            triggers[name] = claim_metrics(inputs, policy)
            continue
        trig = tuple(dict.fromkeys(r.when.metric for f in acting for r in policy.rules_for(f)))
        triggers[name] = trig
        if acting:
            later[name] = tuple(m for m in evidence_metrics(policy, acting) if m not in trig)
    return FetchPlan(tuple(fields), triggers, later, could_act)


def second_round(
    plan: FetchPlan, fetched: Sequence[ClaimInputs], policy: Policy, now: datetime, source: Source
) -> dict[str, tuple[str, ...]]:
    """Round 2: for each claim whose trigger fired on round 1's series, the metrics it reads next."""
    ts = now.timestamp()
    out: dict[str, tuple[str, ...]] = {}
    for inputs in fetched:
        name = inputs.claim.name
        more = plan.later.get(name)
        if not more:
            continue
        try:
            tuning = parse_autotune(inputs.claim)
        except ClaimError:
            continue
        rules = [r for f in plan.acting(name) for r in policy.rules_for(f)]
        if any(trigger_check(inputs, policy, tuning, r, ts, source)[0].holds for r in rules):
            out[name] = more
    return out
