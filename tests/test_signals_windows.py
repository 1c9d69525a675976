"""The per-claim window memo (``signals.Windows``, which ``check_window`` asks too) and the
array-level sizing answer exactly what the plain definitions below answer, for any series,
window, limits and order of questions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedbackctl.core.models import Evidence, Series
from feedbackctl.core.policy import Condition, Limits, Sizing
from feedbackctl.core.signals import (
    COVERAGE_SLACK_FRACTION,
    COVERAGE_SLACK_MIN_SECONDS,
    WindowCheck,
    Windows,
    check_window,
    max_gap_seconds,
    size_from_usage,
)

T0 = 1_794_000_000
METRICS = ("m", "n")

# A usual spacing with the odd jitter and hole, windows of a few to many spacings: every branch
# of a window (stale, settling, thin, a hole, held or not) is reached.
value = st.one_of(
    st.floats(0, 100),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 50.0, 95.0]),
)
jitter = st.one_of(st.just(1.0), st.just(1.0), st.just(1.0), st.floats(0.8, 1.2), st.integers(2, 8))


@st.composite
def series(draw: Any, metric: str, step: int) -> Series:
    spacings = draw(st.lists(jitter, min_size=draw(st.sampled_from([0, 30])), max_size=120))
    gaps = [max(1, round(step * j)) for j in spacings]
    ts = np.array(np.cumsum([T0, *gaps]), dtype=np.int64)
    if draw(st.integers(0, 19)) == 0:
        ts = ts[:0]
    values = np.array(draw(st.lists(value, min_size=len(ts), max_size=len(ts))), dtype=np.float64)
    return Series(metric, ts, values)


@st.composite
def instant(draw: Any, by_metric: dict[str, Series], step: int) -> float:
    """Near the end of a series (with points after it or not), or anywhere."""
    s = by_metric[draw(st.sampled_from(METRICS))]
    if len(s) == 0 or draw(st.integers(0, 9)) == 0:
        return draw(st.floats(T0 - 3600, T0 + 40 * 86400))
    at = float(s.ts[draw(st.integers(len(s) // 2, len(s) - 1))])
    return at + draw(st.sampled_from([0.0, 0.5, step / 2, 2.0 * step]))


limits = st.builds(
    Limits,
    min_points=st.sampled_from([0, 1, 2, 3, 6, 6, 8]),
    max_staleness_minutes=st.sampled_from([0, 30, 600, 100_000, 100_000, 100_000]),
    max_gap_minutes=st.one_of(st.none(), st.none(), st.integers(1, 3000)),
)
cond = st.builds(
    Condition,
    metric=st.sampled_from(METRICS * 4 + ("absent",)),
    op=st.sampled_from(["above", "below"]),
    threshold=st.sampled_from([0.0, 0.5, 40.0, 90.0]),
    relative_to=st.sampled_from([None] * 6 + ["t", "bad"]),
)


def window(step: int) -> Any:
    spacings = st.integers(1, 60).map(lambda k: k * step // 60)
    return st.tuples(
        st.one_of(st.sampled_from([0, 1, 15, 30, 60, 1440, 10080]), spacings, spacings),
        st.one_of(st.just(float("-inf")), st.just(float("-inf")), st.floats(T0 - 86400, T0 + 30 * step)),
        limits,
    )


def plain_check_window(
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
    """The definition of a window's answer, one window at a time, on Series and plain numpy."""
    limit = cond.limit(spec) if threshold is None else threshold
    if limit is None:
        return WindowCheck(False, False, None, f"{cond.relative_to} is not a number")
    seen = None if series is None else series.until(now)
    if seen is None or len(seen) == 0:
        return WindowCheck(False, False, None, f"no {cond.metric} data")
    newest = float(seen.ts[-1])
    late = limits.max_staleness_minutes
    if now - newest > late * 60:
        why = f"newest {cond.metric} point is {(now - newest) / 60:.0f}m old (max {late}m)"
        return WindowCheck(False, False, None, why)
    start = newest - window_minutes * 60
    if valid_from > start:
        why = (
            f"only {max(0.0, now - valid_from) / 60:.0f}m of {cond.metric} since the last change "
            f"(settling); the rule needs {window_minutes}m"
        )
        return WindowCheck(False, False, None, why)
    window = seen.since(start)
    n = len(window)
    slack = max(COVERAGE_SLACK_MIN_SECONDS, window_minutes * 60 * COVERAGE_SLACK_FRACTION)
    if n < limits.min_points or float(window.ts[0]) - start > slack:
        why = (
            f"{n} {cond.metric} points cover the {window_minutes}m window too thinly "
            f"(need {limits.min_points}+ from its start)"
        )
        return WindowCheck(False, False, None, why)
    gaps = np.diff(window.ts)
    allowed = max_gap_seconds(seen, limits)
    if gaps.size and float(gaps.max()) > allowed:
        hole = datetime.fromtimestamp(float(window.ts[int(np.argmax(gaps))]), UTC)
        why = (
            f"{cond.metric} has a {float(gaps.max()) / 60:.0f}m gap after {hole:%Y-%m-%dT%H:%MZ} "
            f"in the {window_minutes}m window (max {allowed / 60:.0f}m between points, limits.maxGapMinutes)"
        )
        return WindowCheck(False, False, None, why)
    above = cond.op == "above"
    values = window.values
    stat_name, stat = ("min", float(np.min(values))) if above else ("max", float(np.max(values)))
    holds = stat > limit if above else stat < limit
    verb = "held" if holds else "did not hold"
    return WindowCheck(
        holds,
        True,
        Evidence(cond.metric, stat_name, window_minutes, n, stat, limit),
        f"{cond.metric} {cond.op} {limit:g} {verb} for {window_minutes}m ({stat_name} {stat:.4g}, n={n})",
    )


def answer(f: Any, *args: Any, **kwargs: Any) -> str:
    """repr of an answer, or of the exception raised: NaN evidence never equals itself."""
    try:
        return repr(f(*args, **kwargs))
    except Exception as e:  # noqa: BLE001 -- the general code's errors must be the memo's too
        return f"raised {type(e).__name__}"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(step=st.sampled_from([60, 300, 3600]), data=st.data())
def test_windows_answer_what_check_window_answers(step: int, data: st.DataObject) -> None:
    by_metric = {"m": data.draw(series("m", step)), "n": data.draw(series("n", step))}
    now = data.draw(instant(by_metric, step))
    # A few windows, each asked about by several conditions (the memo's case), in two orders.
    shapes = data.draw(st.lists(window(step), min_size=1, max_size=3))
    thresholds = st.one_of(st.none(), st.none(), st.sampled_from([0.0, 55.5]))
    asked = st.tuples(cond, st.sampled_from(shapes), thresholds)
    questions = data.draw(st.lists(asked, min_size=1, max_size=12))
    spec = {"t": 30, "bad": "x"}
    windows = Windows(by_metric, now)
    for c, (minutes, valid_from, lim), threshold in questions + questions[::-1]:
        kw = {"window_minutes": minutes, "valid_from": valid_from, "limits": lim, "threshold": threshold}
        got = answer(windows.check, c, spec, **kw)
        want = answer(plain_check_window, c, by_metric.get(c.metric), spec, now=now, **kw)
        assert got == want
        assert answer(check_window, c, by_metric.get(c.metric), spec, now=now, **kw) == want


def test_a_quiet_window_skips_the_median_but_a_hole_still_needs_it() -> None:
    # Spacings 60 s except one 30 min hole: the smallest spacing allows 15 min, the median 15 min too.
    ts = np.array([T0 + 60 * i for i in range(40)] + [T0 + 60 * 39 + 1800], dtype=np.int64)
    s = {"m": Series("m", ts, np.ones(len(ts)))}
    now = float(ts[-1])
    c = Condition("m", "above", 0.5)
    for minutes in (10, 60):
        kw: dict[str, Any] = {"window_minutes": minutes, "valid_from": 0.0, "limits": Limits()}
        assert Windows(s, now).check(c, {}, **kw) == plain_check_window(c, s["m"], {}, now=now, **kw)
    w = Windows(s, now).check(c, {}, window_minutes=60, valid_from=0.0, limits=Limits())
    assert not w.enough and "30m gap" in w.detail and "max 15m" in w.detail


def _sized_by_series(sizing: Sizing, s: Series, now: float, valid_from: float, lookback: int) -> Any:
    """size_from_usage as it was written on Series (since, until, np.max)."""
    window = s.since(max(valid_from, now - lookback * 60)).until(now)
    if len(window) == 0:
        return None
    peak = float(np.max(window.values)) * sizing.scale
    return peak * (1 + sizing.margin), Evidence(sizing.metric, "max", lookback, len(window), peak)


@settings(max_examples=300, deadline=None)
@given(
    s=st.sampled_from([60, 300, 3600]).flatmap(lambda step: series("u", step)),
    now=st.floats(T0 - 3600, T0 + 40 * 86400),
    valid_from=st.one_of(st.just(float("-inf")), st.floats(T0 - 86400, T0 + 30 * 86400)),
    lookback=st.sampled_from([0, 60, 1440, 10080]),
)
def test_sizing_on_the_arrays_is_sizing_on_series(
    s: Series, now: float, valid_from: float, lookback: int
) -> None:
    sizing = Sizing("u", margin=0.15, scale=0.001)
    got = size_from_usage(sizing, s, now=now, valid_from=valid_from, lookback_minutes=lookback)
    assert repr(got) == repr(_sized_by_series(sizing, s, now, valid_from, lookback))


def test_integer_and_huge_timestamps_are_searched_as_check_window_searches_them() -> None:
    # Past 2**53 an int64 timestamp has no exact float: an int ``now`` compares as an integer,
    # a float one as a float, in both.
    big = 2**53
    cases = [
        (np.array([big - 3, big - 1, big + 1, big + 3, big + 5], dtype=np.int64), [big + 3, float(big + 3)]),
        (np.array([10, 20, 30, 40, 50], dtype=np.int32), [40, 40.0, 41.5]),
        (np.array([16777200, 16777210, 16777220, 16777230], dtype=np.float32), [16777219.0, 16777221]),
    ]
    limits = Limits(min_points=1, max_gap_minutes=10**9)
    c = Condition("m", "above", -1.0)
    for ts, nows in cases:
        s = {"m": Series("m", ts, np.arange(len(ts), dtype=np.float64))}
        for now in nows:
            kw: dict[str, Any] = {"window_minutes": 0, "valid_from": float("-inf"), "limits": limits}
            got = Windows(s, now).check(c, {}, **kw)
            assert repr(got) == repr(plain_check_window(c, s["m"], {}, now=now, **kw))
