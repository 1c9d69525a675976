"""Risk classification of a change (docs/propose.md, "Risk classification").

LOW < MEDIUM < HIGH. Base risk per field; elevators: production +1;
deletion, cross-account or security-related -> HIGH; fields from 2+ concerns
+1; a batch of 2-5 claims +1, 6+ claims -> HIGH; capped at HIGH.

Policy checks (schema: type, minimum, maximum) run before classification and
always block: ``assess`` never classifies a change that violates them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from feedbackctl.core.models import Claim, Scalar
from feedbackctl.core.policy import RISK_LEVELS, FieldPolicy, RiskPolicy


@dataclass(frozen=True)
class Change:
    """One field of one claim changing (``field`` None for a whole-claim deletion).

    ``value`` is the value the field would get; policy checks need it,
    classification does not.
    """

    claim: str
    field: str | None
    production: bool
    deletion: bool = False
    cross_account: bool = False
    value: Scalar = None


@dataclass(frozen=True)
class Violation:
    """A policy (schema) rule a change breaks; it always blocks."""

    claim: str
    field: str
    rule: str  # e.g. schema.maximum
    detail: str

    @property
    def message(self) -> str:
        return f"{self.claim}: spec.{self.field}: {self.rule}: {self.detail}"


@dataclass(frozen=True)
class RiskAssessment:
    level: str
    rationale: str
    violations: tuple[Violation, ...] = ()

    @property
    def blocked(self) -> bool:
        return bool(self.violations)

    @property
    def policy_result(self) -> str:
        """One line for records: ``passed`` or ``blocked: <first violation>``."""
        if not self.violations:
            return "passed"
        first = self.violations[0]
        more = f" (+{len(self.violations) - 1} more)" if len(self.violations) > 1 else ""
        return f"blocked: {first.rule}: {first.detail}{more}"

    def at_most(self, ceiling: str) -> bool:
        return not self.blocked and RISK_LEVELS.index(self.level) <= RISK_LEVELS.index(ceiling)


# A further schema check (e.g. an XRD's openAPIV3Schema) plugs in here.
SchemaCheck = Callable[[Change], Sequence[Violation]]


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


def check_field_policy(change: Change, fields: Mapping[str, FieldPolicy]) -> list[Violation]:
    """The policy's own schema for a tuned field: a finite number inside min..max."""
    fp = fields.get(change.field or "")
    if fp is None or change.deletion or change.field is None:
        return []
    v = change.value
    name = change.field
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return [Violation(change.claim, name, "schema.type", f"{v!r} is not a finite number")]
    unit = f" {fp.unit}" if fp.unit else ""
    if v < fp.min:
        return [Violation(change.claim, name, "schema.minimum", f"{v:g} is below {fp.min:g}{unit}")]
    if v > fp.max:
        return [Violation(change.claim, name, "schema.maximum", f"{v:g} is above {fp.max:g}{unit}")]
    return []


def check_policy(
    changes: Sequence[Change], fields: Mapping[str, FieldPolicy], checks: Sequence[SchemaCheck] = ()
) -> tuple[Violation, ...]:
    found: list[Violation] = []
    for c in changes:
        found += check_field_policy(c, fields)
        for check in checks:
            found += check(c)
    return tuple(found)


def assess(
    changes: Sequence[Change],
    risk: RiskPolicy,
    fields: Mapping[str, FieldPolicy],
    checks: Sequence[SchemaCheck] = (),
) -> RiskAssessment:
    """Policy checks first (they always block), then the taxonomy."""
    violations = check_policy(changes, fields, checks)
    if violations:
        return RiskAssessment("HIGH", f"blocked by policy: {violations[0].message}", violations)
    return classify(changes, risk)


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
