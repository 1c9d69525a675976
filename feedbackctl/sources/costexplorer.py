"""``cost_daily`` per claim from Cost Explorer ``GetCostAndUsage`` (the ``cost-explorer`` source).

Cost Explorer has no per-function metric: a claim's daily cost is the group of
a cost-allocation tag whose value names the claim (``costExplorer:`` in
``policies/cloudwatch.yaml``: tag key, the template its value takes, the cost
metric). One request per page covers every claim (grouped by that tag), daily
granularity. A day counts once it is over: its point is stamped at the
midnight that ends it, and today's partial (estimated) amount is left out, so
a rule reading "cost above 1 USD every day for a week" never sees half a day.

When Cost Explorer cannot be read (access denied, throttled, unreachable), the
claims get no ``cost_daily`` series and one warning says why: the cost rules
then see "no cost_daily data" and never lower anything, while every other rule
of the claim still decides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from feedbackctl.core.models import Series
from feedbackctl.sources.base import MetricBatch, MetricRequest
from feedbackctl.sources.cloudwatch_mapping import CostExplorerMap

NAME = "cost-explorer"
DAY = 86400
# Cost Explorer answers a grouped daily query in pages; a fleet's week fits in a few.
MAX_PAGES = 100


@dataclass
class CostStats:
    requests: int = 0


def _day(epoch: float) -> date:
    return datetime.fromtimestamp(epoch, UTC).date()


def _midnight(d: date) -> float:
    return datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()


def _claims_by_tag(
    requests: Sequence[MetricRequest], cmap: CostExplorerMap, batch: MetricBatch
) -> dict[str, str]:
    by_tag: dict[str, str] = {}
    for r in requests:
        try:
            value = cmap.tag_value.render(r.claim)
        except Exception:  # noqa: BLE001 - a template naming an unset value
            batch.warnings.append(
                f"{r.claim.name}: costExplorer.tagValue '{cmap.tag_value.text}' names a value the claim "
                f"does not set; it gets no {cmap.metric} data"
            )
            continue
        if value in by_tag:
            batch.warnings.append(
                f"{r.claim.name} and {by_tag[value]} share the cost tag {cmap.tag_key}={value}: their "
                f"costs cannot be told apart, so neither gets {cmap.metric} data"
            )
            by_tag[value] = ""
            continue
        by_tag[value] = r.claim.name
    return {tag: claim for tag, claim in by_tag.items() if claim}


def fetch_costs(
    client: Callable[[str], Any],
    cmap: CostExplorerMap,
    requests: Sequence[MetricRequest],
    now: float,
    batch: MetricBatch,
    stats: CostStats,
) -> None:
    """Add ``cmap.metric`` series for ``requests`` (claims that asked for it) into ``batch``."""
    if not requests:
        return
    by_tag = _claims_by_tag(requests, cmap, batch)
    if not by_tag:
        return
    first = _day(min(r.start for r in requests))
    today = _day(now)
    if first >= today:
        return
    kwargs: dict[str, Any] = {
        "TimePeriod": {"Start": first.isoformat(), "End": today.isoformat()},  # End is exclusive
        "Granularity": "DAILY",
        "Metrics": [cmap.cost_metric],
        "GroupBy": [{"Type": "TAG", "Key": cmap.tag_key}],
    }
    points: dict[str, dict[int, float]] = {claim: {} for claim in by_tag.values()}
    ce = client(cmap.region)
    for _ in range(MAX_PAGES):
        try:
            stats.requests += 1
            response = ce.get_cost_and_usage(**kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "error"))
            batch.warnings.append(
                f"cost-explorer: GetCostAndUsage failed ({code}); no {cmap.metric} data this run, so no "
                "cost rule acts (grant ce:GetCostAndUsage or rerun later)"
            )
            return
        except BotoCoreError as exc:
            batch.warnings.append(
                f"cost-explorer: GetCostAndUsage failed ({exc}); no {cmap.metric} data this run, so no cost "
                "rule acts"
            )
            return
        _collect(response, cmap, by_tag, points, now)
        token = response.get("NextPageToken")
        if not token:
            break
        kwargs["NextPageToken"] = token
    window = {r.claim.name: (r.start, r.end) for r in requests}
    for claim, by_ts in points.items():
        start, end = window[claim]
        kept = sorted((t, v) for t, v in by_ts.items() if start <= t <= end)
        if kept:
            ts = np.asarray([t for t, _ in kept], dtype=np.int64)
            values = np.asarray([v for _, v in kept], dtype=np.float64)
            batch.add_series(claim, Series(cmap.metric, ts, values))


def _collect(
    response: Mapping[str, Any],
    cmap: CostExplorerMap,
    by_tag: Mapping[str, str],
    points: dict[str, dict[int, float]],
    now: float,
) -> None:
    prefix = f"{cmap.tag_key}$"
    for period in response.get("ResultsByTime", ()) or ():
        try:
            day = date.fromisoformat(str(period["TimePeriod"]["Start"])[:10])
        except (KeyError, TypeError, ValueError):
            continue
        stamp = _midnight(day + timedelta(days=1))
        if stamp > now or period.get("Estimated") is True and stamp > now - DAY:
            continue  # the day is not over: its amount is still growing
        for group in period.get("Groups", ()) or ():
            keys = group.get("Keys") or ()
            key = str(keys[0]) if keys else ""
            tag = key[len(prefix):] if key.startswith(prefix) else key
            claim = by_tag.get(tag)
            if claim is None:
                continue
            try:
                amount = float(group["Metrics"][cmap.cost_metric]["Amount"])
            except (KeyError, TypeError, ValueError):
                continue
            if np.isfinite(amount) and amount >= 0:
                points[claim][int(stamp)] = amount


def client_factory(session: Any) -> Callable[[str], Any]:
    config = Config(retries={"mode": "standard"}, user_agent_extra="feedbackctl")
    return lambda region: session.client("ce", region_name=region, config=config)
