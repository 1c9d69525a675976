"""The pure decision core: claim + policy + series + history + now -> decisions.

``recommend`` answers "what do the signals say about each tuned field?"
(used by ``analyze`` and as the first stage of everything else).
``autotune`` runs the recommendation through the runaway guards in
``guards.py``. Nothing here touches git, AWS, files, the clock or a terminal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from feedbackctl.core import guards
from feedbackctl.core.annotate import (
    PolicyView,
    field_flap_note,
    risk_level,
    view,
    with_flap,
    with_risk,
    with_units,
)
from feedbackctl.core.guardrails import guardrail_stop
from feedbackctl.core.models import (
    Acknowledgement,
    Claim,
    Decision,
    Direction,
    Evidence,
    FieldHistory,
    Note,
    Outcome,
    Series,
)
from feedbackctl.core.policy import Policy, Rule, Source
from feedbackctl.core.rules import RuleId
from feedbackctl.core.schema import value_range
from feedbackctl.core.signals import WindowCheck, Windows, round_to_step, size_from_usage
from feedbackctl.core.tuning import AutoTune, parse_autotune
from feedbackctl.core.validation import StageEvidence
from feedbackctl.errors import ClaimError

SIZING_LOOKBACK_MINUTES = 7 * 24 * 60
# Low-trust sources must show a signal for longer (the design's "what signals to trust", docs/design.md).
TRUST_WINDOW_FACTOR = {"high": 1, "medium": 1, "low": 2, "very-low": 4}


@dataclass(frozen=True)
class ClaimInputs:
    """Everything the core needs to know about one claim."""

    claim: Claim
    series: Mapping[str, Series] = field(default_factory=dict)
    histories: Mapping[str, FieldHistory] = field(default_factory=dict)
    # Metrics whose series could not be read: metric -> one line naming the file and line.
    unreadable: Mapping[str, str] = field(default_factory=dict)
    # Acks recorded on the authority branch, by field: an input like any other.
    acknowledgements: Mapping[str, Acknowledgement] = field(default_factory=dict)

    def unknown(self, metric: str, detail: str) -> str:
        """``detail``, or why ``metric`` is unknown when its series was unreadable."""
        bad = self.unreadable.get(metric)
        return f"{metric} unreadable: {bad}" if bad else detail


def _number(claim: Claim, name: str) -> float | None:
    value = claim.value(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ClaimError(claim.name, f"spec.{name} is {value!r}, expected a number; fix the claim")
    if value != value or value < 0:
        raise ClaimError(claim.name, f"spec.{name} is {value!r}, expected a non-negative number")
    return float(value)


def _as_value(x: float) -> int | float:
    return int(x) if float(x).is_integer() else round(x, 3)


def valid_from(metric: str, inputs: ClaimInputs, policy: Policy) -> float:
    """First instant whose ``metric`` describes the current configuration.

    The coupling trap: memory_utilization is used/configured, so points from
    before the last change of lambdaMemory (plus settling) must not count.
    """
    return Since(inputs, policy).of(metric)


class Since:
    """``valid_from`` of one claim's metrics, each worked out once: every rule and field of a
    claim asks again, and metrics coupled to the same field share its last change."""

    __slots__ = ("_inputs", "_policy", "_metrics", "_changed")

    def __init__(self, inputs: ClaimInputs, policy: Policy) -> None:
        self._inputs, self._policy = inputs, policy
        self._metrics: dict[str, float] = {}
        self._changed: dict[str, float | None] = {}  # field -> when its value last moved

    def of(self, metric: str) -> float:
        start = self._metrics.get(metric)
        if start is not None:
            return start
        start = float("-inf")
        mp = self._policy.metrics.get(metric)
        for coupled in mp.coupled_to if mp else ():
            if coupled in self._changed:
                at = self._changed[coupled]
            else:
                last = self._inputs.histories.get(coupled)
                change = last.last_change if last else None
                at = self._changed[coupled] = change.at.timestamp() if change is not None else None
            if at is not None:
                start = max(start, at + self._policy.limits.settling_minutes * 60)
        self._metrics[metric] = start
        return start


def _threshold_for(rule: Rule, tuning: AutoTune) -> tuple[float | None, int]:
    """The claim's own trigger overrides the policy rule it names."""
    t = tuning.trigger
    if (
        t is not None
        and rule.direction == "increase"
        and rule.field in tuning.bounds
        and t.metric == rule.when.metric
        and rule.when.relative_to is None
    ):
        return t.threshold, t.sustained_minutes
    return None, rule.sustained_minutes


def _confidence(check: WindowCheck, inputs: ClaimInputs, metric: str, vf: float, now: float) -> float:
    """0.5 for a rule that held, up to +0.35 for 7 days of data, +0.15 for a clear margin."""
    ev = check.evidence
    series = inputs.series.get(metric)
    if ev is None or series is None or len(series) == 0:
        return 0.0
    first = max(float(series.ts[0]), vf)
    span = min(1.0, max(0.0, now - first) / (SIZING_LOOKBACK_MINUTES * 60))
    margin = 0.0
    if ev.threshold:
        margin = min(1.0, abs(ev.value - ev.threshold) / ev.threshold / 0.1)
    return round(min(0.99, 0.5 + 0.35 * span + 0.15 * margin), 2)


def _made(
    inputs: ClaimInputs,
    seen: PolicyView,
    now: datetime,
    name: str,
    value: int | float,
    outcome: Outcome,
    source: Source,
    notes: list[Note],
    evidence: list[Evidence] | None = None,
    recommended: int | float | None = None,
    uncapped: int | float | None = None,
    direction: Direction | None = None,
    confidence: float = 0.0,
    rule: str | None = None,
) -> Decision:
    """The decision with its units, risk and flap note, built once: this runs per claim and field."""
    changes_value = outcome in (Outcome.CHANGE, Outcome.PROPOSE) and recommended != value
    level, shared = risk_level(inputs.claim, name, changes_value, seen)
    if shared is not None:
        notes.append(shared)
    flapping = field_flap_note(name, inputs.histories, seen.policy, now)
    if flapping is not None:
        notes.append(flapping)
    return Decision(
        inputs.claim.name, name, value, outcome, recommended, uncapped, direction, confidence, rule,
        source.name, level, with_units(tuple(evidence), seen.policy) if evidence else (), tuple(notes),
    )  # fmt: skip


def trigger_check(
    inputs: ClaimInputs,
    policy: Policy,
    tuning: AutoTune,
    rule: Rule,
    now: float,
    source: Source,
    since: Since | None = None,
) -> tuple[WindowCheck, float]:
    """Does ``rule``'s own condition (its trigger) hold? With the instant its data counts from.

    Only a rule whose trigger holds reads its other metrics (``also``, sizing)
    and the guardrails; autotune's fetch plan asks for those only then.
    """
    return _trigger(
        inputs,
        view(policy),
        tuning,
        rule,
        TRUST_WINDOW_FACTOR.get(source.trust_level, 1),
        since if since is not None else Since(inputs, policy),
        Windows(inputs.series, now),
    )


def _trigger(
    inputs: ClaimInputs,
    seen: PolicyView,
    tuning: AutoTune,
    rule: Rule,
    factor: int,
    since: Since,
    windows: Windows,
) -> tuple[WindowCheck, float]:
    """``trigger_check`` with what one claim's evaluation has at hand (``windows``: its series at now)."""
    threshold, window = _threshold_for(rule, tuning)
    vf = since.of(rule.when.metric)
    check = windows.check(
        rule.when,
        inputs.claim.spec,
        window_minutes=window * factor,
        valid_from=vf,
        limits=seen.limits_for(rule.when.metric),
        threshold=threshold,
    )
    return check, vf


def _recommend_field(
    inputs: ClaimInputs,
    policy: Policy,
    tuning: AutoTune,
    name: str,
    now: datetime,
    source: Source,
    since: Since,
    windows: Windows,
) -> Decision | None:
    claim = inputs.claim
    current = _number(claim, name)
    if current is None:
        return None
    ts = windows.now
    fp = policy.fields[name]
    notes: list[Note] = []
    evidence: list[Evidence] = []
    fired: tuple[Rule, WindowCheck, float, list[WindowCheck]] | None = None
    any_enough = False
    factor = TRUST_WINDOW_FACTOR.get(source.trust_level, 1)
    seen = view(policy)
    for rule in seen.rules_for(name):
        check, vf = _trigger(inputs, seen, tuning, rule, factor, since, windows)
        any_enough = any_enough or check.enough
        if not check.holds:
            notes.append(Note(rule.name, "info", inputs.unknown(rule.when.metric, check.detail)))
            continue
        if fired is not None:
            continue
        # Multi-metric rules: every further condition must hold too, each on its own window.
        extra = [
            windows.check(
                a.when,
                claim.spec,
                window_minutes=(a.sustained_minutes or rule.sustained_minutes) * factor,
                valid_from=since.of(a.when.metric),
                limits=seen.limits_for(a.when.metric),
            )
            for a in rule.also
        ]
        unmet = next(((a, c) for a, c in zip(rule.also, extra, strict=True) if not c.holds), None)
        if unmet is not None:
            why = inputs.unknown(unmet[0].when.metric, unmet[1].detail)
            notes.append(Note(rule.name, "info", f"{check.detail}, but {why}"))
            continue
        fired = (rule, check, vf, extra)
    value = _as_value(current)
    if fired is None:
        outcome = Outcome.HOLD if any_enough else Outcome.NOT_ENOUGH_DATA
        return _made(inputs, seen, now, name, value, outcome, source, notes)

    rule, check, vf, extra = fired
    assert check.evidence is not None
    evidence.append(check.evidence)
    evidence.extend(c.evidence for c in extra if c.evidence is not None)
    notes.insert(0, Note(rule.name, "fired", " and ".join([check.detail, *(c.detail for c in extra)])))
    direction: Direction = rule.direction
    target: float | None = None
    if rule.size is not None:
        sized = size_from_usage(
            rule.size,
            inputs.series.get(rule.size.metric),
            now=ts,
            valid_from=since.of(rule.size.metric),
            lookback_minutes=SIZING_LOOKBACK_MINUTES,
        )
        if sized is not None:
            raw, size_ev = sized
            evidence.append(size_ev)
            if direction == "increase" and raw <= current:
                # Utilisation says pressure, absolute usage says it fits: one of the
                # two is wrong (a mis-scaled metric, functions of different sizes),
                # and stepping on the relative one alone is how memory ratchets.
                disagree = Note(
                    "signals-disagree",
                    "info",
                    f"{rule.name}: {check.detail}, but peak {rule.size.metric} {size_ev.value:.4g} + "
                    f"{rule.size.margin:.0%} margin = {raw:.4g} fits in the current {current:g}; "
                    "holding until they agree",
                )
                return _made(
                    inputs, seen, now, name, value, Outcome.HOLD, source, [disagree, *notes[1:]], evidence
                )
            target = round_to_step(raw, fp.step, direction)
            notes.append(
                Note(
                    "sizing",
                    "shaped",
                    f"peak {rule.size.metric} {size_ev.value:.4g} + "
                    f"{rule.size.margin:.0%} margin, rounded to {fp.step:g}{fp.unit} -> "
                    f"{target:g}",
                )
            )
    if target is None:
        target = current + fp.step if direction == "increase" else current - fp.step
        usage = "no absolute usage data"
        if rule.size is not None:
            usage = inputs.unknown(rule.size.metric, usage)
        notes.append(Note("sizing", "shaped", f"{usage}; one step of {fp.step:g}"))
    if direction == "decrease" and target >= current:
        notes.append(Note("sizing", "info", f"already right-sized: usage needs {target:g}"))
        return _made(inputs, seen, now, name, value, Outcome.HOLD, source, notes, evidence)
    wanted = target
    limits = value_range(claim.schema.get(name, ()), fp.min, fp.max, f"policy fields.{name}")
    clamped = min(max(target, limits.low), limits.high)
    if limits.integer and not float(clamped).is_integer():
        clamped = float(math.ceil(clamped) if direction == "increase" else math.floor(clamped))
        clamped = min(max(clamped, limits.low), limits.high)
    if clamped != target:
        notes.append(
            Note(
                RuleId.SCHEMA,
                "shaped",
                f"clamped to the schema range {limits.low:g}-{limits.high:g} "
                f"({limits.high_rule if target > clamped else limits.low_rule}); wanted {wanted:g}",
            )
        )
        target = clamped
    conf = _confidence(check, inputs, rule.when.metric, vf, ts)
    recommended, uncapped = _as_value(target), _as_value(wanted)
    outcome = Outcome.CHANGE
    if (target <= current) if direction == "increase" else (target >= current):
        limit = limits.high_rule if direction == "increase" else limits.low_rule
        why = (
            f"already at the limit, wanted {wanted:g}"
            if target == current
            else f"the current {current:g} is already outside it; fix the claim by hand"
        )
        notes.append(Note(RuleId.SCHEMA, "blocked", f"spec.{name} {limit}: {why}"))
        outcome, recommended = Outcome.BLOCKED, value
    else:
        baselines = {f: h.baseline for f, h in inputs.histories.items()}
        stop = guardrail_stop(direction, claim.spec, windows, policy, baselines, inputs.unknown)
        if stop is not None:
            notes.append(Note(stop[0], "blocked", stop[1]))
            outcome = Outcome.BLOCKED
    return _made(
        inputs, seen, now, name, value, outcome, source, notes, evidence, recommended, uncapped, direction,
        conf, rule.name,
    )  # fmt: skip


def recommend(inputs: ClaimInputs, policy: Policy, now: datetime, source: Source) -> list[Decision]:
    """One decision per tuned field the claim sets (analyze's answer)."""
    tuning = parse_autotune(inputs.claim)
    since = Since(inputs, policy)
    windows = Windows(inputs.series, now.timestamp())
    out = []
    for name in view(policy).fields:
        d = _recommend_field(inputs, policy, tuning, name, now, source, since, windows)
        if d is not None:
            out.append(d)
    return out


def guard_context(
    inputs: ClaimInputs,
    field_name: str,
    policy: Policy,
    now: datetime,
    source: Source,
    validation: StageEvidence | None = None,
) -> guards.GuardContext:
    return guards.GuardContext(
        claim=inputs.claim,
        tuning=parse_autotune(inputs.claim),
        policy=policy,
        history=inputs.histories.get(field_name, FieldHistory(inputs.claim.name, field_name)),
        claim_histories=inputs.histories,
        now=now,
        source=source,
        validation=validation,
        acknowledgement=inputs.acknowledgements.get(field_name),
    )


def autotune(
    inputs: ClaimInputs,
    policy: Policy,
    now: datetime,
    source: Source,
    validation: StageEvidence | None = None,
    *,
    budget: guards.Budget | None = None,
    from_git: bool = True,
) -> list[Decision]:
    """Recommendations passed through every per-claim runaway guard.

    ``validation`` is the evidence about the claim's validating claim when it
    is in a later promotion stage (docs/validation.md). ``budget`` is what the
    fleet's rate limit leaves this run (None: not known here, the fleet guard
    judges it later); when it is spent, no field reads a metric. Without
    ``from_git`` (simulate, where every metric is free) a field a git-only
    guard blocks is still recommended first, so the decision says which rule
    wanted to act; the same fields are blocked either way.
    """
    tuning = parse_autotune(inputs.claim)
    since = Since(inputs, policy)
    windows = Windows(inputs.series, now.timestamp())
    out = []
    for name in policy.tuned_fields:
        d = settled_by_git(inputs, policy, name, now, source, budget) if from_git else None
        if d is None:
            d = _recommend_field(inputs, policy, tuning, name, now, source, since, windows)
            if d is None:
                continue
            d = guards.apply(guard_context(inputs, d.field, policy, now, source, validation), d)
        out.append(d)
    return guards.one_change_per_claim(out, source)


def settled_by_git(
    inputs: ClaimInputs,
    policy: Policy,
    name: str,
    now: datetime,
    source: Source,
    budget: guards.Budget | None = None,
) -> Decision | None:
    """Field ``name``'s auto-tune decision when git alone settles it, else None (the metrics decide).

    A guard that reads no metric (opt-in, flap freeze, cooldown, ... and a
    spent fleet budget) blocks the field whatever its metrics say, so the
    decision is made without them: the same with a full fetch as with the
    fetch plan that skips them (docs/cloudwatch.md). None too for a field the
    claim does not set.
    """
    current = _number(inputs.claim, name)
    if current is None:
        return None
    probe = Decision(inputs.claim.name, name, _as_value(current), Outcome.CHANGE, source=source.name)
    probe = with_flap(with_risk(probe, inputs.claim, policy), inputs.histories, policy, now)
    return guards.settled_by_git(guard_context(inputs, name, policy, now, source), probe, budget)
