from __future__ import annotations

import pytest

from feedbackctl.authority.shard import ALL, parse_shard
from feedbackctl.errors import UsageError


def test_shards_cover_every_claim_exactly_once() -> None:
    names = [f"app-{i}-{env}" for i in range(2000) for env in ("dev", "prod")]
    for n in (1, 2, 3, 7, 16):
        shards = [parse_shard(f"{i}/{n}") for i in range(n)]
        owners = [[s for s in shards if name in s] for name in names]
        assert all(len(o) == 1 for o in owners)
        sizes = [sum(1 for name in names if name in s) for s in shards]
        assert min(sizes) > len(names) / n * 0.8  # roughly even


def test_membership_is_stable_as_the_fleet_grows() -> None:
    s = parse_shard("1/4")
    before = {f"c{i}" for i in range(100) if f"c{i}" in s}
    after = {f"c{i}" for i in range(1000) if f"c{i}" in s}
    assert before <= after


@pytest.mark.parametrize("bad", ["4/4", "x", "1/0", "-1/3", "1/2/3"])
def test_bad_shard_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError, match="must be i/n"):
        parse_shard(bad)


def test_no_shard_takes_everything() -> None:
    assert parse_shard(None) is ALL and "anything" in ALL
