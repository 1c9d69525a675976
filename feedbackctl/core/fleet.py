"""The fleet pipeline: every claim's guarded decisions, promotions, then the fleet-wide limits.

One definition of how a run decides, shared by ``autotune`` (which feeds it
a batch of claims at a time and then limits the whole fleet) and
``simulate`` (every claim at each simulated step):

1. each claim through ``core.decide.autotune`` (every per-claim guard, and
   one change per claim), told what the fleet's rate limit leaves the run;
2. promotions into validating claims (``core/promotion.py``) and the
   staging-validation judgement of every change;
3. the global rate limit across all of them (``guards.rate_limit``).

Pure: plain values in, decisions with their reasons out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from feedbackctl.core import guards
from feedbackctl.core.decide import ClaimInputs, autotune
from feedbackctl.core.models import Acknowledgement, Decision, FleetHistory
from feedbackctl.core.policy import Policy, Source
from feedbackctl.core.promotion import promote
from feedbackctl.core.validation import StageEvidence
from feedbackctl.errors import ClaimError


@dataclass
class Batch:
    """One batch's decisions before the fleet-wide limits.

    The first ``own`` are the claims' own, in claim order; promotions into
    validating claims that had no decision for the field follow them.
    """

    decisions: list[Decision]
    own: int
    failed: list[tuple[ClaimInputs, ClaimError]] = field(default_factory=list)


def decide(
    fleet_inputs: Sequence[ClaimInputs],
    policy: Policy,
    now: datetime,
    source: Source,
    budget: guards.Budget | None,
    evidence: Mapping[str, StageEvidence],
    *,
    acknowledgements: Mapping[tuple[str, str], Acknowledgement] | None = None,
    errors: Mapping[str, ClaimError] | None = None,
    from_git: bool = True,
) -> Batch:
    """Steps 1 and 2 for some claims: their guarded decisions and the promotions they ask for.

    ``errors`` are claims known to be unreadable (a staging pairing that
    failed): reported as failed like a claim the core refuses.
    """
    decisions: list[Decision] = []
    failed: list[tuple[ClaimInputs, ClaimError]] = []
    for inputs in fleet_inputs:
        name = inputs.claim.name
        try:
            if errors and name in errors:
                raise errors[name]
            if acknowledgements is not None:
                mine = {f: a for (c, f), a in acknowledgements.items() if c == name}
                inputs = replace(inputs, acknowledgements=mine)
            decisions.extend(
                autotune(inputs, policy, now, source, evidence.get(name), budget=budget, from_git=from_git)
            )
        except ClaimError as e:
            failed.append((inputs, e))
    own = len(decisions)
    if evidence:
        by_name = {i.claim.name: i for i in fleet_inputs}
        decisions = promote(decisions, by_name, evidence, policy, now, source)
    decisions = [guards.validated_stage(d, evidence.get(d.claim), policy, now) for d in decisions]
    return Batch(decisions, own, failed)


def limit(
    decisions: Sequence[Decision],
    fleet: FleetHistory,
    now: datetime,
    policy: Policy,
    slot: guards.RunSlot = guards.RunSlot(),
) -> list[Decision]:
    """Step 3: the fleet-wide rules (the rate limit) over every decision of the run."""
    return guards.rate_limit(decisions, fleet, now, policy.limits, slot)


def run(
    fleet_inputs: Sequence[ClaimInputs],
    policy: Policy,
    now: datetime,
    source: Source,
    fleet: FleetHistory,
    evidence: Mapping[str, StageEvidence] | None = None,
    *,
    slot: guards.RunSlot = guards.RunSlot(),
    from_git: bool = True,
) -> list[Decision]:
    """The whole pipeline for claims decided together (the simulator's step); a bad claim raises."""
    budget = guards.fleet_budget(fleet, now, policy.limits, slot)
    batch = decide(fleet_inputs, policy, now, source, budget, evidence or {}, from_git=from_git)
    if batch.failed:
        raise batch.failed[0][1]
    return limit(batch.decisions, fleet, now, policy, slot)
