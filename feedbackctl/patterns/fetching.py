"""Reading a run's metrics: what its rules read, or (autotune) only what a decision can use.

analyze and propose read, per claim, every metric a rule of a field the claim
sets reads, and the guardrails: full evidence, nothing no rule of theirs
reads. autotune with a source that bills per metric (``--metrics
cloudwatch``) follows the fetch plan of ``core/fetchplan.py``: nothing for
the fields git already settles, the trigger metrics first, the rest only for
the claims whose trigger fired; two rounds at most, each packed into the
fewest calls by the source. See docs/cloudwatch.md.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from feedbackctl.authority.history import Histories
from feedbackctl.core import fetchplan
from feedbackctl.core.decide import ClaimInputs
from feedbackctl.core.guards import Budget, RunSlot, fleet_budget
from feedbackctl.core.models import Claim
from feedbackctl.core.policy import Policy, Source
from feedbackctl.sources.base import MetricBatch, MetricRequest, MetricsCost, MetricSource, fetch_cost


@runtime_checkable
class ChecksRequests(MetricSource, Protocol):
    """A source that can say, without sending anything, what a fetch would report (CloudWatch)."""

    def check(self, requests: Sequence[MetricRequest]) -> MetricBatch: ...


@dataclass(frozen=True)
class Planned:
    """autotune's fetch plan: the decision's git-only inputs, known before any metric is read."""

    source: Source  # the registry entry the decisions act as (trust, cooldown)
    budget: Budget | None = None
    everything: frozenset[str] = frozenset()  # claims read in full (validating claims)


PlanFor = Callable[[Source, Histories], Planned]


def for_autotune(
    now: datetime, policy: Policy, everything: Collection[str], slot: RunSlot | None = None
) -> PlanFor:
    """autotune's plan, once the run's source entry and histories are known (``slot``: its shard's share)."""

    def planned(source: Source, histories: Histories) -> Planned:
        budget = fleet_budget(histories.fleet, now, policy.limits, slot)
        return Planned(source, budget, frozenset(everything))

    return planned


@dataclass
class Fetched:
    batch: MetricBatch
    cost: MetricsCost
    plan: fetchplan.FetchPlan | None = None


def fetch(
    source: MetricSource,
    claims: Sequence[Claim],
    policy: Policy,
    histories: Histories,
    window: tuple[float, float],
    now: datetime,
    planned: Planned | None = None,
) -> Fetched:
    start, end = window
    if planned is None or not isinstance(source, ChecksRequests):
        requests = full_requests(claims, policy, start, end)
        return Fetched(source.fetch(requests, end), fetch_cost(source, requests))
    return _in_rounds(source, claims, policy, histories, window, now, planned)


def full_requests(claims: Sequence[Claim], policy: Policy, start: float, end: float) -> list[MetricRequest]:
    """A full fetch of ``claims`` (analyze, propose, fixtures): what their decisions can read.

    That is ``fetchplan.claim_metrics`` of each claim, worked out once per set of fields.

    What a claim's decisions can read depends only on which tuned fields it
    sets (``fetchplan.set_fields``: those whose value is not None), and a
    fleet's claims share a handful of such sets; asked per claim, the policy
    gave 10k claims the same few answers 10k times (docs/performance.md).
    """
    known: dict[tuple[str, ...], tuple[str, ...]] = {}
    requests = []
    for c in claims:
        fields = fetchplan.fields_set_by(c, policy)
        metrics = known.get(fields)
        if metrics is None:
            metrics = known[fields] = fetchplan.evidence_metrics(policy, fields)
        requests.append(MetricRequest(c, metrics, start, end))
    return requests


def _in_rounds(
    source: ChecksRequests,
    claims: Sequence[Claim],
    policy: Policy,
    histories: Histories,
    window: tuple[float, float],
    now: datetime,
    planned: Planned,
) -> Fetched:
    start, end = window
    # Naming problems (a template value unset, two claims on one series) are the
    # same as a full fetch would report: they come from git, not from the metrics.
    batch = source.check(full_requests(claims, policy, start, end))
    fleet = [ClaimInputs(c, histories=histories.for_claim(c.name)) for c in claims]
    plan = fetchplan.plan_fetch(fleet, policy, now, planned.source, planned.budget, planned.everything)
    ok = [c for c in claims if c.name not in batch.problems]
    cost = _plus(MetricsCost(), _round(source, ok, plan.round_one, window, batch))
    fetched = [i for i in (inputs_of(c, batch, histories) for c in ok) if i is not None]
    more = fetchplan.second_round(plan, fetched, policy, now, planned.source)
    cost = _plus(cost, _round(source, [c for c in ok if c.name in more], more, window, batch))
    return Fetched(batch, cost, plan)


def inputs_of(claim: Claim, batch: MetricBatch, histories: Histories) -> ClaimInputs | None:
    """The claim's inputs from a batch; None when its metrics cannot be trusted at all.

    One bad series stops only what needs it (the core names it in those
    decisions); any other problem means none of the claim's series can be used.
    """
    problems = batch.problems.get(claim.name, [])
    unreadable = batch.metric_problems.get(claim.name, {})
    if problems and set(problems) - set(unreadable.values()):
        return None
    found = batch.series.get(claim.name, {})
    series = {m: s for m, s in found.items() if m not in unreadable} if unreadable else dict(found)
    return ClaimInputs(claim, series, histories.for_claim(claim.name), unreadable=unreadable)


def _round(
    source: ChecksRequests,
    claims: Sequence[Claim],
    wanted: Mapping[str, tuple[str, ...]],
    window: tuple[float, float],
    into: MetricBatch,
) -> MetricsCost | None:
    start, end = window
    requests = [MetricRequest(c, wanted[c.name], start, end) for c in claims if wanted.get(c.name)]
    if not requests:
        return None
    merge(into, source.fetch(requests, end))
    return fetch_cost(source, requests)


def _plus(total: MetricsCost, more: MetricsCost | None) -> MetricsCost:
    if more is None:
        return total
    return MetricsCost(
        total.api_calls + more.api_calls,
        total.metrics_requested + more.metrics_requested,
        total.estimated_usd + more.estimated_usd,
    )


def merge(into: MetricBatch, more: MetricBatch) -> None:
    """A later round's results into the run's batch (problems once; absent only without any series)."""
    for claim, series in more.series.items():
        into.series.setdefault(claim, {}).update(series)
    for claim, problems in more.problems.items():
        for p in problems:
            if p not in into.problems.get(claim, []):
                into.add_problem(claim, p)
    for claim, by_metric in more.metric_problems.items():
        for metric, p in by_metric.items():
            into.metric_problems.setdefault(claim, {}).setdefault(metric, p)
    for claim, message in more.absent.items():
        into.absent[claim] = message
    into.absent = {c: m for c, m in into.absent.items() if not into.series.get(c)}
    into.warnings.extend(w for w in more.warnings if w not in into.warnings)
