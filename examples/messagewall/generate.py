"""Regenerate the messagewall example's metric fixtures.

Deterministic: a fixed seed and only ``Generator.random`` draws (whose stream
numpy keeps stable), so rerunning reproduces the committed CSVs byte for byte.

    python examples/messagewall/generate.py [OUT_DIR]   # default: metrics/ beside this file
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt

START = 1793491200  # 2026-11-01T00:00:00Z
DAYS = 7
STEP = 300  # 5-minute points, both ends inclusive
SEED = 20261101
# us-east-1 Lambda list prices (x86): per GB-second and per request.
GB_SECOND_USD = 0.0000166667
REQUEST_USD = 0.20 / 1_000_000

Floats = npt.NDArray[np.float64]
Metrics = dict[str, tuple[npt.NDArray[np.int64], Floats, bool]]  # metric -> (ts, values, is_count)


def timestamps() -> npt.NDArray[np.int64]:
    return START + STEP * np.arange(DAYS * 86400 // STEP + 1, dtype=np.int64)


def daily_load(ts: npt.NDArray[np.int64]) -> Floats:
    """0 at 03:00 UTC, 1 at 15:00 UTC: the message wall is busiest in the afternoon."""
    hours = (ts % 86400) / 3600.0
    return np.asarray(0.5 - 0.5 * np.cos(2 * np.pi * (hours - 3) / 24), dtype=np.float64)


def between(rng: np.random.Generator, lo: float, hi: float, n: int) -> Floats:
    return lo + (hi - lo) * rng.random(int(n))


def prod(rng: np.random.Generator) -> Metrics:
    """256 MB, 30 s timeout: memory pressure at every single point."""
    ts = timestamps()
    n, load = ts.shape[0], daily_load(ts)
    used = np.round(236 + 16 * (0.3 * load + 0.7 * rng.random(n)), 2)
    invocations = np.clip(np.round(1650 + 2150 * load + between(rng, -150, 150, n)), 1500, 4000)
    p99 = 9000 + 5000 * (0.5 * load + 0.5 * rng.random(n))
    p50 = 1000 + 1000 * (0.4 * load + 0.6 * rng.random(n))
    draw = rng.random(n)
    errors = np.where(draw > 0.97, 2.0, np.where(draw > 0.85, 1.0, 0.0))
    return _with_derived(ts, used, 256, invocations, p99, p50, errors)


def dev(rng: np.random.Generator) -> Metrics:
    """512 MB, 10 s timeout: idle and over-provisioned."""
    ts = timestamps()
    n, load = ts.shape[0], daily_load(ts)
    used = np.round(between(rng, 55, 74.7, n), 2)
    invocations = np.clip(np.round(8 + 45 * load + between(rng, -3, 7, n)), 5, 60)
    p99 = 300 + 600 * (0.5 * load + 0.5 * rng.random(n))
    p50 = between(rng, 80, 200, n)
    return _with_derived(ts, used, 512, invocations, p99, p50, np.zeros(n))


def _with_derived(
    ts: npt.NDArray[np.int64],
    used: Floats,
    memory_mb: int,
    invocations: Floats,
    p99: Floats,
    p50: Floats,
    errors: Floats,
) -> Metrics:
    utilization = np.round(used / memory_mb * 100, 2)
    # p50 stands in for the mean duration: close enough for a demo's cost line.
    gb_seconds = invocations * (p50 / 1000) * (memory_mb / 1024)
    spend = gb_seconds * GB_SECOND_USD + invocations * REQUEST_USD
    day_ends = START + 86400 * np.arange(1, DAYS + 1, dtype=np.int64)
    # One point per day, stamped at the end of the day it covers.
    cost = np.array([spend[(ts >= end - 86400) & (ts < end)].sum() for end in day_ends])
    return {
        "memory_utilization": (ts, utilization, False),
        "used_memory_max": (ts, used, False),
        "duration_p99": (ts, np.round(p99, 2), False),
        "duration_p50": (ts, np.round(p50, 2), False),
        "errors": (ts, errors, True),
        "throttles": (ts, np.zeros(ts.shape[0]), True),
        "invocations": (ts, invocations, True),
        "cost_daily": (day_ends, np.round(cost, 2), False),
    }


def write_csv(path: Path, ts: npt.NDArray[np.int64], values: Floats, is_count: bool) -> None:
    stamps = np.datetime_as_string(ts.astype("datetime64[s]"), unit="s")
    cells = [f"{int(v)}" if is_count else f"{v:.2f}" for v in values]
    rows = "".join(f"{t}Z,{c}\n" for t, c in zip(stamps, cells, strict=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("timestamp,value\n" + rows).encode("ascii"))


def generate(out: Path) -> list[Path]:
    rng = np.random.default_rng(SEED)
    written = []
    for claim, build in (("messagewall-prod", prod), ("messagewall-dev", dev)):
        for metric, (ts, values, is_count) in build(rng).items():
            path = out / claim / f"{metric}.csv"
            write_csv(path, ts, values, is_count)
            written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "metrics"
    for written in generate(target):
        print(written)
