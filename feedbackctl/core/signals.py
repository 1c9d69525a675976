"""Reading conditions off metric series: sustained windows and sizing.

A condition *holds* only when every point of its sustained window satisfies
it and the window is covered by data measured on the current configuration.
A single spike therefore never acts, and a window that is too short, too
sparse (too few points, or a hole between two of them) or too old is "not
enough data", which is its own answer.

A window ends at the newest point at or before ``now``: metrics arrive late
(CloudWatch publishes minutes behind), and data up to ``maxStalenessMinutes``
late is judged as it is, not as a window missing its end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from feedbackctl.core.models import Evidence, Series
from feedbackctl.core.policy import Condition, Limits, Sizing

# A window counts as covered when its first point is this close to its start.
COVERAGE_SLACK_FRACTION = 0.2
COVERAGE_SLACK_MIN_SECONDS = 600
# Without limits.maxGapMinutes: a hole longer than this many usual spacings, and never
# shorter than MIN_GAP_MINUTES (one late or lost point is not a hole).
GAP_SPACINGS = 3
MIN_GAP_MINUTES = 15


def max_gap_seconds(series: Series, limits: Limits) -> float:
    """The longest hole a window of ``series`` may have between two consecutive points."""
    return _max_gap(series.ts, limits)


def _max_gap(ts: npt.NDArray[np.int64], limits: Limits) -> float:
    if limits.max_gap_minutes is not None:
        return limits.max_gap_minutes * 60.0
    return max(MIN_GAP_MINUTES * 60.0, GAP_SPACINGS * median_spacing(ts))


def median_spacing(ts: npt.NDArray[np.int64]) -> float:
    """``np.median(np.diff(ts))``, exactly, for a fraction of its cost (it runs per rule and claim)."""
    if ts.shape[0] < 2:
        return 0.0
    gaps = ts[1:] - ts[:-1]
    gaps.sort()
    n = gaps.shape[0]
    return (float(gaps[(n - 1) // 2]) + float(gaps[n // 2])) / 2


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
    """Does ``cond`` hold at every point of the ``window_minutes`` up to the newest point?

    ``valid_from`` is the first instant whose data describes the current
    configuration (the last change of a coupled field plus settling).
    """
    limit = threshold if threshold is not None else cond.limit(spec)
    if limit is None:
        return WindowCheck(False, False, None, f"{cond.relative_to} is not a number")
    # Index arithmetic on the arrays rather than Series slices: this runs per rule and claim.
    end = int(series.ts.searchsorted(now, side="right")) if series is not None else 0
    if series is None or end == 0:
        return WindowCheck(False, False, None, f"no {cond.metric} data")
    ts = series.ts
    newest = float(ts[end - 1])
    if now - newest > limits.max_staleness_minutes * 60:
        return WindowCheck(
            False,
            False,
            None,
            f"newest {cond.metric} point is {(now - newest) / 60:.0f}m old "
            f"(max {limits.max_staleness_minutes}m)",
        )
    window_start = newest - window_minutes * 60
    if valid_from > window_start:
        span = max(0.0, now - valid_from) / 60
        return WindowCheck(
            False,
            False,
            None,
            f"only {span:.0f}m of {cond.metric} since the last change "
            f"(settling); the rule needs {window_minutes}m",
        )
    # The window's first point: at or after window_start (<= newest), so it lies in ts[:end].
    first = int(ts.searchsorted(window_start, side="left"))
    window_ts = ts[first:end]
    n = end - first
    slack = max(COVERAGE_SLACK_MIN_SECONDS, window_minutes * 60 * COVERAGE_SLACK_FRACTION)
    if float(window_ts[0]) - window_start > slack or n < limits.min_points:
        return WindowCheck(
            False,
            False,
            None,
            f"{n} {cond.metric} points cover the {window_minutes}m window too thinly "
            f"(need {limits.min_points}+ from its start)",
        )
    gaps = window_ts[1:] - window_ts[:-1]
    widest = int(gaps.argmax()) if gaps.size else 0
    allowed = _max_gap(ts[:end], limits)
    if gaps.size and float(gaps[widest]) > allowed:
        hole_start = datetime.fromtimestamp(float(window_ts[widest]), UTC)
        return WindowCheck(
            False,
            False,
            None,
            f"{cond.metric} has a {float(gaps[widest]) / 60:.0f}m gap after "
            f"{hole_start:%Y-%m-%dT%H:%MZ} in the {window_minutes}m window "
            f"(max {allowed / 60:.0f}m between points, limits.maxGapMinutes)",
        )
    values = series.values[first:end]
    if cond.op == "above":
        stat_name, stat = "min", float(values.min())
        holds = stat > limit
    else:
        stat_name, stat = "max", float(values.max())
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
