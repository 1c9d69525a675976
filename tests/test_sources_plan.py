"""The GetMetricData call planner: pure, so the API's limits are checked in microseconds."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedbackctl.sources.plan import Limits, minimum_calls, plan_calls, points_in

DAY = 86400
FIVE_MIN = 300


def covered(calls, periods, start, end):
    """Every (query, period start) fetched, counted."""
    seen: Counter[tuple[int, int]] = Counter()
    for call in calls:
        for q in call.queries:
            p = periods[q]
            first = call.start
            for k in range(points_in(p, call.start, call.end)):
                seen[(q, first + k * p)] += 1
    return seen


def expected(periods, start, end):
    return Counter(
        {(q, start + k * p): 1 for q, p in enumerate(periods) for k in range(points_in(p, start, end))}
    )


def test_4000_queries_of_288_points_take_12_calls() -> None:
    periods = [FIVE_MIN] * 4000
    calls = plan_calls(periods, 0, DAY)
    assert minimum_calls(periods, 0, DAY) == 12
    assert len(calls) == 12
    assert all(len(c.queries) <= 500 and c.points <= 100_800 for c in calls)
    assert sorted(q for c in calls for q in c.queries) == list(range(4000))


def test_600_queries_take_2_calls() -> None:
    periods = [FIVE_MIN] * 600
    calls = plan_calls(periods, 0, 3600)
    assert len(calls) == minimum_calls(periods, 0, 3600) == 2
    assert [len(c.queries) for c in calls] == [500, 100]


def test_500_queries_fit_one_call_and_501_do_not() -> None:
    assert len(plan_calls([FIVE_MIN] * 500, 0, 3600)) == 1
    assert len(plan_calls([FIVE_MIN] * 501, 0, 3600)) == 2


def test_a_seven_day_fleet_reaches_the_minimum() -> None:
    # 7 days of 5-minute points plus the point at --now: 2017 points a series.
    periods = [FIVE_MIN] * 10_000
    end = 7 * DAY + 1
    calls = plan_calls(periods, 0, end)
    assert len(calls) == minimum_calls(periods, 0, end) == 201
    assert covered(calls, periods, 0, end) == expected(periods, 0, end)


def test_a_series_longer_than_one_response_is_split_by_time() -> None:
    # 90 days of 1-minute points: 129,600 per query, more than one response holds.
    periods = [60] * 3
    end = 90 * DAY
    calls = plan_calls(periods, 0, end)
    assert len(calls) == minimum_calls(periods, 0, end) == 4
    assert all(c.points <= 100_800 for c in calls)
    assert len({(c.start, c.end) for c in calls}) > 1
    assert covered(calls, periods, 0, end) == expected(periods, 0, end)


def test_segments_fall_on_every_period_boundary() -> None:
    periods = [60, 300, 3600] * 5
    limits = Limits(max_queries=4, max_points=500)
    calls = plan_calls(periods, 0, 2 * DAY, limits)
    assert all(c.start % 3600 == 0 for c in calls)
    assert covered(calls, periods, 0, 2 * DAY) == expected(periods, 0, 2 * DAY)


def test_no_queries_no_calls() -> None:
    assert plan_calls([], 0, DAY) == []
    assert minimum_calls([], 0, DAY) == 0


def test_a_period_must_be_positive() -> None:
    with pytest.raises(ValueError):
        plan_calls([0], 0, DAY)


@settings(max_examples=150, deadline=None)
@given(
    periods=st.lists(st.sampled_from([60, 300, 900, 3600]), min_size=1, max_size=120),
    span=st.integers(min_value=1, max_value=3 * DAY),
    max_queries=st.integers(min_value=1, max_value=40),
    max_points=st.integers(min_value=60, max_value=3000),
)
def test_every_plan_respects_both_limits_and_fetches_each_point_once(
    periods: list[int], span: int, max_queries: int, max_points: int
) -> None:
    limits = Limits(max_queries, max_points)
    calls = plan_calls(periods, 0, span, limits)
    assert all(len(c.queries) <= max_queries for c in calls)
    assert all(sum(points_in(periods[q], c.start, c.end) for q in c.queries) <= max_points for c in calls)
    assert all(c.points <= max_points for c in calls)
    assert covered(calls, periods, 0, span) == expected(periods, 0, span)
    assert len(calls) >= minimum_calls(periods, 0, span, limits)


@settings(max_examples=150, deadline=None)
@given(
    queries=st.integers(min_value=1, max_value=5000),
    points=st.integers(min_value=1, max_value=2017),
)
def test_uniform_fleets_never_need_more_calls_than_whole_queries_force(queries: int, points: int) -> None:
    """The bound is reached unless whole queries leave room in every call unused."""
    periods = [FIVE_MIN] * queries
    end = points * FIVE_MIN
    per_call = min(500, 100_800 // points)
    calls = plan_calls(periods, 0, end)
    assert minimum_calls(periods, 0, end) <= len(calls) <= -(-queries // per_call)
    if 100_800 % points == 0 or points <= 201:
        assert len(calls) == minimum_calls(periods, 0, end)
