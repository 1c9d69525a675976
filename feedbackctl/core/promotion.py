"""Promotion through stages: a later stage's wanted change runs in the earlier one first.

When the staging-validation guard blocks a change because the validating
claim has not run the value, and that claim opts in, sits at the same value
and its own guards allow the move, the change is made there instead (one
step, as usual); the later stage follows once the soak has passed. See
docs/validation.md. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from feedbackctl.core import guards
from feedbackctl.core.decide import ClaimInputs, guard_context
from feedbackctl.core.models import Decision, Note, Outcome
from feedbackctl.core.policy import Policy, Source
from feedbackctl.core.validation import RULE, StageEvidence, same

PROMOTION = "promotion"


def _promoted(d: Decision, earlier: ClaimInputs, soak: int) -> Decision:
    return Decision(
        earlier.claim.name,
        d.field,
        earlier.claim.value(d.field),
        Outcome.CHANGE,
        recommended=d.recommended,
        uncapped=d.recommended,
        direction=d.direction,
        confidence=d.confidence,
        rule=d.rule,
        source=d.source,
        evidence=d.evidence,
        notes=(
            Note(
                PROMOTION,
                "fired",
                f"{d.claim} wants spec.{d.field} {d.current} -> {d.recommended}; it runs in "
                f"{earlier.claim.name} first and {d.claim} follows after the {soak}m soak",
            ),
        ),
    )


def promote(
    decisions: Sequence[Decision],
    inputs: Mapping[str, ClaimInputs],
    evidence: Mapping[str, StageEvidence],
    policy: Policy,
    now: datetime,
    source: Source,
) -> list[Decision]:
    """``decisions`` with promotions into the validating claims that can take them.

    Only a validating claim at the later stage's current value is promoted
    (the stages move in step); one whose own signals already want a change of
    that field keeps its own decision.
    """
    out = list(decisions)
    index = {(d.claim, d.field): i for i, d in enumerate(out)}
    for d in decisions:
        ev = evidence.get(d.claim)
        if d.outcome != Outcome.BLOCKED or d.blocked_by != (RULE,) or ev is None:
            continue
        earlier = inputs.get(ev.claim)
        if earlier is None:
            continue
        current = earlier.claim.value(d.field)
        if not same(current, d.current) or same(current, d.recommended):
            continue
        i = index.get((ev.claim, d.field))
        if i is not None and out[i].outcome == Outcome.CHANGE:
            continue
        p = _promoted(d, earlier, ev.soak_minutes)
        baselines = {f: h.baseline for f, h in earlier.histories.items()}
        p = guards.guardrails(p, earlier.claim.spec, earlier.series, policy, now.timestamp(), baselines)
        if p.outcome == Outcome.CHANGE:
            ctx = guard_context(earlier, d.field, policy, now, source, evidence.get(ev.claim))
            p = guards.apply(ctx, p)
        if p.outcome != Outcome.CHANGE:
            continue
        if i is None:
            index[(ev.claim, d.field)] = len(out)
            out.append(p)
        else:
            out[i] = p
    return guards.one_change_per_claim(out, source)
