"""``analyze`` on a generated fleet against its floor, cold and warm, with peak RSS.

Floor = git read (ls-tree + one cat-file --batch) + PyYAML C-loader parse of
every claim file + loading the same series from the fixtures, the quicker of
two measurements (the first may read the files from disk). Targets: cold
analyze <= 1.5x the floor, warm (a re-run on the same inputs) <= 0.7x, peak RSS
<= 400 MB up to 50,000 claims (docs/performance.md).

    python -m bench.analyze_bench [--claims 1000 10000] [--points 168] [--step 3600]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time

import yaml

from bench.common import OUT, ChildrenRss, Row, child, peak_rss_mb, print_rows, timed
from bench.fleet import FleetPaths, make_fleet

# (claims, points) -> cold/warm ratio to the floor and peak RSS in MB: first before series
# were batched and answers cached (quiet 2-core machine), then before decisions were packed
# and batches halved (loaded machine, ratios from the same run), then at 10k before the
# collector was paused and frozen around the snapshot, then before the window memo, the
# packed report texts and the flat claim cache, then (a slower machine) before the
# read-ahead helper (issue 17; docs/performance.md).
BEFORE: dict[tuple[int, int], dict[str, str]] = {
    (10_000, 168): {
        "cold": "3.28x (10.6 s / 3.2 s); 2.33x (40.4 s / 17.3 s); 1.79x (8.5 s / 4.7 s); "
        "1.62x (7.7 s / 4.7 s); 1.58x-1.65x (9.5-9.9 s / 6.0 s)",
        "warm": "2.83x (9.1 s); 0.38x (6.6 s); 0.41x (1.9 s); 0.35x (1.65 s); 0.33x-0.37x (2.0-2.2 s)",
        "rss": "396 MB, warm 411 MB; 199 MB, warm 124 MB; 149 MB, warm 108 MB; 141 MB, warm 102 MB; "
        "150 MB, warm 110 MB",
    },
    (50_000, 168): {
        "cold": "96 s; 2.27x (509 s / 224 s); 54.7 s (helper off, floor about 30 s)",
        "warm": "101 s; 0.30x (68 s)",
        "rss": "1,717 MB, warm 1,791 MB; 517 MB, warm 382 MB; 376 MB (helper off)",
    },
}


def _before(n: int, points: int, what: str) -> str:
    got = BEFORE.get((n, points), {}).get(what)
    return f"before: {got}" if got else ""


def fleet(n: int, points: int, step: int) -> FleetPaths:
    root = OUT / f"fleet-{n}-{points}x{step}"
    marker = root / ".done"
    if marker.exists():
        from bench.fleet import fleet_claims

        return FleetPaths(
            root / "fleet", root / "metrics", tuple(c.name for c in fleet_claims(n)), 1794096000.0
        )
    shutil.rmtree(root, ignore_errors=True)
    paths = make_fleet(root, n, points=points, step_seconds=step)
    marker.write_text("ok")
    return paths


def floor(paths: FleetPaths) -> dict[str, float]:
    from feedbackctl.authority.gitrepo import GitRepo
    from feedbackctl.authority.snapshot import load_snapshot
    from feedbackctl.core.models import Claim
    from feedbackctl.patterns.inputs import needed_metrics
    from feedbackctl.sources.base import MetricRequest
    from feedbackctl.sources.fixtures import FixtureSource

    repo = GitRepo.open(paths.repo)
    t0 = time.perf_counter()
    commit = repo.resolve("main")
    listed = repo.list_files(commit, ("",))
    blobs = repo.read_blobs([b for _, b in listed])
    t_git = time.perf_counter() - t0
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    t_parse, _ = timed(lambda: [list(yaml.load_all(blobs[b], Loader=loader)) for _, b in listed])
    policy = load_snapshot(repo, "main").settings.policy
    metrics = needed_metrics(policy)
    fake = [Claim(n, "ServerlessEventAppClaim", "x/v1", {}, "") for n in paths.claims]
    src = FixtureSource.from_spec(str(paths.metrics))
    start = paths.now - 7 * 86400
    t_series, _ = timed(
        lambda: src.fetch([MetricRequest(c, metrics, start, paths.now) for c in fake], paths.now)
    )
    return {"git": t_git, "parse": t_parse, "series": t_series}


def run_child(args: list[str]) -> None:
    from feedbackctl.cli import run

    with ChildrenRss() as others:
        start = time.perf_counter()
        code = run(args)
        seconds = time.perf_counter() - start
    rss = peak_rss_mb()
    print(
        f'{{"seconds": {seconds}, "rss_mb": {rss}, "helper_mb": {others.helpers}, '
        f'"together_mb": {others.together}, "code": {code}}}',
        file=sys.stderr,
    )


def bench(sizes: list[int], points: int, step: int) -> list[Row]:
    rows: list[Row] = []
    per_claim: list[tuple[int, float]] = []
    for n in sizes:
        paths = fleet(n, points, step)
        # Twice, keeping the quicker: the first read of a fleet's metric files may come from
        # disk, and analyze after it reads them from the page cache (a flattering floor).
        f = min(floor(paths), floor(paths), key=lambda parts: sum(parts.values()))
        total_floor = sum(f.values())
        args = [
            "analyze",
            "--repo",
            str(paths.repo),
            "--metrics",
            str(paths.metrics),
            "--now",
            str(int(paths.now)),
            "--output",
            "json",
        ]
        cache = paths.repo / ".git" / "feedbackctl"
        shutil.rmtree(cache, ignore_errors=True)
        cold = child("bench.analyze_bench", *args)
        warm = child("bench.analyze_bench", *args)
        label = f"{n} claims x {points} pts"
        rows.append(
            Row(
                "analyze",
                f"floor ({label})",
                total_floor,
                None,
                "",
                f"git {f['git']:.2f} + parse {f['parse']:.2f} + series {f['series']:.2f}",
            )
        )
        rows.append(
            Row(
                "analyze",
                f"cold ({label})",
                cold["seconds"],
                total_floor,
                "<= 1.5x",
                _before(n, points, "cold"),
            )
        )
        rows.append(
            Row(
                "analyze",
                f"warm ({label})",
                warm["seconds"],
                total_floor,
                "<= 0.7x",
                _before(n, points, "warm"),
            )
        )
        helper = (
            f"children (read-ahead helper, git) {cold['helper_mb']:.0f} MB, "
            f"with them {cold['together_mb']:.0f} MB (sampled)"
        )
        notes = (f"warm {warm['rss_mb']:.0f} MB", helper, _before(n, points, "rss"))
        rss_note = "; ".join(x for x in notes if x)
        rows.append(
            Row(
                "analyze", f"peak RSS, cold ({label})", cold["rss_mb"], None, "<= 400 MB", rss_note, unit="MB"
            )
        )
        per_claim.append((n, cold["seconds"]))
    rows += growth_rows("analyze", "cold", per_claim)
    return rows


def growth_rows(section: str, what: str, sizes: list[tuple[int, float]]) -> list[Row]:
    """Each step's growth: time ratio over size ratio (1.0 = linear, below = better)."""
    rows = []
    for (n0, t0), (n1, t1) in zip(sizes, sizes[1:], strict=False):
        if t0 <= 0:
            continue
        growth = (t1 / t0) / (n1 / n0)
        rows.append(Row(section, f"growth {what} {n0}->{n1} claims", growth, None, "<= 1 (linear)",
                        f"time x{t1 / t0:.1f} for claims x{n1 / n0:.0f}", unit="x"))  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--child":
        run_child(argv[1:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--claims", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--points", type=int, default=168)
    ap.add_argument("--step", type=int, default=3600)
    a = ap.parse_args(argv)
    print_rows(bench(a.claims, a.points, a.step))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
