"""policies/cloudwatch.yaml: the Lambda defaults, a repo's override, and clear errors."""

from __future__ import annotations

import io
import sys
from typing import Any

import pytest

from feedbackctl.core.models import Claim
from feedbackctl.core.policy import PolicyError
from feedbackctl.sources import cloudwatch_calls
from feedbackctl.sources.cloudwatch_mapping import MissingValue, Template, load_mapping, parse_mapping


def test_the_lambda_defaults() -> None:
    m = load_mapping()
    kind = m.kind("ServerlessEventAppClaim")
    assert kind is not None
    assert [t.text for t in kind.functions] == [
        "{spec.resourcePrefix}-api-handler",
        "{spec.resourcePrefix}-snapshot-writer",
    ]
    expected = {
        "duration_p99": ("AWS/Lambda", "Duration", "FunctionName", "p99", "max"),
        "duration_p50": ("AWS/Lambda", "Duration", "FunctionName", "p50", "max"),
        "errors": ("AWS/Lambda", "Errors", "FunctionName", "Sum", "sum"),
        "throttles": ("AWS/Lambda", "Throttles", "FunctionName", "Sum", "sum"),
        "invocations": ("AWS/Lambda", "Invocations", "FunctionName", "Sum", "sum"),
        "memory_utilization": ("LambdaInsights", "memory_utilization", "function_name", "Maximum", "max"),
        "used_memory_max": ("LambdaInsights", "used_memory_max", "function_name", "Maximum", "max"),
    }
    got = {
        name: (q.namespace, q.metric_name, q.dimensions[0][0], q.stat, q.combine)
        for name, q in m.metrics.items()
    }
    assert got == expected
    assert {q.period for q in m.metrics.values()} == {300}
    assert "cost_daily" not in m.metrics


def test_a_repo_override_replaces_entries_by_name() -> None:
    override = b"period: 60\nmetrics:\n  errors: {namespace: Custom, metricName: Faults, stat: Sum}\n"
    m = load_mapping(("policies/cloudwatch.yaml", override))
    assert m.metrics["errors"].namespace == "Custom" and m.metrics["errors"].dimensions == ()
    assert m.metrics["errors"].period == 60 and m.metrics["duration_p99"].period == 60
    assert m.metrics["duration_p99"].stat == "p99"  # untouched entries stay


def test_templates_read_the_claim() -> None:
    c = Claim("orders", "K", "v1", {"resourcePrefix": "ord", "nested": {"x": 3}}, "c.yaml", namespace="team")
    assert Template("{spec.resourcePrefix}-{function}").render(c, "api") == "ord-api"
    assert Template("{name}.{namespace}.{spec.nested.x}").render(c) == "orders.team.3"
    with pytest.raises(MissingValue) as missing:
        Template("{spec.region}").render(c)
    assert missing.value.key == "spec.region"


def q(**extra: Any) -> dict[str, Any]:
    return {"metrics": {"m": {"namespace": "N", "metricName": "M", "stat": "Sum", **extra}}}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (q(stat="P99"), "metrics.m.stat: 'P99' is not"),
        (q(combine="avg"), "metrics.m.combine: expected one of max, min, sum"),
        (q(period=90), "metrics.m.period: expected seconds, a multiple of 60"),
        (q(dimensions={"F": "{fn}"}), "metrics.m.dimensions.F: unknown placeholder {fn}"),
        ({"metrics": {"m": {"metricName": "M", "stat": "Sum"}}}, "metrics.m.namespace: expected a non-empty"),
        ({"kinds": {"K": {"functions": "x"}}}, "kinds.K.functions: expected a list"),
    ],
)  # fmt: skip
def test_a_bad_mapping_names_the_file_and_key(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match="^policies/cloudwatch.yaml: ") as err:
        parse_mapping(doc, "policies/cloudwatch.yaml")
    assert message in str(err.value)


@pytest.mark.parametrize("stat", ["p99", "p99.9", "tm90", "TM(10%:90%)", "PR(:300)", "IQM", "SampleCount"])
def test_extended_statistics_are_accepted(stat: str) -> None:
    parse_mapping({"metrics": {"m": {"namespace": "N", "metricName": "M", "stat": stat}}}, "f")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_shows_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stderr", pipe)
    with cloudwatch_calls._progress(12) as advance:
        advance()
    assert pipe.getvalue() == ""
    tty = _Terminal()
    monkeypatch.setattr(sys, "stderr", tty)
    with cloudwatch_calls._progress(12) as advance:
        advance()
    assert "GetMetricData" in tty.getvalue()
    one = _Terminal()
    monkeypatch.setattr(sys, "stderr", one)
    with cloudwatch_calls._progress(1) as advance:  # a single call is not a long pull
        advance()
    assert one.getvalue() == ""
