"""The review dashboard: one static page of what waits on a human (docs/dashboard.md)."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.core.dashboard import build
from feedbackctl.dashboard.gather import gather
from feedbackctl.dashboard.page import render
from feedbackctl.errors import UsageError

PAGE = "index.html"


def dashboard(
    repo: GitRepo, ref: str | None, now: datetime, *, remote: str | None = None, metrics: str | None = None
) -> dict[str, Any]:
    """The dashboard's document for the repo as it is now."""
    return build(gather(repo, ref, now, remote=remote, metrics=metrics))


def write_page(doc: dict[str, Any], out: str | Path) -> Path:
    """Write ``out/index.html`` whole or not at all (a publisher never copies half a page)."""
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(
            f"--out {folder}: cannot create the folder ({e.strerror}); pass a writable path"
        ) from None
    target = folder / PAGE
    fd, tmp = tempfile.mkstemp(prefix=".index.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(render(doc))
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
