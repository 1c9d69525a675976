"""CloudWatch pulls: calls against moto, the 4,000 x 288 plan, and the tool-side cost.

    python -m bench.cloudwatch_bench            # from the project root

1. Calls against a real moto server (HTTP on 127.0.0.1), counted at the wire
   with a botocore ``before-send`` hook: 150 claims x 4 metrics x 1 hour of
   5-minute points (600 queries: the minimum is 2 calls).
2. The synthetic plan: 4,000 queries x 288 points (1,152,000 datapoints: the
   minimum is 12 calls), planned by the pure planner.
3. The tool-side cost of turning 4,000 x 288 GetMetricData results into claim
   series (the responses are prepared in memory; no network), next to what
   botocore's default timestamp parsing would have cost for the same points.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

from botocore.utils import parse_timestamp
from rich.console import Console
from rich.table import Table

from feedbackctl.core.models import Claim
from feedbackctl.sources import plan
from feedbackctl.sources.base import MetricBatch, MetricRequest
from feedbackctl.sources.cloudwatch import CloudWatchSource, Pulled, PullStats, run_call
from feedbackctl.sources.cloudwatch_mapping import parse_mapping

NOW = int(datetime(2026, 11, 8, tzinfo=UTC).timestamp())
FIVE_MIN = 300
METRICS = ("memory_utilization", "used_memory_max", "duration_p99", "errors")
ONE_FUNCTION = parse_mapping(
    {
        "kinds": {"default": {"region": "{spec.region}", "functions": ["{name}"]}},
        "metrics": {
            m: {
                "namespace": ns,
                "metricName": name,
                "dimensions": {dim: "{function}"},
                "stat": stat,
                "combine": "sum" if stat == "Sum" else "max",
            }
            for m, ns, name, dim, stat in (
                ("memory_utilization", "LambdaInsights", "memory_utilization", "function_name", "Maximum"),
                ("used_memory_max", "LambdaInsights", "used_memory_max", "function_name", "Maximum"),
                ("duration_p99", "AWS/Lambda", "Duration", "FunctionName", "Maximum"),
                ("errors", "AWS/Lambda", "Errors", "FunctionName", "Sum"),
            )
        },
    },
    "bench-mapping",
)
Row = tuple[str, str, str, str]


def claim(name: str, kind: str = "FunctionClaim", **spec: Any) -> Claim:
    return Claim(name, kind, "x.demo/v1", {"region": "us-east-1", **spec}, f"claims/{name}.yaml")


def against_moto() -> list[Row]:
    from tests.cwdata import client, counting_session, put
    from tests.motoserver import AWS_ENV, moto_server

    os.environ.update(AWS_ENV)
    with moto_server() as url:
        os.environ["AWS_ENDPOINT_URL"] = url
        cw = client()
        t = time.perf_counter()
        points = [(NOW - k * FIVE_MIN, 50.0 + k) for k in range(13)]
        namespaces = {m.metric: m for m in ONE_FUNCTION.metrics.values()}
        for i in range(150):
            for metric in METRICS:
                m = namespaces[metric]
                put(cw, m.namespace, m.metric_name, {m.dimensions[0][0]: f"fn-{i:03d}"}, points)
        put_seconds = time.perf_counter() - t
        sent: list[str] = []
        source = CloudWatchSource(session=counting_session(sent), mapping=ONE_FUNCTION)
        requests = [MetricRequest(claim(f"fn-{i:03d}"), METRICS, NOW - 3600, NOW) for i in range(150)]
        t = time.perf_counter()
        batch = source.fetch(requests, NOW)
        seconds = time.perf_counter() - t
    series = sum(len(s) for s in batch.series.values())
    assert not batch.problems and series == 600, (batch.problems, series)
    s = source.stats
    return [
        ("moto: 150 claims x 4 metrics x 1 h (5-min)", f"{s.queries} queries, {s.datapoints} points",
         f"{len(sent)} requests (minimum {s.minimum_calls})",
         f"{seconds:.2f} s (setup put {put_seconds:.1f} s)"),
    ]  # fmt: skip


def synthetic_plan() -> list[Row]:
    periods = [FIVE_MIN] * 4000
    t = time.perf_counter()
    calls = plan.plan_calls(periods, 0, 288 * FIVE_MIN)
    seconds = time.perf_counter() - t
    biggest = max(c.points for c in calls)
    return [
        ("plan: 4,000 queries x 288 points", "1,152,000 points",
         f"{len(calls)} calls (minimum {plan.minimum_calls(periods, 0, 288 * FIVE_MIN)})",
         f"{seconds * 1000:.1f} ms (largest call {biggest:,} points)"),
    ]  # fmt: skip


def tool_side() -> list[Row]:
    """1,000 two-function claims x 2 metrics = 4,000 queries of 288 points."""
    source = CloudWatchSource()
    start = NOW - 288 * FIVE_MIN + 1
    requests = [
        MetricRequest(claim(f"app-{i:04d}", "ServerlessEventAppClaim", resourcePrefix=f"app-{i:04d}"),
                      ("memory_utilization", "errors"), start, NOW)
        for i in range(1000)
    ]  # fmt: skip
    batch = MetricBatch()
    queries = list(source._queries(requests, batch))
    assert len(queries) == 4000
    q0 = queries[0]
    calls = plan.plan_calls([q.period for q in queries], q0.start, q0.end)
    stamps = [float(q0.start + k * FIVE_MIN) for k in range(288)]
    values = [float(k % 97) for k in range(288)]
    result = {"Timestamps": stamps, "Values": values, "StatusCode": "Complete"}
    responses = [
        {"MetricDataResults": [{"Id": f"q{k}", **result} for k in range(len(c.queries))]} for c in calls
    ]
    pulled, stats = Pulled(), PullStats()
    replies = iter(responses)
    t = time.perf_counter()
    for c in calls:
        run_call(lambda **kw: next(replies), c, list(c.queries), queries, pulled, stats)
    source._assemble(queries, pulled, requests, batch)
    seconds = time.perf_counter() - t
    assert stats.datapoints == 4000 * 288 and len(batch.series) == 1000

    sample = 100_800
    t = time.perf_counter()
    for v in stamps * (sample // 288):
        parse_timestamp(v)
    per_response = time.perf_counter() - t
    return [
        ("tool side: 4,000 x 288 results -> series", f"{stats.datapoints:,} points, {len(calls)} responses",
         "1,000 claim series x 2 metrics", f"{seconds:.3f} s"),
        ("  botocore's default timestamp parsing", f"{sample:,} points (one full response)",
         "avoided: epoch parser",
         f"{per_response:.2f} s a response, ~{per_response * len(calls):.0f} s for {len(calls)}"),
    ]  # fmt: skip


def main() -> None:
    table = Table(title="feedbackctl CloudWatch pulls", title_justify="left")
    for col in ("case", "size", "calls / result", "seconds"):
        table.add_column(col)
    for row in synthetic_plan() + tool_side() + against_moto():
        table.add_row(*row)
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
