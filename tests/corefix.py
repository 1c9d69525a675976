"""Plain-value builders for unit tests of the pure core."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from feedbackctl.authority.config import load_policy_docs
from feedbackctl.core.decide import ClaimInputs
from feedbackctl.core.models import Claim, FieldChange, FieldHistory, Series
from feedbackctl.core.policy import Policy, Source

NOW = datetime(2026, 11, 8, tzinfo=UTC)
SOURCE = Source("metric-fixtures", "pull", "high", 60)
SEED_AUTOTUNE = {
    "enabled": True,
    "memoryBounds": {"min": 128, "max": 512},
    "cooldownMinutes": 60,
    "trigger": {"metric": "memory_utilization", "threshold": 90, "sustainedMinutes": 30},
}


def policy() -> Policy:
    return load_policy_docs({})


def claim(name: str = "app-prod", env: str = "prod", autotune: bool = True, **spec: Any) -> Claim:
    full: dict[str, Any] = {"environment": env, "lambdaMemory": 256, "lambdaTimeout": 30, **spec}
    if autotune and "autoTune" not in spec:
        full["autoTune"] = SEED_AUTOTUNE
    return Claim(
        name=name,
        kind="ServerlessEventAppClaim",
        api_version="x.demo/v1",
        spec=full,
        path=f"claims/{name}.yaml",
    )


def series(
    metric: str,
    fn: Callable[[float], float],
    *,
    hours: float = 24 * 7,
    step_min: int = 5,
    end: datetime = NOW,
) -> Series:
    n = int(hours * 60 / step_min) + 1
    ts = np.array([int(end.timestamp()) - (n - 1 - i) * step_min * 60 for i in range(n)], dtype=np.int64)
    ago = (end.timestamp() - ts) / 60.0
    return Series(metric, ts, np.array([fn(a) for a in ago], dtype=np.float64))


def healthy(memory: float = 256, used: float = 240, timeout: float = 30) -> dict[str, Series]:
    """Prod under memory pressure, otherwise healthy."""
    return {
        "memory_utilization": series("memory_utilization", lambda a: used / memory * 100),
        "used_memory_max": series("used_memory_max", lambda a: used),
        "duration_p99": series("duration_p99", lambda a: timeout * 1000 * 0.3),
        "errors": series("errors", lambda a: 0),
        "throttles": series("throttles", lambda a: 0),
    }


def change(
    minutes_ago: float,
    old: Any,
    new: Any,
    kind: str = "auto-tune",
    source: str | None = None,
    now: datetime = NOW,
) -> FieldChange:
    return FieldChange(
        f"c{minutes_ago:08.0f}{kind}",
        now - timedelta(minutes=minutes_ago),
        old,
        new,
        kind,
        source=source or ("metric-fixtures" if kind == "auto-tune" else None),
    )


def inputs(
    c: Claim,
    s: Mapping[str, Series],
    changes: Mapping[str, list[FieldChange]] | None = None,
    baseline: Any = None,
) -> ClaimInputs:
    hist = {}
    for f in ("lambdaMemory", "lambdaTimeout"):
        ch = tuple((changes or {}).get(f, []))
        hist[f] = FieldHistory(c.name, f, ch, baseline=baseline if f == "lambdaMemory" else c.value(f))
    return ClaimInputs(c, dict(s), hist)
