"""GetMetricData calls for ``cloudwatch.py``: the session, one planned call page by page, its errors.

A call follows ``NextToken`` up to ``MAX_PAGES_PER_CALL`` pages; timestamps are
parsed as epoch seconds, never ``datetime``. What goes wrong for a call
(throttling after retries, a refused or partial result) is recorded for its
queries, so the other claims are still processed; missing credentials or an
unreachable endpoint stop the run with one line.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
import numpy as np
import numpy.typing as npt
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.utils import parse_timestamp

from feedbackctl.errors import FeedbackError, UsageError
from feedbackctl.sources import plan
from feedbackctl.sources.cloudwatch_mapping import FILE

# A response that still says PartialData after this many pages is reported, not chased.
MAX_PAGES_PER_CALL = 50
THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}
)
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Query:
    """One series to fetch: a claim's metric for one of its functions."""

    claim: str
    metric: str
    target: str  # the function (or dimensions) it reads, for messages
    region: str | None
    stat: dict[str, Any]  # GetMetricData's MetricStat
    period: int
    start: int
    end: int  # exclusive

    @property
    def series_key(self) -> tuple[Any, ...]:
        m = self.stat["Metric"]
        dims = tuple(sorted((d["Name"], d["Value"]) for d in m.get("Dimensions", ())))
        return (self.region, m["Namespace"], m["MetricName"], dims, self.stat["Stat"], self.period)


@dataclass
class PullStats:
    """What the last fetch cost: requests sent (pages included), queries, datapoints."""

    requests: int = 0
    calls_planned: int = 0
    minimum_calls: int = 0
    queries: int = 0
    datapoints: int = 0
    metrics_requested: int = 0  # what GetMetricData bills: queries in every request sent
    cost_requests: int = 0  # GetCostAndUsage requests (pages)


@dataclass
class Pulled:
    chunks: dict[int, list[tuple[F64, F64]]] = field(default_factory=lambda: defaultdict(list))
    status: dict[int, str] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)


def epoch_seconds(value: Any) -> float:
    """botocore's timestamp parser, replaced: epoch seconds instead of tz-aware datetimes.

    CloudWatch answers in CBOR with epoch numbers; turning 100,800 of them into
    ``datetime`` objects (and back) costs more than the request itself.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return float(parse_timestamp(value).timestamp())


def _session() -> boto3.Session:
    core = botocore.session.Session()
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=epoch_seconds)
    return boto3.Session(botocore_session=core)


def as_epochs(stamps: Sequence[Any]) -> F64:
    if len(stamps) and isinstance(stamps[0], datetime):
        return np.fromiter((t.timestamp() for t in stamps), dtype=np.float64, count=len(stamps))
    return np.asarray(stamps, dtype=np.float64)
def run_call(
    send: Callable[..., Any],
    call: plan.Call,
    members: list[int],
    queries: Sequence[Query],
    pulled: Pulled,
    stats: PullStats,
) -> None:
    """One planned call: ``send`` (GetMetricData) page by page, results into ``pulled``."""
    ids = {f"q{k}": i for k, i in enumerate(members)}
    kwargs: dict[str, Any] = {
        "MetricDataQueries": [
            {"Id": qid, "MetricStat": queries[i].stat, "ReturnData": True} for qid, i in ids.items()
        ],
        "StartTime": datetime.fromtimestamp(call.start, UTC),
        "EndTime": datetime.fromtimestamp(call.end, UTC),
        "ScanBy": "TimestampAscending",
    }
    for _ in range(MAX_PAGES_PER_CALL):
        try:
            stats.requests += 1
            stats.metrics_requested += len(ids)
            response = send(**kwargs)
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise UsageError(
                f"cloudwatch: {exc}; configure AWS credentials (AWS_PROFILE, environment, or SSO)"
            ) from exc
        except EndpointConnectionError as exc:
            raise FeedbackError(
                f"cloudwatch: cannot reach {exc.kwargs.get('endpoint_url', 'the endpoint')}; "
                "check AWS_ENDPOINT_URL, the region and the network"
            ) from exc
        except ClientError as exc:
            reason = _client_error(exc)
            for i in members:
                pulled.failed.setdefault(i, reason)
            return
        except BotoCoreError as exc:
            for i in members:
                pulled.failed.setdefault(i, f"GetMetricData failed: {exc}; rerun later")
            return
        for result in response.get("MetricDataResults", ()):
            found = ids.get(result.get("Id", ""))
            if found is None:
                continue
            i = found
            values = np.asarray(result.get("Values", ()), dtype=np.float64)
            stamps = as_epochs(result.get("Timestamps", ()))
            if values.shape[0]:
                pulled.chunks[i].append((stamps, values))
                stats.datapoints += int(values.shape[0])
            status = result.get("StatusCode", "Complete")
            messages = "; ".join(str(m.get("Value", "")) for m in result.get("Messages", ()) or ())
            pulled.status[i] = f"{status}: {messages}" if messages else status
        token = response.get("NextToken")
        if not token:
            return
        kwargs["NextToken"] = token
    for i in members:
        if pulled.status.get(i, "").startswith("PartialData"):
            pulled.failed.setdefault(
                i, f"CloudWatch still had more data after {MAX_PAGES_PER_CALL} pages (PartialData)"
            )


def _client_error(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "error"))
    message = str(error.get("Message", "")).strip().splitlines()[0] if error.get("Message") else ""
    attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
    if code in THROTTLING_CODES:
        return (
            f"CloudWatch throttled GetMetricData ({code}) after {attempts} attempts; "
            "rerun later or raise the GetMetricData quota"
        )
    if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
        return f"not allowed to read metrics ({code}); grant cloudwatch:GetMetricData"
    if code in ("InvalidParameterValue", "InvalidParameterCombination", "ValidationError"):
        return f"CloudWatch rejected the query ({code}: {message}); check policies/{FILE}"
    if message.startswith("<"):
        message = "server error"
    return f"GetMetricData failed ({code}: {message}) after {attempts} attempts; rerun later"


@contextmanager
def _progress(total: int) -> Iterator[Callable[[], None]]:
    """A Rich progress bar on stderr, only on a terminal and only for multi-call pulls."""
    if total < 2 or not sys.stderr.isatty():
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("GetMetricData"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("pull", total=total)
        yield lambda: bar.advance(task)
