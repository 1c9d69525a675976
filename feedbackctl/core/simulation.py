"""What a simulation reports, and its safety oracle: pure values in and out.

``patterns/simulate.py`` runs the backtest; this holds its result types and
the check the scenario tests assert (bounds, cooldowns, reversals, which
rules stopped what), so the oracle can be tested with plain events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from feedbackctl.core import flap
from feedbackctl.core.models import Claim
from feedbackctl.core.policy import Policy
from feedbackctl.core.rules import RuleId
from feedbackctl.core.tuning import parse_autotune


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Event:
    """An applied change, or an episode of one blocked/proposed change (consecutive steps)."""

    at: datetime
    claim: str
    field: str
    event: str  # applied | blocked | proposed
    old: Any
    new: Any
    rule: str | None
    blocked_by: tuple[str, ...] = ()
    reason: str = ""
    until: datetime | None = None
    steps: int = 1
    shaped_by: tuple[str, ...] = ()

    def json(self) -> dict[str, Any]:
        return {
            "at": iso(self.at),
            "until": iso(self.until or self.at),
            "claim": self.claim,
            "field": f"spec.{self.field}",
            "event": self.event,
            "from": self.old,
            "to": self.new,
            "rule": self.rule,
            "blockedBy": list(self.blocked_by),
            "shapedBy": list(self.shaped_by),
            "steps": self.steps,
            "reason": self.reason,
        }


@dataclass
class Estimate:
    cost_usd: float
    baseline_cost_usd: float  # the same demand at the initial configuration
    p99_mean_ms: float
    p99_max_ms: float
    p99_final_ms: float
    baseline_p99_mean_ms: float
    timeout_minutes: float  # time the p99 spent cut at the timeout

    def json(self) -> dict[str, Any]:
        return {
            "costUsd": round(self.cost_usd, 4),
            "baselineCostUsd": round(self.baseline_cost_usd, 4),
            "p99MeanMs": round(self.p99_mean_ms, 1),
            "p99MaxMs": round(self.p99_max_ms, 1),
            "p99FinalMs": round(self.p99_final_ms, 1),
            "baselineP99MeanMs": round(self.baseline_p99_mean_ms, 1),
            "timeoutMinutes": round(self.timeout_minutes, 1),
        }


# --- safety summary (what the scenario tests assert, reported for people too) ---------


def safety(
    claims: Sequence[Claim], policy: Policy, applied: Sequence[Event], stopped: Sequence[Event]
) -> dict[str, Any]:
    """Bound and cooldown violations, reversals per field, blocked changes by rule."""
    bounds_of = {}
    cooldown_of = {}
    for c in claims:
        tuning = parse_autotune(c)
        bounds_of[c.name] = tuning.bounds
        cooldown_of[c.name] = (
            tuning.cooldown_minutes if tuning.cooldown_minutes is not None else policy.limits.cooldown_minutes
        )
    bound_violations, cooldown_violations = [], []
    last: dict[tuple[str, str], Event] = {}
    directions: dict[str, list[int]] = {}
    for e in applied:
        b = bounds_of[e.claim].get(e.field)
        if b is None or not b.min <= float(e.new) <= b.max:
            bound_violations.append(e.json())
        prev = last.get((e.claim, e.field))
        if prev is not None and (e.at - prev.at) < timedelta(minutes=cooldown_of[e.claim]):
            cooldown_violations.append(e.json())
        last[(e.claim, e.field)] = e
        directions.setdefault(f"{e.claim}/{e.field}", []).append(1 if float(e.new) > float(e.old) else -1)
    # Every reversal of the run, as flap detection counts them (no window: the whole backtest).
    reversals = {k: flap.count_reversals(v) for k, v in directions.items()}
    by_rule: dict[str, int] = {}
    for e in stopped:
        for rule in e.blocked_by:
            by_rule[rule] = by_rule.get(rule, 0) + e.steps
    return {
        "boundViolations": bound_violations,
        "cooldownViolations": cooldown_violations,
        "reversals": reversals,
        "frozen": sorted({f"{e.claim}/{e.field}" for e in stopped if RuleId.FLAP_FREEZE in e.blocked_by}),
        "blockedByRule": dict(sorted(by_rule.items())),
    }
