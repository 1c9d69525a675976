"""Real repos and metric fixtures for the propose and proposals tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.patterns.propose import propose
from feedbackctl.render import Report, report_json
from tests.clirun import ROOT
from tests.gitutil import git_out, make_repo

EXAMPLE = ROOT / "examples" / "messagewall"
NOW = datetime(2026, 11, 8, tzinfo=UTC)
NOW_TEXT = "2026-11-08T00:00:00Z"
CREATED = "2026-10-01T00:00:00Z"
PROD = "claims/messagewall-prod.yaml"
DEV = "claims/messagewall-dev.yaml"
PROD_BRANCH = "feedback/messagewall-prod/lambdaMemory"
DEV_BRANCH = "feedback/messagewall-dev/lambdaMemory"
PROD_RECORD = "proposals/messagewall-prod/lambdaMemory.yaml"


def prod_claim(memory: int = 256, max_memory: int = 512, name: str = "messagewall-prod") -> str:
    text = (EXAMPLE / "claims" / "messagewall-prod.yaml").read_text()
    text = text.replace("lambdaMemory: 256 ", f"lambdaMemory: {memory} ")
    text = text.replace("max: 512 ", f"max: {max_memory} ")
    return text.replace("name: messagewall-prod", f"name: {name}")


def dev_claim(memory: int = 512) -> str:
    text = (EXAMPLE / "claims" / "messagewall-dev.yaml").read_text()
    return text.replace("lambdaMemory: 512 ", f"lambdaMemory: {memory} ")


def claim_files(**prod: Any) -> dict[str, str]:
    return {PROD: prod_claim(**prod), DEV: dev_claim()}


def config(**proposals: Any) -> str:
    return yaml.safe_dump({"proposals": proposals})


def write_series(
    root: Path, claim: str, metric: str, value: float, *, hours: float = 30, end: datetime = NOW
) -> None:
    step = 300
    n = int(hours * 3600 / step) + 1
    last = int(end.timestamp())
    lines = [f"{last - (n - 1 - i) * step},{value}" for i in range(n)]
    folder = root / claim
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{metric}.csv").write_text("timestamp,value\n" + "\n".join(lines) + "\n")


def signals(
    root: Path, claim: str, *, util: float, used: float, p99: float = 9000.0, end: datetime = NOW
) -> None:
    """A claim's metrics: utilization and peak usage as given, otherwise healthy."""
    for metric, value in {
        "memory_utilization": util,
        "used_memory_max": used,
        "duration_p99": p99,
        "errors": 0.0,
        "throttles": 0.0,
    }.items():
        write_series(root, claim, metric, value, end=end)


@dataclass
class Setup:
    work: Path
    origin: Path
    metrics: Path

    @property
    def repo(self) -> GitRepo:
        return GitRepo.open(self.work)

    def main(self) -> str:
        return git_out(self.work, "rev-parse", "main")

    def sha(self, branch: str) -> str | None:
        out = git_out(self.work, "for-each-ref", "--format=%(objectname)", f"refs/heads/{branch}")
        return out or None

    def branches(self) -> list[str]:
        out = git_out(self.work, "for-each-ref", "--format=%(refname:short)", "refs/heads/feedback/")
        return out.splitlines()

    def on_branch(self, branch: str) -> list[str]:
        """Commits on ``branch`` that main does not have, newest first."""
        return git_out(self.work, "rev-list", f"main..{branch}").splitlines()

    def record(self, branch: str, path: str = PROD_RECORD) -> dict[str, Any]:
        return dict(yaml.safe_load(git_out(self.work, "show", f"{branch}:{path}")))

    def trailers(self, rev: str) -> dict[str, str]:
        out = git_out(self.work, "log", "-1", "--format=%(trailers:only,unfold)", rev)
        return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


def make_setup(
    tmp_path: Path,
    files: Mapping[str, str] | None = None,
    *,
    util: float = 95.0,
    used: float = 240.0,
    idle_dev: bool = False,
) -> Setup:
    """Prod under pressure; dev (not opted in, so ``propose`` alone proposes for it) idle only
    with ``idle_dev``, otherwise right-sized."""
    work, origin = make_repo(tmp_path, dict(files or claim_files()), date=CREATED)
    metrics = tmp_path / "metrics"
    signals(metrics, "messagewall-prod", util=util, used=used)
    if idle_dev:
        signals(metrics, "messagewall-dev", util=14.0, used=70.0, p99=900.0)
    else:
        signals(metrics, "messagewall-dev", util=70.0, used=360.0, p99=900.0)
    return Setup(work, origin, metrics)


def run(s: Setup, now: datetime = NOW, **options: Any) -> Report:
    return propose(s.repo, None, str(s.metrics), now, **options)


def entries(report: Report) -> dict[str, dict[str, Any]]:
    return {e["branch"]: e for e in report_json(report)["proposals"]}


def at(hours: float = 0, days: float = 0) -> datetime:
    return NOW + timedelta(hours=hours, days=days)
