"""Reading a fleet's claims in bounded batches: series loaded, decided on, dropped.

A run's memory would otherwise grow with the fleet (a week of hourly points
for 50,000 claims x 4 metrics is most of a gigabyte once parsed). Histories,
claims and the small per-claim decisions stay for the whole run, so every
fleet-wide rule (rate limit, one change per claim, report totals, metrics
cost) still judges the whole candidate list; only the series are per batch.
The output does not depend on the batch size (docs/performance.md).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from feedbackctl.authority.commits import bulk
from feedbackctl.authority.snapshot import Snapshot
from feedbackctl.core.models import Claim
from feedbackctl.patterns import fetching
from feedbackctl.patterns.fetching import PlanFor
from feedbackctl.patterns.inputs import (
    Fleet,
    Gathered,
    Problem,
    absent_warnings,
    claim_inputs,
    prepare,
    requests_for,
)
from feedbackctl.proc import positive_setting
from feedbackctl.sources.base import MetricBatch, MetricsCost, fetch_batches, total_cost

# Claims per batch: large enough that per-batch costs (one bulk CSV parse, one
# GetMetricData round of 4,000 queries = 8 full calls) stay negligible, small
# enough that a batch's series and parse buffers stay a few tens of MB (1,000
# held about 30 MB more at the peak of a 10k fleet).
DEFAULT_BATCH_CLAIMS = 500
# Tests and benchmarks force small batches to prove the output does not change.
BATCH_ENV = "FEEDBACKCTL_BATCH"


@contextmanager
def long_lived() -> Iterator[None]:
    """What is built inside lives to the end of the run: the collector stops walking it.

    A fleet's claims and histories are millions of objects, none of them garbage
    before the run ends, and every full collection would walk them all again (a
    third of a second of a 10k-claim cold analyze, docs/performance.md). Paused
    while they are built, then frozen; ``whole_run`` hands them back at the end.
    """
    try:
        with bulk():
            yield
    finally:
        gc.freeze()


@contextmanager
def whole_run() -> Iterator[None]:
    """Around a run that uses ``long_lived``: what it froze is collectable again afterwards."""
    try:
        yield
    finally:
        gc.unfreeze()


def batch_claims() -> int:
    wrong = "is not a positive number of claims; unset it or fix it"
    return positive_setting(BATCH_ENV, DEFAULT_BATCH_CLAIMS, int, wrong, wrong)


def in_order(claims: Sequence[Claim], size: int) -> list[list[Claim]]:
    """Consecutive slices of ``claims``."""
    return [list(claims[i : i + size]) for i in range(0, len(claims), size)]


def kept_together(claims: Sequence[Claim], pairs: Mapping[str, str], size: int) -> list[list[Claim]]:
    """Slices of about ``size`` claims in which each paired claim sits beside its partner.

    A staged claim is decided on its validating claim's series (docs/validation.md),
    so a chain of stages is one unit; units keep the order of their first claim
    and each batch keeps the claims' own order.
    """
    index = {c.name: i for i, c in enumerate(claims)}
    parent = list(range(len(claims)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for later, earlier in pairs.items():
        if later in index and earlier in index:
            a, b = root(index[later]), root(index[earlier])
            parent[max(a, b)] = min(a, b)
    units: dict[int, list[int]] = {}
    for i in range(len(claims)):
        units.setdefault(root(i), []).append(i)
    out: list[list[Claim]] = []
    current: list[int] = []
    for members in units.values():  # dict order: by each unit's first claim
        if current and len(current) + len(members) > size:
            out.append([claims[i] for i in sorted(current)])
            current = []
        current += members
    if current:
        out.append([claims[i] for i in sorted(current)])
    return out


@dataclass
class Stream:
    """One run's claims read batch by batch; problems, notices and cost add up across them."""

    snapshot: Snapshot
    fleet: Fleet
    groups: list[list[Claim]]
    planned: PlanFor | None = None  # autotune: only what a decision can use (patterns/fetching.py)
    problems: list[Problem] = field(default_factory=list)
    source_warnings: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    costs: list[MetricsCost] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.problems = list(self.fleet.problems)

    @property
    def warnings(self) -> list[str]:
        return [*self.source_warnings, *self.absent]

    @property
    def metrics_cost(self) -> MetricsCost:
        return total_cost(self.costs)

    def batches(self, now: datetime) -> Iterator[Gathered]:
        """Each batch's inputs; drop them before asking for the next."""
        source = self.snapshot.settings.policy.source(self.fleet.source.name)
        for group, (batch, cost) in zip(self.groups, self._fetched(now), strict=True):
            inputs = claim_inputs(self.fleet, group, batch, self.problems)
            # A source-wide notice repeated by several batches is kept once.
            self.source_warnings += [w for w in batch.warnings if w not in self.source_warnings]
            self.absent += absent_warnings(batch, group)
            self.costs.append(cost)
            del batch  # the series live on in ``inputs`` only, until the caller drops them
            yield Gathered(inputs, [], source, self.fleet.histories)
            # Dropped before the next batch is read, so two batches' series never coexist.
            del inputs

    def _fetched(self, now: datetime) -> Iterator[tuple[MetricBatch, MetricsCost]]:
        fleet, end = self.fleet, now.timestamp()
        if self.planned is None or not isinstance(fleet.source, fetching.ChecksRequests):
            return fetch_batches(fleet.source, [requests_for(fleet, g, now) for g in self.groups], end)
        # The plan is per claim apart from the fleet's budget, which git fixes for the whole run.
        plan = self.planned(fleet.policy.source(fleet.source.name), fleet.histories)
        window = (fleet.start, end)
        rounds = (
            fetching.fetch(fleet.source, group, fleet.policy, fleet.histories, window, now, plan)
            for group in self.groups
        )
        return ((f.batch, f.cost) for f in rounds)


def open_stream(
    snapshot: Snapshot,
    metrics: str | None,
    now: datetime,
    *,
    values_for: Callable[[Claim], bool] | None = None,
    together: Mapping[str, str] | None = None,
    planned: PlanFor | None = None,
) -> Stream:
    """The run's claims and histories, read once; series to come batch by batch.

    ``together``: pairs of claims decided on each other's series (later stage ->
    validating stage), kept in one batch.
    """
    fleet = prepare(snapshot, metrics, now, values_for=values_for)
    size = batch_claims()
    groups = kept_together(fleet.claims, together, size) if together else in_order(fleet.claims, size)
    return Stream(snapshot, fleet, groups, planned)
