"""A small plant model: how a Lambda's metrics answer its configuration.

``simulate --plant`` feeds every applied change back into the metrics the
decision core reads next, so feedback loops can run away in a backtest the
way they would in production. Demand is what the recorded metrics say at the
*reference* configuration (the claim as it was when they were recorded):

* used memory scales as ``(memory / reference) ** usageElasticity`` (0: the
  code needs what it needs; 1: caches and heaps grow into whatever they get,
  the concurrency-style positive feedback of risk 2 in docs/design.md);
* ``memory_utilization`` is used / configured (capped at 100 %; more demand
  than memory is an out-of-memory error);
* duration falls with memory up to a knee (Lambda adds CPU in proportion to
  memory; one full vCPU at 1769 MB), but only its CPU-bound share does;
* a duration above the timeout is cut at the timeout and counts as errors;
* cost is proportional to memory x duration (GB-seconds) plus requests.

Dependencies between claims (risk 4 in docs/design.md) multiply a claim's durations
by ``(other field now / other field at reference) ** exponent``. Pure numpy
on arrays: no IO, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]

GB_SECOND_USD = 0.0000166667  # us-east-1 x86 list price
REQUEST_USD = 0.20 / 1_000_000
FULL_VCPU_MB = 1769.0
TIMEOUT_ERROR_SHARE = 0.01  # of invocations, while the tail is cut at the timeout
OOM_ERROR_SHARE = 0.05  # of invocations, while demand exceeds memory
# Metrics the plant produces (the rest of a fixture passes through unchanged).
PLANT_METRICS = (
    "memory_utilization",
    "used_memory_max",
    "duration_p99",
    "duration_p50",
    "errors",
    "cost_hourly",
)


@dataclass(frozen=True)
class Dependency:
    """This claim's durations scale with another claim's field."""

    claim: str
    field: str
    exponent: float = 1.0


@dataclass(frozen=True)
class PlantParams:
    usage_elasticity: float = 0.0
    knee_mb: float = FULL_VCPU_MB
    cpu_share: float = 0.5  # of duration that speeds up with memory
    depends_on: tuple[Dependency, ...] = ()


@dataclass(frozen=True)
class Demand:
    """Recorded metrics at the reference configuration, on one time axis."""

    ts: npt.NDArray[np.int64]
    used_mb: Floats
    p99_ms: Floats
    p50_ms: Floats
    invocations: Floats
    errors: Floats
    reference: Mapping[str, float] = field(default_factory=dict)  # field -> value when recorded
    point_seconds: float = 300.0  # the usual spacing of points (for per-hour rates)

    def __len__(self) -> int:
        return int(self.ts.shape[0])


def spacing(ts: npt.NDArray[np.int64]) -> float:
    """The usual spacing of points, in seconds."""
    return float(np.median(np.diff(ts))) if ts.shape[0] >= 2 else 300.0


def speedup(memory: float, reference: float, params: PlantParams) -> float:
    """How much faster the CPU-bound share runs at ``memory`` than at ``reference``."""
    return min(memory, params.knee_mb) / max(1.0, min(reference, params.knee_mb))


def duration_factor(memory: float, reference: float, params: PlantParams) -> float:
    cpu = min(1.0, max(0.0, params.cpu_share))
    return cpu / speedup(memory, reference, params) + (1.0 - cpu)


def dependency_factor(
    params: PlantParams,
    current: Mapping[str, Mapping[str, float]],
    reference: Mapping[str, Mapping[str, float]],
) -> float:
    """Product of (other field now / at reference) ** exponent over the dependencies."""
    factor = 1.0
    for dep in params.depends_on:
        now = current.get(dep.claim, {}).get(dep.field)
        ref = reference.get(dep.claim, {}).get(dep.field)
        if now is not None and ref:
            factor *= (now / ref) ** dep.exponent
    return factor


def respond(
    demand: Demand,
    lo: int,
    hi: int,
    config: Mapping[str, float],
    params: PlantParams,
    dependency: float = 1.0,
) -> dict[str, Floats]:
    """Metrics for points ``[lo, hi)`` of ``demand`` under ``config`` (lambdaMemory, lambdaTimeout)."""
    ref_memory = demand.reference.get("lambdaMemory", config.get("lambdaMemory", 128.0))
    memory = float(config.get("lambdaMemory", ref_memory))
    timeout_ms = float(config.get("lambdaTimeout", 900.0)) * 1000.0
    used = demand.used_mb[lo:hi] * (memory / ref_memory) ** params.usage_elasticity
    factor = duration_factor(memory, ref_memory, params) * dependency
    p99_raw = demand.p99_ms[lo:hi] * factor
    p50 = np.minimum(demand.p50_ms[lo:hi] * factor, timeout_ms)
    p99 = np.minimum(p99_raw, timeout_ms)
    calls = demand.invocations[lo:hi]
    errors = (
        demand.errors[lo:hi]
        + np.where(p99_raw > timeout_ms, calls * TIMEOUT_ERROR_SHARE, 0.0)
        + np.where(used > memory, calls * OOM_ERROR_SHARE, 0.0)
    )
    per_hour = 3600.0 / demand.point_seconds
    cost = calls * per_hour * ((p50 / 1000.0) * (memory / 1024.0) * GB_SECOND_USD + REQUEST_USD)
    return {
        "memory_utilization": np.minimum(100.0, used / memory * 100.0),
        "used_memory_max": np.minimum(used, memory),
        "duration_p99": p99,
        "duration_p50": p50,
        "errors": np.round(errors),
        "cost_hourly": cost,
        "_timed_out": (p99_raw > timeout_ms).astype(np.float64),
    }
