"""What a run's metric reads cost, and Cost Explorer as the source of ``cost_daily``.

Everything runs against the real moto server on 127.0.0.1: CloudWatch metrics are
put with PutMetricData, Cost Explorer results are queued through moto's
``/moto-api/static/ce/cost-and-usage-results`` endpoint, and the CLI reads both
through boto3's standard chain (``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import json
import socket
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.clirun import cli
from tests.cwdata import P99_AS_MAXIMUM, client, put
from tests.gitutil import RepoFactory

NOW_ISO = "2026-11-08T00:00:00Z"
NOW = int(datetime(2026, 11, 8, tzinfo=UTC).timestamp())

ORDERS = """\
apiVersion: messagewall.demo/v1alpha1
kind: ServerlessEventAppClaim
metadata:
  name: orders-prod
spec:
  environment: prod
  resourcePrefix: orders
  region: us-east-1
  lambdaMemory: 1024
  lambdaTimeout: 30
"""
FUNCTIONS = ("orders-api-handler", "orders-snapshot-writer")
# What the shipped policy reads for a claim (rules and guardrails) that CloudWatch
# maps: memory_utilization, used_memory_max, duration_p99, errors, throttles.
# Each is one query per function; cost_daily comes from Cost Explorer instead.
CLOUDWATCH_METRICS_PER_FUNCTION = 5
MAPPING = P99_AS_MAXIMUM


def load_over_provisioned_week() -> None:
    """600 of 1024 MB used, p99 far below the timeout, no errors: the cost rule's case."""
    cw = client()
    # Every 5 minutes for the last 25 hours: the windows (a day) and guardrails (an hour) read
    # that much; the week the cost rule needs comes from Cost Explorer.
    points = [NOW - k * 300 for k in range(25 * 12, -1, -1)]
    for fn in FUNCTIONS:
        for namespace, name, dim, value in (
            ("LambdaInsights", "memory_utilization", "function_name", 600 / 1024 * 100),
            ("LambdaInsights", "used_memory_max", "function_name", 600.0),
            ("AWS/Lambda", "Duration", "FunctionName", 5000.0),
            ("AWS/Lambda", "Errors", "FunctionName", 0.0),
            ("AWS/Lambda", "Throttles", "FunctionName", 0.0),
        ):
            put(cw, namespace, name, {dim: fn}, [(t, value) for t in points])


def queue_costs(url: str, per_day: dict[str, float], days: int = 8) -> None:
    """Cost Explorer's answer to the next GetCostAndUsage: one group per cost tag value a day."""
    end = date(2026, 11, 8)
    by_time = []
    for i in range(days, 0, -1):
        day = end - timedelta(days=i)
        by_time.append(
            {
                "TimePeriod": {"Start": day.isoformat(), "End": (day + timedelta(days=1)).isoformat()},
                "Total": {},
                "Groups": [
                    {
                        "Keys": [f"feedbackctl-claim${claim}"],
                        "Metrics": {"UnblendedCost": {"Amount": str(amount), "Unit": "USD"}},
                    }
                    for claim, amount in per_day.items()
                ],
                "Estimated": False,
            }
        )
    body = json.dumps({"results": [{"ResultsByTime": by_time}]}).encode()
    req = urllib.request.Request(
        f"{url}/moto-api/static/ce/cost-and-usage-results",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(req, timeout=10).read()


def repo(repo_factory: RepoFactory, mapping: str = "") -> Path:
    files = {"claims/orders-prod.yaml": ORDERS, "policies/cloudwatch.yaml": MAPPING + mapping}
    work, _ = repo_factory(files, date="2026-10-01T00:00:00Z")
    return work


def analyze(work: Path, *more: str) -> Any:
    return cli("analyze", "--repo", str(work), "--metrics", "cloudwatch", "--now", NOW_ISO, *more)


def memory(doc: dict[str, Any]) -> dict[str, Any]:
    return next(d for d in doc["decisions"] if d["field"] == "spec.lambdaMemory")


def test_cost_explorer_costs_drive_the_cost_rule_end_to_end(
    aws: str, repo_factory: RepoFactory
) -> None:
    load_over_provisioned_week()
    queue_costs(aws, {"orders-prod": 3.0, "someone-else": 50.0})
    result = analyze(repo(repo_factory), "--output", "json")
    assert result.code == 0, result.stderr
    d = memory(result.json())
    assert (d["outcome"], d["rule"], d["current"], d["recommended"]) == (
        "change", "cost-overprovisioned", 1024, 768,
    )  # fmt: skip
    cost = next(e for e in d["evidence"] if e["metric"] == "cost_daily")
    assert cost["points"] >= 7


def test_without_cost_data_the_cost_rule_never_lowers_memory(aws: str, repo_factory: RepoFactory) -> None:
    load_over_provisioned_week()  # Cost Explorer's queue is empty: it answers with no groups
    result = analyze(repo(repo_factory), "--output", "json")
    assert result.code == 0, result.stderr
    d = memory(result.json())
    assert d["rule"] != "cost-overprovisioned"
    assert d["outcome"] != "change"


def test_a_cheap_claim_keeps_its_memory(aws: str, repo_factory: RepoFactory) -> None:
    load_over_provisioned_week()
    queue_costs(aws, {"orders-prod": 0.4})
    d = memory(analyze(repo(repo_factory), "--output", "json").json())
    assert d["outcome"] != "change"


def test_the_cost_tag_is_configurable_in_policies(aws: str, repo_factory: RepoFactory) -> None:
    load_over_provisioned_week()
    body = json.dumps(
        {
            "results": [
                {
                    "ResultsByTime": [
                        {
                            "TimePeriod": {
                                "Start": (date(2026, 11, 8) - timedelta(days=i)).isoformat(),
                                "End": (date(2026, 11, 8) - timedelta(days=i - 1)).isoformat(),
                            },
                            "Total": {},
                            "Groups": [
                                {
                                    "Keys": ["app$orders"],
                                    "Metrics": {"UnblendedCost": {"Amount": "3.0", "Unit": "USD"}},
                                }
                            ],
                            "Estimated": False,
                        }
                        for i in range(8, 0, -1)
                    ]
                }
            ]
        }
    ).encode()
    urllib.request.urlopen(
        urllib.request.Request(
            f"{aws}/moto-api/static/ce/cost-and-usage-results", data=body, method="POST"
        ),
        timeout=10,
    ).read()
    mapping = 'costExplorer:\n  tagKey: app\n  tagValue: "{spec.resourcePrefix}"\n'
    d = memory(analyze(repo(repo_factory, mapping), "--output", "json").json())
    assert (d["outcome"], d["rule"]) == ("change", "cost-overprovisioned")


def test_an_unreachable_cost_explorer_is_a_warning_and_other_rules_still_decide(
    aws: str, repo_factory: RepoFactory
) -> None:
    load_over_provisioned_week()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    result = cli(
        "analyze", "--repo", str(repo(repo_factory)), "--metrics", "cloudwatch", "--now", NOW_ISO,
        "--output", "json", env={"AWS_ENDPOINT_URL_COST_EXPLORER": f"http://127.0.0.1:{closed}"},
    )  # fmt: skip
    assert result.code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "cost-explorer" in line]
    assert len(warnings) == 1, result.stderr
    assert "no cost_daily data this run, so no cost rule acts" in warnings[0]
    doc = result.json()
    assert {d["field"] for d in doc["decisions"]} == {"spec.lambdaMemory", "spec.lambdaTimeout"}
    assert memory(doc)["rule"] != "cost-overprovisioned"


def test_every_report_says_what_its_metric_reads_cost(aws: str, repo_factory: RepoFactory) -> None:
    load_over_provisioned_week()
    queue_costs(aws, {"orders-prod": 3.0})
    work = repo(repo_factory)
    queries = CLOUDWATCH_METRICS_PER_FUNCTION * len(FUNCTIONS)
    for command in ("analyze", "autotune", "propose"):
        result = cli(command, "--repo", str(work), "--metrics", "cloudwatch", "--now", NOW_ISO,
                     "--output", "json", "--dry-run")  # fmt: skip
        assert result.code == 0, (command, result.stderr)
        cost = result.json()["metricsCost"]
        if command == "autotune":
            # The claim does not opt in: nothing can act, so nothing is read (docs/cloudwatch.md).
            assert cost == {"apiCalls": 0, "metricsRequested": 0, "estimatedUSD": 0.0}
            continue
        # One GetMetricData call holds all ten queries (2 functions x 5 metrics, 300
        # five-minute points each); one GetCostAndUsage page holds the week of costs.
        assert cost == {
            "apiCalls": 2,
            "metricsRequested": queries,
            "estimatedUSD": pytest.approx(queries / 1000 * 0.01 + 0.01),
        }, command


def test_the_table_ends_with_the_cost_line(aws: str, repo_factory: RepoFactory) -> None:
    load_over_provisioned_week()
    result = analyze(repo(repo_factory))
    assert result.code == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last == "metrics cost: 2 API calls, 10 metrics requested, about 0.0101 USD"


def test_prices_are_configurable(aws: str, repo_factory: RepoFactory) -> None:
    load_over_provisioned_week()
    mapping = "pricing:\n  perThousandMetricsUSD: 1.0\n  perCostRequestUSD: 0\n"
    result = analyze(repo(repo_factory, mapping), "--output", "json")
    assert result.json()["metricsCost"]["estimatedUSD"] == pytest.approx(10 / 1000 * 1.0)


def test_a_bad_price_is_a_configuration_error(aws: str, repo_factory: RepoFactory) -> None:
    mapping = "pricing:\n  perThousandMetricsUSD: -1\n"
    result = analyze(repo(repo_factory, mapping))
    assert result.code == 2
    expected = "policies/cloudwatch.yaml: pricing.perThousandMetricsUSD: expected a price in USD >= 0"
    assert expected in result.stderr


def test_fixtures_cost_nothing(repo_factory: RepoFactory, tmp_path: Path) -> None:
    from tests.cwdata import write_fixture

    metrics = tmp_path / "m"
    write_fixture(metrics, "orders-prod", "memory_utilization", [(NOW - 3600 * h, 50.0) for h in range(48)])
    work = repo(repo_factory)
    result = cli(
        "analyze", "--repo", str(work), "--metrics", str(metrics), "--now", NOW_ISO, "--output", "json"
    )
    cost = result.json()["metricsCost"]
    assert (cost["apiCalls"], cost["estimatedUSD"]) == (0, 0)
    assert cost["metricsRequested"] > 0
