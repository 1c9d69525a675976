"""``simulate``: backtest a policy over metric history, in memory, through the same core.

Nothing is written anywhere. Simulated time advances every ``step`` minutes;
at each step the claims, their metric series up to that instant and their
simulated field histories go through ``core.decide.autotune_fleet`` (every
runaway guard and the global rate limit, exactly as ``autotune`` runs them).
Applied changes become auto-tune entries of the simulated history, so
cooldowns, settling, change caps and flap freezes see them. With the plant
model (``core/plant.py``) the changes also feed back into the metrics the
next step reads. ``--no-guards`` applies every recommendation the rules make
(policy and schema still apply; guards, guardrails and bounds do not), which
shows what the guards are for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from feedbackctl.authority.claims import parse_claims
from feedbackctl.authority.config import POLICY_FILES, load_policy_docs, metrics_location
from feedbackctl.authority.history import annotated_baseline
from feedbackctl.authority.snapshot import load_snapshot, open_repo
from feedbackctl.authority.yamldoc import YamlError, load_data
from feedbackctl.charts import Panel, Threshold, Track
from feedbackctl.core import plant as plant_model
from feedbackctl.core.decide import SIZING_LOOKBACK_MINUTES, ClaimInputs, autotune_fleet, recommend
from feedbackctl.core.models import Claim, Decision, FieldChange, FieldHistory, FleetHistory, Outcome, Series
from feedbackctl.core.policy import Condition, Policy
from feedbackctl.core.promotion import autotune_stages
from feedbackctl.core.rules import RuleId
from feedbackctl.core.tuning import AutoTune, parse_autotune
from feedbackctl.core.validation import (
    StageEvidence,
    Validation,
    ValidationConfigError,
    pairings,
    parse_validation,
)
from feedbackctl.errors import FeedbackError, UsageError
from feedbackctl.patterns.inputs import Problem, located, needed_metrics
from feedbackctl.sources.base import MetricRequest, MetricsCost, fetch_cost, open_source

SCENARIO_FILE = "scenario.yaml"
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


# --- what a simulation is asked to do ----------------------------------------------


@dataclass
class Setup:
    claims: list[Claim]
    policy: Policy
    metrics: str  # a metric source spec (a fixtures directory)
    start: datetime | None = None
    end: datetime | None = None
    step_minutes: int = 5
    plant: bool = False
    guards: bool = True
    plant_params: dict[str, plant_model.PlantParams] = field(default_factory=dict)
    references: dict[str, dict[str, float]] = field(default_factory=dict)
    chart_metrics: tuple[str, ...] = ()
    name: str | None = None
    title: str = ""
    description: str = ""
    problems: list[Problem] = field(default_factory=list)  # claims that could not be read
    validation: Validation | None = None  # promotion stages (docs/validation.md)


@dataclass(frozen=True)
class Options:
    """The command line, before a scenario file fills in what it leaves open."""

    scenario: str | None = None
    metrics: str | None = None
    claim_file: str | None = None
    repo: str | None = None
    ref: str | None = None
    policies: str | None = None
    start: str | None = None
    end: str | None = None
    step: str | None = None
    plant: bool | None = None
    guards: bool = True


def _yaml(path: Path) -> Any:
    try:
        return load_data(str(path), path.read_bytes())
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except OSError as e:
        raise UsageError(f"{path}: cannot read ({e})") from None
    except YamlError as e:
        raise UsageError(str(e)) from None


def _number(raw: Any, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise UsageError(f"{where}: expected a number, got {raw!r}; fix the scenario")
    return float(raw)


def _params(raw: Any, where: str) -> tuple[plant_model.PlantParams, dict[str, float]]:
    if not isinstance(raw, Mapping):
        raise UsageError(f"{where}: expected a mapping; fix the scenario")
    deps = []
    for i, d in enumerate(raw.get("dependsOn") or []):
        if (
            not isinstance(d, Mapping)
            or not isinstance(d.get("claim"), str)
            or not isinstance(d.get("field"), str)
        ):
            raise UsageError(f"{where}.dependsOn[{i}]: expected claim, field and exponent; fix the scenario")
        deps.append(
            plant_model.Dependency(
                d["claim"], d["field"], _number(d.get("exponent", 1.0), f"{where}.dependsOn[{i}]")
            )
        )
    defaults = plant_model.PlantParams()
    params = plant_model.PlantParams(
        usage_elasticity=_number(
            raw.get("usageElasticity", defaults.usage_elasticity), f"{where}.usageElasticity"
        ),
        knee_mb=_number(raw.get("kneeMemory", defaults.knee_mb), f"{where}.kneeMemory"),
        cpu_share=_number(raw.get("cpuShare", defaults.cpu_share), f"{where}.cpuShare"),
        depends_on=tuple(deps),
    )
    ref = raw.get("reference") or {}
    if not isinstance(ref, Mapping):
        raise UsageError(f"{where}.reference: expected a mapping of field to value")
    return params, {str(k): _number(v, f"{where}.reference.{k}") for k, v in ref.items()}


def _policy(policies: Path | None) -> Policy:
    overrides: dict[str, tuple[str, bytes]] = {}
    if policies is not None:
        if not policies.is_dir():
            raise UsageError(f"--policies {policies}: not a directory of policy files")
        for name in POLICY_FILES:
            path = policies / name
            if path.is_file():
                overrides[name] = (str(path), path.read_bytes())
    return load_policy_docs(overrides)


def _claims(path: Path) -> list[Claim]:
    try:
        content = path.read_bytes()
    except OSError as e:
        raise UsageError(f"--claim {path}: cannot read ({e.strerror or e})") from None
    parsed = parse_claims([(str(path), "", content)])
    if parsed.errors:
        raise UsageError(str(parsed.errors[0]))
    if not parsed.claims:
        raise UsageError(f"{path}: no claim documents (kind ending in Claim); nothing to simulate")
    return parsed.claims


def _instant(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    from feedbackctl.clock import parse_instant

    return parse_instant(text, option)


def setup_from(opts: Options) -> Setup:
    """Resolve the options (and a scenario file) into a Setup; reads files, never writes."""
    scenario: Mapping[str, Any] = {}
    base: Path | None = None
    if opts.scenario is not None:
        base = Path(opts.scenario)
        file = base / SCENARIO_FILE if base.is_dir() else base
        base = file.parent
        loaded = _yaml(file)
        if not isinstance(loaded, Mapping):
            raise UsageError(f"{file}: expected a mapping at the top; fix the scenario")
        scenario = loaded

    def rel(key: str) -> Path | None:
        value = scenario.get(key)
        return (base / str(value)) if base is not None and value is not None else None

    metrics = opts.metrics or (str(rel("metrics")) if rel("metrics") else None)
    if opts.repo is not None and opts.claim_file is not None:
        raise UsageError("pass either --claim FILE or --repo PATH, not both")
    problems: list[Problem] = []
    validation: Validation | None = None
    if opts.repo is not None:
        snapshot = load_snapshot(open_repo(opts.repo), opts.ref)
        claims, policy = snapshot.claims, snapshot.settings.policy
        validation = snapshot.settings.config.validation
        problems = [Problem.of(e) for e in snapshot.errors]
        metrics = metrics or metrics_location(snapshot.settings.config, snapshot.repo)
    else:
        claim_file = Path(opts.claim_file) if opts.claim_file else rel("claims")
        if claim_file is None:
            raise UsageError("nothing to simulate: pass --claim FILE, --repo PATH or --scenario DIR")
        claims = _claims(claim_file)
        policies = Path(opts.policies) if opts.policies else rel("policies")
        policy = _policy(policies if policies is None or policies.exists() else None)
    if not metrics:
        raise UsageError("no metric history: pass --metrics DIR (a fixtures directory)")
    raw_plant = scenario.get("plant") or {}
    if not isinstance(raw_plant, Mapping):
        raise UsageError("scenario plant: expected a mapping; fix the scenario")
    params: dict[str, plant_model.PlantParams] = {}
    references: dict[str, dict[str, float]] = {}
    for name, raw in (raw_plant.get("claims") or {}).items():
        params[str(name)], references[str(name)] = _params(raw, f"plant.claims.{name}")
    step = step_minutes(opts.step or str(scenario.get("step", "5m")))
    chart = scenario.get("chart") or {}
    if "validation" in scenario:
        try:
            validation = parse_validation(scenario["validation"])
        except ValidationConfigError as e:
            raise UsageError(f"scenario {e}; fix the scenario") from None
    return Setup(
        claims=list(claims),
        policy=policy,
        metrics=metrics,
        start=_instant(opts.start or _text(scenario.get("from")), "--from"),
        end=_instant(opts.end or _text(scenario.get("to")), "--to"),
        step_minutes=step,
        plant=opts.plant if opts.plant is not None else bool(raw_plant.get("enabled", False)),
        guards=opts.guards,
        plant_params=params,
        references=references,
        chart_metrics=tuple(str(m) for m in (chart.get("metrics") or []) if isinstance(chart, Mapping)),
        name=str(scenario.get("name")) if scenario.get("name") else None,
        title=str(scenario.get("title") or ""),
        description=str(scenario.get("description") or "").strip(),
        problems=problems,
        validation=validation,
    )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


_STEP = re.compile(r"^\s*(\d+)\s*(m|h|d)?\s*$")


def step_minutes(text: str) -> int:
    """``5m``, ``1h``, ``1d`` or plain minutes."""
    match = _STEP.match(text)
    minutes = int(match.group(1)) * {"m": 1, "h": 60, "d": 1440}[match.group(2) or "m"] if match else 0
    if minutes < 1:
        raise UsageError(f"--step {text!r}: expected a duration like 5m, 15m or 1h")
    return minutes


# --- the result ----------------------------------------------------------------------


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
            "at": _iso(self.at),
            "until": _iso(self.until or self.at),
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


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- the engine ----------------------------------------------------------------------


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
            if self.pairs:
                evidence = {later: self.evidence(earlier, t) for later, earlier in self.pairs.items()}
                return autotune_stages(
                    fleet_inputs, self.policy, t, self.source, recent, evidence, from_git=False
                )
            return autotune_fleet(fleet_inputs, self.policy, t, self.source, recent, from_git=False)
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


def _fetch(setup: Setup) -> tuple[dict[str, dict[str, Series]], list[Problem], MetricsCost]:
    wanted = (
        set(needed_metrics(setup.policy)) | set(_DEMAND_METRICS) | {"throttles"} | set(setup.chart_metrics)
    )
    source = open_source(setup.metrics)
    requests = [MetricRequest(c, tuple(sorted(wanted)), 0.0, _FAR_FUTURE) for c in setup.claims]
    batch = source.fetch(requests, _FAR_FUTURE)
    problems = [Problem(claim, p) for claim, ps in batch.problems.items() for p in ps]
    return batch.series, problems, fetch_cost(source, requests)


def _span(setup: Setup, recorded: Mapping[str, Mapping[str, Series]]) -> tuple[datetime, datetime]:
    firsts = [float(s.ts[0]) for by in recorded.values() for s in by.values() if len(s)]
    lasts = [float(s.ts[-1]) for by in recorded.values() for s in by.values() if len(s)]
    if not firsts:
        raise UsageError(f"{setup.metrics}: no metric points for any claim; nothing to simulate")
    start = setup.start or datetime.fromtimestamp(min(firsts), UTC)
    end = setup.end or datetime.fromtimestamp(max(lasts), UTC)
    if end <= start:
        raise UsageError(f"--to {_iso(end)} is not after --from {_iso(start)}")
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


class _Recorder:
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


def _estimates(sim: Simulation, start: datetime, end: datetime) -> dict[str, Estimate]:
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


def _unusable(claim: Claim, policy: Policy) -> str | None:
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


def run(setup: Setup) -> Result:
    """The whole backtest: no git writes, no network beyond the metric source."""
    recorded, problems, metrics_cost = _fetch(setup)
    problems = setup.problems + problems
    start, end = _span(setup, recorded)
    usable = []
    for claim in setup.claims:
        why = _unusable(claim, setup.policy)
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
    recorder = _Recorder(sim)
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
    result.estimates = _estimates(sim, start, end)
    result.tracks = list(recorder.tracks.values())
    return result


# --- safety summary (what the scenario tests assert, reported for people too) ---------


def safety(result: Result) -> dict[str, Any]:
    """Bound and cooldown violations, reversals per field, blocked changes by rule."""
    policy = result.setup.policy
    bounds_of = {}
    cooldown_of = {}
    for c in result.setup.claims:
        tuning = parse_autotune(c)
        bounds_of[c.name] = tuning.bounds
        cooldown_of[c.name] = (
            tuning.cooldown_minutes if tuning.cooldown_minutes is not None else policy.limits.cooldown_minutes
        )
    bound_violations, cooldown_violations = [], []
    last: dict[tuple[str, str], Event] = {}
    directions: dict[str, list[int]] = {}
    for e in result.applied:
        b = bounds_of[e.claim].get(e.field)
        if b is None or not b.min <= float(e.new) <= b.max:
            bound_violations.append(e.json())
        prev = last.get((e.claim, e.field))
        if prev is not None and (e.at - prev.at) < timedelta(minutes=cooldown_of[e.claim]):
            cooldown_violations.append(e.json())
        last[(e.claim, e.field)] = e
        directions.setdefault(f"{e.claim}/{e.field}", []).append(1 if float(e.new) > float(e.old) else -1)
    reversals = {k: sum(1 for a, b in zip(v, v[1:], strict=False) if a != b) for k, v in directions.items()}
    by_rule: dict[str, int] = {}
    for e in result.stopped:
        for rule in e.blocked_by:
            by_rule[rule] = by_rule.get(rule, 0) + e.steps
    return {
        "boundViolations": bound_violations,
        "cooldownViolations": cooldown_violations,
        "reversals": reversals,
        "frozen": sorted(
            {f"{e.claim}/{e.field}" for e in result.stopped if RuleId.FLAP_FREEZE in e.blocked_by}
        ),
        "blockedByRule": dict(sorted(by_rule.items())),
    }


def result_json(result: Result) -> dict[str, Any]:
    s = result.setup
    return {
        "schemaVersion": 1,
        "command": "simulate",
        "scenario": s.name,
        "title": s.title,
        "from": _iso(result.start),
        "to": _iso(result.end),
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
