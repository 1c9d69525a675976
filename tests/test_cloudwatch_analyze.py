"""``analyze --metrics cloudwatch`` end to end: the CLI over HTTP against a moto server.

Seven days of hourly data go into moto and, combined per claim, into a fixtures
directory; both sources must lead to the same decisions.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.clirun import cli
from tests.cwdata import P99_AS_MAXIMUM, client, put, write_fixture
from tests.gitutil import RepoFactory, commit_files

NOW_ISO = "2026-11-08T00:00:00Z"
NOW = int(datetime(2026, 11, 8, tzinfo=UTC).timestamp())
HOURS = 7 * 24

# The corpus's claims (serverless-message-wall-demo/examples/claims), as written there,
# except that dev gets its own resourcePrefix: with the corpus's shared prefix both
# claims would name the same functions (see test_claims_sharing_functions_are_refused).
DEV = """\
---
apiVersion: messagewall.demo/v1alpha1
kind: ServerlessEventAppClaim
metadata:
  name: messagewall-dev
  namespace: default
spec:
  # Required fields
  environment: dev
  awsAccountId: "123456789012"  # Replace with your AWS account ID

  # Optional fields with defaults shown
  resourcePrefix: {prefix}
  region: us-east-1
  lambdaMemory: 128
  lambdaTimeout: 10
  eventSource: messagewall.api-handler
  # artifactBucket: ""  # Uses app bucket if not specified
"""
PROD = """\
---
apiVersion: messagewall.demo/v1alpha1
kind: ServerlessEventAppClaim
metadata:
  name: messagewall-prod
  namespace: default
  annotations:
    confighub.io/precious: "true"
spec:
  # Required fields
  environment: prod
  awsAccountId: "123456789012"  # Replace with your AWS account ID

  # Production settings
  resourcePrefix: messagewall
  region: us-east-1
  lambdaMemory: 256    # Higher memory for production
  lambdaTimeout: 30    # Longer timeout for reliability
  eventSource: messagewall.api-handler
"""

# Hourly data: windows long enough to hold minPoints hourly points.
RULES = """\
limits:
  maxStalenessMinutes: 90
rules:
  - name: memory-pressure
    field: lambdaMemory
    direction: increase
    when: {metric: memory_utilization, above: 90}
    sustainedMinutes: 360
    size: {metric: used_memory_max, margin: 0.15}
  - name: timeout-pressure
    field: lambdaTimeout
    direction: increase
    when: {metric: duration_p99, above: 0.8, relativeTo: lambdaTimeout, scale: 1000}
    sustainedMinutes: 360
    size: {metric: duration_p99, margin: 0.5, scale: 0.001}
guardrails:
  - {name: errors-healthy, blocks: decrease, when: {metric: errors, above: 5}, windowMinutes: 360}
  - {name: throttles-healthy, blocks: decrease, when: {metric: throttles, above: 0}, windowMinutes: 360}
  - name: p99-healthy
    blocks: decrease
    when: {metric: duration_p99, above: 0.8, relativeTo: lambdaTimeout, scale: 1000}
    windowMinutes: 360
"""
MAPPING = "period: 3600\n" + P99_AS_MAXIMUM  # hourly points

Gen = Callable[[np.random.Generator, int], np.ndarray]


def _between(lo: float, hi: float) -> Gen:
    return lambda rng, n: np.round(lo + (hi - lo) * rng.random(n), 2)


# claim -> (prefix, memory MB, {function suffix: {metric: generator}})
FLEET: dict[str, tuple[str, int, dict[str, dict[str, Gen]]]] = {
    "messagewall-prod": (
        "messagewall",
        256,
        {
            "api-handler": {"util": _between(92, 98), "p99": _between(9000, 14000), "errors": _between(0, 2)},
            "snapshot-writer": {
                "util": _between(55, 65),
                "p99": _between(2000, 3000),
                "errors": _between(0, 0),
            },
        },
    ),
    "messagewall-dev": (
        "messagewall-dev",
        128,
        {
            "api-handler": {"util": _between(20, 35), "p99": _between(300, 900), "errors": _between(0, 0)},
            "snapshot-writer": {
                "util": _between(15, 25),
                "p99": _between(100, 200),
                "errors": _between(0, 0),
            },
        },
    ),
}
COMBINE = {"memory_utilization": np.maximum, "used_memory_max": np.maximum, "duration_p99": np.maximum,
           "errors": np.add, "throttles": np.add}  # fmt: skip


def load_week(metrics_dir: Path) -> None:
    """Put the fleet's week into moto, and the per-claim series into fixtures."""
    rng = np.random.default_rng(20261108)
    ts = np.array([NOW - h * 3600 for h in range(HOURS, -1, -1)], dtype=np.int64)
    n = ts.shape[0]
    cw = client()
    for name, (prefix, memory, functions) in FLEET.items():
        claim_level: dict[str, np.ndarray] = {}
        for suffix, gens in functions.items():
            fn = f"{prefix}-{suffix}"
            util = gens["util"](rng, n)
            series = {
                "memory_utilization": ("LambdaInsights", "memory_utilization", "function_name", util),
                "used_memory_max": (
                    "LambdaInsights",
                    "used_memory_max",
                    "function_name",
                    np.round(util * memory / 100, 2),
                ),
                "duration_p99": ("AWS/Lambda", "Duration", "FunctionName", gens["p99"](rng, n)),
                "errors": ("AWS/Lambda", "Errors", "FunctionName", np.round(gens["errors"](rng, n))),
                "throttles": ("AWS/Lambda", "Throttles", "FunctionName", np.zeros(n)),
            }
            for metric, (namespace, metric_name, dim, values) in series.items():
                put(
                    cw,
                    namespace,
                    metric_name,
                    {dim: fn},
                    list(zip(ts.tolist(), values.tolist(), strict=True)),
                )
                prev = claim_level.get(metric)
                claim_level[metric] = values if prev is None else COMBINE[metric](prev, values)
        for metric, values in claim_level.items():
            write_fixture(metrics_dir, name, metric, list(zip(ts.tolist(), values.tolist(), strict=True)))


def repo(repo_factory: RepoFactory, dev_prefix: str = "messagewall-dev", **extra: str) -> Path:
    files = {
        "claims/messagewall-dev.yaml": DEV.replace("{prefix}", dev_prefix),
        "claims/messagewall-prod.yaml": PROD,
        "policies/feedback-rules.yaml": RULES,
        "policies/cloudwatch.yaml": MAPPING,
        **extra,
    }
    work, _ = repo_factory(files, date="2026-10-01T09:00:00Z")
    return work


def analyze(work: Path, metrics: str, env: dict[str, str] | None = None) -> Any:
    return cli(
        "analyze", "--repo", str(work), "--metrics", metrics, "--now", NOW_ISO, "--output", "json", env=env
    )


def _without_source(decisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in d.items() if k != "source"} for d in decisions]


def test_cloudwatch_and_fixtures_with_the_same_data_decide_alike(
    aws: str, repo_factory: RepoFactory, tmp_path: Path
) -> None:
    load_week(tmp_path / "metrics")
    work = repo(repo_factory)

    from_cloudwatch = analyze(work, "cloudwatch")
    from_fixtures = analyze(work, str(tmp_path / "metrics"))

    assert from_cloudwatch.code == 0, from_cloudwatch.stderr
    assert from_fixtures.code == 0, from_fixtures.stderr
    cw, fx = from_cloudwatch.json()["decisions"], from_fixtures.json()["decisions"]
    assert _without_source(cw) == _without_source(fx)
    assert {d["source"] for d in cw} == {"cloudwatch-metrics"}
    by = {(d["claim"], d["field"]): d for d in cw}
    prod_memory = by[("messagewall-prod", "spec.lambdaMemory")]
    assert (prod_memory["outcome"], prod_memory["current"], prod_memory["recommended"]) == (
        "change",
        256,
        384,
    )
    assert prod_memory["rule"] == "memory-pressure"
    dev_timeout = by[("messagewall-dev", "spec.lambdaTimeout")]
    assert (dev_timeout["outcome"], dev_timeout["recommended"]) == ("change", 5)
    assert by[("messagewall-prod", "spec.lambdaTimeout")]["outcome"] == "hold"


def test_claims_sharing_functions_are_refused(aws: str, repo_factory: RepoFactory, tmp_path: Path) -> None:
    # As in the corpus: dev and prod both set resourcePrefix: messagewall.
    work = repo(repo_factory, dev_prefix="messagewall")
    result = analyze(work, "cloudwatch")
    assert result.code == 1
    assert "messagewall-dev" in result.stderr and "same CloudWatch series" in result.stderr
    assert result.json()["decisions"] == []
    assert "Traceback" not in result.stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_endpoint_is_one_clear_line(aws: str, repo_factory: RepoFactory) -> None:
    work = repo(repo_factory)
    url = f"http://127.0.0.1:{_closed_port()}"
    result = analyze(work, "cloudwatch", env={"AWS_ENDPOINT_URL": url, "AWS_MAX_ATTEMPTS": "1"})
    assert result.code == 1
    assert "cannot reach" in result.stderr and url in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_no_region_anywhere_is_a_usage_error(
    aws: str, repo_factory: RepoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = repo(repo_factory)
    edits = {}
    for name in ("claims/messagewall-dev.yaml", "claims/messagewall-prod.yaml"):
        edits[name] = (work / name).read_text().replace("  region: us-east-1\n", "")
    commit_files(work, edits, "Drop regions")
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    result = analyze(work, "cloudwatch")
    assert result.code == 2
    assert "no AWS region" in result.stderr


def test_an_unknown_profile_is_a_usage_error(aws: str, repo_factory: RepoFactory) -> None:
    work = repo(repo_factory)
    result = analyze(work, "cloudwatch", env={"AWS_PROFILE": "no-such-profile"})
    assert result.code == 2
    assert "no-such-profile" in result.stderr and "AWS_PROFILE" in result.stderr
    assert "Traceback" not in result.stderr
