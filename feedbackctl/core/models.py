"""Plain values the pure decision core takes and returns.

Nothing here touches git, AWS, files, the clock or the terminal.
Field names are bare spec keys (``lambdaMemory``); trailers add ``spec.``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from feedbackctl.core.schema import FieldSchema

Scalar = int | float | str | bool | None

PRODUCTION_ENVIRONMENTS = frozenset({"prod", "production", "prd"})


@dataclass(frozen=True, slots=True)
class ValueLocation:
    """Where a scalar's text sits in a file at a commit, for minimal edits."""

    path: str  # repo-relative path of the file that sets the value
    doc_index: int  # index of the YAML document inside that file
    start: int  # offset of the scalar's first character in the decoded text
    end: int  # offset one past its last character
    line: int  # 1-based
    column: int  # 1-based
    # Every claim whose effective value this scalar sets, when it is more than
    # one (a Kustomize base shared by overlays): editing it is a batch change.
    shared_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Claim:
    """One claim document as it is at the authority ref."""

    name: str
    kind: str
    api_version: str
    spec: Mapping[str, Any]
    path: str
    doc_index: int = 0
    namespace: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    locations: Mapping[str, ValueLocation] = field(default_factory=dict)
    blob: str = ""  # git blob id of the file it came from
    # Schema rules per spec field (the repo's XRD, the policy's ranges): writes must fit them.
    schema: Mapping[str, tuple[FieldSchema, ...]] = field(default_factory=dict)

    @property
    def environment(self) -> str | None:
        env = self.spec.get("environment")
        return str(env) if env is not None else None

    @property
    def is_production(self) -> bool:
        return (self.environment or "").lower() in PRODUCTION_ENVIRONMENTS

    def value(self, name: str) -> Any:
        return self.spec.get(name)


@dataclass(frozen=True)
class Series:
    """One metric for one claim: sorted, unique epoch-second timestamps."""

    metric: str
    ts: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def since(self, start: float) -> Series:
        i = int(self.ts.searchsorted(start, side="left"))
        return Series(self.metric, self.ts[i:], self.values[i:])

    def until(self, end: float) -> Series:
        i = int(self.ts.searchsorted(end, side="right"))
        return Series(self.metric, self.ts[:i], self.values[:i])

    @staticmethod
    def empty(metric: str) -> Series:
        return Series(metric, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))


@dataclass(frozen=True, slots=True)
class FieldChange:
    """A change of one field's value, derived from git history.

    ``kind`` is the ``Feedback-Kind`` trailer value, or ``human`` for a commit
    without feedbackctl trailers that changed the value.
    """

    commit: str
    at: datetime
    old: Scalar
    new: Scalar
    kind: str
    source: str | None = None
    rule: str | None = None
    tags: tuple[str, ...] = ()
    run: str | None = None  # Feedback-Run: the cron slot it was made in (older commits: none)

    @property
    def automated(self) -> bool:
        return self.kind in AUTOMATED_KINDS


# Kinds whose changes were made by the tool without a human in the loop.
AUTOMATED_KINDS = frozenset({"auto-tune", "reset"})
# Kinds that carry a human's decision: their value counts as a baseline.
HUMAN_KINDS = frozenset({"human", "approve", "accept", "proposal"})
# Kinds that never change a value: markers in a field's history.
MARKER_KINDS = frozenset({"unfreeze", "review", "ack", "reject", "dismiss", "expire", "recommendation"})


@dataclass(frozen=True)
class Acknowledgement:
    """A human's ack of one proposed change, read from the authority branch.

    It lifts the risk ceiling, and nothing else, for moves of ``field`` that
    start on the acknowledged path ``old -> new`` and stay on it: the other
    guards still shape or stop the move, so a two-step ack takes two runs.
    ``commit`` is the ack commit, named in the auto-tune commit's trailers.
    """

    commit: str
    claim: str
    field: str
    old: Scalar
    new: Scalar
    by: str
    at: datetime

    def covers(self, current: Scalar, target: Scalar) -> bool:
        """Is ``current -> target`` a part of the acknowledged move?"""
        nums = [v for v in (self.old, self.new, current, target) if _is_number(v)]
        if len(nums) != 4:
            return self.old == current and self.new == target
        lo, hi, cur, to = (float(v) for v in (self.old, self.new, current, target))  # type: ignore[arg-type]
        if lo == hi or cur == to:
            return False
        up = hi > lo
        # current lies on [old, new) and the move goes toward new without passing it
        if up:
            return lo <= cur < hi and cur < to <= hi
        return hi < cur <= lo and hi <= to < cur


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


@dataclass(frozen=True)
class FieldHistory:
    """What git says about one claim field: oldest change first."""

    claim: str
    field: str
    changes: tuple[FieldChange, ...] = ()
    baseline: Scalar = None  # value last set by a human (README, "The runaway guards")
    frozen_by_human_since: datetime | None = None  # unfreeze / human acts lift a flap freeze

    @property
    def last_change(self) -> FieldChange | None:
        """The newest change that actually moved the value (markers skipped)."""
        return next((c for c in reversed(self.changes) if c.old != c.new), None)


@dataclass(frozen=True)
class FleetHistory:
    """Feedback-driven changes across all claims inside the rate-limit window."""

    recent: tuple[tuple[str, FieldChange], ...] = ()  # (claim, change), oldest first


class Outcome(StrEnum):
    CHANGE = "change"  # a change is recommended (analyze) or applied (autotune)
    HOLD = "hold"  # no rule fired: the value fits the signals
    BLOCKED = "blocked"  # a rule fired but a guard blocked it
    NOT_ENOUGH_DATA = "not-enough-data"
    PROPOSE = "propose"  # the change needs a human: route it to a proposal


Direction = Literal["increase", "decrease"]
NoteEffect = Literal["fired", "shaped", "blocked", "info"]


@dataclass(frozen=True, slots=True)
class Evidence:
    metric: str
    statistic: str
    window_minutes: int
    points: int
    value: float
    threshold: float | None = None
    # The policy's unit for the metric (percent, ms, MB, USD, ...): presentation only, so a
    # record read back without it (a proposal's evidence) still equals the same evidence.
    unit: str = field(default="", compare=False)

    @property
    def summary(self) -> str:
        hours = self.window_minutes / 60
        window = f"{hours:g}h" if self.window_minutes % 60 == 0 else f"{self.window_minutes}m"
        cmp = f" vs threshold {with_unit(self.threshold, self.unit)}" if self.threshold is not None else ""
        value = with_unit(self.value, self.unit)
        return f"{self.metric} {self.statistic}={value}{cmp} over {window}, n={self.points}"


def with_unit(value: float, unit: str) -> str:
    """A number as people read it: its unit, and no more digits than the unit needs."""
    v = float(value)
    if unit in ("percent", "%"):
        return f"{v:.3g}%"
    if unit == "USD":
        return f"{v:.2f} USD"
    if unit in ("ms", "MB"):
        return f"{v:.0f} {unit}" if abs(v) >= 10 else f"{v:.3g} {unit}"
    if unit == "s":
        return f"{v:.3g} s"
    return f"{v:.4g}"


@dataclass(frozen=True, slots=True)
class Note:
    """One rule or guard that fired, shaped or blocked a decision, and why."""

    rule: str
    effect: NoteEffect
    detail: str


@dataclass(frozen=True, slots=True)
class Decision:
    claim: str
    field: str
    current: Scalar
    outcome: Outcome
    recommended: Scalar = None
    uncapped: Scalar = None  # the value before bounds/step/cap shaped it (VPA style)
    direction: Direction | None = None
    confidence: float = 0.0
    rule: str | None = None  # the rule that fired
    source: str | None = None
    risk: str | None = None
    evidence: tuple[Evidence, ...] = ()
    notes: tuple[Note, ...] = ()
    # "<claim>@<commit>": the earlier stage that ran this value for the soak (staging validation).
    validated_in: str | None = None
    acknowledged: str | None = None  # the ack commit that lifted the risk ceiling

    def stopped(self, rule: str, detail: str, outcome: Outcome = Outcome.BLOCKED) -> Decision:
        """This decision stopped by ``rule``: a ``blocked`` note; BLOCKED, or PROPOSE (a human decides)."""
        return replace(self, outcome=outcome, notes=self.notes + (Note(rule, "blocked", detail),))

    @property
    def blocked_by(self) -> tuple[str, ...]:
        return tuple(n.rule for n in self.notes if n.effect == "blocked")

    @property
    def changes_value(self) -> bool:
        return self.outcome in (Outcome.CHANGE, Outcome.PROPOSE) and self.recommended != self.current

    @property
    def reason(self) -> str:
        """One line: why this outcome (the blocking note first)."""
        return reason_of([(n.rule, n.effect, n.detail) for n in self.notes])


def reason_of(notes: Sequence[Sequence[str]]) -> str:
    """``Decision.reason`` of notes given as (rule, effect, detail): the blocking note first,
    else the firing one, else the first note's detail. Also read from packed decisions'
    plain lists (render.py), which are never built into Decisions."""
    blocked = [n for n in notes if n[1] == "blocked"]
    fired = blocked or [n for n in notes if n[1] == "fired"]
    if fired:
        return f"{fired[0][0]}: {fired[0][2]}"
    return notes[0][2] if notes else ""
