"""Metric sources: what the shell asks for, what it gets back, and where sources come from.

A source turns claims into metric series. Problems with one claim's metrics are
values (``MetricBatch.problems``), not exceptions, so the other claims are still
processed (docs/contracts.md, "Bad input").
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from feedbackctl.core.models import Claim, Series
from feedbackctl.errors import UsageError


@dataclass(frozen=True)
class MetricRequest:
    """The metrics wanted for one claim over [start, end] (epoch seconds, inclusive)."""

    claim: Claim
    metrics: tuple[str, ...]
    start: float
    end: float


@dataclass
class MetricBatch:
    """Series per claim and metric, plus one-line problems per claim."""

    series: dict[str, dict[str, Series]] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)
    # Claims the source has no data for at all: not an error (a new claim, a
    # claim nobody measures yet); their decisions say "not enough data".
    absent: dict[str, str] = field(default_factory=dict)
    # Those of the problems that concern one metric's series only (claim -> metric -> the
    # line): only the rules and guardrails that need it cannot decide; the claim goes on.
    metric_problems: dict[str, dict[str, str]] = field(default_factory=dict)
    # Source-wide notices (one line each), e.g. points after the evaluation time left out,
    # or a secondary source (Cost Explorer) that could not be read.
    warnings: list[str] = field(default_factory=list)

    def add_series(self, claim: str, series: Series) -> None:
        self.series.setdefault(claim, {})[series.metric] = series

    def add_absent(self, claim: str, message: str) -> None:
        self.absent[claim] = message

    def add_metric_problem(self, claim: str, metric: str, problem: str) -> None:
        self.metric_problems.setdefault(claim, {}).setdefault(metric, problem)
        self.add_problem(claim, problem)

    def add_problem(self, claim: str, problem: str) -> None:
        self.problems.setdefault(claim, []).append(problem)


@dataclass(frozen=True)
class MetricsCost:
    """What one run's metric reads cost: requests sent, metrics billed, and the estimate in USD."""

    api_calls: int = 0
    metrics_requested: int = 0
    estimated_usd: float = 0.0

    def json(self) -> dict[str, int | float]:
        return {
            "apiCalls": self.api_calls,
            "metricsRequested": self.metrics_requested,
            "estimatedUSD": round(self.estimated_usd, 6),
        }


@runtime_checkable
class ReportsCost(Protocol):
    """A source that pays per request (CloudWatch, Cost Explorer) says what the last fetch cost."""

    def cost(self) -> MetricsCost: ...


def fetch_cost(source: object, requests: Sequence[MetricRequest]) -> MetricsCost:
    """The last fetch's cost; a free source (fixtures) requested its series at no charge."""
    if isinstance(source, ReportsCost):
        return source.cost()
    return MetricsCost(metrics_requested=sum(len(r.metrics) for r in requests))


@runtime_checkable
class FetchesInBatches(Protocol):
    """A source that reads several groups of requests as one run (fixtures: one notice for all)."""

    def fetch_batches(
        self, groups: Sequence[Sequence[MetricRequest]], now: float
    ) -> Iterator[MetricBatch]: ...


def fetch_batches(
    source: MetricSource, groups: Sequence[Sequence[MetricRequest]], now: float
) -> Iterator[tuple[MetricBatch, MetricsCost]]:
    """Each group's batch, read when the caller asks for it, with what reading it cost.

    A source-wide notice repeated by several groups (a secondary source that
    could not be read) is kept once, where it first appears.
    """
    batches = (
        source.fetch_batches(groups, now)
        if isinstance(source, FetchesInBatches)
        else (source.fetch(g, now) for g in groups)
    )
    seen: set[str] = set()
    for group, batch in zip(groups, batches, strict=True):
        fresh = [w for w in batch.warnings if w not in seen]
        seen.update(fresh)
        batch.warnings = fresh
        yield batch, fetch_cost(source, group)


def total_cost(costs: Iterable[MetricsCost]) -> MetricsCost:
    calls = metrics = 0
    usd = 0.0
    for c in costs:
        calls, metrics, usd = calls + c.api_calls, metrics + c.metrics_requested, usd + c.estimated_usd
    return MetricsCost(calls, metrics, usd)


class MetricSource(Protocol):
    name: str  # reported as Feedback-Source, e.g. "metric-fixtures" / "cloudwatch-metrics"

    def fetch(self, requests: Sequence[MetricRequest], now: float) -> MetricBatch: ...


SourceFactory = Callable[[str], MetricSource]
# (repo path, text) of a policy file the repo sets at the authority ref, by file name.
PolicyReader = Callable[[str], tuple[str, bytes] | None]


@runtime_checkable
class ReadsRepoPolicies(Protocol):
    """A source configured by a policy file (CloudWatch's metric mapping) that a repo may override."""

    def use_repo_policies(self, read: PolicyReader) -> None: ...

# Sources whose modules are imported only when asked for, so a fixtures run never
# pays for importing boto3. Each module calls register() when imported.
_BUILTIN_MODULES: dict[str, str] = {
    "fixtures": "feedbackctl.sources.fixtures",
    "cloudwatch": "feedbackctl.sources.cloudwatch",
}
# Any spec that names no registered kind is a fixtures directory path.
DEFAULT_KIND = "fixtures"

_factories: dict[str, SourceFactory] = {}


def register(kind: str, factory: SourceFactory) -> None:
    """Make ``--metrics KIND`` (or ``KIND:ARGS``) open a source built by ``factory(spec)``."""
    _factories[kind] = factory


def is_source_kind(spec: str) -> bool:
    """Does ``spec`` name a metric source kind (``cloudwatch``, ``kind:args``) rather than a folder?"""
    kind = spec.split(":", 1)[0]
    return kind != DEFAULT_KIND and (kind in _factories or kind in _BUILTIN_MODULES)


def _factory(kind: str) -> SourceFactory | None:
    """The factory registered for ``kind``, importing a built-in source on first use."""
    if kind not in _factories and kind in _BUILTIN_MODULES:
        try:
            importlib.import_module(_BUILTIN_MODULES[kind])
        except ModuleNotFoundError as exc:
            raise UsageError(
                f"metric source '{kind}' is not available in this install ({exc.name} is missing)"
            ) from exc
        if kind not in _factories:  # pragma: no cover - a built-in module that forgot register()
            raise UsageError(f"metric source '{kind}' did not register itself")
    return _factories.get(kind)


def open_source(spec: str) -> MetricSource:
    """``cloudwatch`` (or another registered ``kind[:args]``) or a fixtures directory path."""
    if not spec.strip():
        raise UsageError("--metrics is empty; pass a fixtures directory or 'cloudwatch'")
    factory = _factory(spec.split(":", 1)[0]) or _factory(DEFAULT_KIND)
    assert factory is not None  # the fixtures module always registers itself
    return factory(spec)
