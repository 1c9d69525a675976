"""Every benchmark in one run, one table: each figure beside its floor.

    python -m bench                 # the full sizes (about 15-20 minutes on 2 cores)
    python -m bench --quick         # small sizes, a few minutes: a smoke test of the numbers
    python -m bench --only analyze propose
    python -m bench --week          # also analyze 10k claims x 7 days of 5-minute points

Sections run in order; a section whose module is missing (not merged yet) or
that fails is reported in the table and the run goes on (exit 1 at the end).
Generated data lives in ``bench/out/`` (git-ignored) and is reused by the
sections that cache it. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import re
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from bench.common import OUT, Row, print_rows


@dataclass(frozen=True)
class Sizes:
    analyze_week: tuple[int, ...]  # claims x 2016 five-minute points
    analyze_hourly: tuple[int, ...]  # claims x 168 hourly points (the scaling series)
    propose: tuple[int, ...]  # branches
    drift: tuple[int, ...]  # claims
    history_commits: int  # drift/history section
    autotune_commits: int  # autotune history cost
    autotune_claims: int
    audit_commits: tuple[int, ...]
    overlays: tuple[int, ...]


FULL = Sizes(
    analyze_week=(1000,),
    analyze_hourly=(1000, 10_000, 50_000),
    propose=(1000, 10_000),
    drift=(1000, 10_000, 50_000),
    history_commits=20_000,
    autotune_commits=100_000,
    autotune_claims=1000,
    audit_commits=(200, 1000),
    overlays=(4, 50, 200),
)
QUICK = Sizes(
    analyze_week=(200,),
    analyze_hourly=(200, 1000),
    propose=(200,),
    drift=(200, 1000),
    history_commits=2000,
    autotune_commits=10_000,
    autotune_claims=200,
    audit_commits=(200,),
    overlays=(4, 20),
)


def _module(name: str) -> ModuleType | None:
    if importlib.util.find_spec(f"bench.{name}") is None:
        return None
    return importlib.import_module(f"bench.{name}")


def _missing(section: str, figure: str, module: str) -> list[Row]:
    return [Row(section, figure, None, note=f"bench/{module}.py not merged yet")]


def analyze(s: Sizes) -> list[Row]:
    from bench import analyze_bench

    rows = []
    for n in s.analyze_week:
        rows += analyze_bench.bench([n], 2016, 300)
    rows += analyze_bench.bench(list(s.analyze_hourly), 168, 3600)
    return rows


def propose(s: Sizes) -> list[Row]:
    from bench import propose_bench
    from bench.analyze_bench import growth_rows

    rows: list[Row] = []
    runs = []
    for n in s.propose:
        got = propose_bench.bench(n)
        # The first size gets every phase; larger ones only the run itself, for the growth.
        rows += got if not runs else [r for r in got if r.name.startswith("run:")]
        runs.append((n, next(r.seconds or 0.0 for r in got if r.name.startswith("run:"))))
    return rows + growth_rows("propose", "run", runs)


def drift(s: Sizes) -> list[Row]:
    from bench import drift as drift_bench
    from bench.analyze_bench import growth_rows

    root = OUT / "drift"
    rows: list[Row] = []
    captures = []
    for i, n in enumerate(s.drift):
        got = drift_bench.bench(root, n, max(1, n // 100), s.history_commits if i == 0 else 0)
        rows += got if i == 0 else [r for r in got if r.name.startswith("drift capture (")]
        captures.append((n, next(r.seconds or 0.0 for r in got if r.name.startswith("drift capture ("))))
    return rows + growth_rows("drift", "capture", captures)


def autotune_history(s: Sizes) -> list[Row]:
    mod = _module("history_bench")
    if mod is None:
        return _missing("history", "autotune history cost", "history_bench")
    rows: list[Row] = mod.bench(s.autotune_commits, s.autotune_claims, 3, True)
    return rows


def cloudwatch(s: Sizes) -> list[Row]:
    """GetMetricData calls made beside the minimum, max(ceil(queries/500), ceil(points/100,800))."""
    mod = _module("cloudwatch_bench")
    if mod is None:
        return _missing("cloudwatch", "GetMetricData calls", "cloudwatch_bench")
    out = []
    for case, size, calls, seconds in mod.synthetic_plan() + mod.against_moto() + mod.tool_side():
        counted = re.match(r"(\d+) (?:requests|calls) \(minimum (\d+)\)", calls)
        timed = re.match(r"([\d.]+) s", seconds)
        if counted:
            made, least = int(counted.group(1)), int(counted.group(2))
            out.append(Row("cloudwatch", case, made, least, "= minimum", f"{size}; {seconds}", unit="calls"))
        else:
            value = float(timed.group(1)) if timed else None
            out.append(
                Row(
                    "cloudwatch",
                    case,
                    value,
                    None,
                    "",
                    f"{size}; {calls}" + ("" if timed else f"; {seconds}"),
                )
            )
    if hasattr(mod, "planner_alone"):  # autotune's fetch plan: metrics requested, planned vs full
        out += mod.planner_alone() + mod.autotune_against_moto()
    return out


def kustomize(s: Sizes) -> list[Row]:
    mod = _module("kustomize_bench")
    if mod is None:
        return _missing("kustomize", "overlays", "kustomize_bench")
    return list(mod.bench(list(s.overlays)))


def audit(s: Sizes) -> list[Row]:
    mod = _module("audit_simulate_bench")
    if mod is None:
        return _missing("audit", "audit verify / simulate", "audit_simulate_bench")
    rows = []
    for n in s.audit_commits:
        rows += mod.audit_rows(50, n)
    return rows + list(mod.simulate_rows())


SECTIONS: dict[str, Callable[[Sizes], list[Row]]] = {
    "analyze": analyze,
    "propose": propose,
    "autotune": autotune_history,
    "cloudwatch": cloudwatch,
    "drift": drift,
    "audit": audit,
    "kustomize": kustomize,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    ap.add_argument("--week", action="store_true", help="also analyze 10k claims x 2016 five-minute points")
    ap.add_argument("--only", nargs="+", choices=sorted(SECTIONS), help="run these sections only")
    a = ap.parse_args(argv)
    sizes = QUICK if a.quick else FULL
    if a.week:
        sizes = Sizes(**{**sizes.__dict__, "analyze_week": (*sizes.analyze_week, 10_000)})
    OUT.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TMPDIR", tempfile.gettempdir())
    rows: list[Row] = []
    failed = []
    began = time.perf_counter()
    for name in a.only or list(SECTIONS):
        started = time.perf_counter()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        try:
            got = SECTIONS[name](sizes)
        except Exception as e:  # one broken section must not hide the others' figures
            traceback.print_exc()
            failed.append(name)
            got = [Row(name, "FAILED", None, note=f"{type(e).__name__}: {str(e)[:120]}")]
        rows += got
        print(f"[bench] {name}: {time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)
    load = os.getloadavg()[0]
    mode = "quick" if a.quick else "full"
    took = time.perf_counter() - began
    print_rows(rows, title=f"feedbackctl benchmarks ({mode}; {took:.0f}s; load {load:.1f})")
    if failed:
        print(f"failed sections: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
