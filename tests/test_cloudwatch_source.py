"""The CloudWatch source against a real moto server: batching, regions, failures."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError

from feedbackctl.core.models import Claim
from feedbackctl.sources import plan
from feedbackctl.sources.base import MetricRequest, open_source
from feedbackctl.sources.cloudwatch import CloudWatchSource, combine_series
from feedbackctl.sources.cloudwatch_calls import Pulled, PullStats, Query, epoch_seconds, run_call
from feedbackctl.sources.cloudwatch_mapping import parse_mapping
from tests.cwdata import client, counting_session, put

NOW = int(datetime(2026, 11, 8, tzinfo=UTC).timestamp())
HOUR = 3600
FIVE_MIN = 300

# One function per claim, named like the claim: 4 metrics = 4 queries a claim.
ONE_FUNCTION = parse_mapping(
    {
        "kinds": {"default": {"region": "{spec.region}", "functions": ["{name}"]}},
        "metrics": {
            "memory_utilization": {
                "namespace": "LambdaInsights",
                "metricName": "memory_utilization",
                "dimensions": {"function_name": "{function}"},
                "stat": "Maximum",
            },
            "used_memory_max": {
                "namespace": "LambdaInsights",
                "metricName": "used_memory_max",
                "dimensions": {"function_name": "{function}"},
                "stat": "Maximum",
            },
            "duration_p99": {
                "namespace": "AWS/Lambda",
                "metricName": "Duration",
                "dimensions": {"FunctionName": "{function}"},
                "stat": "Maximum",
            },
            "errors": {
                "namespace": "AWS/Lambda",
                "metricName": "Errors",
                "dimensions": {"FunctionName": "{function}"},
                "stat": "Sum",
                "combine": "sum",
            },
        },
    },
    "test-mapping",
)
FOUR = ("memory_utilization", "used_memory_max", "duration_p99", "errors")


def claim(name: str, kind: str = "FunctionClaim", **spec: Any) -> Claim:
    return Claim(name, kind, "x.demo/v1", {"region": "us-east-1", **spec}, f"claims/{name}.yaml")


def request(c: Claim, metrics: tuple[str, ...] = FOUR, hours: float = 1) -> MetricRequest:
    return MetricRequest(c, metrics, NOW - hours * HOUR, NOW)


def five_minute_points(value: float, hours: float = 1) -> list[tuple[int, float]]:
    n = int(hours * 12) + 1
    return [(NOW - k * FIVE_MIN, value + k) for k in range(n)]


def test_cloudwatch_is_a_registered_source() -> None:
    source = open_source("cloudwatch")
    assert isinstance(source, CloudWatchSource)
    assert source.name == "cloudwatch-metrics"
    assert open_source("cloudwatch:cloudwatch-cross-account").name == "cloudwatch-cross-account"


def test_600_queries_take_two_requests_on_the_wire(aws: str) -> None:
    cw = client()
    for i in range(3):
        put(cw, "LambdaInsights", "memory_utilization", {"function_name": f"fn-{i}"}, five_minute_points(50))
        put(cw, "AWS/Lambda", "Errors", {"FunctionName": f"fn-{i}"}, five_minute_points(0))
    sent: list[str] = []
    source = CloudWatchSource(session=counting_session(sent), mapping=ONE_FUNCTION)
    claims = [claim(f"fn-{i}") for i in range(150)]
    batch = source.fetch([request(c) for c in claims], NOW)
    assert len(sent) == 2
    assert source.stats.queries == 600
    assert source.stats.requests == source.stats.minimum_calls == 2
    assert batch.problems == {}
    got = batch.series["fn-1"]["memory_utilization"]
    assert len(got) == 13
    assert got.ts[-1] == NOW and got.values[-1] == 50  # the point at --now is included
    assert set(batch.series["fn-1"]) == {"memory_utilization", "errors"}  # no data: no series
    assert batch.series["fn-100"] == {}
    assert "CloudWatch has no datapoints for fn-100 in us-east-1" in batch.absent["fn-100"]
    assert "fn-1" not in batch.absent


def test_the_datapoint_limit_splits_the_time_range(aws: str) -> None:
    cw = client()
    for metric in ("memory_utilization", "used_memory_max"):
        put(cw, "LambdaInsights", metric, {"function_name": "fn-a"}, five_minute_points(40, hours=2))
    requests = [request(claim("fn-a"), FOUR, hours=2)]
    whole = CloudWatchSource(session=counting_session([]), mapping=ONE_FUNCTION).fetch(requests, NOW)

    sent: list[str] = []
    small = plan.Limits(max_queries=500, max_points=30)  # 4 queries x 25 points = 100 points
    source = CloudWatchSource(session=counting_session(sent), mapping=ONE_FUNCTION, limits=small)
    split = source.fetch(requests, NOW)
    assert len(sent) == source.stats.minimum_calls == 4
    for metric in ("memory_utilization", "used_memory_max"):
        a, b = whole.series["fn-a"][metric], split.series["fn-a"][metric]
        assert len(a) == 25
        assert np.array_equal(a.ts, b.ts) and np.array_equal(a.values, b.values)


def test_a_claim_is_the_worst_of_its_functions(aws: str) -> None:
    cw = client()
    for fn, base in (("shop-api-handler", 90.0), ("shop-snapshot-writer", 20.0)):
        put(cw, "LambdaInsights", "memory_utilization", {"function_name": fn}, five_minute_points(base))
        put(cw, "AWS/Lambda", "Errors", {"FunctionName": fn}, five_minute_points(1))
    c = claim("shop", kind="ServerlessEventAppClaim", resourcePrefix="shop")
    batch = CloudWatchSource().fetch([request(c, ("memory_utilization", "errors"))], NOW)
    util, errors = batch.series["shop"]["memory_utilization"], batch.series["shop"]["errors"]
    assert util.values[-1] == 90  # max of 90 and 20
    assert errors.values[-1] == 2  # the claim's total: 1 + 1


def test_each_claim_reads_its_own_region(aws: str) -> None:
    put(
        client("eu-west-1"),
        "LambdaInsights",
        "memory_utilization",
        {"function_name": "eu"},
        five_minute_points(70),
    )
    put(
        client("us-east-1"),
        "LambdaInsights",
        "memory_utilization",
        {"function_name": "us"},
        five_minute_points(30),
    )
    claims = [claim("eu", region="eu-west-1"), claim("us", region="us-east-1")]
    batch = CloudWatchSource(mapping=ONE_FUNCTION).fetch(
        [request(c, ("memory_utilization",)) for c in claims], NOW
    )
    assert batch.series["eu"]["memory_utilization"].values[-1] == 70
    assert batch.series["us"]["memory_utilization"].values[-1] == 30


def test_claims_that_read_the_same_series_are_refused(aws: str) -> None:
    sent: list[str] = []
    same = [
        claim("messagewall-dev", kind="ServerlessEventAppClaim", resourcePrefix="messagewall"),
        claim("messagewall-prod", kind="ServerlessEventAppClaim", resourcePrefix="messagewall"),
        claim("orders", kind="ServerlessEventAppClaim", resourcePrefix="orders"),
    ]
    batch = CloudWatchSource(session=counting_session(sent)).fetch([request(c) for c in same], NOW)
    assert set(batch.problems) == {"messagewall-dev", "messagewall-prod"}
    message = batch.problems["messagewall-prod"][0]
    assert "messagewall-dev" in message and "messagewall-api-handler" in message
    assert "resourcePrefix" in message
    assert len(sent) == 1  # orders is still fetched
    assert "orders" in batch.series


def test_a_claim_whose_function_names_are_unknown_is_reported(aws: str) -> None:
    claims = [
        claim("no-prefix", kind="ServerlessEventAppClaim"),
        claim("orders", kind="ServerlessEventAppClaim", resourcePrefix="orders"),
    ]
    batch = CloudWatchSource().fetch([request(c) for c in claims], NOW)
    assert list(batch.problems) == ["no-prefix"]
    assert "spec.resourcePrefix is not set" in batch.problems["no-prefix"][0]
    assert "orders" in batch.series


def test_a_server_error_fails_only_the_claims_of_that_call(aws: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # moto 5 answers HTTP 500 to a percentile statistic (p99): a real server-side failure.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    put(
        client(),
        "LambdaInsights",
        "memory_utilization",
        {"function_name": "ok-api-handler"},
        five_minute_points(10),
    )
    put(client(), "AWS/Lambda", "Duration", {"FunctionName": "bad-api-handler"}, five_minute_points(900))
    claims = [
        claim("bad", kind="ServerlessEventAppClaim", resourcePrefix="bad"),
        claim("ok", kind="ServerlessEventAppClaim", resourcePrefix="ok"),
    ]
    requests = [
        request(claims[0], ("memory_utilization", "duration_p99")),
        request(claims[1], ("memory_utilization",)),
    ]
    sent: list[str] = []
    one_per_call = plan.Limits(max_queries=2, max_points=100_800)
    batch = CloudWatchSource(session=counting_session(sent), limits=one_per_call).fetch(requests, NOW)
    assert list(batch.problems) == ["bad"]
    (message,) = batch.problems["bad"]
    assert "duration_p99" in message and "500" in message and "after 1 attempts" in message
    assert len(sent) == 3  # AWS_MAX_ATTEMPTS from the standard chain: no retries
    assert batch.series["ok"]["memory_utilization"].values[-1] == 10


# --- the page loop and error handling, with the send function as a plain value ---------------


def _queries(n: int) -> list[Query]:
    stat = {"Metric": {"Namespace": "N", "MetricName": "M"}, "Period": 300, "Stat": "Maximum"}
    return [Query(f"c{i}", "errors", f"fn{i}", None, stat, 300, 0, 600) for i in range(n)]


def test_next_token_is_followed_and_pages_merge() -> None:
    pages = [
        {
            "MetricDataResults": [
                {"Id": "q0", "Timestamps": [0.0], "Values": [1.0], "StatusCode": "PartialData"}
            ],
            "NextToken": "t1",
        },
        {
            "MetricDataResults": [
                {"Id": "q0", "Timestamps": [300.0], "Values": [2.0], "StatusCode": "Complete"}
            ]
        },
    ]
    sent: list[dict[str, Any]] = []

    def send(**kwargs: Any) -> dict[str, Any]:
        sent.append(dict(kwargs))
        return pages[len(sent) - 1]

    pulled, stats = Pulled(), PullStats()
    run_call(send, plan.Call(0, 600, (0,), 2), [0], _queries(1), pulled, stats)
    assert "NextToken" not in sent[0] and sent[1]["NextToken"] == "t1"
    assert stats.requests == 2 and pulled.failed == {}
    merged = combine_series("errors", pulled.chunks[0], "sum", 0, 600)
    assert merged.ts.tolist() == [0, 300] and merged.values.tolist() == [1.0, 2.0]


def test_partial_data_without_a_token_is_reported_for_its_claim() -> None:
    source = CloudWatchSource(mapping=ONE_FUNCTION)
    queries = _queries(2)
    pulled = Pulled()
    pulled.status = {0: "PartialData", 1: "Complete"}
    from feedbackctl.sources.base import MetricBatch

    batch = MetricBatch()
    source._report_failures(queries, pulled, batch)
    assert list(batch.problems) == ["c0"]
    assert "PartialData" in batch.problems["c0"][0]


def test_throttling_after_retries_is_reported_per_claim() -> None:
    def throttled(**kwargs: Any) -> dict[str, Any]:
        raise ClientError(
            {
                "Error": {"Code": "Throttling", "Message": "Rate exceeded"},
                "ResponseMetadata": {"RetryAttempts": 2},
            },
            "GetMetricData",
        )

    pulled = Pulled()
    run_call(throttled, plan.Call(0, 600, (0, 1), 4), [0, 1], _queries(2), pulled, PullStats())
    assert set(pulled.failed) == {0, 1}
    assert "throttled" in pulled.failed[0] and "after 3 attempts" in pulled.failed[0]


# --- pure helpers ------------------------------------------------------------------------------


def test_combine_keeps_the_window_and_reduces_each_timestamp() -> None:
    a = (np.array([0.0, 300.0, 600.0, 900.0]), np.array([1.0, 5.0, np.nan, 7.0]))
    b = (np.array([300.0, 600.0]), np.array([4.0, 2.0]))
    assert combine_series("m", [a, b], "max", 300, 600).values.tolist() == [5.0, 2.0]
    assert combine_series("m", [a, b], "sum", 0, 900).values.tolist() == [1.0, 9.0, 2.0, 7.0]
    assert combine_series("m", [a, b], "min", 0, 900).values.tolist() == [1.0, 4.0, 2.0, 7.0]


def test_timestamps_arrive_as_epoch_seconds() -> None:
    assert epoch_seconds(1794096000) == 1794096000.0
    assert epoch_seconds("2026-11-08T00:00:00Z") == 1794096000.0
