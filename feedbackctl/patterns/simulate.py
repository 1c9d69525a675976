"""``simulate``: backtest a policy over metric history, in memory, through the same core.

Nothing is written anywhere. Simulated time advances every ``step`` minutes;
at each step the claims, their metric series up to that instant and their
simulated field histories go through the fleet pipeline ``core/fleet.py`` (every
runaway guard and the global rate limit, exactly as ``autotune`` runs them).
Applied changes become auto-tune entries of the simulated history, so
cooldowns, settling, change caps and flap freezes see them. With the plant
model (``core/plant.py``) the changes also feed back into the metrics the
next step reads. ``--no-guards`` applies every recommendation the rules make
(policy and schema still apply; guards, guardrails and bounds do not), which
shows what the guards are for.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from feedbackctl.charts import Track
from feedbackctl.core import simulation
from feedbackctl.core.models import Outcome
from feedbackctl.core.simulation import Estimate, Event, iso
from feedbackctl.errors import UsageError
from feedbackctl.patterns.inputs import Problem
from feedbackctl.patterns.simulate_engine import (
    Recorder,
    Simulation,
    estimates,
    fetch,
    span,
    status_of,
    unusable,
)
from feedbackctl.patterns.simulate_setup import SCENARIO_FILE, Options, Setup, setup_from, step_minutes
from feedbackctl.sources.base import MetricsCost

__all__ = [
    "SCENARIO_FILE",
    "Estimate",
    "Event",
    "Options",
    "Result",
    "Setup",
    "result_json",
    "run",
    "safety",
    "setup_from",
    "status_of",
    "step_minutes",
]


# --- the result ----------------------------------------------------------------------


@dataclass
class Result:
    setup: Setup
    start: datetime
    end: datetime
    steps: int
    events: list[Event] = field(default_factory=list)
    initial: dict[str, dict[str, Any]] = field(default_factory=dict)
    final: dict[str, dict[str, Any]] = field(default_factory=dict)
    estimates: dict[str, Estimate] = field(default_factory=dict)
    tracks: list[Track] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    metrics_cost: MetricsCost = field(default_factory=MetricsCost)

    @property
    def applied(self) -> list[Event]:
        return [e for e in self.events if e.event == "applied"]

    @property
    def stopped(self) -> list[Event]:
        return [e for e in self.events if e.event != "applied"]


# --- one backtest ---------------------------------------------------------------------


def run(setup: Setup) -> Result:
    """The whole backtest: no git writes, no network beyond the metric source."""
    recorded, problems, metrics_cost = fetch(setup)
    problems = setup.problems + problems
    start, end = span(setup, recorded)
    usable = []
    for claim in setup.claims:
        why = unusable(claim, setup.policy)
        if why is None:
            usable.append(claim)
        else:  # one bad claim is reported; the others are still simulated
            problems.append(Problem(claim.name, why))
    if not usable:
        raise UsageError("; ".join(p.message for p in problems if p.where))
    setup = replace(setup, claims=usable)
    sim = Simulation(setup, recorded)
    if setup.plant:
        for name, state in sim.states.items():
            if state.demand is None:
                problems.append(
                    Problem(name, f"{name}: the plant needs used_memory_max or memory_utilization history")
                )
    recorder = Recorder(sim)
    step = timedelta(minutes=setup.step_minutes)
    result = Result(setup, start, end, 0, problems=problems, metrics_cost=metrics_cost)
    result.initial = {
        n: {f: s.claim.value(f) for f in setup.policy.tuned_fields} for n, s in sim.states.items()
    }
    t, prev = start, None
    sim.started = start
    while t <= end:
        decisions = sim.decide(t)
        statuses: dict[tuple[str, str], str] = {}
        for d in decisions:
            applied = d.outcome == Outcome.CHANGE and d.changes_value
            if applied:
                sim.apply(t, d)
            elif d.rule is not None and d.outcome in (Outcome.BLOCKED, Outcome.PROPOSE):
                sim.record_stop(t, prev, d)
            statuses[(d.claim, d.field)] = status_of(d, applied)
        recorder.sample(t, sim.seen, statuses)
        result.steps += 1
        prev, t = t, t + step
    result.events = sim.events
    result.final = {
        n: {f: s.claim.value(f) for f in setup.policy.tuned_fields} for n, s in sim.states.items()
    }
    result.estimates = estimates(sim, start, end)
    result.tracks = list(recorder.tracks.values())
    return result


# --- safety summary -----------------------------------------------------------------------


def safety(result: Result) -> dict[str, Any]:
    """The safety oracle (core/simulation.py) on one result."""
    return simulation.safety(result.setup.claims, result.setup.policy, result.applied, result.stopped)


def result_json(result: Result) -> dict[str, Any]:
    s = result.setup
    return {
        "schemaVersion": 1,
        "command": "simulate",
        "scenario": s.name,
        "title": s.title,
        "from": iso(result.start),
        "to": iso(result.end),
        "stepMinutes": s.step_minutes,
        "steps": result.steps,
        "plant": s.plant,
        "guards": s.guards,
        "claims": [
            {
                "claim": name,
                "initial": {f"spec.{f}": v for f, v in result.initial[name].items() if v is not None},
                "final": {f"spec.{f}": v for f, v in result.final[name].items() if v is not None},
                "applied": sum(1 for e in result.applied if e.claim == name),
                "blocked": sum(1 for e in result.stopped if e.claim == name),
                "estimates": result.estimates[name].json() if name in result.estimates else None,
            }
            for name in result.initial
        ],
        "timeline": [e.json() for e in result.events],
        "safety": safety(result),
        "problems": [{"claim": p.where or None, "message": p.message} for p in result.problems],
        "metricsCost": result.metrics_cost.json(),
    }
