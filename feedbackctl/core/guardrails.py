"""The multi-metric guardrails: no change in a guarded direction while a metric is bad or unknown.

Part of analyze as well as autotune (``core/decide.py`` runs them after the
per-claim guards of ``core/guards.py``); a guardrail's name is its rule id in
the notes. Their evidence is metrics, so ``audit verify`` cannot re-prove
them (docs/audit.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from feedbackctl.core.models import Decision, Scalar, Series
from feedbackctl.core.policy import Condition, Policy
from feedbackctl.core.signals import Windows


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
    stop = guardrail_stop(d.direction, spec, Windows(series, now), policy, baselines, unknown)
    return d if stop is None else d.stopped(*stop)


def guardrail_stop(
    direction: str | None,
    spec: Mapping[str, object],
    windows: Windows,
    policy: Policy,
    baselines: Mapping[str, Scalar],
    unknown: Callable[[str, str], str],
) -> tuple[str, str] | None:
    """``guardrails``' answer for a change in ``direction``: the guardrail that stops it and why, or None.

    ``windows`` are the claim's series at the decision's ``now`` (``core/decide.py`` passes
    the ones its rules read, so a window a rule read is not worked out again).
    """
    for g in policy.guardrails:
        if g.blocks not in (direction, "any"):
            continue
        judged, why = guardrail_spec(g.when, spec, baselines)
        check = windows.check(
            g.when,
            judged,
            window_minutes=g.window_minutes,
            valid_from=float("-inf"),
            limits=policy.limits_for(g.when.metric),
        )
        if check.holds:
            return g.name, f"{check.detail}{why}: no {direction} while it is bad"
        if not check.enough:
            missing = unknown(g.when.metric, check.detail)
            return g.name, f"cannot prove health before a {direction}: {missing}"
    return None
