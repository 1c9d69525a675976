"""Staging validation: a feedback change reaches a later stage only after it ran earlier.

``.feedbackctl.yaml`` declares the promotion order::

    validation:
      stages: [dev, staging, prod]   # values of spec.environment
      soakMinutes: 1440              # how long the value must run in the earlier stage

A claim's *validating claim* is the claim named like it with the environment
token replaced by the nearest earlier stage that has one (``messagewall-prod``
-> ``messagewall-staging``, else ``messagewall-dev``; a Kustomize-rendered
``messagewall-prod-east`` -> ``messagewall-dev-east``), or the one named by
``spec.autoTune.validateIn``. The staging-validation guard (``guards.py``)
asks :func:`assess` whether that claim held the exact value for the soak with
healthy guardrails. See docs/validation.md.

Pure: the shell gathers the validating claim's history and metrics.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from feedbackctl.core.models import Claim, FieldHistory, Scalar, Series
from feedbackctl.core.policy import Policy
from feedbackctl.core.rules import RuleId
from feedbackctl.core.signals import check_window
from feedbackctl.errors import ClaimError

RULE = RuleId.STAGING_VALIDATION
TRAILER = "Feedback-Validated-In"
UNTESTED = "untested"


class ValidationConfigError(ValueError):
    """The ``validation:`` block is malformed (the shell names the file)."""


@dataclass(frozen=True)
class Validation:
    stages: tuple[str, ...]
    soak_minutes: int = 1440

    def stage_of(self, claim: Claim) -> int | None:
        env = (claim.environment or "").lower()
        return self.stages.index(env) if env in self.stages else None


def parse_validation(raw: object) -> Validation | None:
    """The typed ``validation:`` block; errors name the key that is wrong."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ValidationConfigError("validation: expected a mapping with stages and soakMinutes")
    unknown = sorted(str(k) for k in raw if k not in ("stages", "soakMinutes"))
    if unknown:
        raise ValidationConfigError(f"validation.{unknown[0]}: unknown key; use stages and soakMinutes")
    stages = raw.get("stages")
    if not isinstance(stages, list) or not all(isinstance(s, str) and s.strip() for s in stages):
        raise ValidationConfigError(
            "validation.stages: expected a list of spec.environment values in promotion order"
        )
    names = tuple(s.strip().lower() for s in stages)
    if len(names) < 2:
        raise ValidationConfigError("validation.stages: name at least two stages (e.g. [dev, prod])")
    dup = next((s for i, s in enumerate(names) if s in names[:i]), None)
    if dup is not None:
        raise ValidationConfigError(f"validation.stages: '{dup}' is listed twice")
    soak = raw.get("soakMinutes", 1440)
    if isinstance(soak, bool) or not isinstance(soak, int) or soak < 1:
        raise ValidationConfigError(f"validation.soakMinutes: expected a whole number >= 1, got {soak!r}")
    return Validation(names, soak)


def validate_in(claim: Claim) -> str | None:
    raw = claim.spec.get("autoTune")
    value = raw.get("validateIn") if isinstance(raw, Mapping) else None
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ClaimError(claim.name, f"spec.autoTune.validateIn: expected a claim name, got {value!r}")
    return value.strip()


def _candidates(name: str, env: str, earlier: str) -> list[str]:
    """``name`` with one environment token replaced by ``earlier`` (one per occurrence)."""
    tokens = name.split("-")
    return [
        "-".join(tokens[:i] + [earlier] + tokens[i + 1 :])
        for i, t in enumerate(tokens)
        if t.lower() == env
    ]


def pair(claim: Claim, claims: Mapping[str, Claim], validation: Validation | None) -> str | None:
    """The name of ``claim``'s validating claim; None in the first stage or without validation.

    A missing or ambiguous pairing is the claim's error: its later stage would
    otherwise auto-tune unvalidated without a word.
    """
    if validation is None:
        return None
    stage = validation.stage_of(claim)
    if stage is None or stage == 0:
        return None
    earlier = validation.stages[:stage]
    named = validate_in(claim)
    if named is not None:
        other = claims.get(named)
        if other is None:
            raise ClaimError(
                claim.name, f"spec.autoTune.validateIn: no claim named {named}; name an existing claim"
            )
        if validation.stage_of(other) not in range(stage):
            raise ClaimError(
                claim.name,
                f"spec.autoTune.validateIn: {named} has environment {other.environment!r}, "
                f"not an earlier stage than {validation.stages[stage]} ({', '.join(earlier)})",
            )
        return named
    env = validation.stages[stage]
    tried: list[str] = []
    for prev in reversed(earlier):
        names = _candidates(claim.name, env, prev)
        tried += names
        found = [n for n in dict.fromkeys(names) if n in claims]
        if len(found) > 1:
            raise ClaimError(
                claim.name,
                f"staging validation: ambiguous validating claim ({', '.join(found)}); "
                "set spec.autoTune.validateIn",
            )
        if found:
            other = claims[found[0]]
            if validation.stage_of(other) != validation.stages.index(prev):
                raise ClaimError(
                    claim.name,
                    f"staging validation: {found[0]} has environment {other.environment!r}, "
                    f"expected {prev}; fix it or set spec.autoTune.validateIn",
                )
            return found[0]
    if not tried:
        raise ClaimError(
            claim.name,
            f"staging validation: the name has no '{env}' token to pair it with an earlier stage; "
            "set spec.autoTune.validateIn",
        )
    raise ClaimError(
        claim.name,
        f"staging validation: no validating claim ({' or '.join(tried)}); "
        "add it or set spec.autoTune.validateIn",
    )


def pairings(
    claims: Sequence[Claim], validation: Validation | None, *, only: Collection[str] | None = None
) -> tuple[dict[str, str], dict[str, ClaimError]]:
    """``{later claim: validating claim}`` for ``only`` (default all), and the claims that cannot pair."""
    by_name = {c.name: c for c in claims}
    pairs: dict[str, str] = {}
    errors: dict[str, ClaimError] = {}
    for c in claims:
        if only is not None and c.name not in only:
            continue
        try:
            p = pair(c, by_name, validation)
        except ClaimError as e:
            errors[c.name] = e
            continue
        if p is not None:
            pairs[c.name] = p
    return pairs, errors


# --- what the validating claim ran ---------------------------------------------


@dataclass(frozen=True)
class Run:
    """One stretch of time during which a field held one value."""

    value: Scalar
    start: datetime
    end: datetime
    commit: str | None  # the change that started it; None: it started before known history
    current: bool

    @property
    def minutes(self) -> float:
        return (self.end - self.start).total_seconds() / 60


def runs(history: FieldHistory, current: Scalar, known_since: datetime, now: datetime) -> list[Run]:
    """The field's values over time, oldest first, from its changes and its value now.

    Before the first known change the value is assumed held only since
    ``known_since`` (where the history reading starts): a soak is never
    credited with time nobody saw.
    """
    moves = [c for c in history.changes if c.old != c.new and c.at >= known_since]
    out: list[Run] = []
    value: Scalar = moves[0].old if moves else current
    start, commit = known_since, None
    for c in moves:
        out.append(Run(value, start, c.at, commit, False))
        value, start, commit = c.new, c.at, c.commit
    out.append(Run(value, start, max(now, start), commit, True))
    return [r for r in out if r.end > r.start or r.current]


def same(a: Scalar, b: Scalar) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return a == b


@dataclass(frozen=True)
class StageEvidence:
    """What the guard needs to know about a claim's validating claim."""

    claim: str  # the validating claim's name
    spec: Mapping[str, Any]
    histories: Mapping[str, FieldHistory]
    series: Mapping[str, Series]
    known_since: datetime
    soak_minutes: int
    # The commit the trailer names when the run started before known history:
    # the newest commit at or before ``now - soak`` (the value held there).
    anchor: str | None = None
    opted_in: bool = False
    allows: Collection[str] = field(default_factory=tuple)  # fields it may auto-tune


@dataclass(frozen=True)
class Verdict:
    validated: bool
    detail: str
    run: Run | None = None
    ref: str | None = None  # "<claim>@<commit>" for the trailer
    ran_value: bool = False  # the value ran there at all (drift's untested tag)


def _fmt(v: Scalar) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _health(ev: StageEvidence, run: Run, policy: Policy) -> str | None:
    """None when every guardrail metric was healthy over the soak, else what was not."""
    end = run.end.timestamp()
    for g in policy.guardrails:
        check = check_window(
            g.when,
            ev.series.get(g.when.metric),
            ev.spec,
            now=end,
            window_minutes=ev.soak_minutes,
            valid_from=float("-inf"),
            limits=policy.limits_for(g.when.metric),
        )
        if check.holds:
            return f"{g.name} was bad during the soak: {check.detail}"
        if not check.enough:
            return f"{g.name} cannot be proven healthy over the soak: {check.detail}"
    return None


def assess(ev: StageEvidence, field_name: str, value: Scalar, policy: Policy, now: datetime) -> Verdict:
    """Did ``ev.claim`` run ``field_name`` = ``value`` for the soak, with healthy guardrails?

    Any stretch counts, the current one or an earlier one (the earlier stage
    may already have moved on); the newest stretch long enough is judged.
    """
    current = ev.spec.get(field_name)
    history = ev.histories.get(field_name, FieldHistory(ev.claim, field_name))
    held = [r for r in runs(history, current, ev.known_since, now) if same(r.value, value)]
    what = f"{ev.claim} has not run {field_name} {_fmt(value)}; it runs {_fmt(current)}"
    if not held:
        return Verdict(False, what)
    long_enough = [r for r in held if r.minutes >= ev.soak_minutes]
    if not long_enough:
        best = max(held, key=lambda r: r.minutes)
        since = "since" if best.current else "from"
        return Verdict(
            False,
            f"{ev.claim} has run {field_name} {_fmt(value)} for {best.minutes:.0f}m "
            f"({since} {best.start:%Y-%m-%dT%H:%MZ}) of the {ev.soak_minutes}m soak",
            best,
            ran_value=True,
        )
    run = long_enough[-1]
    bad = _health(ev, run, policy)
    if bad is not None:
        return Verdict(False, f"{ev.claim} ran {field_name} {_fmt(value)} but {bad}", run, ran_value=True)
    # A stretch that began before the history read has no commit of its own: the
    # anchor (the commit at now - soak) names it, which only holds while it still runs.
    anchored = run.current and run.start <= now - timedelta(minutes=ev.soak_minutes)
    commit = run.commit or (ev.anchor if anchored else None)
    if commit is None:
        return Verdict(
            False,
            f"{ev.claim} ran {field_name} {_fmt(value)} from before the history read "
            f"({run.start:%Y-%m-%dT%H:%MZ}); no commit can show it, a human must decide",
            run,
            ran_value=True,
        )
    return Verdict(
        True,
        f"validated in {ev.claim}: ran {field_name} {_fmt(value)} for {run.minutes:.0f}m "
        f"(soak {ev.soak_minutes}m, since {commit[:8]}) with healthy "
        f"{', '.join(g.name for g in policy.guardrails) or 'guardrails'}",
        run,
        f"{ev.claim}@{commit}",
        True,
    )


def ran_before(ev: StageEvidence, field_name: str, value: Scalar, now: datetime) -> bool:
    """Did the earlier stage ever run ``value`` (as far as history shows)?"""
    current = ev.spec.get(field_name)
    history = ev.histories.get(field_name, FieldHistory(ev.claim, field_name))
    return any(same(r.value, value) for r in runs(history, current, ev.known_since, now))


def parse_ref(text: str) -> tuple[str, str] | None:
    """``<claim>@<commit>`` from a Feedback-Validated-In trailer; None when malformed."""
    claim, sep, commit = text.strip().rpartition("@")
    if not sep or not claim or not commit or not all(ch in "0123456789abcdef" for ch in commit.lower()):
        return None
    return claim, commit
