"""The simulation engine: simulated claims, their histories and the plant, stepped through the core.

``Simulation`` holds the simulated values and field histories and asks the
same core ``autotune`` runs (the fleet pipeline, ``core/fleet.py``) for each step's
decisions; ``_Recorder`` samples the charts; ``estimates`` prices the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from feedbackctl.authority.history import annotated_baseline
from feedbackctl.charts import Panel, Threshold, Track
from feedbackctl.core import fleet as pipeline
from feedbackctl.core import plant as plant_model
from feedbackctl.core.decide import SIZING_LOOKBACK_MINUTES, ClaimInputs, recommend
from feedbackctl.core.models import Claim, Decision, FieldChange, FieldHistory, FleetHistory, Outcome, Series
from feedbackctl.core.policy import Condition, Policy
from feedbackctl.core.simulation import Estimate, Event, iso
from feedbackctl.core.tuning import AutoTune, parse_autotune
from feedbackctl.core.validation import (
    StageEvidence,
    pairings,
)
from feedbackctl.errors import FeedbackError, UsageError
from feedbackctl.patterns.inputs import Problem, located, needed_metrics
from feedbackctl.patterns.simulate_setup import Setup
from feedbackctl.sources.base import MetricRequest, MetricsCost, fetch_cost, open_source

# Fixture timestamps are never ahead of this: simulations replay the past.
_FAR_FUTURE = 4_102_444_800.0  # 2100-01-01
_LOOKBACK_SECONDS = (SIZING_LOOKBACK_MINUTES + 24 * 60) * 60
_DEMAND_METRICS = (
    "used_memory_max",
    "memory_utilization",
    "duration_p99",
    "duration_p50",
    "invocations",
    "errors",
)


@dataclass
class _ClaimState:
    claim: Claim
    recorded: dict[str, Series]
    params: plant_model.PlantParams
    demand: plant_model.Demand | None
    out: dict[str, plant_model.Floats] = field(default_factory=dict)
    filled: int = 0
    changes: dict[str, list[FieldChange]] = field(default_factory=dict)
    baselines: dict[str, Any] = field(default_factory=dict)

    def config(self) -> dict[str, float]:
        return {
            k: float(v)
            for k, v in self.claim.spec.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }


def _demand(recorded: Mapping[str, Series], reference: Mapping[str, float]) -> plant_model.Demand | None:
    master = recorded.get("used_memory_max") or recorded.get("memory_utilization")
    if master is None or len(master) == 0:
        return None
    ts = master.ts

    def on_axis(metric: str) -> plant_model.Floats:
        s = recorded.get(metric)
        if s is None or len(s) == 0:
            return np.zeros(len(ts), dtype=np.float64)
        return np.interp(ts.astype(np.float64), s.ts.astype(np.float64), s.values).astype(np.float64)

    if "used_memory_max" in recorded and len(recorded["used_memory_max"]):
        used = on_axis("used_memory_max")
    else:
        used = on_axis("memory_utilization") / 100.0 * reference.get("lambdaMemory", 128.0)
    return plant_model.Demand(
        ts=ts,
        used_mb=used,
        p99_ms=on_axis("duration_p99"),
        p50_ms=on_axis("duration_p50"),
        invocations=on_axis("invocations"),
        errors=on_axis("errors"),
        reference=dict(reference),
        point_seconds=plant_model.spacing(ts),
    )


class Simulation:
    """Steps simulated time; holds simulated claim values and field histories."""

    def __init__(self, setup: Setup, recorded: Mapping[str, Mapping[str, Series]]) -> None:
        self.setup = setup
        self.policy = setup.policy if setup.guards else replace(setup.policy, guardrails=())
        self.source = setup.policy.source(open_source(setup.metrics).name)
        self.states: dict[str, _ClaimState] = {}
        self.references: dict[str, dict[str, float]] = {}
        for c in setup.claims:
            state = _ClaimState(
                c,
                dict(recorded.get(c.name, {})),
                setup.plant_params.get(c.name, plant_model.PlantParams()),
                None,
            )
            self.references[c.name] = {**state.config(), **setup.references.get(c.name, {})}
            state.demand = _demand(state.recorded, self.references[c.name])
            for f in setup.policy.tuned_fields:
                explicit = annotated_baseline(c, f)
                state.baselines[f] = explicit if explicit is not None else c.value(f)
                state.changes[f] = []
            self.states[c.name] = state
        self.fleet: list[tuple[str, FieldChange]] = []
        self.events: list[Event] = []
        self._open: dict[tuple[str, str], Event] = {}
        self.pairs: dict[str, str] = {}
        self.started: datetime | None = None
        if setup.validation is not None:
            pairs, errors = pairings(setup.claims, setup.validation)
            if errors:
                raise UsageError(str(next(iter(errors.values()))))
            self.pairs = pairs
        self.seen: dict[str, dict[str, Series]] = {}  # what the core read at the last step
        self._count = 0

    def evidence(self, earlier: str, t: datetime) -> StageEvidence:
        """The earlier stage as simulated so far (its value held since the start counts from the start)."""
        assert self.setup.validation is not None
        state = self.states[earlier]
        tuning = parse_autotune(state.claim)
        return StageEvidence(
            claim=earlier,
            spec=state.claim.spec,
            histories={f: FieldHistory(earlier, f, tuple(ch)) for f, ch in state.changes.items()},
            series=self.seen.get(earlier, {}),
            known_since=self.started or t,
            soak_minutes=self.setup.validation.soak_minutes,
            anchor="simulation-start",
            opted_in=tuning.enabled,
            allows=tuple(tuning.bounds),
        )

    # -- metrics the core reads at time t ----------------------------------------------

    def _advance_plant(self, state: _ClaimState, t: float) -> None:
        d = state.demand
        if d is None:
            return
        hi = int(np.searchsorted(d.ts, t, side="right"))
        if hi <= state.filled:
            return
        current = {name: s.config() for name, s in self.states.items()}
        dep = plant_model.dependency_factor(state.params, current, self.references)
        chunk = plant_model.respond(d, state.filled, hi, state.config(), state.params, dep)
        for metric, values in chunk.items():
            if metric not in state.out:
                state.out[metric] = np.full(len(d), np.nan)
            state.out[metric][state.filled : hi] = values
        state.filled = hi

    def series_at(self, state: _ClaimState, t: float) -> dict[str, Series]:
        out: dict[str, Series] = {}
        for metric, s in state.recorded.items():
            out[metric] = s.since(t - _LOOKBACK_SECONDS).until(t)
        d = state.demand
        if self.setup.plant and d is not None:
            lo = int(np.searchsorted(d.ts, t - _LOOKBACK_SECONDS, side="left"))
            hi = state.filled
            for metric in plant_model.PLANT_METRICS:
                if metric not in state.out:
                    continue
                if metric in ("duration_p99", "duration_p50", "errors") and metric not in state.recorded:
                    continue  # the plant shapes recorded signals; it never invents a missing one
                if metric == "cost_hourly" and "invocations" not in state.recorded:
                    continue
                out[metric] = Series(metric, d.ts[lo:hi], state.out[metric][lo:hi])
        return out

    # -- one step -------------------------------------------------------------------------

    def inputs(self, t: datetime) -> list[ClaimInputs]:
        out = []
        for name, state in self.states.items():
            self._advance_plant(state, t.timestamp())
            histories = {
                f: FieldHistory(name, f, tuple(changes), baseline=state.baselines.get(f))
                for f, changes in state.changes.items()
            }
            self.seen[name] = self.series_at(state, t.timestamp())
            out.append(ClaimInputs(state.claim, self.seen[name], histories))
        return out

    def decide(self, t: datetime) -> list[Decision]:
        fleet_inputs = self.inputs(t)
        if self.setup.guards:
            recent = FleetHistory(tuple((c, ch) for c, ch in self.fleet if t - ch.at < timedelta(hours=25)))
            # Metrics cost nothing here: every blocked field still says which rule wanted to act.
            evidence = {later: self.evidence(earlier, t) for later, earlier in self.pairs.items()}
            return pipeline.run(fleet_inputs, self.policy, t, self.source, recent, evidence, from_git=False)
        return [d for i in fleet_inputs for d in recommend(i, self.policy, t, self.source)]

    def apply(self, t: datetime, d: Decision) -> None:
        state = self.states[d.claim]
        self._count += 1
        change = FieldChange(
            f"sim{self._count:05d}", t, d.current, d.recommended, "auto-tune", source=d.source, rule=d.rule
        )
        state.changes.setdefault(d.field, []).append(change)
        self.fleet.append((d.claim, change))
        state.claim = replace(state.claim, spec={**state.claim.spec, d.field: d.recommended})
        shaped = tuple(dict.fromkeys(n.rule for n in d.notes if n.effect == "shaped" and n.rule != "sizing"))
        reason = next((n.detail for n in d.notes if n.effect == "fired"), d.reason)
        self.events.append(
            Event(t, d.claim, d.field, "applied", d.current, d.recommended, d.rule, (), reason, t, 1, shaped)
        )

    def record_stop(self, t: datetime, prev: datetime | None, d: Decision) -> None:
        kind = "proposed" if d.outcome == Outcome.PROPOSE else "blocked"
        key = (d.claim, d.field)
        current = self._open.get(key)
        same = (
            current is not None
            and prev is not None
            and current.until == prev
            and (current.event, current.blocked_by, current.new, current.old)
            == (kind, d.blocked_by, d.recommended, d.current)
        )
        if same and current is not None:
            current.until = t
            current.steps += 1
            return
        ev = Event(t, d.claim, d.field, kind, d.current, d.recommended, d.rule, d.blocked_by, d.reason, t, 1)
        self.events.append(ev)
        self._open[key] = ev


def status_of(d: Decision, applied: bool) -> str:
    if applied:
        return "applied"
    if d.rule is not None and d.outcome in (Outcome.BLOCKED, Outcome.PROPOSE):
        return "proposed" if d.outcome == Outcome.PROPOSE else "blocked"
    if d.outcome == Outcome.BLOCKED:
        return "gated"  # no rule fired; a time gate (settling, cooldown, flap freeze) holds the field
    return "hold" if d.outcome == Outcome.HOLD else "no-data"


def fetch(setup: Setup) -> tuple[dict[str, dict[str, Series]], list[Problem], MetricsCost]:
    wanted = (
        set(needed_metrics(setup.policy)) | set(_DEMAND_METRICS) | {"throttles"} | set(setup.chart_metrics)
    )
    source = open_source(setup.metrics)
    requests = [MetricRequest(c, tuple(sorted(wanted)), 0.0, _FAR_FUTURE) for c in setup.claims]
    batch = source.fetch(requests, _FAR_FUTURE)
    problems = [Problem(claim, p) for claim, ps in batch.problems.items() for p in ps]
    return batch.series, problems, fetch_cost(source, requests)


def span(setup: Setup, recorded: Mapping[str, Mapping[str, Series]]) -> tuple[datetime, datetime]:
    firsts = [float(s.ts[0]) for by in recorded.values() for s in by.values() if len(s)]
    lasts = [float(s.ts[-1]) for by in recorded.values() for s in by.values() if len(s)]
    if not firsts:
        raise UsageError(f"{setup.metrics}: no metric points for any claim; nothing to simulate")
    start = setup.start or datetime.fromtimestamp(min(firsts), UTC)
    end = setup.end or datetime.fromtimestamp(max(lasts), UTC)
    if end <= start:
        raise UsageError(f"--to {iso(end)} is not after --from {iso(start)}")
    return start, end


def _chart_metrics(policy: Policy, field_name: str, extra: Sequence[str]) -> list[str]:
    metrics = [r.when.metric for r in policy.rules_for(field_name)]
    return list(dict.fromkeys([*metrics, *extra]))


def _limit(cond: Condition, claim: Claim, tuning: AutoTune, field_name: str, direction: str) -> float | None:
    """The threshold as the core applies it to this claim (its own trigger overrides)."""
    t = tuning.trigger
    if (
        t is not None
        and direction == "increase"
        and field_name in tuning.bounds
        and t.metric == cond.metric
        and cond.relative_to is None
    ):
        return t.threshold
    return cond.limit(claim.spec)


class Recorder:
    """Per-step samples for the charts."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        policy = sim.setup.policy
        self.tracks: dict[tuple[str, str], Track] = {}
        self.tuning = {name: parse_autotune(state.claim) for name, state in sim.states.items()}
        for name, state in sim.states.items():
            for f in policy.tuned_fields:
                if state.claim.value(f) is None:
                    continue
                panels = []
                for metric in _chart_metrics(policy, f, sim.setup.chart_metrics):
                    thresholds = [
                        Threshold(r.name, r.direction, [])
                        for r in policy.rules_for(f)
                        if r.when.metric == metric
                    ]
                    # Guardrails are drawn even with --no-guards: the line the runaway crosses.
                    thresholds += [
                        Threshold(g.name, "guardrail", [])
                        for g in policy.guardrails
                        if g.when.metric == metric
                    ]
                    unit = policy.metrics[metric].unit if metric in policy.metrics else ""
                    panels.append(Panel(metric, unit, [], thresholds))
                bounds = parse_autotune(state.claim).bounds.get(f)
                fp = policy.fields[f]
                self.tracks[(name, f)] = Track(
                    claim=name,
                    field=f,
                    unit=fp.unit,
                    times=[],
                    values=[],
                    status=[],
                    panels=panels,
                    bounds=(bounds.min, bounds.max) if bounds else None,
                )

    def sample(
        self, t: datetime, series: Mapping[str, Mapping[str, Series]], statuses: Mapping[tuple[str, str], str]
    ) -> None:
        policy = self.sim.setup.policy
        for (name, f), track in self.tracks.items():
            claim = self.sim.states[name].claim
            track.times.append(int(t.timestamp()))
            track.values.append(float(claim.value(f)))
            track.status.append(statuses.get((name, f), "no-data"))
            for panel in track.panels:
                s = series.get(name, {}).get(panel.metric)
                panel.values.append(float(s.values[-1]) if s is not None and len(s) else None)
                for th in panel.thresholds:
                    rule = next((r for r in policy.rules if r.name == th.name), None)
                    guard = next((g for g in policy.guardrails if g.name == th.name), None)
                    cond = rule.when if rule is not None else guard.when if guard is not None else None
                    limit = _limit(cond, claim, self.tuning[name], f, th.kind) if cond is not None else None
                    th.values.append(limit)


def estimates(sim: Simulation, start: datetime, end: datetime) -> dict[str, Estimate]:
    out: dict[str, Estimate] = {}
    for name, state in sim.states.items():
        d = state.demand
        if d is None or "duration_p99" not in state.out:
            continue
        sim._advance_plant(state, end.timestamp())
        lo = int(np.searchsorted(d.ts, start.timestamp(), side="left"))
        hi = state.filled
        if hi <= lo:
            continue
        baseline = plant_model.respond(d, lo, hi, sim.references[name], state.params)
        hours = d.point_seconds / 3600.0
        p99 = state.out["duration_p99"][lo:hi]
        out[name] = Estimate(
            cost_usd=float(np.sum(state.out["cost_hourly"][lo:hi]) * hours),
            baseline_cost_usd=float(np.sum(baseline["cost_hourly"]) * hours),
            p99_mean_ms=float(np.mean(p99)),
            p99_max_ms=float(np.max(p99)),
            p99_final_ms=float(p99[-1]),
            baseline_p99_mean_ms=float(np.mean(baseline["duration_p99"])),
            timeout_minutes=float(np.sum(state.out["_timed_out"][lo:hi]) * d.point_seconds / 60.0),
        )
    return out


def unusable(claim: Claim, policy: Policy) -> str | None:
    """Why ``claim`` cannot be simulated (its autoTune block or a tuned value), or None."""
    try:
        parse_autotune(claim)
    except FeedbackError as e:
        return f"{located(claim, str(e))}: {e}"
    for name in policy.tuned_fields:
        value = claim.value(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            where = located(claim, f"spec.{name}")
            return f"{where}: {claim.name}: spec.{name} is {value!r}, expected a number; fix the claim"
    return None
