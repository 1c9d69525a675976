"""The runaway guards, one named function each (README, "The runaway guards"; docs/design.md).

Every guard takes a decision and returns it unchanged, shaped (with a
``shaped`` note) or stopped (``blocked`` note; outcome BLOCKED, or PROPOSE
where the design says a human must decide instead). Blocked is an answer.

Order matters: opt-in and trust first (who may act at all), then the time
gates (flap freeze, cooldown, settling), then the size gates (step, bounds,
change cap), then the risk ceiling. The global rate limit runs last, across
all claims of a run. The guards before the size gates read only git, so
autotune runs them (and checks the fleet budget) before it reads a metric:
``settled_by_git`` (docs/cloudwatch.md, "Fetching only what a decision can use").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from feedbackctl.core import flap, validation
from feedbackctl.core.flap import FREEZE_LIFTING_KINDS as FREEZE_LIFTING_KINDS  # moved; re-exported
from feedbackctl.core.flap import reversals as reversals  # moved; re-exported

# The guardrails and the run-wide limits live in their own modules; many callers
# (decide, fleet, autotune, propose, recommend, tests) still name them here.
from feedbackctl.core.guardrails import guardrail_fields as guardrail_fields
from feedbackctl.core.guardrails import guardrail_spec as guardrail_spec
from feedbackctl.core.guardrails import guardrails as guardrails
from feedbackctl.core.models import (
    Acknowledgement,
    Claim,
    Decision,
    FieldChange,
    FieldHistory,
    Note,
    Outcome,
)
from feedbackctl.core.policy import Policy, Source
from feedbackctl.core.risk import claim_changes, classify
from feedbackctl.core.rules import RuleId
from feedbackctl.core.runlimits import Budget as Budget
from feedbackctl.core.runlimits import RunSlot as RunSlot
from feedbackctl.core.runlimits import fleet_budget as fleet_budget
from feedbackctl.core.runlimits import one_change_per_claim as one_change_per_claim
from feedbackctl.core.runlimits import proposal_limit as proposal_limit
from feedbackctl.core.runlimits import rate_limit as rate_limit
from feedbackctl.core.runlimits import rate_room as rate_room
from feedbackctl.core.runlimits import shard_share as shard_share
from feedbackctl.core.tuning import AutoTune


@dataclass(frozen=True)
class GuardContext:
    claim: Claim
    tuning: AutoTune
    policy: Policy
    history: FieldHistory
    claim_histories: Mapping[str, FieldHistory]
    now: datetime
    source: Source
    # The validating claim's evidence, for a claim in a later stage (None: unaffected).
    validation: validation.StageEvidence | None = None
    acknowledgement: Acknowledgement | None = None  # a human's ack of this field's proposal


def _shape(d: Decision, rule: str, detail: str, value: float) -> Decision:
    v = int(value) if float(value).is_integer() else value
    return replace(d, recommended=v, notes=d.notes + (Note(rule, "shaped", detail),))


def _minutes_since(now: datetime, then: datetime) -> float:
    return (now - then).total_seconds() / 60


# --- per-claim guards --------------------------------------------------------


def opt_in(ctx: GuardContext, d: Decision) -> Decision:
    if not ctx.tuning.enabled:
        return d.stopped(RuleId.OPT_IN, "claim has no spec.autoTune.enabled: true; use analyze or propose")
    if d.field not in ctx.tuning.bounds:
        return d.stopped(RuleId.OPT_IN, f"spec.autoTune sets no bounds for {d.field}; a human must add them")
    return d


def trust(ctx: GuardContext, d: Decision) -> Decision:
    s = ctx.source
    if not s.registered:
        # Not even a proposal: nobody said how far this source may be trusted (docs/sources.md).
        return d.stopped(
            RuleId.TRUST, f"source {s.name} is not in the feedback source registry; register it first"
        )
    allowed = ctx.tuning.sources
    if allowed and s.name not in allowed:
        return d.stopped(
            RuleId.TRUST,
            f"spec.autoTune.sources lets only {', '.join(allowed)} auto-tune this claim, not {s.name}",
            Outcome.PROPOSE,
        )
    if s.requires_proposal:
        return d.stopped(RuleId.TRUST, f"source {s.name} requires a proposal", Outcome.PROPOSE)
    if s.low_trust:
        return d.stopped(
            RuleId.TRUST, f"source {s.name} has {s.trust_level} trust; only proposals", Outcome.PROPOSE
        )
    return d


def shared_value(ctx: GuardContext, d: Decision) -> Decision:
    """A value set where several claims share it never auto-tunes (a batch edit: docs/design.md, risk 4)."""
    loc = ctx.claim.locations.get(f"spec.{d.field}")
    others = [n for n in (loc.shared_by if loc is not None else ()) if n != ctx.claim.name]
    if loc is None or not others:
        return d
    risk = classify(claim_changes(ctx.claim, d.field), ctx.policy.risk)
    return replace(
        d.stopped(
            RuleId.SHARED_VALUE,
            f"spec.{d.field} is set in {loc.path}:{loc.line}, shared with {', '.join(others)}: "
            f"editing it there is a batch change ({risk.level}: {risk.rationale}) and overriding it "
            "in one overlay is a structural edit; proposal only",
            Outcome.PROPOSE,
        ),
        risk=risk.level,
    )


def flap_freeze(ctx: GuardContext, d: Decision) -> Decision:
    """Nagios percent state change or too many reversals: no auto-tune until a human acts."""
    status = flap.flapping(ctx.history.changes, ctx.now, ctx.policy.limits)
    if status is not None:
        d = replace(d, notes=tuple(n for n in d.notes if n.rule != RuleId.FLAP_FREEZE))  # analyze's info note
        return d.stopped(
            RuleId.FLAP_FREEZE,
            f"flapping: {status.detail}; frozen until a human commits the field "
            f"or runs feedbackctl unfreeze {ctx.claim.name} {d.field}",
        )
    return d


def cooldown(ctx: GuardContext, d: Decision) -> Decision:
    minutes = ctx.tuning.cooldown_minutes
    if minutes is None:
        minutes = ctx.policy.limits.cooldown_minutes
    last = next((c for c in reversed(ctx.history.changes) if c.automated), None)
    if last is not None and _minutes_since(ctx.now, last.at) < minutes:
        ready = last.at + timedelta(minutes=minutes)
        return d.stopped(
            RuleId.COOLDOWN,
            f"last auto-tune {_minutes_since(ctx.now, last.at):.0f}m ago "
            f"({last.commit[:8]}); cooldown {minutes}m, next at {ready:%Y-%m-%dT%H:%MZ}",
        )
    return d


def last_source_act(
    histories: Iterable[FieldHistory], source: str, counts: Callable[[FieldChange], bool]
) -> FieldChange | None:
    """The newest change ``source`` made to a claim (any field), among the changes that ``counts``.

    What counts as an act is the caller's value: the guard counts only changes
    of a value (a recommendation sidecar names the source but changes nothing
    the metrics could react to); ``observe`` counts its recommendation markers
    too, since they are what an agent's cooldown spaces out.
    """
    last = None
    for h in histories:
        for c in h.changes:
            if counts(c) and c.source == source and (last is None or c.at > last.at):
                last = c
    return last


def source_cooling(now: datetime, last: FieldChange | None, cooldown_minutes: int) -> float | None:
    """Minutes since ``last`` while the source's cooldown still runs; None when it may act."""
    if last is None or now - last.at >= timedelta(minutes=cooldown_minutes):
        return None
    return _minutes_since(now, last.at)


def _changes_a_value(c: FieldChange) -> bool:
    return c.old != c.new


def source_cooldown(ctx: GuardContext, d: Decision) -> Decision:
    s = ctx.source
    last = last_source_act(ctx.claim_histories.values(), s.name, _changes_a_value)
    ago = source_cooling(ctx.now, last, s.cooldown_minutes)
    if ago is not None:
        return d.stopped(
            RuleId.SOURCE_COOLDOWN,
            f"source {s.name} changed this claim {ago:.0f}m ago; its cooldown is {s.cooldown_minutes}m",
        )
    return d


def settling(ctx: GuardContext, d: Decision) -> Decision:
    minutes = ctx.policy.limits.settling_minutes
    last = ctx.history.last_change
    if last is not None and _minutes_since(ctx.now, last.at) < minutes:
        who = "a human" if last.kind == "human" else last.kind
        return d.stopped(
            RuleId.SETTLING,
            f"{d.field} was changed by {who} "
            f"{_minutes_since(ctx.now, last.at):.0f}m ago ({last.commit[:8]}); "
            f"metrics settle for {minutes}m",
        )
    return d


def _step_of(ctx: GuardContext, field_name: str) -> float:
    b = ctx.tuning.bounds.get(field_name)
    if b is not None and b.step is not None:
        return b.step
    return ctx.policy.fields[field_name].step


def step_limit(ctx: GuardContext, d: Decision) -> Decision:
    current, target = float(d.current), float(d.recommended)  # type: ignore[arg-type]
    step = _step_of(ctx, d.field)
    if abs(target - current) <= step:
        return d
    stepped = current + step if target > current else current - step
    return _shape(d, RuleId.STEP_LIMIT, f"one step of {step:g} per action (wanted {target:g})", stepped)


def bounds(ctx: GuardContext, d: Decision) -> Decision:
    b = ctx.tuning.bounds[d.field]
    current, target = float(d.current), float(d.recommended)  # type: ignore[arg-type]
    if not b.min <= current <= b.max:
        # Set outside the bounds by a human or a drift capture: moving it back
        # in could take more than one step, and the bounds may be what is wrong.
        return replace(
            d.stopped(
                RuleId.BOUNDS,
                f"{d.field} is {current:g}, outside the bounds {b.min:g}-{b.max:g}; "
                "auto-tune acts only inside them, a human must reconcile",
                Outcome.PROPOSE,
            ),
            recommended=d.uncapped,
        )
    clamped = min(max(target, b.min), b.max)
    if clamped == target:
        return d
    edge = "upper" if target > b.max else "lower"
    if clamped == current or (target > current) != (clamped > current):
        return replace(
            d.stopped(
                RuleId.BOUNDS,
                f"at bound: {d.field} is {current:g}, at or past the {edge} bound "
                f"{clamped:g}; going to {d.uncapped} needs a human",
                Outcome.PROPOSE,
            ),
            recommended=d.uncapped,
        )
    return _shape(
        d, RuleId.BOUNDS, f"capped to the {edge} bound {clamped:g} (uncapped {d.uncapped})", clamped
    )


def change_cap(ctx: GuardContext, d: Decision) -> Decision:
    lim = ctx.policy.limits
    baseline = ctx.history.baseline
    if isinstance(baseline, bool) or not isinstance(baseline, int | float):
        baseline = d.current
    base = float(baseline)  # type: ignore[arg-type]
    lo, hi = base * lim.cap_down, base * lim.cap_up
    current, target = float(d.current), float(d.recommended)  # type: ignore[arg-type]
    if lo <= target <= hi and lo <= current <= hi:
        return d
    capped = min(max(target, lo), hi)
    # Shaping may only shorten a move that starts inside the cap; a value already
    # outside it (drift capture, an old change) goes back to a human.
    if lo <= current <= hi and capped != current:
        return _shape(
            d,
            RuleId.CHANGE_CAP,
            f"capped to {capped:g}, {lim.cap_up:g}x/{lim.cap_down:g}x of the baseline {base:g}",
            capped,
        )
    return replace(
        d.stopped(
            RuleId.CHANGE_CAP,
            f"{current:g} -> {target:g} leaves {lim.cap_down:g}x-{lim.cap_up:g}x of "
            f"the baseline {base:g}; needs a proposal",
            Outcome.PROPOSE,
        ),
        recommended=d.uncapped,
    )


def risk_ceiling(ctx: GuardContext, d: Decision) -> Decision:
    risk = classify(claim_changes(ctx.claim, d.field), ctx.policy.risk)
    d = replace(d, risk=risk.level)
    if not risk.at_most(ctx.policy.limits.auto_apply_ceiling):
        ack = ctx.acknowledgement
        # An ack lifts this one guard, for MEDIUM only (HIGH never auto-applies),
        # and only for the part of the acknowledged move the guards above let through.
        if risk.level == "MEDIUM" and ack is not None and ack.covers(d.current, d.recommended):
            note = Note(
                RuleId.RISK_CEILING,
                "info",
                f"MEDIUM ({risk.rationale}) acknowledged by {ack.by} in {ack.commit[:10]} "
                f"for {ack.old} -> {ack.new}; applied and announced",
            )
            return replace(d, acknowledged=ack.commit, notes=d.notes + (note,))
        return d.stopped(
            RuleId.RISK_CEILING,
            f"{risk.level} risk ({risk.rationale}) is above the "
            f"auto-apply ceiling {ctx.policy.limits.auto_apply_ceiling}",
            Outcome.PROPOSE,
        )
    if risk.level == "MEDIUM":
        return replace(
            d,
            notes=d.notes
            + (Note(RuleId.RISK_CEILING, "info", f"MEDIUM auto-apply announced ({risk.rationale})"),),
        )
    return d


def staging_validation(ctx: GuardContext, d: Decision) -> Decision:
    """A later stage takes only a value its validating claim ran for the soak, healthily."""
    return validated_stage(d, ctx.validation, ctx.policy, ctx.now)


def validated_stage(
    d: Decision, evidence: validation.StageEvidence | None, policy: Policy, now: datetime
) -> Decision:
    """The staging-validation judgement of one change (also for changes a human acknowledged)."""
    if evidence is None or d.outcome != Outcome.CHANGE or d.validated_in is not None:
        return d
    verdict = validation.assess(evidence, d.field, d.recommended, policy, now)
    if not verdict.validated:
        return d.stopped(validation.RULE, verdict.detail)
    note = Note(validation.RULE, "info", verdict.detail)
    return replace(d, validated_in=verdict.ref, notes=d.notes + (note,))


PER_CLAIM_GUARDS: tuple[Callable[[GuardContext, Decision], Decision], ...] = (
    trust,
    opt_in,
    shared_value,
    flap_freeze,
    cooldown,
    source_cooldown,
    settling,
    step_limit,
    # The human's bounds speak first: a value at its bound is reported "at bound"
    # even when the change cap would stop the same move.
    bounds,
    change_cap,
    risk_ceiling,
    # Last: it judges the value every other guard has shaped, and a change that
    # needs a proposal anyway stays a proposal (propose reports the evidence).
    staging_validation,
)
# Guards that explain why a field with no fresh data cannot act yet.
TIME_GATES = (flap_freeze, cooldown, settling)
# The head of PER_CLAIM_GUARDS: guards that read only git (the claim, its
# autoTune block, its history, the source's registry entry), never a metric.
GIT_ONLY_GUARDS = PER_CLAIM_GUARDS[: PER_CLAIM_GUARDS.index(step_limit)]


def settled_by_git(ctx: GuardContext, d: Decision, budget: Budget | None = None) -> Decision | None:
    """``d`` (a would-be change) stopped by a guard that reads only git, or None: the metrics decide.

    A field blocked here cannot act whatever its metrics say. A guard that
    turns the change into a proposal (trust, shared value) does not settle it:
    what a proposal proposes comes from the metrics. A spent fleet budget
    (the rate limit, which runs last) blocks every field that got this far.
    """
    for guard in GIT_ONLY_GUARDS:
        d = guard(ctx, d)
        if d.outcome == Outcome.BLOCKED:
            return d
        if d.outcome != Outcome.CHANGE:
            return None
    if budget is not None and budget.left == 0:
        return d.stopped(RuleId.RATE_LIMIT, budget.detail)
    return None


def apply(ctx: GuardContext, d: Decision) -> Decision:
    if d.outcome == Outcome.CHANGE:
        for guard in PER_CLAIM_GUARDS:
            d = guard(ctx, d)
            if d.outcome != Outcome.CHANGE:
                return d
        if d.recommended == d.current:
            return d.stopped(RuleId.BOUNDS, "no room to move inside the bounds")
        return d
    if d.outcome in (Outcome.NOT_ENOUGH_DATA, Outcome.HOLD) and ctx.tuning.allows(d.field):
        # Data held back by a recent change: say which gate is holding it.
        for guard in TIME_GATES:
            gated = guard(ctx, replace(d, outcome=Outcome.CHANGE))
            if gated.outcome != Outcome.CHANGE:
                return replace(gated, outcome=Outcome.BLOCKED)
    return d
