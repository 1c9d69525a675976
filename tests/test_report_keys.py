"""Every command's JSON keys, in order: the typed results write what ``Report.extra`` used to."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from feedbackctl.core.drift import DriftResult, Finding, Status
from feedbackctl.core.results import (
    AutotuneResult,
    FlapResult,
    ObserveResult,
    ProposalShown,
    ProposalsResult,
    Report,
    ResetResult,
    Result,
    ReviewResult,
)
from feedbackctl.render import report_json
from feedbackctl.sources.base import MetricsCost

NOW = datetime(2026, 11, 8, tzinfo=UTC)
COMMON = ["schemaVersion", "command", "now", "branch", "commit", "dryRun", "decisions", "commits"]
COMMON += ["events", "problems", "warnings"]
FINDING = Finding("app", "lambdaTimeout", 30, 60, Status.DRIFT, ("outside the autoTune bounds 1-40",), "LOW")


def doc(result: Result | None, cost: MetricsCost | None = None) -> dict[str, Any]:
    return report_json(Report("x", NOW, "main", "abc", metrics_cost=cost, result=result))


@pytest.mark.parametrize(
    ("result", "keys"),
    [
        (None, []),
        (ResetResult([{"claim": "app"}]), ["resets"]),
        (ObserveResult(3), ["observations"]),
        (ReviewResult(reviewed_by="f00"), ["reviewedBy"]),
        (ReviewResult(reviews="f00"), ["reviews"]),
        (AutotuneResult(attempts=1, summary={"applied": 1}), ["attempts", "summary"]),
        (AutotuneResult(attempts=2, remote="origin", summary={}), ["attempts", "remote", "summary"]),
        (AutotuneResult(), []),
        (ProposalsResult([]), ["proposals"]),
        (ProposalsResult([], []), ["proposals", "passedOver"]),
        (DriftResult("report", "live-file", "main", 2), ["mode", "source", "target", "inSync"]),
        (DriftResult("report", "live-file", "main", 2, []), ["mode", "source", "target", "inSync", "drift"]),
        (FlapResult("app", "lambdaMemory", False, 12.345, 1), ["flap"]),
    ],
)
def test_each_result_writes_its_keys_after_the_common_ones(result: Result | None, keys: list[str]) -> None:
    assert list(doc(result)) == COMMON + keys


def test_the_cost_comes_first_and_a_show_lists_the_branch_commits_in_place_of_the_common_key() -> None:
    cost = MetricsCost(api_calls=2, metrics_requested=14, estimated_usd=0.00014)
    propose = doc(ProposalsResult([{"branch": "b"}], []), cost)
    assert list(propose) == [*COMMON, "metricsCost", "proposals", "passedOver"]
    assert propose["metricsCost"] == {"apiCalls": 2, "metricsRequested": 14, "estimatedUSD": 0.00014}
    shown = doc(ProposalShown({"branch": "b"}, None, [{"sha": "f00", "kind": "proposal", "author": "a"}]))
    assert list(shown) == [*COMMON, "proposal", "record"]
    assert shown["commits"] == [{"sha": "f00", "kind": "proposal", "author": "a"}]


def test_values_are_written_as_the_commands_wrote_them() -> None:
    flap = doc(FlapResult("app", "lambdaMemory", True, 12.345, 4))["flap"]
    assert flap == {
        "claim": "app",
        "field": "spec.lambdaMemory",
        "flapping": True,
        "percentStateChange": 12.35,
        "reversals": 4,
    }
    drift = doc(DriftResult("capture", "live-file", "review", 1, [FINDING]))
    assert (drift["mode"], drift["source"], drift["target"], drift["inSync"]) == (
        "capture",
        "live-file",
        "review",
        1,
    )
    assert json.loads(json.dumps(drift["drift"])) == [
        {
            "claim": "app",
            "field": "spec.lambdaTimeout",
            "desired": 30,
            "observed": 60,
            "status": "drift",
            "outOfBounds": ["outside the autoTune bounds 1-40"],
            "untested": False,
            "risk": "LOW",
            "commit": None,
            "detail": "",
        }
    ]


def test_a_report_refuses_to_be_read_as_another_commands_result() -> None:
    report = Report("reset", NOW, result=ResetResult([]))
    assert report.result_as(ResetResult).resets == []
    with pytest.raises(TypeError, match="reset: expected a DriftResult, got ResetResult"):
        report.result_as(DriftResult)
