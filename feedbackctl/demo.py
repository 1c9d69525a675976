"""``feedbackctl demo``: a scratch config repo from the embedded example, then the patterns.

The example (``examples/messagewall``) holds the design's example claims (docs/design.md) and 7 days of
metrics: prod under sustained memory pressure, dev idle and over-provisioned.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from feedbackctl.errors import UsageError
from feedbackctl.proc import run
from feedbackctl.resources import data_dir

DEMO_NOW = "2026-11-08T00:00:00Z"
# The claims were committed by a human well before the metrics window.
DEMO_COMMIT_DATE = "2026-10-01T09:00:00Z"
DEMO_IDENTITY = {
    "GIT_AUTHOR_NAME": "Demo Engineer",
    "GIT_AUTHOR_EMAIL": "engineer@example.com",
    "GIT_COMMITTER_NAME": "Demo Engineer",
    "GIT_COMMITTER_EMAIL": "engineer@example.com",
}


@dataclass(frozen=True)
class DemoLayout:
    root: Path
    repo: Path  # the config repo (work tree), origin is a bare repo beside it
    origin: Path
    metrics: Path
    live: Path


def build(target: str | None) -> DemoLayout:
    example = data_dir("examples") / "messagewall"
    # Absolute: git resolves the origin path from inside the config repo, not from here.
    root = Path(target).absolute() if target else Path(tempfile.mkdtemp(prefix="feedbackctl-demo-"))
    if root.exists() and any(root.iterdir()):
        raise UsageError(f"{root} is not empty; pass --dir with a new or empty directory")
    root.mkdir(parents=True, exist_ok=True)
    repo, origin = root / "config", root / "origin.git"
    shutil.copytree(example / "claims", repo / "claims")
    config = example / ".feedbackctl.yaml"
    if config.exists():
        shutil.copy(config, repo / ".feedbackctl.yaml")
    shutil.copytree(example / "metrics", root / "metrics")
    live = example / "live.yaml"
    if live.exists():
        shutil.copy(live, root / "live.yaml")
    env = {**DEMO_IDENTITY, "GIT_AUTHOR_DATE": DEMO_COMMIT_DATE, "GIT_COMMITTER_DATE": DEMO_COMMIT_DATE}
    run(["git", "init", "-q", "-b", "main", str(repo)])
    run(["git", "add", "-A"], cwd=repo)
    run(
        ["git", "-c", "commit.gpgsign=false", "commit", "-q", "-m", "Add messagewall claims"],
        cwd=repo,
        env=env,
    )
    run(["git", "init", "-q", "--bare", "-b", "main", str(origin)])
    run(["git", "remote", "add", "origin", str(origin)], cwd=repo)
    run(["git", "push", "-q", "-u", "origin", "main"], cwd=repo)
    return DemoLayout(root, repo, origin, root / "metrics", root / "live.yaml")
