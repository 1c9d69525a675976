"""Risk classification of a change (SPEC section 4, the seed's risk taxonomy).

LOW < MEDIUM < HIGH. Base risk per field; elevators: production +1;
deletion, cross-account or security-related -> HIGH; fields from 2+ concerns
+1; a batch of 2-5 claims +1, 6+ claims -> HIGH; capped at HIGH.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from feedbackctl.core.models import Claim
from feedbackctl.core.policy import RISK_LEVELS, RiskPolicy


@dataclass(frozen=True)
class Change:
    """One field of one claim changing (``field`` None for a whole-claim deletion)."""

    claim: str
    field: str | None
    production: bool
    deletion: bool = False
    cross_account: bool = False


@dataclass(frozen=True)
class RiskAssessment:
    level: str
    rationale: str

    def at_most(self, ceiling: str) -> bool:
        return RISK_LEVELS.index(self.level) <= RISK_LEVELS.index(ceiling)


def claim_changes(claim: Claim, field: str) -> list[Change]:
    """Changing one field of ``claim``, plus every claim that shares where it is set.

    A value set in a Kustomize base shared by several overlays changes all of
    them at once: a batch (the sharing claims are assumed to be as production
    as this one; the core does not see their environments).
    """
    loc = claim.locations.get(f"spec.{field}")
    names = dict.fromkeys([claim.name, *(loc.shared_by if loc is not None else ())])
    return [Change(name, field, claim.is_production) for name in names]


def _raise(level: str, by: int = 1) -> str:
    return RISK_LEVELS[min(len(RISK_LEVELS) - 1, RISK_LEVELS.index(level) + by)]


def classify(changes: Sequence[Change], policy: RiskPolicy) -> RiskAssessment:
    if not changes:
        return RiskAssessment("LOW", "no change")
    fields = {c.field for c in changes if c.field is not None}
    bases = [policy.fields[f].base if f in policy.fields else policy.unknown_field for f in fields]
    level = max(bases, key=RISK_LEVELS.index) if bases else "LOW"
    reasons = [f"{level} base"]
    unknown = sorted(f for f in fields if f not in policy.fields)
    if unknown:
        reasons[0] += f" (unknown field {', '.join(unknown)})"

    forced = []
    if any(c.deletion for c in changes):
        forced.append("deletion")
    if any(c.cross_account for c in changes):
        forced.append("cross-account")
    if fields & policy.security_fields:
        forced.append("security-related")
    if forced:
        return RiskAssessment("HIGH", " + ".join(reasons + [f"{f} -> HIGH" for f in forced]))

    if any(c.production for c in changes):
        level = _raise(level)
        reasons.append("prod elevator")
    concerns = {policy.fields[f].concern for f in fields if f in policy.fields}
    concerns |= {f"unknown:{f}" for f in unknown}
    if len(concerns) >= 2:
        level = _raise(level)
        reasons.append(f"{len(concerns)} concerns elevator")
    claims = {c.claim for c in changes}
    if len(claims) >= 6:
        level = "HIGH"
        reasons.append(f"batch of {len(claims)} claims -> HIGH")
    elif len(claims) >= 2:
        level = _raise(level)
        reasons.append(f"batch of {len(claims)} claims elevator")
    return RiskAssessment(level, " + ".join(reasons))
