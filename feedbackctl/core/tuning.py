"""The claim-level ``spec.autoTune`` block: human-written bounds for auto-tune.

The design's form (docs/design.md) is accepted exactly as written::

    autoTune:
      enabled: true
      memoryBounds: {min: 128, max: 512}
      cooldownMinutes: 60
      trigger: {metric: memory_utilization, threshold: 90, sustainedMinutes: 30}

The general form adds bounds (and an optional step) for any tuned field::

    autoTune:
      enabled: true
      bounds:
        lambdaTimeout: {min: 10, max: 60, step: 5}

``memoryBounds`` is shorthand for ``bounds.lambdaMemory`` and ``timeoutBounds``
for ``bounds.lambdaTimeout``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from feedbackctl.core.models import Claim
from feedbackctl.core.policy import Limits, Rule, hysteresis_inverted
from feedbackctl.errors import ClaimError

SHORTHAND_BOUNDS = {"memoryBounds": "lambdaMemory", "timeoutBounds": "lambdaTimeout"}


@dataclass(frozen=True)
class Bounds:
    min: float
    max: float
    step: float | None = None


@dataclass(frozen=True)
class Trigger:
    metric: str
    threshold: float
    sustained_minutes: int


@dataclass(frozen=True)
class AutoTune:
    enabled: bool = False
    bounds: Mapping[str, Bounds] = field(default_factory=dict)
    cooldown_minutes: int | None = None
    trigger: Trigger | None = None
    # The feedback sources (registry names) that may auto-tune the claim; empty: any registered one.
    sources: tuple[str, ...] = ()

    def allows(self, field_name: str) -> bool:
        return self.enabled and field_name in self.bounds


def _number(claim: str, key: str, value: Any, *, minimum: float = 0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ClaimError(claim, f"spec.autoTune.{key}: expected a number, got {value!r}; fix the claim")
    if value < minimum:
        raise ClaimError(
            claim, f"spec.autoTune.{key}: must be at least {minimum:g}, got {value!r}; fix the claim"
        )
    return float(value)


def _bounds(claim: str, key: str, raw: Any) -> Bounds:
    if not isinstance(raw, Mapping):
        raise ClaimError(claim, f"spec.autoTune.{key}: expected a mapping with min and max; fix the claim")
    lo = _number(claim, f"{key}.min", raw.get("min"))
    hi = _number(claim, f"{key}.max", raw.get("max"))
    if lo > hi:
        raise ClaimError(claim, f"spec.autoTune.{key}: min {lo:g} is greater than max {hi:g}; swap them")
    step = raw.get("step")
    return Bounds(lo, hi, _number(claim, f"{key}.step", step, minimum=1e-9) if step is not None else None)


# What a claim without spec.autoTune reads as: one shared value (frozen; nothing writes a
# parsed AutoTune's bounds), as most claims of a fleet are read so for each decision.
NOT_OPTED_IN = AutoTune()


def parse_autotune(claim: Claim) -> AutoTune:
    """Validate and read ``spec.autoTune``; a claim without it does not opt in."""
    raw = claim.spec.get("autoTune")
    if raw is None:
        return NOT_OPTED_IN
    name = claim.name
    if not isinstance(raw, Mapping):
        raise ClaimError(name, "spec.autoTune: expected a mapping; fix the claim")
    enabled = raw.get("enabled", False)
    if not isinstance(enabled, bool):
        raise ClaimError(name, f"spec.autoTune.enabled: expected true or false, got {enabled!r}")
    bounds: dict[str, Bounds] = {}
    for key, field_name in SHORTHAND_BOUNDS.items():
        if key in raw:
            bounds[field_name] = _bounds(name, key, raw[key])
    general = raw.get("bounds") or {}
    if not isinstance(general, Mapping):
        raise ClaimError(name, "spec.autoTune.bounds: expected a mapping of field to {min, max}")
    for field_name, b in general.items():
        bounds[str(field_name)] = _bounds(name, f"bounds.{field_name}", b)
    cooldown = raw.get("cooldownMinutes")
    trigger = None
    if raw.get("trigger") is not None:
        t = raw["trigger"]
        if not isinstance(t, Mapping) or not isinstance(t.get("metric"), str):
            raise ClaimError(
                name, "spec.autoTune.trigger: expected metric, threshold and sustainedMinutes; fix the claim"
            )
        trigger = Trigger(
            metric=t["metric"],
            threshold=_number(name, "trigger.threshold", t.get("threshold")),
            sustained_minutes=int(
                _number(name, "trigger.sustainedMinutes", t.get("sustainedMinutes", 30), minimum=1)
            ),
        )
    return AutoTune(
        enabled=enabled,
        bounds=bounds,
        cooldown_minutes=int(_number(name, "cooldownMinutes", cooldown)) if cooldown is not None else None,
        trigger=trigger,
        sources=_sources(name, raw.get("sources")),
    )


def _sources(claim: str, raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw or not all(isinstance(s, str) and s.strip() for s in raw):
        raise ClaimError(
            claim, "spec.autoTune.sources: expected a list of feedback source names (policies/sources.yaml)"
        )
    return tuple(dict.fromkeys(s.strip() for s in raw))


def check_sources(claim: str, tuning: AutoTune, registry: Collection[str], registry_file: str) -> None:
    """A claim that names a source the registry lacks is refused, not silently never tuned."""
    unknown = [s for s in tuning.sources if s not in registry]
    if unknown:
        known = ", ".join(sorted(registry)) or "none"
        raise ClaimError(
            claim,
            f"spec.autoTune.sources: source '{unknown[0]}' is not in the feedback source registry "
            f"({registry_file}: feedbackSources; registered: {known}); register it there or fix the name",
        )


def check_trigger(
    claim: str,
    tuning: AutoTune,
    rules: Sequence[Rule],
    *,
    band: float = Limits.hysteresis_band,
    path: str | None = None,
) -> None:
    """A trigger that no rule can use would be ignored without a word: refuse it instead.

    The trigger overrides the threshold of the increase rule watching its
    metric for a field the claim bounds (``decide._threshold_for``); a typo
    in the metric, or a trigger for a field without bounds, matches nothing.
    A trigger at or below a decrease rule's threshold on the same metric (less
    the hysteresis band) would make the two rules undo each other: refused too.
    """
    t = tuning.trigger
    if t is None:
        return
    usable = {
        r.when.metric: r.field
        for r in rules
        if r.direction == "increase" and r.field in tuning.bounds and r.when.relative_to is None
    }
    if t.metric in usable:
        _check_trigger_hysteresis(claim, t, usable[t.metric], rules, band, path)
        return
    choices = ", ".join(f"{m} (spec.{f})" for m, f in sorted(usable.items())) or "none: bound a field first"
    raise ClaimError(
        claim,
        f"spec.autoTune.trigger.metric: no increase rule for a bounded field watches '{t.metric}', "
        f"so the trigger would be ignored; use one of: {choices}",
    )


def _check_trigger_hysteresis(
    claim: str, t: Trigger, field_name: str, rules: Sequence[Rule], band: float, path: str | None
) -> None:
    for down in rules:
        if (
            down.direction == "decrease"
            and down.field == field_name
            and down.when.op == "below"
            and down.when.metric == t.metric
            and down.when.relative_to is None
            and hysteresis_inverted(t.threshold, down.when.threshold, band)
        ):
            where = f"{path}: " if path else ""
            raise ClaimError(
                claim,
                f"{where}spec.autoTune.trigger.threshold: {t.threshold:g} is not above rule "
                f"'{down.name}''s decrease threshold {down.when.threshold:g} for {t.metric} by the "
                f"{band:.0%} hysteresis band, so the increase and the decrease would undo each "
                f"other; raise it above {down.when.threshold / (1 - band):g}",
            )
