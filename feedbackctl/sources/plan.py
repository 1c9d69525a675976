"""Planning GetMetricData calls: a pure function of query periods and a time range.

CloudWatch takes at most 500 queries a call and returns at most 100,800
datapoints a response; moto enforces neither, so the tool does. The fewest
calls any plan can make is max(ceil(queries / 500), ceil(datapoints / 100,800)).
Each call has one time range shared by all of its queries, so the planner

1. splits the range into as few segments as let every query fit a response
   (only series longer than 100,800 points need that), then
2. packs the (query, segment) pieces into calls, largest first, filling each
   call up to both limits,

and, when whole pieces leave room unused, tries a few finer splits and keeps
the plan with the fewest calls. Segment edges fall on multiples of every
query's period, so no datapoint is fetched twice or missed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

MAX_QUERIES_PER_CALL = 500
MAX_POINTS_PER_CALL = 100_800
# Finer splits tried beyond the first that fits; each costs one packing pass.
EXTRA_SPLITS_TRIED = 8


@dataclass(frozen=True)
class Limits:
    max_queries: int = MAX_QUERIES_PER_CALL
    max_points: int = MAX_POINTS_PER_CALL


@dataclass(frozen=True)
class Call:
    """One GetMetricData call: queries (indices into the planned list) over [start, end)."""

    start: int
    end: int
    queries: tuple[int, ...]
    points: int  # the most datapoints the response can hold


def points_in(period: int, start: int, end: int) -> int:
    """Periods that begin in [start, end): the most datapoints one query returns."""
    return max(0, -(-(end - start) // period))


def minimum_calls(periods: Sequence[int], start: int, end: int, limits: Limits = Limits()) -> int:
    """max(ceil(queries / max_queries), ceil(datapoints / max_points))."""
    if not periods:
        return 0
    total = sum(points_in(p, start, end) for p in periods)
    return max(-(-len(periods) // limits.max_queries), -(-total // limits.max_points))


def plan_calls(periods: Sequence[int], start: int, end: int, limits: Limits = Limits()) -> list[Call]:
    """The calls that fetch every query's datapoints in [start, end) within the limits."""
    if not periods or end <= start:
        return []
    if any(p <= 0 for p in periods):
        raise ValueError("periods must be positive")
    grain = math.lcm(*set(periods))
    grains = -(-(end - start) // grain)
    smallest = min(periods)
    # The least number of segments that lets the densest query fit one response.
    per_grain = grain // smallest
    if per_grain > limits.max_points:
        raise ValueError(
            f"periods {sorted(set(periods))} share no boundary within {limits.max_points} datapoints"
        )
    first = -(-grains // (limits.max_points // per_grain))
    best: list[Call] | None = None
    floor = minimum_calls(periods, start, end, limits)
    for segments in range(first, min(grains, first + EXTRA_SPLITS_TRIED) + 1):
        calls = _pack_segments(periods, start, end, grain, grains, segments, limits)
        if best is None or len(calls) < len(best):
            best = calls
        if len(best) <= floor:
            break
    assert best is not None
    return best


def _pack_segments(
    periods: Sequence[int], start: int, end: int, grain: int, grains: int, segments: int, limits: Limits
) -> list[Call]:
    calls: list[Call] = []
    base, extra = divmod(grains, segments)
    at = start
    for k in range(segments):
        width = (base + (1 if k < extra else 0)) * grain
        seg_end = min(end, at + width)
        if seg_end <= at:
            break
        sizes = [points_in(p, at, seg_end) for p in periods]
        calls.extend(Call(at, seg_end, tuple(b), pts) for b, pts in _first_fit_decreasing(sizes, limits))
        at = seg_end
    return calls


def _first_fit_decreasing(sizes: Sequence[int], limits: Limits) -> list[tuple[list[int], int]]:
    """Bin packing with two capacities (queries and datapoints per call).

    First fit, largest pieces first. Pieces of one size are placed in bulk
    (fleets have a handful of distinct sizes), in input order, so one claim's
    queries tend to share a call.
    """
    groups: dict[int, list[int]] = {}
    for i, size in enumerate(sizes):
        groups.setdefault(size, []).append(i)
    members: list[list[int]] = []
    used: list[int] = []
    for size in sorted(groups, reverse=True):
        todo = groups[size]
        at = 0
        for b in range(len(members)):
            if at == len(todo):
                break
            room = min(limits.max_queries - len(members[b]), _fits(limits.max_points - used[b], size))
            if room > 0:
                take = todo[at : at + room]
                members[b].extend(take)
                used[b] += size * len(take)
                at += len(take)
        per_call = min(limits.max_queries, _fits(limits.max_points, size))
        while at < len(todo):
            take = todo[at : at + per_call]
            members.append(list(take))
            used.append(size * len(take))
            at += len(take)
    return [(sorted(m), u) for m, u in zip(members, used, strict=True)]


def _fits(room: int, size: int) -> int:
    return room // size if size > 0 else 1 << 30
