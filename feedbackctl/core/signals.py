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
from datetime import UTC, datetime
from typing import Any, NamedTuple

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


def _max_gap(ts: npt.NDArray[np.int64], limits: Limits, spacing: float | None = None) -> float:
    """``spacing``: ``median_spacing(ts)``, when the caller has it already."""
    if limits.max_gap_minutes is not None:
        return limits.max_gap_minutes * 60.0
    return max(MIN_GAP_MINUTES * 60.0, GAP_SPACINGS * (median_spacing(ts) if spacing is None else spacing))


def median_spacing(ts: npt.NDArray[np.int64]) -> float:
    """``np.median(np.diff(ts))``, exactly, for a fraction of its cost (it runs per rule and claim)."""
    if ts.shape[0] < 2:
        return 0.0
    return _middle(_sorted_gaps(ts))


def _sorted_gaps(ts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    gaps = ts[1:] - ts[:-1]
    gaps.sort()
    return gaps


def _middle(ordered: npt.NDArray[np.int64]) -> float:
    n = ordered.shape[0]
    return (float(ordered[(n - 1) // 2]) + float(ordered[n // 2])) / 2


class WindowCheck(NamedTuple):
    """What one sustained window says (a tuple: it is made for every rule, claim and guardrail)."""

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
    configuration (the last change of a coupled field plus settling). One
    question of ``Windows``, which answers many of one claim's at once.
    """
    windows = Windows({} if series is None else {cond.metric: series}, now)
    return windows.check(
        cond, spec, window_minutes=window_minutes, valid_from=valid_from, limits=limits, threshold=threshold
    )


# ndarray.min()/max() without their Python wrapper: the same reduction (axis=None).
_min_of = np.minimum.reduce
_max_of = np.maximum.reduce


class _SeriesAt:
    """One series as every window of it ending at ``now`` sees it: its points up to ``now``."""

    __slots__ = ("ts", "tsf", "values", "end", "newest", "widest_gap", "_spacing")

    def __init__(self, series: Series, now: float) -> None:
        self.ts = ts = series.ts
        # searchsorted with a float key casts an integer array to float64 first, on every call:
        # cast once (the same cast, so the same answer; any other array is searched as it is).
        self.tsf = ts.astype(np.float64) if ts.dtype.kind in "iu" else ts
        self.values = series.values
        self.end = int((self.tsf if isinstance(now, float) else ts).searchsorted(now, side="right"))
        self.newest = float(self.ts[self.end - 1]) if self.end else 0.0
        self.widest_gap = 0.0  # between two points up to now, once allowed() has sorted them
        self._spacing: float | None = None

    def allowed(self, limits: Limits) -> float:
        """``_max_gap(ts[:end], limits)``, from the gaps up to ``now`` sorted once (end > 1)."""
        if self._spacing is None:
            ordered = _sorted_gaps(self.ts[: self.end])
            self._spacing = _middle(ordered)
            self.widest_gap = float(ordered[-1])
        return _max_gap(self.ts, limits, self._spacing)


class _Span:
    """A window that has enough data: its points ``first:end``, and their min and max once read."""

    __slots__ = ("first", "end", "values", "least", "most")

    def __init__(self, first: int, end: int, values: Any = None) -> None:
        self.first, self.end, self.values = first, end, values
        self.least: float | None = None
        self.most: float | None = None


_UNSEEN = _Span(0, 0)  # not in a memo yet

# (metric, window_minutes, valid_from, the limits a window reads) -> what the window is.
_WindowKey = tuple[str, int, float, int, int, int | None]


class Windows:
    """The sustained windows of one claim's series at one ``now``, each worked out once.

    A claim's rules, their further conditions and the guardrails read a few
    series, often the same window of one (two day-long rules on
    ``memory_utilization``). What a window is (covered, a hole, its min and
    max) does not depend on the threshold compared with it, so it is found once
    per claim and each condition only compares. The gaps up to ``now`` are
    sorted once per series (the median spacing, and the widest of them); a
    window's own gaps, some of those, are looked at only when that widest is
    more than the gap allowed. tests/test_signals_windows.py pins ``check`` to
    the definition written plainly, one window at a time.
    """

    __slots__ = ("series", "now", "_at", "_spans")

    def __init__(self, series: Mapping[str, Series], now: float) -> None:
        self.series = series
        self.now = now
        self._at: dict[str, _SeriesAt] = {}
        self._spans: dict[_WindowKey, WindowCheck | _Span] = {}

    def check(
        self,
        cond: Condition,
        spec: Mapping[str, Any],
        *,
        window_minutes: int,
        valid_from: float,
        limits: Limits,
        threshold: float | None = None,
    ) -> WindowCheck:
        """Does ``cond`` hold over this window of its metric (``check_window``)?"""
        limit = threshold if threshold is not None else cond.limit(spec)
        if limit is None:
            return WindowCheck(False, False, None, f"{cond.relative_to} is not a number")
        metric = cond.metric
        key = (
            metric, window_minutes, valid_from,
            limits.max_staleness_minutes, limits.min_points, limits.max_gap_minutes,
        )  # fmt: skip
        span = self._spans.get(key, _UNSEEN)
        if span is _UNSEEN:
            span = self._spans[key] = self._span(metric, window_minutes, valid_from, limits)
        if not isinstance(span, _Span):
            return span
        n = span.end - span.first
        if cond.op == "above":
            stat = span.least
            if stat is None:
                stat = span.least = float(_min_of(span.values[span.first : span.end], axis=None))
            stat_name = "min"
            holds = stat > limit
        else:
            stat = span.most
            if stat is None:
                stat = span.most = float(_max_of(span.values[span.first : span.end], axis=None))
            stat_name = "max"
            holds = stat < limit
        verb = "held" if holds else "did not hold"
        return WindowCheck(
            holds,
            True,
            Evidence(metric, stat_name, window_minutes, n, stat, limit),
            f"{metric} {cond.op} {limit:g} {verb} for {window_minutes}m ({stat_name} {stat:.4g}, n={n})",
        )

    def _span(
        self, metric: str, window_minutes: int, valid_from: float, limits: Limits
    ) -> WindowCheck | _Span:
        """What a window is, up to the statistic: each reason it has not enough data, in order."""
        series = self.series.get(metric)
        if series is None:
            return WindowCheck(False, False, None, f"no {metric} data")
        at = self._at.get(metric)
        if at is None:
            at = self._at[metric] = _SeriesAt(series, self.now)
        end = at.end
        if end == 0:
            return WindowCheck(False, False, None, f"no {metric} data")
        now, newest = self.now, at.newest
        if now - newest > limits.max_staleness_minutes * 60:
            return WindowCheck(
                False,
                False,
                None,
                f"newest {metric} point is {(now - newest) / 60:.0f}m old "
                f"(max {limits.max_staleness_minutes}m)",
            )
        window_start = newest - window_minutes * 60
        if valid_from > window_start:
            span = max(0.0, now - valid_from) / 60
            return WindowCheck(
                False,
                False,
                None,
                f"only {span:.0f}m of {metric} since the last change "
                f"(settling); the rule needs {window_minutes}m",
            )
        ts = at.ts
        first = int(at.tsf.searchsorted(window_start, side="left"))
        n = max(0, end - first)  # >= 1 for any window of 0 minutes or more
        slack = max(COVERAGE_SLACK_MIN_SECONDS, window_minutes * 60 * COVERAGE_SLACK_FRACTION)
        if n < 1 or float(ts[first]) - window_start > slack or n < limits.min_points:
            return WindowCheck(
                False,
                False,
                None,
                f"{n} {metric} points cover the {window_minutes}m window too thinly "
                f"(need {limits.min_points}+ from its start)",
            )
        if n > 1:
            allowed = at.allowed(limits)
            # A window's gaps are some of the series' gaps up to now: when the widest of those
            # is allowed, so is the window's, and its own are not looked at.
            if at.widest_gap > allowed:
                window_ts = ts[first:end]
                gaps = window_ts[1:] - window_ts[:-1]
                at_widest = int(gaps.argmax())
                widest = float(gaps[at_widest])
                if widest > allowed:
                    hole_start = datetime.fromtimestamp(float(window_ts[at_widest]), UTC)
                    return WindowCheck(
                        False,
                        False,
                        None,
                        f"{metric} has a {widest / 60:.0f}m gap after "
                        f"{hole_start:%Y-%m-%dT%H:%MZ} in the {window_minutes}m window "
                        f"(max {allowed / 60:.0f}m between points, limits.maxGapMinutes)",
                    )
        return _Span(first, end, at.values)


def size_from_usage(
    sizing: Sizing, series: Series | None, *, now: float, valid_from: float, lookback_minutes: int
) -> tuple[float, Evidence] | None:
    """Peak absolute usage plus margin (VPA adds 15 %), or None without data."""
    if series is None:
        return None
    # series.since(start).until(now), on the arrays: this runs for every rule that fires.
    ts = series.ts
    first = int(ts.searchsorted(max(valid_from, now - lookback_minutes * 60), side="left"))
    n = int(ts[first:].searchsorted(now, side="right"))
    if n == 0:
        return None
    peak = float(_max_of(series.values[first : first + n], axis=None)) * sizing.scale
    evidence = Evidence(sizing.metric, "max", lookback_minutes, n, peak)
    return peak * (1 + sizing.margin), evidence


def round_to_step(value: float, step: float, direction: str) -> float:
    """Round up for increases (never undersize), up for decreases too (keep headroom)."""
    del direction  # both directions round up: the margin is a floor, not a target
    return float(np.ceil(value / step - 1e-9) * step)
