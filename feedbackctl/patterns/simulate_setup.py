"""What a simulation is asked to do: the command line and a scenario file, resolved into a Setup.

Reads files, never writes (``patterns/simulate.py`` runs the backtest).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from feedbackctl.authority.claims import parse_claims
from feedbackctl.authority.config import POLICY_FILES, load_policy_docs, metrics_location
from feedbackctl.authority.snapshot import load_snapshot, open_repo
from feedbackctl.authority.yamldoc import YamlError, load_data
from feedbackctl.core import plant as plant_model
from feedbackctl.core.models import Claim
from feedbackctl.core.policy import Policy
from feedbackctl.core.validation import (
    Validation,
    ValidationConfigError,
    parse_validation,
)
from feedbackctl.errors import UsageError
from feedbackctl.patterns.inputs import Problem

SCENARIO_FILE = "scenario.yaml"


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
