"""Properties the reliability suite adds to tests/test_properties.py (the core guards)
and tests/test_yamldoc.py (the splice): shards partition any fleet, and the fixture
format's freedoms (any order, duplicates, mixed timestamp spellings) never change
the series a claim is judged on.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from feedbackctl.authority.shard import Shard
from feedbackctl.core.models import Claim
from feedbackctl.sources.base import MetricRequest
from feedbackctl.sources.fixtures import FixtureSource

NOW = 1794096000  # 2026-11-08T00:00:00Z


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=40), max_size=60, unique=True), st.integers(1, 12))
def test_shards_partition_any_set_of_names(names: list[str], n: int) -> None:
    shards = [Shard(i, n) for i in range(n)]
    for name in names:
        assert sum(name in s for s in shards) == 1


def _iso(ts: int, style: int) -> str:
    when = datetime.fromtimestamp(ts, UTC)
    if style == 0:
        return str(ts)
    if style == 1:
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return when.astimezone(timezone(timedelta(hours=-5, minutes=-30))).isoformat()  # an offset


rows = st.lists(
    st.tuples(
        st.integers(NOW - 7 * 86400, NOW),  # timestamp
        st.floats(0, 1e6, allow_nan=False, allow_infinity=False).map(lambda v: round(v, 3)),
        st.integers(0, 2),  # spelling: epoch seconds, ISO with Z, ISO with an offset
    ),
    max_size=40,
)


def _series(text: str) -> tuple[list[int], list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "app"
        folder.mkdir()
        (folder / "memory_utilization.csv").write_text(text)
        claim = Claim("app", "ServerlessEventAppClaim", "x/v1", {}, "c.yaml")
        request = MetricRequest(claim, ("memory_utilization",), NOW - 7 * 86400, NOW)
        batch = FixtureSource.from_spec(tmp).fetch([request], NOW)
    assert not batch.problems, batch.problems
    s = batch.series["app"]["memory_utilization"]
    return s.ts.tolist(), s.values.tolist()


@settings(max_examples=150, deadline=None)
@given(rows, st.randoms(use_true_random=False))
def test_any_row_order_and_duplicates_read_as_sorted_unique_last_wins(
    data: list[tuple[int, float, int]], rnd: object
) -> None:
    text = "timestamp,value\n" + "".join(f"{_iso(ts, style)},{v}\n" for ts, v, style in data)
    last: dict[int, float] = {}
    for ts, v, _ in data:
        last[ts] = v  # later rows win, in file order
    expected = (sorted(last), [last[t] for t in sorted(last)])
    assert _series(text) == expected
    # Shuffling rows whose timestamps are distinct never changes the series.
    unique = list({ts: (ts, v, style) for ts, v, style in data}.values())
    shuffled = unique[:]
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    text = "timestamp,value\n" + "".join(f"{_iso(ts, style)},{v}\n" for ts, v, style in shuffled)
    ts, values = _series(text)
    assert ts == sorted(t for t, _, _ in unique)
    assert np.allclose(values, [dict((t, v) for t, v, _ in unique)[t] for t in ts])
