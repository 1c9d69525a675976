"""Flap detection: is a tuned field swinging back and forth?

Two measures; either one makes a field *flapping*, which freezes its
auto-tune (guard ``flap-freeze``) until a human acts:

* Nagios' percent state change. The state of a field after each change is
  its direction (up or down); a *state change* is a reversal. Over the last
  21 states, each of the 20 possible transitions that is a reversal adds a
  weight that grows linearly from 0.8 (oldest) to 1.2 (newest), and the sum
  is a percentage of 20. Like Nagios, detection has hysteresis: a field
  starts flapping when the percentage reaches the high threshold (20 %) and
  stops only when it falls below the low one (5 %).
  (Nagios Core, "Detection and Handling of State Flapping".)
* Direction reversals: ``limits.flap.reversals`` (default 2) or more inside
  ``limits.flap.windowDays`` (default 30).

Git is the tool's memory, so a "decision" that counts as a state is a change
that reached the authority branch; holds leave no trace. A human change to
the field or an ``unfreeze`` marker starts the count afresh. Once a field
has flapped, it stays frozen until one of those: the freeze never expires
when its reversals leave the window (a frozen field makes no new changes,
so a window that forgets would lift every freeze by itself), and an
automated ``reset`` neither lifts it nor counts as a state.
Pure: plain values in, plain values out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from feedbackctl.core.models import HUMAN_KINDS, FieldChange
from feedbackctl.core.policy import Limits

# Kinds after which a flap freeze no longer counts earlier changes (a human act).
FREEZE_LIFTING_KINDS = HUMAN_KINDS | {"unfreeze"}
# Automated kinds that are not tuning decisions: they neither lift nor count.
NOT_A_STATE = frozenset({"reset"})

HISTORY = 21  # states; 20 transitions
LOW_WEIGHT, HIGH_WEIGHT = 0.8, 1.2
LOW_THRESHOLD, HIGH_THRESHOLD = 5.0, 20.0


def direction(c: FieldChange) -> int:
    """+1 up, -1 down, 0 for a marker or a non-numeric value."""
    try:
        old, new = float(c.old), float(c.new)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0
    return (new > old) - (new < old)


def percent_state_change(states: Sequence[int]) -> float:
    """Weighted share of reversals among the last 21 states, in percent.

    Fewer than 21 states are right-aligned: the newest transition always has
    the weight 1.2, as in Nagios, whose history starts filled with one state.
    """
    recent = list(states)[-HISTORY:]
    transitions = HISTORY - 1
    offset = HISTORY - len(recent)
    total = 0.0
    for i in range(1, len(recent)):
        if recent[i] != recent[i - 1]:
            x = offset + i  # 1 = oldest possible transition, 20 = newest
            total += LOW_WEIGHT + (x - 1) * (HIGH_WEIGHT - LOW_WEIGHT) / (transitions - 1)
    return total * 100.0 / transitions


def since_lift(changes: Sequence[FieldChange], now: datetime) -> list[tuple[datetime, int]]:
    """(time, direction) of the tuning changes since the last freeze-lifting act, up to ``now``."""
    states: list[tuple[datetime, int]] = []
    for c in changes:
        if c.at > now:
            continue
        if c.kind in FREEZE_LIFTING_KINDS:
            states = []
            continue
        if c.kind in NOT_A_STATE:
            continue
        step = direction(c)
        if step:
            states.append((c.at, step))
    return states


def _states(changes: Sequence[FieldChange], now: datetime, window_days: int) -> list[int]:
    """Directions of the changes since the last freeze-lifting act, inside the window."""
    since = now - timedelta(days=window_days)
    return [step for at, step in since_lift(changes, now) if at >= since]


def count_reversals(states: Sequence[int]) -> int:
    """Direction reversals in a sequence of states (+1 up, -1 down): the one definition."""
    return sum(1 for a, b in zip(states, states[1:], strict=False) if a != b)


def frozen_at(changes: Sequence[FieldChange], now: datetime, limits: Limits) -> datetime | None:
    """When the field started flapping, since the last human act (None: it has not).

    Judged at each change in turn, so a freeze once reached holds whatever
    the window has forgotten since.
    """
    states = since_lift(changes, now)
    window = timedelta(days=limits.flap_window_days)
    for i, (at, _) in enumerate(states):
        inside = [step for t, step in states[: i + 1] if t >= at - window]
        if count_reversals(inside) >= limits.flap_reversals or hysteresis(inside)[0]:
            return at
    return None


def reversals(changes: Sequence[FieldChange], now: datetime, window_days: int) -> int:
    """Direction reversals since the last human act, inside the flap window."""
    return count_reversals(_states(changes, now, window_days))


def hysteresis(states: Sequence[int]) -> tuple[bool, float]:
    """Replay the states one by one: (flapping after the last, its percentage)."""
    flapping, percent = False, 0.0
    for n in range(1, len(states) + 1):
        percent = percent_state_change(states[:n])
        if not flapping and percent >= HIGH_THRESHOLD:
            flapping = True
        elif flapping and percent < LOW_THRESHOLD:
            flapping = False
    return flapping, percent


@dataclass(frozen=True)
class FlapStatus:
    flapping: bool
    percent: float  # Nagios percent state change over the last 21 states
    reversals: int  # inside the flap window
    changes: int  # states counted
    window_days: int
    max_reversals: int

    @property
    def detail(self) -> str:
        return (
            f"{self.reversals} direction reversals in {self.window_days}d "
            f"(limit {self.max_reversals}), {self.percent:.1f}% state change over the last "
            f"{min(self.changes, HISTORY)} changes (flapping from {HIGH_THRESHOLD:g}%, "
            f"until below {LOW_THRESHOLD:g}%)"
        )


def assess(changes: Sequence[FieldChange], now: datetime, limits: Limits) -> FlapStatus:
    """Is the field flapping at ``now``, judged from its history (oldest first)?"""
    lifted = since_lift(changes, now)
    since = now - timedelta(days=limits.flap_window_days)
    states = [step for at, step in lifted if at >= since]  # _states, from the one since_lift
    if _one_way(lifted, limits):
        return FlapStatus(False, 0.0, 0, len(states), limits.flap_window_days, limits.flap_reversals)
    n = count_reversals(states)
    by_percent, percent = hysteresis(states)
    return FlapStatus(
        flapping=by_percent or n >= limits.flap_reversals or frozen_at(changes, now, limits) is not None,
        percent=percent,
        reversals=n,
        changes=len(states),
        window_days=limits.flap_window_days,
        max_reversals=limits.flap_reversals,
    )


def flapping(changes: Sequence[FieldChange], now: datetime, limits: Limits) -> FlapStatus | None:
    """``assess(...)`` when the field is flapping, else None (cheaper: most fields are not)."""
    if _one_way(since_lift(changes, now), limits):
        return None
    status = assess(changes, now, limits)
    return status if status.flapping else None


def _one_way(lifted: Sequence[tuple[datetime, int]], limits: Limits) -> bool:
    """Every change since the last human act went one way: no reversal anywhere, so no
    percentage and no freeze, as ``assess``'s replays would find (this runs per claim and
    field of a fleet, twice: docs/performance.md)."""
    return limits.flap_reversals > 0 and len({step for _, step in lifted}) <= 1
