"""Typed policy: feedback rules, guardrails, limits, risk taxonomy, sources.

The model only: ``core/policy_parse.py`` reads the policy files into it and
validates them, naming the file and key at fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from feedbackctl.errors import UsageError

RISK_LEVELS = ("LOW", "MEDIUM", "HIGH")
TRUST_LEVELS = ("very-low", "low", "medium", "high")


class PolicyError(UsageError):
    """A policy or config file is invalid: exit 2, naming file and key."""


@dataclass(frozen=True)
class Condition:
    metric: str
    op: Literal["above", "below"]
    threshold: float
    relative_to: str | None = None  # a field: the threshold scales with its value
    scale: float = 1.0  # multiplies the field's value (e.g. s -> ms)

    def limit(self, spec: Mapping[str, Any]) -> float | None:
        """The absolute threshold for a claim, or None when its field is unusable."""
        if self.relative_to is None:
            return self.threshold
        base = spec.get(self.relative_to)
        if isinstance(base, bool) or not isinstance(base, int | float):
            return None
        return self.threshold * float(base) * self.scale

    def describe(self) -> str:
        rel = f" x {self.relative_to}" if self.relative_to else ""
        return f"{self.metric} {self.op} {self.threshold:g}{rel}"


@dataclass(frozen=True)
class Sizing:
    """How a new value is derived from absolute usage (VPA-style margin)."""

    metric: str
    margin: float = 0.15
    scale: float = 1.0


@dataclass(frozen=True)
class AlsoCondition:
    """A further condition a rule needs (multi-metric rules): all must hold."""

    when: Condition
    sustained_minutes: int | None = None  # None: the rule's own window


@dataclass(frozen=True)
class Rule:
    name: str
    field: str
    direction: Literal["increase", "decrease"]
    when: Condition
    sustained_minutes: int
    size: Sizing | None = None
    also: tuple[AlsoCondition, ...] = ()

    @property
    def metrics(self) -> tuple[str, ...]:
        names = [self.when.metric, *(a.when.metric for a in self.also)]
        if self.size is not None:
            names.append(self.size.metric)
        return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class Guardrail:
    name: str
    blocks: Literal["increase", "decrease", "any"]
    when: Condition
    window_minutes: int


@dataclass(frozen=True)
class FieldPolicy:
    name: str
    step: float
    min: float
    max: float
    unit: str = ""


@dataclass(frozen=True)
class MetricPolicy:
    name: str
    unit: str = ""
    coupled_to: tuple[str, ...] = ()
    # Coarse metrics (one point a day) need their own freshness and density.
    max_staleness_minutes: int | None = None
    min_points: int | None = None
    max_gap_minutes: int | None = None


@dataclass(frozen=True)
class Limits:
    min_points: int = 6
    max_staleness_minutes: int = 30
    # None: 3x the series' median spacing, at least MIN_GAP_MINUTES (signals.max_gap_seconds).
    max_gap_minutes: int | None = None
    settling_minutes: int = 120
    cooldown_minutes: int = 60
    cap_up: float = 2.0
    cap_down: float = 0.5
    rate_per_run: int = 20
    rate_per_24h: int = 50
    flap_window_days: int = 30
    flap_reversals: int = 2
    auto_apply_ceiling: str = "MEDIUM"
    # An increase threshold must sit above the decrease threshold of the same
    # signal by this fraction of itself, or the two rules chase each other.
    hysteresis_band: float = 0.1


def hysteresis_inverted(increase_above: float, decrease_below: float, band: float) -> bool:
    """True when ``increase_above`` is not above ``decrease_below`` with room for the band."""
    return increase_above <= decrease_below or decrease_below > increase_above * (1 - band)


@dataclass(frozen=True)
class FieldRisk:
    base: str
    concern: str


@dataclass(frozen=True)
class RiskPolicy:
    fields: Mapping[str, FieldRisk] = field(default_factory=dict)
    unknown_field: str = "MEDIUM"
    security_fields: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Source:
    name: str
    type: Literal["pull", "push"]
    trust_level: str = "high"
    cooldown_minutes: int = 60
    requires_proposal: bool = False
    endpoint: str | None = None
    # False for a name the registry does not hold (a typo in --metrics cloudwatch:NAME):
    # it never changes a claim (guard trust), whatever trust it would default to.
    registered: bool = True

    @property
    def low_trust(self) -> bool:
        return self.trust_level in ("low", "very-low")


@dataclass(frozen=True)
class Policy:
    fields: Mapping[str, FieldPolicy]
    metrics: Mapping[str, MetricPolicy]
    rules: tuple[Rule, ...]
    guardrails: tuple[Guardrail, ...]
    limits: Limits
    risk: RiskPolicy
    sources: Mapping[str, Source]

    def limits_for(self, metric: str) -> Limits:
        """The limits a window of ``metric`` is checked with (a metric may set its own)."""
        mp = self.metrics.get(metric)
        if mp is None or (mp.max_staleness_minutes, mp.min_points, mp.max_gap_minutes) == (None, None, None):
            return self.limits
        return replace(
            self.limits,
            max_staleness_minutes=mp.max_staleness_minutes or self.limits.max_staleness_minutes,
            min_points=mp.min_points or self.limits.min_points,
            max_gap_minutes=mp.max_gap_minutes or self.limits.max_gap_minutes,
        )

    def rules_for(self, field_name: str) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.field == field_name)

    @property
    def tuned_fields(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.field for r in self.rules))

    def source(self, name: str) -> Source:
        found = self.sources.get(name)
        if found is None:
            return Source(name=name, type="pull", trust_level="medium", registered=False)
        return found
