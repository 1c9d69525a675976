"""The cost signal: a multi-metric rule lowers memory of over-provisioned, expensive claims.

It needs every condition (utilization low, cost high for a week, p99 with room
to grow) and the latency/error guardrails healthy.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from feedbackctl.authority.config import load_policy_docs
from feedbackctl.core.decide import recommend
from feedbackctl.core.models import Outcome, Series
from feedbackctl.core.policy import PolicyError
from tests.clirun import cli
from tests.corefix import NOW, SOURCE, claim, inputs, policy, series
from tests.cwdata import write_fixture
from tests.gitutil import RepoFactory

WEEK_HOURS = 24 * 7


def expensive(
    used: float = 512, cost: float = 3.0, p99: float = 5000, errors: float = 0, end=NOW
) -> dict[str, Series]:
    memory = 1024
    return {
        "memory_utilization": series("memory_utilization", lambda a: used / memory * 100, end=end),
        "used_memory_max": series("used_memory_max", lambda a: used, end=end),
        "duration_p99": series("duration_p99", lambda a: p99, end=end),
        "errors": series("errors", lambda a: errors, end=end),
        "throttles": series("throttles", lambda a: 0, end=end),
        "cost_daily": series("cost_daily", lambda a: cost, hours=WEEK_HOURS, step_min=1440, end=end),
    }


def memory(decisions):
    return next(d for d in decisions if d.field == "lambdaMemory")


def decide(s: dict[str, Series], now=NOW):
    c = claim(env="prod", autotune=False, lambdaMemory=1024, lambdaTimeout=30)
    return memory(recommend(inputs(c, s, baseline=1024), policy(), now, SOURCE))


def test_over_provisioned_and_expensive_gets_less_memory() -> None:
    d = decide(expensive())
    assert d.outcome == Outcome.CHANGE
    assert d.rule == "cost-overprovisioned"
    assert (d.current, d.recommended) == (1024, 640)  # 512 MB peak + 15 %, up to a 128 MB step
    assert {e.metric for e in d.evidence} >= {"memory_utilization", "cost_daily", "duration_p99"}
    assert "cost_daily above 1" in d.reason


def test_a_cheap_claim_keeps_its_memory() -> None:
    d = decide(expensive(cost=0.4))
    assert d.outcome == Outcome.HOLD
    assert any("but cost_daily above 1 did not hold" in n.detail for n in d.notes)


def test_no_decrease_when_p99_has_no_room_to_grow() -> None:
    d = decide(expensive(p99=18_000))  # 60 % of the 30 s timeout: healthy, but no headroom
    assert d.outcome == Outcome.HOLD
    assert any("duration_p99 below 15000 did not hold" in n.detail for n in d.notes)


def test_errors_block_the_cost_decrease() -> None:
    d = decide(expensive(errors=20))
    assert d.outcome == Outcome.BLOCKED
    assert d.blocked_by == ("errors-healthy",)


def test_daily_cost_is_fresh_for_two_days_and_stale_after() -> None:
    later = NOW + timedelta(hours=13)  # the newest daily point is 13 h old
    s = expensive(end=NOW)
    s.update({k: v for k, v in expensive(end=later).items() if k != "cost_daily"})
    assert decide(s, now=later).outcome == Outcome.CHANGE
    much_later = NOW + timedelta(days=3)
    s.update({k: v for k, v in expensive(end=much_later).items() if k != "cost_daily"})
    d = decide(s, now=much_later)
    assert d.outcome == Outcome.HOLD
    assert any("newest cost_daily point is 4320m old" in n.detail for n in d.notes)


def test_missing_cost_data_never_lowers_memory() -> None:
    s = expensive()
    del s["cost_daily"]
    d = decide(s)
    assert d.outcome == Outcome.HOLD
    assert any("no cost_daily data" in n.detail for n in d.notes)


def test_an_also_condition_names_a_known_metric() -> None:
    rules = {
        "rules": [
            {
                "name": "r",
                "field": "lambdaMemory",
                "direction": "decrease",
                "when": {"metric": "memory_utilization", "below": 50},
                "also": [{"metric": "bogus", "above": 1}],
                "sustainedMinutes": 60,
            }
        ]
    }
    with pytest.raises(PolicyError, match=r"rules\[r\]\.also\[0\]\.metric: unknown metric 'bogus'"):
        load_policy_docs({"feedback-rules.yaml": ("policies/feedback-rules.yaml", _yaml(rules))})


def _yaml(doc: object) -> bytes:
    import yaml

    return yaml.safe_dump(doc).encode()


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


def test_cost_from_fixtures_drives_analyze(repo_factory: RepoFactory, tmp_path: Path) -> None:
    work, _ = repo_factory({"claims/orders-prod.yaml": ORDERS}, date="2026-10-01T00:00:00Z")
    metrics = tmp_path / "metrics"
    for name, s in expensive(used=600).items():
        write_fixture(metrics, "orders-prod", name, list(zip(s.ts.tolist(), s.values.tolist(), strict=True)))
    result = cli(
        "analyze", "--repo", str(work), "--metrics", str(metrics), "--now", "2026-11-08T00:00:00Z",
        "--output", "json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    d = next(d for d in result.json()["decisions"] if d["field"] == "spec.lambdaMemory")
    assert (d["outcome"], d["rule"], d["recommended"]) == ("change", "cost-overprovisioned", 768)
