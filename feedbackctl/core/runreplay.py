"""Replaying one run's auto-tune changes through the guards autotune ran (``audit verify``).

Pure: the caller (``patterns/audit.py``) hands in the claims at the commit's
parent and after it, the field histories git had then, and two ports for what
needs git (the ack a commit names, its ``Feedback-Validated-In``). Each change
is judged as autotune would have judged it at the commit's date: the run-wide
rules first (a second step of one field, one change per claim, the rate
limit), then every per-claim guard of ``core/guards.py``. The rules are the
guards' own functions; this module only rebuilds their inputs (docs/audit.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

from feedbackctl.core import guards, runlimits
from feedbackctl.core.models import (
    Acknowledgement,
    Claim,
    Decision,
    FieldChange,
    FieldHistory,
    FleetHistory,
    Outcome,
    Scalar,
)
from feedbackctl.core.policy import Limits, Policy
from feedbackctl.core.rules import RuleId
from feedbackctl.core.tuning import parse_autotune
from feedbackctl.errors import ClaimError

KIND = "auto-tune"

# flag(rule, detail, trailer group): one violation of the commit being checked.
Flag = Callable[[str, str, Mapping[str, str]], None]
# The ack an auto-tune group names: the ack, why it does not count, or None when it names none.
Acknowledge = Callable[[Mapping[str, str]], Acknowledgement | str | None]


class Tree(Protocol):
    """The claims at one commit (an ``authority.snapshot.Snapshot`` is one)."""

    @property
    def claims(self) -> Sequence[Claim]: ...

    @property
    def errors(self) -> Sequence[object]: ...

    def claim(self, name: str) -> Claim | None: ...


class RunHistories(Protocol):
    """Field histories at the parent (``authority.claimwalks.Histories`` is one)."""

    @property
    def fields(self) -> Mapping[str, Mapping[str, FieldHistory]]: ...

    @property
    def fleet(self) -> FleetHistory: ...

    def for_claim(self, claim: str) -> Mapping[str, FieldHistory]: ...


def text(value: Scalar) -> str:
    """A value as the writer spells it in a trailer."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def number(value: Scalar) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def value_of(tree: Tree, claim: str, name: str) -> Scalar:
    c = tree.claim(claim)
    v = c.value(name) if c is not None else None
    return v if isinstance(v, int | float | str | bool) else None


def _as_of(histories: RunHistories, claim: str, now: datetime) -> dict[str, FieldHistory]:
    """Histories before ``now``: changes at the same instant belong to the same run."""
    return {
        f: replace(h, changes=tuple(ch for ch in h.changes if ch.at < now))
        for f, h in histories.for_claim(claim).items()
    }


def _in_run(ch: FieldChange, now: datetime, run: str | None) -> bool:
    """Was ``ch`` made by the run that wrote at ``now`` (with ``Feedback-Run`` ``run``)?

    The run id groups exactly: the shards of one cron slot share it whatever
    their dates, and two runs at one instant stay two. Commits from before the
    trailer existed have no id; for them one run is one date (one ``--now``).
    """
    return ch.run == run if run is not None else ch.at == now and ch.run is None


def _same_run(
    histories: RunHistories, now: datetime, run: str | None
) -> tuple[list[tuple[str, str, str]], list[FieldChange]]:
    """Changes already made by this run: (claim, field, kind), and the run's automated changes fleet-wide."""
    made = []
    for claim, fields in histories.fields.items():
        for f, h in fields.items():
            made += [(claim, f, ch.kind) for ch in h.changes if ch.automated and _in_run(ch, now, run)]
    return made, [ch for _, ch in histories.fleet.recent if ch.automated and _in_run(ch, now, run)]


def _before_run(fleet: FleetHistory, now: datetime, made: Sequence[FieldChange]) -> int:
    """Automated changes in the 24 h up to ``now`` that are not the run's own."""
    mine = {id(ch) for ch in made}
    return sum(
        1
        for _, ch in fleet.recent
        if ch.automated and now - ch.at < timedelta(hours=24) and ch.at <= now and id(ch) not in mine
    )


def _rate(flag: Flag, run: str | None, limits: Limits, day: int, in_run: int, g: Mapping[str, str]) -> None:
    """The change after ``in_run`` of its run, with ``day`` other automated changes in the 24 h before it."""
    where = f"run {run}" if run else "one run"
    per_run, per_day = runlimits.rate_room(limits, in_run, day + in_run)  # autotune's own limit
    if per_run < 1:
        flag(RuleId.RATE_LIMIT, f"change {in_run + 1} of {where}; at most {limits.rate_per_run} per run", g)
    if per_day < 1:
        flag(
            RuleId.RATE_LIMIT,
            f"{day + in_run + 1} automated changes in the 24h up to this one; at most {limits.rate_per_24h}",
            g,
        )


def _one_change_per_claim(
    flag: Flag,
    earlier: Sequence[tuple[str, str, str]],
    key: tuple[str, str],
    policy: Policy,
    g: Mapping[str, str],
) -> None:
    """The guard ``one_change_per_claim`` over the run's auto-tunes of this claim so far, then this one."""
    run = [
        Decision(cl, f, None, Outcome.CHANGE) for cl, f, kind in earlier if cl == key[0] and kind == KIND
    ]
    source = policy.source(g.get("Feedback-Source") or "unknown")
    judged = runlimits.one_change_per_claim([*run, Decision(*key, None, Outcome.CHANGE)], source)[-1]
    for note in judged.notes:
        flag(note.rule, note.detail, g)


def _replay_guards(
    flag: Flag,
    g: Mapping[str, str],
    parent: Tree,
    after: Tree,
    now: datetime,
    histories: RunHistories,
    policy: Policy,
    acknowledge: Acknowledge,
) -> None:
    """Run the change through every per-claim guard as autotune would have at the parent."""
    claim = parent.claim(g["Feedback-Claim"])
    assert claim is not None
    name = g["Feedback-Field"].removeprefix("spec.")
    old, new = claim.value(name), value_of(after, claim.name, name)
    fp = policy.fields.get(name)
    if fp is None:
        flag(RuleId.SCHEMA, f"{name} is not a tunable field of the policy; auto-tune may not touch it", g)
        return
    lo, hi = number(old), number(new)
    if lo is None or hi is None:
        flag(RuleId.SCHEMA, f"spec.{name} is {text(new) or 'unset'}, expected a number", g)
        return
    if not fp.min <= hi <= fp.max:
        flag(RuleId.SCHEMA, f"{hi:g} is outside the schema range {fp.min:g}-{fp.max:g}", g)
    try:
        tuning = parse_autotune(claim)
    except ClaimError as e:
        flag(RuleId.OPT_IN, f"spec.autoTune was invalid at the parent: {e}", g)
        return
    field_histories = _as_of(histories, claim.name, now)
    history = field_histories.get(name, FieldHistory(claim.name, name))
    d = Decision(
        claim.name,
        name,
        old,
        Outcome.CHANGE,
        recommended=new,
        uncapped=new,
        direction="increase" if hi > lo else "decrease",
        source=g.get("Feedback-Source"),
        rule=g.get("Feedback-Rule"),
    )
    ack = acknowledge(g)
    if isinstance(ack, str):
        flag(RuleId.RISK_CEILING, f"{ack}: it lifts no risk ceiling", g)
        ack = None
    ctx = guards.GuardContext(
        claim=claim,
        tuning=tuning,
        policy=policy,
        history=history,
        claim_histories=field_histories,
        now=now,
        source=policy.source(g.get("Feedback-Source") or "unknown"),
        acknowledgement=ack,
    )
    for guard in guards.PER_CLAIM_GUARDS:
        if guard is guards.bounds and not tuning.allows(name):
            continue  # opt-in already said so
        out = guard(ctx, d)
        for note in out.notes[len(d.notes) :]:
            if note.effect in ("blocked", "shaped"):
                flag(note.rule, note.detail, g)
    if g.get("Feedback-Risk") == "HIGH":
        flag(RuleId.RISK_CEILING, "the commit itself records HIGH risk; HIGH never auto-applies", g)
    if hi == lo:
        flag(RuleId.TRAILER_DIFF, "an auto-tune commit that does not change the value", g)


def _check_reset(flag: Flag, g: Mapping[str, str], after: Tree, histories: RunHistories) -> None:
    name = g["Feedback-Field"].removeprefix("spec.")
    baseline = histories.for_claim(g["Feedback-Claim"]).get(name)
    target = value_of(after, g["Feedback-Claim"], name)
    if baseline is not None and baseline.baseline is not None and text(baseline.baseline) != text(target):
        flag(
            RuleId.RESET_TARGET,
            f"reset to {text(target)}, but the tested baseline was {text(baseline.baseline)}",
            g,
        )


def replay_run(
    tuned: Sequence[Mapping[str, str]],
    parent: Tree,
    after: Tree,
    at: datetime,
    run: str | None,
    histories: RunHistories,
    policy: Policy,
    flag: Flag,
    acknowledge: Acknowledge,
    validated_in: Callable[[Mapping[str, str]], str | None],
) -> None:
    """Judge one commit's automated groups (``tuned``) as the changes after what their run made already."""
    earlier, made = _same_run(histories, at, run)
    day, in_run = _before_run(histories.fleet, at, made), len(made)
    for g in tuned:
        key = (g["Feedback-Claim"], g["Feedback-Field"].removeprefix("spec."))
        if g.get("Feedback-Kind") == "reset":
            _check_reset(flag, g, after, histories)
            continue
        if any((cl, f) == key for cl, f, _ in earlier):
            flag(RuleId.STEP_LIMIT, "a second change of this field in one run (two steps at once)", g)
        _one_change_per_claim(flag, earlier, key, policy, g)
        _rate(flag, run, policy.limits, day, in_run, g)
        earlier.append((*key, KIND))
        in_run += 1
        _replay_guards(flag, g, parent, after, at, histories, policy, acknowledge)
        problem = validated_in(g)
        if problem is not None:
            flag(RuleId.VALIDATED_IN, problem, g)
