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

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from feedbackctl.core import flap, validation
from feedbackctl.core.flap import FREEZE_LIFTING_KINDS as FREEZE_LIFTING_KINDS  # moved; re-exported
from feedbackctl.core.flap import reversals as reversals  # moved; re-exported
from feedbackctl.core.models import (
    Acknowledgement,
    Claim,
    Decision,
    FieldChange,
    FieldHistory,
    FleetHistory,
    Note,
    Outcome,
    Scalar,
    Series,
)
from feedbackctl.core.policy import Condition, Limits, Policy, Source
from feedbackctl.core.risk import claim_changes, classify
from feedbackctl.core.rules import RuleId
from feedbackctl.core.signals import check_window
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


def _stop(d: Decision, rule: str, detail: str, outcome: Outcome = Outcome.BLOCKED) -> Decision:
    return replace(d, outcome=outcome, notes=d.notes + (Note(rule, "blocked", detail),))


def _shape(d: Decision, rule: str, detail: str, value: float) -> Decision:
    v = int(value) if float(value).is_integer() else value
    return replace(d, recommended=v, notes=d.notes + (Note(rule, "shaped", detail),))


def _minutes_since(now: datetime, then: datetime) -> float:
    return (now - then).total_seconds() / 60


# --- multi-metric guardrails (also part of analyze) -------------------------


def guardrail_spec(
    cond: Condition, spec: Mapping[str, object], baselines: Mapping[str, Scalar]
) -> tuple[Mapping[str, object], str]:
    """The spec a guardrail relative to a field is judged with, and what it says about it.

    Automation also tunes the field a guardrail is relative to (p99-healthy is
    relative to lambdaTimeout): a raised timeout would raise the bar and let
    memory fall again. So the guardrail uses whichever of the field's human
    baseline and its current value makes it stricter (the smaller one for an
    ``above`` guardrail); one tuned field never loosens the guard of another.
    """
    name = cond.relative_to
    if name is None:
        return spec, ""
    current, baseline = spec.get(name), baselines.get(name)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (current, baseline)):
        return spec, ""
    cur, base = float(current), float(baseline)  # type: ignore[arg-type]
    strict = min(cur, base) if cond.op == "above" else max(cur, base)
    if strict == cur:
        return spec, ""
    return {**spec, name: baseline}, f" (relative to the baseline {name} {base:g}, not the current {cur:g})"


def guardrail_fields(policy: Policy, direction: str | None = None) -> frozenset[str]:
    """Fields a guardrail (of a change in ``direction``, or any) is relative to.

    Their baselines shape the decisions of every other field.
    """
    return frozenset(
        g.when.relative_to
        for g in policy.guardrails
        if g.when.relative_to is not None and (direction is None or g.blocks in (direction, "any"))
    )


def guardrails(
    d: Decision,
    spec: Mapping[str, object],
    series: Mapping[str, Series],
    policy: Policy,
    now: float,
    baselines: Mapping[str, Scalar],
    unknown: Callable[[str, str], str] = lambda metric, detail: detail,
) -> Decision:
    """No change in a guarded direction while a guardrail metric is bad or unknown.

    A guardrail looks at its own window whatever changed recently: data from
    before a change still shows whether the claim is healthy enough to act.

    ``unknown(metric, detail)`` says why a metric has no data (an unreadable file).
    """
    for g in policy.guardrails:
        if g.blocks not in (d.direction, "any"):
            continue
        judged, why = guardrail_spec(g.when, spec, baselines)
        check = check_window(
            g.when,
            series.get(g.when.metric),
            judged,
            now=now,
            window_minutes=g.window_minutes,
            valid_from=float("-inf"),
            limits=policy.limits_for(g.when.metric),
        )
        if check.holds:
            return _stop(d, g.name, f"{check.detail}{why}: no {d.direction} while it is bad")
        if not check.enough:
            missing = unknown(g.when.metric, check.detail)
            return _stop(d, g.name, f"cannot prove health before a {d.direction}: {missing}")
    return d


# --- per-claim guards --------------------------------------------------------


def opt_in(ctx: GuardContext, d: Decision) -> Decision:
    if not ctx.tuning.enabled:
        return _stop(d, RuleId.OPT_IN, "claim has no spec.autoTune.enabled: true; use analyze or propose")
    if d.field not in ctx.tuning.bounds:
        return _stop(d, RuleId.OPT_IN, f"spec.autoTune sets no bounds for {d.field}; a human must add them")
    return d


def trust(ctx: GuardContext, d: Decision) -> Decision:
    s = ctx.source
    if not s.registered:
        # Not even a proposal: nobody said how far this source may be trusted (docs/sources.md).
        return _stop(
            d, RuleId.TRUST, f"source {s.name} is not in the feedback source registry; register it first"
        )
    allowed = ctx.tuning.sources
    if allowed and s.name not in allowed:
        return _stop(
            d,
            RuleId.TRUST,
            f"spec.autoTune.sources lets only {', '.join(allowed)} auto-tune this claim, not {s.name}",
            Outcome.PROPOSE,
        )
    if s.requires_proposal:
        return _stop(d, RuleId.TRUST, f"source {s.name} requires a proposal", Outcome.PROPOSE)
    if s.low_trust:
        return _stop(
            d, RuleId.TRUST, f"source {s.name} has {s.trust_level} trust; only proposals", Outcome.PROPOSE
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
        _stop(
            d,
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
    status = flap.assess(ctx.history.changes, ctx.now, ctx.policy.limits)
    if status.flapping:
        d = replace(d, notes=tuple(n for n in d.notes if n.rule != RuleId.FLAP_FREEZE))  # analyze's info note
        return _stop(
            d,
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
        return _stop(
            d,
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
        return _stop(
            d,
            RuleId.SOURCE_COOLDOWN,
            f"source {s.name} changed this claim {ago:.0f}m ago; its cooldown is {s.cooldown_minutes}m",
        )
    return d


def settling(ctx: GuardContext, d: Decision) -> Decision:
    minutes = ctx.policy.limits.settling_minutes
    last = ctx.history.last_change
    if last is not None and _minutes_since(ctx.now, last.at) < minutes:
        who = "a human" if last.kind == "human" else last.kind
        return _stop(
            d,
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
            _stop(
                d,
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
            _stop(
                d,
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
        _stop(
            d,
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
        return _stop(
            d,
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
        return _stop(d, validation.RULE, verdict.detail)
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


@dataclass(frozen=True)
class Budget:
    """What the fleet's rate limit leaves one run, from the trailers of the last 24 h."""

    left: int
    detail: str  # the rate-limit guard's note when it blocks


def rate_room(limits: Limits, made: int, recent: int) -> tuple[int, int]:
    """The rate limit: how many more automated changes perRun and per24h allow (below 1: none).

    ``made`` is what this run (the whole cron slot) has made already, ``recent``
    every automated change in the 24 h window; both are counted from git by
    the caller (autotune before a run, audit at each replayed commit).
    """
    return limits.rate_per_run - made, limits.rate_per_24h - recent


def fleet_budget(fleet: FleetHistory, now: datetime, limits: Limits, slot: RunSlot | None = None) -> Budget:
    """perRun (a shard: its share, less what its run id already made) and per24h, from the trailers."""
    slot = slot or RunSlot()
    since = now - timedelta(hours=24)
    recent = sum(1 for _, c in fleet.recent if c.automated and c.at >= since)
    share = shard_share(limits.rate_per_run, slot.index, slot.count)
    made = sum(1 for _, c in fleet.recent if c.automated and slot.run is not None and c.run == slot.run)
    per_run = f"{limits.rate_per_run} per run"
    if slot.count > 1:
        per_run += f" ({share} for shard {slot.index}/{slot.count})"
    if made:
        per_run += f", {made} made by run {slot.run} already"
    return Budget(
        max(0, min(share, *rate_room(limits, made, recent))),
        f"{recent} auto-tunes in the last 24h (max {limits.rate_per_24h}), {per_run}",
    )


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
        return _stop(d, RuleId.RATE_LIMIT, budget.detail)
    return None


def apply(ctx: GuardContext, d: Decision) -> Decision:
    if d.outcome == Outcome.CHANGE:
        for guard in PER_CLAIM_GUARDS:
            d = guard(ctx, d)
            if d.outcome != Outcome.CHANGE:
                return d
        if d.recommended == d.current:
            return _stop(d, RuleId.BOUNDS, "no room to move inside the bounds")
        return d
    if d.outcome in (Outcome.NOT_ENOUGH_DATA, Outcome.HOLD) and ctx.tuning.allows(d.field):
        # Data held back by a recent change: say which gate is holding it.
        for guard in TIME_GATES:
            gated = guard(ctx, replace(d, outcome=Outcome.CHANGE))
            if gated.outcome != Outcome.CHANGE:
                return replace(gated, outcome=Outcome.BLOCKED)
    return d


def one_change_per_claim(decisions: Sequence[Decision], source: Source) -> list[Decision]:
    """The source cooldown inside one run: one change per claim, the first tuned field first.

    Two fields of a claim changed by one evaluation would both be judged on
    metrics that the other change is about to alter; the second waits for
    the source's cooldown like any later change would.
    """
    changed: dict[str, str] = {}
    out = []
    for d in decisions:
        if d.outcome == Outcome.CHANGE:
            first = changed.setdefault(d.claim, d.field)
            if first != d.field:
                d = _stop(
                    d,
                    RuleId.SOURCE_COOLDOWN,
                    f"source {source.name} changes spec.{first} of this claim in this run; "
                    f"its cooldown is {source.cooldown_minutes}m",
                )
        out.append(d)
    return out


# --- fleet guard -------------------------------------------------------------


@dataclass(frozen=True)
class RunSlot:
    """Which run this is: its ``Feedback-Run`` id and, with ``--shard i/n``, its shard.

    The per-run limit is for the whole cron slot (docs/autotune.md, sharding):
    each of the slot's shards gets its share, and the changes already made
    under the same run id (an earlier shard, a retried Job) count against it.
    """

    run: str | None = None
    index: int = 0
    count: int = 1


def shard_share(total: int, index: int, count: int) -> int:
    """Shard ``index`` of ``count``'s part of a per-run limit: the parts sum to ``total``.

    ``total // count`` each, and one more for the first ``total % count``
    shards, so no shard is starved and none can take another's part.
    """
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: need 0 <= index < count")
    base, extra = divmod(max(0, total), count)
    return base + (1 if index < extra else 0)


def rate_limit(
    decisions: Sequence[Decision],
    fleet: FleetHistory,
    now: datetime,
    limits: Limits,
    slot: RunSlot = RunSlot(),
) -> list[Decision]:
    """At most perRun changes a run (a shard: its share) and per24h in any rolling 24 h (from trailers)."""
    budget = fleet_budget(fleet, now, limits, slot)
    out: list[Decision] = []
    order = sorted(range(len(decisions)), key=lambda i: (decisions[i].claim, decisions[i].field))
    granted: set[int] = set()
    for i in order:
        if decisions[i].outcome == Outcome.CHANGE and len(granted) < budget.left:
            granted.add(i)
    for i, d in enumerate(decisions):
        if d.outcome == Outcome.CHANGE and i not in granted:
            d = _stop(d, RuleId.RATE_LIMIT, budget.detail)
        out.append(d)
    return out


# --- proposal limits ---------------------------------------------------------


def proposal_limit(
    wanted: int, open_now: int, new_recent: int, max_open: int, max_new: int
) -> list[str | None]:
    """For ``wanted`` new proposals in priority order: None for one that may open, else why it waits.

    At most ``max_open`` open and ``max_new`` opened in the last hour; the
    counts so far come from the proposal branches. A held-back proposal takes
    no room, so a later one is judged against the same counts.
    """
    out: list[str | None] = []
    for _ in range(wanted):
        if open_now >= max_open:
            out.append(f"{open_now} proposals are open (max {max_open}); decide some first")
        elif new_recent >= max_new:
            out.append(
                f"{new_recent} proposals opened in the last hour (max {max_new}); the next run proposes it"
            )
        else:
            out.append(None)
            open_now += 1
            new_recent += 1
    return out
