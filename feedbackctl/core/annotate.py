"""What a made decision is told before it leaves the core: units, risk, the flap note.

Also ``PolicyView``: what ``recommend`` would otherwise ask a policy again for
every claim, field and rule of a fleet (the rules of a field in the order they
are tried, each metric's limits, each metric's unit, a field's risk), worked
out once per policy (docs/performance.md). Policies are frozen, so a view
never goes stale; it is keyed by the policy object itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from feedbackctl.core import flap
from feedbackctl.core.models import Claim, Decision, Evidence, FieldHistory, Note
from feedbackctl.core.policy import Limits, Policy, Rule
from feedbackctl.core.risk import RiskAssessment, claim_changes, classify
from feedbackctl.core.rules import RuleId


@dataclass(frozen=True)
class PolicyView:
    policy: Policy
    fields: tuple[str, ...]  # policy.tuned_fields
    rules: Mapping[str, tuple[Rule, ...]]  # field -> its rules, increases first
    limits: Mapping[str, Limits]  # metric -> policy.limits_for(metric)
    units: Mapping[str, str]  # metric -> its unit
    # (field, production, claims changed) -> classify(...): nothing else of a change counts there.
    risks: dict[tuple[str, bool, int], RiskAssessment] = field(default_factory=dict)

    def rules_for(self, field_name: str) -> tuple[Rule, ...]:
        got = self.rules.get(field_name)
        return got if got is not None else _in_order(self.policy.rules_for(field_name))

    def limits_for(self, metric: str) -> Limits:
        got = self.limits.get(metric)
        return got if got is not None else self.policy.limits_for(metric)


def _in_order(rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
    return tuple(sorted(rules, key=lambda r: r.direction != "increase"))


# id(policy) -> (the policy, its view); the policy is held so its id cannot be reused.
_VIEWS: dict[int, tuple[Policy, PolicyView]] = {}
_MAX_VIEWS = 16


def view(policy: Policy) -> PolicyView:
    got = _VIEWS.get(id(policy))
    if got is not None and got[0] is policy:
        return got[1]
    made = PolicyView(
        policy,
        policy.tuned_fields,
        {f: _in_order(policy.rules_for(f)) for f in policy.tuned_fields},
        {m: policy.limits_for(m) for m in policy.metrics},
        {m: p.unit for m, p in policy.metrics.items()},
    )
    if len(_VIEWS) >= _MAX_VIEWS:
        _VIEWS.clear()
    _VIEWS[id(policy)] = (policy, made)
    return made


def with_units(evidence: tuple[Evidence, ...], policy: Policy) -> tuple[Evidence, ...]:
    """Evidence carries its metric's unit, so summaries and trailers say ms, MB, % or USD."""
    if not evidence:
        return evidence
    units = view(policy).units
    if not any(units.get(e.metric) for e in evidence):
        return evidence
    # Evidence(...) with every field rather than dataclasses.replace: several times cheaper.
    unit = units.get
    return tuple(
        Evidence(e.metric, e.statistic, e.window_minutes, e.points, e.value, e.threshold, unit(e.metric, ""))
        for e in evidence
    )


Histories = Mapping[str, FieldHistory]


def field_flap_note(field_name: str, histories: Histories, policy: Policy, now: datetime) -> Note | None:
    """Say so when the field is flapping (autotune's flap-freeze guard then blocks it)."""
    history = histories.get(field_name)
    if history is None:
        return None
    status = flap.flapping(history.changes, now, policy.limits)
    if status is None:
        return None
    return Note(RuleId.FLAP_FREEZE, "info", f"flapping: {status.detail}; auto-tune of this field is frozen")


def with_flap(d: Decision, histories: Histories, policy: Policy, now: datetime) -> Decision:
    note = field_flap_note(d.field, histories, policy, now)
    return d if note is None else replace(d, notes=d.notes + (note,))


def risk_of(d: Decision, claim: Claim, policy: Policy) -> tuple[str, Note | None]:
    """The risk level of changing ``d``'s field, and a note when the value is shared."""
    return risk_level(claim, d.field, d.changes_value, view(policy))


def risk_level(
    claim: Claim, field_name: str, changes_value: bool, seen: PolicyView
) -> tuple[str, Note | None]:
    """``risk_of`` a decision on ``field_name`` that does (or does not) change its value
    (``seen``: the policy's view, which the caller has at hand)."""
    memo = seen.risks
    loc = claim.locations.get(f"spec.{field_name}")
    if loc is None or not loc.shared_by:
        # The claim alone changes: no Change list to build unless the level is not known yet.
        risk = memo.get((field_name, claim.is_production, 1))
        if risk is not None:
            return risk.level, None
    changes = claim_changes(claim, field_name)
    # Every change here is the same field of equally production claims: only their count varies.
    key = (field_name, changes[0].production, len(changes))
    risk = memo.get(key)
    if risk is None:
        risk = memo[key] = classify(changes, seen.policy.risk)
    if len(changes) > 1 and changes_value:
        others = ", ".join(c.claim for c in changes[1:])
        note = Note(
            RuleId.SHARED_VALUE,
            "info",
            f"the value is shared with {others}: a change is a batch ({risk.rationale})",
        )
        return risk.level, note
    return risk.level, None


def with_risk(d: Decision, claim: Claim, policy: Policy) -> Decision:
    level, note = risk_of(d, claim, policy)
    return replace(d, risk=level, notes=d.notes + ((note,) if note is not None else ()))
