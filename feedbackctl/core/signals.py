"""Reading conditions off metric series: sustained windows and sizing.

A condition *holds* only when every point of its sustained window satisfies
it and the window is covered by data measured on the current configuration.
A single spike therefore never acts, and a window that is too short, too
sparse or too old is "not enough data", which is its own answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from feedbackctl.core.models import Evidence, Series
from feedbackctl.core.policy import Condition, Limits, Sizing

# A window counts as covered when its first point is this close to its start.
COVERAGE_SLACK_FRACTION = 0.2
COVERAGE_SLACK_MIN_SECONDS = 600


@dataclass(frozen=True)
class WindowCheck:
    holds: bool
    enough: bool
    evidence: Evidence | None
    detail: str


def check_window(
    cond: Condition,
    series: Series | None,
    spec: Mapping[str, Any],
    *,
    now: float,
    window_minutes: int,
    valid_from: float,
    limits: Limits,
    threshold: float | None = None,
) -> WindowCheck:
    """Does ``cond`` hold at every point of the last ``window_minutes``?

    ``valid_from`` is the first instant whose data describes the current
    configuration (the last change of a coupled field plus settling).
    """
    limit = threshold if threshold is not None else cond.limit(spec)
    if limit is None:
        return WindowCheck(False, False, None, f"{cond.relative_to} is not a number")
    window_start = now - window_minutes * 60
    if series is None or len(series) == 0:
        return WindowCheck(False, False, None, f"no {cond.metric} data")
    if valid_from > window_start:
        span = max(0.0, now - valid_from) / 60
        return WindowCheck(
            False,
            False,
            None,
            f"only {span:.0f}m of {cond.metric} since the last change "
            f"(settling); the rule needs {window_minutes}m",
        )
    window = series.since(window_start).until(now)
    n = len(window)
    if n == 0:
        return WindowCheck(False, False, None, f"no {cond.metric} points in the last {window_minutes}m")
    slack = max(COVERAGE_SLACK_MIN_SECONDS, window_minutes * 60 * COVERAGE_SLACK_FRACTION)
    newest = float(window.ts[-1])
    if now - newest > limits.max_staleness_minutes * 60:
        return WindowCheck(
            False,
            False,
            None,
            f"newest {cond.metric} point is {(now - newest) / 60:.0f}m old "
            f"(max {limits.max_staleness_minutes}m)",
        )
    if float(window.ts[0]) - window_start > slack or n < limits.min_points:
        return WindowCheck(
            False,
            False,
            None,
            f"{n} {cond.metric} points cover the {window_minutes}m window too thinly "
            f"(need {limits.min_points}+ from its start)",
        )
    if cond.op == "above":
        stat_name, stat = "min", float(np.min(window.values))
        holds = stat > limit
    else:
        stat_name, stat = "max", float(np.max(window.values))
        holds = stat < limit
    evidence = Evidence(cond.metric, stat_name, window_minutes, n, stat, limit)
    verb = "held" if holds else "did not hold"
    return WindowCheck(
        holds,
        True,
        evidence,
        f"{cond.metric} {cond.op} {limit:g} {verb} for {window_minutes}m ({stat_name} {stat:.4g}, n={n})",
    )


def size_from_usage(
    sizing: Sizing, series: Series | None, *, now: float, valid_from: float, lookback_minutes: int
) -> tuple[float, Evidence] | None:
    """Peak absolute usage plus margin (VPA adds 15 %), or None without data."""
    if series is None:
        return None
    window = series.since(max(valid_from, now - lookback_minutes * 60)).until(now)
    if len(window) == 0:
        return None
    peak = float(np.max(window.values)) * sizing.scale
    evidence = Evidence(sizing.metric, "max", lookback_minutes, len(window), peak)
    return peak * (1 + sizing.margin), evidence


def round_to_step(value: float, step: float, direction: str) -> float:
    """Round up for increases (never undersize), up for decreases too (keep headroom)."""
    del direction  # both directions round up: the margin is a floor, not a target
    return float(np.ceil(value / step - 1e-9) * step)
