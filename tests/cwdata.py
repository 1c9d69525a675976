"""Putting metric data into the moto server, and the same data as fixtures."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from feedbackctl.sources import cloudwatch_calls

# moto's server cannot read gzip-compressed PutMetricData bodies, which botocore
# sends for payloads over 10 KiB.
PUT_CONFIG = Config(disable_request_compression=True)
PUT_CHUNK = 1000
# moto cannot compute percentile statistics (it answers HTTP 500), so the points put
# into Duration are the p99 already and a mapping reads them back with Maximum.
P99_AS_MAXIMUM = """\
metrics:
  duration_p99:
    namespace: AWS/Lambda
    metricName: Duration
    dimensions: {FunctionName: "{function}"}
    stat: Maximum
    combine: max
"""


def client(region: str | None = None) -> Any:
    return boto3.client("cloudwatch", region_name=region, config=PUT_CONFIG)


def put(
    cw: Any,
    namespace: str,
    metric_name: str,
    dimensions: Mapping[str, str],
    points: Sequence[tuple[int, float]],
) -> None:
    dims = [{"Name": k, "Value": v} for k, v in dimensions.items()]
    data = [
        {
            "MetricName": metric_name,
            "Dimensions": dims,
            "Timestamp": datetime.fromtimestamp(t, UTC),
            "Value": float(v),
        }
        for t, v in points
    ]
    for i in range(0, len(data), PUT_CHUNK):
        cw.put_metric_data(Namespace=namespace, MetricData=data[i : i + PUT_CHUNK])


def write_fixture(root: Path, claim: str, metric: str, points: Sequence[tuple[int, float]]) -> None:
    path = root / claim / f"{metric}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("timestamp,value\n" + "".join(f"{t},{v!r}\n" for t, v in points))


def counting_session(counter: list[str]) -> Callable[[], boto3.Session]:
    """The source's own session, plus a hook that counts each HTTP request it sends."""

    def make() -> boto3.Session:
        session = cloudwatch_calls._session()

        def count(**kwargs: Any) -> None:
            counter.append(kwargs.get("event_name", "send"))

        session.events.register("before-send.cloudwatch.GetMetricData", count)
        return session

    return make
