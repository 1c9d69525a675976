"""Which decisions become proposals, and why: the pure half of ``feedbackctl propose``.

A change needs a human when the guards route it to ``Outcome.PROPOSE`` (risk
above the ceiling, beyond the bounds or the baseline cap, a source that may only
propose), or when the claim is not opted in to auto-tune; ``--all`` adds every
change ``recommend`` would make. patterns/proposal_plan.py turns the candidates
into proposal branches (docs/propose.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from feedbackctl.core.decide import ClaimInputs, autotune, recommend
from feedbackctl.core.models import Decision, Outcome
from feedbackctl.core.policy import Policy, Source
from feedbackctl.core.proposal import REVIEW_REASONS
from feedbackctl.core.rules import RuleId


@dataclass(frozen=True)
class Candidate:
    """A decision that needs a human, and why (a key of ``REVIEW_REASONS``)."""

    decision: Decision
    reason: str
    proposer_type: str = "runtime-feedback"
    proposer_id: str | None = None


def passed_over_json(d: Decision, why: str = "") -> dict[str, Any]:
    """A decision that opened no branch, and why (``propose`` prints these when it opens nothing)."""
    outcome = "autotune" if why else d.outcome.value
    return {"claim": d.claim, "field": f"spec.{d.field}", "outcome": outcome, "reason": why or d.reason}


def review_reason(d: Decision) -> str:
    """The guard that routed ``d`` to a proposal."""
    for n in reversed(d.notes):
        if n.effect == "blocked" and n.rule in REVIEW_REASONS:
            return n.rule
    return RuleId.RISK_CEILING


def _opted_out(d: Decision) -> bool:
    """Stopped only because the claim (or this field) is not opted in to auto-tune."""
    return d.outcome == Outcome.BLOCKED and d.blocked_by[:1] == (RuleId.OPT_IN,)


def candidates_for(
    inputs: ClaimInputs,
    policy: Policy,
    now: datetime,
    source: Source,
    *,
    all_changes: bool,
    passed_over: list[dict[str, Any]] | None = None,
) -> list[Candidate]:
    """Every recommended change autotune will not apply; with ``all_changes`` also those it would.

    Not applied: claims (or fields) not opted in to auto-tune, and whatever
    the guards route to a human. Decisions that open nothing are appended to
    ``passed_over`` with their reason, so the run can say why.
    """
    tuned = autotune(inputs, policy, now, source)
    recommended = {d.field: d for d in recommend(inputs, policy, now, source)}
    out = []
    for d in tuned:
        if d.outcome == Outcome.PROPOSE and d.changes_value:
            out.append(Candidate(d, review_reason(d)))
            continue
        r = recommended.get(d.field)
        wanted = r is not None and r.outcome == Outcome.CHANGE and r.changes_value
        if r is not None and wanted and _opted_out(d):
            out.append(Candidate(r, RuleId.OPT_IN))
        elif r is not None and wanted and all_changes:
            out.append(Candidate(r, "requested"))
        elif passed_over is not None:
            if d.outcome == Outcome.CHANGE and d.changes_value:
                why = f"autotune applies {d.current} -> {d.recommended}; --all proposes it instead"
                passed_over.append(passed_over_json(d, why))
            else:
                # Not opted in: the guards never ran, the signals' own answer says why.
                passed_over.append(passed_over_json(r if _opted_out(d) and r is not None else d))
    return out
