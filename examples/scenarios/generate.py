"""Regenerate the runaway scenarios' metric fixtures (demand at each claim's reference config).

Deterministic: a fixed seed and only ``Generator.random`` draws, so rerunning
reproduces the committed CSVs byte for byte.

    python examples/scenarios/generate.py [OUT_DIR]   # default: beside this file
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

START = 1793491200  # 2026-11-01T00:00:00Z
DAYS = 3
# Scenarios whose runaway takes longer than DAYS to show.
DAYS_OF = {"coupled-fields": 4}
STEP = 300  # 5-minute points, both ends inclusive
SEED = 20261101

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


def timestamps(days: int = DAYS) -> Ints:
    return START + STEP * np.arange(days * 86400 // STEP + 1, dtype=np.int64)


def noise(rng: np.random.Generator, n: int, lo: float, hi: float) -> Floats:
    return lo + (hi - lo) * rng.random(n)


def daily_load(ts: Ints) -> Floats:
    hours = (ts % 86400) / 3600.0
    return np.asarray(0.5 - 0.5 * np.cos(2 * np.pi * (hours - 3) / 24), dtype=np.float64)


def demand(
    rng: np.random.Generator,
    used: Floats,
    memory: float,
    p99: Floats,
    p50: Floats,
    invocations: Floats,
    errors: Floats | None = None,
) -> dict[str, tuple[Floats, bool]]:
    n = used.shape[0]
    return {
        "used_memory_max": (np.round(used, 2), False),
        "memory_utilization": (np.round(np.minimum(100.0, used / memory * 100), 2), False),
        "duration_p99": (np.round(p99, 2), False),
        "duration_p50": (np.round(p50, 2), False),
        "invocations": (np.round(invocations), True),
        "errors": (errors if errors is not None else np.zeros(n), True),
        "throttles": (np.zeros(n), True),
    }


def oscillation(rng: np.random.Generator, ts: Ints) -> dict[str, dict[str, tuple[Floats, bool]]]:
    """256 MB under memory pressure; at 384 MB the hourly cost crosses the cost rule."""
    n = ts.shape[0]
    return {
        "checkout-api": demand(
            rng,
            used=noise(rng, n, 236, 252),
            memory=256,
            p99=6000 + 2000 * daily_load(ts) * rng.random(n),
            p50=noise(rng, n, 775, 825),
            invocations=noise(rng, n, 1950, 2050),
        )
    }


def amplification(rng: np.random.Generator, ts: Ints) -> dict[str, dict[str, tuple[Floats, bool]]]:
    """Usage that grows into whatever memory it gets: utilization never falls."""
    n = ts.shape[0]
    return {
        "ingest-worker": demand(
            rng,
            used=noise(rng, n, 236, 252),
            memory=256,
            p99=noise(rng, n, 3000, 5000),
            p50=noise(rng, n, 450, 550),
            invocations=noise(rng, n, 950, 1050),
        )
    }


def metric_gaming(rng: np.random.Generator, ts: Ints) -> dict[str, dict[str, tuple[Floats, bool]]]:
    """Idle memory and a p50 that keeps improving, while the p99 tail keeps getting worse."""
    n = ts.shape[0]
    progress = np.linspace(0.0, 1.0, n)
    return {
        "search-api": demand(
            rng,
            used=noise(rng, n, 280, 320),
            memory=1024,
            p99=8300 + 1300 * progress + noise(rng, n, 0, 150),
            p50=900 - 450 * progress + noise(rng, n, -20, 20),
            invocations=noise(rng, n, 2900, 3100),
            errors=np.where(rng.random(n) > 0.8, 1.0, 0.0),
        )
    }


def cascade(rng: np.random.Generator, ts: Ints) -> dict[str, dict[str, tuple[Floats, bool]]]:
    """orders-api waits on orders-worker and the worker retries through the api."""
    n = ts.shape[0]
    return {
        "orders-api": demand(
            rng,
            used=noise(rng, n, 200, 240),
            memory=512,
            p99=noise(rng, n, 8400, 8800),
            p50=noise(rng, n, 1800, 2200),
            invocations=noise(rng, n, 1900, 2100),
        ),
        "orders-worker": demand(
            rng,
            used=noise(rng, n, 200, 240),
            memory=512,
            p99=noise(rng, n, 6500, 7000),
            p50=noise(rng, n, 1500, 1700),
            invocations=noise(rng, n, 1900, 2100),
        ),
    }


def drift(rng: np.random.Generator, ts: Ints) -> dict[str, dict[str, tuple[Floats, bool]]]:
    """A dataset that keeps growing: each increase looks right, together they leave the tested config."""
    n = ts.shape[0]
    return {
        "report-builder": demand(
            rng,
            used=np.linspace(236, 1000, n) + noise(rng, n, 0, 8),
            memory=256,
            p99=noise(rng, n, 9000, 12000),
            p50=noise(rng, n, 2500, 3000),
            invocations=noise(rng, n, 280, 320),
        )
    }


def staging(rng: np.random.Generator, ts: Ints) -> dict[str, dict[str, tuple[Floats, bool]]]:
    """One service in dev and in prod under the same load shape: amplification's memory pressure at 256 MB."""
    (shape,) = amplification(rng, ts).values()
    return {"checkout-dev": shape, "checkout-prod": shape}


def coupled_fields(rng: np.random.Generator, ts: Ints) -> dict[str, dict[str, tuple[Floats, bool]]]:
    """Idle memory (about 22 %), and a CPU-bound p99 just under the guardrail (80 % of a 10 s timeout) at 1024 MB."""
    n = ts.shape[0]
    return {
        "thumbnailer": demand(
            rng,
            used=noise(rng, n, 200, 240),
            memory=1024,
            p99=noise(rng, n, 6500, 7000),
            p50=noise(rng, n, 1900, 2100),
            invocations=noise(rng, n, 950, 1050),
        )
    }


SCENARIOS: dict[str, Callable[[np.random.Generator, Ints], dict[str, dict[str, tuple[Floats, bool]]]]] = {
    "oscillation": oscillation,
    "amplification": amplification,
    "metric-gaming": metric_gaming,
    "cascade": cascade,
    "drift": drift,
    # The comparison scenario staging-unvalidated reads these same fixtures.
    "staging": staging,
    "coupled-fields": coupled_fields,
}


def write_csv(path: Path, ts: Ints, values: Floats, is_count: bool) -> None:
    stamps = np.datetime_as_string(ts.astype("datetime64[s]"), unit="s")
    cells = [f"{int(v)}" if is_count else f"{v:.2f}" for v in values]
    rows = "".join(f"{t}Z,{c}\n" for t, c in zip(stamps, cells, strict=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("timestamp,value\n" + rows).encode("ascii"))


def generate(out: Path) -> list[Path]:
    written = []
    for i, (name, build) in enumerate(SCENARIOS.items()):
        ts = timestamps(DAYS_OF.get(name, DAYS))
        rng = np.random.default_rng(SEED + i)
        for claim, metrics in build(rng, ts).items():
            for metric, (values, is_count) in metrics.items():
                path = out / name / "metrics" / claim / f"{metric}.csv"
                write_csv(path, ts, values, is_count)
                written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    for written in generate(target):
        print(written)
