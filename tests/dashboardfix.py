"""A demo repo with everything the dashboard shows, and one forged automated commit."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.clirun import cli
from tests.gitutil import commit_files, git_out

DEMO_NOW = "2026-11-08T00:00:00Z"
PROD = "claims/messagewall-prod.yaml"
# An auto-tune commit whose trailers lie about the diff: audit verify must flag it.
FORGED_MESSAGE = """feedbackctl: auto-tune messagewall-prod spec.lambdaMemory 384 -> 448

Feedback-Kind: auto-tune
Feedback-Claim: messagewall-prod
Feedback-Field: spec.lambdaMemory
Feedback-From: 384
Feedback-To: 448
Feedback-Source: metric-fixtures
Feedback-Rule: memory-pressure
Feedback-Risk: LOW
"""


HANDED_OFF = "feedback/messagewall-dev/lambdaTimeout"


@dataclass(frozen=True)
class Demo:
    root: Path
    demo_stdout: str
    forged: str  # sha of the forged commit
    handoff: str  # a human's commit on HANDED_OFF

    @property
    def repo(self) -> Path:
        return self.root / "config"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics"

    def head(self) -> str:
        return git_out(self.repo, "rev-parse", "main")


def make_demo(root: Path) -> Demo:
    """``feedbackctl demo`` (sidecars, an auto-tune, proposals, a drift capture), then a forgery."""
    ran = cli("demo", "--dir", str(root), timeout=300)
    assert ran.code == 0, ran.stderr
    work = root / "config"
    text = (work / PROD).read_text()
    forged_text, n = re.subn(r"lambdaMemory: 384\b", "lambdaMemory: 1024", text)
    assert n == 1, text
    sha = commit_files(work, {PROD: forged_text}, FORGED_MESSAGE, date=DEMO_NOW)
    # A human commits on a proposal branch (plumbing: the branch is never checked out).
    tip = git_out(work, "rev-parse", HANDED_OFF)
    tree = git_out(work, "rev-parse", f"{tip}^{{tree}}")
    human = git_out(work, "commit-tree", tree, "-p", tip, "-m", "Ada: try 8s instead")
    git_out(work, "update-ref", f"refs/heads/{HANDED_OFF}", human, tip)
    return Demo(root, ran.stdout, sha, human)


def run_dashboard(demo: Demo, out: Path, *extra: str) -> tuple[dict[str, Any], str]:
    """``feedbackctl dashboard --output json`` on the demo with its metrics: (document, page)."""
    ran = cli(
        "dashboard",
        "--repo",
        str(demo.repo),
        "--metrics",
        str(demo.metrics),
        "--now",
        DEMO_NOW,
        "--out",
        str(out),
        "--output",
        "json",
        *extra,
    )
    assert ran.code == 0, ran.stderr
    doc: dict[str, Any] = ran.json()
    return doc, (out / "index.html").read_text(encoding="utf-8")
