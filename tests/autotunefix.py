"""Builders for the autotune end-to-end tests: real repos, real fixtures.

The claim is the corpus's prod claim with the seed's ``autoTune`` block, as
shipped in ``examples/messagewall``; metrics are CSV fixtures written here
so that each replay step can say exactly what the functions did.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.clirun import ROOT, Result, cli
from tests.gitutil import git_out

EXAMPLE = ROOT / "examples" / "messagewall"
PROD = "messagewall-prod"
PROD_PATH = "claims/messagewall-prod.yaml"
PROD_CLAIM = (EXAMPLE / "claims" / "messagewall-prod.yaml").read_text()
DEV_CLAIM = (EXAMPLE / "claims" / "messagewall-dev.yaml").read_text()
T0 = datetime(2026, 11, 8, tzinfo=UTC)  # the end of the example's week of metrics
STEP = timedelta(minutes=5)

Values = Callable[[datetime], float]


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def example_metrics(dest: Path) -> Path:
    """The example's week of metrics (prod under memory pressure at 256 MB)."""
    shutil.copytree(EXAMPLE / "metrics", dest)
    return dest


def write_series(path: Path, start: datetime, end: datetime, value: Values, *, append: bool = True) -> None:
    rows = []
    t = start
    while t <= end:
        rows.append(f"{iso(t)},{value(t):.2f}\n")
        t += STEP
    path.parent.mkdir(parents=True, exist_ok=True)
    if append and path.exists():
        with path.open("a") as f:
            f.writelines(rows)
    else:
        path.write_text("timestamp,value\n" + "".join(rows))


def run_on(
    metrics: Path,
    claim: str,
    start: datetime,
    end: datetime,
    *,
    memory: float,
    used: float,
    p99: float = 10_000.0,
    errors: float = 0.0,
    append: bool = True,
) -> None:
    """Points every 5 minutes in [start, end] for a function with ``memory`` MB using ``used`` MB."""
    d = metrics / claim
    write_series(d / "used_memory_max.csv", start, end, lambda t: used, append=append)
    write_series(d / "memory_utilization.csv", start, end, lambda t: used / memory * 100, append=append)
    write_series(d / "duration_p99.csv", start, end, lambda t: p99, append=append)
    write_series(d / "errors.csv", start, end, lambda t: errors, append=append)
    write_series(d / "throttles.csv", start, end, lambda t: 0.0, append=append)


def fresh_metrics(
    metrics: Path, claims: Mapping[str, tuple[float, float]], end: datetime, hours: float = 26
) -> Path:
    """``claim -> (memory, used)`` for ``hours`` up to ``end`` (enough for any increase rule)."""
    for claim, (memory, used) in claims.items():
        run_on(metrics, claim, end - timedelta(hours=hours), end, memory=memory, used=used, append=False)
    return metrics


def autotune(repo: Path, metrics: Path, now: datetime, *extra: str) -> Result:
    return cli(
        "autotune",
        "--repo",
        str(repo),
        "--metrics",
        str(metrics),
        "--now",
        iso(now),
        "--output",
        "json",
        *extra,
    )


def ok_json(result: Result) -> Any:
    assert result.code == 0, f"exit {result.code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.json()


def decision(data: Mapping[str, Any], claim: str = PROD, field: str = "spec.lambdaMemory") -> Any:
    return next(d for d in data["decisions"] if d["claim"] == claim and d["field"] == field)


def count(repo: Path, rev: str = "main") -> int:
    return int(git_out(repo, "rev-list", "--count", rev))


def claim_text(repo: Path, rev: str = "main", path: str = PROD_PATH) -> str:
    return git_out(repo, "show", f"{rev}:{path}")


def memory_of(repo: Path, rev: str = "main", path: str = PROD_PATH) -> int:
    for line in claim_text(repo, rev, path).splitlines():
        if line.strip().startswith("lambdaMemory:"):
            return int(line.split(":", 1)[1].split("#", 1)[0])
    raise AssertionError(f"no lambdaMemory in {path}")


def with_memory(text: str, value: int) -> str:
    """The claim text with its lambdaMemory line set to ``value`` (as a human would edit it)."""
    out = []
    for line in text.splitlines(keepends=True):
        if line.strip().startswith("lambdaMemory:"):
            head, _, rest = line.partition(":")
            comment = rest[rest.index("#") :] if "#" in rest else "\n"
            line = f"{head}: {value}    {comment}" if "#" in rest else f"{head}: {value}\n"
        out.append(line)
    return "".join(out)


def with_autotune(text: str, block: str) -> str:
    """Replace the seed's autoTune block (the end of the prod claim) with ``block``."""
    head = text[: text.index("  autoTune:")]
    return head + block


def trailer_commit(
    work: Path,
    files: Mapping[str, str],
    at: datetime,
    changes: list[Mapping[str, str]],
    subject: str = "feedbackctl: auto-tune",
) -> str:
    """A commit carrying Feedback-* trailers, as an earlier feedbackctl run would have written."""
    from tests.gitutil import commit_files

    block = "\n".join(f"{k}: {v}" for change in changes for k, v in change.items())
    return commit_files(work, dict(files), f"{subject}\n\n{block}\n", iso(at))


def auto_trailers(
    claim: str, field: str, old: object, new: object, source: str = "metric-fixtures"
) -> dict[str, str]:
    return {
        "Feedback-Kind": "auto-tune",
        "Feedback-Claim": claim,
        "Feedback-Field": f"spec.{field}",
        "Feedback-From": str(old),
        "Feedback-To": str(new),
        "Feedback-Source": source,
        "Feedback-Rule": "memory-pressure",
        "Feedback-Risk": "MEDIUM",
        "Feedback-Evidence": "memory_utilization min=95% vs threshold 90% over 30m, n=7",
    }


def spawn(*args: str) -> subprocess.Popen[str]:
    """``python -m feedbackctl ARGS`` started in the background (for races and kills)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "feedbackctl", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def autotune_args(repo: Path, metrics: Path, now: datetime, *extra: str) -> list[str]:
    return [
        "autotune",
        "--repo",
        str(repo),
        "--metrics",
        str(metrics),
        "--now",
        iso(now),
        "--output",
        "json",
        *extra,
    ]


def finish(proc: subprocess.Popen[str]) -> Result:
    out, err = proc.communicate(timeout=120)
    return Result(proc.returncode, out, err)
