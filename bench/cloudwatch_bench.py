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
4. autotune's fetch plan (docs/cloudwatch.md): the metrics requested for 10,000
   claims, one in ten opted in, by the planner alone (every trigger firing, the
   worst case) against a full fetch; and one autotune run against moto, planned
   and full, on the same data (metricsCost of each, and whether they decided alike).
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.utils import parse_timestamp
from rich.console import Console
from rich.table import Table

from bench.common import Row as BenchRow
from feedbackctl.core.models import Claim
from feedbackctl.render import cost_json
from feedbackctl.sources import plan
from feedbackctl.sources.base import MetricBatch, MetricRequest
from feedbackctl.sources.cloudwatch import CloudWatchSource
from feedbackctl.sources.cloudwatch_calls import Pulled, PullStats, run_call
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
    for r in planner_alone() + autotune_against_moto():
        table.add_row(r.name, f"{r.show(r.seconds)} of {r.show(r.floor)} ({r.ratio})", r.target, r.note)
    Console(width=150).print(table)


if __name__ == "__main__":
    main()


# --- autotune's fetch plan --------------------------------------------------------

def fleet_claim(k: int, opted_in: bool) -> Claim:
    spec: dict[str, Any] = {"environment": "prod", "resourcePrefix": f"app-{k:05d}", "lambdaMemory": 1024,
                            "lambdaTimeout": 30}  # fmt: skip
    if opted_in:
        spec["autoTune"] = {
            "enabled": True,
            "memoryBounds": {"min": 512, "max": 4096},
            "trigger": {"metric": "memory_utilization", "threshold": 90, "sustainedMinutes": 30},
        }
    return claim(f"app-{k:05d}", "ServerlessEventAppClaim", **spec)


def _queries(source: CloudWatchSource, wanted: list[tuple[Claim, tuple[str, ...]]]) -> int:
    """GetMetricData bills per query: one per metric and function of each claim."""
    requests = [MetricRequest(c, m, NOW - 7 * 86400, NOW) for c, m in wanted if m]
    return sum(1 for _ in source._queries(requests, MetricBatch()))


def planner_alone(claims: int = 10_000, opted_every: int = 10) -> list[BenchRow]:
    """The plan for ``claims`` claims, one in ``opted_every`` opted in; every trigger firing (worst case)."""
    from feedbackctl.authority.config import load_policy_docs
    from feedbackctl.core import fetchplan
    from feedbackctl.core.decide import ClaimInputs

    policy = load_policy_docs({})
    entry = policy.source("cloudwatch-metrics")
    fleet = [fleet_claim(k, k % opted_every == 0) for k in range(claims)]
    now = datetime.fromtimestamp(NOW, UTC)
    t = time.perf_counter()
    p = fetchplan.plan_fetch([ClaimInputs(c) for c in fleet], policy, now, entry)
    seconds = time.perf_counter() - t
    source = CloudWatchSource()  # the shipped mapping: two functions a claim
    by_name = {c.name: c for c in fleet}
    full = _queries(source, [(c, fetchplan.needed_metrics(policy)) for c in fleet])
    first = _queries(source, [(by_name[n], m) for n, m in p.round_one.items()])
    second = _queries(source, [(by_name[n], p.later.get(n, ())) for n in p.round_one])
    planned = first + second
    return [
        BenchRow("cloudwatch", f"autotune plan alone: {claims:,} claims, 1 in {opted_every} opted in",
                 planned, full, "<= 1/5 of full", f"metrics requested: round 1 {first:,} + round 2 "
                 f"{second:,} (every trigger fires) vs full {full:,}; planned in {seconds:.2f} s",
                 unit="metrics"),
    ]  # fmt: skip


def autotune_against_moto(claims: int = 40, opted_every: int = 10) -> list[BenchRow]:
    """One autotune run planned and one full, on the same moto data and repo contents."""
    from feedbackctl.authority.snapshot import open_repo
    from feedbackctl.patterns.autotune import RunOptions, run_autotune
    from tests.cwdata import client, put
    from tests.gitutil import configure_git_env, make_repo, set_env
    from tests.motoserver import AWS_ENV, moto_server

    root = Path(tempfile.mkdtemp(prefix="fetchplan-bench-"))
    set_env(configure_git_env(root / "home"))
    fleet = [fleet_claim(k, k % opted_every == 0) for k in range(claims)]
    files = {f"claims/{c.name}.yaml": _claim_yaml(c) for c in fleet}
    files["policies/cloudwatch.yaml"] = MOTO_MAPPING
    os.environ.update(AWS_ENV)
    rows: list[BenchRow] = []
    with moto_server() as url:
        os.environ["AWS_ENDPOINT_URL"] = url
        cw = client()
        points = [NOW - k * FIVE_MIN for k in range(8)]
        for k, c in enumerate(fleet):
            used = 980.0 if k % 20 == 0 else 700.0  # half of the opted-in claims under pressure
            for ns, name, dim, value in (
                ("LambdaInsights", "memory_utilization", "function_name", used / 1024 * 100),
                ("LambdaInsights", "used_memory_max", "function_name", used),
                ("AWS/Lambda", "Duration", "FunctionName", 5000.0),
                ("AWS/Lambda", "Errors", "FunctionName", 0.0),
                ("AWS/Lambda", "Throttles", "FunctionName", 0.0),
            ):
                put(cw, ns, name, {dim: c.name}, [(t, value) for t in points])
        got = {}
        for plan_fetch in (True, False):
            work, _ = make_repo(root, files, bare_origin=False, date="2026-10-01T00:00:00Z",
                                name=f"work-{plan_fetch}")  # fmt: skip
            t = time.perf_counter()
            out = run_autotune(open_repo(work), None, "cloudwatch", datetime.fromtimestamp(NOW, UTC),
                               RunOptions(dry_run=True, plan_fetch=plan_fetch))  # fmt: skip
            got[plan_fetch] = (out, time.perf_counter() - t)
    (planned, ps), (full, fs) = got[True], got[False]
    same = [(d.claim, d.field, d.outcome, d.recommended) for d in planned.report.decisions] == [
        (d.claim, d.field, d.outcome, d.recommended) for d in full.report.decisions
    ]
    pc, fc = (cost_json(o.report)["metricsCost"] for o in (planned, full))
    rows.append(
        BenchRow("cloudwatch", f"autotune on moto: {claims} claims, 1 in {opted_every} opted in",
                 pc["metricsRequested"], fc["metricsRequested"], "<= 1/5 of full",
                 f"metrics requested; {pc['apiCalls']} vs {fc['apiCalls']} API calls, "
                 f"{ps:.1f} s vs {fs:.1f} s; same decisions: {same}", unit="metrics")
    )  # fmt: skip
    return rows


# moto answers percentile statistics with HTTP 500 (p99 read as the maximum), and one
# function a claim keeps moto's GetMetricData (slow per query) to a minute.
MOTO_MAPPING = """\
kinds:
  ServerlessEventAppClaim:
    region: "{spec.region}"
    functions: ["{name}"]
metrics:
  duration_p99:
    namespace: AWS/Lambda
    metricName: Duration
    dimensions: {FunctionName: "{function}"}
    stat: Maximum
    combine: max
"""


def _claim_yaml(c: Claim) -> str:
    import yaml

    doc = {"apiVersion": "messagewall.demo/v1alpha1", "kind": c.kind, "metadata": {"name": c.name},
           "spec": dict(c.spec)}  # fmt: skip
    return yaml.safe_dump(doc, sort_keys=False)
