"""``--metrics cloudwatch``: claim metrics from CloudWatch ``GetMetricData``.

Each claim's metrics become one query per function (``cloudwatch_mapping``);
the queries are packed into as few calls as the API's limits allow
(``plan``), each call follows ``NextToken`` (``cloudwatch_calls``), and the
per-function series are combined into the claim's series (the worst of its
functions).

Credentials, profile, region and endpoint come from the standard AWS chain
(``AWS_PROFILE``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``, ...); a claim's own
region (``spec.region`` by default) picks the regional endpoint. Retries use
botocore's standard mode. What goes wrong for some claims (throttling after
retries, a refused or partial result, two claims reading the same series) is
reported for those claims; the others are still processed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import boto3
import numpy as np
from botocore.config import Config
from botocore.exceptions import NoRegionError, ProfileNotFound

from feedbackctl.core.models import Series
from feedbackctl.errors import UsageError
from feedbackctl.sources import costexplorer, plan
from feedbackctl.sources.base import MetricBatch, MetricRequest, MetricsCost, PolicyReader, register
from feedbackctl.sources.cloudwatch_calls import (
    F64,
    Pulled,
    PullStats,
    Query,
    _progress,
    _session,
    run_call,
)
from feedbackctl.sources.cloudwatch_mapping import (
    FILE,
    CloudWatchMapping,
    MetricMap,
    MissingValue,
    load_mapping,
)

NAME = "cloudwatch-metrics"


class CloudWatchSource:
    """Reads claim metrics with GetMetricData, batched to the API's limits."""

    def __init__(
        self,
        name: str = NAME,
        *,
        session: Callable[[], boto3.Session] = _session,
        limits: plan.Limits = plan.Limits(),
        mapping: CloudWatchMapping | None = None,
    ) -> None:
        self.name = name
        self._new_session = session
        self._limits = limits
        self._mapping = mapping
        self._override: tuple[str, bytes] | None = None
        self._session: boto3.Session | None = None
        self.stats = PullStats()

    @classmethod
    def from_spec(cls, spec: str) -> CloudWatchSource:
        """``cloudwatch`` or ``cloudwatch:NAME`` (NAME: its feedbackSources entry)."""
        _, _, name = spec.partition(":")
        return cls(name.strip() or NAME)

    def use_repo_policies(self, read: PolicyReader) -> None:
        self._override = read(FILE)

    @property
    def mapping(self) -> CloudWatchMapping:
        if self._mapping is None:
            self._mapping = load_mapping(self._override)
        return self._mapping

    def check(self, requests: Sequence[MetricRequest]) -> MetricBatch:
        """The problems a fetch of ``requests`` reports before it sends anything (no network).

        They come from the claims and the mapping alone (a value a template
        needs is unset, two claims name one series), so a run that fetches
        only some of the metrics still reports every one of them.
        """
        batch = MetricBatch()
        self._checked(requests, batch)
        return batch

    def _checked(self, requests: Sequence[MetricRequest], batch: MetricBatch) -> list[Query]:
        queries = [q for q in self._queries(requests, batch) if q.claim not in batch.problems]
        return self._without_shared_series(queries, batch)

    def fetch(self, requests: Sequence[MetricRequest], now: float) -> MetricBatch:
        batch = MetricBatch()
        self.stats = PullStats()
        self._session = None
        queries = self._checked(requests, batch)
        for request in requests:
            if request.claim.name not in batch.problems:
                batch.series.setdefault(request.claim.name, {})
        if queries:
            pulled = self._pull(queries)
            self._report_failures(queries, pulled, batch)
            self._assemble(queries, pulled, requests, batch)
        self._costs(requests, now, batch)
        return batch

    def cost(self) -> MetricsCost:
        pricing = self.mapping.pricing
        return MetricsCost(
            api_calls=self.stats.requests + self.stats.cost_requests,
            metrics_requested=self.stats.metrics_requested,
            estimated_usd=self.stats.metrics_requested / 1000 * pricing.per_thousand_metrics_usd
            + self.stats.cost_requests * pricing.per_cost_request_usd,
        )

    def _costs(self, requests: Sequence[MetricRequest], now: float, batch: MetricBatch) -> None:
        """The metric Cost Explorer supplies (cost_daily), for the claims that asked for it."""
        cmap = self.mapping.cost
        wanted = [r for r in requests if cmap.metric in r.metrics and r.claim.name not in batch.problems]
        if not cmap.enabled:
            return
        if not wanted:
            return
        stats = costexplorer.CostStats()
        try:
            costexplorer.fetch_costs(
                costexplorer.client_factory(self._shared_session()), cmap, wanted, now, batch, stats
            )
        finally:
            self.stats.cost_requests += stats.requests

    # --- queries ---------------------------------------------------------

    def _queries(self, requests: Sequence[MetricRequest], batch: MetricBatch) -> Iterator[Query]:
        mapping = self.mapping
        for request in requests:
            claim = request.claim
            kind = mapping.kind(claim.kind)
            wanted = [mapping.metrics[m] for m in request.metrics if m in mapping.metrics]
            if kind is None:
                batch.add_problem(
                    claim.name,
                    f"kind {claim.kind} has no CloudWatch mapping; add it under kinds: in policies/{FILE}",
                )
                continue
            try:
                region = kind.region.render(claim) if kind.region is not None else None
            except MissingValue:
                region = None  # the standard chain's region
            try:
                functions = [t.render(claim) for t in kind.functions]
                for m in wanted:
                    if m.per_function and not functions:
                        raise MissingValue("function")
                    for fn in functions if m.per_function else [None]:
                        yield self._query(claim.name, m, fn, region, request)
            except MissingValue as missing:
                batch.add_problem(claim.name, _missing_message(missing.key, claim.kind))

    def _query(
        self, claim_name: str, m: MetricMap, function: str | None, region: str | None, request: MetricRequest
    ) -> Query:
        claim = request.claim
        dims = [{"Name": k, "Value": t.render(claim, function)} for k, t in m.dimensions]
        metric: dict[str, Any] = {"Namespace": m.namespace, "MetricName": m.metric_name}
        if dims:
            metric["Dimensions"] = dims
        stat: dict[str, Any] = {"Metric": metric, "Period": m.period, "Stat": m.stat}
        if m.unit is not None:
            stat["Unit"] = m.unit
        start = int(request.start) // m.period * m.period
        target = function or ",".join(f"{d['Name']}={d['Value']}" for d in dims) or m.metric_name
        return Query(claim_name, m.metric, target, region, stat, m.period, start, int(request.end) + 1)

    def _without_shared_series(self, queries: list[Query], batch: MetricBatch) -> list[Query]:
        """Two claims reading one series would each be judged on the other's load."""
        owners: dict[tuple[Any, ...], set[str]] = defaultdict(set)
        for q in queries:
            owners[q.series_key].add(q.claim)
        shared: dict[str, tuple[set[str], str, str | None]] = {}
        for q in queries:
            others = owners[q.series_key] - {q.claim}
            if others and q.claim not in shared:
                shared[q.claim] = (others, q.target, q.region)
        for claim, (others, target, region) in sorted(shared.items()):
            where = f" in {region}" if region else ""
            batch.add_problem(
                claim,
                f"reads the same CloudWatch series as {', '.join(sorted(others))} ({target}{where}), "
                "so their metrics cannot be told apart; give the claims different function names "
                f"(e.g. spec.resourcePrefix) or map them in policies/{FILE}",
            )
        return [q for q in queries if q.claim not in shared]

    # --- calls -----------------------------------------------------------

    def _pull(self, queries: Sequence[Query]) -> Pulled:
        pulled = Pulled()
        groups: dict[tuple[str | None, int, int], list[int]] = defaultdict(list)
        for i, q in enumerate(queries):
            groups[(q.region, q.start, q.end)].append(i)
        work: list[tuple[str | None, plan.Call, list[int]]] = []
        for (region, start, end), members in groups.items():
            periods = [queries[i].period for i in members]
            self.stats.minimum_calls += plan.minimum_calls(periods, start, end, self._limits)
            for call in plan.plan_calls(periods, start, end, self._limits):
                work.append((region, call, [members[j] for j in call.queries]))
        self.stats.calls_planned = len(work)
        self.stats.queries = len(queries)
        session = self._shared_session()
        clients: dict[str | None, Any] = {}
        with _progress(len(work)) as advance:
            for region, call, members in work:
                if region not in clients:
                    clients[region] = self._client(session, region)
                run_call(clients[region].get_metric_data, call, members, queries, pulled, self.stats)
                advance()
        return pulled

    def _shared_session(self) -> boto3.Session:
        if self._session is None:
            self._session = self._open_session()
        return self._session

    def _open_session(self) -> boto3.Session:
        try:
            return self._new_session()
        except ProfileNotFound as exc:
            raise UsageError(f"cloudwatch: {exc}; set AWS_PROFILE to a profile that exists") from exc

    def _client(self, session: boto3.Session, region: str | None) -> Any:
        config = Config(retries={"mode": "standard"}, user_agent_extra="feedbackctl")
        try:
            return session.client("cloudwatch", region_name=region, config=config)
        except NoRegionError as exc:
            raise UsageError(
                "cloudwatch: no AWS region: set AWS_REGION (or a profile's region), or spec.region "
                "on the claims"
            ) from exc
        except ProfileNotFound as exc:
            raise UsageError(f"cloudwatch: {exc}; set AWS_PROFILE to a profile that exists") from exc

    # --- results ---------------------------------------------------------

    def _report_failures(self, queries: Sequence[Query], pulled: Pulled, batch: MetricBatch) -> None:
        for i in range(len(queries)):
            status = pulled.status.get(i, "Complete")
            code = status.split(":")[0]
            if i in pulled.failed or code == "Complete":
                continue
            if code == "PartialData":
                pulled.failed[i] = "CloudWatch returned PartialData and no NextToken: incomplete"
            else:
                pulled.failed[i] = f"CloudWatch answered {status}"
        by_claim: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for i, reason in pulled.failed.items():
            q = queries[i]
            by_claim[q.claim][reason].append(f"{q.metric} ({q.target})")
        for claim, reasons in by_claim.items():
            for reason, what in reasons.items():
                shown = ", ".join(dict.fromkeys(what))
                batch.add_problem(claim, f"cloudwatch: {shown}: {reason}")

    def _assemble(
        self, queries: Sequence[Query], pulled: Pulled, requests: Sequence[MetricRequest], batch: MetricBatch
    ) -> None:
        window = {r.claim.name: (r.start, r.end) for r in requests}
        parts: dict[tuple[str, str], list[int]] = defaultdict(list)
        combine: dict[str, str] = {}
        for i, q in enumerate(queries):
            parts[(q.claim, q.metric)].append(i)
            combine[q.metric] = self.mapping.metrics[q.metric].combine
        for (claim, metric), members in parts.items():
            if claim in batch.problems:
                continue
            chunks = [c for i in members for c in pulled.chunks.get(i, ())]
            if not chunks:
                continue  # no data at all: the core says "no <metric> data" for this claim
            start, end = window[claim]
            batch.add_series(claim, combine_series(metric, chunks, combine[metric], start, end))
        self._note_absent(queries, batch)

    @staticmethod
    def _note_absent(queries: Sequence[Query], batch: MetricBatch) -> None:
        """A claim without a single datapoint most likely names the wrong functions or region."""
        read: dict[str, tuple[list[str], str | None]] = {}
        for q in queries:
            targets, _ = read.setdefault(q.claim, ([], q.region))
            if q.target not in targets:
                targets.append(q.target)
        for claim, (targets, region) in read.items():
            if claim in batch.problems or batch.series.get(claim):
                continue
            where = f" in {region}" if region else ""
            batch.add_absent(
                claim,
                f"{claim}: CloudWatch has no datapoints for {', '.join(targets)}{where}; "
                f"check the function names (spec.resourcePrefix, policies/{FILE}) and the region",
            )


def combine_series(
    metric: str, chunks: Iterable[tuple[F64, F64]], how: str, start: float, end: float
) -> Series:
    """Merge per-function (and per-call) chunks into one sorted series over [start, end]."""
    parts = list(chunks)
    ts = np.concatenate([c[0] for c in parts]).astype(np.int64)
    values = np.concatenate([c[1] for c in parts])
    keep = (ts >= start) & (ts <= end) & np.isfinite(values)
    ts, values = ts[keep], values[keep]
    order = np.argsort(ts, kind="stable")
    ts, values = ts[order], values[order]
    if ts.shape[0] == 0:
        return Series.empty(metric)
    firsts = np.flatnonzero(np.concatenate(([True], ts[1:] != ts[:-1])))
    reduce = {"max": np.maximum, "min": np.minimum, "sum": np.add}[how]
    return Series(metric, ts[firsts], reduce.reduceat(values, firsts))


def _missing_message(key: str, kind: str) -> str:
    if key == "function":
        return f"kind {kind} names no functions in policies/{FILE}, but its metrics need {{function}}"
    return (
        f"{key} is not set, so its CloudWatch metrics cannot be named; set it on the claim "
        f"or change kinds.{kind} in policies/{FILE}"
    )


register("cloudwatch", CloudWatchSource.from_spec)
